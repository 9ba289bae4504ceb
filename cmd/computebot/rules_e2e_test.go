package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
)

// assertNothingChanged checks that no cloud-changing call reached AWS.
func (b *bed) assertNothingChanged() {
	b.t.Helper()
	for _, op := range []string{"RunInstances", "CreateTags", "StopInstances", "StartInstances", "TerminateInstances", "CreateSecurityGroup"} {
		if n := b.aws.CallCount(op); n != 0 {
			b.t.Errorf("%s was called %d times; a refusal must change nothing", op, n)
		}
	}
	if n := len(b.aws.Instances()); n != 0 {
		b.t.Errorf("%d instances exist; a refusal must change nothing", n)
	}
}

// assertNoPublicMessage checks that nothing was posted in the channel for
// everyone to see (refusals are private).
func (b *bed) assertNoPublicMessage() {
	b.t.Helper()
	for _, m := range b.slack.Messages(channel) {
		if !m.Ephemeral {
			b.t.Errorf("public message posted: %s", visible(m))
		}
	}
}

func TestRefusalsInTheAck(t *testing.T) {
	b := newBed(t)
	cases := []struct{ text, want string }{
		{"t2.micro --hourz 4", "unknown flag --hourz"},
		{"t2.micro --hours", "--hours"},
		{"t2.micro --hours 0", "--hours"},
		{`t2.micro --reason "unterminated`, "unterminated quote"},
		{"--hours", "--hours needs a value"},
		{"p5.48xlarge", "`p5.48xlarge` is not an allowed instance type. Allowed types: `t2.micro`, `t3.small`, `t3.medium`."},
		{"t2.micro --hours 100", "longer than the maximum of 72 h"},
		{"not_a_type", "not_a_type"},
	}
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			got := ackText(t, b.slash(ana, "/launch", tc.text))
			if !strings.Contains(got, tc.want) {
				t.Errorf("/launch %s → %q, want it to contain %q", tc.text, got, tc.want)
			}
		})
	}
	if rs := b.requests(); len(rs) != 0 {
		t.Errorf("refused commands were stored as requests: %d", len(rs))
	}
	b.assertNothingChanged()
	b.assertNoPublicMessage()
}

func TestHelpComesFromTheParser(t *testing.T) {
	b := newBed(t)
	got := ackText(t, b.slash(ana, "/computebot", "help"))
	for _, want := range []string{"/launch", "--hours", "--reason"} {
		if !strings.Contains(got, want) {
			t.Errorf("help lacks %q:\n%s", want, got)
		}
	}
	if got := ackText(t, b.slash(ana, "/launch", "help")); !strings.Contains(got, "--hours") {
		t.Errorf("/launch help = %q", got)
	}
}

func TestQuotaRefusal(t *testing.T) {
	b := newBed(t)
	for i := range 3 {
		b.aws.AddInstance(fakeaws.Instance{ID: fmt.Sprintf("i-00000000000000a%02d", i), Type: "t2.micro", State: "running",
			Tags: map[string]string{"computebot:managed": "true", "computebot:owner": ana}})
	}
	b.slash(ana, "/launch", "t2.micro")
	got := b.waitPrivate(ana, "You already have 3 pending or running instances")
	if got.Via != "response_url" {
		t.Errorf("quota refusal came via %s, want response_url", got.Via)
	}
	b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestRefused })
	if n := b.aws.CallCount("RunInstances"); n != 0 {
		t.Errorf("RunInstances called %d times", n)
	}
	b.assertNoPublicMessage()
}

func TestQuotaRecheckedAtApproval(t *testing.T) {
	b := newBed(t)
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	// Meanwhile Ana got three instances some other way.
	for i := range 3 {
		b.aws.AddInstance(fakeaws.Instance{ID: fmt.Sprintf("i-00000000000000b%02d", i), Type: "t2.micro", State: "running",
			Tags: map[string]string{"computebot:managed": "true", "computebot:owner": ana}})
	}
	b.click(bo, msg, "Approve")
	b.waitPrivate(bo, "<@UANA> already has 3 pending or running instances")
	if n := b.aws.CallCount("RunInstances"); n != 0 {
		t.Errorf("RunInstances called %d times", n)
	}
	if got := b.slack.Buttons(channel, msg.TS); len(got) != 2 {
		t.Errorf("the request should stay approvable, buttons = %v", got)
	}
}

func TestClickRefusals(t *testing.T) {
	b := newBed(t, withConfig(strings.Replace(baseConfig, "approvers: [UBO, SPLATFORM]", "approvers: [UBO, UANA, SPLATFORM]", 1)))
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)

	b.click(eve, msg, "Approve")
	b.waitPrivate(eve, "Only approvers can approve requests")
	b.click(eve, msg, "Deny")
	b.waitPrivate(eve, "Only approvers can deny requests")
	b.click(ana, msg, "Approve") // an approver, but it is her own request
	b.waitPrivate(ana, "You can't approve your own request")

	if got := b.slack.Buttons(channel, msg.TS); strings.Join(got, ",") != "Approve,Deny" {
		t.Errorf("refused clicks changed the message: buttons = %v", got)
	}
	r := b.waitRequest(func(*computebot.Request) bool { return true })
	if r.State != computebot.RequestPending {
		t.Errorf("state = %s after refused clicks", r.State)
	}
	b.assertNothingChanged()
	for _, m := range b.slack.Thread(channel, msg.TS) {
		if !m.Ephemeral && !strings.Contains(m.Text, "needs approval") {
			t.Errorf("refusal leaked into the thread: %s", m.Text)
		}
	}
}

func TestSelfApprovalAllowedWhenConfigured(t *testing.T) {
	cfg := strings.Replace(baseConfig, "approvers: [UBO, SPLATFORM]", "approvers: [UBO, UANA]\nallow_self_approval: true", 1)
	b := newBed(t, withConfig(cfg))
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(ana, msg, "Approve")
	b.waitThread(msg.TS, "is running")
}

func TestDoubleClickLaunchesOnce(t *testing.T) {
	b := newBed(t)
	b.aws.SetLatency("RunInstances", 300*time.Millisecond) // widen the window
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	// Three clicks in flight at once: a double click and a second approver.
	var envs []string
	for _, u := range []string{bo, bo, carl} {
		env, err := b.slack.Click(u, channel, msg.TS, "Approve")
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	for _, env := range envs {
		if _, err := b.slack.WaitAck(b.ctx(), env); err != nil {
			t.Fatal(err)
		}
	}
	b.waitThread(msg.TS, "is running")
	b.waitPrivate(bo, "already approved by")
	if n := len(b.aws.Instances()); n != 1 {
		t.Fatalf("instances = %d, want 1", n)
	}
	approvals := 0
	for _, e := range b.audit() {
		if e.Action == "approve" {
			approvals++
		}
	}
	if approvals != 1 {
		t.Errorf("approvals audited = %d, want 1", approvals)
	}
}

func TestRedeliveredEnvelopesActOnce(t *testing.T) {
	b := newBed(t)
	cmd := fakeslack.SlashCommand{Command: "/launch", Text: "t2.micro", UserID: ana, ChannelID: channel,
		EnvelopeID: "env-launch-1", TriggerID: "trigger-launch-1"}
	if _, err := b.slack.SendSlashCommand(cmd); err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), "env-launch-1"); err != nil {
		t.Fatal(err)
	}
	// Slack's redelivery: the same envelope again with retry_attempt 1…
	payload, _ := json.Marshal(map[string]any{"command": "/launch", "text": "t2.micro", "user_id": ana, "channel_id": channel,
		"trigger_id": "trigger-launch-1", "response_url": b.slack.URL() + "/nowhere"})
	if err := b.slack.SendEnvelope(fakeslack.Envelope{EnvelopeID: "env-launch-1", Type: "slash_commands", Payload: payload,
		AcceptsResponsePayload: true, RetryAttempt: 1, RetryReason: "timeout"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), "env-launch-1"); err != nil {
		t.Fatal("the redelivered envelope must be acked too:", err)
	}
	// …and the same invocation under a new envelope ID.
	cmd.EnvelopeID = "env-launch-2"
	if _, err := b.slack.SendSlashCommand(cmd); err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), "env-launch-2"); err != nil {
		t.Fatal(err)
	}
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")

	if rs := b.requests(); len(rs) != 1 {
		t.Errorf("requests = %d, want 1", len(rs))
	}
	posted := 0
	for _, m := range b.slack.Messages(channel) {
		if m.ThreadTS == "" && strings.Contains(m.Text, "requests 1 ×") {
			posted++
		}
	}
	if posted != 1 {
		t.Errorf("request messages = %d, want 1", posted)
	}
	if n := len(b.aws.Instances()); n != 1 {
		t.Errorf("instances = %d, want 1", n)
	}
}

func TestRestartKeepsPendingApprovable(t *testing.T) {
	b := newBed(t)
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestPending && r.MessageTS != "" })
	b.restart()
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")
	if n := len(b.aws.Instances()); n != 1 {
		t.Errorf("instances = %d, want 1", n)
	}
}

func TestRestartResumesApprovedLaunch(t *testing.T) {
	b := newBed(t, withTimings(func(o *flow.Options) { o.ShutdownTimeout = 100 * time.Millisecond }))
	// EC2 creates the instance but the answer never reaches the bot before
	// it is stopped: the classic "did it launch?" case.
	b.aws.SetLatency("RunInstances", 2*time.Second)
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestExecuting })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.slack.WaitCall(ctx, "chat.postMessage", func(c fakeslack.Call) bool { return strings.Contains(c.Params["text"], "Launching") }); err != nil {
		t.Fatal(err)
	}
	b.stop()
	b.aws.SetLatency("RunInstances", 0)
	b.start()
	b.waitThread(msg.TS, "is running")
	if n := len(b.aws.Instances()); n != 1 {
		t.Fatalf("instances = %d after a restart mid-launch, want 1", n)
	}
	calls := b.aws.Calls("RunInstances")
	if len(calls) < 1 {
		t.Fatal("no RunInstances call")
	}
	tokens := map[string]bool{}
	for _, c := range calls {
		tokens[c.Params.Get("ClientToken")] = true
	}
	if len(tokens) != 1 {
		t.Errorf("RunInstances used %d different ClientTokens, want 1: %v", len(tokens), tokens)
	}
}

func TestRestartStillPostsTheIP(t *testing.T) {
	b := newBed(t)
	b.aws.SetRunningDelay(time.Hour) // stays pending until the test says so
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	r := b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestLaunched })
	b.waitThread(msg.TS, "is pending")
	b.restart()
	b.aws.SetInstanceState(r.Launch.InstanceID, "running")
	ready := b.waitThread(msg.TS, "is running")
	inst, _ := b.aws.Instance(r.Launch.InstanceID)
	if !strings.Contains(visible(ready), "ec2-user@"+inst.PublicIP) {
		t.Errorf("ready reply: %s", visible(ready))
	}
	if n := b.aws.CallCount("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d, want 1\n%s", n, b.stderr)
	}
}

func TestApprovalExpires(t *testing.T) {
	b := newBed(t, withConfig(strings.Replace(baseConfig, "approval_ttl: 24h", "approval_ttl: 1s", 1)))
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.waitMessage(msg.TS, "Expired")
	b.waitThread(msg.TS, "expired: no approver decided")
	if len(b.slack.Buttons(channel, msg.TS)) != 0 {
		t.Error("an expired request keeps its buttons")
	}
	// A click from a stale client view is refused privately.
	env, err := b.slack.SendBlockAction(fakeslack.BlockAction{UserID: bo, ChannelID: channel, MessageTS: msg.TS,
		ActionID: "approve", Value: b.requests()[0].ID, BlockID: "request:" + b.requests()[0].ID, Text: "Approve"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), env); err != nil {
		t.Fatal(err)
	}
	b.waitPrivate(bo, "has expired")
	b.assertNothingChanged()
}

func TestAcksDoNotWaitForSlowAWS(t *testing.T) {
	b := newBed(t)
	b.aws.SetLatency("", 2*time.Second)
	ack := b.slash(ana, "/launch", "t2.micro")
	calls := b.aws.Calls("")
	// Causality, not a stopwatch: the ack arrived before AWS had answered
	// anything (every AWS answer takes at least 2 s after its request).
	for _, c := range calls {
		if !ack.ReceivedAt.Before(c.Time.Add(2 * time.Second)) {
			t.Errorf("ack came after AWS answered %s", c.Action)
		}
	}
	msg := b.requestMessage(ana)
	env, err := b.slack.Click(bo, channel, msg.TS, "Approve")
	if err != nil {
		t.Fatal(err)
	}
	clickAck, err := b.slack.WaitAck(b.ctx(), env)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Time{}
	for _, c := range b.aws.Calls("") {
		if c.Time.After(clickAck.SentAt) && (first.IsZero() || c.Time.Before(first)) {
			first = c.Time
		}
	}
	if !first.IsZero() && !clickAck.ReceivedAt.Before(first.Add(2*time.Second)) {
		t.Error("the click ack waited for AWS")
	}
	b.waitThread(msg.TS, "Launching")
}

func TestReconnectsAfterDisconnect(t *testing.T) {
	b := newBed(t)
	before := b.slack.Hellos()
	if err := b.slack.SendDisconnect("refresh_requested"); err != nil {
		t.Fatal(err)
	}
	if err := b.slack.WaitConnections(b.ctx(), before+1); err != nil {
		t.Fatalf("no reconnection: %v", err)
	}
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")
}
