package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
)

// The key/value API holds small state that does not deserve its own schema
// (caches, de-duplication markers, schedules' last runs…). Values are JSON.
// Each named bucket is a nested bucket under "kv", created on first write,
// so callers cannot collide with the request and audit buckets. Every
// write is durable when it returns (see the package doc).

// Get decodes the value stored under key in bucket into v (as
// json.Unmarshal does). The error wraps computebot.ErrNotFound when the
// bucket or the key does not exist.
func (db *DB) Get(ctx context.Context, bucket, key string, v any) error {
	if err := checkKV(ctx, bucket, key); err != nil {
		return fmt.Errorf("store: get %s/%s: %w", bucket, key, err)
	}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(kvBucket).Bucket([]byte(bucket))
		if b == nil {
			return computebot.ErrNotFound
		}
		val := b.Get([]byte(key))
		if val == nil {
			return computebot.ErrNotFound
		}
		// Unmarshal inside the transaction: val is only valid until it ends.
		return json.Unmarshal(val, v)
	})
	if err != nil {
		return fmt.Errorf("store: get %s/%s: %w", bucket, key, err)
	}
	return nil
}

// There is no blind Put or Delete: a read-modify-write through Get and a
// Put would lose whatever was written in between. Update is the one way to
// write a value, and (with computebot.ErrDeleteKey) to delete one.

// Update is a compare-and-set on one key: a read-modify-write that no
// concurrent write can slip into. v must be a non-nil pointer. Update sets
// *v to its zero value, decodes the stored value into v when the key
// exists (found is true), calls fn(found), then stores v, JSON-encoded, in
// place of the value it read, provided that value is still the stored one;
// when it is not (a concurrent write won), it starts over, zeroing and
// decoding again. So fn sees the latest value; and it may run more than
// once, so it must decide from v alone and do nothing but change v.
//
// When fn returns computebot.ErrDeleteKey (or an error wrapping it), the
// key is deleted instead (if present) and Update returns nil: a
// conditional delete. Any other error from fn aborts (nothing is written)
// and is returned unchanged, unwrapped. A missing bucket is a missing key
// (found is false); storing creates it.
//
// fn runs outside any transaction, and no lock held by this process makes
// Update correct: the compare on the stored value does, as a conditional
// write would in a shared store. When v encodes to exactly the value read,
// nothing is written (the result is the same).
func (db *DB) Update(ctx context.Context, bucket, key string, v any, fn func(found bool) error) error {
	if err := checkKV(ctx, bucket, key); err != nil {
		return fmt.Errorf("store: update %s/%s: %w", bucket, key, err)
	}
	pv := reflect.ValueOf(v)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return fmt.Errorf("store: update %s/%s: v must be a non-nil pointer, not %T", bucket, key, v)
	}
	bname, k := []byte(bucket), []byte(key)
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: update %s/%s: %w", bucket, key, err)
		}
		if attempt > maxAttempts {
			return fmt.Errorf("store: update %s/%s: lost the race %d times: %w", bucket, key, maxAttempts, computebot.ErrConflict)
		}
		var read []byte // a copy of the stored value; nil when absent
		err := db.view(func(tx *bolt.Tx) error {
			if b := tx.Bucket(kvBucket).Bucket(bname); b != nil {
				if val := b.Get(k); val != nil {
					read = bytes.Clone(val)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: update %s/%s: %w", bucket, key, err)
		}
		found := read != nil
		change, err := DecideKV(read, found, v, fn)
		switch {
		case errors.Is(err, ErrKVValue):
			return fmt.Errorf("store: update %s/%s: %w", bucket, key, err)
		case err != nil:
			return err // fn's, unchanged
		case change.Unchanged:
			return nil
		}
		del, val := change.Delete, change.Value
		lost := false
		err = db.write(func(tx *bolt.Tx) error {
			lost = false // a rerun decides afresh
			kv := tx.Bucket(kvBucket)
			b := kv.Bucket(bname)
			var cur []byte
			if b != nil {
				cur = b.Get(k)
			}
			if (cur != nil) != found || !bytes.Equal(cur, read) {
				lost = true
				return nil // see DB.write
			}
			if del {
				return b.Delete(k) // found, so b exists
			}
			b, err := kv.CreateBucketIfNotExists(bname)
			if err != nil {
				return err
			}
			return b.Put(k, val)
		})
		if err == nil && lost {
			db.log.Debug("key changed concurrently; deciding again", "bucket", bucket, "key", key, "attempt", attempt)
			continue
		}
		if err != nil {
			return fmt.Errorf("store: update %s/%s: %w", bucket, key, err)
		}
		return nil
	}
}

// checkKV rejects what bbolt would reject mid-transaction (empty names,
// oversized keys), so that a write never fails after touching the
// transaction, and honours ctx before any work starts.
func checkKV(ctx context.Context, bucket, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case bucket == "":
		return errors.New("empty bucket name")
	case key == "":
		return errors.New("empty key")
	case len(bucket) > bolt.MaxKeySize || len(key) > bolt.MaxKeySize:
		return errors.New("bucket name or key too long")
	}
	return nil
}

// List calls fn with the key and the raw JSON value of every entry in
// bucket, in key order; a missing bucket has no entries. raw is only valid
// during the call (decode it, or copy it); fn must not write to the store.
// An error from fn stops the listing and is returned unchanged.
func (db *DB) List(ctx context.Context, bucket string, fn func(key string, raw []byte) error) error {
	if err := checkKV(ctx, bucket, "-"); err != nil {
		return fmt.Errorf("store: list %s: %w", bucket, err)
	}
	var fnErr error
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(kvBucket).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		n := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil { // a nested bucket, never created by this API
				continue
			}
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := fn(string(k), v); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("store: list %s: %w", bucket, err)
	}
	return nil
}

// Buckets lists the key/value buckets that exist, in name order (for
// `computebot store migrate`, which copies them all).
func (db *DB) Buckets(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list buckets: %w", err)
	}
	var names []string
	err := db.view(func(tx *bolt.Tx) error {
		kv := tx.Bucket(kvBucket)
		if kv == nil {
			return nil // a file opened read-only that never had one
		}
		return kv.ForEach(func(k, v []byte) error {
			if v == nil {
				names = append(names, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list buckets: %w", err)
	}
	return names, nil
}
