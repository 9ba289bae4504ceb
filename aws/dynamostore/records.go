package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/computebot/computebot"
)

// records is one kind of versioned record (requests, intents): created if
// absent, read, updated by a conditional write on the version, listed by
// their open# markers. Written once for both kinds, as package store's
// table is.
type records[T any] struct {
	what   string // "request", "intent"
	open   string // the partition of the markers of open records
	fields func(*T) header
	isOpen func(*T) bool
	encode func(*T) ([]byte, error)
	decode func([]byte) (*T, error)
	// expires, when set, is the record's expiry (zero: none); a read
	// treats an expired record as absent.
	expires func(*T) time.Time
}

type header struct {
	id               *string
	version          *int64
	created, updated *time.Time
}

func (t records[T]) key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(t.what + "#" + id), attrSK: str(t.what)}
}

func (t records[T]) marker(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(t.open), attrSK: str(id)}
}

// item is v's item: key, version, data and, when it expires, expires_at.
func (t records[T]) item(v *T) (map[string]types.AttributeValue, error) {
	h := t.fields(v)
	data, err := t.encode(v)
	if err != nil {
		return nil, err
	}
	item := t.key(*h.id)
	item[attrVersion] = num(*h.version)
	item[attrData] = str(string(data))
	if t.expires != nil {
		if at := t.expires(v); !at.IsZero() {
			item[AttrExpires] = num(at.Unix())
		}
	}
	return item, nil
}

// live decodes an item; nil when it has expired.
func (t records[T]) live(s *Store, item map[string]types.AttributeValue) (*T, error) {
	if at, ok := numberOf(item[AttrExpires]); ok && at <= s.now().Unix() {
		return nil, nil
	}
	return t.decode([]byte(stringOf(item[attrData])))
}

func validID(id string) bool { return id != "" && len(id) <= 512 }

// create stores v with Version 1 and, when zero, its times now; when a
// live record with v's ID exists it returns that one and an error wrapping
// computebot.ErrExists. An open record's marker is written first.
func (t records[T]) create(ctx context.Context, s *Store, v *T) (*T, error) {
	h := t.fields(v)
	if !validID(*h.id) {
		return nil, fmt.Errorf("dynamostore: create %s: invalid ID %.40q", t.what, *h.id)
	}
	now := s.now().UTC()
	for _, tm := range []*time.Time{h.created, h.updated} {
		if tm.IsZero() {
			*tm = now
		}
	}
	*h.version = 1
	item, err := t.item(v)
	if err != nil {
		return nil, fmt.Errorf("dynamostore: create %s %s: %w", t.what, *h.id, err)
	}
	if t.isOpen(v) {
		if err := t.mark(ctx, s, *h.id); err != nil {
			return nil, fmt.Errorf("dynamostore: create %s %s: %w", t.what, *h.id, err)
		}
	}
	// An expired record (a done intent past its keep time, not deleted by
	// TTL yet) is as good as absent.
	_, err = s.put(ctx, item, "attribute_not_exists(pk) OR #e <= :now",
		map[string]types.AttributeValue{":now": num(now.Unix())})
	switch {
	case errors.Is(err, errCondition):
		stored, rerr := t.read(ctx, s, *h.id)
		if rerr != nil {
			return nil, fmt.Errorf("dynamostore: create %s %s: read the stored one: %w", t.what, *h.id, rerr)
		}
		return stored, fmt.Errorf("dynamostore: create %s %s: %w", t.what, *h.id, computebot.ErrExists)
	case err != nil:
		return nil, fmt.Errorf("dynamostore: create %s %s: %w", t.what, *h.id, err)
	}
	return v, nil
}

func (t records[T]) mark(ctx context.Context, s *Store, id string) error {
	m := t.marker(id)
	m[attrCreated] = num(s.now().UnixMilli())
	_, err := s.put(ctx, m, "", nil)
	return err
}

// read returns the stored record; computebot.ErrNotFound when absent or
// expired.
func (t records[T]) read(ctx context.Context, s *Store, id string) (*T, error) {
	v, _, err := t.readVersion(ctx, s, id)
	return v, err
}

func (t records[T]) readVersion(ctx context.Context, s *Store, id string) (*T, int64, error) {
	item, err := s.get(ctx, t.what+"#"+id, t.what)
	if err != nil {
		return nil, 0, fmt.Errorf("dynamostore: get %s %s: %w", t.what, id, err)
	}
	if item == nil {
		return nil, 0, fmt.Errorf("dynamostore: get %s %s: %w", t.what, id, computebot.ErrNotFound)
	}
	v, err := t.live(s, item)
	if err != nil {
		return nil, 0, fmt.Errorf("dynamostore: get %s %s: decode: %w", t.what, id, err)
	}
	if v == nil {
		return nil, 0, fmt.Errorf("dynamostore: get %s %s: %w", t.what, id, computebot.ErrNotFound)
	}
	ver, _ := numberOf(item[attrVersion])
	return v, ver, nil
}

// update is the compare-and-set: read, fn on the copy, write with Version
// one more only if the stored version is still the one read (else decide
// again). before, when set, runs between fn and the write, with the record
// as read and as changed (the message index). A record that closes loses
// its marker after the write.
func (t records[T]) update(ctx context.Context, s *Store, id string, fn func(*T) error,
	before func(ctx context.Context, old, v *T) error) (*T, error) {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("dynamostore: update %s %s: %w", t.what, id, err)
		}
		if attempt > maxAttempts {
			return nil, fmt.Errorf("dynamostore: update %s %s: lost the race %d times: %w", t.what, id, maxAttempts, computebot.ErrConflict)
		}
		old, read, err := t.readVersion(ctx, s, id)
		if err != nil {
			return nil, err
		}
		v, err := t.decodeCopy(old)
		if err != nil {
			return nil, fmt.Errorf("dynamostore: update %s %s: %w", t.what, id, err)
		}
		if err := fn(v); err != nil {
			return nil, err
		}
		h := t.fields(v)
		if *h.id != id {
			return nil, fmt.Errorf("dynamostore: update %s %s: fn changed the ID to %q", t.what, id, *h.id)
		}
		*h.version, *h.updated = read+1, s.now().UTC()
		wasOpen, isOpen := t.isOpen(old), t.isOpen(v)
		if !wasOpen && isOpen {
			if err := t.mark(ctx, s, id); err != nil {
				return nil, fmt.Errorf("dynamostore: update %s %s: %w", t.what, id, err)
			}
		}
		if before != nil {
			if err := before(ctx, old, v); err != nil {
				return nil, fmt.Errorf("dynamostore: update %s %s: %w", t.what, id, err)
			}
		}
		item, err := t.item(v)
		if err != nil {
			return nil, fmt.Errorf("dynamostore: update %s %s: %w", t.what, id, err)
		}
		_, err = s.put(ctx, item, "#v = :read", map[string]types.AttributeValue{":read": num(read)})
		if errors.Is(err, errCondition) {
			s.log.Debug("record changed concurrently; deciding again", t.what, id, "attempt", attempt)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dynamostore: update %s %s: %w", t.what, id, err)
		}
		if wasOpen && !isOpen {
			// Best effort: a marker left behind is removed by the next
			// listing that finds its record closed.
			if err := s.delete(ctx, t.marker(id), "", nil); err != nil {
				s.log.Warn("could not remove the open marker; the next listing does", t.what, id, "err", err)
			}
		}
		return v, nil
	}
}

// decodeCopy returns a copy of v sharing no memory with it.
func (t records[T]) decodeCopy(v *T) (*T, error) {
	data, err := t.encode(v)
	if err != nil {
		return nil, err
	}
	return t.decode(data)
}

// listOpen returns the open records keep accepts, oldest first: a
// consistent Query of the markers, then consistent BatchGetItems of the
// records. Markers of closed or (long) missing records are removed.
func (t records[T]) listOpen(ctx context.Context, s *Store, keep func(*T) bool) ([]*T, error) {
	type mark struct {
		id      string
		created int64
	}
	var marks []mark
	err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    awssdk.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(t.open)},
	}, func(item map[string]types.AttributeValue) error {
		created, _ := numberOf(item[attrCreated])
		marks = append(marks, mark{stringOf(item[attrSK]), created})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dynamostore: list open %ss: %w", t.what, err)
	}
	found := map[string]*T{}
	for chunk := range slices.Chunk(marks, 100) { // BatchGetItem's limit
		keys := make([]map[string]types.AttributeValue, len(chunk))
		for i, m := range chunk {
			keys[i] = t.key(m.id)
		}
		err := s.batchGet(ctx, keys, func(item map[string]types.AttributeValue) error {
			v, err := t.live(s, item)
			if err != nil {
				return fmt.Errorf("%s: decode: %w", stringOf(item[attrPK]), err)
			}
			if v != nil {
				found[*t.fields(v).id] = v
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dynamostore: list open %ss: %w", t.what, err)
		}
	}
	var out []*T
	for _, m := range marks {
		v, ok := found[m.id]
		switch {
		case ok && t.isOpen(v):
			if keep(v) {
				out = append(out, v)
			}
		case ok || s.now().Sub(time.UnixMilli(m.created)) > orphanMarkerAge:
			// Closed (its marker's delete was lost), or never written.
			// Only the marker read: one written since (a record created
			// again under the ID) stays.
			err := s.delete(ctx, t.marker(m.id), "#c = :c", map[string]types.AttributeValue{":c": num(m.created)})
			if err != nil && !errors.Is(err, errCondition) {
				s.log.Warn("could not remove a stale open marker", t.what, m.id, "err", err)
			}
		}
	}
	sortOldestFirst(out, t.fields)
	return out, nil
}

// scan returns every record of the kind that keep accepts, oldest first.
func (t records[T]) scan(ctx context.Context, s *Store, prefix string, keep func(*T) bool) ([]*T, error) {
	var out []*T
	err := s.scanPrefix(ctx, prefix, func(item map[string]types.AttributeValue) error {
		if stringOf(item[attrSK]) != t.what {
			return nil
		}
		v, err := t.live(s, item)
		if err != nil {
			return fmt.Errorf("%s: decode: %w", stringOf(item[attrPK]), err)
		}
		if v != nil && keep(v) {
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dynamostore: list %ss: %w", t.what, err)
	}
	sortOldestFirst(out, t.fields)
	return out, nil
}

func sortOldestFirst[T any](out []*T, fields func(*T) header) {
	slices.SortFunc(out, func(a, b *T) int {
		ha, hb := fields(a), fields(b)
		if c := ha.created.Compare(*hb.created); c != 0 {
			return c
		}
		return strings.Compare(*ha.id, *hb.id)
	})
}
