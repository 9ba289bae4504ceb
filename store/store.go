// Package store is computebot's persistence: requests, the audit log and
// small key/value state, in one bbolt file (embedded, pure Go, no cgo, no
// server to run). It implements computebot.Store.
//
// Every write except CreateRequest is durable when its method returns (bbolt
// fsyncs each commit; NoSync is never set). Writes go through a group
// committer: writes that arrive while a commit is in flight share the next
// transaction and its fsync (see writer.go).
//
// # CreateRequest and the journal: what a crash can lose
//
// CreateRequest is on the Slack ack path (persist, then ack, within Slack's
// 3 s; the target is an ack p99 of 5 ms), and one durable bbolt commit (two
// fsyncs) alone can take longer than that on an ordinary disk. So
// CreateRequest does not wait for one: it appends the request, with a
// checksum, to a journal beside the database (two files used in turn,
// "<path>.journal" and "<path>.journal.1", mode 0600; see journal.go) in
// a single write(2), without fsync, and returns. A background committer
// moves journaled requests into bbolt, durably and in group commits, as
// soon as it can (normally within one commit time, a few milliseconds), and
// empties the journal whenever everything in it is committed. Open replays
// whatever a stopped process left in the journal.
//
// The trade-off, precisely:
//
//   - The bot process dying at any moment (kill -9, OOM kill, panic, a
//     deploy) loses nothing: a request is accepted only once its write has
//     reached the kernel, which keeps it and writes it out even though the
//     process is gone, and the next Open commits it.
//   - A crash of the machine itself (power loss, kernel panic, a VM's hard
//     reset) can lose the requests accepted just before it: those not yet
//     committed, normally the last few milliseconds' worth (one commit
//     time; longer only while commits fail, which is logged as an error).
//     Slack was told they were received, so it does not redeliver them:
//     the user sees no request message and runs the command again. Nothing
//     else can depend on such a request: reading or updating a request
//     waits until its creation is committed, so the bot cannot have
//     posted, approved or launched a request that is not durably stored.
//   - The bbolt file is never at risk: it is written only by fsynced
//     transactions. A torn or corrupt journal record (a write cut short, or
//     unsynced data a machine crash damaged) fails its checksum and is
//     logged and skipped at Open; the records around it are still replayed.
//
// Values are JSON, with explicit field names independent of the Go types, and
// the file carries a schema version in the "meta" bucket so that a future
// format change can migrate, and an old binary refuses a newer file instead
// of misreading it.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the on-disk format this package writes and understands.
// Bump it, and teach init to migrate files of older versions, when a
// stored encoding changes incompatibly.
const SchemaVersion = 1

// DefaultTimeout is how long Open waits for the file lock by default: long
// enough to ride out a previous bot process that is still shutting down,
// short enough that a second bot on the same file fails fast and clearly.
const DefaultTimeout = 5 * time.Second

// initialMmapSize is how much of the file bbolt maps up front. When a
// commit outgrows the mapping, bbolt remaps, and a remap waits for every
// open read transaction (a listing of all requests, say) while blocking new
// ones, among them CreateRequest's existence check on the ack path: a stall
// of milliseconds. Mapping ahead avoids remaps until the file reaches this
// size (tens of thousands of requests). On Linux and macOS it reserves
// address space only (the file grows with its data); on Windows bbolt
// grows the file to this size at once.
const initialMmapSize = 64 << 20

// Errors returned by Open and by methods on a closed DB. Test with errors.Is.
var (
	// ErrLocked means another process holds the file (bbolt allows one
	// writer process per file); typically a second bot with the same
	// store.path.
	ErrLocked = errors.New("locked by another process")
	// ErrNewerSchema means the file was written by a newer computebot.
	ErrNewerSchema = errors.New("schema version is newer than this computebot supports")
	// ErrClosed is returned by writes after Close (reads fail with
	// bbolt's "database not open").
	ErrClosed = errors.New("store is closed")
)

// Bucket names. Keys of user key/value buckets live under kvBucket, one
// nested bucket each, so they can never collide with the buckets here.
var (
	metaBucket     = []byte("meta")
	requestsBucket = []byte("requests")
	auditBucket    = []byte("audit")
	kvBucket       = []byte("kv")

	schemaVersionKey = []byte("schema_version")
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Timeout is how long to wait for the file lock; DefaultTimeout when
	// zero or negative (bbolt's own zero, "wait forever", would make a
	// second bot hang silently instead of saying why it cannot start).
	Timeout time.Duration
	// Logger receives open/close and slow-commit messages; slog.Default()
	// when nil.
	Logger *slog.Logger
}

// DB is an open store. It is safe for concurrent use. Reads run in
// parallel with each other and with writes; writes are serialized.
type DB struct {
	bolt *bolt.DB
	path string
	log  *slog.Logger
	w    *writer
	j    *journal // CreateRequest's journal, see the package doc

	closeOnce sync.Once
	closeErr  error
}

var _ computebot.Store = (*DB)(nil)

// Open opens or creates the store at path (creating missing parent
// directories, mode 0700; the file is 0600 because requests carry Slack
// response URLs, which let anyone holding one post into the channel).
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, InitialMmapSize: initialMmapSize})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store: %s is %w (waited %s; is another computebot running with the same store.path?)",
				path, ErrLocked, opts.Timeout)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path, log: opts.Logger.With("store", path)}
	if err := db.init(); err != nil {
		_ = b.Close()
		return nil, err
	}
	// Replay before the writer starts, so that a request a dead process
	// left in the journal is back before anything can read or create it.
	if db.j, err = openJournal(b, path, db.log); err != nil {
		_ = b.Close()
		return nil, err
	}
	db.w = newWriter(b, db.log)
	db.j.start(db.w)
	db.log.Debug("store opened", "schema_version", SchemaVersion)
	return db, nil
}

// init creates the buckets and checks (or, on a new file, writes) the
// schema version.
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
		case version == 0:
			if err := meta.Put(schemaVersionKey, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{requestsBucket, auditBucket, kvBucket} {
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

// Close waits for queued writes, journaled requests included, to commit,
// leaves the journal empty, then closes the files and releases the lock.
// Further writes return ErrClosed. Calling Close again returns the first
// call's result. Should the last commit fail, the requests it carried stay
// in the journal for the next Open, and Close says so.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		jerr := db.j.close()
		db.w.close()
		berr := db.bolt.Close()
		if err := errors.Join(jerr, berr); err != nil {
			db.closeErr = fmt.Errorf("store: close %s: %w", db.path, err)
			return
		}
		db.log.Debug("store closed")
	})
	return db.closeErr
}

// CreateRequest stores r. It fails with an error wrapping
// computebot.ErrExists when a request with r.ID is already stored or
// accepted, which is what makes a redelivered Slack envelope harmless. Zero
// CreatedAt and UpdatedAt are set to now, on r too, so the caller sees what
// was stored.
//
// It returns once r is in the journal, before it is committed to bbolt: it
// survives the process dying from then on, but not a machine crash in the
// next few milliseconds (see the package doc). Every other method sees r
// as soon as CreateRequest has returned.
func (db *DB) CreateRequest(ctx context.Context, r *computebot.Request) error {
	if !validID(r.ID) {
		return fmt.Errorf("store: create request: invalid ID %.40q", r.ID)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: create request %s: %w", r.ID, err)
	}
	created, updated := r.CreatedAt, r.UpdatedAt
	if created.IsZero() || updated.IsZero() {
		now := time.Now().UTC()
		if created.IsZero() {
			created = now
		}
		if updated.IsZero() {
			updated = now
		}
	}
	rec := toRequestRecord(r)
	rec.CreatedAt, rec.UpdatedAt = created.UTC(), updated.UTC()
	// Encode here, not in the commit, so that JSON work runs in parallel
	// in the callers instead of serially in the writer.
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("store: create request %s: %w", r.ID, err)
	}
	if err := db.j.append(r.ID, encodeJournalLine(val), val); err != nil {
		return fmt.Errorf("store: create request %s: %w", r.ID, err)
	}
	r.CreatedAt, r.UpdatedAt = created, updated
	return nil
}

// Request returns a fresh copy of the stored request; the error wraps
// computebot.ErrNotFound when there is none.
func (db *DB) Request(ctx context.Context, id string) (*computebot.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: get request %s: %w", id, err)
	}
	if err := db.waitCommitted(ctx, id); err != nil {
		return nil, fmt.Errorf("store: get request %s: %w", id, err)
	}
	var r *computebot.Request
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getRequest(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: get request %s: %w", id, err)
	}
	return r, nil
}

// UpdateRequest loads the request, calls fn on it and saves the result with
// UpdatedAt set to now, all in one write transaction. Because write
// transactions are serialized, fn sees the latest committed state and no
// other write can slip in between its check and the save: a transition
// written as "if r.State != pending { return ErrConflict }; r.State =
// approved" is a compare-and-set, and of many concurrent callers exactly one
// wins.
//
// An error from fn aborts the update (nothing is saved) and is returned
// as is, so callers can test it with errors.Is. fn must not change r.ID, and
// must not call back into the DB (the write it runs in would wait for
// itself). fn runs while other writers wait, so it must be quick: no
// network calls. The returned request is the saved one.
func (db *DB) UpdateRequest(ctx context.Context, id string, fn func(*computebot.Request) error) (*computebot.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: update request %s: %w", id, err)
	}
	if err := db.waitCommitted(ctx, id); err != nil {
		return nil, fmt.Errorf("store: update request %s: %w", id, err)
	}
	var (
		saved *computebot.Request
		fnErr error
	)
	err := db.w.do(func(tx *bolt.Tx) error {
		r, err := getRequest(tx, id)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			fnErr = err
			return err
		}
		if r.ID != id {
			return fmt.Errorf("fn changed the request ID to %q", r.ID)
		}
		r.UpdatedAt = time.Now().UTC()
		val, err := json.Marshal(toRequestRecord(r))
		if err != nil {
			return err
		}
		if err := tx.Bucket(requestsBucket).Put([]byte(id), val); err != nil {
			return err
		}
		saved = r
		return nil
	})
	if fnErr != nil {
		// fn refused: nothing was written, whatever happened to the
		// rest of the batch, and fn's error goes back untouched.
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("store: update request %s: %w", id, err)
	}
	return saved, nil
}

// Requests returns the requests in the given states (all when none is
// given), oldest first: by CreatedAt, then by ID so that the order is
// stable. Resuming after a restart walks this list.
func (db *DB) Requests(ctx context.Context, states ...computebot.RequestState) ([]*computebot.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	// Every request accepted so far must be in the list.
	if err := db.j.waitFor(ctx, db.j.acceptedSeq()); err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	var out []*computebot.Request
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(requestsBucket).ForEach(func(k, v []byte) error {
			r, err := decodeRequest(v)
			if err != nil {
				return fmt.Errorf("request %s: %w", k, err)
			}
			if len(states) == 0 || slices.Contains(states, r.State) {
				out = append(out, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	slices.SortFunc(out, func(a, b *computebot.Request) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
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
	err = db.w.do(func(tx *bolt.Tx) error {
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
	err := db.bolt.View(func(tx *bolt.Tx) error {
		// Big-endian sequence keys make bbolt's byte order the append order.
		return tx.Bucket(auditBucket).ForEach(func(k, v []byte) error {
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

// waitCommitted returns once request id, if CreateRequest accepted it, is
// in bbolt. An ID not waiting to be committed is in bbolt already, or
// unknown: no wait.
func (db *DB) waitCommitted(ctx context.Context, id string) error {
	if seq := db.j.pendingSeq(id); seq != 0 {
		return db.j.waitFor(ctx, seq)
	}
	return nil
}

// getRequest reads and decodes one request inside tx.
func getRequest(tx *bolt.Tx, id string) (*computebot.Request, error) {
	v := tx.Bucket(requestsBucket).Get([]byte(id))
	if v == nil {
		return nil, computebot.ErrNotFound
	}
	return decodeRequest(v)
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
