package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
)

// table is one bucket of versioned records of the domain type T (requests,
// intents): create-if-absent, read, the compare-and-set update, listing and
// pruning, written once for every kind of record. Records are JSON objects
// with a "version" field; the domain value's header (ID, Version and its
// two times) is reached through fields.
type table[T any] struct {
	db     *DB
	bucket []byte
	what   string // "request", "intent": for errors and logs
	fields func(*T) header
	encode func(*T) ([]byte, error)
	decode func([]byte) (*T, error)
}

// header points at the fields of a record every table manages.
type header struct {
	id               *string
	version          *int64
	created, updated *time.Time
}

// create stores v with Version 1 and, when zero, CreatedAt and UpdatedAt
// now (on v too, so the caller sees what was stored). When a record with
// v's ID exists, nothing is written and it returns the stored record with
// an error wrapping computebot.ErrExists; of concurrent creates of one ID
// exactly one succeeds. v is durable when create returns.
func (t table[T]) create(ctx context.Context, v *T) (*T, error) {
	h := t.fields(v)
	if !validID(*h.id) {
		return nil, fmt.Errorf("store: create %s: invalid ID %.40q", t.what, *h.id)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: create %s %s: %w", t.what, *h.id, err)
	}
	now := time.Now().UTC()
	for _, tm := range []*time.Time{h.created, h.updated} {
		if tm.IsZero() {
			*tm = now
		}
	}
	*h.version = 1
	// Encoded here, not in the transaction: JSON work then runs in the
	// callers in parallel, not serially under bbolt's write lock.
	val, err := t.encode(v)
	if err != nil {
		return nil, fmt.Errorf("store: create %s %s: %w", t.what, *h.id, err)
	}
	key := []byte(*h.id)
	var existing []byte
	err = t.db.write(func(tx *bolt.Tx) error {
		existing = nil // a rerun decides afresh
		b := tx.Bucket(t.bucket)
		if cur := b.Get(key); cur != nil {
			existing = append([]byte(nil), cur...) // cur lives only as long as tx
			return nil                             // a refusal, not an error: see DB.write
		}
		return b.Put(key, val)
	})
	if err != nil {
		return nil, fmt.Errorf("store: create %s %s: %w", t.what, *h.id, err)
	}
	if existing != nil {
		stored, err := t.decode(existing)
		if err != nil {
			return nil, fmt.Errorf("store: create %s %s: stored record: %w", t.what, *h.id, err)
		}
		return stored, fmt.Errorf("store: create %s %s: %w", t.what, *h.id, computebot.ErrExists)
	}
	return v, nil
}

// get returns a fresh copy of the record; the error wraps
// computebot.ErrNotFound when there is none.
func (t table[T]) get(ctx context.Context, id string) (*T, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: get %s %s: %w", t.what, id, err)
	}
	v, err := t.read(id)
	if err != nil {
		return nil, fmt.Errorf("store: get %s %s: %w", t.what, id, err)
	}
	return v, nil
}

func (t table[T]) read(id string) (*T, error) {
	var v *T
	err := t.db.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(t.bucket).Get([]byte(id))
		if raw == nil {
			return computebot.ErrNotFound
		}
		var err error
		v, err = t.decode(raw) // decode copies out of raw, which lives only as long as tx
		return err
	})
	return v, err
}

// update is the compare-and-set of computebot.Store.UpdateRequest: it
// reads the record, calls fn on a copy, and saves the copy with Version one
// more and UpdatedAt now, only if the stored Version is still the one read;
// otherwise (another update won) it reads again and calls fn again. fn's
// error aborts and is returned unwrapped; fn must not change the ID, and
// the Version it leaves is ignored. fn runs outside any transaction (the
// version check makes that safe), so a slow fn delays no other writer.
func (t table[T]) update(ctx context.Context, id string, fn func(*T) error) (*T, error) {
	key := []byte(id)
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("store: update %s %s: %w", t.what, id, err)
		}
		if attempt > maxAttempts {
			return nil, fmt.Errorf("store: update %s %s: lost the race %d times: %w", t.what, id, maxAttempts, computebot.ErrConflict)
		}
		v, err := t.read(id)
		if err != nil {
			return nil, fmt.Errorf("store: update %s %s: %w", t.what, id, err)
		}
		h := t.fields(v)
		read := *h.version
		if err := fn(v); err != nil {
			return nil, err
		}
		if *h.id != id {
			return nil, fmt.Errorf("store: update %s %s: fn changed the ID to %q", t.what, id, *h.id)
		}
		*h.version, *h.updated = read+1, time.Now().UTC()
		val, err := t.encode(v)
		if err != nil {
			return nil, fmt.Errorf("store: update %s %s: %w", t.what, id, err)
		}
		lost := false
		err = t.db.write(func(tx *bolt.Tx) error {
			lost = false // a rerun decides afresh
			b := tx.Bucket(t.bucket)
			cur := b.Get(key)
			if cur == nil {
				return computebot.ErrNotFound
			}
			stored, err := storedVersion(cur)
			if err != nil {
				return err
			}
			if stored != read {
				lost = true
				return nil // a refusal, not an error: see DB.write
			}
			return b.Put(key, val)
		})
		if err == nil && lost {
			t.db.log.Debug("record changed concurrently; deciding again", t.what, id, "attempt", attempt)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: update %s %s: %w", t.what, id, err)
		}
		return v, nil
	}
}

// storedVersion decodes only the version of a stored record.
func storedVersion(v []byte) (int64, error) {
	var rec struct {
		Version int64 `json:"version"`
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return 0, fmt.Errorf("decode: %w", err)
	}
	return rec.Version, nil
}

// list returns the records keep accepts, oldest first: by CreatedAt, then
// by ID, so that the order is stable.
func (t table[T]) list(ctx context.Context, keep func(*T) bool) ([]*T, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list %ss: %w", t.what, err)
	}
	var out []*T
	err := t.db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(t.bucket).ForEach(func(k, raw []byte) error {
			v, err := t.decode(raw)
			if err != nil {
				return fmt.Errorf("%s %s: %w", t.what, k, err)
			}
			if keep(v) {
				out = append(out, v)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list %ss: %w", t.what, err)
	}
	slices.SortFunc(out, func(a, b *T) int {
		ha, hb := t.fields(a), t.fields(b)
		if c := ha.created.Compare(*hb.created); c != 0 {
			return c
		}
		return strings.Compare(*ha.id, *hb.id)
	})
	return out, nil
}

// prune deletes the records drop selects (drop sees each twice: in the
// scan and again before its delete) and returns how many it deleted. A
// record that does not decode is kept.
func (t table[T]) prune(ctx context.Context, drop func(*T) bool) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: prune %ss: %w", t.what, err)
	}
	// The scan runs in a read transaction, beside the writers: a write
	// transaction scanning the whole bucket would hold up every accept
	// (each waits for its own commit before its ack). Only the deletes
	// take the write lock, each candidate checked again there.
	var doomed [][]byte
	err := t.db.view(func(tx *bolt.Tx) error {
		doomed = doomed[:0]
		return tx.Bucket(t.bucket).ForEach(func(k, raw []byte) error {
			if v, err := t.decode(raw); err == nil && drop(v) {
				doomed = append(doomed, append([]byte(nil), k...))
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune %ss: %w", t.what, err)
	}
	var n int
	for batch := range slices.Chunk(doomed, pruneBatch) {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("store: prune %ss: %w", t.what, err)
		}
		var deleted int
		err := t.db.write(func(tx *bolt.Tx) error {
			deleted = 0 // a rerun decides afresh
			b := tx.Bucket(t.bucket)
			for _, k := range batch {
				raw := b.Get(k)
				if raw == nil {
					continue
				}
				if v, err := t.decode(raw); err != nil || !drop(v) {
					continue // changed since the scan
				}
				if err := b.Delete(k); err != nil {
					return err
				}
				deleted++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("store: prune %ss: %w", t.what, err)
		}
		n += deleted
	}
	return n, nil
}

// pruneBatch bounds the deletes of one prune transaction, so that one
// never holds the write lock for long.
const pruneBatch = 100
