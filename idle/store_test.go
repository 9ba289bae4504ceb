package idle

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/computebot/computebot/store"
)

var _ KV = (*store.DB)(nil)

// On the real store: a restart between the notice and the stop neither
// repeats the notice nor loses the stop, and a due check racing Stop now
// stops once.
func TestOnStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "computebot.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, testConfig())
	r.kv = db
	r.Scheduler = r.build(t, testConfig())
	for _, id := range []string{"i-1", "i-2"} {
		r.cloud.add(id, t0.Add(-3*time.Hour), nil)
		r.cloud.idleAll(id)
	}
	r.scan(t)
	if len(r.notes.Posts()) != 2 {
		t.Fatalf("posts %+v", r.notes.Posts())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r.kv = db
	r.Scheduler = r.build(t, testConfig())
	other := r.build(t, testConfig())
	r.clock.Advance(10 * time.Minute)
	r.scan(t)
	if got := len(r.notes.Posts()); got != 2 {
		t.Fatalf("%d notices after the restart, want 2 (no repeat)", got)
	}
	r.clock.Advance(25 * time.Minute)
	r.cloud.onStop = func(string) { time.Sleep(time.Millisecond) }
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.CheckDue(t.Context()) })
	wg.Go(func() { _ = other.CheckDue(t.Context()) })
	wg.Go(func() { _, _ = r.StopNow(t.Context(), "i-1", "U9") })
	wg.Wait()
	for _, id := range []string{"i-1", "i-2"} {
		if got := r.cloud.count("stop " + id); got != 1 {
			t.Errorf("%s: %d stop calls, want 1", id, got)
		}
		var n Notice
		if err := db.Get(t.Context(), NoticesBucket, id, &n); err != nil || n.State != StateStopped {
			t.Errorf("%s after the stop: %+v, %v", id, n, err)
		}
	}
	if len(r.notes.Announces()) != 2 {
		t.Errorf("announces %+v", r.notes.Announces())
	}
}
