// Regression tests of bugs found in flow's non-test code (each comment
// says what went wrong before the fix).

package flow_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// TestBugRefusedOnRerunUntold: an intent accepted under one set of rules
// and run under another (a config reload in between, or a restart with a
// new config) whose triage now refuses it is finished without a word:
// runIntent drops the refusal triage returns ("if outcome != accepted {
// finish; return }"). The ack said nothing (it was accepted), so the person
// never hears. Fix: tell the quick answer triage returned before finishing.
func TestRegressionRefusedOnRerunUntold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		input  func() (string, string)
		change func(c *config.Config)
		want   func(e *env) reply.Message
	}{
		{
			name:   "an invocation, now outside the allowlist",
			input:  func() (string, string) { return "/lambda", "invoke report-daily" },
			change: func(c *config.Config) { c.Lambda.AllowedFunctions = []string{"deploy-*"} },
			want:   func(*env) reply.Message { return reply.FunctionNotFound("report-daily") },
		},
		{
			name:   "a launch, of a type no longer allowed",
			input:  func() (string, string) { return "/launch", "t3.small" },
			change: func(c *config.Config) { c.Launch.AllowedTypes = []string{"t2.micro"} },
			want: func(e *env) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseTypeNotAllowed, Action: policy.ActionLaunch, Actor: ana,
					InstanceType: "t3.small", Allowed: []string{"t2.micro"}})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.addFunction(fn("report-daily"))
			o := e.slashOrigin(ana)
			name, text := tc.input()
			_, ans := e.accept(o, slashInput(name, text))
			tc.change(e.cfg)
			e.f.Run(e.ctx, *ans.Job)
			e.told(o, tc.want(e)) // told nothing today
		})
	}
}

// TestBugAdmissionWriteFailureFinishes: acceptRequest finishes the /launch
// intent whatever admitAndPost did, also when admitAndPost gave up on a
// store error (admitAndPost returns nil for a refusal and for a failed
// write alike). The request is then left new (or pending and never posted)
// for good: no intent resumes it, Resume skips undecided requests, and the
// requester is never told. admitAndPost's own comment ("could not mark it:
// better not post (the next start retries)") says the intent should stay
// unfinished. Fix: have admitAndPost report whether the intent is over
// (posted, refused or withdrawn) and finish only then.
func TestRegressionAdmissionWriteFailureFinishes(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(e *env)
	}{
		{
			name: "the admission's write (new → pending) fails",
			fail: func(e *env) { e.store.failWrites(func(r *computebot.Request) bool { return r.State == sPending }) },
		},
		{
			name: "the posting step's write fails",
			fail: func(e *env) { e.store.failNext(sUpdateIntent, errors.New("disk full")) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.fail(e)
			env, _ := e.deliverNew(e.slashOrigin(ana), slashInput("/launch", "t2.micro"))
			e.store.failWrites(nil)
			if in := e.store.intent(env.ID); in.State != computebot.IntentAccepted {
				t.Errorf("intent %s after a failed admission, want unfinished (today: done)", in.State)
			}
			e.restart()
			e.resume()
			r := e.store.last()
			if r.State != sPending || r.MessageTS == "" {
				t.Errorf("after the restart: %s, message %q; want pending and posted (today: never)", r.State, r.MessageTS)
			}
		})
	}
}

// TestBugResumeLaunchesBeforePost: an auto-approved request whose message
// was never posted (the process died while posting it) is resumed twice:
// by its unfinished intent (which posts the message, then launches) and by
// Resume's approved-request job (which launches at once). Start runs both
// on its worker pool, and the request job, with less to do before it takes
// the request's lock, can win: it launches with no request message, so the
// instance is tagged with no thread (computebot:thread ""; later notices
// and lifecycle news go elsewhere) and the launch progress and the IP reply
// are posted at the channel's top level. Run in that order here. Fix: Resume
// (or launch) leaves an approved request without MessageTS to its intent.
func TestRegressionResumeLaunchesBeforePost(t *testing.T) {
	e := newEnv(t)
	e.crashPosting()
	e.slash(e.slashOrigin(ana), "/launch", "t3.medium") // auto-approved
	e.chat.failWhen(nil)
	r := e.store.last()
	f := e.restart()
	jobs := f.Resume(e.ctx)
	if len(jobs) != 1 {
		t.Fatalf("Resume = %d jobs, want the intent's only", len(jobs))
	}
	f.Run(e.ctx, jobs[0])
	r = e.waitState(r.ID, sDone)
	waitFor(t, "the ready message", func() bool { return e.readies() == 1 })
	if spec := e.cloud.launchSpecs()[0]; spec.Tags[computebot.TagThread] != r.MessageTS {
		t.Errorf("instance tagged with thread %q, want the request message %q", spec.Tags[computebot.TagThread], r.MessageTS)
	}
	if top := e.chat.posts(channel, ""); len(top) != 1 {
		t.Errorf("top-level posts %q, want the request message only", texts(top))
	}
}

// TestBugApprovalCrashUnaudited: decide finishes the click's intent right
// after the decision's compare-and-set, before the audit entry and the
// "Approved by" reply. A crash in between loses both for good: the click's
// intent is done (or, when the finish did not make it, its rerun sees its
// own decision, DecidedIn, and only refreshes the message), and the
// resumed launch audits the launch, not the approval. Fix: on the rerun
// that finds its own decision, record the audit entry and post the
// decision (or audit before finishing).
func TestRegressionApprovalCrashUnaudited(t *testing.T) {
	e := newEnv(t)
	r, _ := e.request(ana, "t2.micro")
	e.store.setAfterUpdate(func(cur *computebot.Request) {
		if cur.State == sApproved {
			e.crash()
		}
	})
	e.decide(r, bo, true)
	e.store.setAfterUpdate(nil)
	e.restart()
	e.resume()
	r = e.waitState(r.ID, sDone)
	approvals, decisions := 0, 0
	for _, a := range e.store.auditLog() {
		if a.Action == "approve" && a.Actor == bo {
			approvals++
		}
	}
	for _, p := range e.chat.posts(channel, r.MessageTS) {
		if strings.HasPrefix(p.Msg.Text, "Approved by") {
			decisions++
		}
	}
	if approvals != 1 || decisions != 1 {
		t.Errorf("%d approvals audited, %d decisions posted; want 1 each (today: 0)", approvals, decisions)
	}
}

// TestBugSaveFailedReplyInAckOnly: when a mention's intent cannot be
// saved, Accept answers SaveFailed in Answer.Reply, which the adapter puts
// in the ack of an Events API envelope, where Slack shows nothing (Answer's
// own doc: Reply only when Origin.ReplyInAck). The person who mentioned
// the bot never hears that it failed. Fix: none in Reply for such origins;
// tell them (an ephemeral) instead, or document that the answer is lost.
func TestRegressionSaveFailedReplyInAckOnly(t *testing.T) {
	e := newEnv(t)
	e.store.failNext(sAccept, errors.New("disk full"))
	o := e.mentionOrigin(ana, channel, "1700000000.000800")
	ans := e.mention(o, "instances")
	if ans.Reply != nil && len(e.chat.private(o)) == 0 {
		t.Errorf("Answer %+v: the failure is in the ack of a mention, which nobody sees", ans)
	}
}
