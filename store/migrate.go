package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// migrations[v] rewrites a file of schema v into schema v+1, inside the
// transaction that Open's init runs, so that a file is migrated wholly or
// not at all. Each returns how many records it rewrote, for the log.
var migrations = map[int]func(tx *bolt.Tx) (int, error){
	1: migrate1to2,
}

// requestRecordV1 is the request record of schema 1: flat, a launch
// request's fields and a Lambda request's side by side, with the kind
// stored ("" for a launch). It is frozen here, apart from the live
// record types, so that migrating old files keeps working however those
// change.
type requestRecordV1 struct {
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
	Lease        time.Duration `json:"lease_ns,omitempty"`

	VCPUs        int32   `json:"vcpus,omitempty"`
	MemoryMiB    int64   `json:"memory_mib,omitempty"`
	PricePerHour float64 `json:"price_per_hour,omitempty"`
	PriceKnown   bool    `json:"price_known,omitempty"`

	State             string    `json:"state"`
	AutoApproved      bool      `json:"auto_approved,omitempty"`
	DecidedBy         string    `json:"decided_by,omitempty"`
	DecidedAt         time.Time `json:"decided_at,omitzero"`
	CreatedAt         time.Time `json:"created_at,omitzero"`
	ApprovalExpiresAt time.Time `json:"approval_expires_at,omitzero"`
	UpdatedAt         time.Time `json:"updated_at,omitzero"`

	InstanceID string `json:"instance_id,omitempty"`
	PublicIP   string `json:"public_ip,omitempty"`
	PrivateIP  string `json:"private_ip,omitempty"`
	Failure    string `json:"failure,omitempty"`

	Function string `json:"function,omitempty"`
	Payload  string `json:"payload,omitempty"`
	Async    bool   `json:"async,omitempty"`

	// Schema 1 never wrote a version; decoding one anyway means a record
	// that somehow has it keeps it.
	Version int64 `json:"version,omitempty"`
}

// statesV1to2 renames the schema-1 states that changed; every other state
// is spelled the same in both.
var statesV1to2 = map[string]string{
	"launching": "executing",
	"ready":     "done",
}

// migrate1to2 rewrites every request record into the nested shape of
// schema 2: the launch or the Lambda fields move into their payload
// object, the renamed states get their new names, and Version starts at 1.
// The audit and key/value buckets did not change.
func migrate1to2(tx *bolt.Tx) (int, error) {
	b := tx.Bucket(requestsBucket)
	if b == nil {
		return 0, nil // a file that never stored a request: init creates the bucket
	}
	// Collect first, write after: bbolt does not support changing a bucket
	// while a ForEach walks it.
	type rewrite struct{ key, val []byte }
	var out []rewrite
	err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			return fmt.Errorf("request %q is a bucket, not a record", k)
		}
		var old requestRecordV1
		if err := json.Unmarshal(v, &old); err != nil {
			return fmt.Errorf("request %q: decode schema 1 record: %w", k, err)
		}
		rec, err := old.v2()
		if err != nil {
			return fmt.Errorf("request %q: %w", k, err)
		}
		val, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("request %q: encode: %w", k, err)
		}
		out = append(out, rewrite{key: append([]byte(nil), k...), val: val})
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, w := range out {
		if err := b.Put(w.key, w.val); err != nil {
			return 0, fmt.Errorf("request %q: %w", w.key, err)
		}
	}
	return len(out), nil
}

// v2 converts a schema-1 record into the current record type, which is
// schema 2's. When schema 3 changes that type, freeze a copy of it here as
// requestRecordV2 (as requestRecordV1 is frozen) and make v2 produce that,
// so that this step keeps writing exactly schema 2.
//
// v2 converts a schema-1 record. An unknown kind fails the migration (and
// so Open) rather than guess which payload the record is.
func (old *requestRecordV1) v2() (requestRecord, error) {
	state := old.State
	if s, ok := statesV1to2[state]; ok {
		state = s
	}
	version := old.Version
	if version == 0 {
		version = 1
	}
	rec := requestRecord{
		ID:                old.ID,
		Requester:         old.Requester,
		ChannelID:         old.ChannelID,
		ResponseURL:       old.ResponseURL,
		MessageTS:         old.MessageTS,
		State:             state,
		Version:           version,
		AutoApproved:      old.AutoApproved,
		DecidedBy:         old.DecidedBy,
		DecidedAt:         old.DecidedAt,
		CreatedAt:         old.CreatedAt,
		ApprovalExpiresAt: old.ApprovalExpiresAt,
		UpdatedAt:         old.UpdatedAt,
		Failure:           old.Failure,
	}
	switch old.Kind {
	case "", "launch":
		rec.Launch = &launchRecord{
			InstanceType: old.InstanceType,
			ImageRef:     old.ImageRef,
			ImageID:      old.ImageID,
			ImageName:    old.ImageName,
			ImageRoot:    old.ImageRoot,
			Name:         old.Name,
			Reason:       old.Reason,
			Lease:        old.Lease,
			VCPUs:        old.VCPUs,
			MemoryMiB:    old.MemoryMiB,
			PricePerHour: old.PricePerHour,
			PriceKnown:   old.PriceKnown,
			InstanceID:   old.InstanceID,
			PublicIP:     old.PublicIP,
			PrivateIP:    old.PrivateIP,
		}
	case "lambda":
		rec.Lambda = &lambdaRecord{
			Function: old.Function,
			Payload:  old.Payload,
			Async:    old.Async,
		}
	default:
		return requestRecord{}, fmt.Errorf("unknown request kind %q in schema 1 record", old.Kind)
	}
	return rec, nil
}
