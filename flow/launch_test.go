package flow_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

const (
	sNew       = computebot.RequestNew
	sPending   = computebot.RequestPending
	sApproved  = computebot.RequestApproved
	sExecuting = computebot.RequestExecuting
	sLaunched  = computebot.RequestLaunched
	sDone      = computebot.RequestDone
	sDenied    = computebot.RequestDenied
	sExpired   = computebot.RequestExpired
	sFailed    = computebot.RequestFailed
	sRefused   = computebot.RequestRefused
)

// TestLaunchApproved follows one request from /launch to its IP: every
// state, every message and where it went, the RunInstances call and the
// audit log.
func TestLaunchApproved(t *testing.T) {
	e := newEnv(t)
	o := e.slashOrigin(ana)
	ans := e.slash(o, "/launch", `t2.micro --hours 4 --name box --reason "feature work"`)
	if ans.Reply != nil || ans.Outcome != "accepted" {
		t.Fatalf("Accept = %+v, want accepted with no quick reply", ans)
	}
	r := e.store.last()
	if r.State != sPending || r.MessageTS == "" {
		t.Fatalf("after admission: state %s, message %q; want pending and posted", r.State, r.MessageTS)
	}
	if want := epoch.Add(24 * time.Hour); !r.ApprovalExpiresAt.Equal(want) {
		t.Errorf("ApprovalExpiresAt = %v, want %v (approval_ttl from now)", r.ApprovalExpiresAt, want)
	}
	l := r.Launch
	if l.VCPUs != 1 || l.MemoryMiB != 1024 || l.ImageID != testAMI || l.ImageRoot != "/dev/sda1" || !l.PriceKnown || l.PricePerHour != 0.0116 ||
		l.Lease != 4*time.Hour || l.Name != "box" || l.Reason != "feature work" {
		t.Errorf("admitted launch = %+v", *l)
	}

	// The request message at top level, then the approvers note in its thread.
	top := e.chat.posts(channel, "")
	if len(top) != 1 || top[0].TS != r.MessageTS {
		t.Fatalf("top-level posts = %q, want the request message", texts(top))
	}
	sameMessage(t, "request message", top[0].Msg, reply.RequestMessage(r))
	contains(t, "request message", top[0].Msg, "[Approve]", "[Deny]", "@UANA requests 1 × `t2.micro`", "feature work")
	thread := e.chat.posts(channel, r.MessageTS)
	if len(thread) != 1 {
		t.Fatalf("thread = %q, want the approvers note", texts(thread))
	}
	sameMessage(t, "approvers note", thread[0].Msg, reply.ApproversNote(r, []string{bo, "SPLATFORM"}, false))

	clicker := e.decide(r, bo, true)
	r = e.waitState(r.ID, sDone)

	if got, want := e.store.states(r.ID), []computebot.RequestState{sNew, sPending, sApproved, sExecuting, sLaunched, sDone}; !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
	if r.DecidedBy != bo || !r.DecidedAt.Equal(epoch) || r.AutoApproved {
		t.Errorf("decision = %s at %v (auto %v)", r.DecidedBy, r.DecidedAt, r.AutoApproved)
	}
	in, ok := e.cloud.get(r.Launch.InstanceID)
	if !ok || r.Launch.PublicIP != in.PublicIP || r.Launch.PublicIP == "" || r.Launch.PrivateIP != in.PrivateIP {
		t.Errorf("recorded instance %s %s/%s; cloud has %+v", r.Launch.InstanceID, r.Launch.PublicIP, r.Launch.PrivateIP, in)
	}

	// One RunInstances, with everything from the config and the request.
	specs := e.cloud.launchSpecs()
	if len(specs) != 1 {
		t.Fatalf("RunInstances calls = %d, want 1", len(specs))
	}
	want := computebot.LaunchSpec{
		ClientToken: "computebot-" + r.ID, InstanceType: "t2.micro", ImageID: testAMI, RootDeviceName: "/dev/sda1",
		KeyName: "data-science", SecurityGroupIDs: []string{"sg-0123456789abcdef0"}, SubnetID: "subnet-0123456789abcdef0",
		Tags: map[string]string{
			computebot.TagName: "box", computebot.TagManaged: "true", computebot.TagOwner: ana, computebot.TagRequest: r.ID,
			computebot.TagChannel: channel, computebot.TagThread: r.MessageTS, computebot.TagExpiresAt: "2026-11-28T13:00:00Z",
		},
	}
	if !reflect.DeepEqual(specs[0], want) {
		t.Errorf("LaunchSpec:\n got %+v\nwant %+v", specs[0], want)
	}

	// The thread tells the story; the request message shows the outcome.
	waitFor(t, "the ready message", func() bool { return len(e.chat.posts(channel, r.MessageTS)) == 5 })
	thread = e.chat.posts(channel, r.MessageTS)
	decided := e.store.get(r.ID)
	decided.State = sApproved
	sameMessage(t, "decision", thread[1].Msg, reply.Decision(decided))
	contains(t, "launching", thread[2].Msg, "Launching `t2.micro`", r.ID)
	contains(t, "pending", thread[3].Msg, r.Launch.InstanceID, "is pending")
	sameMessage(t, "ready", thread[4].Msg, reply.Ready(r, "ubuntu", "data-science"))
	contains(t, "ready", thread[4].Msg, "ssh -i ~/.ssh/data-science.pem ubuntu@"+r.Launch.PublicIP)
	// The message is re-rendered once done is recorded, right after the post.
	waitFor(t, "the request message to show the instance", func() bool {
		ups := e.chat.updates(r.MessageTS)
		return len(ups) == 2 && strings.Contains(ups[1].Msg.Text, "running")
	})
	ups := e.chat.updates(r.MessageTS)
	sameMessage(t, "final request message", ups[len(ups)-1].Msg, reply.RequestMessage(r))
	contains(t, "final request message", ups[len(ups)-1].Msg, "Approved by @UBO", r.Launch.InstanceID+"` running")
	if got := e.chat.private(clicker); len(got) != 0 {
		t.Errorf("the approver was told privately %q; the thread says it all", texts(got))
	}
	if got, want := e.auditActions(), []string{"UBO approve ok", "UBO launch " + r.Launch.InstanceID + " ok"}; !slices.Equal(got, want) {
		t.Errorf("audit = %q, want %q", got, want)
	}
	// All of it with the store deciding some transitions twice.
	if runs, updates := e.store.fnStats(); runs <= updates {
		t.Errorf("%d fn runs for %d updates: the store never re-ran fn", runs, updates)
	}
}

// TestLaunchAutoApproved: an auto-approved type launches without a click;
// the policy is the decider.
func TestLaunchAutoApproved(t *testing.T) {
	e := newEnv(t)
	r, _ := e.request(ana, "t3.medium")
	r = e.waitState(r.ID, sDone)
	if got, want := e.store.states(r.ID), []computebot.RequestState{sNew, sApproved, sExecuting, sLaunched, sDone}; !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
	if !r.AutoApproved || r.DecidedByOrPolicy() != "policy" {
		t.Errorf("AutoApproved %v, decided by %s", r.AutoApproved, r.DecidedByOrPolicy())
	}
	top := e.chat.posts(channel, "")
	if len(top) != 1 {
		t.Fatalf("top-level posts %q", texts(top))
	}
	contains(t, "request message", top[0].Msg, "Auto-approved by policy")
	thread := texts(e.chat.posts(channel, r.MessageTS))
	if len(thread) != 3 {
		t.Fatalf("thread = %q, want launching, pending, ready (no approvers note)", thread)
	}
	spec := e.cloud.launchSpecs()[0]
	if spec.Tags[computebot.TagThread] != r.MessageTS || spec.Tags[computebot.TagExpiresAt] != "2026-11-28T17:00:00Z" {
		t.Errorf("tags %v: want the request thread and the default 8 h lease from the decision", spec.Tags)
	}
	if got, want := e.auditActions(), []string{"policy approve ok", "policy launch " + r.Launch.InstanceID + " ok"}; !slices.Equal(got, want) {
		t.Errorf("audit = %q, want %q", got, want)
	}
}

// TestLaunchFailures: what RunInstances and the wait for running can end
// in, other than running.
func TestLaunchFailures(t *testing.T) {
	capacity := awsErr("InsufficientInstanceCapacity", "AWS has no t2.micro capacity in this zone right now.", false)
	throttled := awsErr("RequestLimitExceeded", "AWS is throttling requests.", true)
	timeout := awsErr("RequestTimeout", "AWS did not answer in time.", true)
	for _, tc := range []struct {
		name       string
		setup      func(e *env)
		launches   int // RunInstances calls
		instances  int // instances that exist afterwards
		state      computebot.RequestState
		failure    string // part of the stored failure
		auditCode  string
		afterStart func(e *env, r *computebot.Request)
	}{
		{
			name:     "non-transient error fails at once",
			setup:    func(e *env) { e.cloud.failAlways(cLaunch, capacity) },
			launches: 1, instances: 0, state: sFailed, failure: "AWS has no t2.micro capacity", auditCode: "InsufficientInstanceCapacity",
		},
		{
			name:     "transient errors are retried with the same token",
			setup:    func(e *env) { e.cloud.failNext(cLaunch, throttled, throttled) },
			launches: 3, instances: 1, state: sDone,
		},
		{
			name:     "transient errors until the attempts run out",
			setup:    func(e *env) { e.cloud.failAlways(cLaunch, throttled) },
			launches: 3, instances: 0, state: sFailed, failure: "AWS is throttling requests.", auditCode: "RequestLimitExceeded",
		},
		{
			name: "a timeout whose launch happened is found by the request tag",
			setup: func(e *env) {
				e.cloud.failNext(cLaunch, lostReply{timeout}, timeout, timeout)
			},
			launches: 3, instances: 1, state: sDone,
		},
		{
			name:     "timeouts with no instance found fail the launch",
			setup:    func(e *env) { e.cloud.failAlways(cLaunch, timeout) },
			launches: 3, instances: 0, state: sFailed, failure: "AWS did not answer in time.", auditCode: "RequestTimeout",
		},
		{
			name:     "terminated before running",
			setup:    func(e *env) { e.cloud.set(0, computebot.InstanceTerminated) },
			launches: 1, instances: 1, state: sFailed, failure: "was terminated before it started running (state terminated)", auditCode: "Terminated",
		},
		{
			name:     "describe errors are retried while waiting",
			setup:    func(e *env) { e.cloud.failNext(cInstance, awsErr("InvalidInstanceID.NotFound", "not yet", false)) },
			launches: 1, instances: 1, state: sDone,
		},
		{
			name:  "not running in time",
			setup: func(e *env) { e.cloud.set(-1, computebot.InstanceRunning) },
			afterStart: func(e *env, r *computebot.Request) {
				r = e.waitState(r.ID, sLaunched)
				waitFor(e.t, "the first describe", func() bool { return e.cloud.describeCount(r.Launch.InstanceID) > 0 })
				e.clock.Advance(11 * time.Minute)
			},
			launches: 1, instances: 1, state: sFailed, failure: "did not reach running within 10m0s", auditCode: "Timeout",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			r, _ := e.request(ana, "t2.micro")
			e.decide(r, bo, true)
			if tc.afterStart != nil {
				tc.afterStart(e, r)
			}
			r = e.waitState(r.ID, tc.state)
			specs := e.cloud.launchSpecs()
			if len(specs) != tc.launches {
				t.Errorf("RunInstances calls = %d, want %d", len(specs), tc.launches)
			}
			for i, s := range specs {
				if !reflect.DeepEqual(s, specs[0]) {
					t.Errorf("attempt %d sent %+v, attempt 1 %+v: a retry must be the same launch", i+1, s, specs[0])
				}
			}
			if n := e.cloud.instanceCount(); n != tc.instances {
				t.Errorf("instances = %d, want %d", n, tc.instances)
			}
			if tc.state == sDone {
				waitFor(t, "the ready message", func() bool { return len(e.chat.posts(channel, r.MessageTS)) == 5 })
				return
			}
			if !strings.Contains(r.Failure, tc.failure) {
				t.Errorf("Failure = %q, want it to say %q", r.Failure, tc.failure)
			}
			waitFor(t, "the failure in the thread", func() bool {
				return slices.ContainsFunc(e.chat.posts(channel, r.MessageTS), func(c chatCall) bool { return reflect.DeepEqual(c.Msg, reply.Failed(r)) })
			})
			waitFor(t, "the request message to show the failure", func() bool {
				ups := e.chat.updates(r.MessageTS)
				return len(ups) > 0 && strings.Contains(words(ups[len(ups)-1].Msg), "launch failed (see thread)")
			})
			log := e.store.auditLog()
			last := log[len(log)-1]
			if last.Action != "launch" || last.Result != tc.auditCode || last.Actor != bo {
				t.Errorf("last audit entry %+v, want launch by %s with result %s", last, bo, tc.auditCode)
			}
		})
	}
}

// TestLaunchStartQuotaRecheck: two approvals that raced past the quota
// are both written before either launches, so the launch start sees the
// other one and refuses.
func TestLaunchStartQuotaRecheck(t *testing.T) {
	e := newEnv(t, withConfig(func(c *config.Config) { c.Launch.MaxRunningPerUser = 1 }))
	r1, _ := e.request(ana, "t2.micro")
	r2, _ := e.request(ana, "t2.micro")
	// The moment r1's approval is written, someone else's approval of r2
	// lands too (another worker, another process).
	e.store.setAfterUpdate(func(r *computebot.Request) {
		if r.ID == r1.ID && r.State == sApproved {
			e.store.setAfterUpdate(nil)
			if _, err := e.store.UpdateRequest(e.ctx, r2.ID, func(cur *computebot.Request) error {
				cur.State, cur.DecidedBy, cur.DecidedAt = sApproved, carl, epoch
				return nil
			}); err != nil {
				panic(err)
			}
		}
	})
	e.decide(r1, bo, true)
	// Both approvals count each other: r1's is undone, privately, and it
	// waits for an approver again; nothing is launched for it.
	r1 = e.waitState(r1.ID, sPending)
	if r1.DecidedBy != "" || !r1.DecidedAt.IsZero() {
		t.Errorf("undone approval still records a decision: %q at %v", r1.DecidedBy, r1.DecidedAt)
	}
	refusal := policy.Refusal{Code: policy.RefuseQuota, Action: policy.ActionStartLaunch, Actor: bo, RequestID: r1.ID, Owner: ana, Count: 1, Limit: 1}
	bob := flow.Origin{User: bo, Channel: r1.ChannelID, ThreadTS: r1.MessageTS}
	waitFor(t, "the approver to hear why", func() bool { return len(e.chat.private(bob)) > 0 })
	e.told(bob, reply.NotLaunched(refusal, true))
	contains(t, "undone approval", reply.NotLaunched(refusal, true), "was not launched", "waits for an approver again")
	for _, spec := range e.cloud.launchSpecs() {
		if spec.ClientToken == r1.ClientToken() {
			t.Errorf("RunInstances for the undone request: %+v", spec)
		}
	}
	log := e.store.auditLog()
	var undone bool
	for _, a := range log {
		undone = undone || (a.RequestID == r1.ID && a.Action == "approve" && a.Result == string(policy.RefuseQuota))
	}
	if !undone {
		t.Errorf("audit %+v has no undone approval of %s", log, r1.ID)
	}
	// The request message shows the buttons again.
	waitFor(t, "the message to show Approve again", func() bool {
		ups := e.chat.updates(r1.MessageTS)
		return len(ups) > 0 && strings.Contains(words(ups[len(ups)-1].Msg), "Waiting for an approver")
	})
}

// TestLaunchStartQuotaRecheckAutoApproved: an auto-approved request over
// the quota at launch is refused (privately to its requester), not left
// waiting for an approver it never needed.
func TestLaunchStartQuotaRecheckAutoApproved(t *testing.T) {
	e := newEnv(t, withConfig(func(c *config.Config) { c.Launch.MaxRunningPerUser = 1 }))
	other, _ := e.request(ana, "t2.micro")
	e.store.setAfterUpdate(func(r *computebot.Request) {
		if r.State == sApproved && r.AutoApproved {
			e.store.setAfterUpdate(nil)
			if _, err := e.store.UpdateRequest(e.ctx, other.ID, func(cur *computebot.Request) error {
				cur.State, cur.DecidedBy, cur.DecidedAt = sApproved, carl, epoch
				return nil
			}); err != nil {
				panic(err)
			}
		}
	})
	o := e.slashOrigin(ana)
	e.slash(o, "/launch", "t3.medium") // auto-approved
	r := e.waitState(e.store.last().ID, sRefused)
	refusal := policy.Refusal{Code: policy.RefuseQuota, Action: policy.ActionStartLaunch, Actor: "policy", RequestID: r.ID, Owner: ana, Count: 1, Limit: 1}
	if want := reply.NotLaunched(refusal, false).Text; r.Failure != want {
		t.Errorf("Failure = %q, want %q", r.Failure, want)
	}
	waitFor(t, "the requester to hear why", func() bool { return len(e.chat.private(o)) > 0 })
	e.told(o, reply.NotLaunched(refusal, false))
	if n := len(e.cloud.launchSpecs()); n != 0 {
		t.Errorf("RunInstances calls = %d, want none", n)
	}
}

// TestLaunchStartQuotaCountFails: when the recount before the launch fails
// (EC2 throttled), the approved request is launched anyway: it was within
// quota when it was approved, and a hiccup must not cost an approval.
func TestLaunchStartQuotaCountFails(t *testing.T) {
	e := newEnv(t)
	r, _ := e.request(ana, "t2.micro")
	// The approval's own count passes; the recount at launch start fails.
	throttled := &computebot.Error{Code: "RequestLimitExceeded", Message: "AWS is throttling requests right now; try again shortly.", Transient: true}
	var counts int
	e.store.setAfterUpdate(func(cur *computebot.Request) {
		if cur.ID == r.ID && cur.State == sApproved && counts == 0 {
			counts++
			e.cloud.failNext(cManagedInstances, throttled)
		}
	})
	e.decide(r, bo, true)
	e.waitState(r.ID, sDone)
	if n := len(e.cloud.launchSpecs()); n != 1 {
		t.Errorf("RunInstances calls = %d, want 1", n)
	}
}

// TestResume: a restarted process finishes each request from where the
// previous one stopped, with the same ClientToken, and never launches a
// second instance.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		// leave gets a request into the state a crash leaves it in (nil:
		// its intent's job never ran, there is no request yet).
		leave     func(e *env) *computebot.Request
		state     computebot.RequestState // as left
		jobs      int                     // what Resume returns: unfinished intents, then requests
		thenState computebot.RequestState // after the resumed jobs
		launches  int                     // RunInstances calls after the restart
	}{
		{
			name: "accepted, its job never ran",
			leave: func(e *env) *computebot.Request {
				e.accept(e.slashOrigin(ana), slashInput("/launch", "t2.micro"))
				return nil
			},
			jobs: 1, thenState: sPending,
		},
		{
			name: "pending without message: crashed while posting",
			leave: func(e *env) *computebot.Request {
				e.crashPosting()
				e.slash(e.slashOrigin(ana), "/launch", "t2.micro") // Run recovers the panic
				return e.store.last()
			},
			state: sPending, jobs: 1, thenState: sPending,
		},
		{
			name: "approved auto without message: crashed while posting",
			leave: func(e *env) *computebot.Request {
				e.crashPosting()
				e.slash(e.slashOrigin(ana), "/launch", "t3.medium")
				return e.store.last()
			},
			// Its intent only: it posts the request, then launches it
			// (Resume leaves an approved request with no message to it).
			state: sApproved, jobs: 1, thenState: sDone, launches: 1,
		},
		{
			name: "approved: crashed before the launch started",
			leave: func(e *env) *computebot.Request {
				r, _ := e.request(ana, "t2.micro")
				e.store.setAfterUpdate(func(r *computebot.Request) {
					if r.State == sApproved {
						e.cloud.panicOn(cManagedInstances) // the launch start's quota count
					}
				})
				e.decide(r, bo, true)
				e.store.setAfterUpdate(nil)
				e.cloud.calm()
				return e.store.get(r.ID)
			},
			state: sApproved, jobs: 1, thenState: sDone, launches: 1,
		},
		{
			name: "executing: crashed right after RunInstances",
			leave: func(e *env) *computebot.Request {
				r, _ := e.request(ana, "t2.micro")
				e.cloud.setCrashAfter()
				e.decide(r, bo, true)
				e.cloud.calm()
				if n := e.cloud.instanceCount(); n != 1 {
					e.t.Fatalf("%d instances before the restart, want 1", n)
				}
				return e.store.get(r.ID)
			},
			state: sExecuting, jobs: 1, thenState: sDone, launches: 1,
		},
		{
			name: "launched: waiting for running when it stopped",
			leave: func(e *env) *computebot.Request {
				e.cloud.set(-1, computebot.InstanceRunning)
				r, _ := e.request(ana, "t2.micro")
				e.decide(r, bo, true)
				r = e.waitState(r.ID, sLaunched)
				waitFor(e.t, "the wait to describe", func() bool { return e.cloud.describeCount(r.Launch.InstanceID) > 0 })
				e.f.Stop()
				e.cloud.set(0, computebot.InstanceRunning)
				e.cloud.settle(r.Launch.InstanceID, computebot.InstanceRunning)
				return e.store.get(r.ID)
			},
			state: sLaunched, jobs: 0, thenState: sDone,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := tc.leave(e)
			if r != nil && r.State != tc.state {
				t.Fatalf("left in %s, want %s", r.State, tc.state)
			}
			before := e.cloud.launchSpecs()
			e.restart()
			if n := e.resume(); n != tc.jobs {
				t.Fatalf("Resume = %d jobs, want %d", n, tc.jobs)
			}
			if r == nil {
				r = e.store.last()
			}
			r = e.waitState(r.ID, tc.thenState)
			after := e.cloud.launchSpecs()[len(before):]
			if len(after) != tc.launches {
				t.Errorf("RunInstances calls after the restart = %d, want %d", len(after), tc.launches)
			}
			for _, s := range append(before, after...) {
				if s.ClientToken != r.ClientToken() {
					t.Errorf("ClientToken %q, want %q", s.ClientToken, r.ClientToken())
				}
			}
			if n := e.cloud.instanceCount(); n > 1 {
				t.Errorf("%d instances: a resumed launch must not launch twice", n)
			}
			if tc.thenState == sPending {
				if r.MessageTS == "" {
					t.Fatal("the request message was not posted on resume")
				}
				if top := e.chat.posts(channel, ""); len(top) != 1 {
					t.Errorf("top-level posts %q, want one request message", texts(top))
				}
				// And it stays approvable.
				e.decide(r, bo, true)
				e.waitState(r.ID, sDone)
			}
			if tc.thenState == sDone {
				waitFor(t, "the ready message", func() bool {
					return slices.ContainsFunc(e.chat.posts(channel, r.MessageTS), func(c chatCall) bool { return strings.Contains(c.Msg.Text, "is running") })
				})
			}
		})
	}
}

// TestResumeLeavesPostedPendingAlone: a posted pending request needs no
// job (it waits for a click), nor does a finished one.
func TestResumeLeavesPostedPendingAlone(t *testing.T) {
	e := newEnv(t)
	r, _ := e.request(ana, "t2.micro")
	d, _ := e.request(ana, "t3.small")
	e.decide(d, bo, false)
	if jobs := e.restart().Resume(e.ctx); len(jobs) != 0 {
		t.Fatalf("Resume = %d jobs, want none", len(jobs))
	}
	if got := e.store.get(r.ID).State; got != sPending {
		t.Errorf("state %s, want pending", got)
	}
}

// TestResumeStoreBroken: nothing to resume when the store cannot list.
func TestResumeStoreBroken(t *testing.T) {
	e := newEnv(t)
	e.store.failNext(sRequests, fmt.Errorf("disk on fire"))
	if jobs := e.f.Resume(e.ctx); jobs != nil {
		t.Errorf("Resume = %v, want nil", jobs)
	}
}

// TestStartResumesALaunchedRequest goes through Start, as a restarted
// process does: a request left waiting for its instance to run must not
// hold up Start (it once deadlocked there) and gets its IP reply.
func TestStartResumesALaunchedRequest(t *testing.T) {
	e := newEnv(t)
	e.cloud.set(-1, computebot.InstanceRunning)
	r, _ := e.request(ana, "t2.micro")
	e.decide(r, bo, true)
	r = e.waitState(r.ID, sLaunched)
	e.f.Stop()
	e.cloud.set(0, computebot.InstanceRunning)
	e.cloud.settle(r.Launch.InstanceID, computebot.InstanceRunning)

	f := e.restart()
	started := make(chan struct{})
	go func() { f.Start(e.ctx); close(started) }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return with a launched request to resume")
	}
	e.waitState(r.ID, sDone)
	f.Stop()
}
