package cluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot/cluster"
	"github.com/computebot/computebot/store"
)

// TestReplicaID: COMPUTEBOT_REPLICA names the replica; without it, the
// host name and process do. Either way every process is an incarnation of
// its own: two IDs for one name, never equal.
func TestReplicaID(t *testing.T) {
	named := func(k string) string {
		if k == cluster.EnvReplica {
			return " computebot-7d9f-x2 "
		}
		return ""
	}
	a, b := cluster.ReplicaID(named), cluster.ReplicaID(named)
	if a == b || cluster.Name(a) != "computebot-7d9f-x2" || cluster.Name(b) != "computebot-7d9f-x2" {
		t.Errorf("ReplicaIDs with %s set: %q and %q; want two incarnations of computebot-7d9f-x2", cluster.EnvReplica, a, b)
	}
	none := func(string) string { return "" }
	a, b = cluster.ReplicaID(none), cluster.ReplicaID(none)
	host, _ := os.Hostname()
	if a == b || !strings.HasPrefix(a, host+"-") || !strings.HasPrefix(b, host+"-") {
		t.Errorf("ReplicaIDs %q and %q: want two, each starting with the host name %q", a, b, host)
	}
}

// TestSolo: one process alone leads, and every other claim is a previous
// process's.
func TestSolo(t *testing.T) {
	s := cluster.Solo{ID: "me"}
	if !s.Leading() || s.Gone(context.Background(), "me") || !s.Gone(context.Background(), "before") || !s.Gone(context.Background(), "") {
		t.Error("Solo: want leading, itself not gone, every other replica gone")
	}
	if tok, _, ok := s.Lease(); !ok || tok != 1 {
		t.Errorf("Solo lease = %d, %v; want token 1, held", tok, ok)
	}
}

// failingList is a store whose listings fail while fail is set (reads
// throttled), its other calls going through.
type failingList struct {
	*store.DB
	fail atomic.Bool
}

func (f *failingList) List(ctx context.Context, bucket string, fn func(string, []byte) error) error {
	if f.fail.Load() {
		return errors.New("ThrottlingException")
	}
	return f.DB.List(ctx, bucket, fn)
}

// TestNoJudgingWithoutWatching: a leader whose reading of the heartbeats
// fails cannot tell a replica that beats from one that died, so it judges
// none gone; once the reads work again, a silent one is judged as before.
func TestNoJudgingWithoutWatching(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	kv := &failingList{DB: db}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	step := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	a, _ := cluster.New(kv, cluster.Options{Self: "a", LeaseTTL: 3 * time.Second, Now: clock})
	b, _ := cluster.New(db, cluster.Options{Self: "b", LeaseTTL: 3 * time.Second, Now: clock})
	ctx := context.Background()
	a.Tick(ctx) // a leads
	b.Tick(ctx)
	a.Tick(ctx) // and has seen b's heartbeat
	if a.Gone(ctx, "b") || !a.Leading() {
		t.Fatal("setup: a should lead and see b alive")
	}
	kv.fail.Store(true)
	for range 10 {
		step(time.Second)
		a.Tick(ctx)
		b.Tick(ctx) // b beats all along
	}
	if !a.Leading() {
		t.Fatal("a lost the lease (its beat and lease writes work)")
	}
	if a.Gone(ctx, "b") {
		t.Fatal("a judged b gone without being able to read its heartbeat")
	}
	kv.fail.Store(false)
	a.Tick(ctx)
	if a.Gone(ctx, "b") {
		t.Fatal("b beats, yet a judges it gone")
	}
	for range 8 { // b dies
		step(time.Second)
		a.Tick(ctx)
	}
	if !a.Gone(ctx, "b") {
		t.Fatal("b silent for 8 s (lease TTL 3 s), yet not gone")
	}
}
