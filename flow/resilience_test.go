package flow_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// TestShutdownDuringRetry: a launch waiting to retry when the bot stops is
// not failed: it stays executing and the next start finishes it, with the
// same ClientToken.
func TestShutdownDuringRetry(t *testing.T) {
	e := newEnv(t, withOptions(func(o *flow.Options) { o.RetryBackoff = time.Hour; o.ShutdownTimeout = 5 * time.Millisecond }))
	r, _ := e.request(ana, "t2.micro")
	f := e.restart()
	f.Start(e.ctx)
	e.cloud.failNext(cLaunch, awsErr("RequestLimitExceeded", "AWS is throttling requests.", true))
	f.Submit(*f.Accept(e.ctx, e.envelope(e.clickOrigin(bo, channel, r.MessageTS), clickInput(reply.ActionApprove, r.ID, r.MessageTS))).Job)
	waitFor(t, "the first attempt", func() bool { return len(e.cloud.launchSpecs()) == 1 })
	f.Stop()
	if got := e.store.get(r.ID); got.State != sExecuting || got.Failure != "" {
		t.Fatalf("after Stop: %s %q, want executing, to be resumed", got.State, got.Failure)
	}

	e.restart()
	e.resume()
	e.waitState(r.ID, sDone)
	specs := e.cloud.launchSpecs()
	if len(specs) != 2 || specs[1].ClientToken != specs[0].ClientToken || e.cloud.instanceCount() != 1 {
		t.Errorf("%d RunInstances calls, %d instances; want 2 calls with one token and one instance", len(specs), e.cloud.instanceCount())
	}
}

// TestStoreWriteFailures: a transition whose write fails leaves the request
// where it was, and the next start carries on from there without a second
// instance.
func TestStoreWriteFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  string
		fail  func(r *computebot.Request) bool // the write that fails
		stuck computebot.RequestState          // where it is left
		// after the restart
		final    computebot.RequestState
		requests int // request messages posted in all
		readies  int // ready messages posted in all
	}{
		// The admission's own writes: TestBugAdmissionWriteFailureFinishes
		// (bugs_test.go).
		{
			name: "the start of the launch", args: "t2.micro", fail: func(r *computebot.Request) bool { return r.State == sExecuting },
			stuck: sApproved, final: sDone, requests: 1, readies: 1,
		},
		{
			name: "the launched instance", args: "t2.micro", fail: func(r *computebot.Request) bool { return r.State == sLaunched },
			stuck: sExecuting, final: sDone, requests: 1, readies: 1,
		},
		{
			name: "done", args: "t2.micro", fail: func(r *computebot.Request) bool { return r.State == sDone },
			// The resumed wait finds the reply the first one posted.
			stuck: sLaunched, final: sDone, requests: 1, readies: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.store.failWrites(tc.fail)
			r, _ := e.request(ana, tc.args)
			if r.State == sPending && tc.stuck != sPending {
				e.decide(r, bo, true)
			}
			if tc.stuck == sLaunched {
				waitFor(t, "the ready message", func() bool { return e.readies() == 1 })
			}
			if got := e.store.get(r.ID).State; got != tc.stuck {
				t.Fatalf("left %s, want %s", got, tc.stuck)
			}
			e.store.failWrites(nil)

			e.restart()
			e.resume()
			r = e.waitState(r.ID, tc.final)
			if tc.final == sPending {
				e.decide(r, bo, true)
				e.waitState(r.ID, sDone)
				tc.readies = 1
			}
			waitFor(t, "the ready messages", func() bool { return e.readies() == tc.readies })
			if n := len(e.chat.posts(channel, "")); n != tc.requests {
				t.Errorf("%d request messages, want %d", n, tc.requests)
			}
			if n := e.cloud.instanceCount(); n != 1 {
				t.Errorf("%d instances, want 1", n)
			}
		})
	}
}

// readies counts the ready messages posted anywhere.
func (e *env) readies() int {
	n := 0
	for _, p := range e.chat.allPosts() {
		if strings.Contains(p.Msg.Text, " is running: ") {
			n++
		}
	}
	return n
}

// TestExpiryWriteFails: the next sweep expires it.
func TestExpiryWriteFails(t *testing.T) {
	e := newEnv(t)
	r, _ := e.request(ana, "t2.micro")
	e.clock.Advance(25 * time.Hour)
	e.store.failWrites(func(r *computebot.Request) bool { return r.State == sExpired })
	e.f.SweepExpired(e.ctx)
	if got := e.store.get(r.ID).State; got != sPending {
		t.Fatalf("state %s", got)
	}
	e.store.failWrites(nil)
	e.f.SweepExpired(e.ctx)
	if got := e.store.get(r.ID).State; got != sExpired {
		t.Fatalf("state %s", got)
	}
	if n := len(e.chat.posts(channel, r.MessageTS)); n != 2 {
		t.Errorf("thread has %d posts, want the note and one expiry", n)
	}
}

// TestChatTrouble: progress messages and message updates that cannot be
// posted do not stop a launch.
func TestChatTrouble(t *testing.T) {
	e := newEnv(t)
	e.chat.failWhen(func(c chatCall) error {
		if c.Method == mPost && c.Thread != "" || c.Method == mUpdate {
			return errors.New("slack: ratelimited")
		}
		return nil
	})
	r, _ := e.request(ana, "t2.micro")
	e.decide(r, bo, true)
	r = e.waitState(r.ID, sDone)
	if r.Launch.PublicIP == "" {
		t.Error("no IP recorded")
	}
}

// TestJobsRunTwice: a job that runs again (a resume racing the original)
// changes nothing the second time.
func TestJobsRunTwice(t *testing.T) {
	t.Run("admission", func(t *testing.T) {
		e := newEnv(t)
		_, ans := e.accept(e.slashOrigin(ana), slashInput("/launch", "t2.micro"))
		e.f.Run(e.ctx, *ans.Job)
		e.f.Run(e.ctx, *ans.Job)
		if n := len(e.chat.allPosts()); n != 2 {
			t.Errorf("%d posts, want the request message and the approvers note once", n)
		}
	})
	t.Run("admission of a refused request", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.failAlways(cInstanceType, awsErr("InvalidInstanceType", "no such type.", false))
		o := e.slashOrigin(ana)
		_, ans := e.accept(o, slashInput("/launch", "t2.micro"))
		e.f.Run(e.ctx, *ans.Job)
		e.f.Run(e.ctx, *ans.Job)
		e.told(o, reply.TypeLookupFailed("t2.micro", "no such type."))
	})
	t.Run("launch", func(t *testing.T) {
		e := newEnv(t)
		e.store.put(&computebot.Request{
			ID: "R-APPROVED", Requester: ana, ChannelID: channel, MessageTS: "1700000000.000200", State: sApproved,
			DecidedBy: bo, DecidedAt: epoch, CreatedAt: epoch,
			Launch: &computebot.LaunchRequest{InstanceType: "t2.micro", ImageRef: testAMI, ImageID: testAMI, Name: "box", Lease: time.Hour},
		})
		jobs := e.f.Resume(e.ctx)
		if len(jobs) != 1 {
			t.Fatalf("%d jobs", len(jobs))
		}
		e.f.Run(e.ctx, jobs[0])
		e.f.Run(e.ctx, jobs[0])
		e.waitState("R-APPROVED", sDone)
		if n := len(e.cloud.launchSpecs()); n != 1 {
			t.Errorf("%d RunInstances calls, want 1", n)
		}
	})
	t.Run("decision", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.request(ana, "t2.micro")
		o := e.clickOrigin(bo, channel, r.MessageTS)
		_, ans := e.accept(o, clickInput(reply.ActionApprove, r.ID, r.MessageTS))
		e.f.Run(e.ctx, *ans.Job)
		e.f.Run(e.ctx, *ans.Job)
		e.waitState(r.ID, sDone)
		e.told(o) // its intent was done: the second run is nothing
		if n := len(e.cloud.launchSpecs()); n != 1 {
			t.Errorf("%d RunInstances calls, want 1", n)
		}
		if got := e.auditActions(); len(got) != 2 {
			t.Errorf("audit %q, want one approval and one launch", got)
		}
	})
}

// TestApproversUnknown: with the approver list unreadable, what needs an
// approver is refused, with the words that fit.
func TestApproversUnknown(t *testing.T) {
	e := newEnv(t)
	e.groups.err = errors.New("slack: usergroups.users.list failed")
	e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch, "R-BOX"))
	onlyApprovers := func(action policy.ActionKind) reply.Message {
		return reply.Refusal(policy.Refusal{Code: policy.RefuseApproversOnly, Action: action, Actor: eve, Approvers: e.cfg.Approvers})
	}
	o := e.slashOrigin(eve)
	e.slash(o, "/instances", "--all")
	e.told(o, onlyApprovers(policy.ActionListAll))

	o = e.slashOrigin(eve)
	e.slash(o, "/computebot", "idle")
	e.told(o, onlyApprovers(policy.ActionIdleReport))

	o = e.clickOrigin(eve, channel, requestThread)
	e.click(o, reply.ActionKeepRunning, boxID, "1700000000.000001")
	e.told(o, reply.Refusal(policy.Refusal{Code: policy.RefuseApproversUnknown, Action: policy.ActionKeep, Actor: eve}))

	// The owner needs no approver list.
	o = e.clickOrigin(ana, channel, requestThread)
	e.click(o, reply.ActionKeepRunning, boxID, "1700000000.000001")
	e.told(o)
	if got := e.idle.recorded(); !slices.Equal(got, []string{"keep " + boxID + " " + ana}) {
		t.Errorf("scheduler calls %q", got)
	}
}
