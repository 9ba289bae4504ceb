// Package storetest is the contract every implementation of the store
// keeps: the embedded bbolt file (package store) and DynamoDB
// (aws/dynamostore) run this one suite, so the workflows, the idle
// scheduler and the leases can rely on the same behaviour on either.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/cluster"
)

// Store is what the suite tests: computebot.Store and the key/value API.
type Store interface {
	computebot.Store
	Get(ctx context.Context, bucket, key string, v any) error
	Update(ctx context.Context, bucket, key string, v any, fn func(found bool) error) error
	List(ctx context.Context, bucket string, fn func(key string, raw []byte) error) error
}

// Bed opens stores for the suite.
type Bed struct {
	// Open returns a new, empty store. Two stores opened with the same
	// shared key see the same data (two replicas on one table); "" is a
	// store of its own. The suite closes what it opens.
	Open func(t *testing.T, shared string) Store
	// Shared is false for a store that one process holds alone (bbolt):
	// the cross-store cases then run on one store.
	Shared bool
	// Expire makes done intents older than keep invisible, as the
	// implementation does it (bbolt: PruneIntents; DynamoDB: the expiry
	// attribute), after time has moved on by age.
	Expire func(t *testing.T, s Store, age time.Duration)
}

// Run runs the contract.
func Run(t *testing.T, b Bed) {
	t.Run("requests", func(t *testing.T) { requests(t, b) })
	t.Run("races", func(t *testing.T) { races(t, b) })
	t.Run("intents", func(t *testing.T) { intents(t, b) })
	t.Run("audit", func(t *testing.T) { audit(t, b) })
	t.Run("kv", func(t *testing.T) { kv(t, b) })
	t.Run("leases", func(t *testing.T) { leases(t, b) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func open(t *testing.T, b Bed, shared string) Store {
	s := b.Open(t, shared)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// pair opens two stores on the same data: two replicas when the
// implementation is shared, one store twice otherwise.
func pair(t *testing.T, b Bed) (Store, Store) {
	key := t.Name()
	s1 := open(t, b, key)
	if !b.Shared {
		return s1, s1
	}
	return s1, open(t, b, key)
}

func launchRequest(id string, created time.Time) *computebot.Request {
	return &computebot.Request{
		ID: id, Requester: "UANA", ChannelID: "CDATA", State: computebot.RequestNew, CreatedAt: created,
		Launch: &computebot.LaunchRequest{InstanceType: "t3.small", ImageID: "ami-1", Lease: 8 * time.Hour},
	}
}

func requests(t *testing.T, b Bed) {
	c := ctx(t)
	s1, s2 := pair(t, b)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	if _, err := s1.Request(c, "R-none"); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("Request of a missing ID: %v, want ErrNotFound", err)
	}
	for i, id := range []string{"R-b", "R-a", "R-c"} {
		if err := s1.CreateRequest(c, launchRequest(id, base.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatalf("CreateRequest %s: %v", id, err)
		}
	}
	r := launchRequest("R-a", base)
	if err := s2.CreateRequest(c, r); !errors.Is(err, computebot.ErrExists) {
		t.Fatalf("CreateRequest of an existing ID from the other store: %v, want ErrExists", err)
	}
	got, err := s2.Request(c, "R-a")
	if err != nil || got.Version != 1 || got.Launch.InstanceType != "t3.small" || !got.CreatedAt.Equal(base.Add(time.Minute)) {
		t.Fatalf("Request R-a = %+v, %v; want version 1, created at %v", got, err, base.Add(time.Minute))
	}

	// A transition, seen by the other store at once.
	up, err := s1.UpdateRequest(c, "R-a", func(r *computebot.Request) error {
		r.State, r.MessageTS, r.Claim = computebot.RequestPending, "1700000000.000100", "replica-1"
		return nil
	})
	if err != nil || up.Version != 2 {
		t.Fatalf("UpdateRequest: %+v, %v; want version 2", up, err)
	}
	if got, err := s2.Request(c, "R-a"); err != nil || got.State != computebot.RequestPending || got.Version != 2 || got.Claim != "replica-1" {
		t.Fatalf("the other store reads %+v, %v; want pending, version 2, claimed", got, err)
	}
	if got, err := s2.RequestByMessage(c, "CDATA", "1700000000.000100"); err != nil || got.ID != "R-a" {
		t.Fatalf("RequestByMessage = %v, %v; want R-a", got, err)
	}
	for _, q := range [][2]string{{"CDATA", "1700000000.000999"}, {"COTHER", "1700000000.000100"}, {"CDATA", ""}} {
		if _, err := s2.RequestByMessage(c, q[0], q[1]); !errors.Is(err, computebot.ErrNotFound) {
			t.Errorf("RequestByMessage(%q, %q): %v, want ErrNotFound", q[0], q[1], err)
		}
	}

	// fn's error aborts, unwrapped; fn may not change the ID.
	boom := errors.New("boom")
	if _, err := s1.UpdateRequest(c, "R-a", func(*computebot.Request) error { return boom }); err != boom {
		t.Errorf("UpdateRequest with a failing fn: %v, want it unchanged", err)
	}
	if _, err := s1.UpdateRequest(c, "R-a", func(r *computebot.Request) error { r.ID = "R-z"; return nil }); err == nil {
		t.Error("UpdateRequest let fn change the ID")
	}
	if _, err := s1.UpdateRequest(c, "R-none", func(*computebot.Request) error { return nil }); !errors.Is(err, computebot.ErrNotFound) {
		t.Errorf("UpdateRequest of a missing ID: %v, want ErrNotFound", err)
	}
	if got, _ := s1.Request(c, "R-a"); got.Version != 2 {
		t.Errorf("aborted updates changed the version to %d", got.Version)
	}

	// Listing: by state, oldest first; terminal requests drop out of the
	// open states.
	for _, id := range []string{"R-b", "R-c"} {
		if _, err := s1.UpdateRequest(c, id, func(r *computebot.Request) error { r.State = computebot.RequestApproved; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(rs []*computebot.Request) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	open, err := s2.Requests(c, computebot.RequestPending, computebot.RequestApproved)
	if got := ids(open); err != nil || !slices.Equal(got, []string{"R-b", "R-a", "R-c"}) {
		t.Fatalf("Requests(pending, approved) = %v, %v; want R-b R-a R-c (oldest first)", got, err)
	}
	if _, err := s1.UpdateRequest(c, "R-b", func(r *computebot.Request) error { r.State = computebot.RequestDone; return nil }); err != nil {
		t.Fatal(err)
	}
	open, err = s2.Requests(c, computebot.RequestApproved)
	if got := ids(open); err != nil || !slices.Equal(got, []string{"R-c"}) {
		t.Fatalf("Requests(approved) after R-b is done = %v, %v; want R-c", got, err)
	}
	done, err := s2.Requests(c, computebot.RequestDone)
	if got := ids(done); err != nil || !slices.Equal(got, []string{"R-b"}) {
		t.Fatalf("Requests(done) = %v, %v; want R-b", got, err)
	}
	all, err := s2.Requests(c)
	if got := ids(all); err != nil || !slices.Equal(got, []string{"R-b", "R-a", "R-c"}) {
		t.Fatalf("Requests() = %v, %v; want all three", got, err)
	}
}

// races: concurrent compare-and-sets from two stores, as two replicas.
func races(t *testing.T, b Bed) {
	c := ctx(t)
	s1, s2 := pair(t, b)
	stores := []Store{s1, s2}

	// An approval is single-use: of 8 concurrent deciders, one wins and
	// the others see its decision.
	if err := s1.CreateRequest(c, launchRequest("R-race", time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.UpdateRequest(c, "R-race", func(r *computebot.Request) error { r.State = computebot.RequestPending; return nil }); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := stores[i%2].UpdateRequest(c, "R-race", func(r *computebot.Request) error {
				if r.State != computebot.RequestPending {
					return computebot.ErrConflict
				}
				r.State, r.DecidedBy = computebot.RequestApproved, fmt.Sprintf("U%d", i)
				return nil
			})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, computebot.ErrConflict):
				t.Errorf("decider %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d deciders won, want exactly 1", wins.Load())
	}

	// No lost update: 16 increments through both stores all land.
	type counter struct{ N int }
	for i := range 16 {
		wg.Go(func() {
			var v counter
			if err := stores[i%2].Update(c, "counters", "n", &v, func(bool) error { v.N++; return nil }); err != nil {
				t.Errorf("increment %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	var v counter
	if err := s2.Get(c, "counters", "n", &v); err != nil || v.N != 16 {
		t.Fatalf("counter = %d, %v; want 16", v.N, err)
	}

	// Of concurrent creates of one ID exactly one succeeds.
	var created atomic.Int32
	for i := range 6 {
		wg.Go(func() {
			err := stores[i%2].CreateRequest(c, launchRequest("R-once", time.Now()))
			if err == nil {
				created.Add(1)
			} else if !errors.Is(err, computebot.ErrExists) {
				t.Errorf("create %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("%d creates of one ID succeeded, want 1", created.Load())
	}
}

func intents(t *testing.T, b Bed) {
	c := ctx(t)
	s1, s2 := pair(t, b)
	base := time.Now().UTC().Add(-time.Minute)
	in := &computebot.Intent{ID: "E-1", TriggerID: "T-1", Actor: "UANA", Source: computebot.SourceSlash, Command: "/launch",
		Text: "t3.small", Ack: "", State: computebot.IntentAccepted, CreatedAt: base, Claim: "replica-1"}
	if _, err := s1.AcceptIntent(c, in); err != nil {
		t.Fatal(err)
	}
	// The redelivery, on the other replica: recognised, with the stored one.
	again := *in
	again.Claim, again.Text = "replica-2", "changed"
	stored, err := s2.AcceptIntent(c, &again)
	if !errors.Is(err, computebot.ErrExists) || stored == nil || stored.Text != "t3.small" || stored.Claim != "replica-1" {
		t.Fatalf("AcceptIntent of a redelivery = %+v, %v; want the stored intent and ErrExists", stored, err)
	}
	done := &computebot.Intent{ID: "E-2", Actor: "UBO", Source: computebot.SourceSlash, Command: "/help", Ack: "help text",
		ReplyInAck: true, State: computebot.IntentDone, CreatedAt: base.Add(time.Second)}
	if _, err := s2.AcceptIntent(c, done); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.AcceptIntent(c, &computebot.Intent{ID: "E-3", Source: computebot.SourceClick, State: computebot.IntentAccepted,
		CreatedAt: base.Add(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	list := func() []string {
		ins, err := s2.UnfinishedIntents(c)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, in := range ins {
			out = append(out, in.ID)
		}
		return out
	}
	if got := list(); !slices.Equal(got, []string{"E-1", "E-3"}) {
		t.Fatalf("UnfinishedIntents = %v, want E-1 E-3", got)
	}
	up, err := s1.UpdateIntent(c, "E-1", func(in *computebot.Intent) error { in.Step = "posting"; return nil })
	if err != nil || up.Version != 2 || up.Step != "posting" {
		t.Fatalf("UpdateIntent = %+v, %v", up, err)
	}
	if _, err := s2.UpdateIntent(c, "E-1", func(in *computebot.Intent) error { in.State = computebot.IntentDone; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []string{"E-3"}) {
		t.Fatalf("UnfinishedIntents after E-1 is done = %v, want E-3", got)
	}
	if got, err := s1.Intent(c, "E-2"); err != nil || got.Ack != "help text" {
		t.Fatalf("Intent E-2 = %+v, %v", got, err)
	}

	// De-duplication records go away after their keep time: a done
	// intent is forgotten, an unfinished one never.
	b.Expire(t, s1, 25*time.Hour)
	for _, id := range []string{"E-1", "E-2"} {
		if _, err := s2.Intent(c, id); !errors.Is(err, computebot.ErrNotFound) {
			t.Errorf("done intent %s after its keep time: %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s2.Intent(c, "E-3"); err != nil {
		t.Errorf("unfinished intent E-3 after a day: %v, want it kept", err)
	}
}

func audit(t *testing.T, b Bed) {
	c := ctx(t)
	s1, s2 := pair(t, b)
	now := time.Now().UTC()
	days := []time.Time{now.Add(-72 * time.Hour), now.Add(-49 * time.Hour), now.Add(-26 * time.Hour), now.Add(-time.Minute), now}
	for i, at := range days {
		st := []Store{s1, s2}[i%2]
		if err := st.Audit(c, computebot.AuditEntry{Time: at, Actor: "UANA", Action: "launch", RequestID: fmt.Sprintf("R-%d", i), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := func(es []computebot.AuditEntry) []string {
		out := []string{}
		for _, e := range es {
			out = append(out, e.RequestID)
		}
		return out
	}
	all, err := s1.AuditLog(c)
	if got := reqs(all); err != nil || !slices.Equal(got, []string{"R-0", "R-1", "R-2", "R-3", "R-4"}) {
		t.Fatalf("AuditLog = %v, %v", got, err)
	}
	since, err := s2.AuditSince(c, now.Add(-50*time.Hour))
	if got := reqs(since); err != nil || !slices.Equal(got, []string{"R-1", "R-2", "R-3", "R-4"}) {
		t.Fatalf("AuditSince(50h ago) = %v, %v; want R-1..R-4", got, err)
	}
	since, err = s2.AuditSince(c, now.Add(-time.Minute))
	if got := reqs(since); err != nil || !slices.Equal(got, []string{"R-3", "R-4"}) {
		t.Fatalf("AuditSince(1m ago) = %v, %v; want R-3 R-4 (at or after)", got, err)
	}
	if !since[0].Time.Equal(days[3]) || since[0].Actor != "UANA" || since[0].Action != "launch" {
		t.Errorf("entry read back as %+v", since[0])
	}
}

func kv(t *testing.T, b Bed) {
	c := ctx(t)
	s1, s2 := pair(t, b)
	type entry struct {
		State string `json:"state"`
		N     int    `json:"n"`
	}
	var v entry
	if err := s1.Get(c, "notices", "i-1", &v); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	for _, k := range []string{"i-2", "i-1", "i-3"} {
		if err := s1.Update(c, "notices", k, &v, func(found bool) error {
			if found {
				return errors.New("found a new key")
			}
			v.State, v.N = "noticed", 1
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// fn sees the stored value; its error aborts, unchanged.
	boom := errors.New("boom")
	err := s2.Update(c, "notices", "i-1", &v, func(found bool) error {
		if !found || v.State != "noticed" || v.N != 1 {
			return fmt.Errorf("fn saw %+v, found %v", v, found)
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Update with a failing fn: %v", err)
	}
	// A conditional delete.
	if err := s2.Update(c, "notices", "i-3", &v, func(bool) error { return computebot.ErrDeleteKey }); err != nil {
		t.Fatal(err)
	}
	if err := s2.Update(c, "notices", "i-absent", &v, func(bool) error { return computebot.ErrDeleteKey }); err != nil {
		t.Fatalf("deleting an absent key: %v", err)
	}
	var keys []string
	err = s1.List(c, "notices", func(key string, raw []byte) error {
		keys = append(keys, key+"="+string(raw))
		return nil
	})
	want := []string{`i-1={"state":"noticed","n":1}`, `i-2={"state":"noticed","n":1}`}
	if err != nil || !slices.Equal(keys, want) {
		t.Fatalf("List = %q, %v; want %q", keys, err, want)
	}
	if err := s1.List(c, "empty-bucket", func(string, []byte) error { return errors.New("called") }); err != nil {
		t.Fatalf("List of an empty bucket: %v", err)
	}
}

// clock is a test clock two clusters share (each judges by its own
// elapsed time; here both advance together).
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// leases: the leader lease and the replicas' heartbeats (package cluster)
// on the store, as two replicas see them.
func leases(t *testing.T, b Bed) {
	c := ctx(t)
	s1, s2 := pair(t, b)
	clk := &clock{now: time.Now()}
	const ttl = 15 * time.Second
	newCluster := func(s Store, id string) *cluster.Cluster {
		cl, err := cluster.New(s, cluster.Options{Self: id, LeaseTTL: ttl, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	a, bb := newCluster(s1, "replica-a"), newCluster(s2, "replica-b")
	a.Tick(c)
	bb.Tick(c)
	tokA, _, okA := a.Lease()
	if !okA || bb.Leading() {
		t.Fatalf("after one tick each: a leads %v, b leads %v; want a only", okA, bb.Leading())
	}
	// a renews; b keeps seeing new versions and never takes over.
	for range 6 {
		clk.add(5 * time.Second)
		a.Tick(c)
		bb.Tick(c)
		if bb.Leading() {
			t.Fatal("b took a lease a keeps renewing")
		}
	}
	tok2, until2, _ := a.Lease()
	if tok2 != tokA || !until2.After(clk.Now()) {
		t.Fatalf("after renewals: token %d (want %d: a renewal keeps the term), until %v (want ahead of now)", tok2, tokA, until2)
	}
	if bb.Gone(c, "replica-a") {
		t.Fatal("a beats, yet b judges it gone")
	}
	// a dies (no more ticks). It stops acting before b can take over.
	clk.add(ttl - ttl/5)
	if a.Leading() {
		t.Fatal("a still leads TTL-margin after its last renewal")
	}
	bb.Tick(c) // b reads the version a left; counts from here
	if bb.Leading() {
		t.Fatal("b took the lease on its first read of a's last version")
	}
	clk.add(ttl)
	bb.Tick(c)
	tokB, _, okB := bb.Lease()
	if !okB || tokB <= tok2 {
		t.Fatalf("b after a whole TTL of a's silence: leads %v with token %d; want it, with a token above %d", okB, tokB, tok2)
	}
	for range 3 {
		clk.add(5 * time.Second)
		bb.Tick(c)
		_ = bb.Gone(c, "replica-a")
	}
	if !bb.Gone(c, "replica-a") {
		t.Fatal("a's heartbeat stood still for 2 TTL, yet it is not gone")
	}
	if bb.Gone(c, "replica-b") || !bb.Gone(c, "") || !bb.Gone(c, "never-seen") {
		t.Fatal("Gone: self must never be gone; no claim and an unknown replica always are")
	}
	// a comes back: it sees b's lease and does not take it.
	a.Tick(c)
	if a.Leading() || !bb.Leading() {
		t.Fatal("a took back the lease b holds")
	}
	// b stops cleanly: a takes over at its next tick, with a newer token.
	bb.Release(c)
	if bb.Leading() {
		t.Fatal("b leads after releasing")
	}
	a.Tick(c)
	tokA2, _, ok := a.Lease()
	if !ok || tokA2 <= tokB {
		t.Fatalf("a after b released: leads %v with token %d; want it, above %d", ok, tokA2, tokB)
	}
	if !a.Gone(c, "replica-b") {
		t.Fatal("b released its heartbeat, yet a does not see it gone")
	}

	// Every replica watches every heartbeat: c has been silent for 2 TTL
	// when the leader a dies; d, which took no part in leading, judges c
	// gone at once after taking the lease, without watching it anew.
	s3 := s2
	if b.Shared {
		s3 = open(t, b, t.Name())
	}
	cc, d := newCluster(s3, "replica-c"), newCluster(s2, "replica-d")
	cc.Tick(c)
	d.Tick(c)
	for range 7 {
		clk.add(5 * time.Second)
		a.Tick(c)
		d.Tick(c)
	}
	clk.add(ttl + 5*time.Second)
	d.Tick(c) // a silent for a whole TTL: d takes over
	d.Tick(c)
	if !d.Leading() {
		t.Fatal("d did not take over from the silent leader a")
	}
	if !d.Gone(c, "replica-c") {
		t.Fatal("the new leader d does not judge c gone, though it has watched c stand still for 2 TTL")
	}
	fresh := newCluster(s3, "replica-new")
	fresh.Tick(c) // joins after d's last tick
	if d.Gone(c, "replica-new") {
		t.Fatal("a replica that joined after the last tick is judged gone")
	}
	if !d.Healthy() || a.Healthy() {
		t.Fatal("Healthy: d beats (want healthy), a stopped beating a while ago (want not)")
	}
}
