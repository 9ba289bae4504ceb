package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/computebot/computebot"
)

func TestKVList(t *testing.T) {
	ctx := t.Context()
	db, _ := newDB(t)
	list := func(bucket string) map[string]int {
		t.Helper()
		got := map[string]int{}
		var keys []string
		err := db.List(ctx, bucket, func(key string, raw []byte) error {
			var n int
			if err := json.Unmarshal(raw, &n); err != nil {
				return err
			}
			got[key] = n
			keys = append(keys, key)
			return nil
		})
		if err != nil {
			t.Fatalf("List(%s): %v", bucket, err)
		}
		for i := 1; i < len(keys); i++ {
			if keys[i-1] >= keys[i] {
				t.Fatalf("List(%s): keys out of order: %v", bucket, keys)
			}
		}
		return got
	}
	if got := list("missing"); len(got) != 0 {
		t.Fatalf("missing bucket: %v", got)
	}
	// Many writers, so that the 3000 durable writes share commits instead
	// of taking one (and a batch delay) each.
	var wg sync.WaitGroup
	for w := range 50 {
		wg.Go(func() {
			for i := w; i < 3000; i += 50 {
				if err := set(ctx, db, "many", fmt.Sprintf("k%05d", i), i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := set(ctx, db, "other", "k00001", -1); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, "many", "k00002", new(int), func(bool) error { return computebot.ErrDeleteKey }); err != nil {
		t.Fatal(err)
	}
	got := list("many")
	if len(got) != 2999 || got["k00001"] != 1 || got["k02999"] != 2999 {
		t.Fatalf("List: %d entries, k00001=%d", len(got), got["k00001"])
	}
	if _, ok := got["k00002"]; ok {
		t.Fatal("List returned a deleted key")
	}
	if got := list("other"); !reflect.DeepEqual(got, map[string]int{"k00001": -1}) {
		t.Fatalf("other bucket: %v", got)
	}

	// An error from fn stops the listing and comes back unchanged.
	stop := errors.New("stop")
	calls := 0
	err := db.List(ctx, "many", func(string, []byte) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 10 {
		t.Fatalf("List with a failing fn: %v after %d calls", err, calls)
	}

	if err := db.List(ctx, "", func(string, []byte) error { return nil }); err == nil {
		t.Error("List of an empty bucket name: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.List(cctx, "many", func(string, []byte) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: %v", err)
	}
}
