package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/computebot/computebot"
	bolt "go.etcd.io/bbolt"
)

// actions returns the entries' actions, in order.
func actions(es []computebot.AuditEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Action
	}
	return out
}

func TestAuditSince(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if got, err := db.AuditSince(ctx, t0); err != nil || len(got) != 0 {
		t.Fatalf("empty log: %v, %v", got, err)
	}
	want := []computebot.AuditEntry{
		{Time: t0, Actor: "UANA", Action: "a0", RequestID: "R-1", Target: "i-0123456789abcdef0", Result: "ok", Detail: "first"},
		{Time: t0.Add(time.Hour), Actor: computebot.PolicyActor, Action: "a1", RequestID: "R-1", Result: "ok"},
		{Time: t0.Add(2 * time.Hour), Actor: "UBO", Action: "a2", RequestID: "R-2", Target: "etl", Result: "quota"},
		{Time: t0.Add(2 * time.Hour), Actor: computebot.SystemActor, Action: "a3", Target: "i-0123456789abcdef0", Result: "ok"}, // a tie
		{Time: t0.Add(3 * time.Hour).Add(123 * time.Nanosecond), Actor: "UBO", Action: "a4", Result: "ok"},
	}
	for _, e := range want {
		if err := db.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		since time.Time
		want  []string
	}{
		{time.Time{}, []string{"a0", "a1", "a2", "a3", "a4"}},
		{t0.Add(-time.Second), []string{"a0", "a1", "a2", "a3", "a4"}},
		{t0, []string{"a0", "a1", "a2", "a3", "a4"}}, // at since counts
		{t0.Add(time.Nanosecond), []string{"a1", "a2", "a3", "a4"}},
		{t0.Add(2 * time.Hour), []string{"a2", "a3", "a4"}},
		{t0.Add(3 * time.Hour), []string{"a4"}},
		{t0.Add(3 * time.Hour).Add(124 * time.Nanosecond), []string{}},
	} {
		got, err := db.AuditSince(ctx, tc.since)
		if err != nil {
			t.Fatal(err)
		}
		if g := actions(got); !reflect.DeepEqual(g, tc.want) {
			t.Errorf("since %s: %v, want %v", tc.since, g, tc.want)
		}
	}
	// Every field comes back, times to the nanosecond.
	got, _ := db.AuditSince(ctx, time.Time{})
	for i := range want {
		if !got[i].Time.Equal(want[i].Time) {
			t.Errorf("entry %d: time %s, want %s", i, got[i].Time, want[i].Time)
		}
		got[i].Time = want[i].Time
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries =\n%+v\nwant\n%+v", got, want)
	}
	all, _ := db.AuditLog(ctx)
	if !reflect.DeepEqual(actions(all), actions(got)) {
		t.Errorf("AuditSince(zero) %v differs from AuditLog %v", actions(got), actions(all))
	}
}

// A clock that steps back: AuditSince stops at the first entry older than
// since, so an entry recorded before the step and still within the window
// is hidden behind it (as documented); AuditLog keeps it.
func TestAuditSinceClockStepBack(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, e := range []computebot.AuditEntry{
		{Time: t0.Add(10 * time.Minute), Action: "before-step"},
		{Time: t0, Action: "after-step"}, // the clock went back 10 minutes
		{Time: t0.Add(11 * time.Minute), Action: "later"},
	} {
		if err := db.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.AuditSince(ctx, t0.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if g := actions(got); !reflect.DeepEqual(g, []string{"later"}) {
		t.Errorf("AuditSince = %v, want [later] (before-step hidden at the boundary)", g)
	}
	if all, _ := db.AuditLog(ctx); len(all) != 3 {
		t.Errorf("AuditLog has %d entries, want 3", len(all))
	}
}

// A long log is read from its end only: entries before the window are not
// decoded, and the result is the window, oldest first.
func TestAuditSinceLongLog(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const n = 2000
	// One transaction for all of them (Audit commits each on its own).
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(auditBucket)
		for i := range n {
			v, err := json.Marshal(toAuditRecord(computebot.AuditEntry{Time: t0.Add(time.Duration(i) * time.Minute), Action: fmt.Sprint(i)}))
			if err != nil {
				return err
			}
			seq, _ := b.NextSequence()
			if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.AuditSince(ctx, t0.Add((n-700)*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 700 || got[0].Action != fmt.Sprint(n-700) || got[699].Action != fmt.Sprint(n-1) {
		t.Fatalf("got %d entries, %s … %s", len(got), got[0].Action, got[len(got)-1].Action)
	}
	// An undecodable entry before the window does not matter.
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(auditBucket).Put(binary.BigEndian.AppendUint64(nil, 1), []byte("{broken"))
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.AuditSince(ctx, t0.Add(time.Hour)); err != nil || len(got) != n-60 {
		t.Fatalf("with a broken old entry: %d entries, %v", len(got), err)
	}
	if _, err := db.AuditSince(ctx, time.Time{}); err == nil {
		t.Fatal("reading over a broken entry: no error")
	}
}

func TestAuditSinceCancelledAndClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "computebot.db")
	db, err := Open(path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.AuditSince(ctx, time.Time{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AuditSince(context.Background(), time.Time{}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}
