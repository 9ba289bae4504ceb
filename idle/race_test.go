package idle

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
)

// These tests race the paths that change a notice (a due check, Stop now,
// Keep running, a second process) at the worst moments. None of them
// relies on CheckDue's TryLock: the racing checks run on schedulers of
// their own, like processes sharing one store.

// dueRig is a rig with one idle instance whose notice's grace is over.
func dueRig(t *testing.T) *rig {
	t.Helper()
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	r.clock.Advance(31 * time.Minute)
	return r
}

// gate blocks the first call through it until released; later calls
// pass at once.
type gate struct {
	first            atomic.Bool
	entered, release chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) pass(string) {
	if g.first.CompareAndSwap(false, true) {
		close(g.entered)
		<-g.release
	}
}

func run(f func()) (wait func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	return func() { <-done }
}

// The due check has claimed the notice and is stopping the instance when
// Stop now is clicked: one StopInstances, and the click is told the
// notice is being stopped.
func TestRaceStopNowDuringDueStop(t *testing.T) {
	r := dueRig(t)
	g := newGate()
	r.cloud.onStop = g.pass
	wait := run(func() { r.checkDue(t) })
	<-g.entered
	_, err := r.StopNow(t.Context(), "i-1", "U9")
	var se *SettledError
	if !errors.As(err, &se) || se.Notice.State != StateStopping {
		t.Errorf("Stop now during the stop: %v", err)
	}
	close(g.release)
	wait()
	if got := r.cloud.count("stop i-1"); got != 1 {
		t.Fatalf("%d stop calls, want 1", got)
	}
	if n := r.mem.notice(t, "i-1"); n.State != StateStopped || n.How != SettledStopped || n.Claim != nil {
		t.Errorf("notice %+v", n)
	}
	if len(r.notes.Announces()) != 1 || r.obs.stopped.Load() != 1 {
		t.Errorf("%d announces, %d stops observed", len(r.notes.Announces()), r.obs.stopped.Load())
	}
}

// Stop now has claimed the notice and is stopping the instance when due
// checks run (in this process and in another): they leave it alone.
func TestRaceDueCheckDuringStopNow(t *testing.T) {
	r := dueRig(t)
	other := r.build(t, testConfig())
	g := newGate()
	r.cloud.onStop = g.pass
	var n Notice
	var err error
	wait := run(func() { n, err = r.StopNow(t.Context(), "i-1", "U9") })
	<-g.entered
	r.checkDue(t)
	if err := other.CheckDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	wait()
	if err != nil || n.State != StateStopped || n.How != SettledStopNow || n.SettledBy != "U9" {
		t.Fatalf("Stop now: %+v, %v", n, err)
	}
	if got := r.cloud.count("stop i-1"); got != 1 {
		t.Fatalf("%d stop calls, want 1", got)
	}
	if a := r.audits.entries(); len(a) != 1 || a[0].Action != AuditStopNow {
		t.Errorf("audit %+v", a)
	}
	if len(r.authz.Asked()) > 2 {
		t.Errorf("policy asked %d times", len(r.authz.Asked()))
	}
}

// Keep running lands between the due check's look-up and its decision:
// the check stops nothing and cancels nothing, whether it would have
// stopped the instance or cancelled the notice.
func TestRaceKeepWinsOverDueCheck(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			r := dueRig(t)
			if busy {
				r.cloud.flat("i-1", t0.Add(10*time.Minute), t0.Add(15*time.Minute), 80, 1, 1)
			}
			var once sync.Once
			r.cloud.onGet = func(id string) {
				once.Do(func() {
					if _, err := r.Keep(t.Context(), id, "U9"); err != nil {
						t.Errorf("Keep: %v", err)
					}
				})
			}
			r.checkDue(t)
			if r.cloud.count("stop") != 0 {
				t.Fatalf("stopped: %v", r.cloud.Calls())
			}
			n := r.mem.notice(t, "i-1")
			if n.State != StateKept || n.Cancel != nil || n.SettledBy != "U9" {
				t.Errorf("notice %+v", n)
			}
			if len(r.notes.Announces()) != 0 {
				t.Errorf("announced %+v", r.notes.Announces())
			}
			if a := r.audits.entries(); len(a) != 1 || a[0].Action != AuditKeep {
				t.Errorf("audit %+v", a)
			}
		})
	}
}

// The due check claimed first: Keep running is refused and tags nothing.
func TestRaceDueCheckWinsOverKeep(t *testing.T) {
	r := dueRig(t)
	g := newGate()
	r.cloud.onStop = g.pass
	wait := run(func() { r.checkDue(t) })
	<-g.entered
	_, err := r.Keep(t.Context(), "i-1", "U9")
	var se *SettledError
	if !errors.As(err, &se) || se.Notice.State != StateStopping {
		t.Errorf("Keep during the stop: %v", err)
	}
	close(g.release)
	wait()
	if r.cloud.count("stop i-1") != 1 || r.cloud.count("tag") != 0 {
		t.Errorf("calls %v", r.cloud.Calls())
	}
	if n := r.mem.notice(t, "i-1"); n.State != StateStopped {
		t.Errorf("notice %+v", n)
	}
}

// Keep running on a lease notice is tagging the new lease end when the
// due check runs: the check leaves the notice alone, and it ends kept.
func TestRaceLeaseKeepDuringDueCheck(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-20*time.Minute), map[string]string{computebot.TagExpiresAt: t0.Add(-10 * time.Minute).Format(time.RFC3339)})
	r.scan(t)
	r.clock.Advance(31 * time.Minute)
	other := r.build(t, testConfig())
	g := newGate()
	r.cloud.onTag = g.pass
	var n Notice
	var err error
	wait := run(func() { n, err = r.Keep(t.Context(), "i-1", "U9") })
	<-g.entered
	r.checkDue(t)
	if err := other.CheckDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	wait()
	if err != nil || n.State != StateKept || n.SettledBy != "U9" {
		t.Fatalf("Keep: %+v, %v", n, err)
	}
	r.checkDue(t)
	if r.cloud.count("stop") != 0 || len(r.notes.Announces()) != 0 {
		t.Errorf("calls %v, announces %+v", r.cloud.Calls(), r.notes.Announces())
	}
}

// Many processes check the same due notices while people click Stop now:
// every instance is stopped exactly once.
func TestConcurrentChecksStopOnce(t *testing.T) {
	r := newRig(t, testConfig())
	const instances, processes = 10, 6
	for i := range instances {
		id := fmt.Sprintf("i-%02d", i)
		r.cloud.add(id, t0.Add(-3*time.Hour), nil)
		r.cloud.idleAll(id)
	}
	r.scan(t)
	r.clock.Advance(31 * time.Minute)
	r.cloud.onStop = func(string) { time.Sleep(time.Millisecond) } // widen the window
	var wg sync.WaitGroup
	for range processes {
		s := r.build(t, testConfig())
		wg.Go(func() {
			for range 3 {
				_ = s.CheckDue(t.Context())
			}
		})
	}
	for i := range instances {
		wg.Go(func() { _, _ = r.StopNow(t.Context(), fmt.Sprintf("i-%02d", i), "U9") })
	}
	wg.Wait()
	for i := range instances {
		id := fmt.Sprintf("i-%02d", i)
		if got := r.cloud.count("stop " + id); got != 1 {
			t.Errorf("%s: %d stop calls, want 1", id, got)
		}
		if n := r.mem.notice(t, id); n.State != StateStopped || n.Claim != nil {
			t.Errorf("%s: %+v", id, n)
		}
	}
	if got := r.obs.stopped.Load(); got != instances {
		t.Errorf("observed %d stops, want %d", got, instances)
	}
	if got := len(r.notes.Announces()); got != instances {
		t.Errorf("%d announces, want %d", got, instances)
	}
}

// A crash after the claim (before or after the Stop call, before its
// record): after a restart the notice is neither noticed again nor
// forgotten; once the claim is stale the next check stops it, once.
func TestCrashWhileStopping(t *testing.T) {
	for _, by := range []string{"", "U9"} {
		t.Run("by="+by, func(t *testing.T) {
			r := newRig(t, testConfig())
			r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
			r.cloud.idleAll("i-1")
			r.scan(t)
			n := r.mem.notice(t, "i-1")
			n.State, n.Claim = StateStopping, &Claim{Token: "dead", At: t0.Add(30 * time.Minute), By: by, Prev: StateNoticed}
			r.mem.put(t, n)

			r.Scheduler = r.build(t, testConfig()) // the restart
			r.clock.Advance(31 * time.Minute)
			r.scan(t)
			if r.cloud.count("stop") != 0 || len(r.notes.Posts()) != 1 {
				t.Fatalf("acted on a fresh claim: %v, %d posts", r.cloud.Calls(), len(r.notes.Posts()))
			}
			if _, err := r.StopNow(t.Context(), "i-1", "U8"); !errors.As(err, new(*SettledError)) {
				t.Errorf("Stop now on a claimed notice: %v", err)
			}
			r.clock.Advance(claimTTL)
			r.checkDue(t)
			r.checkDue(t)
			if got := r.cloud.count("stop i-1"); got != 1 {
				t.Fatalf("%d stop calls, want 1", got)
			}
			n = r.mem.notice(t, "i-1")
			how, actor := SettledStopped, computebot.SystemActor
			if by != "" {
				how, actor = SettledStopNow, by
			}
			if n.State != StateStopped || n.How != how || n.SettledBy != by || n.Claim != nil {
				t.Errorf("notice %+v", n)
			}
			if a := r.audits.entries(); len(a) != 1 || a[0].Actor != actor || a[0].Result != "ok" {
				t.Errorf("audit %+v", a)
			}
			if len(r.notes.Announces()) != 1 || len(r.notes.Posts()) != 1 {
				t.Errorf("%d announces, %d posts", len(r.notes.Announces()), len(r.notes.Posts()))
			}
		})
	}
}

// A resumed stop that fails is an attempt like any other.
func TestCrashWhileStoppingThenStopFails(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
	r.cloud.idleAll("i-1")
	r.scan(t)
	n := r.mem.notice(t, "i-1")
	n.State, n.Claim = StateStopping, &Claim{Token: "dead", At: t0.Add(30 * time.Minute), Prev: StateNoticed}
	r.mem.put(t, n)
	r.clock.Advance(30*time.Minute + claimTTL)
	r.cloud.stopErr = &computebot.Error{Code: "RequestLimitExceeded", Message: "AWS is throttling", Transient: true}
	if err := r.CheckDue(t.Context()); err == nil {
		t.Fatal("no error")
	}
	if n := r.mem.notice(t, "i-1"); n.State != StateNoticed || n.Attempts != 1 || n.Claim != nil {
		t.Fatalf("notice %+v", n)
	}
	r.cloud.stopErr = nil
	r.clock.Advance(time.Minute)
	r.checkDue(t)
	if n := r.mem.notice(t, "i-1"); n.State != StateStopped || r.cloud.count("stop i-1") != 2 {
		t.Fatalf("notice %+v, calls %v", n, r.cloud.Calls())
	}
}

// A crash while Keep running extended a lease: the stale claim is released
// and the next check sees whatever the tag says.
func TestCrashWhileExtending(t *testing.T) {
	r := newRig(t, testConfig())
	r.cloud.add("i-1", t0.Add(-20*time.Minute), map[string]string{computebot.TagExpiresAt: t0.Add(-10 * time.Minute).Format(time.RFC3339)})
	r.scan(t)
	n := r.mem.notice(t, "i-1")
	n.State, n.Claim = StateExtending, &Claim{Token: "dead", At: t0.Add(30 * time.Minute), By: "U9", Prev: StateNoticed}
	r.mem.put(t, n)
	until := t0.Add(5 * time.Hour)
	r.cloud.setTag("i-1", computebot.TagExpiresAt, until.Format(time.RFC3339)) // the tag made it
	r.Scheduler = r.build(t, testConfig())
	r.clock.Advance(31 * time.Minute)
	r.checkDue(t)
	if n := r.mem.notice(t, "i-1"); n.State != StateExtending {
		t.Fatalf("fresh claim released: %+v", n)
	}
	r.clock.Advance(claimTTL)
	r.checkDue(t) // releases
	if n := r.mem.notice(t, "i-1"); n.State != StateNoticed || n.Claim != nil {
		t.Fatalf("stale claim kept: %+v", n)
	}
	r.checkDue(t) // decides
	n = r.mem.notice(t, "i-1")
	if n.State != StateCancelled || n.Cancel == nil || n.Cancel.Reason != CancelLeaseExtended || r.cloud.count("stop") != 0 {
		t.Errorf("notice %+v, calls %v", n, r.cloud.Calls())
	}
}

// Stop now (or Keep) clicked while the notice's post is still in flight:
// the post shows the settled notice when it returns; nothing is posted
// twice.
func TestSettledWhilePosting(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			r := newRig(t, testConfig())
			r.cloud.add("i-1", t0.Add(-3*time.Hour), nil)
			r.cloud.idleAll("i-1")
			r.notes.onPost = func(n Notice) {
				if n.State != StateNoticed {
					return
				}
				var err error
				if keep {
					_, err = r.Keep(t.Context(), "i-1", "U9")
				} else {
					_, err = r.StopNow(t.Context(), "i-1", "U9")
				}
				if err != nil {
					t.Errorf("click: %v", err)
				}
			}
			r.scan(t)
			want := StateStopped
			if keep {
				want = StateKept
			}
			if n := r.mem.notice(t, "i-1"); n.State != want || n.Channel != "C1" || n.TS == "" {
				t.Errorf("notice %+v", n)
			}
			if len(r.notes.Posts()) != 1 {
				t.Errorf("posts %+v", r.notes.Posts())
			}
			if ups := r.notes.Updates(); len(ups) != 1 || ups[0].State != want || ups[0].TS == "" {
				t.Errorf("updates %+v", ups)
			}
			wantAnn := 1
			if keep {
				wantAnn = 0
			}
			if got := len(r.notes.Announces()); got != wantAnn {
				t.Errorf("%d announces, want %d", got, wantAnn)
			}
		})
	}
}
