package flow_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/internal/testclock"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// The people and places of the tests.
const (
	ana       = "UANA"  // requester
	bo        = "UBO"   // approver
	carl      = "UCARL" // approver through the SPLATFORM user group
	eve       = "UEVE"  // neither
	channel   = "CDATA" // where requests are made
	elsewhere = "COTHER"
	testAMI   = "ami-0123456789abcdef0"
)

// epoch is the fake clock's start.
var epoch = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

var quiet = slog.New(slog.DiscardHandler)

// testConfig is config.Default() with what has no default, validated by
// the caller.
func testConfig() *config.Config {
	cfg := config.Default()
	cfg.Approvers = []string{bo, "SPLATFORM"}
	cfg.Launch.AllowedTypes = []string{"t2.micro", "t3.small", "t3.medium"}
	cfg.Launch.AutoApproveTypes = []string{"t3.medium"}
	cfg.Launch.AMI = testAMI
	cfg.Launch.KeyName = "data-science"
	cfg.Launch.SecurityGroupIDs = []string{"sg-0123456789abcdef0"}
	cfg.Launch.SubnetID = "subnet-0123456789abcdef0"
	cfg.Launch.MaxRunningPerUser = 2
	cfg.Launch.Prices = map[string]float64{"t3.small": 0.5}
	cfg.Lambda.AllowedFunctions = []string{"report-*", "deploy-*"}
	cfg.Lambda.RequireApproval = []string{"deploy-*"}
	return cfg
}

// env is one test's world: the fakes, the real policy over them, and a
// Flow. restart builds another Flow over the same store, cloud and chat,
// as a restarted process would be.
type env struct {
	t      *testing.T
	ctx    context.Context
	cfg    *config.Config
	clock  *testclock.Clock
	chat   *fakeChat
	cloud  *fakeCloud
	store  *fakeStore
	idle   *fakeIdle // nil: the idle scheduler is off
	groups *fakeGroups
	opts   flow.Options
	f      *flow.Flow
	n      int
	// down is the process's death, shared by every fake (see crash).
	down *atomic.Bool
	// cluster is the replicas' view; nil: one process (flow's default).
	cluster flow.Cluster
	// kv is the key/value store (SSH keys, home tabs); nil: none.
	kv flow.KV
}

type envOption func(*env)

func withConfig(fn func(*config.Config)) envOption { return func(e *env) { fn(e.cfg) } }

func withOptions(fn func(*flow.Options)) envOption { return func(e *env) { fn(&e.opts) } }

func withoutIdle() envOption { return func(e *env) { e.idle = nil } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	clock := testclock.New(epoch)
	down := new(atomic.Bool)
	e := &env{
		t: t, ctx: context.Background(), cfg: testConfig(), clock: clock,
		chat: newFakeChat(), cloud: newFakeCloud(clock.Now), store: newFakeStore(),
		idle:   &fakeIdle{down: down},
		groups: &fakeGroups{members: map[string][]string{"SPLATFORM": {carl}}},
		down:   down,
		opts: flow.Options{
			Workers: 2, PollInterval: time.Millisecond,
			LaunchWait:   10 * time.Minute, // on the fake clock
			RetryBackoff: time.Millisecond, SweepInterval: time.Millisecond,
			ShutdownTimeout: time.Second, NoticeInterval: time.Millisecond,
			NoticeRecordWait: 20 * time.Millisecond, RefreshRetry: time.Millisecond,
		},
	}
	e.chat.now, e.chat.down = clock.Now, down
	e.cloud.down = down
	e.store.now, e.store.down = clock.Now, down
	for _, o := range opts {
		o(e)
	}
	if err := e.cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	e.f = e.newFlow()
	return e
}

// newFlow builds a Flow over the env's fakes, stopped when the test ends.
func (e *env) newFlow() *flow.Flow {
	e.t.Helper()
	usage := flow.NewUsage(e.cloud, e.store)
	authz := policy.New(e.cfg, policy.Options{Groups: e.groups, Usage: usage, Now: e.clock.Now, Logger: quiet})
	d := flow.Deps{
		Config: e.cfg, Cloud: e.cloud, Store: e.store, Chat: e.chat, Authz: authz,
		Prices: flow.NewPrices(e.cloud, e.cfg.Launch.Prices, quiet),
		Audit:  flow.NewAuditor(e.store, quiet),
		Logger: quiet, Now: e.clock.Now,
	}
	if e.idle != nil {
		d.Idle = e.idle
	}
	if e.cluster != nil {
		d.Cluster = e.cluster
	}
	if e.kv != nil {
		d.KV = e.kv
	}
	f, err := flow.New(d, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(f.Stop)
	return f
}

// restart stops the current Flow (its background waits end) and builds a
// new one over the same store and cloud, as a restarted process: after a
// crash, the new process is alive again.
func (e *env) restart() *flow.Flow {
	e.t.Helper()
	e.f.Stop()
	e.down.Store(false)
	e.f = e.newFlow()
	return e.f
}

// die is the process dying at this very moment: from now on nothing it
// does reaches the store, the chat, the cloud or the scheduler (each call
// fails), until restart. Deferred work in the dying job (a deferred
// finish) cannot save anything either.
func (e *env) die() { e.down.Store(true) }

// crash dies and unwinds the job under way (Run recovers the panic). Only
// for hooks that run inside a job: a background wait has no recover.
func (e *env) crash() {
	e.die()
	panic(crashed{})
}

// resume runs, in order, every job a restarted process finds.
func (e *env) resume() int {
	e.t.Helper()
	jobs := e.f.Resume(e.ctx)
	for _, j := range jobs {
		e.f.Run(e.ctx, j)
	}
	return len(jobs)
}

// Origins, as the Slack adapter makes them.

// slashOrigin is a slash command typed in channel.
func (e *env) slashOrigin(user string) flow.Origin {
	e.n++
	return flow.Origin{User: user, Channel: channel, ResponseURL: fmt.Sprintf("https://hooks.test/%s/%d", user, e.n),
		Trigger: fmt.Sprintf("%s/trigger-%d", e.t.Name(), e.n), ReplyInAck: true}
}

// mentionOrigin is an @-mention in channel's thread (a top-level mention
// is answered in a thread under it: thread is its ts).
func (e *env) mentionOrigin(user, ch, thread string) flow.Origin {
	e.n++
	return flow.Origin{User: user, Channel: ch, ThreadTS: thread, Trigger: fmt.Sprintf("%s/event-%d", e.t.Name(), e.n)}
}

// clickOrigin is a click on a message in ch, in thread.
func (e *env) clickOrigin(user, ch, thread string) flow.Origin {
	e.n++
	return flow.Origin{User: user, Channel: ch, ThreadTS: thread, ResponseURL: fmt.Sprintf("https://hooks.test/click/%s/%d", user, e.n),
		Trigger: fmt.Sprintf("%s/click-%d", e.t.Name(), e.n)}
}

// Inputs, as the Slack adapter decodes them.

func slashInput(name, text string) flow.Input {
	return flow.Input{Source: computebot.SourceSlash, Command: name, Text: text}
}

func mentionInput(text string) flow.Input {
	return flow.Input{Source: computebot.SourceMention, Text: text}
}

func clickInput(actionID, value, messageTS string) flow.Input {
	return flow.Input{Source: computebot.SourceClick, ActionID: actionID, Value: value, MessageTS: messageTS}
}

// envelope is a new delivery (a fresh envelope ID) of what o typed or
// clicked; handing the same envelope over again is a redelivery.
func (e *env) envelope(o flow.Origin, in flow.Input) flow.Envelope {
	e.n++
	return flow.Envelope{ID: fmt.Sprintf("%s/envelope-%d", e.t.Name(), e.n), Origin: o, Input: in}
}

// deliver hands an envelope to the workflows as the Slack adapter does:
// Accept (before the ack), then Run the job it returns.
func (e *env) deliver(env flow.Envelope) flow.Answer {
	e.t.Helper()
	ans := e.f.Accept(e.ctx, env)
	if ans.Job != nil {
		e.f.Run(e.ctx, *ans.Job)
	}
	return ans
}

// slash delivers a typed slash command.
func (e *env) slash(o flow.Origin, name, text string) flow.Answer {
	e.t.Helper()
	return e.deliver(e.envelope(o, slashInput(name, text)))
}

// mention delivers the text of an @-mention.
func (e *env) mention(o flow.Origin, text string) flow.Answer {
	e.t.Helper()
	return e.deliver(e.envelope(o, mentionInput(text)))
}

// click delivers a button click on the message messageTS.
func (e *env) click(o flow.Origin, actionID, value, messageTS string) flow.Answer {
	e.t.Helper()
	return e.deliver(e.envelope(o, clickInput(actionID, value, messageTS)))
}

// accept only accepts (the ack), leaving the job to the test.
func (e *env) accept(o flow.Origin, in flow.Input) (flow.Envelope, flow.Answer) {
	e.t.Helper()
	env := e.envelope(o, in)
	return env, e.f.Accept(e.ctx, env)
}

// request makes user ask for an instance (/launch args) and returns the
// stored request after its admission.
func (e *env) request(user, args string) (*computebot.Request, flow.Origin) {
	e.t.Helper()
	o := e.slashOrigin(user)
	ans := e.slash(o, "/launch", args)
	if ans.Reply != nil {
		e.t.Fatalf("/launch %s: refused in the ack: %s", args, words(*ans.Reply))
	}
	r := e.store.last()
	if r == nil {
		e.t.Fatalf("/launch %s: no request stored", args)
	}
	return r, o
}

// decide clicks Approve (or Deny) on a request's message as user.
func (e *env) decide(r *computebot.Request, user string, approve bool) flow.Origin {
	e.t.Helper()
	action := reply.ActionDeny
	if approve {
		action = reply.ActionApprove
	}
	o := e.clickOrigin(user, r.ChannelID, r.MessageTS)
	e.click(o, action, r.ID, r.MessageTS)
	return o
}

// waitState waits until the request is in state want.
func (e *env) waitState(id string, want computebot.RequestState) *computebot.Request {
	e.t.Helper()
	var r *computebot.Request
	waitFor(e.t, fmt.Sprintf("request %s to be %s", id, want), func() bool {
		r = e.store.get(id)
		return r != nil && r.State == want
	})
	return r
}

// waitFor polls cond for up to two seconds (background waits poll every
// millisecond).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// told asserts that o was answered privately exactly with want (and
// nothing else).
func (e *env) told(o flow.Origin, want ...reply.Message) {
	e.t.Helper()
	got := e.chat.private(o)
	if len(got) != len(want) {
		e.t.Fatalf("private answers to %s: got %d %q, want %d %q", o.User, len(got), texts(got), len(want), msgTexts(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i].Msg, want[i]) {
			e.t.Errorf("private answer %d to %s:\n got %q\nwant %q", i, o.User, words(got[i].Msg), words(want[i]))
		}
	}
}

func msgTexts(ms []reply.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = words(m)
	}
	return out
}

// sameMessage asserts got is want.
func sameMessage(t *testing.T, what string, got, want reply.Message) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, words(got), words(want))
	}
}

// contains asserts the message's words contain every part.
func contains(t *testing.T, what string, m reply.Message, parts ...string) {
	t.Helper()
	w := words(m)
	for _, p := range parts {
		if !strings.Contains(w, p) {
			t.Errorf("%s: %q does not contain %q", what, w, p)
		}
	}
}

// managed is an instance computebot launched for owner, from request
// requestID whose thread is in channel.
func managed(id, owner, name, state string, launched time.Time, requestID string) computebot.Instance {
	in := computebot.Instance{
		ID: id, Type: "t2.micro", State: state, ImageID: testAMI, PrivateIP: "10.1.0.1", LaunchTime: launched,
		Tags: map[string]string{
			computebot.TagName: name, computebot.TagManaged: "true", computebot.TagOwner: owner,
			computebot.TagRequest: requestID, computebot.TagChannel: channel, computebot.TagThread: "1600000000.000001",
			computebot.TagExpiresAt: launched.Add(8 * time.Hour).UTC().Format(time.RFC3339),
		},
	}
	if state == computebot.InstanceRunning {
		in.PublicIP = "54.1.0.1"
	}
	return in
}

// withTags returns in with tags changed ("" deletes).
func withTags(in computebot.Instance, kv ...string) computebot.Instance {
	in.Tags = maps.Clone(in.Tags)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(in.Tags, kv[i])
		} else {
			in.Tags[kv[i]] = kv[i+1]
		}
	}
	return in
}

// auditActions lists the audit log as "actor action target result".
func (e *env) auditActions() []string {
	var out []string
	for _, a := range e.store.auditLog() {
		out = append(out, strings.Join(slices.DeleteFunc([]string{a.Actor, a.Action, a.Target, a.Result}, func(s string) bool { return s == "" }), " "))
	}
	return out
}

// isRequestMessage tells a request message's post from the others.
func isRequestMessage(c chatCall) bool {
	return c.Method == mPost && strings.HasPrefix(c.Msg.Key, reply.RequestKey(""))
}

// crashPosting makes the process die the moment it posts a request
// message, before the post reaches Slack.
func (e *env) crashPosting() {
	e.chat.failWhen(func(c chatCall) error {
		if isRequestMessage(c) {
			e.chat.fail = nil // called under the chat's lock
			e.crash()
		}
		return nil
	})
}

// crashPosted makes the process die right after a request message reached
// Slack, before its ts came back.
func (e *env) crashPosted() {
	e.chat.setAfter(func(c chatCall) {
		if isRequestMessage(c) && c.Err == nil {
			e.chat.setAfter(nil)
			e.crash()
		}
	})
}
