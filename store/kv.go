package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
)

// The key/value API holds small state that does not deserve its own schema
// (caches, de-duplication markers, schedules' last runs…). Values are JSON.
// Each named bucket is a nested bucket under "kv", created on first write,
// so callers cannot collide with the request and audit buckets.

// Get decodes the value stored under key in bucket into v (as
// json.Unmarshal does). The error wraps computebot.ErrNotFound when the
// bucket or the key does not exist.
func (db *DB) Get(ctx context.Context, bucket, key string, v any) error {
	if err := checkKV(ctx, bucket, key); err != nil {
		return fmt.Errorf("store: get %s/%s: %w", bucket, key, err)
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
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

// Put stores v (JSON-encoded) under key in bucket, replacing any value.
func (db *DB) Put(ctx context.Context, bucket, key string, v any) error {
	return db.put(ctx, "put", bucket, key, v, true)
}

// Create stores v under key in bucket only if the key is absent; otherwise
// the error wraps computebot.ErrExists and the stored value is unchanged.
// The check and the write are one transaction, so of concurrent Creates of
// the same key exactly one succeeds: the building block for "first time
// we see this envelope ID" de-duplication.
func (db *DB) Create(ctx context.Context, bucket, key string, v any) error {
	return db.put(ctx, "create", bucket, key, v, false)
}

func (db *DB) put(ctx context.Context, verb, bucket, key string, v any, replace bool) error {
	if err := checkKV(ctx, bucket, key); err != nil {
		return fmt.Errorf("store: %s %s/%s: %w", verb, bucket, key, err)
	}
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: %s %s/%s: %w", verb, bucket, key, err)
	}
	err = db.w.do(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(kvBucket).CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		if !replace && b.Get([]byte(key)) != nil {
			return computebot.ErrExists
		}
		return b.Put([]byte(key), val)
	})
	if err != nil {
		return fmt.Errorf("store: %s %s/%s: %w", verb, bucket, key, err)
	}
	return nil
}

// Delete removes key from bucket. Deleting an absent key is not an error,
// so that cleanups can be retried.
func (db *DB) Delete(ctx context.Context, bucket, key string) error {
	if err := checkKV(ctx, bucket, key); err != nil {
		return fmt.Errorf("store: delete %s/%s: %w", bucket, key, err)
	}
	err := db.w.do(func(tx *bolt.Tx) error {
		b := tx.Bucket(kvBucket).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("store: delete %s/%s: %w", bucket, key, err)
	}
	return nil
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
	err := db.bolt.View(func(tx *bolt.Tx) error {
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
