package fakeslack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// harness runs the real slack-go socket-mode client against a fake server,
// acking every request the way a bot would.
type harness struct {
	s      *Server
	api    *slack.Client
	client *socketmode.Client
	events chan socketmode.Event // slash commands and interactions, after ack

	mu      sync.Mutex
	skipAck func(*socketmode.Request) bool // true: leave this delivery unacked
	// ackWith, when set, gives the payload to ack interactive and events
	// envelopes with (nil: a bare ack), e.g. a view_submission's
	// response_action.
	ackWith func(socketmode.Event) any
}

// ackPayloads makes the harness ack interactive and events envelopes with
// what payload returns for them (nil: a bare ack).
func (h *harness) ackPayloads(payload func(socketmode.Event) any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ackWith = payload
}

func (h *harness) ackPayload(evt socketmode.Event) any {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ackWith == nil {
		return nil
	}
	return h.ackWith(evt)
}

// holdAcks makes the harness leave the deliveries for which skip is true
// unacked (they still reach events), like a bot that died or hung.
func (h *harness) holdAcks(skip func(*socketmode.Request) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.skipAck = skip
}

func (h *harness) acks(req *socketmode.Request) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.skipAck == nil || !h.skipAck(req)
}

// slashAck is what the harness acks slash commands with, as raw JSON so the
// bytes on the wire are known exactly.
const slashAck = `{"response_type":"ephemeral","text":"working on it"}`

func newHarness(t *testing.T) *harness {
	t.Helper()
	s := New()
	t.Cleanup(s.Close) // runs last: after the client has stopped
	return startClient(t, s)
}

func startClient(t *testing.T, s *Server, opts ...socketmode.Option) *harness {
	t.Helper()
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken("xapp-test"))
	client := socketmode.New(api, opts...)
	h := &harness{s: s, api: api, client: client, events: make(chan socketmode.Event, 100)}

	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = client.RunContext(ctx)
	}()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-client.Events:
				switch evt.Type {
				case socketmode.EventTypeSlashCommand:
					if h.acks(evt.Request) {
						_ = client.Ack(*evt.Request, json.RawMessage(slashAck))
					}
				case socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
					if h.acks(evt.Request) {
						if p := h.ackPayload(evt); p != nil {
							_ = client.Ack(*evt.Request, p)
						} else {
							_ = client.Ack(*evt.Request)
						}
					}
				default:
					continue
				}
				select {
				case h.events <- evt:
				default:
					t.Errorf("harness: event buffer full")
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		for _, ch := range []chan struct{}{runDone, loopDone} {
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Errorf("socket-mode client did not stop")
			}
		}
	})
	return h
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (h *harness) nextEvent(t *testing.T) socketmode.Event {
	t.Helper()
	select {
	case evt := <-h.events:
		return evt
	case <-time.After(3 * time.Second):
		t.Fatal("no event reached the client")
		return socketmode.Event{}
	}
}

func TestSlashCommandDeliveredAndAcked(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	h.s.AddUser("U0ANA", "ana")
	h.s.AddChannel("C0DS", "data-science")
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	id, err := h.s.SendSlashCommand(SlashCommand{Command: "/launch", Text: `t2.micro --hours 4`, UserID: "U0ANA", ChannelID: "C0DS"})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := h.s.WaitAck(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if string(ack.Payload) != slashAck {
		t.Errorf("ack payload = %s, want %s verbatim", ack.Payload, slashAck)
	}
	if ack.SentAt.IsZero() || ack.ReceivedAt.Before(ack.SentAt) {
		t.Errorf("SentAt %v, ReceivedAt %v", ack.SentAt, ack.ReceivedAt)
	}

	evt := h.nextEvent(t)
	cmd, isCmd := evt.Data.(slack.SlashCommand)
	if !isCmd {
		t.Fatalf("event data %T", evt.Data)
	}
	if evt.Request.EnvelopeID != id || !evt.Request.AcceptsResponsePayload {
		t.Errorf("request = %+v", evt.Request)
	}
	want := slack.SlashCommand{
		TeamID: TeamID, TeamDomain: TeamDomain, ChannelID: "C0DS", ChannelName: "data-science",
		UserID: "U0ANA", UserName: "ana", Command: "/launch", Text: "t2.micro --hours 4",
		ResponseURL: cmd.ResponseURL, TriggerID: cmd.TriggerID, APIAppID: AppID,
	}
	if cmd != want {
		t.Errorf("slash command = %+v\nwant %+v", cmd, want)
	}
	if !strings.HasPrefix(cmd.ResponseURL, h.s.URL()+"/response/") || cmd.TriggerID == "" {
		t.Errorf("response_url %q, trigger_id %q", cmd.ResponseURL, cmd.TriggerID)
	}

	// Slack shows the ack payload to the user: the fake records it.
	msgs := h.s.Messages("C0DS")
	if len(msgs) != 1 || msgs[0].Text != "working on it" || !msgs[0].Ephemeral || msgs[0].EphemeralUser != "U0ANA" || msgs[0].Via != "ack" {
		t.Errorf("messages = %+v", msgs)
	}

	// Trigger IDs are unique per envelope.
	id2, err := h.s.SendSlashCommand(SlashCommand{Command: "/launch", UserID: "U0ANA", ChannelID: "C0DS"})
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id {
		t.Error("envelope IDs repeat")
	}
	cmd2 := h.nextEvent(t).Data.(slack.SlashCommand)
	if cmd2.TriggerID == cmd.TriggerID || cmd2.ResponseURL == cmd.ResponseURL {
		t.Error("trigger_id or response_url repeats")
	}
	if _, err := h.s.WaitAck(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if n := len(h.s.Acks()); n != 2 {
		t.Errorf("%d acks, want 2", n)
	}
}

func TestBlockActionAndResponseURL(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	h.s.AddUser("U0BO", "bo")
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	approve := slack.NewButtonBlockElement("approve", "req-1", slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
	approve.Style = slack.StylePrimary
	deny := slack.NewButtonBlockElement("deny", "req-1", slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false))
	_, ts, err := h.api.PostMessage("C0DS",
		slack.MsgOptionText("request", false),
		slack.MsgOptionBlocks(
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*request*", false, false), nil, nil),
			slack.NewActionBlock("approval", approve, deny),
		))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.s.Buttons("C0DS", ts); strings.Join(got, ",") != "Approve,Deny" {
		t.Errorf("buttons = %v", got)
	}

	id, err := h.s.Click("U0BO", "C0DS", ts, "Approve")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.WaitAck(ctx, id); err != nil {
		t.Fatal(err)
	}
	cb, isCb := h.nextEvent(t).Data.(slack.InteractionCallback)
	if !isCb {
		t.Fatal("not an interaction callback")
	}
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) != 1 {
		t.Fatalf("callback = %+v", cb)
	}
	act := cb.ActionCallback.BlockActions[0]
	if act.ActionID != "approve" || act.BlockID != "approval" || act.Value != "req-1" || act.Text.Text != "Approve" || act.Type != "button" {
		t.Errorf("action = %+v", act)
	}
	if cb.User.ID != "U0BO" || cb.User.Name != "bo" || cb.Channel.ID != "C0DS" ||
		cb.Container.MessageTs != ts || cb.Container.ChannelID != "C0DS" || cb.Message.Timestamp != ts ||
		cb.Message.Text != "request" || len(cb.Message.Blocks.BlockSet) != 2 || cb.TriggerID == "" {
		t.Errorf("callback = %+v", cb)
	}

	// An ephemeral reply through the response_url (slack-go's chat path).
	if _, _, err := h.api.PostMessage("", slack.MsgOptionResponseURL(cb.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("only you", false)); err != nil {
		t.Fatal(err)
	}
	// Replacing the original (the webhook path): buttons gone.
	if err := slack.PostWebhook(cb.ResponseURL, &slack.WebhookMessage{Text: "Approved by <@U0BO>", ReplaceOriginal: true}); err != nil {
		t.Fatal(err)
	}
	m, found := h.s.Message("C0DS", ts)
	if !found || m.Text != "Approved by <@U0BO>" || m.Blocks != nil || m.Updated != 1 {
		t.Errorf("original = %+v", m)
	}
	if _, err := h.s.Click("U0BO", "C0DS", ts, "Approve"); err == nil {
		t.Error("clicked a button that is gone")
	}
	msgs := h.s.Messages("C0DS")
	if len(msgs) != 2 || !msgs[1].Ephemeral || msgs[1].EphemeralUser != "U0BO" || msgs[1].Text != "only you" {
		t.Errorf("messages = %+v", msgs)
	}
	calls := h.s.Calls("response_url")
	if len(calls) != 2 || calls[1].Params["replace_original"] != "true" || calls[0].ResponseURL != cb.ResponseURL {
		t.Errorf("response_url calls = %+v", calls)
	}
	// delete_original removes the message.
	if err := slack.PostWebhook(cb.ResponseURL, &slack.WebhookMessage{DeleteOriginal: true}); err != nil {
		t.Fatal(err)
	}
	if _, found := h.s.Message("C0DS", ts); found {
		t.Error("delete_original kept the message")
	}
	// An unknown response_url is refused.
	if err := slack.PostWebhook(h.s.URL()+"/response/nope", &slack.WebhookMessage{Text: "x"}); err == nil {
		t.Error("unknown response_url accepted")
	}

	// A block action on a message the fake does not hold.
	id, err = h.s.SendBlockAction(BlockAction{UserID: "U0BO", ChannelID: "C9", MessageTS: "1.000001", ActionID: "deny", BlockID: "b1", Value: "v", Text: "Deny"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.WaitAck(ctx, id); err != nil {
		t.Fatal(err)
	}
	cb = h.nextEvent(t).Data.(slack.InteractionCallback)
	if len(cb.ActionCallback.BlockActions) != 1 || cb.ActionCallback.BlockActions[0].BlockID != "b1" || cb.Container.MessageTs != "1.000001" {
		t.Errorf("callback = %+v", cb)
	}
}

func TestChatMethods(t *testing.T) {
	s := New()
	defer s.Close()
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))

	ch, ts, err := api.PostMessage("C1", slack.MsgOptionText("hello", false))
	if err != nil || ch != "C1" {
		t.Fatal(ch, err)
	}
	_, ts2, err := api.PostMessage("C1", slack.MsgOptionText("second", false))
	if err != nil || ts2 <= ts {
		t.Fatalf("ts %q then %q, err %v", ts, ts2, err)
	}
	_, reply, err := api.PostMessage("C1", slack.MsgOptionText("in thread", false), slack.MsgOptionTS(ts))
	if err != nil {
		t.Fatal(err)
	}
	if th := s.Thread("C1", ts); len(th) != 1 || th[0].TS != reply || th[0].ThreadTS != ts || th[0].Text != "in thread" {
		t.Errorf("thread = %+v", th)
	}

	blocks := slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "hi", false, false), nil, nil))
	if _, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionText("updated", false), blocks); err != nil {
		t.Fatal(err)
	}
	// A text-only update keeps the blocks, as Slack does.
	if _, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionText("updated again", false)); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Message("C1", ts)
	if m.Text != "updated again" || m.Updated != 2 || !strings.Contains(string(m.Blocks), `"hi"`) || m.User != BotUserID {
		t.Errorf("updated message = %+v", m)
	}
	if _, _, _, err := api.UpdateMessage("C1", "9.9", slack.MsgOptionText("x", false)); err == nil || err.Error() != "message_not_found" {
		t.Errorf("update of unknown message: %v", err)
	}

	ets, err := api.PostEphemeral("C1", "U0ANA", slack.MsgOptionText("psst", false))
	if err != nil || ets == "" {
		t.Fatal(ets, err)
	}
	msgs := s.Messages("C1")
	if len(msgs) != 4 {
		t.Fatalf("messages = %+v", msgs)
	}
	if e := msgs[3]; !e.Ephemeral || e.EphemeralUser != "U0ANA" || e.TS != ets || e.Via != "chat.postEphemeral" {
		t.Errorf("ephemeral = %+v", e)
	}

	link, err := api.GetPermalink(&slack.PermalinkParameters{Channel: "C1", Ts: ts})
	if err != nil || !strings.Contains(link, "/archives/C1/p") {
		t.Errorf("permalink %q, %v", link, err)
	}

	// Posting to a user ID lands in the DM that conversations.open names.
	dm, _, _, err := api.OpenConversation(&slack.OpenConversationParameters{Users: []string{"U0ANA"}})
	if err != nil || !strings.HasPrefix(dm.ID, "D") {
		t.Fatal(dm, err)
	}
	if ch, _, err := api.PostMessage("U0ANA", slack.MsgOptionText("dm", false)); err != nil || ch != dm.ID {
		t.Errorf("post to user: channel %q, err %v", ch, err)
	}

	if _, _, err := api.PostMessage("C1"); err == nil || err.Error() != "no_text" {
		t.Errorf("empty message: %v", err)
	}

	// Calls are recorded with flattened params and without the token.
	calls := s.Calls("chat.postMessage")
	if len(calls) != 5 || calls[0].Params["text"] != "hello" || calls[0].Params["channel"] != "C1" || !calls[0].OK() {
		t.Errorf("calls = %+v", calls)
	}
	for _, c := range s.AllCalls() {
		for k, v := range c.Params {
			if k == "token" || strings.Contains(v, "xoxb-test") {
				t.Errorf("token recorded in %s: %s=%s", c.Method, k, v)
			}
		}
	}
	upd := s.Calls("chat.update")
	if len(upd) < 1 || !strings.HasPrefix(upd[0].Params["blocks"], `[{"type":"section"`) {
		t.Errorf("blocks not kept as raw JSON: %+v", upd)
	}
}

func TestUsersAndGroups(t *testing.T) {
	s := New()
	defer s.Close()
	s.AddUser("U0ANA", "ana")
	s.AddUserGroup("S0PLATFORM", "U0BO", "U0CY")
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))

	u, err := api.GetUserInfo("U0ANA")
	if err != nil || u.ID != "U0ANA" || u.Name != "ana" || u.RealName != "ana" || u.Profile.DisplayName != "ana" {
		t.Errorf("user = %+v, %v", u, err)
	}
	if _, err := api.GetUserInfo("U0NOBODY"); err == nil || err.Error() != "user_not_found" {
		t.Errorf("unknown user: %v", err)
	}
	members, err := api.GetUserGroupMembers("S0PLATFORM")
	if err != nil || strings.Join(members, ",") != "U0BO,U0CY" {
		t.Errorf("members = %v, %v", members, err)
	}
	if _, err := api.GetUserGroupMembers("S0NONE"); err == nil || err.Error() != "no_such_subteam" {
		t.Errorf("unknown group: %v", err)
	}
	if c, err := s.WaitCall(testCtx(t), "usergroups.users.list", func(c Call) bool { return c.Params["usergroup"] == "S0NONE" }); err != nil || c.Error != "no_such_subteam" {
		t.Errorf("WaitCall = %+v, %v", c, err)
	}
	at, err := api.AuthTest()
	if err != nil || at.UserID != BotUserID || at.TeamID != TeamID || at.BotID != BotID {
		t.Errorf("auth.test = %+v, %v", at, err)
	}
}

func post(t *testing.T, u, contentType, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return resp.StatusCode, out
}

func TestErrorsAndOddInput(t *testing.T) {
	s := New()
	defer s.Close()
	form := "application/x-www-form-urlencoded"

	status, out := post(t, s.APIURL()+"views.frobnicate", form, "xoxb-1", "")
	if status != http.StatusOK || out["ok"] != false || out["error"] != "unknown_method" {
		t.Errorf("unknown method: %d %v", status, out)
	}
	if _, out = post(t, s.APIURL()+"auth.test", form, "", "x=1"); out["error"] != "not_authed" {
		t.Errorf("no token: %v", out)
	}
	if _, out = post(t, s.APIURL()+"auth.test", form, "", "token=xoxb-form"); out["ok"] != true {
		t.Errorf("form token: %v", out)
	}
	if _, out = post(t, s.APIURL()+"chat.postMessage", "application/json", "xoxb-1", `{"channel":"C1","text":"json","unfurl_links":false}`); out["ok"] != true {
		t.Errorf("JSON body: %v", out)
	}
	if c := s.Calls("chat.postMessage"); len(c) != 1 || c[0].Params["unfurl_links"] != "false" || c[0].Params["text"] != "json" {
		t.Errorf("JSON params = %+v", c)
	}
	if _, out = post(t, s.APIURL()+"chat.postMessage", "application/json", "xoxb-1", `{"channel":`); out["ok"] != false {
		t.Errorf("bad JSON: %v", out)
	}
	if _, out = post(t, s.APIURL()+"chat.postMessage", form, "xoxb-1", "channel=C1&blocks=notjson"); out["error"] != "invalid_blocks" {
		t.Errorf("bad blocks: %v", out)
	}
	if _, out = post(t, s.APIURL()+"apps.connections.open", "application/json", "xoxb-1", ""); out["error"] != "not_allowed_token_type" {
		t.Errorf("bot token opening a socket: %v", out)
	}
	if _, out = post(t, s.APIURL()+"chat.postMessage", form, "xapp-1", "channel=C1&text=x"); out["error"] != "not_allowed_token_type" {
		t.Errorf("app token posting: %v", out)
	}
	if status, _ = post(t, s.URL()+"/response/x", "application/json", "", "{"); status != http.StatusNotFound {
		t.Errorf("unknown response_url: %d", status)
	}
	for _, c := range s.AllCalls() {
		if _, has := c.Params["token"]; has {
			t.Errorf("token recorded: %+v", c)
		}
	}

	if err := s.SendEnvelope(Envelope{EnvelopeID: "e", Type: "events_api", Payload: json.RawMessage("{bad")}); err == nil {
		t.Error("invalid payload accepted")
	}
	if _, err := s.SendSlashCommand(SlashCommand{Text: "no command"}); err == nil {
		t.Error("slash command without command accepted")
	}
	if _, err := s.SendBlockAction(BlockAction{UserID: "U1", ChannelID: "C1"}); err == nil {
		t.Error("block action without action_id accepted")
	}
	if err := s.SendDisconnect("warning"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("disconnect without connection: %v", err)
	}

	s.SetError("chat.update", 1, "cant_update_message")
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))
	_, ts, _ := api.PostMessage("C1", slack.MsgOptionText("a", false))
	if _, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionText("b", false)); err == nil || err.Error() != "cant_update_message" {
		t.Errorf("injected error: %v", err)
	}
	if _, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionText("b", false)); err != nil {
		t.Errorf("error injected twice: %v", err)
	}
}

func TestRateLimitAndLatency(t *testing.T) {
	s := New()
	defer s.Close()
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))

	s.SetRateLimit("chat.postMessage", 1, 1500*time.Millisecond)
	_, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Fatalf("err = %v, want RateLimitedError with Retry-After rounded up to 2s", err)
	}
	if _, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false)); err != nil {
		t.Fatalf("second call: %v", err)
	}
	calls := s.Calls("chat.postMessage")
	if len(calls) != 2 || calls[0].Status != http.StatusTooManyRequests || calls[0].OK() || !calls[1].OK() {
		t.Errorf("calls = %+v", calls)
	}
	if len(s.Messages("C1")) != 1 {
		t.Error("a rate-limited call posted a message")
	}

	s.SetLatency("auth.test", 150*time.Millisecond)
	start := time.Now()
	if _, err := api.AuthTest(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("auth.test took %v, want >= 150ms", d)
	}
	s.SetLatency("auth.test", 0)
	start = time.Now()
	_, _ = api.AuthTest()
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("latency not removed: %v", d)
	}
}

func TestDisconnectReconnects(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.s.SendDisconnect("refresh_requested"); err != nil {
		t.Fatal(err)
	}
	// Sent while the client reconnects: queued for the next connection.
	id, err := h.s.SendSlashCommand(SlashCommand{Command: "/launch", UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.s.WaitConnections(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.WaitAck(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := h.s.Connections(); n != 2 {
		t.Errorf("Connections() = %d, want 2", n)
	}
	if n := len(h.s.Calls("apps.connections.open")); n != 2 {
		t.Errorf("%d apps.connections.open calls, want 2", n)
	}
	if evt := h.nextEvent(t); evt.Request.EnvelopeID != id {
		t.Errorf("event for %q, want %q", evt.Request.EnvelopeID, id)
	}

	// An abrupt drop: the client reconnects by itself too.
	h.s.DropConnections()
	id, err = h.s.SendSlashCommand(SlashCommand{Command: "/launch", UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.WaitAck(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := h.s.Connections(); n != 3 {
		t.Errorf("Connections() = %d, want 3", n)
	}
}

func TestQueuedBeforeFirstConnection(t *testing.T) {
	s := New()
	t.Cleanup(s.Close)
	id, err := s.SendSlashCommand(SlashCommand{Command: "/help", UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	h := startClient(t, s)
	ack, err := s.WaitAck(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if string(ack.Payload) != slashAck {
		t.Errorf("payload %s", ack.Payload)
	}
	if evt := h.nextEvent(t); evt.Data.(slack.SlashCommand).Command != "/help" {
		t.Errorf("event = %+v", evt)
	}
}

func TestRedelivery(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	payload := json.RawMessage(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"approve","block_id":"b","type":"button","value":"r1"}]}`)
	env := Envelope{EnvelopeID: "env-1", Type: "interactive", Payload: payload}
	if err := h.s.SendEnvelope(env); err != nil {
		t.Fatal(err)
	}
	first, err := h.s.WaitAck(ctx, "env-1")
	if err != nil {
		t.Fatal(err)
	}
	if first.Payload != nil {
		t.Errorf("empty ack recorded with payload %s", first.Payload)
	}
	if evt := h.nextEvent(t); evt.Request.RetryAttempt != 0 {
		t.Errorf("first delivery retry_attempt %d", evt.Request.RetryAttempt)
	}

	env.RetryAttempt, env.RetryReason = 1, "timeout"
	if err := h.s.SendEnvelope(env); err != nil {
		t.Fatal(err)
	}
	second, err := h.s.WaitAck(ctx, "env-1")
	if err != nil {
		t.Fatal(err)
	}
	if !second.ReceivedAt.After(first.ReceivedAt) || !second.SentAt.After(first.SentAt) {
		t.Errorf("WaitAck returned the first delivery's ack: %+v vs %+v", second, first)
	}
	evt := h.nextEvent(t)
	if evt.Request.EnvelopeID != "env-1" || evt.Request.RetryAttempt != 1 || evt.Request.RetryReason != "timeout" {
		t.Errorf("redelivery = %+v", evt.Request)
	}
	if n := len(h.s.Acks()); n != 2 {
		t.Errorf("%d acks, want 2", n)
	}
}

// TestRawSocket checks the socket protocol itself with a plain websocket
// client: hello first, a ping right after, single-use tickets, and frames
// that are not acks are counted, not fatal.
func TestRawSocket(t *testing.T) {
	s := New()
	defer s.Close()
	_, out := post(t, s.APIURL()+"apps.connections.open", "application/json", "xapp-1", "")
	wsURL, _ := out["url"].(string)
	if !strings.HasPrefix(wsURL, "ws://127.0.0.1:") {
		t.Fatalf("url = %q", wsURL)
	}
	hdr := http.Header{"Origin": {"https://api.slack.com"}}
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, _, err := websocket.DefaultDialer.Dial(wsURL, hdr); err == nil {
		t.Error("ticket used twice")
	}

	pinged := make(chan struct{}, 1)
	conn.SetPingHandler(func(string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return nil
	})
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	var hello socketmode.Request
	if err := conn.ReadJSON(&hello); err != nil {
		t.Fatal(err)
	}
	if hello.Type != "hello" || hello.ConnectionInfo.AppID != AppID || hello.NumConnections != 1 {
		t.Errorf("hello = %+v", hello)
	}
	if err := s.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	// Reading processes control frames; the ping arrives before this frame.
	if err := s.SendFrame([]byte(`{"type":"events_api","envelope_id":"raw"}`)); err != nil {
		t.Fatal(err)
	}
	var env Envelope
	if err := conn.ReadJSON(&env); err != nil || env.EnvelopeID != "raw" {
		t.Fatalf("frame %+v, %v", env, err)
	}
	select {
	case <-pinged:
	default:
		t.Error("no ping after hello")
	}

	_ = conn.WriteMessage(websocket.TextMessage, []byte("not json"))
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"payload":{}}`))
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"envelope_id":"raw"}`))
	if _, err := s.WaitAck(testCtx(t), "raw"); err != nil {
		t.Fatal(err)
	}
	if n := s.BadFrames(); n != 2 {
		t.Errorf("BadFrames() = %d, want 2", n)
	}
}

func TestCloseEndsWaits(t *testing.T) {
	s := New()
	done := make(chan error, 1)
	go func() { done <- s.WaitConnected(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WaitConnected did not return on Close")
	}
	if err := s.SendEnvelope(Envelope{EnvelopeID: "x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
	s.Close() // twice is fine
}

// TestPingsKeepClientConnected runs a client that drops connections not
// pinged for 300 ms (slack-go's default is 30 s) for several times that: the
// server's pings must keep the first connection alive.
func TestPingsKeepClientConnected(t *testing.T) {
	t.Parallel()
	s := New()
	t.Cleanup(s.Close)
	s.SetPingInterval(100 * time.Millisecond)
	startClient(t, s, socketmode.OptionPingInterval(300*time.Millisecond))
	ctx := testCtx(t)
	if err := s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1: the client timed out waiting for pings", n)
	}
}

// slashResponseURL sends a slash command and returns its response_url.
func slashResponseURL(t *testing.T, s *Server) string {
	t.Helper()
	if _, err := s.SendSlashCommand(SlashCommand{Command: "/help", UserID: "U1", ChannelID: "C1"}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var respURL string
	for id := range s.responses {
		respURL = s.URL() + "/response/" + id
	}
	return respURL
}

func TestResponseURLUseLimit(t *testing.T) {
	s := New()
	defer s.Close()
	respURL := slashResponseURL(t, s)
	for i := range maxResponseURLUses {
		if err := slack.PostWebhook(respURL, &slack.WebhookMessage{Text: "reply"}); err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
	}
	if err := slack.PostWebhook(respURL, &slack.WebhookMessage{Text: "one too many"}); err == nil {
		t.Error("response_url accepted a sixth post")
	}
	if n := len(s.Messages("C1")); n != maxResponseURLUses {
		t.Errorf("%d messages, want %d", n, maxResponseURLUses)
	}
}
