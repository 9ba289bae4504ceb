package flow_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// Intents: every envelope is stored before its ack; a redelivery gets the
// same answer and no second job; a restart runs what was left unfinished,
// and running an intent again does its effect once.

// TestRedelivery: Slack sends an envelope again (its ack was late): the
// same answer, no second job, one effect.
func TestRedelivery(t *testing.T) {
	for _, tc := range []struct {
		name string
		// deliver makes the first delivery (and runs its job).
		deliver func(e *env) (flow.Envelope, flow.Answer)
		outcome string // of the first delivery
		// check runs after the redelivery.
		check func(t *testing.T, e *env, env flow.Envelope)
	}{
		{
			name: "help, answered in the ack", outcome: "reply",
			deliver: func(e *env) (flow.Envelope, flow.Answer) {
				return e.deliverNew(e.slashOrigin(ana), slashInput("/computebot", "help"))
			},
		},
		{
			name: "usage, answered in the ack", outcome: "reply",
			deliver: func(e *env) (flow.Envelope, flow.Answer) {
				return e.deliverNew(e.slashOrigin(ana), slashInput("/stop", ""))
			},
		},
		{
			name: "a refusal, answered in the ack", outcome: "refused",
			deliver: func(e *env) (flow.Envelope, flow.Answer) {
				return e.deliverNew(e.slashOrigin(ana), slashInput("/lambda", "invoke secret-thing"))
			},
		},
		{
			name: "a mention's help, told after the ack", outcome: "reply",
			deliver: func(e *env) (flow.Envelope, flow.Answer) {
				return e.deliverNew(e.mentionOrigin(ana, channel, "1700000000.000400"), mentionInput("help"))
			},
			check: func(t *testing.T, e *env, env flow.Envelope) { e.told(env.Origin, reply.Plain(commands.HelpText(""))) },
		},
		{
			name: "a launch", outcome: "accepted",
			deliver: func(e *env) (flow.Envelope, flow.Answer) {
				return e.deliverNew(e.slashOrigin(ana), slashInput("/launch", "t2.micro"))
			},
			check: func(t *testing.T, e *env, _ flow.Envelope) {
				r := e.store.last()
				if n := e.store.count(); n != 1 {
					t.Errorf("%d requests, want 1", n)
				}
				if top := e.chat.posts(channel, ""); len(top) != 1 {
					t.Errorf("request messages %q, want one", texts(top))
				}
				if thread := e.chat.posts(channel, r.MessageTS); len(thread) != 1 {
					t.Errorf("thread %q, want the approvers note once", texts(thread))
				}
			},
		},
		{
			name: "a launch redelivered before its job ran", outcome: "accepted",
			deliver: func(e *env) (flow.Envelope, flow.Answer) {
				env, ans := e.accept(e.slashOrigin(ana), slashInput("/launch", "t2.micro"))
				if again := e.f.Accept(e.ctx, env); again.Job != nil || again.Outcome != "duplicate" {
					e.t.Errorf("redelivered before the job: %+v", again)
				}
				e.f.Run(e.ctx, *ans.Job)
				return env, ans
			},
			check: func(t *testing.T, e *env, _ flow.Envelope) {
				if n := len(e.chat.posts(channel, "")); n != 1 || e.store.count() != 1 {
					t.Errorf("%d request messages, %d requests; want one", n, e.store.count())
				}
			},
		},
		{
			name: "an approval", outcome: "accepted",
			deliver: func(e *env) (flow.Envelope, flow.Answer) {
				r, _ := e.request(ana, "t2.micro")
				return e.deliverNew(e.clickOrigin(bo, channel, r.MessageTS), clickInput(reply.ActionApprove, r.ID, r.MessageTS))
			},
			check: func(t *testing.T, e *env, env flow.Envelope) {
				r := e.waitState(e.store.last().ID, sDone)
				if got := e.auditActions(); !slices.Equal(got, []string{"UBO approve ok", "UBO launch " + r.Launch.InstanceID + " ok"}) {
					t.Errorf("audit %q, want one decision", got)
				}
				if n := len(e.cloud.launchSpecs()); n != 1 {
					t.Errorf("%d RunInstances calls", n)
				}
				decisions := 0
				for _, p := range e.chat.posts(channel, r.MessageTS) {
					if strings.HasPrefix(p.Msg.Text, "Approved by") {
						decisions++
					}
				}
				if decisions != 1 {
					t.Errorf("%d decisions posted, want 1", decisions)
				}
				e.told(env.Origin)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			env, first := tc.deliver(e)
			if first.Outcome != tc.outcome {
				t.Fatalf("first Accept = %+v, want %s", first, tc.outcome)
			}
			again := e.f.Accept(e.ctx, env)
			if again.Outcome != "duplicate" || again.Job != nil || again.Command != first.Command {
				t.Errorf("redelivered Accept = %+v, want a duplicate of %q with no job", again, first.Command)
			}
			switch {
			case first.Reply != nil:
				if again.Reply == nil {
					t.Fatal("the redelivery's ack carries no answer")
				}
				sameMessage(t, "the redelivery's ack", *again.Reply, *first.Reply)
			case again.Reply != nil:
				t.Errorf("the redelivery's ack says %q; the first said nothing", words(*again.Reply))
			}
			if tc.check != nil {
				tc.check(t, e, env)
			}
		})
	}
}

// deliverNew delivers a new envelope and returns it with its answer.
func (e *env) deliverNew(o flow.Origin, in flow.Input) (flow.Envelope, flow.Answer) {
	e.t.Helper()
	env := e.envelope(o, in)
	return env, e.deliver(env)
}

// TestAnonymousEnvelopes: a delivery without an envelope ID (and a command
// without a trigger) cannot be recognised again, so each is its own
// intent and its own request: never one shared.
func TestAnonymousEnvelopes(t *testing.T) {
	e := newEnv(t)
	var origins []flow.Origin
	for range 2 {
		o := e.slashOrigin(ana)
		o.Trigger = ""
		origins = append(origins, o)
		ans := e.deliver(flow.Envelope{Origin: o, Input: slashInput("/launch", "t2.micro")})
		if ans.Outcome != "accepted" {
			t.Fatalf("Accept = %+v", ans)
		}
	}
	m := e.mentionOrigin(ana, channel, "1700000000.000500")
	m.Trigger = ""
	for range 2 {
		e.deliver(flow.Envelope{Origin: m, Input: mentionInput("help")})
	}
	ins := e.store.allIntents()
	if len(ins) != 4 {
		t.Fatalf("%d intents, want 4", len(ins))
	}
	ids, triggers := map[string]bool{}, map[string]bool{}
	for _, in := range ins {
		if in.ID == "" || in.TriggerID == "" {
			t.Errorf("intent %+v without an ID or trigger", in)
		}
		ids[in.ID], triggers[in.TriggerID] = true, true
	}
	if len(ids) != 4 || len(triggers) != 4 {
		t.Errorf("intent IDs %v, triggers %v: want all distinct", ids, triggers)
	}
	reqs, _ := e.store.Requests(e.ctx)
	if len(reqs) != 2 || reqs[0].ID == reqs[1].ID {
		t.Fatalf("requests %+v, want two distinct", reqs)
	}
	if top := e.chat.posts(channel, ""); len(top) != 2 {
		t.Errorf("request messages %q, want two", texts(top))
	}
	for _, o := range origins {
		if got := e.chat.private(o); len(got) != 0 {
			t.Errorf("told %q", texts(got))
		}
	}
	if got := e.chat.private(m); len(got) != 2 {
		t.Errorf("the mention told %d times, want each delivery once", len(got))
	}
}

// TestCrashAdmission: a /launch (or an approval-gated /lambda invoke)
// whose process died while its request message was being posted: after
// the restart there is exactly one request message, with its approvers
// note.
func TestCrashAdmission(t *testing.T) {
	for _, tc := range []struct {
		name     string
		input    flow.Input
		crash    func(e *env)
		restart  func(e *env) // after the restart, before Resume
		messages int          // request messages in all
		adopted  bool         // the second run adopted the first post
		state    computebot.RequestState
	}{
		{name: "before the post", input: slashInput("/launch", "t2.micro"), crash: (*env).crashPosting, messages: 1, state: sPending},
		{name: "after the post, before its ts was saved", input: slashInput("/launch", "t2.micro"), crash: (*env).crashPosted,
			messages: 1, adopted: true, state: sPending},
		{name: "an auto-approved launch, after the post", input: slashInput("/launch", "t3.medium"), crash: (*env).crashPosted,
			messages: 1, adopted: true, state: sDone},
		{name: "an approval-gated invocation, after the post", input: slashInput("/lambda", "invoke deploy-prod"), crash: (*env).crashPosted,
			messages: 1, adopted: true, state: sPending},
		{
			// Looking for the first post failed: posting again is the
			// lesser harm than never telling anyone.
			name: "after the post, and the lookup fails", input: slashInput("/launch", "t2.micro"), crash: (*env).crashPosted,
			restart: func(e *env) { e.chat.failWith(mFind, errors.New("slack: ratelimited")) }, messages: 2, state: sPending,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.addFunction(fn("deploy-prod"))
			tc.crash(e)
			o := e.slashOrigin(ana)
			env := e.envelope(o, tc.input)
			e.deliver(env)
			if in := e.store.intent(env.ID); in.State != computebot.IntentAccepted || in.Step != "posting" {
				t.Fatalf("intent left %s at %q, want unfinished, posting", in.State, in.Step)
			}
			r := e.store.last()
			if r.MessageTS != "" {
				t.Fatalf("message ts %q saved before the crash", r.MessageTS)
			}
			e.chat.setAfter(nil)
			e.chat.failWhen(nil)
			e.restart()
			if tc.restart != nil {
				tc.restart(e)
			}
			e.resume()
			r = e.waitState(r.ID, tc.state)
			msgs := e.chat.keyed(reply.RequestKey(r.ID))
			if len(msgs) != tc.messages {
				t.Fatalf("request messages %q, want %d", texts(msgs), tc.messages)
			}
			if r.MessageTS != msgs[0].TS && !(tc.messages == 2 && r.MessageTS == msgs[1].TS) {
				t.Errorf("MessageTS %q, posts %q %q", r.MessageTS, msgs[0].TS, msgs[len(msgs)-1].TS)
			}
			if tc.adopted && r.MessageTS != msgs[0].TS {
				t.Errorf("MessageTS %q, want the first post %q adopted", r.MessageTS, msgs[0].TS)
			}
			if finds := e.chat.finds(); len(finds) == 0 || finds[0].Key != reply.RequestKey(r.ID) || finds[0].Channel != channel ||
				finds[0].Thread != "" || finds[0].Since.After(epoch) {
				t.Errorf("lookups %+v, want one for the request message since its intent", finds)
			}
			thread := e.chat.posts(channel, r.MessageTS)
			if r.State == sPending {
				if len(thread) != 1 {
					t.Fatalf("thread %q, want the approvers note once", texts(thread))
				}
				sameMessage(t, "approvers note", thread[0].Msg, reply.ApproversNote(r, e.cfg.Approvers, false))
			} else {
				waitFor(t, "the ready message", func() bool { return e.readies() == 1 })
				if n := len(e.cloud.launchSpecs()); n != 1 {
					t.Errorf("%d RunInstances calls", n)
				}
			}
			if in := e.store.intent(env.ID); in.State != computebot.IntentDone {
				t.Errorf("intent %s after the restart, want done", in.State)
			}
			if got := e.chat.private(o); len(got) != 0 {
				t.Errorf("told %q", texts(got))
			}
		})
	}
}

// TestCrashAfterRefusal: a /launch refused after its ack (here AWS does
// not know the type), whose process died right after recording the
// refusal: its rerun neither tells the requester again nor posts.
func TestCrashAfterRefusal(t *testing.T) {
	e := newEnv(t)
	e.cloud.failAlways(cInstanceType, awsErr("InvalidInstanceType", "no such type.", false))
	e.store.setAfterUpdate(func(cur *computebot.Request) {
		if cur.State == sRefused {
			e.crash()
		}
	})
	o := e.slashOrigin(ana)
	env, _ := e.deliverNew(o, slashInput("/launch", "t2.micro"))
	e.store.setAfterUpdate(nil)
	if got := e.store.unfinished(); !slices.Equal(got, []string{env.ID}) {
		t.Fatalf("unfinished %q", got)
	}
	e.restart()
	e.resume()
	e.told(o, reply.TypeLookupFailed("t2.micro", "no such type."))
	if posts := e.chat.allPosts(); len(posts) != 0 {
		t.Errorf("posted %q", texts(posts))
	}
	if in := e.store.intent(env.ID); in.State != computebot.IntentDone {
		t.Errorf("intent %s", in.State)
	}
}

// TestCrashAfterDecision: the process died right after an approval was
// recorded. After the restart the click's intent runs again: it finds its
// own decision (no "already decided" for the clicker), and the launch
// resumes from the request, once.
func TestCrashAfterDecision(t *testing.T) {
	e := newEnv(t)
	r, _ := e.request(ana, "t2.micro")
	e.store.setAfterUpdate(func(cur *computebot.Request) {
		if cur.State == sApproved {
			e.crash()
		}
	})
	o := e.clickOrigin(bo, channel, r.MessageTS)
	env := e.envelope(o, clickInput(reply.ActionApprove, r.ID, r.MessageTS))
	e.deliver(env)
	e.store.setAfterUpdate(nil)
	if got := e.store.get(r.ID); got.State != sApproved || got.DecidedBy != bo {
		t.Fatalf("left %s by %q", got.State, got.DecidedBy)
	}
	if got := e.store.unfinished(); !slices.Equal(got, []string{env.ID}) {
		t.Fatalf("unfinished %q, want the click", got)
	}
	e.restart()
	// The click's intent only: it tells its decision, then launches (so
	// the thread reads in order: "Approved by" before "Launching").
	if n := e.resume(); n != 1 {
		t.Errorf("Resume = %d jobs, want the click's", n)
	}
	r = e.waitState(r.ID, sDone)
	waitFor(t, "the ready message", func() bool { return e.readies() == 1 })
	e.told(o)
	specs := e.cloud.launchSpecs()
	if len(specs) != 1 || specs[0].ClientToken != r.ClientToken() {
		t.Errorf("RunInstances %+v, want one with %s", specs, r.ClientToken())
	}
	if n := e.cloud.instanceCount(); n != 1 {
		t.Errorf("%d instances", n)
	}
	if in := e.store.intent(env.ID); in.State != computebot.IntentDone {
		t.Errorf("click intent %s", in.State)
	}
	// A redelivery of the click now changes nothing either.
	if ans := e.f.Accept(e.ctx, env); ans.Outcome != "duplicate" || ans.Job != nil {
		t.Errorf("redelivered: %+v", ans)
	}
}

// TestCrashAfterReady: the IP reply was posted, and the process died
// before it recorded the request done: the resumed wait adopts the reply
// instead of posting a second one.
func TestCrashAfterReady(t *testing.T) {
	e := newEnv(t)
	r, _ := e.request(ana, "t2.micro")
	e.chat.setAfter(func(c chatCall) {
		if c.Method == mPost && c.Msg.Key == reply.ReadyKey(r.ID) {
			e.die() // in the background wait: no job to unwind
		}
	})
	e.decide(r, bo, true)
	waitFor(t, "the ready message", func() bool { return e.readies() == 1 })
	e.chat.setAfter(nil)
	e.restart() // waits for the old wait to end
	if got := e.store.get(r.ID).State; got != sLaunched {
		t.Fatalf("left %s, want launched", got)
	}
	if n := e.resume(); n != 0 {
		t.Errorf("Resume = %d jobs; a launched request is waited for in the background", n)
	}
	r = e.waitState(r.ID, sDone)
	if n := e.readies(); n != 1 {
		t.Errorf("%d IP replies, want 1", n)
	}
	finds := e.chat.finds()
	if len(finds) != 1 || finds[0].Key != reply.ReadyKey(r.ID) || finds[0].Thread != r.MessageTS {
		t.Errorf("lookups %+v, want the IP reply's in the request thread", finds)
	}
	waitFor(t, "the request message to show the instance", func() bool {
		ups := e.chat.updates(r.MessageTS)
		return len(ups) > 0 && strings.Contains(words(ups[len(ups)-1].Msg), "running")
	})
}

// TestCrashExtend: an /extend records the lease end it computed before it
// tags it; run again after a crash it tags the same end, never extends
// twice, even when the lease end it would compute now is another.
// crashAtStep makes the process die right after an intent's step is
// recorded, when at says so.
func crashAtStep(at func(step string) bool) func(e *env) {
	return func(e *env) {
		e.store.setAfterIntentUpdate(func(in *computebot.Intent) {
			if at(in.Step) {
				e.crash()
			}
		})
	}
}

// crashAtAudit makes the process die as action is audited: after its
// effect, before the intent is done.
func crashAtAudit(action string) func(e *env) {
	return func(e *env) {
		e.store.setOnAudit(func(a computebot.AuditEntry) {
			if a.Action == action {
				e.crash()
			}
		})
	}
}

// crashDuring delivers in from o with crash set, so that the process dies
// on the way, and checks that the intent was left unfinished at step; the
// restarted process has no crash hooks.
func (e *env) crashDuring(crash func(*env), o flow.Origin, in flow.Input, step string) flow.Envelope {
	e.t.Helper()
	crash(e)
	env := e.envelope(o, in)
	e.deliver(env)
	e.store.setAfterIntentUpdate(nil)
	e.store.setOnAudit(nil)
	if got := e.store.intent(env.ID); got.State != computebot.IntentAccepted || got.Step != step {
		e.t.Fatalf("intent left %s at %q, want unfinished at %q", got.State, got.Step, step)
	}
	return env
}

func TestCrashExtend(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash func(e *env)
		tags  int // Tag calls in all
	}{
		{
			name:  "after the step was recorded",
			crash: crashAtStep(func(step string) bool { return strings.HasPrefix(step, "extend-to:") }),
			tags:  1,
		},
		{
			name:  "after the tag, before the intent was done",
			crash: crashAtAudit("extend"),
			tags:  2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch.Add(-time.Hour), "R-BOX"))
			want := epoch.Add(11 * time.Hour) // expires-at (launch + 8 h) + 4 h
			o := e.slashOrigin(ana)
			env := e.crashDuring(tc.crash, o, slashInput("/extend", boxID+" 4"), "extend-to:"+want.Format(time.RFC3339))
			// Hours later (the lease end computed now would be now + 4 h).
			e.clock.Advance(9 * time.Hour)
			e.restart()
			e.resume()
			in, _ := e.cloud.get(boxID)
			if got := in.Tags[computebot.TagExpiresAt]; got != want.Format(time.RFC3339) {
				t.Errorf("expires-at %s, want %s: extended once", got, want.Format(time.RFC3339))
			}
			if n := e.cloud.callCount(cTag); n != tc.tags {
				t.Errorf("%d Tag calls, want %d", n, tc.tags)
			}
			thread := e.chat.posts(channel, requestThread)
			if len(thread) != 1 {
				t.Fatalf("thread %q, want one announcement", texts(thread))
			}
			sameMessage(t, "announcement", thread[0].Msg, reply.Extended(in, ana, want, 4))
			for _, a := range e.store.auditLog() {
				if a.Detail != "expires-at "+want.Format(time.RFC3339) {
					t.Errorf("audit %+v", a)
				}
			}
			if in := e.store.intent(env.ID); in.State != computebot.IntentDone {
				t.Errorf("intent %s", in.State)
			}
		})
	}
}

// TestCrashInvoke: a direct invocation is made once. Run again after a
// crash during the invocation, the intent tells the invoker that the
// result is unknown instead of invoking again.
func TestCrashInvoke(t *testing.T) {
	e := newEnv(t)
	e.cloud.addFunction(fn("report-daily"))
	e.cloud.setInvoke(func(context.Context, computebot.Invocation) (computebot.InvocationResult, error) {
		e.crash()
		return computebot.InvocationResult{}, nil
	})
	o := e.slashOrigin(ana)
	env := e.envelope(o, slashInput("/lambda", "invoke report-daily"))
	e.deliver(env)
	if in := e.store.intent(env.ID); in.State != computebot.IntentAccepted || in.Step != "invoking" {
		t.Fatalf("intent left %s at %q", in.State, in.Step)
	}
	e.cloud.setInvoke(nil)
	e.restart()
	e.resume()
	if n := len(e.cloud.invoked()); n != 1 {
		t.Errorf("%d invocations, want 1", n)
	}
	e.told(o, reply.InvokeFailed("report-daily", reply.InvokeInterrupted()))
	contains(t, "answer", reply.InvokeFailed("report-daily", reply.InvokeInterrupted()), "result is unknown")
	if top := e.chat.posts(channel, ""); len(top) != 1 {
		t.Errorf("top-level posts %q, want the one invocation", texts(top))
	}
	if in := e.store.intent(env.ID); in.State != computebot.IntentDone {
		t.Errorf("intent %s", in.State)
	}
}

// noticeTS is where the notice of the tests below was posted.
const noticeTS = "1700000000.000070"

// postedNotice is a notice as the scheduler stores it once posted in the
// request thread.
func postedNotice() idle.Notice {
	n := notice()
	n.Channel, n.TS = channel, noticeTS
	return n
}

// TestCrashNoticeButton: Keep running and Stop now, run again after a
// crash, do not ask the scheduler twice for what it already did.
func TestCrashNoticeButton(t *testing.T) {
	for _, tc := range []struct {
		name   string
		action string
		crash  func(e *env)
		calls  []string
		state  string
	}{
		{
			name: "keep: after the scheduler kept it", action: reply.ActionKeepRunning,
			crash: func(e *env) { e.idle.after = func(string) { e.crash() } },
			calls: []string{"keep " + boxID + " " + ana}, state: idle.StateKept,
		},
		{
			name: "stop now: after the scheduler began stopping it", action: reply.ActionStopNow,
			crash: func(e *env) { e.idle.after = func(string) { e.crash() } },
			calls: []string{"stop-now " + boxID + " " + ana}, state: idle.StateStopping,
		},
		{
			name: "keep: after the click was recorded, before the scheduler heard of it", action: reply.ActionKeepRunning,
			crash: crashAtStep(func(step string) bool { return step == "started" }),
			calls: []string{"keep " + boxID + " " + ana}, state: idle.StateKept,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch, "R"))
			e.idle.notice = postedNotice()
			tc.crash(e)
			o := e.clickOrigin(ana, channel, requestThread)
			env := e.envelope(o, clickInput(tc.action, boxID, noticeTS))
			e.deliver(env)
			e.idle.mu.Lock()
			e.idle.after = nil
			e.idle.mu.Unlock()
			e.store.setAfterIntentUpdate(nil)
			if got := e.store.unfinished(); !slices.Equal(got, []string{env.ID}) {
				t.Fatalf("unfinished %q, want the click", got)
			}
			e.restart()
			e.resume()
			if got := e.idle.recorded(); !slices.Equal(got, tc.calls) {
				t.Errorf("scheduler calls %q, want %q", got, tc.calls)
			}
			if n := e.idle.current(); n.State != tc.state || n.SettledBy != ana {
				t.Errorf("notice %s by %q", n.State, n.SettledBy)
			}
			e.told(o)
			if in := e.store.intent(env.ID); in.State != computebot.IntentDone {
				t.Errorf("intent %s", in.State)
			}
		})
	}
}

// TestCrashMentionAnswer: a mention's quick answer is the intent's job: a
// crash before it was told tells it after the restart.
func TestCrashMentionAnswer(t *testing.T) {
	e := newEnv(t)
	e.chat.failWhen(func(c chatCall) error {
		if c.Method == mEphemeral {
			e.chat.fail = nil
			e.crash()
		}
		return nil
	})
	o := e.mentionOrigin(ana, channel, "1700000000.000600")
	e.mention(o, "help")
	e.told(o)
	e.restart()
	if n := e.resume(); n != 1 {
		t.Fatalf("Resume = %d jobs", n)
	}
	e.told(o, reply.Plain(commands.HelpText("")))
}

// TestClickNotOnItsMessage: a button's value must belong to the message
// it was clicked on (the bot's buttons always do; a crafted or garbled
// click may not): otherwise it is refused privately and nothing changes.
func TestClickNotOnItsMessage(t *testing.T) {
	t.Run("decisions", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			click   func(a, b *computebot.Request) (ch, action, value, ts string)
			refused bool
		}{
			{name: "B's Approve on A's message", refused: true,
				click: func(a, b *computebot.Request) (string, string, string, string) {
					return channel, reply.ActionApprove, b.ID, a.MessageTS
				}},
			{name: "B's Deny on A's message", refused: true,
				click: func(a, b *computebot.Request) (string, string, string, string) {
					return channel, reply.ActionDeny, b.ID, a.MessageTS
				}},
			{name: "A's Approve in another channel", refused: true,
				click: func(a, _ *computebot.Request) (string, string, string, string) {
					return elsewhere, reply.ActionApprove, a.ID, a.MessageTS
				}},
			{name: "A's Approve on A's message",
				click: func(a, _ *computebot.Request) (string, string, string, string) {
					return channel, reply.ActionApprove, a.ID, a.MessageTS
				}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t)
				a, _ := e.request(ana, "t2.micro")
				b, _ := e.request(ana, "t3.small")
				ch, action, value, ts := tc.click(a, b)
				o := e.clickOrigin(bo, ch, ts)
				e.click(o, action, value, ts)
				if !tc.refused {
					e.told(o)
					e.waitState(a.ID, sDone)
					return
				}
				e.told(o, reply.ClickNotOnItsMessage())
				for _, r := range []*computebot.Request{a, b} {
					if got := e.store.get(r.ID); got.State != sPending || got.DecidedBy != "" || got.Version != r.Version {
						t.Errorf("request %s: %s by %q (version %d → %d), want unchanged", r.ID, got.State, got.DecidedBy, r.Version, got.Version)
					}
					if ups := e.chat.updates(r.MessageTS); len(ups) != 0 {
						t.Errorf("message of %s updated %q", r.ID, texts(ups))
					}
					if thread := e.chat.posts(channel, r.MessageTS); len(thread) != 1 {
						t.Errorf("thread of %s: %q", r.ID, texts(thread))
					}
				}
				if log := e.store.auditLog(); len(log) != 0 {
					t.Errorf("audit %+v", log)
				}
			})
		}
	})
	t.Run("notice buttons", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			ch, ts  string
			refused bool
		}{
			{name: "on another message", ch: channel, ts: "1700000000.000071", refused: true},
			{name: "on its ts in another channel", ch: elsewhere, ts: noticeTS, refused: true},
			{name: "on its own notice", ch: channel, ts: noticeTS},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t)
				e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch, "R"))
				e.idle.notice = postedNotice()
				o := e.clickOrigin(ana, tc.ch, "")
				e.click(o, reply.ActionStopNow, boxID, tc.ts)
				if !tc.refused {
					e.told(o)
					if got := e.idle.recorded(); len(got) != 1 {
						t.Errorf("scheduler calls %q", got)
					}
					return
				}
				e.told(o, reply.ClickNotOnItsMessage())
				if got := e.idle.recorded(); len(got) != 0 {
					t.Errorf("scheduler calls %q, want none", got)
				}
			})
		}
	})
	// A notice whose post was not recorded (still in flight, or its poster
	// died) is checked against the message Slack has under its key.
	t.Run("notice buttons, post not recorded", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			posted      bool // the notice is in the request thread, under its key
			recordLater bool // its ts is recorded a moment after the click
			other       bool // the click is on another message
			refused     bool
		}{
			{name: "on the notice found by its key", posted: true},
			{name: "on another message", posted: true, other: true, refused: true},
			{name: "no notice in Slack", refused: true},
			{name: "recorded while the click waits", recordLater: true},
			{name: "recorded while the click waits, another message", recordLater: true, other: true, refused: true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t)
				e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch, "R"))
				n := notice() // Channel and TS unset
				e.idle.notice = n
				ts := "1700000000.000099"
				if tc.posted {
					msg := reply.IdleNotice(n)
					var err error
					if ts, err = e.chat.Post(e.ctx, channel, requestThread, msg); err != nil {
						t.Fatal(err)
					}
				}
				if tc.recordLater {
					// The poster records the ts while the click job waits
					// (NoticeRecordWait, 20 ms here).
					go func(ts string) {
						time.Sleep(5 * time.Millisecond)
						e.idle.mu.Lock()
						e.idle.notice.Channel, e.idle.notice.TS = channel, ts
						e.idle.mu.Unlock()
					}(ts)
				}
				if tc.other {
					ts = "1700000000.000098"
				}
				o := e.clickOrigin(ana, channel, requestThread)
				e.click(o, reply.ActionKeepRunning, boxID, ts)
				if !tc.refused {
					e.told(o)
					if got := e.idle.recorded(); len(got) != 1 {
						t.Errorf("scheduler calls %q", got)
					}
					return
				}
				e.told(o, reply.ClickNotOnItsMessage())
				if got := e.idle.recorded(); len(got) != 0 {
					t.Errorf("scheduler calls %q, want none", got)
				}
			})
		}
	})
}

// TestThreadOrder: the work on one request is serialized, so its thread
// reads in the order of events whichever worker runs what: an approval
// clicked while the request's admission is still posting its message
// comes after the approvers note.
func TestThreadOrder(t *testing.T) {
	e := newEnv(t) // two workers
	f := e.restart()
	posted := make(chan chatCall, 1)
	release := make(chan struct{})
	e.chat.setAfter(func(c chatCall) {
		if isRequestMessage(c) {
			posted <- c
			<-release // Slack is slow to answer
		}
	})
	f.Start(e.ctx)
	f.Submit(*f.Accept(e.ctx, e.envelope(e.slashOrigin(ana), slashInput("/launch", "t2.micro"))).Job)
	var msg chatCall
	select {
	case msg = <-posted:
	case <-time.After(2 * time.Second):
		t.Fatal("the request message was never posted")
	}
	id := strings.TrimPrefix(msg.Msg.Key, reply.RequestKey(""))
	// The approver sees the message and clicks at once.
	click := e.envelope(e.clickOrigin(bo, channel, msg.TS), clickInput(reply.ActionApprove, id, msg.TS))
	picked := make(chan struct{})
	var once sync.Once
	e.store.setOnIntentRead(func(in string) {
		if in == click.ID {
			once.Do(func() { close(picked) })
		}
	})
	f.Submit(*f.Accept(e.ctx, click).Job)
	select {
	case <-picked: // the other worker runs the click
	case <-time.After(2 * time.Second):
		t.Fatal("the click's job never started")
	}
	time.Sleep(5 * time.Millisecond) // and is at the request by now
	close(release)
	r := e.waitState(id, sDone)
	waitFor(t, "the ready message", func() bool { return e.readies() == 1 })
	thread := texts(e.chat.posts(channel, r.MessageTS))
	note := slices.IndexFunc(thread, func(s string) bool { return strings.Contains(s, "needs approval") })
	decision := slices.IndexFunc(thread, func(s string) bool { return strings.HasPrefix(s, "Approved by") })
	if note < 0 || decision < 0 || note > decision {
		t.Errorf("thread %q: want the approvers note, then the decision", thread)
	}
}

// TestStopLeavesQueuedJobs: Stop starts none of the jobs still queued and
// takes about ShutdownTimeout whatever the backlog; their intents stay
// unfinished, and the next process runs them.
func TestStopLeavesQueuedJobs(t *testing.T) {
	const timeout = 50 * time.Millisecond
	e := newEnv(t, withOptions(func(o *flow.Options) { o.Workers = 1; o.ShutdownTimeout = timeout }))
	e.cloud.addFunction(fn("report-daily"))
	e.cloud.setInvoke(func(ctx context.Context, _ computebot.Invocation) (computebot.InvocationResult, error) {
		<-ctx.Done() // a slow AWS
		return computebot.InvocationResult{}, ctx.Err()
	})
	f := e.restart()
	f.Start(e.ctx)
	f.Submit(*f.Accept(e.ctx, e.envelope(e.slashOrigin(ana), slashInput("/lambda", "invoke report-daily"))).Job)
	waitFor(t, "the slow job", func() bool { return len(e.cloud.invoked()) == 1 })
	var queued []string
	var origins []flow.Origin
	for range 20 {
		o := e.slashOrigin(ana)
		env := e.envelope(o, slashInput("/instances", ""))
		f.Submit(*f.Accept(e.ctx, env).Job)
		queued, origins = append(queued, env.ID), append(origins, o)
	}
	var started atomic.Int32 // queued jobs that began (read their intent)
	e.store.setOnIntentRead(func(id string) {
		if slices.Contains(queued, id) {
			started.Add(1)
		}
	})
	start := time.Now()
	f.Stop()
	if d := time.Since(start); d < timeout || d > 10*timeout {
		t.Errorf("Stop took %v, want about %v", d, timeout)
	}
	e.store.setOnIntentRead(nil)
	if n := started.Load(); n != 0 {
		t.Errorf("%d queued jobs started during Stop", n)
	}
	for _, o := range origins {
		if got := e.chat.private(o); len(got) != 0 {
			t.Fatalf("a queued job ran during Stop: %q", texts(got))
		}
	}
	unfinished := e.store.unfinished()
	for _, id := range queued {
		if !slices.Contains(unfinished, id) {
			t.Errorf("queued intent %s is not unfinished", id)
		}
	}

	e.cloud.setInvoke(nil)
	f = e.restart()
	jobs := f.Resume(e.ctx)
	if len(jobs) < len(queued) {
		t.Fatalf("Resume = %d jobs, want the %d queued at least", len(jobs), len(queued))
	}
	for _, j := range jobs {
		f.Run(e.ctx, j)
	}
	for _, o := range origins {
		e.told(o, reply.InstanceList(nil, 0, false, epoch))
	}
	if n := len(e.cloud.invoked()); n != 1 {
		t.Errorf("%d invocations: the interrupted one is not made again", n)
	}
}

// TestResumeOrder: Resume runs the unfinished intents oldest first (then
// by ID), and still resumes the requests when the intents cannot be
// listed.
func TestResumeOrder(t *testing.T) {
	e := newEnv(t)
	var order []flow.Origin
	for _, id := range []string{"c", "b", "y", "x"} {
		o := e.slashOrigin(ana)
		e.f.Accept(e.ctx, flow.Envelope{ID: id, Origin: o, Input: slashInput("/instances", "")})
		order = append(order, o)
		if id != "y" {
			e.clock.Advance(time.Second) // y and x at the same moment
		}
	}
	order[2], order[3] = order[3], order[2]
	e.restart()
	if n := e.resume(); n != 4 {
		t.Fatalf("Resume = %d jobs", n)
	}
	var got, want []string
	for _, c := range e.chat.where(func(c chatCall) bool { return c.Method == mRespond }) {
		got = append(got, c.URL)
	}
	for _, o := range order {
		want = append(want, o.ResponseURL)
	}
	if !slices.Equal(got, want) {
		t.Errorf("answered %q, want %q", got, want)
	}

	e.store.put(&computebot.Request{ID: "R-APPROVED", Requester: ana, ChannelID: channel, MessageTS: "1700000000.000200",
		State: sApproved, DecidedBy: bo, DecidedAt: epoch, CreatedAt: epoch,
		Launch: &computebot.LaunchRequest{InstanceType: "t2.micro", ImageRef: testAMI, ImageID: testAMI, Name: "box", Lease: time.Hour}})
	e.accept(e.slashOrigin(ana), slashInput("/instances", ""))
	e.store.failNext(sUnfinished, errors.New("disk on fire"))
	if jobs := e.f.Resume(e.ctx); len(jobs) != 1 {
		t.Errorf("Resume = %d jobs, want the approved request's", len(jobs))
	}
}

// TestPruneIntents: done intents are forgotten a day after they were
// done; unfinished ones never are. A forgotten envelope delivered again
// is a new one.
func TestPruneIntents(t *testing.T) {
	e := newEnv(t)
	help, ans := e.deliverNew(e.slashOrigin(ana), slashInput("/computebot", "help"))
	pending, _ := e.accept(e.slashOrigin(ana), slashInput("/instances", ""))
	e.store.failAlways(sUnfinished, errors.New("disk on fire")) // it stays unfinished
	e.store.failNext(sPrune, errors.New("disk on fire"))        // one failed sweep is survived
	e.clock.Advance(25 * time.Hour)
	f := e.restart()
	f.Start(e.ctx)
	waitFor(t, "the done intent to be pruned", func() bool { return e.store.intent(help.ID) == nil })
	// Pruned once an hour, not at every sweep.
	prunes, sweeps := e.store.callCount(sPrune), e.store.callCount(sRequests)
	waitFor(t, "ten more sweeps", func() bool { return e.store.callCount(sRequests) >= sweeps+10 })
	if n := e.store.callCount(sPrune); n != prunes {
		t.Errorf("%d prunes in ten sweeps within the hour, want none", n-prunes)
	}
	e.clock.Advance(time.Hour)
	waitFor(t, "the hourly prune", func() bool { return e.store.callCount(sPrune) > prunes })
	f.Stop()
	if in := e.store.intent(pending.ID); in == nil || in.State != computebot.IntentAccepted {
		t.Errorf("unfinished intent %+v pruned", in)
	}
	again := e.f.Accept(e.ctx, help)
	if again.Outcome != "reply" || again.Reply == nil {
		t.Fatalf("Accept of a forgotten envelope = %+v, want it answered anew", again)
	}
	sameMessage(t, "answer", *again.Reply, *ans.Reply)
}

// TestIntentWriteFailures: when the intent's record cannot be read or
// written, nothing that must not happen twice is done; what is left
// resumes.
func TestIntentWriteFailures(t *testing.T) {
	t.Run("the intent cannot be read when its job runs", func(t *testing.T) {
		e := newEnv(t)
		o := e.slashOrigin(ana)
		e.store.failNext(sIntent, errors.New("disk on fire"))
		env, _ := e.deliverNew(o, slashInput("/instances", ""))
		e.told(o)
		if got := e.store.unfinished(); !slices.Equal(got, []string{env.ID}) {
			t.Fatalf("unfinished %q", got)
		}
		e.restart()
		e.resume()
		e.told(o, reply.InstanceList(nil, 0, false, epoch))
	})
	t.Run("the intent cannot be recorded done", func(t *testing.T) {
		e := newEnv(t)
		o := e.slashOrigin(ana)
		e.store.failNext(sUpdateIntent, errors.New("disk on fire"))
		env, _ := e.deliverNew(o, slashInput("/instances", ""))
		e.told(o, reply.InstanceList(nil, 0, false, epoch))
		if in := e.store.intent(env.ID); in.State != computebot.IntentAccepted {
			t.Errorf("intent %s: a list is answered again rather than lost", in.State)
		}
	})
	t.Run("a request's posting cannot be recorded", func(t *testing.T) {
		// Better not post than post twice (what becomes of the request
		// then is TestBugAdmissionWriteFailureFinishes, bugs_test.go).
		e := newEnv(t)
		e.store.failNext(sUpdateIntent, errors.New("disk on fire"))
		e.slash(e.slashOrigin(ana), "/launch", "t2.micro")
		if posts := e.chat.allPosts(); len(posts) != 0 {
			t.Errorf("posted %q", texts(posts))
		}
	})
	t.Run("an /extend's lease end cannot be recorded", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch.Add(-time.Hour), "R-BOX"))
		e.store.failNext(sUpdateIntent, errors.New("disk on fire"))
		o := e.slashOrigin(ana)
		e.slash(o, "/extend", boxID+" 4")
		e.told(o, reply.ActionFailed(policy.ActionExtend, boxID, "internal error (details are in the bot's log)"))
		if n := e.cloud.callCount(cTag); n != 0 {
			t.Errorf("%d Tag calls", n)
		}
	})
	t.Run("an invocation's post cannot be recorded", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.addFunction(fn("report-daily"))
		e.store.failNext(sUpdateIntent, errors.New("disk on fire"))
		o := e.slashOrigin(ana)
		e.slash(o, "/lambda", "invoke report-daily")
		if n := len(e.cloud.invoked()); n != 0 {
			t.Errorf("%d invocations", n)
		}
		if top := e.chat.posts(channel, ""); len(top) != 0 {
			t.Errorf("top-level posts %q", texts(top))
		}
		e.told(o, reply.InvokeFailed("report-daily", "internal error (details are in the bot's log)"))
	})
	t.Run("an invocation's start cannot be recorded", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.addFunction(fn("report-daily"))
		// The first write (the post is about to happen) succeeds.
		e.store.failNext(sUpdateIntent, nil, errors.New("disk on fire"))
		e.slash(e.slashOrigin(ana), "/lambda", "invoke report-daily")
		if n := len(e.cloud.invoked()); n != 0 {
			t.Errorf("%d invocations", n)
		}
		top := e.chat.posts(channel, "")
		if len(top) != 1 {
			t.Fatalf("top-level posts %q", texts(top))
		}
		thread := e.chat.posts(channel, top[0].TS)
		if len(thread) != 1 {
			t.Fatalf("thread %q", texts(thread))
		}
		sameMessage(t, "failure", thread[0].Msg, reply.InvokeFailed("report-daily", "internal error (details are in the bot's log)"))
	})
	t.Run("a notice click cannot be recorded", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch, "R"))
		e.idle.notice = postedNotice()
		e.store.failNext(sUpdateIntent, errors.New("disk on fire"))
		o := e.clickOrigin(ana, channel, requestThread)
		e.click(o, reply.ActionKeepRunning, boxID, noticeTS)
		e.told(o, reply.NoticeButtonFailed(errors.New("could not record the click")))
		if got := e.idle.recorded(); len(got) != 0 {
			t.Errorf("scheduler calls %q", got)
		}
	})
}

// TestPostSettledNotice: a settled notice whose first post never
// completed (no TS recorded) is looked for where PostNotice posts, and
// updated in place; posted only when it is nowhere (or the lookup fails).
func TestPostSettledNotice(t *testing.T) {
	threadFails := func(c chatCall) error {
		if c.Method == mPost && c.Channel == channel {
			return errors.New("thread gone")
		}
		return nil
	}
	for _, tc := range []struct {
		name        string
		first       func(c chatCall) error // while the first post is made
		n           func(n *idle.Notice)
		posted      bool                   // the first post is in Slack
		then        func(c chatCall) error // while the settled notice is posted
		wantChannel string
		updated     bool // else posted anew
	}{
		{name: "in the request thread", posted: true, wantChannel: channel, updated: true},
		{name: "in the owner's DM", first: threadFails, posted: true, wantChannel: "D" + ana, updated: true},
		{name: "in notify_channel", n: func(n *idle.Notice) { n.Owner = "" }, first: threadFails, posted: true,
			wantChannel: notifyChannel, updated: true},
		{name: "no request thread: in the owner's DM", n: func(n *idle.Notice) { n.RequestChannel, n.RequestThread = "", "" },
			posted: true, wantChannel: "D" + ana, updated: true},
		{name: "nowhere", wantChannel: channel},
		{name: "the lookup fails", posted: true, wantChannel: channel,
			then: func(c chatCall) error {
				if c.Method == mFind {
					return errors.New("slack: ratelimited")
				}
				return nil
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chat := newFakeChat()
			s := flow.NewNotices(chat, notifyChannel, time.Microsecond, quiet)
			n := notice()
			if tc.n != nil {
				tc.n(&n)
			}
			chat.failWhen(tc.first)
			var firstTS string
			if tc.posted {
				ch, ts, err := s.PostNotice(context.Background(), n)
				if err != nil || ch != tc.wantChannel {
					t.Fatalf("first post: %s %s %v", ch, ts, err)
				}
				firstTS = ts
			}
			chat.failWhen(tc.then)
			before := len(chat.allPosts())
			settled := n
			settled.State, settled.How, settled.SettledBy = idle.StateKept, idle.SettledKept, ana // TS never recorded
			ch, ts, err := s.PostNotice(context.Background(), settled)
			if err != nil {
				t.Fatal(err)
			}
			if ch != tc.wantChannel {
				t.Errorf("channel %s, want %s", ch, tc.wantChannel)
			}
			ups := chat.updates(ts)
			newPosts := chat.allPosts()[before:]
			if tc.updated {
				if ts != firstTS || len(ups) != 1 || len(newPosts) != 0 {
					t.Fatalf("ts %s (first %s), updates %d, new posts %q: want the first post updated", ts, firstTS, len(ups), texts(newPosts))
				}
				sameMessage(t, "updated notice", ups[0].Msg, reply.IdleNotice(settled))
				return
			}
			if len(newPosts) != 1 || newPosts[0].TS != ts || len(ups) != 0 {
				t.Fatalf("new posts %q, updates %d: want one post", texts(newPosts), len(ups))
			}
			sameMessage(t, "posted notice", newPosts[0].Msg, reply.IdleNotice(settled))
		})
	}
}

// TestCrashStopAfterAsked: the intent records that it may ask EC2 before
// it asks. A crash right after that record, before the ask, must not lose
// the /stop: the run after the restart asks and announces; after a crash
// after the ask, the rerun neither refuses "already stopping" nor asks
// again, and announces.
func TestCrashStopAfterAsked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash func(e *env)
		stops int // Stop calls in all
	}{
		{
			name:  "after the step, before the call",
			crash: crashAtStep(func(step string) bool { return step == "asked" }),
			stops: 1,
		},
		{
			// The rerun finds it no longer running and does not ask again
			// (asking could not tell whether the first stop hibernated).
			name:  "after the call, before the audit",
			crash: crashAtAudit("stop"),
			stops: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch.Add(-time.Hour), "R-BOX"))
			o := e.slashOrigin(ana)
			env := e.crashDuring(tc.crash, o, slashInput("/stop", boxID), "asked")
			e.restart()
			e.resume()
			waitFor(t, "the stop announced in the request thread", func() bool {
				return slices.ContainsFunc(e.chat.posts(channel, requestThread), func(c chatCall) bool { return strings.Contains(c.Msg.Text, "stopped by") })
			})
			if in, _ := e.cloud.get(boxID); in.State != computebot.InstanceStopped {
				t.Errorf("instance %s, want stopped", in.State)
			}
			if n := e.cloud.callCount(cStop); n != tc.stops {
				t.Errorf("%d Stop calls, want %d", n, tc.stops)
			}
			for _, m := range e.chat.private(o) {
				if strings.Contains(m.Msg.Text, "already") {
					t.Errorf("the rerun refused: %q", m.Msg.Text)
				}
			}
			waitFor(t, "the intent done", func() bool { return e.store.intent(env.ID).State == computebot.IntentDone })
		})
	}
}
