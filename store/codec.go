package store

import (
	"encoding/json"
	"fmt"

	"github.com/computebot/computebot"
)

// The stored JSON forms of requests, intents and audit entries, for the
// other implementation of computebot.Store (aws/dynamostore): both keep
// the same records, so `computebot store migrate` copies them as they are
// and a field added to a domain type is added to both stores at once.

// EncodeRequest is the stored form of r.
func EncodeRequest(r *computebot.Request) ([]byte, error) { return json.Marshal(toRequestRecord(r)) }

// DecodeRequest reads a stored request.
func DecodeRequest(b []byte) (*computebot.Request, error) { return decodeRequest(b) }

// EncodeIntent is the stored form of in.
func EncodeIntent(in *computebot.Intent) ([]byte, error) { return json.Marshal(toIntentRecord(in)) }

// DecodeIntent reads a stored intent.
func DecodeIntent(b []byte) (*computebot.Intent, error) {
	var rec intentRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return rec.intent(), nil
}

// EncodeAudit is the stored form of e.
func EncodeAudit(e computebot.AuditEntry) ([]byte, error) { return json.Marshal(toAuditRecord(e)) }

// DecodeAudit reads a stored audit entry.
func DecodeAudit(b []byte) (computebot.AuditEntry, error) {
	var rec auditRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return computebot.AuditEntry{}, fmt.Errorf("decode: %w", err)
	}
	return rec.entry(), nil
}
