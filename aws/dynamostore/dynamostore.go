// Package dynamostore implements computebot.Store and the idle
// scheduler's key/value API on one DynamoDB table, so that several bot
// replicas share their state: no server to run, IAM instead of passwords.
// It is chosen with store.dynamodb.table in the config; the bbolt file
// (package store) stays the default for one replica.
//
// # Design
//
// Every write is a single-item conditional write: PutItem or DeleteItem
// with a ConditionExpression on the item's version (records) or on its
// stored value (key/value entries). No transactions: they cost twice the
// write units, and the design needs none, because every compare-and-set
// of the bot is on one item. The same contracts as the bbolt store hold
// (see computebot.Store): create-if-absent, compare-and-set updates whose
// function may run again after a lost race, and listings in creation
// order. Every read is strongly consistent, so a replica reads what
// another one wrote a moment ago (an approval is single-use, a quota
// count sees the launch just approved elsewhere).
//
// # Items
//
// One table, partition key pk and sort key sk (both strings), a TTL
// attribute expires_at (epoch seconds):
//
//	pk                       sk               what
//	request#<id>             request          a request: v (version), data (the JSON record, as package store writes it)
//	intent#<id>              intent           an intent (envelope de-duplication too): v, data, expires_at once done
//	open#request             <id>             a request not in a terminal state (written before it, deleted after)
//	open#intent              <id>             an intent not done (idem)
//	message#<channel>#<ts>   request          the request whose message that is: id
//	audit#<YYYY-MM-DD>       <time>#<random>  one audit entry, by its UTC day: data
//	kv#<bucket>              <key>            a key/value entry (idle notices, leases): data
//	meta                     schema           schema_version
//
// Listing the requests of given states, or the unfinished intents, is a
// strongly consistent Query of its open# partition and a consistent
// BatchGetItem of the items it names: it costs what is open, not the whole
// history. A marker goes in before its item and out after the item's
// terminal write, so an open item always has its marker; a marker whose
// item is closed (a crash between the two writes) is removed by the
// listing that finds it.
//
// TTL: DynamoDB deletes expired items lazily (up to days later), so reads
// check expires_at themselves and never rely on TTL for correctness. Done
// intents expire after Options.KeepDone (Slack redelivers for minutes);
// PruneIntents has nothing to do.
package dynamostore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/store"
)

// SchemaVersion is the item format this package writes (meta/schema).
const SchemaVersion = 1

// Attribute names.
const (
	attrPK      = "pk"
	attrSK      = "sk"
	attrVersion = "v"
	attrData    = "data"
	attrID      = "id"
	attrCreated = "created_ms" // of an open# marker: when it was written (cleanup only)
	// AttrExpires is the table's TTL attribute (epoch seconds).
	AttrExpires = "expires_at"
	attrSchema  = "schema_version"
)

// Defaults for Options' zero values.
const (
	DefaultCallTimeout = 5 * time.Second
	DefaultKeepDone    = 24 * time.Hour
)

// maxAttempts bounds the read–decide–write rounds of an update, as in
// package store: every lost race means another writer won.
const maxAttempts = 100

// orphanMarkerAge is how old a marker whose item does not exist must be
// before a listing removes it: younger, its item may be being written.
const orphanMarkerAge = 10 * time.Minute

// API is the part of the DynamoDB client the store uses (*dynamodb.Client).
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Options configure a Store.
type Options struct {
	Table string // required
	// CallTimeout bounds each DynamoDB call, the SDK's retries included.
	CallTimeout time.Duration
	// KeepDone is how long a done intent is kept (its envelope recognised
	// on redelivery, its ack answer sent again).
	KeepDone time.Duration
	Logger   *slog.Logger     // nil discards
	Now      func() time.Time // time.Now when nil
	// OnCall, when set, is called after each DynamoDB call with its
	// operation ("GetItem"…), its error, and the capacity units it
	// consumed as DynamoDB bills them on demand (read request units for
	// reads, write request units for writes), estimated from the items'
	// sizes: strongly consistent reads cost 1 per 4 KB, writes 1 per
	// 1 KB, each at least 1. Metrics and the cost figures use it.
	OnCall func(op string, units float64, err error)
}

// Store is computebot.Store and the key/value API on one DynamoDB table.
// It is safe for concurrent use, by any number of processes.
type Store struct {
	api         API
	table       string
	callTimeout time.Duration
	keepDone    time.Duration
	log         *slog.Logger
	now         func() time.Time
	onCall      func(op string, units float64, err error)
}

var _ computebot.Store = (*Store)(nil)

// New returns a store on the table, through api. It makes no call: Open
// checks the table.
func New(api API, opts Options) (*Store, error) {
	if opts.Table == "" {
		return nil, errors.New("dynamostore: no table name")
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.KeepDone <= 0 {
		opts.KeepDone = DefaultKeepDone
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OnCall == nil {
		opts.OnCall = func(string, float64, error) {}
	}
	return &Store{api: api, table: opts.Table, callTimeout: opts.CallTimeout, keepDone: opts.KeepDone,
		log: opts.Logger.With("component", "dynamodb", "table", opts.Table), now: opts.Now, onCall: opts.OnCall}, nil
}

// Open returns a store on the table after checking its schema item: a
// table written by a newer computebot is refused; a table without one
// (just created) gets it. The bot never creates tables: `computebot store
// init` does.
func Open(ctx context.Context, api API, opts Options) (*Store, error) {
	s, err := New(api, opts)
	if err != nil {
		return nil, err
	}
	if err := s.checkSchema(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ErrNewerSchema means the table was written by a newer computebot.
var ErrNewerSchema = errors.New("schema version is newer than this computebot supports")

func (s *Store) checkSchema(ctx context.Context) error {
	item, err := s.get(ctx, "meta", "schema")
	if err != nil {
		return fmt.Errorf("dynamostore: read the schema version of table %s: %w", s.table, err)
	}
	if item == nil {
		_, err := s.put(ctx, map[string]types.AttributeValue{
			attrPK: str("meta"), attrSK: str("schema"), attrSchema: num(SchemaVersion),
		}, "attribute_not_exists(pk)", nil)
		if err != nil && !errors.Is(err, errCondition) {
			return fmt.Errorf("dynamostore: record the schema version in table %s: %w", s.table, err)
		}
		return nil
	}
	v, _ := numberOf(item[attrSchema])
	if v > SchemaVersion {
		return fmt.Errorf("dynamostore: table %s has schema %d, this computebot knows %d: %w", s.table, v, SchemaVersion, ErrNewerSchema)
	}
	return nil
}

// Close does nothing: the client holds no resources that need releasing.
func (s *Store) Close() error { return nil }

// errCondition is a conditional write that found the item otherwise.
var errCondition = errors.New("condition not met")

// ---- requests ----------------------------------------------------------

var requests = records[computebot.Request]{
	what: "request", open: "open#request",
	fields: func(r *computebot.Request) header {
		return header{id: &r.ID, version: &r.Version, created: &r.CreatedAt, updated: &r.UpdatedAt}
	},
	isOpen: func(r *computebot.Request) bool { return !r.State.Terminal() },
	encode: store.EncodeRequest,
	decode: store.DecodeRequest,
}

// CreateRequest stores r with Version 1; computebot.ErrExists when a
// request with r.ID exists.
func (s *Store) CreateRequest(ctx context.Context, r *computebot.Request) error {
	_, err := requests.create(ctx, s, r)
	return err
}

// Request returns the stored request; computebot.ErrNotFound when absent.
func (s *Store) Request(ctx context.Context, id string) (*computebot.Request, error) {
	return requests.read(ctx, s, id)
}

// UpdateRequest is the compare-and-set of computebot.Store, a conditional
// write on the version read. Setting the request's message also records
// which request that message is (RequestByMessage), before the request.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(*computebot.Request) error) (*computebot.Request, error) {
	return requests.update(ctx, s, id, fn, func(ctx context.Context, old, r *computebot.Request) error {
		if r.MessageTS == "" || (old.MessageTS == r.MessageTS && old.ChannelID == r.ChannelID) {
			return nil
		}
		_, err := s.put(ctx, map[string]types.AttributeValue{
			attrPK: str(messageKey(r.ChannelID, r.MessageTS)), attrSK: str("request"), attrID: str(r.ID),
		}, "", nil)
		return err
	})
}

func messageKey(channel, ts string) string { return "message#" + channel + "#" + ts }

// Requests lists the requests in the given states, oldest first. Open
// states are read from the open#request partition; listing terminal
// states, or all requests (no states), scans the table, which only tests
// and tools do.
func (s *Store) Requests(ctx context.Context, states ...computebot.RequestState) ([]*computebot.Request, error) {
	keep := func(r *computebot.Request) bool { return len(states) == 0 || slices.Contains(states, r.State) }
	if len(states) > 0 && !slices.ContainsFunc(states, computebot.RequestState.Terminal) {
		return requests.listOpen(ctx, s, keep)
	}
	return requests.scan(ctx, s, "request#", keep)
}

// RequestByMessage returns the request whose message is ts in channel.
func (s *Store) RequestByMessage(ctx context.Context, channel, ts string) (*computebot.Request, error) {
	if channel == "" || ts == "" {
		return nil, fmt.Errorf("dynamostore: request of message %q in %q: %w", ts, channel, computebot.ErrNotFound)
	}
	item, err := s.get(ctx, messageKey(channel, ts), "request")
	if err != nil {
		return nil, fmt.Errorf("dynamostore: request of message %s in %s: %w", ts, channel, err)
	}
	id := stringOf(item[attrID])
	if item == nil || id == "" {
		return nil, fmt.Errorf("dynamostore: request of message %s in %s: %w", ts, channel, computebot.ErrNotFound)
	}
	r, err := s.Request(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.ChannelID != channel || r.MessageTS != ts {
		// The index was written by an update that then lost its race.
		return nil, fmt.Errorf("dynamostore: request of message %s in %s: %w", ts, channel, computebot.ErrNotFound)
	}
	return r, nil
}

// ---- intents -----------------------------------------------------------

func (s *Store) intents() records[computebot.Intent] {
	return records[computebot.Intent]{
		what: "intent", open: "open#intent",
		fields: func(in *computebot.Intent) header {
			return header{id: &in.ID, version: &in.Version, created: &in.CreatedAt, updated: &in.UpdatedAt}
		},
		isOpen: func(in *computebot.Intent) bool { return in.State != computebot.IntentDone },
		encode: store.EncodeIntent,
		decode: store.DecodeIntent,
		// A done intent expires: its envelope is not redelivered any more.
		expires: func(in *computebot.Intent) time.Time {
			if in.State != computebot.IntentDone {
				return time.Time{}
			}
			return s.now().Add(s.keepDone)
		},
	}
}

// AcceptIntent stores in with Version 1; when an intent with in.ID exists
// (the envelope was delivered before, to this replica or another), it
// returns the stored one and an error wrapping computebot.ErrExists.
func (s *Store) AcceptIntent(ctx context.Context, in *computebot.Intent) (*computebot.Intent, error) {
	return s.intents().create(ctx, s, in)
}

// Intent returns the stored intent; computebot.ErrNotFound when absent or
// expired.
func (s *Store) Intent(ctx context.Context, id string) (*computebot.Intent, error) {
	return s.intents().read(ctx, s, id)
}

// UpdateIntent is the compare-and-set of UpdateRequest, for intents.
func (s *Store) UpdateIntent(ctx context.Context, id string, fn func(*computebot.Intent) error) (*computebot.Intent, error) {
	return s.intents().update(ctx, s, id, fn, nil)
}

// UnfinishedIntents lists the intents not done, oldest first.
func (s *Store) UnfinishedIntents(ctx context.Context) ([]*computebot.Intent, error) {
	return s.intents().listOpen(ctx, s, func(in *computebot.Intent) bool { return in.State != computebot.IntentDone })
}

// PruneIntents has nothing to do: done intents carry their expiry, which
// reads honour and DynamoDB's TTL deletes.
func (s *Store) PruneIntents(context.Context, time.Time) (int, error) { return 0, nil }

// ---- audit -------------------------------------------------------------

// auditTime orders entries within a day: fixed width, so that the sort
// key's byte order is time order.
const auditTime = "2006-01-02T15:04:05.000000000Z"

func auditDay(t time.Time) string { return "audit#" + t.UTC().Format(time.DateOnly) }

// Audit appends e to the audit log, under its UTC day. A zero e.Time is
// set to now.
func (s *Store) Audit(ctx context.Context, e computebot.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	data, err := store.EncodeAudit(e)
	if err != nil {
		return fmt.Errorf("dynamostore: audit %s %s: %w", e.Action, e.RequestID, err)
	}
	// The random part keeps two entries of one nanosecond apart.
	sk := e.Time.UTC().Format(auditTime) + "#" + rand.Text()[:8]
	_, err = s.put(ctx, map[string]types.AttributeValue{
		attrPK: str(auditDay(e.Time)), attrSK: str(sk), attrData: str(string(data)),
	}, "", nil)
	if err != nil {
		return fmt.Errorf("dynamostore: audit %s %s: %w", e.Action, e.RequestID, err)
	}
	return nil
}

// AuditSince returns the entries recorded at or after since, oldest
// first: one Query per day from since's to today's (and tomorrow's, for a
// clock a little ahead).
func (s *Store) AuditSince(ctx context.Context, since time.Time) ([]computebot.AuditEntry, error) {
	if since.IsZero() {
		return s.AuditLog(ctx)
	}
	day := since.UTC().Truncate(24 * time.Hour)
	last := s.now().UTC().Add(24 * time.Hour)
	if last.Sub(day) > 3660*24*time.Hour {
		return s.AuditLog(ctx) // more than ten years of days: one scan is cheaper
	}
	var out []computebot.AuditEntry
	for ; !day.After(last); day = day.Add(24 * time.Hour) {
		err := s.query(ctx, &dynamodb.QueryInput{
			KeyConditionExpression:    awssdk.String("pk = :pk AND sk >= :from"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(auditDay(day)), ":from": str(since.UTC().Format(auditTime))},
		}, func(item map[string]types.AttributeValue) error {
			e, err := store.DecodeAudit([]byte(stringOf(item[attrData])))
			if err != nil {
				return fmt.Errorf("audit entry %s: %w", stringOf(item[attrSK]), err)
			}
			out = append(out, e)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dynamostore: read audit log of %s: %w", day.Format(time.DateOnly), err)
		}
	}
	return out, nil
}

// AuditLog returns the whole audit log, oldest first. It scans the table
// (the computebot audit command, not the bot, reads it all).
func (s *Store) AuditLog(ctx context.Context) ([]computebot.AuditEntry, error) {
	type keyed struct {
		key string
		e   computebot.AuditEntry
	}
	var all []keyed
	err := s.scanPrefix(ctx, "audit#", func(item map[string]types.AttributeValue) error {
		e, err := store.DecodeAudit([]byte(stringOf(item[attrData])))
		if err != nil {
			return fmt.Errorf("audit entry %s: %w", stringOf(item[attrSK]), err)
		}
		all = append(all, keyed{stringOf(item[attrSK]), e})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dynamostore: read audit log: %w", err)
	}
	slices.SortFunc(all, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	out := make([]computebot.AuditEntry, len(all))
	for i, k := range all {
		out[i] = k.e
	}
	return out, nil
}

// ---- key/value ---------------------------------------------------------

func kvKey(bucket string) string { return "kv#" + bucket }

func checkKV(bucket, key string) error {
	switch {
	case bucket == "":
		return errors.New("empty bucket name")
	case key == "":
		return errors.New("empty key")
	case len(bucket) > 512 || len(key) > 1024:
		return errors.New("bucket name or key too long")
	}
	return nil
}

// Get decodes the value stored under key in bucket into v; the error
// wraps computebot.ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, bucket, key string, v any) error {
	if err := checkKV(bucket, key); err != nil {
		return fmt.Errorf("dynamostore: get %s/%s: %w", bucket, key, err)
	}
	item, err := s.get(ctx, kvKey(bucket), key)
	if err != nil {
		return fmt.Errorf("dynamostore: get %s/%s: %w", bucket, key, err)
	}
	if item == nil {
		return fmt.Errorf("dynamostore: get %s/%s: %w", bucket, key, computebot.ErrNotFound)
	}
	if err := json.Unmarshal([]byte(stringOf(item[attrData])), v); err != nil {
		return fmt.Errorf("dynamostore: get %s/%s: decode: %w", bucket, key, err)
	}
	return nil
}

// Update is the key/value compare-and-set of package store (see
// store.DB.Update): the write is conditioned on the value read being the
// stored one (or on the key's absence), and a lost race decides again.
// computebot.ErrDeleteKey from fn deletes the key, conditionally too.
func (s *Store) Update(ctx context.Context, bucket, key string, v any, fn func(found bool) error) error {
	if err := checkKV(bucket, key); err != nil {
		return fmt.Errorf("dynamostore: update %s/%s: %w", bucket, key, err)
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dynamostore: update %s/%s: %w", bucket, key, err)
		}
		if attempt > maxAttempts {
			return fmt.Errorf("dynamostore: update %s/%s: lost the race %d times: %w", bucket, key, maxAttempts, computebot.ErrConflict)
		}
		item, err := s.get(ctx, kvKey(bucket), key)
		if err != nil {
			return fmt.Errorf("dynamostore: update %s/%s: %w", bucket, key, err)
		}
		found := item != nil
		read := stringOf(item[attrData])
		change, err := store.DecideKV([]byte(read), found, v, fn)
		switch {
		case errors.Is(err, store.ErrKVValue):
			return fmt.Errorf("dynamostore: update %s/%s: %w", bucket, key, err)
		case err != nil:
			return err // fn's, unchanged
		case change.Unchanged:
			return nil
		}
		del, val := change.Delete, change.Value
		cond, values := "attribute_not_exists(pk)", map[string]types.AttributeValue(nil)
		if found {
			cond, values = "#d = :read", map[string]types.AttributeValue{":read": str(read)}
		}
		keyAttrs := map[string]types.AttributeValue{attrPK: str(kvKey(bucket)), attrSK: str(key)}
		if del {
			err = s.delete(ctx, keyAttrs, cond, values)
		} else {
			keyAttrs[attrData] = str(string(val))
			_, err = s.put(ctx, keyAttrs, cond, values)
		}
		if errors.Is(err, errCondition) {
			s.log.Debug("key changed concurrently; deciding again", "bucket", bucket, "key", key, "attempt", attempt)
			continue
		}
		if err != nil {
			return fmt.Errorf("dynamostore: update %s/%s: %w", bucket, key, err)
		}
		return nil
	}
}

// List calls fn with every key and raw value of bucket, in key order (one
// strongly consistent Query of the bucket's partition).
func (s *Store) List(ctx context.Context, bucket string, fn func(key string, raw []byte) error) error {
	if err := checkKV(bucket, "-"); err != nil {
		return fmt.Errorf("dynamostore: list %s: %w", bucket, err)
	}
	var fnErr error
	err := s.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    awssdk.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(kvKey(bucket))},
	}, func(item map[string]types.AttributeValue) error {
		if err := fn(stringOf(item[attrSK]), []byte(stringOf(item[attrData]))); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("dynamostore: list %s: %w", bucket, err)
	}
	return nil
}

// ---- attribute values --------------------------------------------------

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func stringOf(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func numberOf(v types.AttributeValue) (int64, bool) {
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(n.Value, 10, 64)
	return i, err == nil
}
