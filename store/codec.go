package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

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

// KVChange is what one round of a key/value compare-and-set decided.
type KVChange struct {
	Value  []byte // the JSON to store, unless Delete
	Delete bool   // fn returned computebot.ErrDeleteKey
	// Unchanged: nothing to write (deleting an absent key, or storing the
	// value that is there); the outcome is as if written when read.
	Unchanged bool
}

// ErrKVValue wraps DecideKV's own errors (v not a pointer, a stored value
// that does not decode into it, one that does not encode), to tell them
// from fn's, which it returns unchanged.
var ErrKVValue = errors.New("key/value")

// DecideKV is the decision of one round of the key/value Update both
// stores implement (see DB.Update): it zeroes *v, decodes read into it
// when found, calls fn(found), and says what to write. An error from fn
// other than computebot.ErrDeleteKey is returned unchanged; DecideKV's own
// wrap ErrKVValue. v must be a non-nil pointer.
func DecideKV(read []byte, found bool, v any, fn func(found bool) error) (KVChange, error) {
	pv := reflect.ValueOf(v)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return KVChange{}, fmt.Errorf("%w: v must be a non-nil pointer, not %T", ErrKVValue, v)
	}
	pv.Elem().SetZero()
	if found {
		if err := json.Unmarshal(read, v); err != nil {
			return KVChange{}, fmt.Errorf("%w: decode: %w", ErrKVValue, err)
		}
	}
	if err := fn(found); errors.Is(err, computebot.ErrDeleteKey) {
		return KVChange{Delete: true, Unchanged: !found}, nil
	} else if err != nil {
		return KVChange{}, err
	}
	val, err := json.Marshal(v)
	if err != nil {
		return KVChange{}, fmt.Errorf("%w: encode: %w", ErrKVValue, err)
	}
	return KVChange{Value: val, Unchanged: found && bytes.Equal(val, read)}, nil
}
