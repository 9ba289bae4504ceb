package store

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxBatch bounds how many writes share one transaction, so that one commit
// (and the wait of the writes queued behind it) stays short under a burst.
const maxBatch = 128

// slowCommit is the commit duration worth a warning: the Slack ack path
// waits on commits, and Slack gives up on an ack after 3 s.
const slowCommit = 500 * time.Millisecond

// errNothingToCommit rolls back a batch in which every write failed, so
// that, e.g., a burst of redelivered envelopes costs no fsync.
var errNothingToCommit = errors.New("nothing to commit")

// writer is a group committer in front of bbolt's single writer.
//
// One bbolt commit costs two fsyncs, and bbolt runs write transactions one
// at a time, so with one transaction per write, concurrent writers queue
// behind each other's fsyncs. bbolt's own DB.Batch coalesces them, but it
// holds the first write for MaxBatchDelay (10 ms by default) waiting for
// company, which a lone write on the Slack ack path would pay every time.
// Here a single goroutine commits whatever is queued the moment the previous
// commit ends: a lone write commits at once, and writes arriving during a
// commit share the next one. Each write still gets its own result; a write
// that fails leaves the others in its batch unaffected, and every write has
// been fsynced by the time its result is delivered.
//
// Unlike DB.Batch, which reruns functions when one of a batch fails, each
// function runs exactly once. In exchange, a function must make no change
// to the transaction when it returns an error (check first, then write),
// and it must not call back into the writer (it would wait for itself).
type writer struct {
	db  *bolt.DB
	log *slog.Logger

	mu      sync.RWMutex // closed, and the closing of ops
	closed  bool
	ops     chan *writeOp
	stopped chan struct{} // closed when run returns
}

type writeOp struct {
	fn   func(*bolt.Tx) error
	done chan writeResult // buffered: the committer never blocks on a caller
}

type writeResult struct {
	err      error
	panicked bool
	panicVal any
}

func newWriter(db *bolt.DB, log *slog.Logger) *writer {
	w := &writer{
		db:      db,
		log:     log,
		ops:     make(chan *writeOp, maxBatch),
		stopped: make(chan struct{}),
	}
	go w.run()
	return w
}

// do runs fn in a write transaction and returns once that transaction is
// durably committed (or fn failed). A panic in fn is re-raised here, in the
// caller's goroutine, rather than taking the committer down.
func (w *writer) do(fn func(*bolt.Tx) error) error {
	op := &writeOp{fn: fn, done: make(chan writeResult, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	w.ops <- op // close waits for this send; run keeps draining until then
	w.mu.RUnlock()
	r := <-op.done
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// close stops accepting writes and waits for the queued ones to commit.
// It must be called once.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	close(w.ops)
	w.mu.Unlock()
	<-w.stopped
}

func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]*writeOp, 0, maxBatch)
	for op := range w.ops {
		batch = append(batch[:0], op)
	fill:
		for len(batch) < maxBatch {
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		w.commit(batch)
	}
}

func (w *writer) commit(batch []*writeOp) {
	start := time.Now()
	results := make([]writeResult, len(batch))
	err := w.db.Update(func(tx *bolt.Tx) error {
		wrote := false
		for i, op := range batch {
			results[i] = runOp(op.fn, tx)
			wrote = wrote || (results[i].err == nil && !results[i].panicked)
		}
		if !wrote {
			return errNothingToCommit
		}
		return nil
	})
	if errors.Is(err, errNothingToCommit) {
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("commit: %w", err)
	}
	for i, op := range batch {
		r := results[i]
		if err != nil && r.err == nil && !r.panicked {
			// The write itself was fine but did not reach the disk.
			r.err = err
		}
		op.done <- r
	}
	if d := time.Since(start); d > slowCommit {
		w.log.Warn("slow store commit", "duration", d, "writes", len(batch), "error", err)
	}
}

func runOp(fn func(*bolt.Tx) error, tx *bolt.Tx) (r writeResult) {
	defer func() {
		if v := recover(); v != nil {
			r = writeResult{panicked: true, panicVal: v}
		}
	}()
	return writeResult{err: fn(tx)}
}
