package flow_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// TestAnswer: what Accept answers before the ack. A slash command carries
// the quick reply in the ack; a mention gets it as a job after the ack.
func TestAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mention bool
		text    string // "/cmd args" for a slash command, else a mention's text
		outcome string
		command string         // Answer.Command
		quick   *reply.Message // the quick answer (in the ack or told after it)
		job     bool           // work to run after the ack besides a quick answer
	}{
		{name: "help, slash", text: "/computebot help", outcome: "reply", command: "help", quick: ptr(reply.Plain(commands.HelpText("")))},
		{name: "help of a command, slash", text: "/launch help", outcome: "reply", command: "help", quick: ptr(reply.Plain(commands.HelpText("launch")))},
		{name: "help, mention", mention: true, text: "help lambda invoke", outcome: "reply", command: "help", quick: ptr(reply.Plain(commands.HelpText("lambda invoke")))},
		{name: "usage, slash", text: "/stop", outcome: "reply", quick: ptr(reply.Plain(commands.ParseSlash("/stop", "").Reply))},
		{name: "usage, mention", mention: true, text: "stop", outcome: "reply", quick: ptr(reply.Plain(commands.ParseText("stop").Reply))},
		{name: "the form, mention", mention: true, text: "launch", outcome: "reply", quick: ptr(reply.LaunchUsageInMention())},
		{name: "a refusal, slash", text: "/launch m5.large", outcome: "refused", command: "launch",
			quick: ptr(reply.Plain("`m5.large` is not an allowed instance type. Allowed types: `t2.micro`, `t3.small`, `t3.medium`. Try `/launch t2.micro`."))},
		{name: "a refusal, mention", mention: true, text: "lambda invoke secret-thing", outcome: "refused", command: "lambda invoke", quick: ptr(reply.FunctionNotFound("secret-thing"))},
		{name: "a request", text: "/launch t2.micro", outcome: "accepted", command: "launch", job: true},
		{name: "a command", text: "/instances", outcome: "accepted", command: "instances", job: true},
		{name: "a command, mention", mention: true, text: "instances", outcome: "accepted", command: "instances", job: true},
		{name: "an invocation", text: "/lambda invoke report-daily", outcome: "accepted", command: "lambda invoke", job: true},
		{name: "an approval-gated invocation", text: "/lambda invoke deploy-prod", outcome: "accepted", command: "lambda invoke", job: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.addFunction(fn("report-daily"), fn("deploy-prod"))
			var o flow.Origin
			var in flow.Input
			if tc.mention {
				o = e.mentionOrigin(ana, channel, "1700000000.000900")
				in = mentionInput(tc.text)
			} else {
				o = e.slashOrigin(ana)
				name, args, _ := strings.Cut(tc.text, " ")
				in = slashInput(name, args)
			}
			env, ans := e.accept(o, in)
			if ans.Outcome != tc.outcome || ans.Command != tc.command {
				t.Errorf("Outcome %q, Command %q; want %q, %q", ans.Outcome, ans.Command, tc.outcome, tc.command)
			}
			stored := e.store.intent(env.ID)
			switch {
			case tc.quick != nil && !tc.mention:
				if ans.Reply == nil || ans.Job != nil {
					t.Fatalf("Answer %+v, want the reply in the ack and nothing after", ans)
				}
				sameMessage(t, "ack", *ans.Reply, *tc.quick)
				if stored.State != computebot.IntentDone || stored.Ack != tc.quick.Text || !stored.ReplyInAck {
					t.Errorf("stored %s with ack %q, want done with the answer", stored.State, stored.Ack)
				}
			case tc.quick != nil:
				if ans.Reply != nil || ans.Job == nil {
					t.Fatalf("Answer %+v, want a job that tells", ans)
				}
				if stored.State != computebot.IntentAccepted || stored.Ack != tc.quick.Text {
					t.Errorf("stored %s with ack %q, want accepted with the answer to tell", stored.State, stored.Ack)
				}
				e.f.Run(e.ctx, *ans.Job)
				e.told(o, *tc.quick)
			default:
				if ans.Reply != nil || (ans.Job != nil) != tc.job {
					t.Fatalf("Answer %+v, want a job %v and no reply", ans, tc.job)
				}
				if stored.State != computebot.IntentAccepted || stored.Ack != "" {
					t.Errorf("stored %s with ack %q, want accepted", stored.State, stored.Ack)
				}
				e.f.Run(e.ctx, *ans.Job)
			}
			if got := e.store.intent(env.ID).State; got != computebot.IntentDone {
				t.Errorf("intent %s after its job, want done", got)
			}
		})
	}
}

// TestIgnored: what the workflows do not act on (a click of a button
// they never made, an input that parses to nothing) is acked bare.
func TestIgnored(t *testing.T) {
	e := newEnv(t)
	for _, in := range []flow.Input{
		clickInput("instance_reboot", boxID, "1700000000.000001"),
		clickInput(reply.ActionApprove, "", "1700000000.000001"),
		mentionInput("> launch t2.micro"), // quoted: not a command
	} {
		env, ans := e.accept(e.clickOrigin(bo, channel, ""), in)
		if ans.Outcome != "ignored" || ans.Reply != nil || ans.Job != nil {
			t.Errorf("Accept(%+v) = %+v, want ignored", in, ans)
		}
		if got := e.store.intent(env.ID); got == nil || got.State != computebot.IntentDone {
			t.Errorf("intent %+v, want stored done (a redelivery is recognised)", got)
		}
	}
	if calls := e.chat.all(); len(calls) != 0 {
		t.Errorf("chat calls %+v", calls)
	}
}

// TestTell: a private answer goes through the response URL when there is
// one, else as an ephemeral message in the thread; a failure is survived.
func TestTell(t *testing.T) {
	e := newEnv(t)
	viaURL := e.slashOrigin(ana)
	e.slash(viaURL, "/instances", "")
	e.told(viaURL, reply.InstanceList(nil, 0, false, epoch))
	eph := e.mentionOrigin(bo, channel, "1700000000.000001")
	e.mention(eph, "help")
	got := e.chat.private(eph)
	if len(got) != 1 || got[0].Channel != channel || got[0].Thread != eph.ThreadTS {
		t.Errorf("ephemeral %+v", got)
	}
	sameMessage(t, "ephemeral", got[0].Msg, reply.Plain(commands.HelpText("")))
	// An expired response URL (a rerun after a restart can outlive its
	// 30 minutes) falls back to an ephemeral message in the channel.
	e.chat.failWith(mRespond, errors.New("expired_url"))
	env, ans := e.accept(viaURL, slashInput("/instances", ""))
	e.f.Run(e.ctx, *ans.Job)
	eph2 := e.chat.where(func(c chatCall) bool { return c.Method == mEphemeral && c.User == ana })
	if len(eph2) != 1 || eph2[0].Channel != viaURL.Channel {
		t.Fatalf("fallback ephemerals %+v", eph2)
	}
	sameMessage(t, "fallback", eph2[0].Msg, reply.InstanceList(nil, 0, false, epoch))
	// When neither reaches the person, the answer is logged, not retried.
	e.chat.failWhen(func(c chatCall) error {
		if c.Method == mRespond || c.Method == mEphemeral {
			return errors.New("channel_not_found")
		}
		return nil
	})
	env, ans = e.accept(viaURL, slashInput("/instances", ""))
	e.f.Run(e.ctx, *ans.Job)
	if in := e.store.intent(env.ID); in.State != computebot.IntentDone {
		t.Errorf("intent %s, want done: a lost answer is not retried", in.State)
	}
}

// TestPanicRecovered: a bug in one job does not take the bot down; its
// intent is done (a bug is not retried at every start).
func TestPanicRecovered(t *testing.T) {
	e := newEnv(t)
	e.cloud.panicOn(cManagedInstances)
	o := e.slashOrigin(ana)
	e.slash(o, "/instances", "") // must return
	if got := e.store.unfinished(); len(got) != 0 {
		t.Errorf("unfinished intents %q", got)
	}
	e.cloud.calm()
	e.slash(o, "/instances", "")
	// The panic was told (not left untold, nor run again at every start).
	e.told(o, reply.SomethingWentWrong(), reply.InstanceList(nil, 0, false, epoch))
}

// TestNew: the dependencies are checked; the options have defaults.
func TestNew(t *testing.T) {
	_, err := flow.New(flow.Deps{}, flow.Options{})
	if err == nil {
		t.Fatal("New with nothing succeeded")
	}
	for _, name := range []string{"Config", "Cloud", "Store", "Chat", "Authz", "Prices", "Audit"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	e := newEnv(t)
	f, err := flow.New(flow.Deps{Config: e.cfg, Cloud: e.cloud, Store: e.store, Chat: e.chat, Authz: policy.New(e.cfg, policy.Options{}),
		Prices: flow.NewPrices(e.cloud, nil, nil), Audit: flow.NewAuditor(e.store, nil)}, flow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Stop() // never started: returns at once
}

// TestStartStop: Start resumes what was left, runs the sweeper and the
// workers; Stop drains them.
func TestStartStop(t *testing.T) {
	e := newEnv(t)
	// An expired request, posted and pending, and a /launch accepted
	// whose job never ran.
	old, _ := e.request(ana, "t2.micro")
	e.clock.Advance(25 * time.Hour)
	e.accept(e.slashOrigin(ana), slashInput("/launch", "t3.small"))

	f := e.restart()
	f.Start(e.ctx)
	f.Start(e.ctx) // a second Start changes nothing
	waitFor(t, "the second request", func() bool { return e.store.count() == 2 })
	e.waitState(e.store.last().ID, sPending)
	e.waitState(old.ID, sExpired)

	// Submitted jobs run on the workers.
	o := e.slashOrigin(ana)
	env := e.envelope(o, slashInput("/instances", ""))
	ans := f.Accept(e.ctx, env)
	f.Submit(*ans.Job)
	waitFor(t, "the list", func() bool { return len(e.chat.private(o)) == 1 })

	f.Stop()
	f.Stop() // and a second Stop too
}

// TestStopTimeout: work still running after ShutdownTimeout is cancelled.
func TestStopTimeout(t *testing.T) {
	e := newEnv(t, withOptions(func(o *flow.Options) { o.ShutdownTimeout = 5 * time.Millisecond }))
	e.cloud.addFunction(fn("report-daily"))
	var cancelled atomic.Bool
	e.cloud.setInvoke(func(ctx context.Context, _ computebot.Invocation) (computebot.InvocationResult, error) {
		<-ctx.Done()
		cancelled.Store(true)
		return computebot.InvocationResult{}, ctx.Err()
	})
	f := e.restart()
	f.Start(e.ctx)
	ans := f.Accept(e.ctx, e.envelope(e.slashOrigin(ana), slashInput("/lambda", "invoke report-daily")))
	f.Submit(*ans.Job)
	waitFor(t, "the invocation", func() bool { return len(e.cloud.invoked()) == 1 })
	start := time.Now()
	f.Stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Stop took %v", d)
	}
	if !cancelled.Load() {
		t.Error("the invocation was not cancelled")
	}
}
