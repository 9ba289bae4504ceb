package store

import (
	"time"

	"github.com/computebot/computebot"
)

// requestRecord is the stored form of a computebot.Request (schema 1).
// It is a separate type with explicit JSON names so that renaming a field
// of the domain type cannot silently orphan data already on disk; the
// round-trip test fills every field of Request by reflection, so a field
// added there but forgotten here fails the tests.
//
// Times are stored in UTC; omitzero keeps unset times out of the record.
type requestRecord struct {
	ID          string `json:"id"`
	Kind        string `json:"kind,omitempty"`
	Requester   string `json:"requester,omitempty"`
	ChannelID   string `json:"channel_id,omitempty"`
	ResponseURL string `json:"response_url,omitempty"`
	MessageTS   string `json:"message_ts,omitempty"`

	InstanceType string        `json:"instance_type,omitempty"`
	ImageRef     string        `json:"image_ref,omitempty"`
	ImageID      string        `json:"image_id,omitempty"`
	ImageName    string        `json:"image_name,omitempty"`
	ImageRoot    string        `json:"image_root,omitempty"`
	Name         string        `json:"name,omitempty"`
	Reason       string        `json:"reason,omitempty"`
	Lease        time.Duration `json:"lease_ns,omitempty"` // nanoseconds

	VCPUs        int32   `json:"vcpus,omitempty"`
	MemoryMiB    int64   `json:"memory_mib,omitempty"`
	PricePerHour float64 `json:"price_per_hour,omitempty"`
	PriceKnown   bool    `json:"price_known,omitempty"`

	State             computebot.RequestState `json:"state"`
	AutoApproved      bool                    `json:"auto_approved,omitempty"`
	DecidedBy         string                  `json:"decided_by,omitempty"`
	DecidedAt         time.Time               `json:"decided_at,omitzero"`
	CreatedAt         time.Time               `json:"created_at,omitzero"`
	ApprovalExpiresAt time.Time               `json:"approval_expires_at,omitzero"`
	UpdatedAt         time.Time               `json:"updated_at,omitzero"`

	InstanceID string `json:"instance_id,omitempty"`
	PublicIP   string `json:"public_ip,omitempty"`
	PrivateIP  string `json:"private_ip,omitempty"`
	Failure    string `json:"failure,omitempty"`

	Function string `json:"function,omitempty"`
	Payload  string `json:"payload,omitempty"`
	Async    bool   `json:"async,omitempty"`
}

func toRequestRecord(r *computebot.Request) requestRecord {
	return requestRecord{
		ID:                r.ID,
		Kind:              string(r.Kind),
		Function:          r.Function,
		Payload:           r.Payload,
		Async:             r.Async,
		Requester:         r.Requester,
		ChannelID:         r.ChannelID,
		ResponseURL:       r.ResponseURL,
		MessageTS:         r.MessageTS,
		InstanceType:      r.InstanceType,
		ImageRef:          r.ImageRef,
		ImageID:           r.ImageID,
		ImageName:         r.ImageName,
		ImageRoot:         r.ImageRoot,
		Name:              r.Name,
		Reason:            r.Reason,
		Lease:             r.Lease,
		VCPUs:             r.VCPUs,
		MemoryMiB:         r.MemoryMiB,
		PricePerHour:      r.PricePerHour,
		PriceKnown:        r.PriceKnown,
		State:             r.State,
		AutoApproved:      r.AutoApproved,
		DecidedBy:         r.DecidedBy,
		DecidedAt:         r.DecidedAt.UTC(),
		CreatedAt:         r.CreatedAt.UTC(),
		ApprovalExpiresAt: r.ApprovalExpiresAt.UTC(),
		UpdatedAt:         r.UpdatedAt.UTC(),
		InstanceID:        r.InstanceID,
		PublicIP:          r.PublicIP,
		PrivateIP:         r.PrivateIP,
		Failure:           r.Failure,
	}
}

func (rec *requestRecord) request() *computebot.Request {
	return &computebot.Request{
		ID:                rec.ID,
		Kind:              computebot.RequestKind(rec.Kind),
		Function:          rec.Function,
		Payload:           rec.Payload,
		Async:             rec.Async,
		Requester:         rec.Requester,
		ChannelID:         rec.ChannelID,
		ResponseURL:       rec.ResponseURL,
		MessageTS:         rec.MessageTS,
		InstanceType:      rec.InstanceType,
		ImageRef:          rec.ImageRef,
		ImageID:           rec.ImageID,
		ImageName:         rec.ImageName,
		ImageRoot:         rec.ImageRoot,
		Name:              rec.Name,
		Reason:            rec.Reason,
		Lease:             rec.Lease,
		VCPUs:             rec.VCPUs,
		MemoryMiB:         rec.MemoryMiB,
		PricePerHour:      rec.PricePerHour,
		PriceKnown:        rec.PriceKnown,
		State:             rec.State,
		AutoApproved:      rec.AutoApproved,
		DecidedBy:         rec.DecidedBy,
		DecidedAt:         rec.DecidedAt,
		CreatedAt:         rec.CreatedAt,
		ApprovalExpiresAt: rec.ApprovalExpiresAt,
		UpdatedAt:         rec.UpdatedAt,
		InstanceID:        rec.InstanceID,
		PublicIP:          rec.PublicIP,
		PrivateIP:         rec.PrivateIP,
		Failure:           rec.Failure,
	}
}

// auditRecord is the stored form of a computebot.AuditEntry (schema 1).
type auditRecord struct {
	Time      time.Time `json:"time,omitzero"`
	Actor     string    `json:"actor,omitempty"`
	Action    string    `json:"action,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Target    string    `json:"target,omitempty"`
	Result    string    `json:"result,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

func toAuditRecord(e computebot.AuditEntry) auditRecord {
	return auditRecord{
		Time:      e.Time.UTC(),
		Actor:     e.Actor,
		Action:    e.Action,
		RequestID: e.RequestID,
		Target:    e.Target,
		Result:    e.Result,
		Detail:    e.Detail,
	}
}

func (rec *auditRecord) entry() computebot.AuditEntry {
	return computebot.AuditEntry{
		Time:      rec.Time,
		Actor:     rec.Actor,
		Action:    rec.Action,
		RequestID: rec.RequestID,
		Target:    rec.Target,
		Result:    rec.Result,
		Detail:    rec.Detail,
	}
}
