package flow_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/flow"
)

// fakeCluster is one replica's view of the others.
type fakeCluster struct {
	mu      sync.Mutex
	self    string
	leading bool
	gone    map[string]bool
}

func newCluster(self string) *fakeCluster { return &fakeCluster{self: self, gone: map[string]bool{}} }

func (c *fakeCluster) Self() string { return c.self }
func (c *fakeCluster) Leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}
func (c *fakeCluster) Gone(_ context.Context, replica string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return replica == "" || c.gone[replica]
}
func (c *fakeCluster) set(leading bool, gone ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leading = leading
	for _, g := range gone {
		c.gone[g] = true
	}
}

func withCluster(c flow.Cluster) envOption { return func(e *env) { e.cluster = c } }

// replica switches the env to another replica on the same store, chat and
// cloud (the previous one is stopped, as if it had died).
func (e *env) replica(c *fakeCluster) {
	e.t.Helper()
	e.cluster = c
	e.restart()
}

// TestClaims: the replica that accepts an envelope claims its intent, the
// one that decides a request claims the request; another replica leaves
// both alone while their claimer lives, and the leader takes them over
// (each once) when it is gone.
func TestClaims(t *testing.T) {
	t.Run("an intent", func(t *testing.T) {
		a := newCluster("replica-a")
		e := newEnv(t, withCluster(a))
		env, ans := e.accept(e.slashOrigin(ana), slashInput("/launch", "t3.small"))
		if ans.Job == nil {
			t.Fatal("no job")
		}
		if in := e.store.intent(env.ID); in.Claim != "replica-a" {
			t.Fatalf("intent claimed by %q, want replica-a", in.Claim)
		}
		// replica-a dies before running it; replica-b starts.
		b := newCluster("replica-b")
		e.replica(b)
		if n := e.resume(); n != 0 {
			t.Fatalf("replica-b resumed %d jobs of a live replica at its start", n)
		}
		if jobs := e.f.Adopt(e.ctx); len(jobs) != 0 {
			t.Fatal("a replica that does not lead adopted work")
		}
		b.set(true)
		if jobs := e.f.Adopt(e.ctx); len(jobs) != 0 {
			t.Fatal("the leader adopted the work of a live replica")
		}
		b.set(true, "replica-a")
		jobs := e.f.Adopt(e.ctx)
		if len(jobs) != 1 {
			t.Fatalf("the leader adopted %d jobs of a gone replica, want 1", len(jobs))
		}
		if in := e.store.intent(env.ID); in.Claim != "replica-b" {
			t.Fatalf("adopted intent claimed by %q, want replica-b", in.Claim)
		}
		// Its own claim with nothing on it in this process (say the job
		// gave up on an error) is handed out again, once it is older
		// than a just-accepted intent on its way; once queued, not.
		if again := e.f.Adopt(e.ctx); len(again) != 0 {
			t.Fatalf("own claim of an intent just adopted: %d jobs, want none yet", len(again))
		}
		e.clock.Advance(time.Minute)
		if again := e.f.Adopt(e.ctx); len(again) != 1 {
			t.Fatalf("own idle claim: %d jobs, want it again", len(again))
		}
		e.f.Submit(jobs[0]) // queued (nobody runs the queue in this test)
		if again := e.f.Adopt(e.ctx); len(again) != 0 {
			t.Fatal("adopted work queued in this process was handed out again")
		}
		b.set(false)
		if again := e.f.Adopt(e.ctx); len(again) != 0 {
			t.Fatal("a replica that no longer leads handed out work")
		}
		e.f.Run(e.ctx, jobs[0])
		r := e.store.last()
		if r == nil || r.State != computebot.RequestPending || r.MessageTS == "" {
			t.Fatalf("the adopted /launch left %+v", r)
		}
		if got := len(e.chat.posts(channel, "")); got != 1 {
			t.Fatalf("%d posts in the channel, want the one request message", got)
		}
	})

	t.Run("a request mid-launch", func(t *testing.T) {
		a := newCluster("replica-a")
		e := newEnv(t, withCluster(a))
		r, _ := e.request(ana, "t3.small")
		e.cloud.setCrashAfter() // RunInstances reaches EC2, then replica-a dies
		e.decide(r, bo, true)
		e.cloud.calm()
		r = e.store.get(r.ID)
		if r.Claim != "replica-a" || r.State != computebot.RequestExecuting {
			t.Fatalf("after the approval: claim %q, state %s; want replica-a, executing", r.Claim, r.State)
		}
		b := newCluster("replica-b")
		e.replica(b)
		b.set(true, "replica-a")
		jobs := e.f.Adopt(e.ctx)
		if len(jobs) != 1 {
			t.Fatalf("adopted %d jobs, want the launch", len(jobs))
		}
		e.f.Run(e.ctx, jobs[0])
		done := e.waitState(r.ID, computebot.RequestDone)
		if done.Claim != "replica-b" {
			t.Errorf("finished with claim %q, want replica-b", done.Claim)
		}
		if n := e.cloud.instanceCount(); n != 1 {
			t.Fatalf("%d instances, want 1 (the same ClientToken)", n)
		}
		specs := e.cloud.launchSpecs()
		if len(specs) != 2 || specs[0].ClientToken != specs[1].ClientToken || specs[0].Tags[computebot.TagExpiresAt] != specs[1].Tags[computebot.TagExpiresAt] {
			t.Fatalf("RunInstances calls %+v: want two with the same token and lease end", specs)
		}
	})
}

// TestClaimMovedStopsTheOldReplica: a replica that was judged gone while
// it still ran (a long pause) finds its request claimed by another and
// does nothing more on it: no second launch record, no IP reply.
func TestClaimMovedStopsTheOldReplica(t *testing.T) {
	a := newCluster("replica-a")
	e := newEnv(t, withCluster(a))
	e.cloud.set(-1, computebot.InstanceRunning) // never running until settled
	r, _ := e.request(ana, "t3.small")
	e.decide(r, bo, true)
	r = e.waitState(r.ID, computebot.RequestLaunched)
	waitFor(t, "replica-a's wait to poll", func() bool { return e.cloud.describeCount(r.Launch.InstanceID) > 0 })
	if _, err := e.store.UpdateRequest(e.ctx, r.ID, func(cur *computebot.Request) error {
		cur.Claim = "replica-b" // the leader took it over
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.cloud.settle(r.Launch.InstanceID, computebot.InstanceRunning)
	time.Sleep(50 * time.Millisecond) // a's waiter sees the instance run
	if got := e.store.get(r.ID); got.State != computebot.RequestLaunched {
		t.Fatalf("replica-a recorded %s on a request replica-b drives", got.State)
	}
	for _, p := range e.chat.posts(channel, r.MessageTS) {
		if strings.Contains(words(p.Msg), "ssh ") {
			t.Fatal("replica-a posted the IP reply of a request replica-b drives")
		}
	}
}

// TestAdoptLeavesWorkUnderWay: what this process is on is never handed
// out again: an intent just accepted (its job comes after the ack), a
// /stop waiting for the instance to stop (its intent is unfinished until
// then), a launched request whose wait runs.
func TestAdoptLeavesWorkUnderWay(t *testing.T) {
	e := newEnv(t)
	e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch, ""))
	e.cloud.set(-1, computebot.InstanceRunning) // changes never settle on their own

	// Accepted, acked, its job not submitted yet.
	_, ans := e.accept(e.slashOrigin(ana), slashInput("/instances", ""))
	if ans.Job == nil {
		t.Fatal("no job")
	}
	if jobs := e.f.Adopt(e.ctx); len(jobs) != 0 {
		t.Fatalf("an intent just accepted was handed out by Adopt (%d jobs): it would run twice", len(jobs))
	}
	e.f.Run(e.ctx, *ans.Job)

	// A /stop whose wait for "stopped" is under way, a minute on.
	e.clock.Advance(time.Minute)
	e.slash(e.slashOrigin(ana), "/stop", boxID)
	e.clock.Advance(time.Minute)
	if jobs := e.f.Adopt(e.ctx); len(jobs) != 0 {
		t.Fatalf("a /stop waiting for its instance was handed out again (%d jobs): EC2 asked twice, told twice", len(jobs))
	}
	if n := e.cloud.callCount(cStop); n != 1 {
		t.Fatalf("%d Stop calls, want 1", n)
	}

	// A launch waiting for running.
	r, _ := e.request(ana, "t3.small")
	e.decide(r, bo, true)
	e.waitState(r.ID, computebot.RequestLaunched)
	e.clock.Advance(time.Minute)
	if jobs := e.f.Adopt(e.ctx); len(jobs) != 0 {
		t.Fatalf("a launched request whose wait runs was handed out again (%d jobs)", len(jobs))
	}
}
