package flow_test

import (
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
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// TestLaunchRefusals: a /launch that policy or AWS refuses is answered
// privately, in the ack when it can be, and launches nothing.
func TestLaunchRefusals(t *testing.T) {
	running := func(e *env, n int) {
		for i := range n {
			e.cloud.add(managed(fmt.Sprintf("i-00000000000000%03d", i), ana, "old", computebot.InstanceRunning, epoch.Add(-time.Hour), "R-OLD"))
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(e *env)
		args  string
		inAck bool // refused before the ack: nothing stored
		want  func(e *env, r *computebot.Request) reply.Message
	}{
		{
			name: "type not allowed", args: "m5.large", inAck: true,
			want: func(e *env, _ *computebot.Request) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseTypeNotAllowed, Action: policy.ActionLaunch, Actor: ana,
					InstanceType: "m5.large", Allowed: e.cfg.Launch.AllowedTypes})
			},
		},
		{
			name: "lease too long", args: "t2.micro --hours 100", inAck: true,
			want: func(*env, *computebot.Request) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseLeaseTooLong, Action: policy.ActionLaunch, Actor: ana,
					Lease: 100 * time.Hour, MaxLease: 72 * time.Hour})
			},
		},
		{
			name: "quota at request", args: "t2.micro", setup: func(e *env) { running(e, 2) },
			want: func(*env, *computebot.Request) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseQuota, Action: policy.ActionLaunch, Actor: ana, Owner: ana, Count: 2, Limit: 2})
			},
		},
		{
			name: "quota cannot be counted", args: "t2.micro",
			setup: func(e *env) { e.cloud.failAlways(cManagedInstances, awsErr("Unavailable", "EC2 is down.", true)) },
			want: func(*env, *computebot.Request) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseQuotaUnknown, Action: policy.ActionLaunch, Actor: ana, Owner: ana})
			},
		},
		{
			name: "instance type lookup fails", args: "t2.micro",
			setup: func(e *env) {
				e.cloud.failAlways(cInstanceType, awsErr("Throttling", "AWS is throttling requests.", true))
			},
			want: func(*env, *computebot.Request) reply.Message {
				return reply.TypeLookupFailed("t2.micro", "AWS is throttling requests.")
			},
		},
		{
			name: "AMI does not resolve", args: "t2.micro --ami ami-00000000000000dea",
			want: func(*env, *computebot.Request) reply.Message {
				return reply.ImageLookupFailed("ami-00000000000000dea", "the AMI does not exist.")
			},
		},
		{
			name: "not in the channel", args: "t2.micro",
			setup: func(e *env) {
				e.chat.failWith(mPost, fmt.Errorf("slack: not_in_channel: %w", flow.ErrNotInChannel))
			},
			want: func(*env, *computebot.Request) reply.Message { return reply.CannotPost(computebot.KindLaunch, true) },
		},
		{
			name: "posting fails", args: "t2.micro",
			setup: func(e *env) { e.chat.failWith(mPost, errors.New("slack: rate_limited")) },
			want:  func(*env, *computebot.Request) reply.Message { return reply.CannotPost(computebot.KindLaunch, false) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			o := e.slashOrigin(ana)
			ans := e.slash(o, "/launch", tc.args)
			r := e.store.last()
			want := tc.want(e, r)
			if tc.inAck {
				if ans.Reply == nil || ans.Job != nil || ans.Outcome != "refused" {
					t.Fatalf("Accept = %+v, want a refusal in the ack", ans)
				}
				sameMessage(t, "ack", *ans.Reply, want)
				if e.store.count() != 0 {
					t.Error("a refused-at-once request was stored")
				}
			} else {
				if ans.Reply != nil || ans.Outcome != "accepted" {
					t.Fatalf("Accept = %+v, want accepted (refused after the ack)", ans)
				}
				e.told(o, want)
				if r.State != sRefused || r.Failure != want.Text {
					t.Errorf("stored %s %q, want refused with the words told", r.State, r.Failure)
				}
			}
			if posts := e.chat.allPosts(); len(posts) != 0 {
				t.Errorf("posted %q; a refusal is private", texts(posts))
			}
			if n := len(e.cloud.launchSpecs()); n != 0 {
				t.Errorf("RunInstances called %d times", n)
			}
			if log := e.store.auditLog(); len(log) != 0 {
				t.Errorf("audit %v, want nothing", log)
			}
		})
	}
}

// TestRefusalByMention: a mention has no ack to answer in; the refusal is
// an ephemeral message in the thread, after the ack.
func TestRefusalByMention(t *testing.T) {
	e := newEnv(t)
	o := e.mentionOrigin(ana, channel, "1700000000.000777")
	ans := e.mention(o, "launch m5.large")
	if ans.Reply != nil || ans.Job == nil || ans.Outcome != "refused" {
		t.Fatalf("Accept = %+v, want a refusal job", ans)
	}
	got := e.chat.private(o)
	if len(got) != 1 || got[0].Channel != channel || got[0].Thread != o.ThreadTS {
		t.Fatalf("private answers %+v, want one ephemeral in the thread", got)
	}
	contains(t, "refusal", got[0].Msg, "`m5.large` is not an allowed instance type")
}

// TestDecisionRefusals: a click by someone who may not decide is answered
// privately and leaves the request pending.
func TestDecisionRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opt       envOption
		requester string
		clicker   string
		approve   bool
		setup     func(e *env)
		want      func(e *env, r *computebot.Request) policy.Refusal
	}{
		{
			name: "stranger approves", requester: ana, clicker: eve, approve: true,
			want: func(e *env, r *computebot.Request) policy.Refusal {
				return policy.Refusal{Code: policy.RefuseNotApprover, Action: policy.ActionApprove, Actor: eve, RequestID: r.ID, Approvers: e.cfg.Approvers}
			},
		},
		{
			name: "stranger denies", requester: ana, clicker: eve,
			want: func(e *env, r *computebot.Request) policy.Refusal {
				return policy.Refusal{Code: policy.RefuseNotApprover, Action: policy.ActionDeny, Actor: eve, RequestID: r.ID, Approvers: e.cfg.Approvers}
			},
		},
		{
			name: "self-approval", requester: bo, clicker: bo, approve: true,
			want: func(e *env, r *computebot.Request) policy.Refusal {
				return policy.Refusal{Code: policy.RefuseSelfApproval, Action: policy.ActionApprove, Actor: bo, RequestID: r.ID, Approvers: e.cfg.Approvers}
			},
		},
		{
			name: "quota at approval", requester: ana, clicker: carl, approve: true,
			setup: func(e *env) {
				// Since the request, ana launched two more elsewhere.
				e.cloud.add(managed("i-00000000000000a01", ana, "a", computebot.InstanceRunning, epoch, "R-A"))
				e.cloud.add(managed("i-00000000000000a02", ana, "b", computebot.InstancePending, epoch, "R-B"))
			},
			want: func(e *env, r *computebot.Request) policy.Refusal {
				return policy.Refusal{Code: policy.RefuseQuota, Action: policy.ActionApprove, Actor: carl, Owner: ana, Count: 2, Limit: 2}
			},
		},
		{
			name: "approver list cannot be checked", requester: ana, clicker: eve, approve: true,
			setup: func(e *env) { e.groups.err = errors.New("slack: usergroups.users.list failed") },
			want: func(e *env, r *computebot.Request) policy.Refusal {
				return policy.Refusal{Code: policy.RefuseApproversUnknown, Action: policy.ActionApprove, Actor: eve}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r, _ := e.request(tc.requester, "t2.micro")
			if tc.setup != nil {
				tc.setup(e)
			}
			o := e.decide(r, tc.clicker, tc.approve)
			e.told(o, reply.Refusal(tc.want(e, r)))
			if got := e.store.get(r.ID); got.State != sPending || got.DecidedBy != "" {
				t.Errorf("request %s decided by %q, want still pending", got.State, got.DecidedBy)
			}
			if n := len(e.chat.updates(r.MessageTS)); n != 0 {
				t.Errorf("request message updated %d times", n)
			}
			if n := len(e.cloud.launchSpecs()); n != 0 {
				t.Errorf("RunInstances called %d times", n)
			}
			if log := e.store.auditLog(); len(log) != 0 {
				t.Errorf("audit %v", log)
			}
		})
	}
}

// TestApproverThroughGroup and self-approval when the config allows it.
func TestApprovals(t *testing.T) {
	t.Run("approver through a user group", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.request(ana, "t2.micro")
		e.decide(r, carl, true)
		if r = e.waitState(r.ID, sDone); r.DecidedBy != carl {
			t.Errorf("decided by %s", r.DecidedBy)
		}
	})
	t.Run("self-approval allowed", func(t *testing.T) {
		e := newEnv(t, withConfig(func(c *config.Config) { c.AllowSelfApproval = true }))
		r, _ := e.request(bo, "t2.micro")
		note := e.chat.posts(channel, r.MessageTS)[0]
		sameMessage(t, "approvers note", note.Msg, reply.ApproversNote(r, e.cfg.Approvers, true))
		e.decide(r, bo, true)
		e.waitState(r.ID, sDone)
	})
}

// TestDeny: a denial is recorded, shown on the message and in the thread,
// and launches nothing.
func TestDeny(t *testing.T) {
	e := newEnv(t)
	r, _ := e.request(ana, "t2.micro")
	o := e.decide(r, bo, false)
	r = e.store.get(r.ID)
	if r.State != sDenied || r.DecidedBy != bo {
		t.Fatalf("state %s by %s, want denied by bo", r.State, r.DecidedBy)
	}
	ups := e.chat.updates(r.MessageTS)
	if len(ups) != 1 {
		t.Fatalf("updates %q", texts(ups))
	}
	sameMessage(t, "request message", ups[0].Msg, reply.RequestMessage(r))
	contains(t, "request message", ups[0].Msg, "Denied by @UBO")
	thread := e.chat.posts(channel, r.MessageTS)
	sameMessage(t, "decision", thread[len(thread)-1].Msg, reply.Decision(r))
	if n := len(e.cloud.launchSpecs()); n != 0 {
		t.Errorf("RunInstances called %d times", n)
	}
	if got := e.auditActions(); !slices.Equal(got, []string{"UBO deny ok"}) {
		t.Errorf("audit %q", got)
	}
	e.told(o)

	// Approving it afterwards changes nothing.
	late := e.decide(r, carl, true)
	e.told(late, reply.AlreadyDecided(r))
	contains(t, "already decided", reply.AlreadyDecided(r), "already denied by @UBO")
}

// TestClicks: the clicks that are not a first decision.
func TestClicks(t *testing.T) {
	t.Run("unknown request", func(t *testing.T) {
		e := newEnv(t)
		o := e.clickOrigin(bo, channel, "1700000000.000001")
		e.click(o, reply.ActionApprove, "R-NOSUCHID", "1700000000.000001")
		e.told(o, reply.UnknownRequest("R-NOSUCHID"))
	})
	t.Run("store fails on load", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.request(ana, "t2.micro")
		e.store.failNext(sRequest, errors.New("disk on fire"))
		o := e.decide(r, bo, true)
		e.told(o, reply.ClickFailed())
		if got := e.store.get(r.ID).State; got != sPending {
			t.Errorf("state %s", got)
		}
	})
	t.Run("store fails on save", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.request(ana, "t2.micro")
		e.store.failNext(sUpdate, errors.New("disk on fire"))
		o := e.decide(r, bo, true)
		e.told(o, reply.DecisionNotSaved())
		if got := e.store.get(r.ID).State; got != sPending {
			t.Errorf("state %s", got)
		}
	})
	t.Run("expired", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.request(ana, "t2.micro")
		e.clock.Advance(24*time.Hour + time.Second)
		o := e.decide(r, bo, true)
		e.told(o, reply.ClickedTooLate(r, true))
		r = e.store.get(r.ID)
		if r.State != sExpired {
			t.Fatalf("state %s, want expired", r.State)
		}
		thread := e.chat.posts(channel, r.MessageTS)
		sameMessage(t, "expiry", thread[len(thread)-1].Msg, reply.Expired(r))
		ups := e.chat.updates(r.MessageTS)
		contains(t, "request message", ups[len(ups)-1].Msg, "Expired: no approver decided in time")
		// A later click hears it expired.
		again := e.decide(r, bo, false)
		e.told(again, reply.AlreadyDecided(r))
	})
	t.Run("double click", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.request(ana, "t2.micro")
		first := e.decide(r, bo, true)
		e.clock.Advance(time.Second)
		second := e.decide(r, bo, true)
		r = e.waitState(r.ID, sDone)
		e.told(first)
		e.told(second, reply.AlreadyDecided(r))
		if n := len(e.cloud.launchSpecs()); n != 1 {
			t.Errorf("RunInstances calls %d, want 1", n)
		}
		if got := e.auditActions(); len(got) != 2 || got[0] != "UBO approve ok" {
			t.Errorf("audit %q, want one approval and one launch", got)
		}
	})
	t.Run("two approvers at once", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.request(ana, "t2.micro")
		var wg sync.WaitGroup
		origins := []flow.Origin{e.clickOrigin(bo, channel, r.MessageTS), e.clickOrigin(carl, channel, r.MessageTS)}
		for _, o := range origins {
			_, ans := e.accept(o, clickInput(reply.ActionApprove, r.ID, r.MessageTS))
			wg.Add(1)
			go func() { defer wg.Done(); e.f.Run(e.ctx, *ans.Job) }()
		}
		wg.Wait()
		r = e.waitState(r.ID, sDone)
		if n := len(e.cloud.launchSpecs()); n != 1 {
			t.Errorf("RunInstances calls %d, want 1", n)
		}
		approvals := 0
		for _, a := range e.store.auditLog() {
			if a.Action == "approve" {
				approvals++
			}
		}
		if approvals != 1 {
			t.Errorf("%d approvals audited, want 1", approvals)
		}
		loser := origins[0]
		if r.DecidedBy == bo {
			loser = origins[1]
		}
		e.told(loser, reply.AlreadyDecided(r))
	})
	t.Run("decided by someone else meanwhile", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.request(ana, "t2.micro")
		// While bo's approval is being authorized, carl's denial lands.
		e.cloud.setOnCall(func(method, _ string) {
			if method == cManagedInstances {
				e.cloud.onCall = nil
				if _, err := e.store.UpdateRequest(e.ctx, r.ID, func(cur *computebot.Request) error {
					cur.State, cur.DecidedBy = sDenied, carl
					return nil
				}); err != nil {
					panic(err)
				}
			}
		})
		o := e.decide(r, bo, true)
		r = e.store.get(r.ID)
		e.told(o, reply.AlreadyDecided(r))
		contains(t, "answer", reply.AlreadyDecided(r), "already denied by @UCARL")
		if n := len(e.cloud.launchSpecs()); n != 0 {
			t.Errorf("RunInstances called %d times", n)
		}
	})
	t.Run("expired while being authorized", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.request(ana, "t2.micro")
		e.clock.Advance(24 * time.Hour) // exactly at the end: still approvable
		e.cloud.setOnCall(func(method, _ string) {
			if method == cManagedInstances {
				e.cloud.onCall = nil
				e.clock.Advance(time.Second)
			}
		})
		o := e.decide(r, bo, true)
		e.told(o, reply.ClickedTooLate(r, true))
		if got := e.store.get(r.ID).State; got != sPending {
			t.Errorf("state %s: the sweeper expires it, the click only declines", got)
		}
	})
	t.Run("click before the message ts was saved", func(t *testing.T) {
		e := newEnv(t)
		// The process dies right after the message reached Slack; after
		// the restart a click on it arrives before the resumed admission.
		var ts string
		e.chat.setAfter(func(c chatCall) {
			if c.Method == mPost && strings.HasPrefix(c.Msg.Key, "request/") {
				ts = c.TS
				e.crash()
			}
		})
		e.slash(e.slashOrigin(ana), "/launch", "t2.micro")
		e.chat.setAfter(nil)
		e.restart()
		r := e.store.last()
		if r.State != sPending || r.MessageTS != "" {
			t.Fatalf("left %s with message %q", r.State, r.MessageTS)
		}
		e.click(e.clickOrigin(bo, channel, ts), reply.ActionApprove, r.ID, ts)
		e.resume()
		r = e.waitState(r.ID, sDone)
		if r.MessageTS != ts {
			t.Errorf("MessageTS %q, want the clicked message %q", r.MessageTS, ts)
		}
		if len(e.chat.posts(channel, ts)) < 4 {
			t.Errorf("thread of the clicked message: %q", texts(e.chat.posts(channel, ts)))
		}
	})
	t.Run("decided while the message was being posted", func(t *testing.T) {
		e := newEnv(t)
		e.chat.failWhen(func(c chatCall) error {
			if c.Method == mPost && c.Thread == "" {
				e.chat.fail = nil // runs under the chat's lock
				r := e.store.last()
				if _, err := e.store.UpdateRequest(e.ctx, r.ID, func(cur *computebot.Request) error {
					cur.State, cur.DecidedBy, cur.DecidedAt = sDenied, bo, epoch
					return nil
				}); err != nil {
					panic(err)
				}
			}
			return nil
		})
		r, _ := e.request(ana, "t2.micro")
		r = e.store.get(r.ID)
		if r.State != sDenied || r.MessageTS == "" {
			t.Fatalf("state %s message %q", r.State, r.MessageTS)
		}
		ups := e.chat.updates(r.MessageTS)
		if len(ups) != 1 {
			t.Fatalf("updates %q, want the message to show the decision", texts(ups))
		}
		sameMessage(t, "request message", ups[0].Msg, reply.RequestMessage(r))
		if thread := e.chat.posts(channel, r.MessageTS); len(thread) != 0 {
			t.Errorf("thread %q: no approvers note for a decided request", texts(thread))
		}
	})
}

// TestAcceptRequest: the request is created when the intent's job runs,
// from the intent, and once.
func TestAcceptRequest(t *testing.T) {
	t.Run("redelivery is the same request", func(t *testing.T) {
		e := newEnv(t)
		env, first := e.accept(e.slashOrigin(ana), slashInput("/launch", "t2.micro"))
		again := e.f.Accept(e.ctx, env)
		if first.Job == nil || first.Outcome != "accepted" || first.Command != "launch" {
			t.Fatalf("first Accept = %+v", first)
		}
		if again.Job != nil || again.Reply != nil || again.Outcome != "duplicate" || again.Command != "launch" {
			t.Errorf("redelivered Accept = %+v, want a duplicate with nothing to do", again)
		}
		e.f.Run(e.ctx, *first.Job)
		if again = e.f.Accept(e.ctx, env); again.Job != nil || again.Outcome != "duplicate" {
			t.Errorf("redelivered after the job: %+v", again)
		}
		if n := e.store.count(); n != 1 {
			t.Errorf("%d requests stored", n)
		}
		if n := len(e.chat.posts(channel, "")); n != 1 {
			t.Errorf("%d request messages", n)
		}
	})
	t.Run("the intent cannot be saved", func(t *testing.T) {
		e := newEnv(t)
		e.store.failNext(sAccept, errors.New("disk full"))
		ans := e.slash(e.slashOrigin(ana), "/launch", "t2.micro")
		if ans.Reply == nil || ans.Job != nil || ans.Outcome != "refused" || ans.Command != "launch" {
			t.Fatalf("Accept = %+v", ans)
		}
		sameMessage(t, "ack", *ans.Reply, reply.SaveFailed())
		if n := len(e.store.allIntents()); n != 0 {
			t.Errorf("%d intents stored", n)
		}
	})
	t.Run("the request cannot be saved: the next start creates it", func(t *testing.T) {
		e := newEnv(t)
		e.store.failNext(sCreate, errors.New("disk full"))
		env, ans := e.accept(e.slashOrigin(ana), slashInput("/launch", "t2.micro"))
		e.f.Run(e.ctx, *ans.Job)
		if n := e.store.count(); n != 0 {
			t.Fatalf("%d requests", n)
		}
		if got := e.store.unfinished(); !slices.Equal(got, []string{env.ID}) {
			t.Fatalf("unfinished intents %q, want the /launch", got)
		}
		e.restart()
		if n := e.resume(); n != 1 {
			t.Fatalf("Resume = %d jobs", n)
		}
		if r := e.store.last(); r == nil || r.State != sPending || r.MessageTS == "" {
			t.Fatalf("after the restart: %+v", r)
		}
	})
	t.Run("intent and request fields", func(t *testing.T) {
		e := newEnv(t)
		o := e.mentionOrigin(ana, channel, "1700000000.000111")
		o.ResponseURL = "https://hooks.test/x"
		env, ans := e.accept(o, mentionInput("launch t3.small"))
		in := e.store.intent(env.ID)
		want := computebot.Intent{
			ID: env.ID, TriggerID: o.Trigger, Actor: ana, Channel: channel, ThreadTS: o.ThreadTS, ResponseURL: o.ResponseURL,
			Source: computebot.SourceMention, Text: "launch t3.small", State: computebot.IntentAccepted, Version: 1,
			CreatedAt: epoch, UpdatedAt: epoch, Claim: "solo",
		}
		if in == nil || *in != want {
			t.Fatalf("stored intent\n got %+v\nwant %+v", in, want)
		}
		if e.store.count() != 0 {
			t.Fatal("a request before the job ran")
		}
		e.clock.Advance(time.Minute) // the job runs a minute after the ack
		e.f.Run(e.ctx, *ans.Job)
		r := e.store.last()
		if r.State != sPending || r.Requester != ana || r.ChannelID != channel || r.ResponseURL != o.ResponseURL || !r.CreatedAt.Equal(epoch) ||
			r.Launch.Lease != 8*time.Hour || r.Launch.ImageRef != testAMI || r.Launch.Name != "computebot-"+strings.ToLower(r.ID) {
			t.Errorf("stored %+v %+v", r, r.Launch)
		}
		if got := e.store.states(r.ID); got[0] != sNew {
			t.Errorf("states %v, want created new", got)
		}
		if want := epoch.Add(time.Minute + 24*time.Hour); !r.ApprovalExpiresAt.Equal(want) {
			t.Errorf("ApprovalExpiresAt %v, want %v (from the admission)", r.ApprovalExpiresAt, want)
		}
		if in := e.store.intent(env.ID); in.State != computebot.IntentDone || in.Step != "posting" {
			t.Errorf("intent after the job: %s %q, want done", in.State, in.Step)
		}
	})
}

// TestSweepExpired: the sweeper expires what nobody decided in time, and
// only that.
func TestSweepExpired(t *testing.T) {
	e := newEnv(t)
	old, _ := e.request(ana, "t2.micro")
	e.clock.Advance(2 * time.Hour)
	young, _ := e.request(ana, "t3.small")
	e.clock.Advance(22*time.Hour + time.Minute)

	e.store.failNext(sRequests, errors.New("disk on fire"))
	e.f.SweepExpired(e.ctx) // cannot list: nothing happens
	if got := e.store.get(old.ID).State; got != sPending {
		t.Fatalf("state %s after a failed sweep", got)
	}

	e.f.SweepExpired(e.ctx)
	e.f.SweepExpired(e.ctx) // a second sweep finds nothing more
	o := e.store.get(old.ID)
	if o.State != sExpired {
		t.Fatalf("old request %s, want expired", o.State)
	}
	if y := e.store.get(young.ID); y.State != sPending {
		t.Errorf("young request %s, want pending", y.State)
	}
	thread := e.chat.posts(channel, o.MessageTS)
	if len(thread) != 2 {
		t.Fatalf("thread %q, want the approvers note and one expiry", texts(thread))
	}
	sameMessage(t, "expiry", thread[1].Msg, reply.Expired(o))
	ups := e.chat.updates(o.MessageTS)
	if len(ups) != 1 {
		t.Fatalf("updates %q", texts(ups))
	}
	sameMessage(t, "request message", ups[0].Msg, reply.RequestMessage(o))
}

// TestStatus: "@computebot status" in a request's thread, and elsewhere.
func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ch      string
		thread  string // "=": the request's thread
		broken  bool   // the store cannot list
		private func() reply.Message
	}{
		{name: "in the request thread", ch: channel, thread: "="},
		{name: "at top level", ch: channel, private: reply.StatusNotHere},
		{name: "in another thread", ch: channel, thread: "1700000000.424242", private: reply.StatusNotARequest},
		{name: "same ts in another channel", ch: elsewhere, thread: "=", private: reply.StatusNotARequest},
		{name: "store fails", ch: channel, thread: "=", broken: true, private: reply.LookupBroke},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r, _ := e.request(ana, "t2.micro")
			thread := tc.thread
			if thread == "=" {
				thread = r.MessageTS
			}
			if tc.broken {
				e.store.failNext(sRequests, errors.New("disk on fire"))
			}
			o := e.mentionOrigin(eve, tc.ch, thread)
			e.mention(o, "status")
			posted := e.chat.posts(channel, r.MessageTS)[1:] // after the approvers note
			if tc.private == nil {
				if len(posted) != 1 {
					t.Fatalf("thread got %q", texts(posted))
				}
				sameMessage(t, "status", posted[0].Msg, reply.Status(r))
				contains(t, "status", posted[0].Msg, "waiting for an approver")
				e.told(o)
				return
			}
			if len(posted) != 0 {
				t.Errorf("posted %q", texts(posted))
			}
			e.told(o, tc.private())
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestRefreshRateLimited: a request message whose update the platform
// rate limits (after the adapter's own retries) is updated again later,
// with the state as it is then, so it does not keep showing an old one.
func TestRefreshRateLimited(t *testing.T) {
	e := newEnv(t)
	r, _ := e.request(ana, "t3.small")
	var limited atomic.Int32
	e.chat.failWhen(func(call chatCall) error {
		if call.Method == mUpdate && limited.Add(1) <= 2 {
			return fmt.Errorf("slack: chat.update: %w", flow.ErrRateLimited)
		}
		return nil
	})
	e.decide(r, bo, true)
	done := e.waitState(r.ID, computebot.RequestDone)
	waitFor(t, "the request message to be updated after the rate limit", func() bool {
		ups := e.chat.updates(done.MessageTS)
		return len(ups) > 0 && ups[len(ups)-1].Err == nil && strings.Contains(words(ups[len(ups)-1].Msg), "running")
	})
}
