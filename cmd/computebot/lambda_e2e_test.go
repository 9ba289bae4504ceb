package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
)

var lambdaConfig = baseConfig + `lambda:
  allowed_functions: ["report-*", "etl-nightly", "slow", "chatty", "missing-*"]
  require_approval: ["etl-*"]
  timeout: 1s
`

func newLambdaBed(t *testing.T) *bed {
	b := newBed(t, withConfig(lambdaConfig))
	b.aws.AddFunction(fakeaws.Function{Name: "report-daily", Runtime: "python3.12", MemoryMB: 256,
		Handler: func(p []byte) ([]byte, string, string) {
			var in map[string]any
			_ = json.Unmarshal(p, &in)
			out, _ := json.Marshal(map[string]any{"rows": 42, "day": in["day"]})
			return out, "loading\nsummarising\ndone", ""
		}})
	b.aws.AddFunction(fakeaws.Function{Name: "report-broken", Runtime: "nodejs20.x",
		Handler: func([]byte) ([]byte, string, string) { return nil, "boom", "division by zero" }})
	b.aws.AddFunction(fakeaws.Function{Name: "etl-nightly", Runtime: "python3.12"})
	b.aws.AddFunction(fakeaws.Function{Name: "billing-secret", Runtime: "python3.12"})
	b.aws.AddFunction(fakeaws.Function{Name: "slow", Runtime: "python3.12", Delay: 3 * time.Second})
	b.aws.AddFunction(fakeaws.Function{Name: "chatty", Runtime: "python3.12",
		Handler: func([]byte) ([]byte, string, string) {
			rows := make([]string, 400)
			for i := range rows {
				rows[i] = fmt.Sprintf("row %03d of a long answer", i)
			}
			out, _ := json.Marshal(rows)
			return out, "ok", ""
		}})
	return b
}

func TestLambdaList(t *testing.T) {
	b := newLambdaBed(t)
	b.slash(ana, "/lambda", "list")
	text := visible(b.waitPrivate(ana, "Lambda functions"))
	for _, want := range []string{"report-daily", "python3.12", "256 MB", "etl-nightly", "chatty"} {
		if !strings.Contains(text, want) {
			t.Errorf("list lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "billing-secret") {
		t.Errorf("a function outside allowed_functions is listed:\n%s", text)
	}
}

func TestLambdaListPaging(t *testing.T) {
	b := newLambdaBed(t)
	for i := range 50 {
		b.aws.AddFunction(fakeaws.Function{Name: fmt.Sprintf("report-%02d", i)})
	}
	b.slash(ana, "/lambda", "list")
	m := b.waitPrivate(ana, "(1–40 of")
	env, err := b.slack.Click(ana, channel, m.TS, "Next page (41–55)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), env); err != nil {
		t.Fatal(err)
	}
	b.waitPrivate(ana, "(41–55 of 55)")
}

func TestLambdaInvokeSync(t *testing.T) {
	b := newLambdaBed(t)
	b.slash(ana, "/lambda", `invoke report-daily {"day": "2026-11-27"}`)
	opener := b.requestMessageMatching("<@UANA> invoked `report-daily`")
	res := visible(b.waitThread(opener.TS, "returned status 200"))
	for _, want := range []string{`"rows": 42`, `"day": "2026-11-27"`, "summarising", "done"} {
		if !strings.Contains(res, want) {
			t.Errorf("result lacks %q:\n%s", want, res)
		}
	}
	inv := b.aws.Invocations("report-daily")
	if len(inv) != 1 || inv[0].Type != "RequestResponse" || !strings.Contains(string(inv[0].Payload), "2026-11-27") {
		t.Errorf("invocations = %+v", inv)
	}
	last := b.audit()[len(b.audit())-1]
	if last.Action != "invoke" || last.Actor != ana || last.Target != "report-daily" || last.Result != "ok" {
		t.Errorf("audit = %+v", last)
	}
}

func TestLambdaFunctionError(t *testing.T) {
	b := newLambdaBed(t)
	b.slash(ana, "/lambda", "invoke report-broken")
	opener := b.requestMessageMatching("invoked `report-broken`")
	res := visible(b.waitThread(opener.TS, "FunctionError `Unhandled`"))
	if !strings.Contains(res, "division by zero") {
		t.Errorf("result lacks the error message:\n%s", res)
	}
}

func TestLambdaAsync(t *testing.T) {
	b := newLambdaBed(t)
	b.slash(ana, "/lambda", "invoke report-daily --async")
	opener := b.requestMessageMatching("invoked asynchronously `report-daily`")
	b.waitThread(opener.TS, "accepted the asynchronous invocation of `report-daily` (status 202, request ID `")
}

func TestLambdaTimeout(t *testing.T) {
	b := newLambdaBed(t)
	b.slash(ana, "/lambda", "invoke slow")
	opener := b.requestMessageMatching("invoked `slow`")
	b.waitThread(opener.TS, "did not finish within 1s (lambda.timeout)")
}

func TestLambdaLongOutputIsUploaded(t *testing.T) {
	b := newLambdaBed(t)
	b.slash(ana, "/lambda", "invoke chatty")
	opener := b.requestMessageMatching("invoked `chatty`")
	b.waitThread(opener.TS, "attached as a file")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && len(b.slack.Files()) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	files := b.slack.Files()
	if len(files) != 1 {
		t.Fatalf("files = %d, want 1", len(files))
	}
	f := files[0]
	if f.ThreadTS != opener.TS || !strings.Contains(string(f.Content), "row 399 of a long answer") || !strings.Contains(string(f.Content), "row 000") {
		t.Errorf("file %s in thread %s, %d bytes: the whole output must be there", f.Name, f.ThreadTS, len(f.Content))
	}
}

func TestLambdaRefusals(t *testing.T) {
	b := newLambdaBed(t)
	big := `{"blob": "` + strings.Repeat("x", 256<<10) + `"}`
	cases := []struct{ text, want string }{
		{`invoke report-daily {"day": }`, "invalid JSON payload at line 1, column"},
		{"invoke report-daily " + big, "256 KiB"},
		{"invoke billing-secret", "`billing-secret` does not exist"},
		{"invoke nothing-here", "`nothing-here` does not exist"},
	}
	for _, tc := range cases {
		name := tc.text
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			got := ackText(t, b.slash(ana, "/lambda", tc.text))
			if !strings.Contains(got, tc.want) {
				t.Errorf("ack = %.200q, want %q", got, tc.want)
			}
		})
	}
	// Allowed by pattern but absent in AWS: the same words, privately.
	b.slash(ana, "/lambda", "invoke missing-fn")
	b.waitPrivate(ana, "`missing-fn` does not exist")
	for _, name := range []string{"report-daily", "billing-secret", "missing-fn"} {
		if n := len(b.aws.Invocations(name)); n != 0 {
			t.Errorf("%s invoked %d times", name, n)
		}
	}
	b.assertNoPublicMessage()
}

func TestLambdaRequiringApproval(t *testing.T) {
	b := newLambdaBed(t)
	b.slash(ana, "/lambda", `invoke etl-nightly {"full": true}`)
	msg := b.requestMessageMatching("<@UANA> asks to invoke Lambda function `etl-nightly`")
	if got := b.slack.Buttons(channel, msg.TS); strings.Join(got, ",") != "Approve,Deny" {
		t.Fatalf("buttons = %v", got)
	}
	if n := len(b.aws.Invocations("etl-nightly")); n != 0 {
		t.Fatalf("invoked before approval")
	}
	b.click(ana, msg, "Approve")
	b.waitPrivate(ana, "Only approvers can approve requests")
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "returned status 200")
	b.waitMessage(msg.TS, "Approved by <@UBO> — invoked")
	if inv := b.aws.Invocations("etl-nightly"); len(inv) != 1 || !strings.Contains(string(inv[0].Payload), `"full": true`) {
		t.Errorf("invocations = %+v", inv)
	}
	r := b.waitRequest(func(r *computebot.Request) bool { return r.Kind() == computebot.KindLambda })
	if r.State != computebot.RequestDone {
		t.Errorf("state = %s", r.State)
	}
}

func TestLambdaApprovalDenied(t *testing.T) {
	b := newLambdaBed(t)
	b.slash(ana, "/lambda", "invoke etl-nightly")
	msg := b.requestMessageMatching("asks to invoke Lambda function `etl-nightly`")
	b.click(bo, msg, "Deny")
	b.waitThread(msg.TS, "Denied by <@UBO>")
	if n := len(b.aws.Invocations("etl-nightly")); n != 0 {
		t.Errorf("invoked %d times after a deny", n)
	}
}

func TestMentions(t *testing.T) {
	b := newBed(t, withConfig(lifecycleConfig))
	env, err := b.slack.SendMention(fakeslack.Mention{UserID: ana, ChannelID: channel, Text: "<@" + fakeslack.BotUserID + "> launch t2.micro --hours 2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), env); err != nil {
		t.Fatal(err)
	}
	msg := b.requestMessage(ana)
	b.waitRequest(func(r *computebot.Request) bool { return r.MessageTS == msg.TS })

	// "status" in the request's thread answers about that request.
	if _, err := b.slack.SendMention(fakeslack.Mention{UserID: ana, ChannelID: channel, ThreadTS: msg.TS,
		Text: "<@" + fakeslack.BotUserID + "> status"}); err != nil {
		t.Fatal(err)
	}
	b.waitThread(msg.TS, "waiting for an approver")

	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")

	// Any command works as a mention; answers that are only for the
	// asker stay private.
	if _, err := b.slack.SendMention(fakeslack.Mention{UserID: ana, ChannelID: channel, Text: "<@" + fakeslack.BotUserID + "> instances"}); err != nil {
		t.Fatal(err)
	}
	b.waitPrivate(ana, "Your instances")
	if _, err := b.slack.SendMention(fakeslack.Mention{UserID: eve, ChannelID: channel, Text: "<@" + fakeslack.BotUserID + "> launch p5.48xlarge"}); err != nil {
		t.Fatal(err)
	}
	b.waitPrivate(eve, "is not an allowed instance type")
	if _, err := b.slack.SendMention(fakeslack.Mention{UserID: eve, ChannelID: channel, Text: "<@" + fakeslack.BotUserID + "> luanch t2.micro"}); err != nil {
		t.Fatal(err)
	}
	b.waitPrivate(eve, "launch")
}

func TestHelpCoversEveryCommand(t *testing.T) {
	b := newBed(t)
	help := ackText(t, b.slash(ana, "/computebot", "help"))
	for _, c := range []string{"/launch", "/instances", "/stop", "/start", "/terminate", "/extend", "/lambda"} {
		if !strings.Contains(help, c) {
			t.Errorf("help lacks %s", c)
		}
	}
	if got := ackText(t, b.slash(ana, "/stop", "help")); !strings.Contains(got, "owner") {
		t.Errorf("/stop help should say who can use it: %q", got)
	}
}

// requestMessageMatching waits for a top-level bot message containing substr.
func (b *bed) requestMessageMatching(substr string) fakeslack.Message {
	b.t.Helper()
	m, err := b.slack.WaitMessage(b.ctx(), channel, func(m fakeslack.Message) bool {
		return m.ThreadTS == "" && !m.Ephemeral && m.Via == "chat.postMessage" && strings.Contains(visible(m), substr)
	})
	if err != nil {
		b.t.Fatalf("no message containing %q: %v\nmessages: %s\nlog:\n%s", substr, err, b.dump(), b.stderr)
	}
	return m
}

// TestMentionRetryAnsweredOnce: Slack retries an event (same event_id, same
// message) in a new envelope when the first was not acked in time; the
// retry is recognised by its event_id and answered once.
func TestMentionRetryAnsweredOnce(t *testing.T) {
	b := newBed(t)
	first, err := b.slack.SendMention(fakeslack.Mention{UserID: eve, ChannelID: channel, Text: "<@" + fakeslack.BotUserID + "> instances", EventID: "EvRETRIED"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), first); err != nil {
		t.Fatal(err)
	}
	asked := b.slack.Messages(channel)[0] // the mention itself
	retry, err := b.slack.SendMention(fakeslack.Mention{UserID: eve, ChannelID: channel, Text: asked.Text, TS: asked.TS, EventID: "EvRETRIED"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), retry); err != nil {
		t.Fatal(err)
	}
	// A later command's answer marks the point by which a second answer
	// would have been sent: both were accepted before it.
	if _, err := b.slack.SendMention(fakeslack.Mention{UserID: eve, ChannelID: channel, Text: "<@" + fakeslack.BotUserID + "> help"}); err != nil {
		t.Fatal(err)
	}
	b.waitPrivate(eve, "launches EC2 instances and invokes Lambda functions")
	b.waitPrivate(eve, "You have no instances")
	n := 0
	for _, m := range b.slack.Messages(channel) {
		if m.Ephemeral && m.EphemeralUser == eve && strings.Contains(visible(m), "You have no instances") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d answers to one event delivered twice, want 1\nmessages: %s", n, b.dump())
	}
}
