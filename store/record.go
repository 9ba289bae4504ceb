package store

import (
	"time"

	"github.com/computebot/computebot"
)

// requestRecord is the stored form of a computebot.Request (schema 2).
// It is a separate type with explicit JSON names so that renaming a field
// of the domain type cannot silently orphan data already on disk; the
// round-trip test fills every field of Request (nested payloads included)
// by reflection, so a field added there but forgotten here fails the tests.
//
// The kind is not stored: it follows from which payload is present, as
// Request.Kind derives it. Times are stored in UTC; omitzero keeps unset
// times out of the record, omitempty an absent payload.
type requestRecord struct {
	ID          string `json:"id"`
	Requester   string `json:"requester,omitempty"`
	ChannelID   string `json:"channel_id,omitempty"`
	ResponseURL string `json:"response_url,omitempty"`
	MessageTS   string `json:"message_ts,omitempty"`

	State string `json:"state"`
	// Version is what UpdateRequest compares before it saves; see there.
	Version           int64     `json:"version"`
	AutoApproved      bool      `json:"auto_approved,omitempty"`
	DecidedBy         string    `json:"decided_by,omitempty"`
	DecidedAt         time.Time `json:"decided_at,omitzero"`
	DecidedIn         string    `json:"decided_in,omitempty"`
	CreatedAt         time.Time `json:"created_at,omitzero"`
	ApprovalExpiresAt time.Time `json:"approval_expires_at,omitzero"`
	UpdatedAt         time.Time `json:"updated_at,omitzero"`
	Failure           string    `json:"failure,omitempty"`
	Claim             string    `json:"claim,omitempty"`

	Launch *launchRecord `json:"launch,omitempty"`
	Lambda *lambdaRecord `json:"lambda,omitempty"`
}

// launchRecord is the stored form of a computebot.LaunchRequest.
type launchRecord struct {
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

	InstanceID string `json:"instance_id,omitempty"`
	PublicIP   string `json:"public_ip,omitempty"`
	PrivateIP  string `json:"private_ip,omitempty"`

	SSHKeys  []string `json:"ssh_keys,omitempty"`
	UserData string   `json:"user_data,omitempty"`

	// The nested types are the domain's own (a conversion needs identical
	// field types); their JSON names are fixed by tags there.
	Quota           *computebot.VCPUQuota  `json:"quota,omitempty"`
	QuotaUnknown    bool                   `json:"quota_unknown,omitempty"`
	Hibernate       bool                   `json:"hibernate,omitempty"`
	NoHibernation   string                 `json:"no_hibernation,omitempty"`
	Plan            []computebot.LaunchTry `json:"plan,omitempty"`
	Try             int                    `json:"try,omitempty"`
	MaxPricePerHour float64                `json:"max_price_per_hour,omitempty"`
	MaxPriceKnown   bool                   `json:"max_price_known,omitempty"`
	Schedule        string                 `json:"schedule,omitempty"`
}

// lambdaRecord is the stored form of a computebot.LambdaRequest.
type lambdaRecord struct {
	Function string `json:"function,omitempty"`
	Payload  string `json:"payload,omitempty"`
	Async    bool   `json:"async,omitempty"`
}

func toRequestRecord(r *computebot.Request) requestRecord {
	rec := requestRecord{
		ID:                r.ID,
		Requester:         r.Requester,
		ChannelID:         r.ChannelID,
		ResponseURL:       r.ResponseURL,
		MessageTS:         r.MessageTS,
		State:             string(r.State),
		Version:           r.Version,
		AutoApproved:      r.AutoApproved,
		DecidedBy:         r.DecidedBy,
		DecidedAt:         r.DecidedAt.UTC(),
		DecidedIn:         r.DecidedIn,
		CreatedAt:         r.CreatedAt.UTC(),
		ApprovalExpiresAt: r.ApprovalExpiresAt.UTC(),
		UpdatedAt:         r.UpdatedAt.UTC(),
		Failure:           r.Failure,
		Claim:             r.Claim,
	}
	// Conversions, not field-by-field copies: Go converts between struct
	// types whose fields match (tags aside), so a field added to the
	// domain type but not to its record does not compile.
	if r.Launch != nil {
		l := launchRecord(*r.Launch)
		rec.Launch = &l
	}
	if r.Lambda != nil {
		l := lambdaRecord(*r.Lambda)
		rec.Lambda = &l
	}
	return rec
}

// request returns a new Request, sharing no memory with rec.
func (rec *requestRecord) request() *computebot.Request {
	r := &computebot.Request{
		ID:                rec.ID,
		Requester:         rec.Requester,
		ChannelID:         rec.ChannelID,
		ResponseURL:       rec.ResponseURL,
		MessageTS:         rec.MessageTS,
		State:             computebot.RequestState(rec.State),
		Version:           rec.Version,
		AutoApproved:      rec.AutoApproved,
		DecidedBy:         rec.DecidedBy,
		DecidedAt:         rec.DecidedAt,
		DecidedIn:         rec.DecidedIn,
		CreatedAt:         rec.CreatedAt,
		ApprovalExpiresAt: rec.ApprovalExpiresAt,
		UpdatedAt:         rec.UpdatedAt,
		Failure:           rec.Failure,
		Claim:             rec.Claim,
	}
	if rec.Launch != nil {
		l := computebot.LaunchRequest(*rec.Launch)
		r.Launch = &l
	}
	if rec.Lambda != nil {
		l := computebot.LambdaRequest(*rec.Lambda)
		r.Lambda = &l
	}
	return r
}

// auditRecord is the stored form of a computebot.AuditEntry (unchanged
// since schema 1).
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
	rec := auditRecord(e) // a conversion: see toRequestRecord
	rec.Time = e.Time.UTC()
	return rec
}

func (rec *auditRecord) entry() computebot.AuditEntry { return computebot.AuditEntry(*rec) }
