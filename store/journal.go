package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
)

// The journal is how CreateRequest returns without waiting for an fsync
// (see the package doc for what that trades away). It is append-only, beside
// the bbolt file, one record per line:
//
//	<CRC-32C of JSON, 8 hex digits> <JSON>\n
//
// where JSON is {"op":"create_request","request":{…}} and the request is
// encoded exactly as it is stored in bbolt. encoding/json never emits a raw
// newline, so a line is a record, and a damaged line (a torn last write, or
// a hole a machine crash left in unsynced data) fails its checksum and is
// skipped without losing the lines around it. A line missing its final
// newline is a torn write and is ignored.
//
// A request lives in the journal only until the committer has moved it into
// bbolt. The journal is two files, "<path>.journal" and "<path>.journal.1",
// used in turn: whenever nothing journaled is left uncommitted, appends
// switch to the other (empty) file, and the committer truncates the one
// that was in use. Truncating in place would have to exclude appends while
// it runs, and an ftruncate can take milliseconds, tens of them while bbolt
// is fsyncing (the filesystem waits for its own journal and for pages under
// writeback): a stall of every CreateRequest behind it. Switching is a
// pointer swap; the truncation runs off the ack path. Open replays whatever
// a stopped process left in either file, then empties both.

// journalSuffixes name the two journal files after the store path.
var journalSuffixes = [2]string{".journal", ".journal.1"}

const opCreateRequest = "create_request"

// Commit retry backoff, when moving journaled requests into bbolt fails.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 5 * time.Second
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errHeld, from a commitHook, holds the committer (tests): nothing is
// committed, without the backoff and log of a failure.
var errHeld = errors.New("commits held (test hook)")

type journal struct {
	files [2]*os.File
	paths [2]string
	bolt  *bolt.DB
	w     *writer
	log   *slog.Logger

	mu sync.Mutex
	// closed: appends return ErrClosed. stopped: the committer has exited
	// (set with closed, after the final drain).
	closed, stopped bool
	// active is the file appends go to; written says whether it has been
	// appended to since it was last emptied.
	active  int
	written bool
	// resync: a failed append may have left a partial line at the end of
	// the active file; the next append first ends it with a line that
	// cannot checksum, so that the partial record can never be completed
	// into a valid one.
	resync bool
	// Sequence numbers: every appended record gets the next one.
	accepted  uint64 // the last appended record
	committed uint64 // every record up to this one is in bbolt
	// The last commit attempt, covering records up to failedThrough,
	// failed with failErr (cleared by the next success).
	failedThrough uint64
	failErr       error
	pending       map[string]uint64 // ID → seq, appended but not yet in bbolt
	queue         []journalEntry    // what the committer has yet to take, in order
	changed       chan struct{}     // closed and replaced after every commit attempt
	// commitHook, when set (by tests only), runs before each commit
	// attempt; an error fails the attempt, errHeld without retry backoff.
	commitHook func() error

	wake chan struct{} // buffered(1): the queue has something
	stop chan struct{} // closed by close: drain and exit
	done chan struct{} // closed when the committer has exited
}

type journalEntry struct {
	seq uint64
	id  string
	val []byte // the request record as stored in bbolt
}

// openJournal opens (creating, mode 0600) the journal files of the store
// at path, replays them into b and empties them. It must run before the
// writer starts taking writes.
func openJournal(b *bolt.DB, path string, log *slog.Logger) (*journal, error) {
	j := &journal{
		bolt:    b,
		log:     log,
		pending: map[string]uint64{},
		changed: make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	for i, suffix := range journalSuffixes {
		j.paths[i] = path + suffix
		f, err := os.OpenFile(j.paths[i], os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			_ = j.closeFiles()
			return nil, fmt.Errorf("store: open journal: %w", err)
		}
		j.files[i] = f
	}
	if err := j.replay(); err != nil {
		_ = j.closeFiles()
		return nil, fmt.Errorf("store: replay journal: %w", err)
	}
	return j, nil
}

func (j *journal) closeFiles() error {
	var errs []error
	for _, f := range j.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// start runs the committer, which moves journaled requests into bbolt
// through w.
func (j *journal) start(w *writer) {
	j.w = w
	go j.run()
}

// replay creates in bbolt every valid journaled request that is not there
// yet, in one durable transaction, then truncates the journal files. A
// request is journaled once, in one of the files, so their order does not
// matter.
func (j *journal) replay() error {
	var recs []journalRecord
	for i, f := range j.files {
		data, err := io.ReadAll(f)
		if err != nil {
			return fmt.Errorf("%s: %w", j.paths[i], err)
		}
		recs = append(recs, j.parse(j.paths[i], data)...)
	}
	if len(recs) == 0 {
		return j.truncateAll()
	}
	created := 0
	err := j.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(requestsBucket)
		for _, r := range recs {
			if b.Get(r.id) != nil {
				continue // committed before the process stopped
			}
			if err := b.Put(r.id, r.val); err != nil {
				return fmt.Errorf("request %s: %w", r.id, err)
			}
			created++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if created > 0 {
		j.log.Info("store journal: recovered requests accepted but not yet committed when the bot stopped",
			"requests", created)
	}
	// Everything is durably in bbolt now; the records can go.
	return j.truncateAll()
}

func (j *journal) truncateAll() error {
	for i, f := range j.files {
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("truncate %s: %w", j.paths[i], err)
		}
	}
	return nil
}

type journalRecord struct{ id, val []byte }

// parse returns the valid records in one journal file's data, logging what
// it skips.
func (j *journal) parse(path string, data []byte) []journalRecord {
	var (
		recs    []journalRecord
		invalid []int // byte offsets of lines that failed to decode
		off     int
	)
	for off < len(data) {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			j.log.Warn("store journal: ignoring a torn last record (cut short while being written; it was never acknowledged)",
				"journal", path, "offset", off, "bytes", len(data)-off)
			break
		}
		line := data[off : off+end]
		if len(line) > 0 {
			if id, val, ok := decodeJournalLine(line); ok {
				recs = append(recs, journalRecord{id, val})
			} else {
				invalid = append(invalid, off)
			}
		}
		off += end + 1
	}
	if len(invalid) > 0 {
		j.log.Warn("store journal: skipped corrupt records (bad checksum or format)",
			"journal", path, "count", len(invalid), "offsets", invalid)
	}
	return recs
}

// encodeJournalLine returns the journal line for a request record.
func encodeJournalLine(val []byte) []byte {
	payload := make([]byte, 0, len(val)+48)
	payload = append(payload, `{"op":"`+opCreateRequest+`","request":`...)
	payload = append(payload, val...)
	payload = append(payload, '}')
	line := make([]byte, 0, 9+len(payload)+1)
	line = hex.AppendEncode(line, crcBytes(crc32.Checksum(payload, castagnoli)))
	line = append(line, ' ')
	line = append(line, payload...)
	return append(line, '\n')
}

func crcBytes(c uint32) []byte {
	return []byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
}

// decodeJournalLine checks one line (without its newline) and returns the
// request's ID and stored value; ok is false for anything damaged.
func decodeJournalLine(line []byte) (id, val []byte, ok bool) {
	if len(line) < 10 || line[8] != ' ' {
		return nil, nil, false
	}
	var sum [4]byte
	if n, err := hex.Decode(sum[:], line[:8]); err != nil || n != 4 {
		return nil, nil, false
	}
	payload := line[9:]
	if !bytes.Equal(sum[:], crcBytes(crc32.Checksum(payload, castagnoli))) {
		return nil, nil, false
	}
	var env struct {
		Op      string          `json:"op"`
		Request json.RawMessage `json:"request"`
	}
	if err := json.Unmarshal(payload, &env); err != nil || env.Op != opCreateRequest {
		return nil, nil, false
	}
	var rec requestRecord
	if err := json.Unmarshal(env.Request, &rec); err != nil || !validID(rec.ID) {
		return nil, nil, false
	}
	return []byte(rec.ID), env.Request, true
}

func validID(id string) bool { return id != "" && len(id) <= bolt.MaxKeySize }

// append journals a new request: ErrExists when id is in bbolt or already
// journaled. It returns once the record is in the kernel (one write(2), no
// fsync).
func (j *journal) append(id string, line, val []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if _, ok := j.pending[id]; ok {
		return computebot.ErrExists
	}
	// Under mu, so that the committer cannot move id from pending into
	// bbolt between the two checks unseen: it updates pending under mu,
	// after its commit, so a read started here sees that commit.
	var exists bool
	err := j.bolt.View(func(tx *bolt.Tx) error {
		exists = tx.Bucket(requestsBucket).Get([]byte(id)) != nil
		return nil
	})
	if err != nil {
		return err
	}
	if exists {
		return computebot.ErrExists
	}
	buf := line
	if j.resync {
		buf = append([]byte("!\n"), line...)
	}
	n, err := j.files[j.active].Write(buf)
	if n > 0 {
		j.written = true
	}
	if err != nil {
		if n > 0 {
			j.resync = true
		}
		return fmt.Errorf("journal: %w", err)
	}
	j.resync = false
	j.accepted++
	j.pending[id] = j.accepted
	j.queue = append(j.queue, journalEntry{seq: j.accepted, id: id, val: val})
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return nil
}

// run is the committer: it moves journaled requests into bbolt as soon as
// they come, in batches (every request queued while a commit runs shares
// the next one), backing off while commits fail.
func (j *journal) run() {
	defer close(j.done)
	var (
		wake    = j.wake
		retry   <-chan time.Time
		backoff = minRetry
	)
	for {
		select {
		case <-wake:
		case <-retry:
		case <-j.stop:
			err := j.commitQueued() // the final drain: one attempt
			j.mu.Lock()
			j.stopped = true
			j.broadcast()
			j.mu.Unlock()
			if err != nil && !errors.Is(err, errHeld) {
				j.log.Error("store journal: final commit failed; the next Open replays the journal", "err", err)
			}
			return
		}
		switch err := j.commitQueued(); {
		case err == nil:
			wake, retry, backoff = j.wake, nil, minRetry
		case errors.Is(err, errHeld):
			wake, retry = j.wake, nil
		default:
			j.log.Error("store journal: committing requests failed; retrying", "err", err, "retry_in", backoff)
			// Ignore wake-ups until the retry: new requests join it.
			wake, retry = nil, time.After(backoff)
			backoff = min(2*backoff, maxRetry)
		}
	}
}

// commitQueued commits everything queued in one transaction of the group
// committer, then, when nothing journaled is left uncommitted, switches
// appends to the other journal file and empties the one in use.
func (j *journal) commitQueued() error {
	j.mu.Lock()
	if j.commitHook != nil && len(j.queue) > 0 {
		if err := j.commitHook(); err != nil {
			j.failedThrough, j.failErr = j.accepted, err
			if errors.Is(err, errHeld) {
				j.failedThrough = 0 // a hold is no failure to report
			}
			j.broadcast()
			j.mu.Unlock()
			return err
		}
	}
	batch := j.queue
	j.queue = nil
	j.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := j.w.do(func(tx *bolt.Tx) error {
		b := tx.Bucket(requestsBucket)
		for _, e := range batch {
			key := []byte(e.id)
			if b.Get(key) != nil {
				continue // create-if-absent, like replay
			}
			// Put fails only on an invalid key or an oversized value,
			// both ruled out before append. Should it fail anyway, the
			// puts before it may commit with the rest of the writer's
			// batch; the retry then skips them.
			if err := b.Put(key, e.val); err != nil {
				return fmt.Errorf("request %s: %w", e.id, err)
			}
		}
		return nil
	})
	last := batch[len(batch)-1].seq
	j.mu.Lock()
	if err != nil {
		j.queue = append(batch, j.queue...)
		j.failedThrough, j.failErr = last, err
		j.broadcast()
		j.mu.Unlock()
		return err
	}
	j.committed = last
	j.failedThrough, j.failErr = 0, nil
	for _, e := range batch {
		delete(j.pending, e.id)
	}
	full := -1
	if len(j.pending) == 0 && j.written {
		// Every record in the active file is in bbolt: switch. The
		// other file was emptied when it was switched away from (by
		// this goroutine, so before now).
		full = j.active
		j.active, j.written, j.resync = 1-j.active, false, false
	}
	j.broadcast()
	j.mu.Unlock()
	if full >= 0 {
		// Nothing appends to it now. Not synced: should a machine crash
		// undo the truncation, replay skips what bbolt has.
		if err := j.files[full].Truncate(0); err != nil {
			j.log.Warn("store journal: truncate failed; its records are committed, and replay would skip them",
				"journal", j.paths[full], "err", err)
		}
	}
	return nil
}

// broadcast wakes the waiters. j.mu must be held.
func (j *journal) broadcast() {
	close(j.changed)
	j.changed = make(chan struct{})
}

// pendingSeq returns the sequence number to wait for before reading id
// (zero: it is not waiting to be committed).
func (j *journal) pendingSeq(id string) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.pending[id]
}

// acceptedSeq returns the sequence number of the last accepted request.
func (j *journal) acceptedSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.accepted
}

// waitFor returns once every request up to seq is in bbolt. It fails with
// the commit's error when the attempt that carried seq failed, with
// ErrClosed when the store closed first, or with ctx's error.
func (j *journal) waitFor(ctx context.Context, seq uint64) error {
	for {
		j.mu.Lock()
		committed, failedThrough, failErr, stopped, ch := j.committed, j.failedThrough, j.failErr, j.stopped, j.changed
		j.mu.Unlock()
		switch {
		case committed >= seq:
			return nil
		case failedThrough >= seq:
			return fmt.Errorf("request not yet committed: %w", failErr)
		case stopped:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close stops appends, lets the committer drain the queue, and closes the
// file; it reports requests left in the journal (the next Open replays
// them).
func (j *journal) close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	if j.w != nil {
		close(j.stop)
		<-j.done
	}
	j.mu.Lock()
	left := len(j.pending)
	j.mu.Unlock()
	err := j.closeFiles()
	if left > 0 {
		err = errors.Join(fmt.Errorf("%d requests not committed; they stay in the journal and the next Open replays them", left), err)
	}
	return err
}
