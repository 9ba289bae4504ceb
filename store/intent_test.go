package store

import (
	"errors"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
)

// TestIntentRoundTrip: every field of computebot.Intent survives the store.
func TestIntentRoundTrip(t *testing.T) {
	ctx := t.Context()
	db, path := newDB(t)
	in := &computebot.Intent{}
	n := 0
	fill(t, reflect.ValueOf(in).Elem(), "Intent", &n)
	in.ID, in.State = "E-1", computebot.IntentAccepted
	want := *in
	if _, err := db.AcceptIntent(ctx, in); err != nil {
		t.Fatal(err)
	}
	want.Version = 1
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path)
	got, err := db.Intent(ctx, "E-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*computebot.Intent{&want, got} {
		x.CreatedAt, x.UpdatedAt = x.CreatedAt.UTC().Round(0), x.UpdatedAt.UTC().Round(0)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("intent differs:\n got %+v\nwant %+v", *got, want)
	}
}

// TestAcceptIntentOnce: the envelope's second delivery finds the first's
// intent, answer included, and writes nothing.
func TestAcceptIntentOnce(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	first := &computebot.Intent{ID: "E-1", Actor: "UANA", Source: computebot.SourceSlash, Command: "/launch", Text: "t9.huge",
		Ack: "`t9.huge` is not an allowed instance type.", State: computebot.IntentDone}
	if _, err := db.AcceptIntent(ctx, first); err != nil {
		t.Fatal(err)
	}
	again := &computebot.Intent{ID: "E-1", Actor: "UANA", Source: computebot.SourceSlash, Command: "/launch", Text: "t9.huge", State: computebot.IntentAccepted}
	stored, err := db.AcceptIntent(ctx, again)
	if !errors.Is(err, computebot.ErrExists) {
		t.Fatalf("second AcceptIntent: %v, want ErrExists", err)
	}
	if stored == nil || stored.Ack != first.Ack || stored.State != computebot.IntentDone || stored.Version != 1 {
		t.Fatalf("stored = %+v, want the first intent", stored)
	}
	// Of many concurrent deliveries, exactly one is accepted.
	var accepted atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := db.AcceptIntent(ctx, &computebot.Intent{ID: "E-2", State: computebot.IntentAccepted})
			switch {
			case err == nil:
				accepted.Add(1)
			case !errors.Is(err, computebot.ErrExists):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d of 20 concurrent AcceptIntent won, want 1", n)
	}
}

func TestUnfinishedAndPrunedIntents(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	t0 := time.Now().Add(-time.Hour)
	for i, id := range []string{"E-3", "E-1", "E-2"} {
		state := computebot.IntentAccepted
		if id == "E-2" {
			state = computebot.IntentDone
		}
		if _, err := db.AcceptIntent(ctx, &computebot.Intent{ID: id, State: state, CreatedAt: t0.Add(time.Duration(i) * time.Minute), UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	open, err := db.UnfinishedIntents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 || open[0].ID != "E-3" || open[1].ID != "E-1" {
		t.Fatalf("unfinished = %v, want E-3 then E-1 (by creation)", ids(open))
	}
	if _, err := db.UpdateIntent(ctx, "E-3", func(in *computebot.Intent) error { in.State = computebot.IntentDone; return nil }); err != nil {
		t.Fatal(err)
	}
	// E-2 was done an hour ago; E-3 just now; E-1 is not done.
	n, err := db.PruneIntents(ctx, time.Now().Add(-time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("PruneIntents = %d, %v; want 1", n, err)
	}
	for id, want := range map[string]bool{"E-1": true, "E-2": false, "E-3": true} {
		_, err := db.Intent(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("%s kept = %v, want %v (%v)", id, got, want, err)
		}
	}
}

func ids(ins []*computebot.Intent) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

// TestPruneRechecks: prune scans beside the writers and checks each
// candidate again under the write lock, so a record that changed between
// the scan and the delete (an intent reopened, say) is kept; and more
// candidates than one delete batch are all pruned.
func TestPruneRechecks(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	old := time.Now().Add(-48 * time.Hour)
	const count = pruneBatch*2 + 7
	for i := range count {
		if _, err := db.AcceptIntent(ctx, &computebot.Intent{ID: "P-" + strconv.Itoa(i), State: computebot.IntentDone, CreatedAt: old, UpdatedAt: old}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	n, err := db.intents().prune(ctx, func(in *computebot.Intent) bool {
		seen[in.ID]++
		// P-3 "changed" after the scan: the second look keeps it.
		return in.ID != "P-3" || seen[in.ID] == 1
	})
	if err != nil || n != count-1 {
		t.Fatalf("prune = %d, %v; want %d", n, err, count-1)
	}
	if seen["P-3"] != 2 || seen["P-0"] != 2 {
		t.Errorf("drop calls %d, %d; want each candidate seen twice", seen["P-3"], seen["P-0"])
	}
	if _, err := db.Intent(ctx, "P-3"); err != nil {
		t.Errorf("P-3, changed since the scan, was pruned: %v", err)
	}
	if _, err := db.Intent(ctx, "P-0"); !errors.Is(err, computebot.ErrNotFound) {
		t.Errorf("P-0: %v, want pruned", err)
	}
}
