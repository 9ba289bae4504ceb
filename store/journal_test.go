package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
)

// hold stops the committer: requests accepted from now on stay in the
// journal only, as when the process dies before their commit.
func hold(db *DB) {
	db.j.mu.Lock()
	db.j.commitHook = func() error { return errHeld }
	db.j.mu.Unlock()
}

// release undoes hold (or a failing hook) and wakes the committer.
func release(db *DB) {
	db.j.mu.Lock()
	db.j.commitHook = nil
	db.j.mu.Unlock()
	select {
	case db.j.wake <- struct{}{}:
	default:
	}
}

// journalBytes returns the contents of both journal files.
func journalBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, suffix := range journalSuffixes {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// waitJournalEmpty waits for the committer to empty the journal (the
// truncation follows the commit that readers wait for).
func waitJournalEmpty(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b := journalBytes(t, path)
		if len(b) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal still holds %d bytes:\n%s", len(b), b)
		}
		time.Sleep(time.Millisecond)
	}
}

// inBolt says whether id is committed to the bbolt file.
func inBolt(t *testing.T, db *DB, id string) bool {
	t.Helper()
	var found bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(requestsBucket).Get([]byte(id)) != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func journalLine(t *testing.T, r *computebot.Request) []byte {
	t.Helper()
	val, err := json.Marshal(toRequestRecord(r))
	if err != nil {
		t.Fatal(err)
	}
	return encodeJournalLine(val)
}

// syncBuffer is a log sink safe for the committer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A request accepted but not committed when the store goes away (here: a
// Close that cannot drain) is in the journal, and the next Open commits it.
func TestJournalReplaysUncommitted(t *testing.T) {
	ctx := t.Context()
	path := t.TempDir() + "/computebot.db"
	db, err := Open(path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hold(db)
	want := fullRequest(t, "R-1")
	if err := db.CreateRequest(ctx, want); err != nil {
		t.Fatal(err)
	}
	if inBolt(t, db, "R-1") {
		t.Fatal("R-1 committed although commits are held")
	}
	if j := journalBytes(t, path); !bytes.Contains(j, []byte(`"id":"R-1"`)) {
		t.Fatalf("journal does not hold R-1: %q", j)
	}
	// Reads wait for the commit rather than answer "not found".
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = db.Request(short, "R-1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Request of an uncommitted request: %v, want it to wait (DeadlineExceeded)", err)
	}

	err = db.Close()
	if err == nil || !strings.Contains(err.Error(), "1 requests not committed") {
		t.Fatalf("Close with a held commit: %v, want it to say a request stays in the journal", err)
	}
	if j := journalBytes(t, path); !bytes.Contains(j, []byte(`"id":"R-1"`)) {
		t.Fatalf("journal lost R-1 at Close: %q", j)
	}

	db = openAt(t, path)
	if !inBolt(t, db, "R-1") {
		t.Fatal("Open did not commit the journaled request")
	}
	got, err := db.Request(ctx, "R-1")
	if err != nil {
		t.Fatal(err)
	}
	sameRequest(t, want, got)
	if j := journalBytes(t, path); len(j) != 0 {
		t.Fatalf("journal not emptied by replay: %q", j)
	}
	if err := db.CreateRequest(ctx, fullRequest(t, "R-1")); !errors.Is(err, computebot.ErrExists) {
		t.Fatalf("create of a replayed request: %v, want ErrExists", err)
	}
}

// The real case: the bot process is killed (SIGKILL) at an arbitrary
// moment. Every request CreateRequest accepted before the kill is there
// after the next Open. The child (this test binary, re-run) creates
// requests as fast as it can, printing each ID once accepted.
func TestJournalSurvivesKill(t *testing.T) {
	if path := os.Getenv("COMPUTEBOT_STORE_TEST_CREATE"); path != "" {
		holdAfter, _ := strconv.Atoi(os.Getenv("COMPUTEBOT_STORE_TEST_HOLD_AFTER"))
		db, err := Open(path, Options{Logger: quiet})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		for i := range 1_000_000 {
			if i == holdAfter {
				hold(db)
			}
			id := fmt.Sprintf("R-%07d", i)
			if err := db.CreateRequest(context.Background(), benchRequest(id)); err != nil {
				fmt.Println("create:", err)
				os.Exit(1)
			}
			fmt.Println(id)
		}
		time.Sleep(time.Minute)
		return
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, tc := range []struct {
		name      string
		holdAfter int // the child stops committing after this many; -1: never
	}{
		{"while committing", -1},
		{"uncommitted", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/computebot.db"
			cmd := exec.Command(os.Args[0], "-test.run=^TestJournalSurvivesKill$")
			cmd.Env = append(os.Environ(), "COMPUTEBOT_STORE_TEST_CREATE="+path,
				"COMPUTEBOT_STORE_TEST_HOLD_AFTER="+strconv.Itoa(tc.holdAfter))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			var accepted []string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, "R-") {
					t.Fatalf("child: %s", line)
				}
				accepted = append(accepted, line)
				if len(accepted) == 300 {
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
				}
			}
			_ = cmd.Wait()
			if len(accepted) < 300 {
				t.Fatalf("child accepted only %d requests", len(accepted))
			}
			if tc.holdAfter >= 0 {
				// At least the held ones were only in the journal.
				j := journalBytes(t, path)
				if n := bytes.Count(j, []byte("\n")); n < len(accepted)-tc.holdAfter {
					t.Fatalf("journal holds %d records, want at least the %d uncommitted", n, len(accepted)-tc.holdAfter)
				}
			}

			db := openAt(t, path)
			ctx := t.Context()
			for _, id := range accepted {
				if _, err := db.Request(ctx, id); err != nil {
					t.Fatalf("accepted request lost by the kill: %v", err)
				}
			}
			all, err := db.Requests(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Accepted ones the child had no time to print may be there too.
			if len(all) < len(accepted) || len(all) > len(accepted)+1 {
				t.Fatalf("%d requests after the kill, %d accepted", len(all), len(accepted))
			}
			if j := journalBytes(t, path); len(j) != 0 {
				t.Fatalf("journal not emptied by replay: %d bytes", len(j))
			}
		})
	}
}

// A damaged journal: torn last records (a write cut short) and corrupt
// lines (bad checksum, a zero-filled hole) are skipped, the valid records
// around them replayed, and a record of a request bbolt already has never
// overwrites it.
func TestJournalTornAndCorrupt(t *testing.T) {
	ctx := t.Context()
	path := t.TempDir() + "/computebot.db"
	db, err := Open(path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateRequest(ctx, &computebot.Request{ID: "R-0", State: computebot.RequestPending}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateRequest(ctx, "R-0", func(r *computebot.Request) error {
		r.State = computebot.RequestApproved
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	req := func(id string) *computebot.Request {
		return &computebot.Request{ID: id, Reason: "reason of " + id, State: computebot.RequestNew,
			CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	}
	corrupt := journalLine(t, req("R-2"))
	corrupt[bytes.Index(corrupt, []byte("reason of"))] ^= 0x20 // one flipped bit
	torn := journalLine(t, req("R-4"))
	var j0, j1 []byte
	j0 = append(j0, journalLine(t, req("R-1"))...)
	j0 = append(j0, corrupt...)
	j0 = append(j0, "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\n"...) // a hole
	j0 = append(j0, journalLine(t, req("R-0"))...)                           // already in bbolt
	j0 = append(j0, "!\n"...)                                                // after a failed write
	j0 = append(j0, journalLine(t, req("R-3"))...)
	j0 = append(j0, journalLine(t, req("R-6"))[:30]...) // cut short mid-record
	j1 = append(j1, journalLine(t, req("R-5"))...)
	j1 = append(j1, torn[:len(torn)-1]...) // everything but the newline
	if err := os.WriteFile(path+journalSuffixes[0], j0, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+journalSuffixes[1], j1, 0o600); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	db, err = Open(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	for _, id := range []string{"R-1", "R-3", "R-5"} {
		got, err := db.Request(ctx, id)
		if err != nil {
			t.Fatalf("valid record %s not replayed: %v", id, err)
		}
		sameRequest(t, req(id), got)
	}
	for _, id := range []string{"R-2", "R-4", "R-6"} {
		if _, err := db.Request(ctx, id); !errors.Is(err, computebot.ErrNotFound) {
			t.Errorf("damaged record %s: %v, want ErrNotFound", id, err)
		}
	}
	if got, _ := db.Request(ctx, "R-0"); got == nil || got.State != computebot.RequestApproved {
		t.Errorf("replay overwrote a stored request: %+v", got)
	}
	if j := journalBytes(t, path); len(j) != 0 {
		t.Fatalf("journal not emptied by replay: %q", j)
	}
	log := logs.String()
	if n := strings.Count(log, "torn last record"); n != 2 {
		t.Errorf("%d torn-record warnings, want 2:\n%s", n, log)
	}
	if !strings.Contains(log, "skipped corrupt records") || !strings.Contains(log, "count=3") {
		t.Errorf("no warning about the 3 corrupt lines:\n%s", log)
	}
	if !strings.Contains(log, "requests=3") {
		t.Errorf("replay did not log the 3 recovered requests:\n%s", log)
	}
	// The store works on after replay, with free to be created.
	if err := db.CreateRequest(ctx, req("R-4")); err != nil {
		t.Fatal(err)
	}
}

// Before its commit, an accepted request already makes a second create of
// its ID fail with ErrExists, also among concurrent duplicates.
func TestCreateRequestExistsBeforeCommit(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	hold(db)
	var ok, exists atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			err := db.CreateRequest(ctx, &computebot.Request{ID: "R-1"})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, computebot.ErrExists):
				exists.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || exists.Load() != 19 {
		t.Fatalf("%d created, %d ErrExists; want 1 and 19", ok.Load(), exists.Load())
	}
	if inBolt(t, db, "R-1") {
		t.Fatal("committed although held")
	}
	err := db.CreateRequest(ctx, &computebot.Request{ID: "R-1"})
	if !errors.Is(err, computebot.ErrExists) || !strings.Contains(err.Error(), "R-1") {
		t.Fatalf("create before commit: %v, want ErrExists naming R-1", err)
	}
	release(db)
	if _, err := db.Request(ctx, "R-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateRequest(ctx, &computebot.Request{ID: "R-1"}); !errors.Is(err, computebot.ErrExists) {
		t.Fatalf("create after commit: %v, want ErrExists", err)
	}
}

// Request, UpdateRequest and Requests see a request as soon as
// CreateRequest has returned, committed or not: they wait for its commit.
func TestReadAfterCreate(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)

	hold(db)
	if err := db.CreateRequest(ctx, &computebot.Request{ID: "R-held", State: computebot.RequestNew}); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		returned atomic.Int32
	)
	wg.Go(func() {
		defer returned.Add(1)
		if r, err := db.Request(ctx, "R-held"); err != nil || r.ID != "R-held" {
			t.Errorf("Request: %+v, %v", r, err)
		}
	})
	wg.Go(func() {
		defer returned.Add(1)
		_, err := db.UpdateRequest(ctx, "R-held", func(r *computebot.Request) error {
			r.State = computebot.RequestPending
			return nil
		})
		if err != nil {
			t.Errorf("UpdateRequest: %v", err)
		}
	})
	wg.Go(func() {
		defer returned.Add(1)
		if list, err := db.Requests(ctx); err != nil || len(list) != 1 || list[0].ID != "R-held" {
			t.Errorf("Requests: %+v, %v", list, err)
		}
	})
	time.Sleep(100 * time.Millisecond)
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d reads returned before the commit", n)
	}
	release(db)
	wg.Wait()
	if r, err := db.Request(ctx, "R-held"); err != nil || r.State != computebot.RequestPending {
		t.Fatalf("after the update: %+v, %v", r, err)
	}

	// And with the committer running, many times over.
	for i := range 200 {
		id := fmt.Sprintf("R-%03d", i)
		if err := db.CreateRequest(ctx, &computebot.Request{ID: id, State: computebot.RequestNew}); err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			if _, err := db.Request(ctx, id); err != nil {
				t.Fatalf("Request right after create: %v", err)
			}
		case 1:
			if _, err := db.UpdateRequest(ctx, id, func(*computebot.Request) error { return nil }); err != nil {
				t.Fatalf("UpdateRequest right after create: %v", err)
			}
		case 2:
			list, err := db.Requests(ctx, computebot.RequestNew)
			if err != nil || len(list) == 0 || list[len(list)-1].ID != id {
				t.Fatalf("Requests right after create of %s: %d requests, %v", id, len(list), err)
			}
		}
	}
}

// The journal is emptied as soon as everything in it is committed, and
// Close leaves it empty (both files, mode 0600).
func TestJournalEmptiedAfterCommit(t *testing.T) {
	ctx := t.Context()
	db, path := newDB(t)
	for round := range 5 { // several rounds: both files take turns
		for i := range 10 {
			if err := db.CreateRequest(ctx, benchRequest(fmt.Sprintf("R-%d-%d", round, i))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Requests(ctx); err != nil { // waits for the commit
			t.Fatal(err)
		}
		waitJournalEmpty(t, path)
	}
	hold(db)
	if err := db.CreateRequest(ctx, benchRequest("R-last")); err != nil {
		t.Fatal(err)
	}
	if len(journalBytes(t, path)) == 0 {
		t.Fatal("journal empty while a request is uncommitted")
	}
	release(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range journalSuffixes {
		fi, err := os.Stat(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s after Close: %d bytes, mode %v; want empty, 0600", suffix, fi.Size(), fi.Mode().Perm())
		}
	}
	db = openAt(t, path)
	if list, err := db.Requests(ctx); err != nil || len(list) != 51 {
		t.Fatalf("after reopen: %d requests, %v; want 51", len(list), err)
	}
}

// While commits fail, accepted requests stay journaled, reads waiting for
// them report the failure instead of hanging, and the committer retries.
func TestJournalCommitFailureRetried(t *testing.T) {
	ctx := t.Context()
	db, path := newDB(t)
	errBoom := errors.New("disk on fire")
	db.j.mu.Lock()
	db.j.commitHook = func() error { return errBoom }
	db.j.mu.Unlock()

	if err := db.CreateRequest(ctx, &computebot.Request{ID: "R-1"}); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := db.Request(waitCtx, "R-1"); !errors.Is(err, errBoom) {
		t.Fatalf("Request while commits fail: %v, want the commit error", err)
	}
	if err := db.CreateRequest(ctx, &computebot.Request{ID: "R-2"}); err != nil {
		t.Fatalf("create while commits fail: %v", err)
	}
	if inBolt(t, db, "R-1") || len(journalBytes(t, path)) == 0 {
		t.Fatal("want R-1 in the journal only")
	}

	db.j.mu.Lock()
	db.j.commitHook = nil // the disk recovers; the committer's retry succeeds
	db.j.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		list, err := db.Requests(ctx)
		if err == nil {
			if len(list) != 2 {
				t.Fatalf("%d requests after recovery, want 2", len(list))
			}
			break
		}
		if !errors.Is(err, errBoom) || time.Now().After(deadline) {
			t.Fatalf("Requests: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitJournalEmpty(t, path)
}

// 50 goroutines create, read, update and list at once; with the race
// detector this checks the journal's locking, and the counts check that
// nothing is lost or doubled, before and after a reopen.
func TestJournalConcurrent(t *testing.T) {
	ctx := t.Context()
	db, path := newDB(t)
	const goroutines, each = 50, 20
	var (
		wg         sync.WaitGroup
		sharedWins atomic.Int32
	)
	for g := range goroutines {
		wg.Go(func() {
			for k := range each {
				id := fmt.Sprintf("R-%02d-%02d", g, k)
				if err := db.CreateRequest(ctx, &computebot.Request{ID: id, State: computebot.RequestNew}); err != nil {
					t.Error(err)
					return
				}
				// Every goroutine also races for one shared ID per round.
				switch err := db.CreateRequest(ctx, &computebot.Request{ID: fmt.Sprintf("R-shared-%02d", k)}); {
				case err == nil:
					sharedWins.Add(1)
				case !errors.Is(err, computebot.ErrExists):
					t.Error(err)
				}
				r, err := db.UpdateRequest(ctx, id, func(r *computebot.Request) error {
					r.State = computebot.RequestPending
					return nil
				})
				if err != nil || r.State != computebot.RequestPending {
					t.Errorf("update %s: %+v, %v", id, r, err)
					return
				}
				if k%5 == 0 {
					if _, err := db.Requests(ctx, computebot.RequestPending); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if sharedWins.Load() != each {
		t.Fatalf("%d creates of shared IDs won, want %d (one per ID)", sharedWins.Load(), each)
	}
	count := func() (pending, all int) {
		t.Helper()
		p, err := db.Requests(ctx, computebot.RequestPending)
		if err != nil {
			t.Fatal(err)
		}
		a, err := db.Requests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(p), len(a)
	}
	if p, a := count(); p != goroutines*each || a != goroutines*each+each {
		t.Fatalf("%d pending of %d requests, want %d of %d", p, a, goroutines*each, goroutines*each+each)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if j := journalBytes(t, path); len(j) != 0 {
		t.Fatalf("journal not empty after Close: %d bytes", len(j))
	}
	db = openAt(t, path)
	if p, a := count(); p != goroutines*each || a != goroutines*each+each {
		t.Fatalf("after reopen: %d pending of %d requests", p, a)
	}
}
