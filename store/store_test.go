package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
)

var quiet = slog.New(slog.DiscardHandler)

func openAt(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func newDB(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "computebot.db")
	return openAt(t, path), path
}

// set stores v under key, replacing any value, the way a caller would
// with Update (the store has no blind Put).
func set[T any](ctx context.Context, db *DB, bucket, key string, v T) error {
	var cur T
	return db.Update(ctx, bucket, key, &cur, func(bool) error { cur = v; return nil })
}

var timeType = reflect.TypeFor[time.Time]()

// fullRequest returns a request with every field set to a distinct non-zero
// value, by reflection, nested payloads included (both of them, though a
// real request has one), so that a field added to computebot.Request or
// its payload types but not to the records makes the round-trip tests
// fail. Times are in a non-UTC zone and carry nanoseconds, to check that
// no precision is lost.
func fullRequest(t *testing.T, id string) *computebot.Request {
	t.Helper()
	r := &computebot.Request{}
	n := 0
	fill(t, reflect.ValueOf(r).Elem(), "Request", &n)
	r.ID = id
	r.State = computebot.RequestPending
	return r
}

// fill sets every field of the struct v to a distinct non-zero value,
// allocating and filling pointed-to structs; n numbers the fields.
func fill(t *testing.T, v reflect.Value, path string, n *int) {
	t.Helper()
	zone := time.FixedZone("UTC+2", 2*3600)
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		name := path + "." + sf.Name
		*n++
		switch {
		case sf.Type == timeType:
			f.Set(reflect.ValueOf(time.Date(2025, 3, 1+*n, 10, *n, 7, 123456789+*n, zone)))
		case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
			f.Set(reflect.New(f.Type().Elem()))
			fill(t, f.Elem(), name, n)
		case f.Kind() == reflect.String:
			f.SetString("value of " + name)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.CanInt():
			f.SetInt(int64(1000 + *n))
		case f.CanFloat():
			f.SetFloat(0.0116 + float64(*n))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			f.Set(reflect.ValueOf([]string{"first of " + name, "second of " + name}))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			items := reflect.MakeSlice(f.Type(), 2, 2)
			for j := range 2 {
				fill(t, items.Index(j), fmt.Sprintf("%s[%d]", name, j), n)
			}
			f.Set(items)
		default:
			t.Fatalf("fullRequest: teach me to fill field %s of kind %s", name, f.Kind())
		}
		if f.IsZero() {
			t.Fatalf("fullRequest: field %s is still zero", name)
		}
	}
}

// sameRequest checks got against want, payloads included: times by
// instant (the zone and monotonic reading do not survive storage, the
// instant does), everything else with reflect.DeepEqual.
func sameRequest(t *testing.T, want, got *computebot.Request) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil request, want %+v", want)
	}
	w, g := normalized(want), normalized(got)
	if !reflect.DeepEqual(w, g) {
		t.Errorf("request differs:\n got %s\nwant %s", dump(g), dump(w))
	}
}

// normalized returns a deep copy of r with every time in UTC, without a
// monotonic reading.
func normalized(r *computebot.Request) *computebot.Request {
	c := *r
	c.DecidedAt, c.CreatedAt = c.DecidedAt.UTC(), c.CreatedAt.UTC()
	c.ApprovalExpiresAt, c.UpdatedAt = c.ApprovalExpiresAt.UTC(), c.UpdatedAt.UTC()
	if r.Launch != nil {
		l := *r.Launch
		c.Launch = &l
	}
	if r.Lambda != nil {
		l := *r.Lambda
		c.Lambda = &l
	}
	// The payloads have no times today; should one get some, this finds it.
	for _, p := range []any{c.Launch, c.Lambda} {
		rv := reflect.ValueOf(p)
		if rv.IsNil() {
			continue
		}
		for i := range rv.Elem().NumField() {
			if rv.Elem().Field(i).Type() == timeType {
				f := rv.Elem().Field(i)
				f.Set(reflect.ValueOf(f.Interface().(time.Time).UTC()))
			}
		}
	}
	return &c
}

func dump(r *computebot.Request) string {
	return fmt.Sprintf("%+v launch=%+v lambda=%+v", *r, r.Launch, r.Lambda)
}

// launchRequest is a minimal launch request.
func launchRequest(id string, state computebot.RequestState) *computebot.Request {
	return &computebot.Request{ID: id, State: state, Launch: &computebot.LaunchRequest{InstanceType: "t3.micro"}}
}

func TestRequestRoundTrip(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	want := fullRequest(t, "R-1")
	in := *normalized(want) // a deep copy
	if err := db.CreateRequest(ctx, &in); err != nil {
		t.Fatal(err)
	}
	// Set times were kept; Version is 1 whatever the caller set.
	want.Version = 1
	sameRequest(t, want, &in)

	got, err := db.Request(ctx, "R-1")
	if err != nil {
		t.Fatal(err)
	}
	sameRequest(t, want, got)

	// The copy is the caller's, payloads included: changing it changes
	// nothing stored.
	got.State = computebot.RequestDenied
	got.Launch.InstanceType = "changed"
	got.Lambda.Function = "changed"
	again, _ := db.Request(ctx, "R-1")
	sameRequest(t, want, again)

	before := time.Now()
	updated, err := db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error {
		sameRequest(t, want, r)
		r.State = computebot.RequestApproved
		r.DecidedBy = "U0BO"
		r.Launch.PublicIP = "54.12.34.56"
		r.Version = 99 // ignored
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want.State, want.DecidedBy, want.Launch.PublicIP = computebot.RequestApproved, "U0BO", "54.12.34.56"
	want.Version = 2
	if updated.UpdatedAt.Before(before) {
		t.Errorf("UpdatedAt %v not set to now (>= %v)", updated.UpdatedAt, before)
	}
	want.UpdatedAt = updated.UpdatedAt
	sameRequest(t, want, updated)
	got, err = db.Request(ctx, "R-1")
	if err != nil {
		t.Fatal(err)
	}
	sameRequest(t, want, got)

	list, err := db.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("Requests: %d requests, want 1", len(list))
	}
	sameRequest(t, want, list[0])
}

// Each payload alone round-trips, and the kind follows from it; a request
// without a payload stays without one.
func TestRequestPayloads(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	for _, tc := range []struct {
		r    *computebot.Request
		kind computebot.RequestKind
	}{
		{&computebot.Request{ID: "R-launch", Launch: &computebot.LaunchRequest{InstanceType: "t3.micro", Lease: time.Hour}}, computebot.KindLaunch},
		{&computebot.Request{ID: "R-lambda", Lambda: &computebot.LambdaRequest{Function: "reindex", Payload: `{"a":1}`, Async: true}}, computebot.KindLambda},
		{&computebot.Request{ID: "R-bare"}, computebot.KindLaunch},
	} {
		if err := db.CreateRequest(ctx, tc.r); err != nil {
			t.Fatal(err)
		}
		got, err := db.Request(ctx, tc.r.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameRequest(t, tc.r, got)
		if got.Kind() != tc.kind {
			t.Errorf("%s: kind %q, want %q", tc.r.ID, got.Kind(), tc.kind)
		}
	}
}

func TestCreateRequestSetsTimes(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	before := time.Now()
	r := launchRequest("R-1", computebot.RequestNew)
	if err := db.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.CreatedAt.Before(before) || !r.UpdatedAt.Equal(r.CreatedAt) {
		t.Fatalf("CreatedAt %v, UpdatedAt %v: want both now", r.CreatedAt, r.UpdatedAt)
	}
	if r.Version != 1 {
		t.Fatalf("Version %d after create, want 1", r.Version)
	}
	// Read right after the create: durable and visible, no wait.
	got, err := db.Request(ctx, "R-1")
	if err != nil {
		t.Fatal(err)
	}
	sameRequest(t, r, got)
}

func TestCreateRequestExists(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	first := launchRequest("R-1", computebot.RequestNew)
	first.Launch.Reason = "first"
	if err := db.CreateRequest(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := launchRequest("R-1", computebot.RequestNew)
	second.Launch.Reason = "second"
	err := db.CreateRequest(ctx, second)
	if !errors.Is(err, computebot.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	if !strings.Contains(err.Error(), "R-1") {
		t.Errorf("error %q does not name the request", err)
	}
	got, _ := db.Request(ctx, "R-1")
	if got.Launch.Reason != "first" || got.Version != 1 {
		t.Fatalf("second create overwrote the first: reason %q, version %d", got.Launch.Reason, got.Version)
	}
	if err := db.CreateRequest(ctx, &computebot.Request{}); err == nil {
		t.Fatal("create with empty ID: no error")
	}
}

// Redelivered envelopes arrive concurrently: of all creates of one ID,
// exactly one succeeds even when they share a commit batch (where a
// refused create makes bbolt rerun the others).
func TestCreateRequestConcurrentDuplicates(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	const ids, copies = 10, 5
	var ok, exists atomic.Int32
	var wg sync.WaitGroup
	for i := range ids * copies {
		wg.Go(func() {
			r := launchRequest(fmt.Sprintf("R-%d", i%ids), computebot.RequestNew)
			r.Launch.Name = fmt.Sprint(i)
			err := db.CreateRequest(ctx, r)
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
	if ok.Load() != ids || exists.Load() != ids*(copies-1) {
		t.Fatalf("%d created, %d ErrExists; want %d and %d", ok.Load(), exists.Load(), ids, ids*(copies-1))
	}
	list, err := db.Requests(ctx)
	if err != nil || len(list) != ids {
		t.Fatalf("Requests: %d, %v; want %d", len(list), err, ids)
	}
}

func TestNotFound(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	if _, err := db.Request(ctx, "R-404"); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("Request: %v, want ErrNotFound", err)
	}
	called := false
	_, err := db.UpdateRequest(ctx, "R-404", func(*computebot.Request) error { called = true; return nil })
	if !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("UpdateRequest: %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "store: update request R-404") {
		t.Errorf("error %q lacks context", err)
	}
	if called {
		t.Error("fn called for a missing request")
	}
}

type refusal struct{ why string }

func (e *refusal) Error() string { return e.why }

func TestUpdateRequestFnErrorAborts(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	if err := db.CreateRequest(ctx, launchRequest("R-1", computebot.RequestPending)); err != nil {
		t.Fatal(err)
	}
	before, _ := db.Request(ctx, "R-1")

	fnErr := fmt.Errorf("approve: %w", computebot.ErrConflict)
	got, err := db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error {
		r.State = computebot.RequestApproved // changed, then refused: must not stick
		r.Launch.InstanceType = "changed"
		return fnErr
	})
	if err != fnErr || !errors.Is(err, computebot.ErrConflict) {
		t.Fatalf("got error %v, want fn's error unchanged", err)
	}
	if got != nil {
		t.Errorf("got request %+v with an error", got)
	}
	var typed *refusal
	_, err = db.UpdateRequest(ctx, "R-1", func(*computebot.Request) error { return &refusal{"no"} })
	if !errors.As(err, &typed) {
		t.Fatalf("errors.As on fn's error: %v", err)
	}

	after, _ := db.Request(ctx, "R-1")
	sameRequest(t, before, after) // Version included: nothing was saved

	_, err = db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error { r.ID = "R-2"; return nil })
	if err == nil {
		t.Fatal("fn changing the ID: no error")
	}
	if _, err := db.Request(ctx, "R-2"); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("R-2 exists after a refused ID change: %v", err)
	}
	after, _ = db.Request(ctx, "R-1")
	sameRequest(t, before, after)
}

// A panic in fn reaches the caller, and the store keeps working.
func TestUpdateRequestPanic(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	if err := db.CreateRequest(ctx, launchRequest("R-1", computebot.RequestNew)); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Fatalf("recovered %v, want boom", v)
			}
		}()
		_, _ = db.UpdateRequest(ctx, "R-1", func(*computebot.Request) error { panic("boom") })
	}()
	r, err := db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error { r.Launch.Name = "after"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 2 {
		t.Fatalf("Version %d, want 2: the panicking update saved something", r.Version)
	}
}

// Every saved update adds one to Version, and the returned request is the
// saved one.
func TestUpdateRequestVersion(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	if err := db.CreateRequest(ctx, launchRequest("R-1", computebot.RequestNew)); err != nil {
		t.Fatal(err)
	}
	for want := int64(2); want <= 5; want++ {
		r, err := db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error {
			if r.Version != want-1 {
				t.Errorf("fn sees version %d, want %d", r.Version, want-1)
			}
			r.Launch.Name = fmt.Sprint(want)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := db.Request(ctx, "R-1")
		if r.Version != want || got.Version != want || got.Launch.Name != fmt.Sprint(want) {
			t.Fatalf("after update: returned version %d, stored %d (%q); want %d", r.Version, got.Version, got.Launch.Name, want)
		}
		sameRequest(t, r, got)
	}
}

// A lost race is detected by the version check and decided again: while
// fn's first call runs, another update is saved; the first attempt's save
// must then fail its compare, and fn be called again with the newer
// request.
func TestUpdateRequestLostRaceRetries(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	if err := db.CreateRequest(ctx, launchRequest("R-1", computebot.RequestPending)); err != nil {
		t.Fatal(err)
	}
	var seen []int64
	r, err := db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error {
		seen = append(seen, r.Version)
		if len(seen) == 1 {
			// The racer, in another goroutine as it would be.
			errc := make(chan error, 1)
			go func() {
				_, err := db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error {
					r.DecidedBy = "racer"
					return nil
				})
				errc <- err
			}()
			if err := <-errc; err != nil {
				return err
			}
		}
		r.Launch.Name = "mine"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []int64{1, 2}) {
		t.Fatalf("fn saw versions %v, want [1 2]: the lost race was not retried", seen)
	}
	if r.Version != 3 || r.DecidedBy != "racer" || r.Launch.Name != "mine" {
		t.Fatalf("saved version %d, decided by %q, name %q; want 3, racer, mine", r.Version, r.DecidedBy, r.Launch.Name)
	}
}

// The approval click race: 50 approvers click at once; the transition
// pending → approved is a compare-and-set, so exactly one wins and the
// stored decider is the winner.
func TestUpdateRequestCompareAndSet(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	if err := db.CreateRequest(ctx, launchRequest("R-1", computebot.RequestPending)); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		winners []string
		lost    atomic.Int32
	)
	for i := range n {
		who := fmt.Sprintf("U%02d", i)
		wg.Go(func() {
			<-start
			_, err := db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error {
				if r.State != computebot.RequestPending {
					return computebot.ErrConflict
				}
				r.State, r.DecidedBy = computebot.RequestApproved, who
				return nil
			})
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, who)
				mu.Unlock()
			case errors.Is(err, computebot.ErrConflict):
				lost.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 || lost.Load() != n-1 {
		t.Fatalf("%d winners %v, %d conflicts; want exactly one winner", len(winners), winners, lost.Load())
	}
	got, _ := db.Request(ctx, "R-1")
	if got.State != computebot.RequestApproved || got.DecidedBy != winners[0] || got.Version != 2 {
		t.Fatalf("stored %s by %s (version %d), want approved by %s (version 2)", got.State, got.DecidedBy, got.Version, winners[0])
	}
}

func TestRequestsFilterAndOrder(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, r := range []*computebot.Request{
		{ID: "R-c", State: computebot.RequestPending, CreatedAt: t0.Add(2 * time.Minute)},
		{ID: "R-b", State: computebot.RequestApproved, CreatedAt: t0},
		{ID: "R-a", State: computebot.RequestPending, CreatedAt: t0}, // tie with R-b: by ID
		{ID: "R-d", State: computebot.RequestDenied, CreatedAt: t0.Add(-time.Hour)},
		{ID: "R-e", State: computebot.RequestLaunched, CreatedAt: t0.Add(time.Minute)},
		{ID: "R-f", State: computebot.RequestExecuting, CreatedAt: t0.Add(3 * time.Minute), Lambda: &computebot.LambdaRequest{Function: "f"}},
	} {
		if err := db.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(states ...computebot.RequestState) string {
		t.Helper()
		list, err := db.Requests(ctx, states...)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range list {
			out = append(out, r.ID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		states []computebot.RequestState
		want   string
	}{
		{nil, "R-d,R-a,R-b,R-e,R-c,R-f"},
		{[]computebot.RequestState{computebot.RequestPending}, "R-a,R-c"},
		{[]computebot.RequestState{computebot.RequestApproved, computebot.RequestLaunched}, "R-b,R-e"},
		{[]computebot.RequestState{computebot.RequestExecuting}, "R-f"},
		{[]computebot.RequestState{computebot.RequestDone}, ""},
	} {
		if got := ids(tc.states...); got != tc.want {
			t.Errorf("Requests(%v) = %s, want %s", tc.states, got, tc.want)
		}
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub", "dir", "computebot.db") // parents created
	db, err := Open(path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	want := fullRequest(t, "R-1")
	if err := db.CreateRequest(ctx, want); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error {
		r.State = computebot.RequestApproved
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want, _ = db.Request(ctx, "R-1")
	entry := computebot.AuditEntry{Time: time.Now(), Actor: "U0BO", Action: "approve", RequestID: "R-1", Result: "ok"}
	if err := db.Audit(ctx, entry); err != nil {
		t.Fatal(err)
	}
	if err := set(ctx, db, "dedup", "E1", 42); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	closedChecks := map[string]error{}
	closedChecks["CreateRequest"] = db.CreateRequest(ctx, launchRequest("R-2", computebot.RequestNew))
	_, closedChecks["UpdateRequest"] = db.UpdateRequest(ctx, "R-1", func(*computebot.Request) error { return nil })
	closedChecks["Audit"] = db.Audit(ctx, entry)
	closedChecks["Update"] = db.Update(ctx, "dedup", "E1", new(int), func(bool) error { return nil })
	_, closedChecks["Request"] = db.Request(ctx, "R-1")
	_, closedChecks["Requests"] = db.Requests(ctx)
	_, closedChecks["AuditLog"] = db.AuditLog(ctx)
	closedChecks["Get"] = db.Get(ctx, "dedup", "E1", new(int))
	closedChecks["List"] = db.List(ctx, "dedup", func(string, []byte) error { return nil })
	for name, err := range closedChecks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file: %v, %v; want mode 0600", fi, err)
	}

	db = openAt(t, path)
	got, err := db.Request(ctx, "R-1")
	if err != nil {
		t.Fatal(err)
	}
	sameRequest(t, want, got)
	log, err := db.AuditLog(ctx)
	if err != nil || len(log) != 1 || !log[0].Time.Equal(entry.Time) {
		t.Fatalf("audit log after reopen: %v, %+v", err, log)
	}
	var n int
	if err := db.Get(ctx, "dedup", "E1", &n); err != nil || n != 42 {
		t.Fatalf("kv after reopen: %d, %v", n, err)
	}
	// The audit sequence continues after a reopen instead of restarting.
	if err := db.Audit(ctx, computebot.AuditEntry{Action: "deny"}); err != nil {
		t.Fatal(err)
	}
	if log, _ = db.AuditLog(ctx); len(log) != 2 || log[1].Action != "deny" {
		t.Fatalf("audit log: %+v", log)
	}
}

func TestLockedByAnotherOpen(t *testing.T) {
	db, path := newDB(t)
	_ = db
	start := time.Now()
	_, err := Open(path, Options{Timeout: 100 * time.Millisecond, Logger: quiet})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if want := "store: " + path + " is locked by another process"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
	// bbolt polls the lock every 50ms and may give up one poll early.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("second Open gave up after %v, want about the 100ms timeout", d)
	}
}

// TestLockedByAnotherProcess is the real case: a second bot process.
// The child (this test binary, re-run) holds the store open until killed.
func TestLockedByAnotherProcess(t *testing.T) {
	if path := os.Getenv("COMPUTEBOT_STORE_TEST_HOLD"); path != "" {
		db, err := Open(path, Options{Logger: quiet})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		defer db.Close()
		fmt.Println("holding")
		time.Sleep(time.Minute)
		return
	}
	path := filepath.Join(t.TempDir(), "computebot.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedByAnotherProcess$")
	cmd.Env = append(os.Environ(), "COMPUTEBOT_STORE_TEST_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 64)
	if n, _ := out.Read(buf); !strings.Contains(string(buf[:n]), "holding") {
		t.Fatalf("child: %q", buf[:n])
	}
	_, err = Open(path, Options{Timeout: 200 * time.Millisecond, Logger: quiet})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "is locked by another process") {
		t.Fatalf("Open while another process holds the store: %v, want ErrLocked", err)
	}
}

// The bot process killed (SIGKILL) at an arbitrary moment loses nothing it
// was told is stored: the child (this test binary, re-run) creates
// requests from several goroutines, printing each ID once CreateRequest
// has returned, and is killed mid-stream.
func TestSurvivesKill(t *testing.T) {
	if path := os.Getenv("COMPUTEBOT_STORE_TEST_CREATE"); path != "" {
		db, err := Open(path, Options{Logger: quiet})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		var (
			mu sync.Mutex
			n  atomic.Int64
		)
		for range 4 {
			go func() {
				for {
					id := fmt.Sprintf("R-%07d", n.Add(1))
					if err := db.CreateRequest(context.Background(), benchRequest(id)); err != nil {
						fmt.Println("create:", err)
						os.Exit(1)
					}
					mu.Lock()
					fmt.Println(id)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Minute)
		return
	}
	path := filepath.Join(t.TempDir(), "computebot.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesKill$")
	cmd.Env = append(os.Environ(), "COMPUTEBOT_STORE_TEST_CREATE="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "R-") {
			t.Fatalf("child: %s", line)
		}
		acked = append(acked, line)
		if len(acked) == 200 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child created only %d requests", len(acked))
	}
	db := openAt(t, path)
	ctx := t.Context()
	for _, id := range acked {
		if _, err := db.Request(ctx, id); err != nil {
			t.Fatalf("acked request lost by the kill: %v", err)
		}
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "computebot.db")
	db, err := Open(path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.View(func(tx *bolt.Tx) error {
		if v := string(tx.Bucket(metaBucket).Get(schemaVersionKey)); v != "2" {
			return fmt.Errorf("schema version %q written, want 2", v)
		}
		return nil
	})
	if err == nil {
		err = b.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(metaBucket).Put(schemaVersionKey, []byte("3"))
		})
	}
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{Logger: quiet})
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("Open of a newer file: %v, want ErrNewerSchema naming version 3", err)
	}
	_, err = Open(path, Options{Logger: quiet, ReadOnly: true})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("read-only Open of a newer file: %v, want ErrNewerSchema", err)
	}
}

// TestReadOnly: a read-only open reads the audit log, writes nothing
// (not even a migration: a schema 1 file stays schema 1), waits for a bot
// holding the file, and lets several readers in at once.
func TestReadOnly(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "computebot.db")
	db, err := Open(path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Audit(ctx, computebot.AuditEntry{Action: "launch", Actor: "U1"}); err != nil {
		t.Fatal(err)
	}
	// The bot holds the file: a reader waits, then says it is locked.
	if _, err := Open(path, Options{Logger: quiet, ReadOnly: true, Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only Open beside the bot: %v, want ErrLocked", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Mark the file schema 1, as an older bot left it.
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put(schemaVersionKey, []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := Open(path, Options{Logger: quiet, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(path, Options{Logger: quiet, ReadOnly: true, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	log, err := r1.AuditLog(ctx)
	if err != nil || len(log) != 1 || log[0].Action != "launch" {
		t.Fatalf("AuditLog = %+v, %v", log, err)
	}
	if err := r1.Audit(ctx, computebot.AuditEntry{Action: "stop"}); err == nil {
		t.Error("a read-only store took a write")
	}
	for _, r := range []*DB{r1, r2} {
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a read-only open changed the file")
	}
	// A file no bot ever initialised reads as an empty log.
	empty := filepath.Join(t.TempDir(), "empty.db")
	eb, err := bolt.Open(empty, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := eb.Close(); err != nil {
		t.Fatal(err)
	}
	r3, err := Open(empty, Options{Logger: quiet, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if log, err := r3.AuditSince(ctx, time.Time{}); err != nil || len(log) != 0 {
		t.Errorf("empty file: %+v, %v", log, err)
	}
}

func TestAuditOrder(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	// Same timestamp for all, and one going back in time: order must come
	// from the sequence, not from the clock.
	ts := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []computebot.AuditEntry
	for i := range 300 { // > 255: a little-endian or text key would misorder
		e := computebot.AuditEntry{
			Time: ts, Actor: "computebot", Action: "launch", RequestID: fmt.Sprintf("R-%d", i),
			Target: "i-0123", Result: "ok", Detail: "n=" + fmt.Sprint(i),
		}
		if i == 7 {
			e.Time = ts.Add(-time.Hour)
		}
		if err := db.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	got, err := db.AuditLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) {
			t.Fatalf("entry %d time %v, want %v", i, g.Time, w.Time)
		}
		g.Time, w.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("entry %d: got %+v, want %+v", i, g, w)
		}
	}

	// Concurrent appends: none lost, and a zero time is stamped.
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if err := db.Audit(ctx, computebot.AuditEntry{Action: "concurrent", Detail: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ = db.AuditLog(ctx)
	if len(got) != 340 || got[339].Time.IsZero() {
		t.Fatalf("after concurrent appends: %d entries, last %+v", len(got), got[len(got)-1])
	}
}

func TestKV(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	type state struct {
		LastRun time.Time
		Seen    []string
	}
	var s state
	if err := db.Get(ctx, "idle", "state", &s); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("Get from a missing bucket: %v, want ErrNotFound", err)
	}
	want := state{LastRun: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Seen: []string{"i-1", "i-2"}}
	if err := set(ctx, db, "idle", "state", want); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(ctx, "idle", "other", &s); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	if err := db.Get(ctx, "idle", "state", &s); err != nil || !reflect.DeepEqual(s, want) {
		t.Fatalf("Get: %+v, %v; want %+v", s, err, want)
	}
	// Buckets are separate namespaces, also from the internal buckets.
	if err := db.Get(ctx, "requests", "state", &s); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("Get from another bucket: %v", err)
	}
	if err := set(ctx, db, "requests", "R-1", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Request(ctx, "R-1"); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("kv bucket 'requests' leaked into requests: %v", err)
	}

	// Update replaces.
	want.Seen = nil
	if err := set(ctx, db, "idle", "state", want); err != nil {
		t.Fatal(err)
	}
	s = state{}
	if err := db.Get(ctx, "idle", "state", &s); err != nil || !reflect.DeepEqual(s, want) {
		t.Fatalf("Get after replace: %+v, %v", s, err)
	}

	// Update with ErrDeleteKey deletes; deleting an absent key (or from an
	// absent bucket) is no error.
	del := func(bucket, key string) error {
		return db.Update(ctx, bucket, key, new(state), func(bool) error { return computebot.ErrDeleteKey })
	}
	if err := del("idle", "state"); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(ctx, "idle", "state", &s); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("Get after the delete: %v", err)
	}
	for _, tc := range [][2]string{{"idle", "state"}, {"nobucket", "k"}} {
		if err := del(tc[0], tc[1]); err != nil {
			t.Errorf("delete of absent %s/%s: %v", tc[0], tc[1], err)
		}
	}
	var n int

	if err := set(ctx, db, "", "k", 1); err == nil {
		t.Error("Update with an empty bucket name: no error")
	}
	if err := set(ctx, db, "b", "", 1); err == nil {
		t.Error("Update with an empty key: no error")
	}
	if err := set(ctx, db, "b", "k", func() {}); err == nil {
		t.Error("Update of an unencodable value: no error")
	}
	if err := set(ctx, db, "idle", "state", want); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(ctx, "idle", "state", &n); err == nil {
		t.Error("Get into the wrong type: no error")
	}
}

func TestContextCancelled(t *testing.T) {
	db, _ := newDB(t)
	if err := db.CreateRequest(t.Context(), launchRequest("R-1", computebot.RequestPending)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fnCalled := false
	checks := map[string]error{}
	checks["CreateRequest"] = db.CreateRequest(ctx, launchRequest("R-2", computebot.RequestNew))
	_, checks["Request"] = db.Request(ctx, "R-1")
	_, checks["UpdateRequest"] = db.UpdateRequest(ctx, "R-1", func(*computebot.Request) error { fnCalled = true; return nil })
	_, checks["Requests"] = db.Requests(ctx)
	checks["Audit"] = db.Audit(ctx, computebot.AuditEntry{Action: "launch"})
	_, checks["AuditLog"] = db.AuditLog(ctx)
	checks["Get"] = db.Get(ctx, "b", "k", new(int))
	checks["Update"] = db.Update(ctx, "b", "k", new(int), func(bool) error { fnCalled = true; return nil })
	for name, err := range checks {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
		}
	}
	if fnCalled {
		t.Error("UpdateRequest or Update called fn with a cancelled context")
	}
	// Nothing happened.
	bg := t.Context()
	if _, err := db.Request(bg, "R-2"); !errors.Is(err, computebot.ErrNotFound) {
		t.Errorf("R-2 created despite the cancelled context: %v", err)
	}
	if log, _ := db.AuditLog(bg); len(log) != 0 {
		t.Errorf("audit entry written despite the cancelled context: %+v", log)
	}
}
