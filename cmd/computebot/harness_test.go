package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
	"github.com/computebot/computebot/internal/syncbuf"
)

// Users and channels of the end-to-end tests.
const (
	ana     = "UANA"     // data scientist, requester
	bo      = "UBO"      // approver
	carl    = "UCARL"    // approver through the SPLATFORM user group
	eve     = "UEVE"     // neither
	channel = "CDATASCI" // #data-science
)

const baseConfig = `
approvers: [UBO, SPLATFORM]
approval_ttl: 24h
launch:
  allowed_types: [t2.micro, t3.small, t3.medium]
  auto_approve_types: [t3.medium]
  ami: ami-0123456789abcdef0
  key_name: data-science
  max_running_per_user: 3
  default_ttl: 8h
store:
  path: %s
`

// bed is one end-to-end test bed: the real wiring (Main) with the real
// slack-go and AWS SDK clients, pointed at the fakes through SLACK_API_URL
// and AWS_ENDPOINT_URL exactly as an operator would point the binary.
type bed struct {
	t      testing.TB
	slack  *fakeslack.Server
	aws    *fakeaws.Server
	dir    string
	cfg    string
	main   *Main
	stderr *syncbuf.Buffer
	opts   flow.Options
	// awsOpts tunes the AWS client: each call is bounded by 5 s unless a
	// test says; reads back off briefly when throttled.
	awsOpts aws.Options
	seen    map[string]bool // requests a helper already returned
	tune    func(*Main)
}

type bedOption func(*bed)

// withConfig replaces the YAML (%s is the store path).
func withConfig(yaml string) bedOption { return func(b *bed) { b.cfg = yaml } }

// withAWSCallTimeout bounds each AWS call.
func withAWSCallTimeout(d time.Duration) bedOption { return func(b *bed) { b.awsOpts.CallTimeout = d } }

// withTimings tightens the workflows' timings.
func withTimings(f func(*flow.Options)) bedOption { return func(b *bed) { f(&b.opts) } }

func newBed(t testing.TB, opts ...bedOption) *bed {
	t.Helper()
	return newBedWith(t, nil, opts...)
}

// newBedWith is newBed with a hook to adjust each Main before it runs.
func newBedWith(t testing.TB, tune func(*Main), opts ...bedOption) *bed {
	t.Helper()
	b := &bed{t: t, tune: tune, slack: fakeslack.New(), aws: fakeaws.New(), dir: t.TempDir(), cfg: baseConfig, stderr: &syncbuf.Buffer{}, seen: map[string]bool{}}
	t.Cleanup(b.slack.Close)
	t.Cleanup(b.aws.Close)
	b.awsOpts = aws.Options{CallTimeout: 5 * time.Second, ReadBackoffMax: 20 * time.Millisecond, ReadRetryMode: aws.RetryModeStandard}
	b.opts.PollInterval = 50 * time.Millisecond
	b.opts.SweepInterval = 50 * time.Millisecond
	b.opts.ShutdownTimeout = 5 * time.Second
	b.opts.RetryBackoff = 10 * time.Millisecond
	for _, o := range opts {
		o(b)
	}
	for _, u := range []struct{ id, name string }{{ana, "ana"}, {bo, "bo"}, {carl, "carl"}, {eve, "eve"}} {
		b.slack.AddUser(u.id, u.name)
	}
	b.slack.AddUserGroup("SPLATFORM", carl)
	b.slack.AddChannel(channel, "data-science")

	// The SDK's default chain reads these; AWS_MAX_ATTEMPTS=1 keeps fault
	// tests from waiting out retries.
	t.Setenv("AWS_ENDPOINT_URL", b.aws.URL())
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRETTEST")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(b.dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(b.dir, "no-aws-credentials"))

	path := filepath.Join(b.dir, "config.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(b.cfg, filepath.Join(b.dir, "computebot.db"))), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *bed) env(key string) string {
	switch key {
	case "SLACK_BOT_TOKEN":
		return "xoxb-test-bot-token"
	case "SLACK_APP_TOKEN":
		return "xapp-test-app-token"
	case "SLACK_API_URL":
		return b.slack.APIURL()
	}
	return ""
}

// start runs a new Main on the same config and store, as a restarted
// process would.
func (b *bed) start() {
	b.t.Helper()
	m := NewMain()
	m.Getenv = b.env
	m.Stderr = b.stderr
	m.Timings = b.opts
	m.AWS = b.awsOpts
	m.Listen = "127.0.0.1:0" // /healthz, /readyz, /metrics on a free port (ListenAddr)
	if b.tune != nil {
		b.tune(m)
	}
	if err := m.ParseFlags([]string{"--config", filepath.Join(b.dir, "config.yaml"), "--log-level", "debug"}); err != nil {
		b.t.Fatal(err)
	}
	before := b.slack.Hellos() // read before Run: the bot may connect at once
	if err := m.Run(context.Background()); err != nil {
		b.t.Fatalf("Main.Run: %v", err)
	}
	b.main = m
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.slack.WaitConnections(ctx, before+1); err != nil {
		b.t.Fatalf("bot did not connect: %v\n%s", err, b.stderr)
	}
}

func (b *bed) stop() {
	if b.main == nil {
		return
	}
	if err := b.main.Close(); err != nil {
		b.t.Errorf("Main.Close: %v", err)
	}
	b.main = nil
}

func (b *bed) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

func (b *bed) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	b.t.Cleanup(cancel)
	return ctx
}

// slash sends a slash command and waits for its ack.
func (b *bed) slash(user, command, text string) fakeslack.Ack {
	b.t.Helper()
	env, err := b.slack.SendSlashCommand(fakeslack.SlashCommand{Command: command, Text: text, UserID: user, ChannelID: channel})
	if err != nil {
		b.t.Fatal(err)
	}
	ack, err := b.slack.WaitAck(b.ctx(), env)
	if err != nil {
		b.t.Fatalf("no ack for %s %s: %v", command, text, err)
	}
	return ack
}

// requestMessage waits for the bot's top-level request message that
// mentions requester and returns it.
func (b *bed) requestMessage(requester string) fakeslack.Message {
	b.t.Helper()
	m, err := b.slack.WaitMessage(b.ctx(), channel, func(m fakeslack.Message) bool {
		return m.ThreadTS == "" && !m.Ephemeral && m.Via == "chat.postMessage" && strings.Contains(m.Text, "<@"+requester+"> requests")
	})
	if err != nil {
		b.t.Fatalf("no request message for %s: %v\nmessages: %s\nlog:\n%s", requester, err, b.dump(), b.stderr)
	}
	return m
}

// click presses a button on a message as user and waits for the ack.
func (b *bed) click(user string, msg fakeslack.Message, button string) {
	b.t.Helper()
	env, err := b.slack.Click(user, channel, msg.TS, button)
	if err != nil {
		b.t.Fatalf("click %q: %v", button, err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), env); err != nil {
		b.t.Fatalf("no ack for click: %v", err)
	}
}

// waitThread waits for a thread reply under ts containing substr.
func (b *bed) waitThread(ts, substr string) fakeslack.Message {
	b.t.Helper()
	m, err := b.slack.WaitMessage(b.ctx(), channel, func(m fakeslack.Message) bool {
		return m.ThreadTS == ts && !m.Ephemeral && strings.Contains(visible(m), substr)
	})
	if err != nil {
		b.t.Fatalf("no thread reply containing %q: %v\nmessages: %s\nlog:\n%s", substr, err, b.dump(), b.stderr)
	}
	return m
}

// waitPrivate waits for a message only user can see containing substr.
func (b *bed) waitPrivate(user, substr string) fakeslack.Message {
	b.t.Helper()
	m, err := b.slack.WaitMessage(b.ctx(), channel, func(m fakeslack.Message) bool {
		return m.Ephemeral && m.EphemeralUser == user && strings.Contains(visible(m), substr)
	})
	if err != nil {
		b.t.Fatalf("no private message to %s containing %q: %v\nmessages: %s\nlog:\n%s", user, substr, err, b.dump(), b.stderr)
	}
	return m
}

// waitState polls the store through a fresh read until the request is in state.
func (b *bed) waitRequest(pred func(*computebot.Request) bool) *computebot.Request {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range b.requests() {
			if pred(r) {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("no request matched\nmessages: %s\nlog:\n%s", b.dump(), b.stderr)
	return nil
}

// requests reads the store the bot is using (bbolt allows one opener, so
// this goes through the bot's own handle).
func (b *bed) requests() []*computebot.Request {
	b.t.Helper()
	rs, err := b.main.store.Requests(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return rs
}

func (b *bed) audit() []computebot.AuditEntry {
	b.t.Helper()
	es, err := b.main.store.AuditLog(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return es
}

func (b *bed) dump() string { return dumpChannel(b.slack) }

// The beds' shared helpers on the fake Slack's channel.

// channelMessages are the channel's messages pred accepts, oldest first.
func channelMessages(s *fakeslack.Server, pred func(fakeslack.Message) bool) []fakeslack.Message {
	var out []fakeslack.Message
	for _, m := range s.Messages(channel) {
		if pred(m) {
			out = append(out, m)
		}
	}
	return out
}

// dumpChannel lists the channel's messages, for failure messages.
func dumpChannel(s *fakeslack.Server) string {
	var sb strings.Builder
	for _, m := range s.Messages(channel) {
		fmt.Fprintf(&sb, "\n  [%s thread=%s eph=%v/%s via=%s upd=%d] %s", m.TS, m.ThreadTS, m.Ephemeral, m.EphemeralUser, m.Via, m.Updated, m.Text)
	}
	return sb.String()
}

// pollFor checks cond every 20 ms for up to d.
func pollFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// ackText is the text of an ephemeral ack payload ("" for a bare ack).
func ackText(t *testing.T, a fakeslack.Ack) string {
	t.Helper()
	if len(a.Payload) == 0 || string(a.Payload) == "null" {
		return ""
	}
	var p struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		t.Fatalf("ack payload %s: %v", a.Payload, err)
	}
	if p.Text != "" && p.ResponseType != "ephemeral" {
		t.Fatalf("ack reply is not ephemeral: %s", a.Payload)
	}
	return p.Text
}

// visible is everything a person sees in a message: its text and the text
// of every block, decoded (the raw JSON escapes <@U…> mentions).
func visible(m fakeslack.Message) string {
	var parts []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["text"].(string); ok {
				parts = append(parts, s)
			}
			for k, c := range x {
				if k != "text" || !isString(c) {
					walk(c)
				}
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	var blocks any
	if len(m.Blocks) > 0 && json.Unmarshal(m.Blocks, &blocks) == nil {
		walk(blocks)
	}
	return m.Text + "\n" + strings.Join(parts, "\n")
}

func isString(v any) bool { _, ok := v.(string); return ok }

// waitMessage waits until the message at ts shows substr.
func (b *bed) waitMessage(ts, substr string) fakeslack.Message {
	b.t.Helper()
	m, err := b.slack.WaitMessage(b.ctx(), channel, func(m fakeslack.Message) bool {
		return m.TS == ts && strings.Contains(visible(m), substr)
	})
	if err != nil {
		msg, _ := b.slack.Message(channel, ts)
		b.t.Fatalf("message %s never showed %q; it shows: %s", ts, substr, visible(msg))
	}
	return m
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// mark is a point in the channel's history; waitPrivateAfter only looks at
// messages posted after it.
func (b *bed) mark() int { return len(b.slack.Messages(channel)) }

func (b *bed) waitPrivateAfter(mark int, user, substr string) fakeslack.Message {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		msgs := b.slack.Messages(channel)
		for i := len(msgs) - 1; i >= mark && i < len(msgs); i-- {
			m := msgs[i]
			if m.Ephemeral && m.EphemeralUser == user && strings.Contains(visible(m), substr) {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("no new private message to %s containing %q\nmessages: %s\nlog:\n%s", user, substr, b.dump(), b.stderr)
	return fakeslack.Message{}
}
