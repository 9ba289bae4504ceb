package idle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/store"
)

var _ KV = (*store.DB)(nil)

func TestNewSettings(t *testing.T) {
	deps := Deps{Cloud: newCloud(), Notifier: &fakeNotifier{}, Authorizer: &fakeAuthz{}, KV: newMemKV()}
	for _, spec := range []string{"*/10 * * * *", "@every 10m", "@every 90s", "@hourly", "0 9 * * 1-5"} {
		if _, err := New(Settings{Schedule: spec}, deps); err != nil {
			t.Errorf("New(%q): %v", spec, err)
		}
	}
	for _, tt := range []struct {
		set  Settings
		want []string
	}{
		{Settings{Schedule: "every 10 minutes"}, []string{"idle.schedule", `"every 10 minutes"`}},
		{Settings{Schedule: "*/10 * * *"}, []string{"idle.schedule", `"*/10 * * *"`, "5 fields"}},
		{Settings{Schedule: ""}, []string{"idle.schedule", `""`}},
		{Settings{Schedule: "@every 10 m"}, []string{"idle.schedule", `"@every 10 m"`}},
		{Settings{Schedule: "@every 10m", For: 7 * time.Minute}, []string{"idle.for", "multiple", "5m0s"}},
		{Settings{Schedule: "@every 10m", Grace: -time.Minute}, []string{"idle.grace", "negative"}},
		{Settings{Schedule: "@every 10m", LeaseAction: "delete"}, []string{"idle.lease_action", `"delete"`}},
		{Settings{Schedule: "@every 10m", CPUBelowPercent: 120}, []string{"idle.cpu_below_percent", "120"}},
		{Settings{Schedule: "@every 10m", MetricsDelay: -time.Minute}, []string{"idle.metrics_delay", "negative"}},
	} {
		_, err := New(tt.set, deps)
		if err == nil {
			t.Errorf("New(%+v): no error", tt.set)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v) = %q, want it to mention %s", tt.set, err, w)
			}
		}
	}
	if _, err := New(Settings{Schedule: "@every 10m"}, Deps{KV: newMemKV()}); err == nil || !strings.Contains(err.Error(), "Cloud") {
		t.Errorf("missing dependencies: %v", err)
	}
	s, err := New(Settings{Schedule: "@every 10m"}, deps)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Schedule: "@every 10m", CPUBelowPercent: 5, NetworkBelowBytes: 5e6, For: time.Hour, Grace: 30 * time.Minute,
		Snooze: 4 * time.Hour, Period: 5 * time.Minute, LeaseAction: "stop", CheckEvery: time.Minute}
	if got := s.Settings(); got != want {
		t.Errorf("defaults: %+v, want %+v", got, want)
	}
	// "@every" schedules run at that interval.
	if next := s.sched.Next(t0); next != t0.Add(10*time.Minute) {
		t.Errorf("@every 10m: next run %s after %s", next, t0)
	}
}

func TestScanFindsIdleInstances(t *testing.T) {
	r := newRig(t, defaultSettings())
	old := t0.Add(-3 * time.Hour)
	r.cloud.add("i-idle", old, nil)
	r.cloud.idleAll("i-idle")
	r.cloud.add("i-young", t0.Add(-40*time.Minute), nil) // younger than For
	r.cloud.idleAll("i-young")
	r.cloud.add("i-partial", old, nil) // metrics delayed: the last period is missing
	r.cloud.flat("i-partial", t0.Add(-12*time.Hour), t0.Add(-10*time.Minute), 1, 1, 1)
	r.cloud.add("i-download", old, nil) // low CPU, high network
	r.cloud.flat("i-download", t0.Add(-12*time.Hour), t0.Add(time.Hour), 0.5, 30e6, 1e6)
	r.cloud.add("i-busy", old, nil) // one busy period
	r.cloud.idleAll("i-busy")
	r.cloud.flat("i-busy", t0.Add(-30*time.Minute), t0.Add(-25*time.Minute), 97, 1, 1)
	r.cloud.add("i-nodata", old, nil) // detailed monitoring off, or no metrics at all
	r.cloud.add("i-stopped", old, nil)
	r.cloud.idleAll("i-stopped")
	r.cloud.setState("i-stopped", computebot.InstanceStopped)
	r.cloud.add("i-snoozed", old, nil)
	r.cloud.idleAll("i-snoozed")
	if err := r.kv.Put(t.Context(), NoticesBucket, "i-snoozed", Notice{InstanceID: "i-snoozed", Reason: ReasonIdle, State: StateKept,
		KeptUntil: t0.Add(time.Hour), Episode: "idle/i-snoozed/1"}); err != nil {
		t.Fatal(err)
	}

	r.scan(t)

	posts := r.notes.Posts()
	if len(posts) != 1 || posts[0].InstanceID != "i-idle" {
		t.Fatalf("posted %+v, want one notice for i-idle", posts)
	}
	n := posts[0]
	if n.Reason != ReasonIdle || n.State != StateNoticed || n.Action != ActionStop || n.Owner != "Ui-idle" || n.Name != "box-i-idle" ||
		n.Type != "t3.large" || !n.PriceKnown || n.CostPerHour != 0.0832 || n.RequestChannel != "C1" || n.RequestThread != "1000.0001" {
		t.Errorf("notice: %+v", n)
	}
	if !n.NoticedAt.Equal(t0) || !n.StopAt.Equal(t0.Add(30*time.Minute)) || n.Window != time.Hour {
		t.Errorf("times: noticed %s, stop %s, window %s", n.NoticedAt, n.StopAt, n.Window)
	}
	if got := n.Evidence(); got != "max CPU 1.2 % and 0.3 MB network over the last 1 h" {
		t.Errorf("evidence %q", got)
	}
	// One listing of running instances, one metrics call for all candidates.
	if got := r.cloud.count("list"); got != 1 {
		t.Errorf("%d listings, want 1: %v", got, r.cloud.Calls())
	}
	if got := r.cloud.count("metrics"); got != 1 {
		t.Fatalf("%d metrics calls, want 1: %v", got, r.cloud.Calls())
	}
	q := r.cloud.queries[0]
	wantIDs := []string{"i-busy", "i-download", "i-idle", "i-nodata", "i-partial"}
	if ids := slices.Sorted(slices.Values(q.InstanceIDs)); !slices.Equal(ids, wantIDs) {
		t.Errorf("metrics for %v, want %v", ids, wantIDs)
	}
	end := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // t0 truncated to 5 min
	if !q.End.Equal(end) || !q.Start.Equal(end.Add(-time.Hour)) || q.Period != 5*time.Minute {
		t.Errorf("query window %s – %s / %s", q.Start, q.End, q.Period)
	}
	// Persisted, with where it went.
	stored := r.mem.notice(t, "i-idle")
	if stored.State != StateNoticed || stored.Channel != "C1" || stored.TS == "" || stored.Episode == "" {
		t.Errorf("stored notice %+v", stored)
	}
	if r.cloud.count("stop") != 0 {
		t.Error("stopped during the scan")
	}
}

func TestNoticeLifecycle(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), map[string]string{computebot.TagRequest: "R-7"})
	r.cloud.idleAll("i-1")

	r.scan(t)
	r.clock.Advance(10 * time.Minute)
	r.scan(t) // same episode: no second notice
	r.clock.Advance(10 * time.Minute)
	r.checkDue(t) // grace not over
	if got := len(r.notes.Posts()); got != 1 {
		t.Fatalf("%d notices, want 1", got)
	}
	if r.cloud.count("stop") != 0 {
		t.Fatal("stopped before the grace ended")
	}

	r.clock.Advance(10 * time.Minute) // t0 + 30 min: grace over
	r.checkDue(t)
	if got := r.cloud.count("stop i-1"); got != 1 {
		t.Fatalf("stop calls %d, want 1: %v", got, r.cloud.Calls())
	}
	if len(r.authz.asked) != 1 || r.authz.asked[0] != "i-1" {
		t.Errorf("AllowStop asked for %v", r.authz.asked)
	}
	n := r.mem.notice(t, "i-1")
	if n.State != StateStopped || !strings.Contains(n.Outcome, "Stopped") || !strings.Contains(n.Outcome, "(idle)") {
		t.Errorf("after the stop: %+v", n)
	}
	ann := r.notes.Announces()
	if len(ann) != 1 || !strings.HasPrefix(ann[0], "C1/1000.0001: stopped `i-1` (idle): max CPU 1.2 %") {
		t.Errorf("announced %q", ann)
	}
	ups := r.notes.Updates()
	if len(ups) != 1 || ups[0].State != StateStopped {
		t.Errorf("updates %+v", ups)
	}
	a := r.audits.entries()
	if len(a) != 1 || a[0].Actor != "computebot" || a[0].Action != "idle-stop" || a[0].Target != "i-1" || a[0].Result != "ok" || a[0].RequestID != "R-7" {
		t.Errorf("audit %+v", a)
	}
	// Checking again does nothing more.
	r.checkDue(t)
	r.scan(t) // the instance is stopped now: not listed
	if r.cloud.count("stop") != 1 || len(r.notes.Posts()) != 1 {
		t.Errorf("acted again: %v", r.cloud.Calls())
	}
}

// A scan also acts on due notices, without the checker.
func TestScanRunsCheckDue(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.clock.Advance(40 * time.Minute)
	r.scan(t)
	if r.cloud.count("stop i-1") != 1 {
		t.Fatalf("calls %v", r.cloud.Calls())
	}
}

func TestRestartBetweenNoticeAndStop(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "computebot.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, defaultSettings())
	r.kv, r.mem = db, nil
	r.Scheduler = r.build(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	if len(r.notes.Posts()) != 1 {
		t.Fatal("no notice")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: a new process, a new scheduler on the same file.
	db, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r.kv = db
	r.Scheduler = r.build(t, defaultSettings())
	r.clock.Advance(10 * time.Minute)
	r.scan(t)
	if got := len(r.notes.Posts()); got != 1 {
		t.Fatalf("%d notices after the restart, want 1 (no repeat)", got)
	}
	r.clock.Advance(25 * time.Minute)
	r.checkDue(t)
	if r.cloud.count("stop i-1") != 1 {
		t.Fatalf("pending stop forgotten: %v", r.cloud.Calls())
	}
	var n Notice
	if err := db.Get(ctx, NoticesBucket, "i-1", &n); err != nil || n.State != StateStopped {
		t.Fatalf("after the stop: %+v, %v", n, err)
	}
	if len(r.notes.Announces()) != 1 {
		t.Errorf("announces %v", r.notes.Announces())
	}
}

// A crash between persisting a notice and posting it: the notice is not
// posted again (at most one per episode), the stop still happens, and the
// owner learns of it from the settled notice.
func TestCrashMidPost(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	n := r.newNotice(computebot.Instance{ID: "i-1", Type: "t3.large", Tags: map[string]string{computebot.TagOwner: "U1"}}, ReasonIdle, t0.Add(-time.Minute))
	n.MaxCPU, n.NetworkBytes, n.Window = 1.2, 3e5, time.Hour
	if err := r.kv.Put(t.Context(), NoticesBucket, "i-1", n); err != nil {
		t.Fatal(err)
	}
	r.scan(t)
	if len(r.notes.Posts()) != 0 {
		t.Fatalf("re-posted: %+v", r.notes.Posts())
	}
	r.clock.Advance(30 * time.Minute)
	r.checkDue(t)
	if r.cloud.count("stop i-1") != 1 {
		t.Fatalf("calls %v", r.cloud.Calls())
	}
	posts := r.notes.Posts()
	if len(posts) != 1 || posts[0].State != StateStopped {
		t.Fatalf("settled notice not posted: %+v", posts)
	}
}

func TestPostFailureIsRetried(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.notes.postErr = errors.New("slack is down")
	if err := r.Scan(t.Context()); err == nil || !strings.Contains(err.Error(), "slack is down") {
		t.Fatalf("Scan: %v", err)
	}
	var n Notice
	if err := r.kv.Get(t.Context(), NoticesBucket, "i-1", &n); !errors.Is(err, computebot.ErrNotFound) {
		t.Fatalf("unposted notice kept: %+v, %v", n, err)
	}
	// No stop without a warning.
	r.clock.Advance(time.Hour)
	r.checkDue(t)
	if r.cloud.count("stop") != 0 {
		t.Fatal("stopped without a notice")
	}
	r.scan(t)
	if len(r.notes.Posts()) != 1 || !r.mem.notice(t, "i-1").StopAt.Equal(t0.Add(90*time.Minute)) {
		t.Fatalf("not retried: %+v", r.notes.Posts())
	}
}

func TestCancelPaths(t *testing.T) {
	tests := []struct {
		name   string
		during func(r *rig) // between the notice and the end of the grace
		want   string
	}{
		{"stopped meanwhile", func(r *rig) { r.cloud.setState("i-1", computebot.InstanceStopped) }, "cancelled: `i-1` was stopped meanwhile."},
		{"terminated meanwhile", func(r *rig) { r.cloud.setState("i-1", computebot.InstanceTerminated) }, "cancelled: `i-1` was terminated meanwhile."},
		{"gone", func(r *rig) { r.cloud.remove("i-1") }, "cancelled: `i-1` was terminated meanwhile."},
		{"activity resumed", func(r *rig) {
			r.cloud.flat("i-1", t0.Add(10*time.Minute), t0.Add(15*time.Minute), 43, 100e6, 20.5e6)
		}, "cancelled: activity resumed: max CPU 43.0 % and 120.5 MB network over the last 1 h."},
		{"metrics stopped arriving", func(r *rig) {
			r.cloud.flat("i-1", t0.Add(10*time.Minute), t0.Add(15*time.Minute), 1, 1, -1)
		}, "cancelled: its metrics are incomplete (12 of 12 periods with CPU data, 11 with network data, over the last 1 h), so it may be busy."},
		{"policy refused", func(r *rig) { r.authz.refuse = errors.New("policy refused to stop i-1: protected") },
			"cancelled: not stopped: policy refused to stop i-1: protected."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, defaultSettings())
			r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
			r.cloud.idleAll("i-1")
			r.scan(t)
			tt.during(r)
			r.clock.Advance(31 * time.Minute)
			r.checkDue(t)
			if r.cloud.count("stop") != 0 {
				t.Fatalf("stopped: %v", r.cloud.Calls())
			}
			n := r.mem.notice(t, "i-1")
			if n.State != StateCancelled || !strings.HasPrefix(n.Outcome, "Cancelled: ") {
				t.Errorf("notice %+v", n)
			}
			ann := r.notes.Announces()
			if len(ann) != 1 || !strings.HasSuffix(ann[0], ": "+tt.want) {
				t.Errorf("announced %q, want %q", ann, tt.want)
			}
			if ups := r.notes.Updates(); len(ups) != 1 || ups[0].State != StateCancelled {
				t.Errorf("updates %+v", ups)
			}
		})
	}
}

func TestStopFailureRetriedThenCancelled(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.clock.Advance(31 * time.Minute)
	r.cloud.stopErr = &computebot.Error{Code: "UnauthorizedOperation", Message: "computebot may not stop instances"}
	for i := range maxAttempts {
		err := r.CheckDue(t.Context())
		if i < maxAttempts-1 && err == nil {
			t.Fatalf("attempt %d: no error", i+1)
		}
		if i == maxAttempts-1 && err != nil {
			t.Fatalf("last attempt: %v", err)
		}
	}
	if r.cloud.count("stop i-1") != maxAttempts {
		t.Errorf("calls %v", r.cloud.Calls())
	}
	n := r.mem.notice(t, "i-1")
	if n.State != StateCancelled || !strings.Contains(n.Outcome, "could not stop `i-1`: computebot may not stop instances") {
		t.Errorf("notice %+v", n)
	}
	a := r.audits.entries()
	if len(a) != maxAttempts || a[0].Result != "UnauthorizedOperation" {
		t.Errorf("audit %+v", a)
	}
}

func TestKeepIdle(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.clock.Advance(5 * time.Minute)
	n, err := r.Keep(t.Context(), "i-1", "U9")
	if err != nil {
		t.Fatal(err)
	}
	until := t0.Add(5*time.Minute + 4*time.Hour)
	if n.State != StateKept || n.KeptBy != "U9" || !n.KeptUntil.Equal(until) || !strings.HasPrefix(n.Outcome, "Kept running by <@U9> until ") {
		t.Fatalf("kept: %+v", n)
	}
	if ups := r.notes.Updates(); len(ups) != 1 || ups[0].State != StateKept {
		t.Errorf("updates %+v", ups)
	}
	if a := r.audits.entries(); len(a) != 1 || a[0].Action != "idle-keep" || a[0].Actor != "U9" {
		t.Errorf("audit %+v", a)
	}
	// Grace over, scans during the snooze: no stop, no notice.
	for range 20 {
		r.clock.Advance(10 * time.Minute)
		r.scan(t)
	}
	if r.cloud.count("stop") != 0 || len(r.notes.Posts()) != 1 {
		t.Fatalf("acted during the snooze: %v, %d posts", r.cloud.Calls(), len(r.notes.Posts()))
	}
	rep, err := r.Report(t.Context())
	if err != nil || len(rep.Snoozed) != 1 || rep.Snoozed[0].InstanceID != "i-1" || !rep.Snoozed[0].Until.Equal(until) {
		t.Fatalf("report %+v, %v", rep, err)
	}
	// Snooze over, still idle: a new episode, a new notice.
	r.clock.Advance(time.Hour)
	r.scan(t)
	posts := r.notes.Posts()
	if len(posts) != 2 || posts[1].Episode == posts[0].Episode || posts[1].State != StateNoticed {
		t.Fatalf("after the snooze: %+v", posts)
	}
}

func TestKeepLease(t *testing.T) {
	r := newRig(t, defaultSettings())
	expired := t0.Add(-10 * time.Minute)
	r.cloud.add("i-1", t0.Add(-20*time.Minute), map[string]string{computebot.TagExpiresAt: expired.Format(time.RFC3339)})
	r.scan(t)
	r.clock.Advance(5 * time.Minute)
	n, err := r.Keep(t.Context(), "i-1", "U9")
	if err != nil {
		t.Fatal(err)
	}
	// max(now, expires-at) + Snooze: the lease ended before now.
	until := t0.Add(5*time.Minute + 4*time.Hour)
	if n.State != StateKept || !n.KeptUntil.Equal(until) || !strings.HasPrefix(n.Outcome, "Lease extended by <@U9> until ") {
		t.Fatalf("kept: %+v", n)
	}
	if c := r.cloud.Calls(); !slices.Contains(c, "tag i-1 computebot:expires-at="+until.Format(time.RFC3339)) {
		t.Fatalf("calls %v", c)
	}
	if a := r.audits.entries(); len(a) != 1 || a[0].Action != "lease-extend" {
		t.Errorf("audit %+v", a)
	}
	// Keep again before it ends: extends from the current expires-at.
	r.clock.Advance(time.Hour)
	n, err = r.Keep(t.Context(), "i-1", "U9")
	if err != nil || !n.KeptUntil.Equal(until.Add(4*time.Hour)) {
		t.Fatalf("second keep: %+v, %v", n, err)
	}
	r.clock.Advance(time.Hour)
	r.scan(t)
	if r.cloud.count("stop") != 0 || len(r.notes.Posts()) != 1 {
		t.Fatalf("acted on a kept lease: %v", r.cloud.Calls())
	}
}

// EC2 reads are eventually consistent: a listing right after Keep may still
// show the old expires-at. The kept notice stops a second notice.
func TestKeepLeaseStaleTag(t *testing.T) {
	r := newRig(t, defaultSettings())
	old := t0.Add(-10 * time.Minute).Format(time.RFC3339)
	r.cloud.add("i-1", t0.Add(-20*time.Minute), map[string]string{computebot.TagExpiresAt: old})
	r.scan(t)
	if _, err := r.Keep(t.Context(), "i-1", "U9"); err != nil {
		t.Fatal(err)
	}
	r.cloud.setTag("i-1", computebot.TagExpiresAt, old) // a stale read
	r.clock.Advance(time.Minute)
	r.scan(t)
	if len(r.notes.Posts()) != 1 {
		t.Fatalf("second lease notice on a stale tag: %+v", r.notes.Posts())
	}
}

func TestStopNow(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	n, err := r.StopNow(t.Context(), "i-1", "U9")
	if err != nil {
		t.Fatal(err)
	}
	if n.State != StateStopped || !strings.HasPrefix(n.Outcome, "Stopped by <@U9> ") {
		t.Fatalf("notice %+v", n)
	}
	if r.cloud.count("stop i-1") != 1 {
		t.Fatalf("calls %v", r.cloud.Calls())
	}
	if ann := r.notes.Announces(); len(ann) != 1 || ann[0] != "C1/1000.0001: stopped `i-1` (Stop now by <@U9>)." {
		t.Errorf("announced %q", ann)
	}
	if ups := r.notes.Updates(); len(ups) != 1 || ups[0].State != StateStopped {
		t.Errorf("updates %+v", ups)
	}
	if a := r.audits.entries(); len(a) != 1 || a[0].Action != "idle-stop-now" || a[0].Actor != "U9" || a[0].Result != "ok" {
		t.Errorf("audit %+v", a)
	}
	// The grace ends: nothing more happens.
	r.clock.Advance(time.Hour)
	r.checkDue(t)
	if r.cloud.count("stop") != 1 || len(r.notes.Announces()) != 1 {
		t.Errorf("acted again: %v", r.cloud.Calls())
	}
	// Clicking again, or Keep after the stop, is a clear refusal.
	for _, f := range []func(context.Context, string, string) (Notice, error){r.StopNow, r.Keep} {
		if _, err := f(t.Context(), "i-1", "U9"); computebot.ErrorCode(err) != CodeNoticeSettled || !strings.Contains(computebot.UserMessage(err), "already stopped") {
			t.Errorf("on a stopped notice: %v", err)
		}
	}
	if _, err := r.Keep(t.Context(), "i-2", "U9"); computebot.ErrorCode(err) != CodeNoNotice {
		t.Errorf("Keep without a notice: %v", err)
	}
}

func TestStopNowFailure(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.cloud.stopErr = &computebot.Error{Code: "IncorrectInstanceState", Message: "it is not in a state from which it can be stopped"}
	_, err := r.StopNow(t.Context(), "i-1", "U9")
	if computebot.UserMessage(err) != "it is not in a state from which it can be stopped" {
		t.Fatalf("StopNow: %v", err)
	}
	if n := r.mem.notice(t, "i-1"); n.State != StateNoticed {
		t.Errorf("notice %+v", n)
	}
}

func TestLeaseExpiry(t *testing.T) {
	for _, action := range []string{"stop", "terminate"} {
		t.Run(action, func(t *testing.T) {
			set := defaultSettings()
			set.LeaseAction = action
			r := newRig(t, set)
			ended := t0.Add(-time.Minute)
			// Young and busy: the lease applies at any age, regardless of activity.
			r.cloud.add("i-1", t0.Add(-10*time.Minute), map[string]string{computebot.TagExpiresAt: ended.Format(time.RFC3339)})
			r.cloud.flat("i-1", t0.Add(-10*time.Minute), t0.Add(time.Hour), 99, 50e6, 50e6)
			r.cloud.add("i-2", t0.Add(-10*time.Minute), map[string]string{computebot.TagExpiresAt: t0.Add(time.Hour).Format(time.RFC3339)})
			r.scan(t)
			posts := r.notes.Posts()
			if len(posts) != 1 || posts[0].Reason != ReasonLease || !posts[0].LeaseEnded.Equal(ended) || posts[0].Action != action {
				t.Fatalf("posts %+v", posts)
			}
			if r.cloud.count("metrics") != 0 {
				t.Errorf("metrics read for a lease: %v", r.cloud.Calls())
			}
			r.clock.Advance(30 * time.Minute)
			r.checkDue(t)
			if got := r.cloud.count(action + " i-1"); got != 1 {
				t.Fatalf("%s calls %d: %v", action, got, r.cloud.Calls())
			}
			a := r.audits.entries()
			if len(a) != 1 || a[0].Action != "lease-"+action || a[0].Actor != "computebot" || a[0].Target != "i-1" {
				t.Errorf("audit %+v", a)
			}
			done := map[string]string{"stop": "stopped", "terminate": "terminated"}[action]
			if ann := r.notes.Announces(); len(ann) != 1 || !strings.Contains(ann[0], ": "+done+" `i-1` (lease ended ") {
				t.Errorf("announced %q", ann)
			}
		})
	}
}

func TestLeaseExtendedMeanwhile(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-10*time.Minute), map[string]string{computebot.TagExpiresAt: t0.Add(-time.Minute).Format(time.RFC3339)})
	r.scan(t)
	r.cloud.setTag("i-1", computebot.TagExpiresAt, t0.Add(5*time.Hour).Format(time.RFC3339)) // /computebot extend
	r.clock.Advance(31 * time.Minute)
	r.checkDue(t)
	if r.cloud.count("stop") != 0 {
		t.Fatal("stopped")
	}
	if ann := r.notes.Announces(); len(ann) != 1 || !strings.Contains(ann[0], "cancelled: the lease of `i-1` was extended until ") {
		t.Errorf("announced %q", ann)
	}
}

// An instance that is idle again after a cancelled notice starts a new
// episode.
func TestCancelledThenIdleAgain(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.cloud.flat("i-1", t0.Add(10*time.Minute), t0.Add(15*time.Minute), 60, 1, 1) // a burst of work
	r.clock.Advance(31 * time.Minute)
	r.checkDue(t)
	if n := r.mem.notice(t, "i-1"); n.State != StateCancelled {
		t.Fatalf("notice %+v", n)
	}
	r.clock.Advance(10 * time.Minute)
	r.scan(t) // the burst is still in the window
	if len(r.notes.Posts()) != 1 {
		t.Fatal("noticed while active")
	}
	r.clock.Advance(time.Hour)
	r.scan(t)
	posts := r.notes.Posts()
	if len(posts) != 2 || posts[1].Episode == posts[0].Episode {
		t.Fatalf("posts %+v", posts)
	}
}

func TestPostsAreSequential(t *testing.T) {
	r := newRig(t, defaultSettings())
	for i := range 100 {
		id := fmt.Sprintf("i-%03d", i)
		r.cloud.add(id, t0.Add(-3*time.Hour), nil)
		r.cloud.idleAll(id)
	}
	r.notes.postDelay = 100 * time.Microsecond
	r.scan(t)
	if got := len(r.notes.Posts()); got != 100 {
		t.Fatalf("%d notices, want 100", got)
	}
	if r.notes.maxFlight != 1 {
		t.Errorf("%d posts in flight at once, want 1", r.notes.maxFlight)
	}
	if got := r.cloud.count("metrics"); got != 1 {
		t.Errorf("%d metrics calls for 100 instances, want 1", got)
	}
	if got := r.prices.Load(); got != 1 {
		t.Errorf("%d price look-ups for one instance type, want 1", got)
	}
	// 100 due at once: one listing instead of 100 look-ups.
	r.clock.Advance(31 * time.Minute)
	r.checkDue(t)
	if r.cloud.count("get ") != 0 || r.cloud.count("list ") != 2 || r.cloud.count("stop ") != 100 {
		t.Errorf("calls: %d get, %d list, %d stop", r.cloud.count("get "), r.cloud.count("list "), r.cloud.count("stop "))
	}
}

func TestReport(t *testing.T) {
	r := newRig(t, defaultSettings()) // scans every 10 minutes
	r.cloud.add("i-a", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-a")
	r.scan(t)
	r.clock.Advance(28*time.Minute + 30*time.Second) // 10:31: the next scan is at 10:40
	r.cloud.add("i-b", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-b")
	r.cloud.add("i-c", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-c")
	r.scan(t)
	if _, err := r.Keep(t.Context(), "i-c", "U9"); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Report(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ns []Notice) (out []string) {
		for _, n := range ns {
			out = append(out, n.InstanceID)
		}
		return out
	}
	// i-a stops at 10:32:30, before the next scan; i-b at 11:01.
	if !slices.Equal(ids(rep.Noticed), []string{"i-a", "i-b"}) || !slices.Equal(ids(rep.AboutToStop), []string{"i-a"}) {
		t.Errorf("noticed %v, about to stop %v (next scan %s)", ids(rep.Noticed), ids(rep.AboutToStop), rep.NextScan)
	}
	if len(rep.Snoozed) != 1 || rep.Snoozed[0].InstanceID != "i-c" || rep.Snoozed[0].KeptBy != "U9" {
		t.Errorf("snoozed %+v", rep.Snoozed)
	}
}

func TestPrune(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	if _, err := r.StopNow(t.Context(), "i-1", "U9"); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(keepSettled + time.Hour)
	r.scan(t)
	var n Notice
	if err := r.kv.Get(t.Context(), NoticesBucket, "i-1", &n); !errors.Is(err, computebot.ErrNotFound) {
		t.Errorf("settled notice not pruned: %+v, %v", n, err)
	}
}

// A notice record must stay small: 10,000 of them are a few MB.
func TestNoticeIsSmall(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.cloud.add("i-0123456789abcdef0", t0.Add(-3*time.Hour), map[string]string{computebot.TagName: "a reasonably long instance name"})
	r.cloud.idleAll("i-0123456789abcdef0")
	r.scan(t)
	if _, err := r.Keep(t.Context(), "i-0123456789abcdef0", "U0123456789"); err != nil {
		t.Fatal(err)
	}
	raw := r.mem.data[NoticesBucket]["i-0123456789abcdef0"]
	if len(raw) > 1024 {
		t.Errorf("notice record is %d bytes: %s", len(raw), raw)
	}
}

func TestStartRunsScansAndChecks(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.sched, r.every = everySchedule(20*time.Millisecond), everySchedule(5*time.Millisecond)
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.Start(t.Context())
	r.Start(t.Context()) // a second Start does nothing
	waitFor(t, func() bool { return len(r.notes.Posts()) == 1 })
	r.clock.Advance(31 * time.Minute)
	waitFor(t, func() bool { return r.cloud.count("stop i-1") == 1 })
	r.Stop()
	r.Stop()
	if !strings.Contains(r.logs.String(), "idle scheduler stopped") {
		t.Error("no stop log")
	}
}

func TestPanicInScanIsRecovered(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.sched, r.every = everySchedule(10*time.Millisecond), everySchedule(time.Hour)
	var scans atomic.Int32
	r.cloud.onList = func() {
		if scans.Add(1) == 1 {
			panic("boom in the scan")
		}
	}
	r.Start(t.Context())
	defer r.Stop()
	waitFor(t, func() bool { return scans.Load() >= 3 }) // it kept running
	logs := r.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "panic") || !strings.Contains(logs, "boom in the scan") {
		t.Errorf("panic not logged:\n%s", logs)
	}
}

func TestSkipIfStillRunning(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.sched, r.every = everySchedule(5*time.Millisecond), everySchedule(time.Hour)
	var running, maxRunning, scans atomic.Int32
	release := make(chan struct{})
	r.cloud.onList = func() {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		if scans.Add(1) == 1 {
			<-release // the first scan is slow: many ticks pass
		}
	}
	r.Start(t.Context())
	waitFor(t, func() bool { return strings.Contains(r.logs.String(), "skipped") })
	time.Sleep(30 * time.Millisecond)
	if got := scans.Load(); got != 1 {
		t.Errorf("%d scans started while the first ran, want 1", got)
	}
	close(release)
	waitFor(t, func() bool { return scans.Load() >= 3 })
	r.Stop()
	if maxRunning.Load() != 1 {
		t.Errorf("%d scans overlapped", maxRunning.Load())
	}
}

// Stop cancels a running scan and waits for it.
func TestStopWaitsForTheScan(t *testing.T) {
	r := newRig(t, defaultSettings())
	r.sched, r.every = everySchedule(5*time.Millisecond), everySchedule(time.Hour)
	started := make(chan struct{})
	var done atomic.Bool
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.onList = func() {
		select {
		case started <- struct{}{}:
			time.Sleep(50 * time.Millisecond)
			done.Store(true)
		default:
		}
	}
	r.Start(t.Context())
	<-started
	r.Stop()
	if !done.Load() {
		t.Error("Stop returned before the scan ended")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestMetricsDelay(t *testing.T) {
	set := defaultSettings()
	set.MetricsDelay = 10 * time.Minute
	r := newRig(t, set)
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	// CloudWatch has not published the last two periods yet.
	r.cloud.flat("i-1", t0.Add(-12*time.Hour), t0.Add(-10*time.Minute), 1, 1, 1)
	r.scan(t)
	q := r.cloud.queries[0]
	if end := time.Date(2026, 3, 2, 9, 50, 0, 0, time.UTC); !q.End.Equal(end) || !q.Start.Equal(end.Add(-time.Hour)) {
		t.Fatalf("window %s – %s", q.Start, q.End)
	}
	if len(r.notes.Posts()) != 1 {
		t.Fatal("not noticed")
	}
	// At the end of the grace, the published data is still idle: stopped.
	r.cloud.flat("i-1", t0.Add(-10*time.Minute), t0.Add(20*time.Minute), 1, 1, 1)
	r.clock.Advance(30 * time.Minute)
	r.checkDue(t)
	if r.cloud.count("stop i-1") != 1 {
		t.Fatalf("calls %v", r.cloud.Calls())
	}
}
