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
		quick   *reply.Message // the quick answer (in the ack or told after it)
		job     bool           // work to run after the ack besides a quick answer
	}{
		{name: "help, slash", text: "/computebot help", outcome: "reply", quick: ptr(reply.Plain(commands.HelpText("")))},
		{name: "help of a command, slash", text: "/launch help", outcome: "reply", quick: ptr(reply.Plain(commands.HelpText("launch")))},
		{name: "help, mention", mention: true, text: "help lambda invoke", outcome: "reply", quick: ptr(reply.Plain(commands.HelpText("lambda invoke")))},
		{name: "a refusal, slash", text: "/launch m5.large", outcome: "refused",
			quick: ptr(reply.Plain("`m5.large` is not an allowed instance type. Allowed types: `t2.micro`, `t3.small`, `t3.medium`. Try `/launch t2.micro`."))},
		{name: "a refusal, mention", mention: true, text: "lambda invoke secret-thing", outcome: "refused", quick: ptr(reply.FunctionNotFound("secret-thing"))},
		{name: "a request", text: "/launch t2.micro", outcome: "accepted", job: true},
		{name: "a command", text: "/instances", outcome: "accepted", job: true},
		{name: "a command, mention", mention: true, text: "instances", outcome: "accepted", job: true},
		{name: "an invocation", text: "/lambda invoke report-daily", outcome: "accepted", job: true},
		{name: "an approval-gated invocation", text: "/lambda invoke deploy-prod", outcome: "accepted", job: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.addFunction(fn("report-daily"), fn("deploy-prod"))
			var o flow.Origin
			var res commands.Result
			if tc.mention {
				o = e.mentionOrigin(ana, channel, "1700000000.000900")
				res = commands.ParseText(tc.text)
			} else {
				o = e.slashOrigin(ana)
				name, args, _ := strings.Cut(tc.text, " ")
				res = commands.ParseSlash(name, args)
			}
			if res.Outcome != commands.Run {
				t.Fatalf("parse %q: %v %q", tc.text, res.Outcome, res.Reply)
			}
			ans := e.f.Accept(e.ctx, o, res.Command)
			if ans.Outcome != tc.outcome {
				t.Errorf("Outcome %q, want %q", ans.Outcome, tc.outcome)
			}
			switch {
			case tc.quick != nil && !tc.mention:
				if ans.Reply == nil || ans.Job != nil {
					t.Fatalf("Answer %+v, want the reply in the ack and nothing after", ans)
				}
				sameMessage(t, "ack", *ans.Reply, *tc.quick)
			case tc.quick != nil:
				if ans.Reply != nil || ans.Job == nil {
					t.Fatalf("Answer %+v, want a job that tells", ans)
				}
				e.f.Run(e.ctx, *ans.Job)
				e.told(o, *tc.quick)
			default:
				if ans.Reply != nil || (ans.Job != nil) != tc.job {
					t.Fatalf("Answer %+v, want a job %v and no reply", ans, tc.job)
				}
				e.f.Run(e.ctx, *ans.Job)
			}
		})
	}
}

// TestTell: a private answer goes through the response URL when there is
// one, else as an ephemeral message in the thread; a failure is survived.
func TestTell(t *testing.T) {
	e := newEnv(t)
	m := reply.Plain("hello")
	viaURL := e.slashOrigin(ana)
	e.f.Run(e.ctx, flow.Tell(viaURL, m))
	e.told(viaURL, m)
	eph := e.mentionOrigin(bo, channel, "1700000000.000001")
	e.f.Run(e.ctx, flow.Tell(eph, m))
	got := e.chat.private(eph)
	if len(got) != 1 || got[0].Channel != channel || got[0].Thread != eph.ThreadTS {
		t.Errorf("ephemeral %+v", got)
	}
	e.chat.failWith(mRespond, errors.New("expired_url"))
	e.f.Run(e.ctx, flow.Tell(viaURL, m)) // logged, nothing else
}

// someCommand is a command the workflows have never heard of (a newer
// parser, say).
type someCommand struct{}

func (someCommand) CommandName() string { return "reboot" }

func TestCannotRun(t *testing.T) {
	e := newEnv(t)
	o := e.slashOrigin(ana)
	ans := e.do(o, someCommand{})
	if ans.Outcome != "accepted" {
		t.Errorf("Outcome %q", ans.Outcome)
	}
	e.told(o, reply.CannotRun("reboot"))
}

// TestPanicRecovered: a bug in one job does not take the bot down.
func TestPanicRecovered(t *testing.T) {
	e := newEnv(t)
	e.cloud.panicOn(cManagedInstances)
	o := e.slashOrigin(ana)
	e.slash(o, "/instances", "") // must return
	e.cloud.calm()
	e.slash(o, "/instances", "")
	e.told(o, reply.InstanceList(nil, 0, false, epoch))
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
	// An expired request, posted and pending, and a new one never admitted.
	old, _ := e.request(ana, "t2.micro")
	e.clock.Advance(25 * time.Hour)
	e.f.Accept(e.ctx, e.slashOrigin(ana), parse(t, "/launch", "t3.small"))
	fresh := e.store.last()

	f := e.restart()
	f.Start(e.ctx)
	f.Start(e.ctx) // a second Start changes nothing
	e.waitState(fresh.ID, sPending)
	e.waitState(old.ID, sExpired)

	// Submitted jobs run on the workers.
	o := e.slashOrigin(ana)
	ans := f.Accept(e.ctx, o, parse(t, "/instances", ""))
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
	ans := f.Accept(e.ctx, e.slashOrigin(ana), parse(t, "/lambda", "invoke report-daily"))
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
