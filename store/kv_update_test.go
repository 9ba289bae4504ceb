package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/computebot/computebot"
)

type notice struct {
	Episode int      `json:"episode"`
	Count   int      `json:"count"`
	Seen    []string `json:"seen,omitempty"`
}

func TestKVUpdate(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	get := func(key string) (notice, error) {
		t.Helper()
		var n notice
		err := db.Get(ctx, "notices", key, &n)
		return n, err
	}

	// Create if absent: a missing bucket is a missing key.
	var n notice
	calls := 0
	err := db.Update(ctx, "notices", "i-1", &n, func(found bool) error {
		calls++
		if found {
			return fmt.Errorf("found a value in a missing bucket: %+v", n)
		}
		n = notice{Episode: 1, Seen: []string{"a"}}
		return nil
	})
	if err != nil || calls != 1 {
		t.Fatalf("create via Update: %v after %d calls", err, calls)
	}
	if got, err := get("i-1"); err != nil || got.Episode != 1 || len(got.Seen) != 1 {
		t.Fatalf("after create: %+v, %v", got, err)
	}

	// Update sees the stored value, in a zeroed v: nothing left over
	// from what the caller's variable held.
	n = notice{Episode: 99, Count: 99, Seen: []string{"stale", "junk"}}
	err = db.Update(ctx, "notices", "i-1", &n, func(found bool) error {
		if !found || n.Episode != 1 || n.Count != 0 || len(n.Seen) != 1 || n.Seen[0] != "a" {
			return fmt.Errorf("fn sees %+v (found %v), want the stored value", n, found)
		}
		n.Count++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := get("i-1"); got.Count != 1 {
		t.Fatalf("after update: %+v", got)
	}

	// An error from fn aborts and comes back unchanged; nothing is written.
	refused := fmt.Errorf("episode moved on: %w", computebot.ErrConflict)
	err = db.Update(ctx, "notices", "i-1", &n, func(bool) error {
		n.Count = 1000
		return refused
	})
	if err != refused {
		t.Fatalf("aborted Update: %v, want fn's error unchanged", err)
	}
	if got, _ := get("i-1"); got.Count != 1 {
		t.Fatalf("aborted Update wrote %+v", got)
	}

	// Conditional delete: ErrDeleteKey deletes when fn decides so, and
	// Update returns nil.
	for _, episode := range []int{2, 1} {
		err = db.Update(ctx, "notices", "i-1", &n, func(found bool) error {
			if found && n.Episode == episode {
				return computebot.ErrDeleteKey
			}
			return errors.New("not this episode")
		})
		if episode == 2 {
			if err == nil || !strings.Contains(err.Error(), "not this episode") {
				t.Fatalf("delete of another episode: %v", err)
			}
			if _, err := get("i-1"); err != nil {
				t.Fatalf("key gone after a refused delete: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("conditional delete: %v", err)
		}
	}
	if _, err := get("i-1"); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("after conditional delete: %v, want ErrNotFound", err)
	}
	// Deleting what is absent (here in a missing bucket) is no error, and
	// a wrapped ErrDeleteKey counts too.
	err = db.Update(ctx, "nobucket", "k", &n, func(found bool) error {
		return fmt.Errorf("gone: %w", computebot.ErrDeleteKey)
	})
	if err != nil {
		t.Fatalf("delete of an absent key: %v", err)
	}
	if err := db.Get(ctx, "nobucket", "k", &n); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("absent key after delete: %v", err)
	}

	// Storing the value that is there writes nothing, and is no error.
	if err := set(ctx, db, "notices", "i-2", notice{Episode: 3}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, "notices", "i-2", &n, func(bool) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := get("i-2"); got.Episode != 3 {
		t.Fatalf("unchanged Update: %+v", got)
	}

	// Bad arguments.
	if err := db.Update(ctx, "notices", "i-2", n, func(bool) error { return nil }); err == nil {
		t.Error("Update with a non-pointer: no error")
	}
	if err := db.Update(ctx, "notices", "i-2", (*notice)(nil), func(bool) error { return nil }); err == nil {
		t.Error("Update with a nil pointer: no error")
	}
	if err := db.Update(ctx, "", "k", &n, func(bool) error { return nil }); err == nil {
		t.Error("Update with an empty bucket name: no error")
	}
	var wrong string
	err = db.Update(ctx, "notices", "i-2", &wrong, func(bool) error { t.Error("fn called after a decode error"); return nil })
	if err == nil {
		t.Error("Update decoding into the wrong type: no error")
	}
	var fnv func()
	if err := db.Update(ctx, "notices", "i-3", &fnv, func(bool) error { return nil }); err == nil {
		t.Error("Update of an unencodable value: no error")
	}
}

// Concurrent read-modify-writes lose nothing: every lost race is detected
// and decided again with the newer value.
func TestKVUpdateConcurrentIncrements(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	const n = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			var v notice
			if err := db.Update(ctx, "counters", "c", &v, func(bool) error {
				v.Count++
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	var got notice
	if err := db.Get(ctx, "counters", "c", &got); err != nil || got.Count != n {
		t.Fatalf("counter %d, %v; want %d", got.Count, err, n)
	}
}

// A lost race on one key: while fn's first call runs, another writer
// changes the value; the first save must then fail its compare and fn run
// again with the newer value.
func TestKVUpdateLostRaceRetries(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	if err := set(ctx, db, "b", "k", notice{Count: 1}); err != nil {
		t.Fatal(err)
	}
	var (
		v    notice
		seen []int
	)
	err := db.Update(ctx, "b", "k", &v, func(bool) error {
		seen = append(seen, v.Count)
		if len(seen) == 1 {
			errc := make(chan error, 1)
			go func() { errc <- set(ctx, db, "b", "k", notice{Count: 10}) }()
			if err := <-errc; err != nil {
				return err
			}
		}
		v.Count++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != 1 || seen[1] != 10 {
		t.Fatalf("fn saw %v, want [1 10]", seen)
	}
	var got notice
	if err := db.Get(ctx, "b", "k", &got); err != nil || got.Count != 11 {
		t.Fatalf("stored %+v, %v; want count 11", got, err)
	}

	// The same for a conditional delete that loses to a concurrent write:
	// it decides again, and here declines.
	seen = nil
	err = db.Update(ctx, "b", "k", &v, func(bool) error {
		seen = append(seen, v.Count)
		if len(seen) == 1 {
			errc := make(chan error, 1)
			go func() { errc <- set(ctx, db, "b", "k", notice{Count: 20}) }()
			if err := <-errc; err != nil {
				return err
			}
		}
		if v.Count == 11 {
			return computebot.ErrDeleteKey
		}
		return computebot.ErrConflict
	})
	if !errors.Is(err, computebot.ErrConflict) || len(seen) != 2 {
		t.Fatalf("delete that lost the race: %v after calls seeing %v", err, seen)
	}
	if err := db.Get(ctx, "b", "k", &got); err != nil || got.Count != 20 {
		t.Fatalf("stored %+v, %v; want the concurrent write kept", got, err)
	}
}
