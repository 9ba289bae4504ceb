package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/store"
)

// Imports for `computebot store migrate`: each copies a record as it is
// (version and times kept) and is harmless to run again, so a migration
// that stopped half way is simply run once more.

// ImportRequest stores r as it is, unless a request with its ID exists
// (then it reports false).
func (s *Store) ImportRequest(ctx context.Context, r *computebot.Request) (bool, error) {
	if requests.isOpen(r) {
		if err := requests.mark(ctx, s, r.ID); err != nil {
			return false, fmt.Errorf("dynamostore: import request %s: %w", r.ID, err)
		}
	}
	if r.MessageTS != "" && r.ChannelID != "" {
		if _, err := s.put(ctx, map[string]types.AttributeValue{
			attrPK: str(messageKey(r.ChannelID, r.MessageTS)), attrSK: str("request"), attrID: str(r.ID),
		}, "", nil); err != nil {
			return false, fmt.Errorf("dynamostore: import request %s: %w", r.ID, err)
		}
	}
	return importRecord(ctx, s, requests, r)
}

// ImportIntent stores in as it is, unless an intent with its ID exists.
func (s *Store) ImportIntent(ctx context.Context, in *computebot.Intent) (bool, error) {
	t := s.intents()
	if t.isOpen(in) {
		if err := t.mark(ctx, s, in.ID); err != nil {
			return false, fmt.Errorf("dynamostore: import intent %s: %w", in.ID, err)
		}
	}
	return importRecord(ctx, s, t, in)
}

func importRecord[T any](ctx context.Context, s *Store, t records[T], v *T) (bool, error) {
	item, err := t.item(v)
	if err != nil {
		return false, err
	}
	_, err = s.put(ctx, item, "attribute_not_exists(pk)", nil)
	if errors.Is(err, errCondition) {
		return false, nil
	}
	return err == nil, err
}

// ImportAudit stores the n-th entry of the embedded log under a key of its
// own (its time and n), so that importing the log again writes the same
// items, not copies.
func (s *Store) ImportAudit(ctx context.Context, n int, e computebot.AuditEntry) error {
	data, err := store.EncodeAudit(e)
	if err != nil {
		return err
	}
	sk := e.Time.UTC().Format(auditTime) + "#migrated-" + strconv.Itoa(n)
	_, err = s.put(ctx, map[string]types.AttributeValue{
		attrPK: str(auditDay(e.Time)), attrSK: str(sk), attrData: str(string(data)),
	}, "", nil)
	if err != nil {
		return fmt.Errorf("dynamostore: import audit entry %d: %w", n, err)
	}
	return nil
}

// ImportKV stores a key/value entry as it is, unless the key exists.
func (s *Store) ImportKV(ctx context.Context, bucket, key string, raw []byte) (bool, error) {
	if err := checkKV(bucket, key); err != nil {
		return false, err
	}
	_, err := s.put(ctx, map[string]types.AttributeValue{
		attrPK: str(kvKey(bucket)), attrSK: str(key), attrData: str(string(raw)),
	}, "attribute_not_exists(pk)", nil)
	if errors.Is(err, errCondition) {
		return false, nil
	}
	return err == nil, err
}
