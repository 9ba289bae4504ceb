package idle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/policy"
)

func TestNew(t *testing.T) {
	deps := Deps{Cloud: newCloud(), Notifier: &fakeNotifier{}, Authorizer: &fakeAuthz{}, KV: newMemKV()}
	for _, spec := range []string{"*/10 * * * *", "@every 10m", "@every 90s", "@hourly", "0 9 * * 1-5"} {
		cfg := testConfig()
		cfg.Schedule = spec
		if _, err := New(cfg, deps); err != nil {
			t.Errorf("New(%q): %v", spec, err)
		}
	}
	for _, tt := range []struct {
		change func(*config.Idle)
		want   []string
	}{
		{func(c *config.Idle) { c.Schedule = "every 10 minutes" }, []string{"idle.schedule"}},
		{func(c *config.Idle) { c.Schedule = "*/10 * * *" }, []string{"idle.schedule"}},
	} {
		cfg := testConfig()
		tt.change(&cfg)
		_, err := New(cfg, deps)
		if err == nil {
			t.Errorf("New(%+v): no error", cfg)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v) = %q, want it to mention %s", cfg, err, w)
			}
		}
	}
	if _, err := New(testConfig(), Deps{KV: newMemKV()}); err == nil || !strings.Contains(err.Error(), "Cloud") {
		t.Errorf("missing dependencies: %v", err)
	}
	cfg := testConfig()
	cfg.Schedule = "@every 10m"
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	// "@every" schedules run at that interval; due notices are checked every minute.
	if next := s.sched.Next(t0); next != t0.Add(10*time.Minute) {
		t.Errorf("@every 10m: next run %s after %s", next, t0)
	}
	if next := s.every.Next(t0); next != t0.Add(time.Minute) {
		t.Errorf("check: next run %s after %s", next, t0)
	}
	deps.CheckEvery = 10 * time.Second
	if s, _ = New(cfg, deps); s.every.Next(t0) != t0.Add(10*time.Second) {
		t.Errorf("CheckEvery 10s: next check %s", s.every.Next(t0))
	}
	// The config's values are used as they are (config validated them).
	if s.window != time.Hour || s.grace != 30*time.Minute || s.snooze != 4*time.Hour || s.cfg.LeaseAction != "stop" {
		t.Errorf("settings: window %s, grace %s, snooze %s, lease action %q", s.window, s.grace, s.snooze, s.cfg.LeaseAction)
	}
}

func TestScanFindsIdleInstances(t *testing.T) {
	r := newRig(t, testConfig())
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
	r.mem.put(t, Notice{InstanceID: "i-snoozed", Reason: ReasonIdle, State: StateKept, KeptUntil: t0.Add(time.Hour), Episode: "idle/i-snoozed/1"})

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
	if n.MaxCPU != 1.2 || n.NetworkBytes != 300e3 {
		t.Errorf("evidence: max CPU %v, network %v", n.MaxCPU, n.NetworkBytes)
	}
	if got := r.obs.noticed.Load(); got != 1 {
		t.Errorf("observed %d notices, want 1", got)
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
	r := newRig(t, testConfig())
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
	asked := r.authz.Asked()
	if len(asked) != 1 || asked[0].Kind != policy.ActionAutoStop || asked[0].Actor != computebot.SystemActor || asked[0].Instance.ID != "i-1" {
		t.Errorf("policy asked %+v", asked)
	}
	n := r.mem.notice(t, "i-1")
	if n.State != StateStopped || n.How != SettledStopped || n.SettledBy != "" || !n.SettledAt.Equal(t0.Add(30*time.Minute)) || n.Claim != nil || n.Cancel != nil {
		t.Errorf("after the stop: %+v", n)
	}
	ann := r.notes.Announces()
	if len(ann) != 1 || ann[0].State != StateStopped || ann[0].Channel != "C1" || ann[0].ThreadTS() != "1000.0001" || ann[0].MaxCPU != 1.2 {
		t.Errorf("announced %+v", ann)
	}
	ups := r.notes.Updates()
	if len(ups) != 1 || ups[0].State != StateStopped {
		t.Errorf("updates %+v", ups)
	}
	a := r.audits.entries()
	if len(a) != 1 || a[0].Actor != computebot.SystemActor || a[0].Action != AuditIdleStop || a[0].Target != "i-1" || a[0].Result != "ok" || a[0].RequestID != "R-7" {
		t.Errorf("audit %+v", a)
	}
	if r.obs.stopped.Load() != 1 || r.obs.noticed.Load() != 1 {
		t.Errorf("observed %d stops, %d notices", r.obs.stopped.Load(), r.obs.noticed.Load())
	}
	// Checking again does nothing more.
	r.checkDue(t)
	r.scan(t) // the instance is stopped now: not listed
	if r.cloud.count("stop") != 1 || len(r.notes.Posts()) != 1 || r.obs.stopped.Load() != 1 {
		t.Errorf("acted again: %v", r.cloud.Calls())
	}
	if r.mem.reruns.Load() == 0 {
		t.Error("the KV fake never ran an update function twice")
	}
}

// An instance launched able to hibernate is hibernated by an idle stop;
// when EC2 refuses, it is stopped plainly and the notice records why.
func TestIdleStopHibernates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refuse  error
		stopNow bool // Stop now instead of the grace's end
		calls   []string
	}{
		{name: "hibernated", calls: []string{"hibernate i-1"}},
		{name: "refused", refuse: &computebot.Error{Code: "UnsupportedHibernationConfiguration", Message: "EC2 would not hibernate i-1",
			Err: fmt.Errorf("%w: fake", computebot.ErrHibernationRefused)}, calls: []string{"hibernate i-1", "stop i-1"}},
		{name: "Stop now", stopNow: true, calls: []string{"hibernate i-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, testConfig())
			r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
			r.cloud.setHibernation("i-1")
			r.cloud.idleAll("i-1")
			r.cloud.hibernateErr = tc.refuse
			r.scan(t)
			if n := r.mem.notice(t, "i-1"); !n.Hibernates {
				t.Fatalf("notice %+v does not say the instance hibernates", n)
			}
			if tc.stopNow {
				if _, err := r.StopNow(t.Context(), "i-1", "U9"); err != nil {
					t.Fatal(err)
				}
			} else {
				r.clock.Advance(30 * time.Minute)
				r.checkDue(t)
			}
			var calls []string
			for _, c := range r.cloud.Calls() {
				if strings.HasPrefix(c, "hibernate") || strings.HasPrefix(c, "stop") {
					calls = append(calls, c)
				}
			}
			if !slices.Equal(calls, tc.calls) {
				t.Errorf("calls %v, want %v", calls, tc.calls)
			}
			n := r.mem.notice(t, "i-1")
			if n.State != StateStopped || n.Hibernated != (tc.refuse == nil) || (tc.refuse != nil) != (n.NotHibernated != "") {
				t.Errorf("after the stop: state %s, hibernated %v, not hibernated %q", n.State, n.Hibernated, n.NotHibernated)
			}
		})
	}
}

// A scan also acts on due notices, without the checker.
func TestScanRunsCheckDue(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.clock.Advance(40 * time.Minute)
	r.scan(t)
	if r.cloud.count("stop i-1") != 1 {
		t.Fatalf("calls %v", r.cloud.Calls())
	}
}

// A restart (a new scheduler on the same store) neither repeats the notice
// nor forgets the stop.
func TestRestartBetweenNoticeAndStop(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	if len(r.notes.Posts()) != 1 {
		t.Fatal("no notice")
	}
	r.Scheduler = r.build(t, testConfig())
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
	if n := r.mem.notice(t, "i-1"); n.State != StateStopped {
		t.Fatalf("after the stop: %+v", n)
	}
	if len(r.notes.Announces()) != 1 {
		t.Errorf("announces %v", r.notes.Announces())
	}
}

// A crash between persisting a notice and posting it: the notice is not
// posted again (at most one per episode), the stop still happens, and the
// owner learns of it from the settled notice.
func TestCrashMidPost(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	n := r.newNotice(computebot.Instance{ID: "i-1", Type: "t3.large", Tags: map[string]string{computebot.TagOwner: "U1"}}, ReasonIdle, t0.Add(-time.Minute))
	n.MaxCPU, n.NetworkBytes, n.Window = 1.2, 3e5, time.Hour
	r.mem.put(t, n)
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
	if r.obs.noticed.Load() != 0 {
		t.Error("the settled notice's post counted as a new notice")
	}
}

// A notice is not stopped while its post may still be in flight (the
// owner must see the warning first), even with no grace at all.
func TestNoStopWhilePosting(t *testing.T) {
	cfg := testConfig()
	cfg.Grace = 0
	r := newRig(t, cfg)
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	checked := false
	r.notes.onPost = func(Notice) {
		if !checked {
			checked = true
			r.checkDue(t) // the checker runs while the post is in flight
		}
	}
	r.scan(t) // its own CheckDue, after the post, stops
	if !checked {
		t.Fatal("no post")
	}
	if got := r.cloud.count("stop i-1"); got != 1 {
		t.Fatalf("%d stops, want 1 after the post: %v", got, r.cloud.Calls())
	}
	if len(r.notes.Posts()) != 1 || len(r.notes.Announces()) != 1 {
		t.Errorf("%d posts, %d announces", len(r.notes.Posts()), len(r.notes.Announces()))
	}
}

func TestPostFailureIsRetried(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.notes.postErr = errors.New("slack is down")
	if err := r.Scan(t.Context()); err == nil || !strings.Contains(err.Error(), "slack is down") {
		t.Fatalf("Scan: %v", err)
	}
	if r.mem.has("i-1") {
		t.Fatalf("unposted notice kept: %+v", r.mem.notice(t, "i-1"))
	}
	if r.obs.noticed.Load() != 0 {
		t.Error("a failed post counted")
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
		want   Cancellation
	}{
		{"stopped meanwhile", func(r *rig) { r.cloud.setState("i-1", computebot.InstanceStopped) }, Cancellation{Reason: CancelStopped}},
		{"stopping meanwhile", func(r *rig) { r.cloud.setState("i-1", computebot.InstanceStopping) }, Cancellation{Reason: CancelStopped}},
		{"terminated meanwhile", func(r *rig) { r.cloud.setState("i-1", computebot.InstanceTerminated) }, Cancellation{Reason: CancelTerminated}},
		{"gone", func(r *rig) { r.cloud.remove("i-1") }, Cancellation{Reason: CancelTerminated}},
		{"pending", func(r *rig) { r.cloud.setState("i-1", computebot.InstancePending) }, Cancellation{Reason: CancelState, State: "pending"}},
		{"activity resumed", func(r *rig) {
			r.cloud.flat("i-1", t0.Add(10*time.Minute), t0.Add(15*time.Minute), 43, 100e6, 20.5e6)
		}, Cancellation{Reason: CancelActive, MaxCPU: 43, NetworkBytes: 120.5e6, Window: time.Hour}},
		{"metrics stopped arriving", func(r *rig) {
			r.cloud.flat("i-1", t0.Add(10*time.Minute), t0.Add(15*time.Minute), 1, 1, -1)
		}, Cancellation{Reason: CancelIncomplete, Periods: 12, CPUPeriods: 12, NetPeriods: 11, Window: time.Hour}},
		{"policy refused", func(r *rig) { r.authz.refuse = policy.RefuseNotManaged }, Cancellation{Reason: CancelRefused, Refusal: policy.RefuseNotManaged}},
		{"policy check failed", func(r *rig) { r.authz.err = errors.New("slack is down") }, Cancellation{Reason: CancelRefused, Refusal: policy.RefuseInternal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, testConfig())
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
			if n.State != StateCancelled || n.How != SettledCancelled || n.Cancel == nil || *n.Cancel != tt.want || n.SettledBy != "" || !n.SettledAt.Equal(t0.Add(31*time.Minute)) {
				t.Errorf("notice %+v, cancel %+v; want %+v", n, n.Cancel, tt.want)
			}
			ann := r.notes.Announces()
			if len(ann) != 1 || ann[0].Cancel == nil || *ann[0].Cancel != tt.want {
				t.Errorf("announced %+v, want %+v", ann, tt.want)
			}
			if ups := r.notes.Updates(); len(ups) != 1 || ups[0].State != StateCancelled {
				t.Errorf("updates %+v", ups)
			}
			a := r.audits.entries()
			if tt.want.Reason == CancelRefused {
				if len(a) != 1 || a[0].Result != "refused" || a[0].Detail != string(tt.want.Refusal) || a[0].Actor != computebot.SystemActor {
					t.Errorf("audit %+v", a)
				}
			} else if len(a) != 0 {
				t.Errorf("audit %+v", a)
			}
		})
	}
}

func TestStopFailureRetriedThenCancelled(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.clock.Advance(31 * time.Minute)
	r.cloud.stopErr = &computebot.Error{Code: "UnauthorizedOperation", Message: "computebot may not stop instances"}
	for i := range maxAttempts {
		err := r.CheckDue(t.Context())
		if i < maxAttempts-1 {
			if err == nil {
				t.Fatalf("attempt %d: no error", i+1)
			}
			if n := r.mem.notice(t, "i-1"); n.State != StateNoticed || n.Attempts != i+1 || n.Claim != nil {
				t.Fatalf("after attempt %d: %+v", i+1, n)
			}
		}
		if i == maxAttempts-1 && err != nil {
			t.Fatalf("last attempt: %v", err)
		}
	}
	if r.cloud.count("stop i-1") != maxAttempts {
		t.Errorf("calls %v", r.cloud.Calls())
	}
	n := r.mem.notice(t, "i-1")
	want := Cancellation{Reason: CancelStopFailed, ErrorCode: "UnauthorizedOperation", ErrorMessage: "computebot may not stop instances"}
	if n.State != StateCancelled || n.Cancel == nil || *n.Cancel != want || n.Attempts != maxAttempts {
		t.Errorf("notice %+v, cancel %+v", n, n.Cancel)
	}
	a := r.audits.entries()
	if len(a) != maxAttempts || a[0].Result != "UnauthorizedOperation" {
		t.Errorf("audit %+v", a)
	}
	if r.obs.stopped.Load() != 0 {
		t.Error("a failed stop counted")
	}
	if len(r.notes.Announces()) != 1 {
		t.Errorf("announces %+v", r.notes.Announces())
	}
}

func TestKeepIdle(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.clock.Advance(5 * time.Minute)
	n, err := r.Keep(t.Context(), "i-1", "U9")
	if err != nil {
		t.Fatal(err)
	}
	until := t0.Add(5*time.Minute + 4*time.Hour)
	if n.State != StateKept || n.How != SettledKept || n.SettledBy != "U9" || !n.KeptUntil.Equal(until) || !n.SettledAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("kept: %+v", n)
	}
	if stored := r.mem.notice(t, "i-1"); stored.State != StateKept || stored.SettledBy != "U9" {
		t.Errorf("stored %+v", stored)
	}
	if ups := r.notes.Updates(); len(ups) != 1 || ups[0].State != StateKept {
		t.Errorf("updates %+v", ups)
	}
	if len(r.notes.Announces()) != 0 {
		t.Errorf("announced a keep: %+v", r.notes.Announces())
	}
	if a := r.audits.entries(); len(a) != 1 || a[0].Action != AuditKeep || a[0].Actor != "U9" || a[0].Result != "ok" {
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
	if err != nil || len(rep.Snoozed) != 1 || rep.Snoozed[0].InstanceID != "i-1" || !rep.Snoozed[0].Until.Equal(until) || rep.Snoozed[0].KeptBy != "U9" {
		t.Fatalf("report %+v, %v", rep, err)
	}
	// Snooze over, still idle: a new episode, a new notice.
	r.clock.Advance(time.Hour)
	r.scan(t)
	posts := r.notes.Posts()
	if len(posts) != 2 || posts[1].Episode == posts[0].Episode || posts[1].State != StateNoticed || posts[1].SettledBy != "" {
		t.Fatalf("after the snooze: %+v", posts)
	}
}

func TestKeepLease(t *testing.T) {
	r := newRig(t, testConfig())
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
	if n.State != StateKept || n.How != SettledKept || n.SettledBy != "U9" || !n.KeptUntil.Equal(until) || n.Claim != nil {
		t.Fatalf("kept: %+v", n)
	}
	if c := r.cloud.Calls(); !slices.Contains(c, "tag i-1 computebot:expires-at="+until.Format(time.RFC3339)) {
		t.Fatalf("calls %v", c)
	}
	if a := r.audits.entries(); len(a) != 1 || a[0].Action != AuditLeaseExtend || a[0].Result != "ok" {
		t.Errorf("audit %+v", a)
	}
	if ups := r.notes.Updates(); len(ups) != 1 || ups[0].State != StateKept {
		t.Errorf("updates %+v", ups)
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

// A failed lease extension leaves the notice as it was (the claim is
// released) and is an error.
func TestKeepLeaseFailure(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-20*time.Minute), map[string]string{computebot.TagExpiresAt: t0.Add(-10 * time.Minute).Format(time.RFC3339)})
	r.scan(t)
	r.cloud.tagErr = &computebot.Error{Code: "UnauthorizedOperation", Message: "computebot may not tag instances"}
	_, err := r.Keep(t.Context(), "i-1", "U9")
	if computebot.ErrorCode(err) != "UnauthorizedOperation" {
		t.Fatalf("Keep: %v", err)
	}
	if n := r.mem.notice(t, "i-1"); n.State != StateNoticed || n.Claim != nil {
		t.Errorf("notice %+v", n)
	}
	if a := r.audits.entries(); len(a) != 1 || a[0].Result != "UnauthorizedOperation" {
		t.Errorf("audit %+v", a)
	}
	// The grace ends: the lease is still over, the instance is stopped.
	r.clock.Advance(31 * time.Minute)
	r.checkDue(t)
	if r.cloud.count("stop i-1") != 1 {
		t.Errorf("calls %v", r.cloud.Calls())
	}
}

// EC2 reads are eventually consistent: a listing right after Keep may still
// show the old expires-at. The kept notice stops a second notice.
func TestKeepLeaseStaleTag(t *testing.T) {
	r := newRig(t, testConfig())
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
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.clock.Advance(time.Minute)
	n, err := r.StopNow(t.Context(), "i-1", "U9")
	if err != nil {
		t.Fatal(err)
	}
	if n.State != StateStopped || n.How != SettledStopNow || n.SettledBy != "U9" || !n.SettledAt.Equal(t0.Add(time.Minute)) || n.Claim != nil {
		t.Fatalf("notice %+v", n)
	}
	if r.cloud.count("stop i-1") != 1 {
		t.Fatalf("calls %v", r.cloud.Calls())
	}
	if ann := r.notes.Announces(); len(ann) != 1 || ann[0].How != SettledStopNow || ann[0].SettledBy != "U9" || ann[0].ThreadTS() != "1000.0001" {
		t.Errorf("announced %+v", ann)
	}
	if ups := r.notes.Updates(); len(ups) != 1 || ups[0].State != StateStopped {
		t.Errorf("updates %+v", ups)
	}
	if a := r.audits.entries(); len(a) != 1 || a[0].Action != AuditStopNow || a[0].Actor != "U9" || a[0].Result != "ok" {
		t.Errorf("audit %+v", a)
	}
	if r.obs.stopped.Load() != 1 {
		t.Errorf("observed %d stops", r.obs.stopped.Load())
	}
	// The grace ends: nothing more happens.
	r.clock.Advance(time.Hour)
	r.checkDue(t)
	if r.cloud.count("stop") != 1 || len(r.notes.Announces()) != 1 {
		t.Errorf("acted again: %v", r.cloud.Calls())
	}
	// Clicking again, or Keep after the stop, is a typed refusal.
	for _, f := range []func(context.Context, string, string) (Notice, error){r.StopNow, r.Keep} {
		_, err := f(t.Context(), "i-1", "U9")
		var se *SettledError
		if !errors.As(err, &se) || se.Notice.State != StateStopped || se.Notice.How != SettledStopNow || se.Notice.InstanceID != "i-1" {
			t.Errorf("on a stopped notice: %v", err)
		}
	}
	for _, f := range []func(context.Context, string, string) (Notice, error){r.StopNow, r.Keep} {
		_, err := f(t.Context(), "i-2", "U9")
		var nn *NoNoticeError
		if !errors.As(err, &nn) || nn.InstanceID != "i-2" || !errors.Is(err, ErrNoNotice) || !errors.Is(err, computebot.ErrNotFound) {
			t.Errorf("without a notice: %v", err)
		}
	}
	if r.cloud.count("stop") != 1 {
		t.Errorf("calls %v", r.cloud.Calls())
	}
}

// Stop now on a cancelled or kept notice stops; Keep on a cancelled one
// is refused.
func TestStopNowAfterSettled(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.cloud.flat("i-1", t0.Add(10*time.Minute), t0.Add(15*time.Minute), 60, 1, 1)
	r.clock.Advance(31 * time.Minute)
	r.checkDue(t)
	if n := r.mem.notice(t, "i-1"); n.State != StateCancelled {
		t.Fatalf("notice %+v", n)
	}
	var se *SettledError
	if _, err := r.Keep(t.Context(), "i-1", "U9"); !errors.As(err, &se) || se.Notice.State != StateCancelled {
		t.Errorf("Keep on a cancelled notice: %v", err)
	}
	n, err := r.StopNow(t.Context(), "i-1", "U9")
	if err != nil || n.State != StateStopped || n.Cancel != nil || n.How != SettledStopNow {
		t.Fatalf("Stop now on a cancelled notice: %+v, %v", n, err)
	}
}

func TestStopNowFailure(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	if _, err := r.Keep(t.Context(), "i-1", "U8"); err != nil {
		t.Fatal(err)
	}
	r.cloud.stopErr = &computebot.Error{Code: "IncorrectInstanceState", Message: "it is not in a state from which it can be stopped"}
	_, err := r.StopNow(t.Context(), "i-1", "U9")
	if computebot.UserMessage(err) != "it is not in a state from which it can be stopped" {
		t.Fatalf("StopNow: %v", err)
	}
	if n := r.mem.notice(t, "i-1"); n.State != StateKept || n.SettledBy != "U8" || n.Claim != nil || n.Attempts != 0 {
		t.Errorf("notice %+v", n)
	}
	if a := r.audits.entries(); len(a) != 2 || a[1].Action != AuditStopNow || a[1].Result != "IncorrectInstanceState" {
		t.Errorf("audit %+v", a)
	}
	if r.obs.stopped.Load() != 0 || len(r.notes.Announces()) != 0 {
		t.Error("a failed stop was shown or counted")
	}
}

func TestLeaseExpiry(t *testing.T) {
	for _, action := range []string{"stop", "terminate"} {
		t.Run(action, func(t *testing.T) {
			cfg := testConfig()
			cfg.LeaseAction = action
			r := newRig(t, cfg)
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
			if len(a) != 1 || a[0].Action != "lease-"+action || a[0].Actor != computebot.SystemActor || a[0].Target != "i-1" {
				t.Errorf("audit %+v", a)
			}
			how := map[string]Settlement{"stop": SettledStopped, "terminate": SettledTerminated}[action]
			if ann := r.notes.Announces(); len(ann) != 1 || ann[0].How != how || !ann[0].LeaseEnded.Equal(ended) {
				t.Errorf("announced %+v", ann)
			}
			if r.obs.stopped.Load() != 1 {
				t.Errorf("observed %d stops", r.obs.stopped.Load())
			}
		})
	}
}

func TestLeaseExtendedMeanwhile(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-10*time.Minute), map[string]string{computebot.TagExpiresAt: t0.Add(-time.Minute).Format(time.RFC3339)})
	r.scan(t)
	until := t0.Add(5 * time.Hour)
	r.cloud.setTag("i-1", computebot.TagExpiresAt, until.Format(time.RFC3339)) // /computebot extend
	r.clock.Advance(31 * time.Minute)
	r.checkDue(t)
	if r.cloud.count("stop") != 0 {
		t.Fatal("stopped")
	}
	want := Cancellation{Reason: CancelLeaseExtended, LeaseUntil: until}
	if ann := r.notes.Announces(); len(ann) != 1 || ann[0].Cancel == nil || !ann[0].Cancel.LeaseUntil.Equal(until) || ann[0].Cancel.Reason != want.Reason {
		t.Errorf("announced %+v", ann)
	}
	// The tag removed instead:
	r2 := newRig(t, testConfig())
	r2.cloud.add("i-1", t0.Add(-10*time.Minute), map[string]string{computebot.TagExpiresAt: t0.Add(-time.Minute).Format(time.RFC3339)})
	r2.scan(t)
	r2.cloud.setTag("i-1", computebot.TagExpiresAt, "")
	r2.clock.Advance(31 * time.Minute)
	r2.checkDue(t)
	if n := r2.mem.notice(t, "i-1"); n.Cancel == nil || n.Cancel.Reason != CancelNoLease {
		t.Errorf("notice %+v", n)
	}
}

// An instance that is idle again after a cancelled notice starts a new
// episode.
func TestCancelledThenIdleAgain(t *testing.T) {
	r := newRig(t, testConfig())
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
	if len(posts) != 2 || posts[1].Episode == posts[0].Episode || posts[1].Cancel != nil {
		t.Fatalf("posts %+v", posts)
	}
}

func TestPostsAreSequential(t *testing.T) {
	r := newRig(t, testConfig())
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
	r := newRig(t, testConfig()) // scans every 10 minutes
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
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	if _, err := r.StopNow(t.Context(), "i-1", "U9"); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(keepSettled + time.Hour)
	r.scan(t)
	if r.mem.has("i-1") {
		t.Errorf("settled notice not pruned: %+v", r.mem.notice(t, "i-1"))
	}
}

// Pruning is conditional: a notice that changed since it was listed (a new
// episode) stays.
func TestPruneKeepsNewerNotice(t *testing.T) {
	r := newRig(t, testConfig())
	now := t0.Add(keepSettled + time.Hour)
	old := Notice{InstanceID: "i-1", Reason: ReasonIdle, State: StateStopped, SettledAt: t0, Episode: "idle/i-1/1"}
	newer := Notice{InstanceID: "i-1", Reason: ReasonIdle, State: StateNoticed, NoticedAt: now, StopAt: now.Add(time.Hour), Episode: "idle/i-1/2"}
	r.mem.put(t, newer)
	r.clock.Advance(keepSettled + time.Hour)
	r.prune(t.Context(), "i-1", old.Episode, now)
	if n := r.mem.notice(t, "i-1"); n.Episode != newer.Episode {
		t.Errorf("newer notice pruned: %+v", n)
	}
	r.mem.put(t, old)
	r.prune(t.Context(), "i-1", old.Episode, now)
	if r.mem.has("i-1") {
		t.Error("old notice not pruned")
	}
}

// A notice record must stay small: 10,000 of them are a few MB.
func TestNoticeIsSmall(t *testing.T) {
	r := newRig(t, testConfig())
	id := "i-0123456789abcdef0"
	r.cloud.add(id, t0.Add(-3*time.Hour), map[string]string{computebot.TagName: "a reasonably long instance name"})
	r.cloud.idleAll(id)
	r.scan(t)
	r.cloud.flat(id, t0, t0.Add(5*time.Minute), 99.5, 123e6, 456e6)
	r.clock.Advance(31 * time.Minute)
	r.checkDue(t)
	r.mem.mu.Lock()
	raw := r.mem.data[NoticesBucket][id]
	r.mem.mu.Unlock()
	if n := r.mem.notice(t, id); n.State != StateCancelled {
		t.Fatalf("notice %+v", n)
	}
	if len(raw) > 1024 {
		t.Errorf("notice record is %d bytes: %s", len(raw), raw)
	}
}

// Records written before notices held facts: a prose "outcome", "kept_by",
// no "how". They still decode (what they lack stays empty), and the
// scheduler acts on them.
func TestLegacyRecords(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-kept", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-kept")
	r.mem.putRaw("i-kept", []byte(`{"instance_id":"i-kept","owner":"Ui-kept","type":"t3.large","reason":"idle","action":"stop",`+
		`"max_cpu":1.2,"network_bytes":300000,"window":3600000000000,"noticed_at":"2026-03-02T08:00:00Z","stop_at":"2026-03-02T08:30:00Z",`+
		`"state":"kept","outcome":"Kept running by <@U9> until <!date^1772448000^{date_short_pretty} at {time}|2026-03-02 11:00 UTC>.",`+
		`"kept_by":"U9","kept_until":"2026-03-02T11:00:00Z","settled_at":"2026-03-02T08:10:00Z","channel":"C1","ts":"2000.0001","episode":"idle/i-kept/1"}`))
	r.cloud.add("i-noticed", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-noticed")
	r.mem.putRaw("i-noticed", []byte(`{"instance_id":"i-noticed","owner":"Ui-noticed","reason":"idle","action":"stop","max_cpu":1.2,`+
		`"noticed_at":"2026-03-02T09:50:00Z","stop_at":"2026-03-02T10:20:00Z","state":"noticed","channel":"C1","ts":"2000.0002","episode":"idle/i-noticed/1"}`))

	n := r.mem.notice(t, "i-kept")
	if n.State != StateKept || n.How != "" || !n.KeptUntil.Equal(time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("legacy kept notice: %+v", n)
	}
	rep, err := r.Report(t.Context())
	if err != nil || len(rep.Snoozed) != 1 || rep.Snoozed[0].InstanceID != "i-kept" || len(rep.Noticed) != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	r.clock.Advance(20 * time.Minute)
	r.checkDue(t)
	if n := r.mem.notice(t, "i-noticed"); n.State != StateStopped || n.How != SettledStopped {
		t.Errorf("legacy noticed notice: %+v", n)
	}
	if n, err := r.StopNow(t.Context(), "i-kept", "U9"); err != nil || n.State != StateStopped || n.How != SettledStopNow {
		t.Errorf("Stop now on a legacy kept notice: %+v, %v", n, err)
	}
}

func TestStartRunsScansAndChecks(t *testing.T) {
	r := newRig(t, testConfig())
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
	if r.obs.scans.Load() == 0 || r.obs.scanErrs.Load() != 0 {
		t.Errorf("observed %d scans, %d failed", r.obs.scans.Load(), r.obs.scanErrs.Load())
	}
}

func TestPanicInScanIsRecovered(t *testing.T) {
	r := newRig(t, testConfig())
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
	r := newRig(t, testConfig())
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
	r := newRig(t, testConfig())
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
	cfg := testConfig()
	cfg.MetricsDelay = config.Duration(10 * time.Minute)
	r := newRig(t, cfg)
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

// Stop does not wait past StopWait for a notice post held up (by Slack's
// rate limits, say): the process can stop; the post carries on until the
// process exits, and a later start finds it by its key.
func TestStopDoesNotWaitForAStuckPost(t *testing.T) {
	r := newRig(t, testConfig())
	r.stopWait = 50 * time.Millisecond
	r.Scheduler = r.build(t, testConfig())
	r.sched, r.every = everySchedule(5*time.Millisecond), everySchedule(time.Hour)
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	posting, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r.notes.onPost = func(Notice) {
		once.Do(func() { close(posting) })
		<-release
	}
	r.Start(t.Context())
	<-posting
	stopped := make(chan struct{})
	go func() { r.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second): // a hang, not a speed check
		t.Fatal("Stop waited for a post that does not end")
	}
	if !strings.Contains(r.logs.String(), "without waiting longer") {
		t.Errorf("no log of the abandoned wait:\n%s", r.logs.String())
	}
	close(release)
	waitFor(t, func() bool { return len(r.notes.Posts()) == 1 })
}

// fakeLeader is a leader lease held (or not) with a token, each holding
// good for `period` (an hour when zero) unless renewed.
type fakeLeader struct {
	mu     sync.Mutex
	token  int64
	held   bool
	period time.Duration
}

func (l *fakeLeader) set(token int64, held bool) {
	l.mu.Lock()
	l.token, l.held = token, held
	l.mu.Unlock()
}

func (l *fakeLeader) Lease() (int64, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.period
	if p == 0 {
		p = time.Hour
	}
	return l.token, time.Now().Add(p), l.held
}

// TestRunOutlivesRenewals: a scheduler run lasts as long as the lease it
// started under is renewed, however many lease periods that is, and is
// cancelled once it is not.
func TestRunOutlivesRenewals(t *testing.T) {
	r := newRig(t, testConfig())
	lead := &fakeLeader{token: 3, held: true, period: 30 * time.Millisecond}
	r.leader = lead
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { r.holdLease(ctx, cancel, 3, time.Now().Add(30*time.Millisecond)); close(done) }()
	time.Sleep(150 * time.Millisecond) // five periods, each renewed
	if ctx.Err() != nil {
		t.Fatal("a run was cancelled while its lease was renewed")
	}
	lead.set(4, true) // another term: this run's lease is gone
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("a run went on after its lease's term ended")
	}
	if ctx.Err() == nil {
		t.Fatal("holdLease returned without cancelling the run")
	}
}

// TestOnlyTheLeaderSchedules: a replica without the leader lease runs no
// scan and no check; the one with it does, and writes its token into the
// notices it changes.
func TestOnlyTheLeaderSchedules(t *testing.T) {
	r := newRig(t, testConfig())
	lead := &fakeLeader{}
	r.leader = lead
	r.sched, r.every = everySchedule(5*time.Millisecond), everySchedule(5*time.Millisecond)
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.Start(t.Context())
	defer r.Stop()
	time.Sleep(100 * time.Millisecond)
	if n := len(r.cloud.Calls()); n != 0 {
		t.Fatalf("a replica without the lease called AWS %d times: %v", n, r.cloud.Calls())
	}
	lead.set(7, true)
	waitFor(t, func() bool { return len(r.notes.Posts()) == 1 })
	if n := r.mem.notice(t, "i-1"); n.Fence != 7 {
		t.Errorf("notice fence %d, want the lease's token 7", n.Fence)
	}
	// Later runs go on under the lease (each run has its own deadline).
	r.clock.Advance(31 * time.Minute)
	waitFor(t, func() bool { return r.cloud.count("stop i-1") == 1 })
	// The lease lost: nothing more runs.
	lead.set(7, false)
	time.Sleep(30 * time.Millisecond)
	calls := len(r.cloud.Calls())
	time.Sleep(60 * time.Millisecond)
	if n := len(r.cloud.Calls()); n != calls {
		t.Errorf("%d AWS calls after the lease was lost", n-calls)
	}
}

// TestDeposedLeaderIsFenced: a check holding an older token than the one
// in the notice (a newer leader changed it) neither stops the instance nor
// changes the notice.
func TestDeposedLeaderIsFenced(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	if err := r.Scan(withFence(context.Background(), 9)); err != nil { // the new leader noticed it
		t.Fatal(err)
	}
	r.clock.Advance(31 * time.Minute)
	before := r.mem.notice(t, "i-1")
	_ = r.CheckDue(withFence(context.Background(), 8)) // the old leader, late
	if got := r.cloud.count("stop"); got != 0 {
		t.Fatalf("the deposed leader stopped the instance (%d stop calls)", got)
	}
	if after := r.mem.notice(t, "i-1"); after.State != before.State || after.Fence != 9 {
		t.Fatalf("the deposed leader changed the notice: %+v", after)
	}
	if err := r.CheckDue(withFence(context.Background(), 9)); err != nil {
		t.Fatal(err)
	}
	if got := r.cloud.count("stop i-1"); got != 1 {
		t.Fatalf("the leader's check: %d stop calls, want 1", got)
	}
}
