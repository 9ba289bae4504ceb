// Package store is computebot's persistence: intents (every envelope,
// stored before its ack), requests, the audit log and small key/value
// state, in one bbolt file (embedded, pure Go, no cgo, no server to run).
// It implements computebot.Store.
//
// # Durability
//
// Every write is a durable bbolt commit when its method returns: bbolt
// fsyncs each commit and NoSync is never set, so nothing the bot has acked
// or acted on can be lost to a crash of the process or of the machine.
// Concurrent writers share commits through bbolt's own group commit,
// DB.Batch: writes that arrive within a short window (maxBatchDelay) run in
// one transaction and pay for one fsync together. The bbolt file is the
// only file: there is no journal beside it any more (Open removes the empty
// one an older computebot left, and refuses to start over a non-empty one,
// which only that version can replay).
//
// # Compare-and-set
//
// Every request and intent carries a Version, 1 when created and one more
// with each saved update. UpdateRequest reads a request, lets the caller change a
// copy, and saves it only if the stored Version is still the one it read;
// on a lost race it reads again and asks the caller again. The key/value
// Update does the same on one key, comparing the stored value itself. No method relies on a lock held
// by this process for its correctness (bbolt's transactions and the checks
// inside them provide it), so the contracts are ones a shared store, such
// as DynamoDB with conditional writes (aws/dynamostore), satisfies too.
//
// # Format
//
// Values are JSON, with explicit field names independent of the Go types,
// and the file carries a schema version in the "meta" bucket: Open migrates
// a file of an older version (in one transaction), and an old binary
// refuses a newer file instead of misreading it.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the on-disk format this package writes and understands.
// Bump it, and add a migration from the previous version to migrations,
// when a stored encoding changes incompatibly.
//
// 2: requests have nested "launch"/"lambda" payloads and a "version"; the
// states "launching" and "ready" became "executing" and "done".
const SchemaVersion = 2

// DefaultTimeout is how long Open waits for the file lock by default: long
// enough to ride out a previous bot process that is still shutting down,
// short enough that a second bot on the same file fails fast and clearly.
const DefaultTimeout = 5 * time.Second

// initialMmapSize is how much of the file bbolt maps up front. When a
// commit outgrows the mapping, bbolt remaps, and a remap waits for every
// open read transaction (a listing of all requests, say) while blocking new
// ones: a stall of milliseconds. Mapping ahead avoids remaps until the file
// reaches this size (tens of thousands of requests). On Linux and macOS it
// reserves address space only (the file grows with its data); on Windows
// bbolt grows the file to this size at once.
const initialMmapSize = 64 << 20

// maxBatchDelay is how long DB.Batch holds the first write of a batch,
// waiting for others to share its commit. bbolt's default, 10 ms, would be
// added to every lone write, and CreateRequest is on the Slack ack path
// (target: ack p99 ≤ 15 ms). With no delay at all, Batch stops batching:
// writes arriving while a commit is in flight each wait for bbolt's write
// lock in a batch of their own and pay one commit each, one after the
// other, so a burst queues behind a row of fsyncs, and the slower the disk
// the longer the row. 1 ms gathers a burst into shared commits for about
// 1 ms more per lone write. Measured on a 2-core VM whose commit takes
// ~0.3 ms (bench_test.go, -benchtime 3s):
//
//	delay  lone write  200/s p50 / p99    8 writers: per op, p99
//	0      0.3 ms      0.5–0.7 / 0.9–1.1  340 µs, 3.9 ms
//	1 ms   1.5 ms      1.7–1.8 / 2.0–3.9  210 µs, 2.3 ms
//	2 ms   2.7 ms      2.7–2.8 / 3.0–3.5  350 µs, 4.3 ms
//	5 ms   5.8 ms      5.6–5.7 / 6.1–6.3  750 µs, 6.6 ms
//
// 1 ms has the best burst throughput and tail, and keeps the ack-path p99
// far under target; on a disk with slower fsyncs (a network volume), where
// commits overlap more, the grouping matters more.
const maxBatchDelay = 1 * time.Millisecond

// maxBatchSize bounds how many writes share one commit, so that one commit
// (and the wait of the writes queued behind it) stays short under a burst;
// a full batch starts at once, without waiting for maxBatchDelay.
const maxBatchSize = 128

// slowWrite is the write duration worth a warning: the Slack ack path
// waits on CreateRequest's commit, and Slack gives up on an ack after 3 s.
const slowWrite = 500 * time.Millisecond

// Errors returned by Open and by methods on a closed DB. Test with errors.Is.
var (
	// ErrLocked means another process holds the file (bbolt allows one
	// writer process per file); typically a second bot with the same
	// store.path.
	ErrLocked = errors.New("locked by another process")
	// ErrNewerSchema means the file was written by a newer computebot.
	ErrNewerSchema = errors.New("schema version is newer than this computebot supports")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store is closed")
)

// maxAttempts bounds the read–decide–save rounds of UpdateRequest and
// Update. Every lost race means another writer won, so this is never
// reached in practice; it turns a bug that livelocks into an error.
const maxAttempts = 1000

// Bucket names. Keys of user key/value buckets live under kvBucket, one
// nested bucket each, so they can never collide with the buckets here.
var (
	metaBucket     = []byte("meta")
	requestsBucket = []byte("requests")
	auditBucket    = []byte("audit")
	kvBucket       = []byte("kv")
	intentsBucket  = []byte("intents")

	schemaVersionKey = []byte("schema_version")
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Timeout is how long to wait for the file lock; DefaultTimeout when
	// zero or negative (bbolt's own zero, "wait forever", would make a
	// second bot hang silently instead of saying why it cannot start).
	Timeout time.Duration
	// Logger receives open/close, migration and slow-write messages;
	// slog.Default() when nil.
	Logger *slog.Logger
	// ReadOnly opens an existing file to read it (the audit command): it
	// takes a shared lock (so it still waits for a running bot, which
	// holds the file exclusively), creates and migrates nothing, and
	// every write fails. A file of an older schema opens as it is; of the
	// reads, only the audit log's is meant for such a file.
	ReadOnly bool
}

// DB is an open store. It is safe for concurrent use. Reads run in
// parallel with each other and with writes; bbolt runs one write
// transaction at a time, and concurrent writes share one (see the package
// doc).
type DB struct {
	bolt *bolt.DB
	path string
	log  *slog.Logger

	// mu orders writes against Close, and only that: a write holds it
	// shared while it commits, Close exclusively, so Close waits for the
	// writes under way and every write after it returns ErrClosed instead
	// of a bbolt error. The data's consistency never depends on it.
	mu     sync.RWMutex
	closed bool

	closeOnce sync.Once
	closeErr  error
}

var _ computebot.Store = (*DB)(nil)

// Open opens or creates the store at path (creating missing parent
// directories, mode 0700; the file is 0600 because requests carry Slack
// response URLs, which let anyone holding one post into the channel).
//
// A file of an older schema is migrated to SchemaVersion in one
// transaction before Open returns; from then on older computebot binaries
// refuse it with ErrNewerSchema.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if dir := filepath.Dir(path); dir != "" && !opts.ReadOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.Timeout,
		ReadOnly:        opts.ReadOnly,
		InitialMmapSize: initialMmapSize,
		// NoSync stays false: every commit is fsynced before it returns.
		// NoFreelistSync and the hashmap freelist measured no better here
		// (the freelist of a file this small is a page or two), and
		// NoFreelistSync would make every Open scan the whole file.
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store: %s is %w (waited %s; is another computebot running with the same store.path?)",
				path, ErrLocked, opts.Timeout)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Set before any Batch call, as bbolt requires.
	b.MaxBatchDelay = maxBatchDelay
	b.MaxBatchSize = maxBatchSize
	db := &DB{bolt: b, path: path, log: opts.Logger.With("store", path)}
	if opts.ReadOnly {
		if err := db.checkSchema(); err != nil {
			_ = b.Close()
			return nil, err
		}
		return db, nil
	}
	// Under the lock, so never while an older bot still writes its
	// journal; and before init migrates the file, which that older
	// version could then no longer open.
	if err := db.removeOldJournal(); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.init(); err != nil {
		_ = b.Close()
		return nil, err
	}
	db.log.Debug("store opened", "schema_version", SchemaVersion)
	return db, nil
}

// oldJournalSuffixes name the write-ahead journal that computebot kept
// beside the store, up to schema 1, for requests accepted but not yet
// committed to bbolt.
var oldJournalSuffixes = []string{".journal", ".journal.1"}

// removeOldJournal deletes the empty journal files a previous computebot
// left, and refuses to go on when one is not empty: it may hold requests
// whose creation was acked but that only that version can replay, and
// this one must not lose them silently.
func (db *DB) removeOldJournal() error {
	for _, suffix := range oldJournalSuffixes {
		p := db.path + suffix
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check for an old journal: %w", err)
		}
		if fi.Size() > 0 {
			return fmt.Errorf("%s holds requests that the previous computebot accepted but had not committed "+
				"when it stopped; start that version once more to commit them (it empties the file), "+
				"or delete the file to drop them", p)
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("remove the old, empty journal: %w", err)
		}
		db.log.Info("store: removed the old, empty journal file", "file", p)
	}
	return nil
}

// init creates the buckets and checks (on a new file, writes; on an older
// one, migrates) the schema version, all in one transaction.
// checkSchema refuses, for a read-only open, a file written by a newer
// computebot (whose records this one may misread).
func (db *DB) checkSchema() error {
	err := db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			return nil // never opened by a bot: empty
		}
		v := meta.Get(schemaVersionKey)
		if v == nil {
			return nil
		}
		version, err := strconv.Atoi(string(v))
		switch {
		case err != nil || version < 1:
			return fmt.Errorf("invalid schema version %q in meta bucket", v)
		case version > SchemaVersion:
			return fmt.Errorf("%w: file has version %d, this computebot understands up to %d; upgrade computebot",
				ErrNewerSchema, version, SchemaVersion)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	return nil
}

func (db *DB) init() error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		version := 0
		if v := meta.Get(schemaVersionKey); v != nil {
			version, err = strconv.Atoi(string(v))
			if err != nil || version < 1 {
				return fmt.Errorf("invalid schema version %q in meta bucket", v)
			}
		}
		switch {
		case version > SchemaVersion:
			return fmt.Errorf("%w: file has version %d, this computebot understands up to %d; upgrade computebot",
				ErrNewerSchema, version, SchemaVersion)
		case version == 0: // a new file
			version = SchemaVersion
			if err := meta.Put(schemaVersionKey, []byte(strconv.Itoa(version))); err != nil {
				return err
			}
		}
		for ; version < SchemaVersion; version++ {
			migrate := migrations[version]
			if migrate == nil {
				return fmt.Errorf("no migration from schema version %d", version)
			}
			n, err := migrate(tx)
			if err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", version, version+1, err)
			}
			if err := meta.Put(schemaVersionKey, []byte(strconv.Itoa(version+1))); err != nil {
				return err
			}
			// Logged before the commit; should it fail, Open says so.
			db.log.Info("store migrated", "from_schema", version, "to_schema", version+1, "records", n)
		}
		for _, name := range [][]byte{requestsBucket, auditBucket, kvBucket, intentsBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	return nil
}

// Close waits for the writes under way to commit, then closes the file and
// releases the lock. Every method called afterwards returns ErrClosed.
// Calling Close again returns the first call's result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		// bbolt's Close waits for open read transactions.
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("store: close %s: %w", db.path, err)
			return
		}
		db.log.Debug("store closed")
	})
	return db.closeErr
}

// write runs fn in a durable write transaction through DB.Batch, which may
// share it with concurrent writes; it returns once the transaction is
// committed and fsynced, or failed.
//
// Batch may call fn more than once: again when another function in the
// same batch fails (the whole transaction is rolled back and the rest
// rerun), and again on its own when fn itself fails. So every fn here
// checks before it writes, and has no effect outside tx but to set a
// result variable of its caller, which it resets first: whatever a
// rolled-back run computed is computed again, and what the caller reads
// is what the committed run decided. The expensive parts (JSON encoding,
// the caller's decision functions) run before, outside the transaction,
// so that a rerun costs little and no writer holds bbolt's write lock
// for long.
//
// An expected refusal (the ID exists, the version changed) is such a
// result, with fn returning nil after writing nothing, rather than an
// error: an error would roll back the writes of the whole batch and have
// Batch rerun the others, and the loser of a race on one key would retry
// solo against the very batch that beat it, starving it under contention.
// The price is that a lone refused write commits an empty transaction.
func (db *DB) write(fn func(*bolt.Tx) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	start := time.Now()
	err := db.bolt.Batch(fn)
	if d := time.Since(start); d > slowWrite {
		db.log.Warn("slow store write", "duration", d, "error", err)
	}
	return err
}

// view runs fn in a read transaction.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	db.mu.RLock()
	closed := db.closed
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	err := db.bolt.View(fn)
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed // Close ran between the check and the View
	}
	return err
}

// validID reports whether id can be a request key.
func validID(id string) bool { return id != "" && len(id) <= bolt.MaxKeySize }

// CreateRequest stores r with Version 1. It fails with an error wrapping
// computebot.ErrExists when a request with r.ID is already stored, which
// is what makes a redelivered Slack envelope harmless; of concurrent
// creates of one ID exactly one succeeds. r is durably stored when
// CreateRequest returns (one fsynced commit, shared with concurrent
// writes), so it is visible to every read from then on.
//
// Version is set to 1 and zero CreatedAt and UpdatedAt to now, on r too,
// so that the caller sees what was stored.
func (db *DB) CreateRequest(ctx context.Context, r *computebot.Request) error {
	_, err := db.requests().create(ctx, r)
	return err
}

// requests is the table of requests.
func (db *DB) requests() table[computebot.Request] {
	return table[computebot.Request]{
		db: db, bucket: requestsBucket, what: "request",
		fields: func(r *computebot.Request) header {
			return header{id: &r.ID, version: &r.Version, created: &r.CreatedAt, updated: &r.UpdatedAt}
		},
		encode: func(r *computebot.Request) ([]byte, error) { return json.Marshal(toRequestRecord(r)) },
		decode: decodeRequest,
	}
}

// Request returns a fresh copy of the stored request; the error wraps
// computebot.ErrNotFound when there is none.
func (db *DB) Request(ctx context.Context, id string) (*computebot.Request, error) {
	return db.requests().get(ctx, id)
}

// UpdateRequest is the compare-and-set every state transition goes
// through. It reads the request, calls fn on a copy, and saves the copy
// with Version one more than the version read and UpdatedAt set to now,
// only if the stored Version is still the one read; otherwise (another
// update won the race) it reads again and calls fn again, with the newer
// request. A transition written as "if r.State != pending { return
// ErrConflict }; r.State = approved" therefore has exactly one winner
// among concurrent callers, and each loser's fn sees the winner's state.
//
// So fn may run more than once: it must decide from the request it is
// given alone, and do nothing but change it (no messages, no cloud calls,
// no other store writes). An error from fn aborts the update (nothing is
// saved) and is returned as is, unwrapped, so callers can test it with
// errors.Is. fn must not change r.ID (an error); the Version it leaves is
// ignored. The returned request is the saved one, with its new Version
// and UpdatedAt. The error wraps computebot.ErrNotFound when there is no
// such request.
//
// fn runs outside any transaction (the version check makes that safe),
// so a slow fn delays no other writer; it should still be quick.
func (db *DB) UpdateRequest(ctx context.Context, id string, fn func(*computebot.Request) error) (*computebot.Request, error) {
	return db.requests().update(ctx, id, fn)
}

// Requests returns the requests in the given states (all when none is
// given), oldest first: by CreatedAt, then by ID so that the order is
// stable. Resuming after a restart walks this list.
func (db *DB) Requests(ctx context.Context, states ...computebot.RequestState) ([]*computebot.Request, error) {
	return db.requests().list(ctx, func(r *computebot.Request) bool {
		return len(states) == 0 || slices.Contains(states, r.State)
	})
}

// RequestByMessage returns the request whose message is ts in channel
// (the thread a status question is asked in); the error wraps
// computebot.ErrNotFound when there is none. It walks the requests: a
// local file answers that in microseconds.
func (db *DB) RequestByMessage(ctx context.Context, channel, ts string) (*computebot.Request, error) {
	reqs, err := db.requests().list(ctx, func(r *computebot.Request) bool {
		return ts != "" && r.ChannelID == channel && r.MessageTS == ts
	})
	switch {
	case err != nil:
		return nil, err
	case len(reqs) == 0:
		return nil, fmt.Errorf("store: request of message %s in %s: %w", ts, channel, computebot.ErrNotFound)
	}
	return reqs[0], nil
}

// Audit appends e to the audit log. Entries are keyed by the bucket's
// monotonic sequence rather than by time, so the log keeps the order in
// which actions were recorded even when clocks tie or step back. A zero
// e.Time is set to now.
func (db *DB) Audit(ctx context.Context, e computebot.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: audit %s %s: %w", e.Action, e.RequestID, err)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	val, err := json.Marshal(toAuditRecord(e))
	if err != nil {
		return fmt.Errorf("store: audit %s %s: %w", e.Action, e.RequestID, err)
	}
	err = db.write(func(tx *bolt.Tx) error {
		// A rerun by Batch is harmless: the rolled-back run's sequence
		// number was rolled back with it.
		b := tx.Bucket(auditBucket)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, seq), val)
	})
	if err != nil {
		return fmt.Errorf("store: audit %s %s: %w", e.Action, e.RequestID, err)
	}
	return nil
}

// AuditLog returns the whole audit log, oldest first.
func (db *DB) AuditLog(ctx context.Context) ([]computebot.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: read audit log: %w", err)
	}
	var out []computebot.AuditEntry
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(auditBucket)
		if b == nil {
			return nil // a file opened read-only that never had an entry
		}
		// Big-endian sequence keys make bbolt's byte order the append order.
		return b.ForEach(func(k, v []byte) error {
			var rec auditRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			out = append(out, rec.entry())
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read audit log: %w", err)
	}
	return out, nil
}

// AuditSince returns the audit entries recorded at or after since, oldest
// first. It reads the log from its end backwards and stops at the first
// entry older than since, so it costs what it returns, not the whole log.
//
// That relies on the log being in time order, which it is in practice:
// entries are appended in the order they are recorded, each stamped with
// the time it was recorded. Should the clock step back, an entry recorded
// before the step can be hidden behind one recorded after it that looks
// older than since; near the boundary only, and AuditLog still has it.
func (db *DB) AuditSince(ctx context.Context, since time.Time) ([]computebot.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: read audit log: %w", err)
	}
	var out []computebot.AuditEntry
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(auditBucket)
		if b == nil {
			return nil // a file opened read-only that never had an entry
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if len(out)%256 == 255 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			var rec auditRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			e := rec.entry()
			if e.Time.Before(since) {
				break
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read audit log: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// decodeRequest decodes a stored request. json.Unmarshal copies out of v,
// which matters: v points into bbolt's mmap and is only valid during the tx.
func decodeRequest(v []byte) (*computebot.Request, error) {
	var rec requestRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return rec.request(), nil
}
