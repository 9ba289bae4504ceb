package fakeslack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

func longCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// firstDeliveryOf leaves the first delivery of envelope id unacked.
func firstDeliveryOf(id string) func(*socketmode.Request) bool {
	return func(r *socketmode.Request) bool { return r.EnvelopeID == id && r.RetryAttempt == 0 }
}

func TestRedeliveryAfterAckTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := longCtx(t)
	h.s.SetRedelivery(200*time.Millisecond, 3)
	h.holdAcks(firstDeliveryOf("env-slow"))
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := h.s.SendSlashCommand(SlashCommand{Command: "/launch", UserID: "U1", ChannelID: "C1", EnvelopeID: "env-slow"})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := h.s.WaitAck(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ack.RetryAttempt != 1 || ack.Conn != 1 {
		t.Errorf("ack = %+v, want one answering retry_attempt 1 on connection 1", ack)
	}
	ds := h.s.Deliveries(id)
	if len(ds) != 2 || ds[0].RetryAttempt != 0 || ds[0].Acked || ds[1].RetryAttempt != 1 || ds[1].RetryReason != RetryReasonTimeout || !ds[1].Acked {
		t.Fatalf("deliveries = %+v", ds)
	}
	if gap := ds[1].SentAt.Sub(ds[0].SentAt); gap < 200*time.Millisecond || gap > 2*time.Second {
		t.Errorf("redelivered %v after the first delivery, want about the ack timeout", gap)
	}
	first, second := h.nextEvent(t), h.nextEvent(t)
	if first.Request.EnvelopeID != id || second.Request.EnvelopeID != id || second.Request.RetryAttempt != 1 || second.Request.RetryReason != "timeout" {
		t.Errorf("client saw %+v then %+v", first.Request, second.Request)
	}

	// An envelope acked in time is delivered once.
	id2, err := h.s.SendSlashCommand(SlashCommand{Command: "/help", UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := h.s.WaitAck(ctx, id2); err != nil || ack.RetryAttempt != 0 {
		t.Fatalf("ack %+v, %v", ack, err)
	}
	time.Sleep(400 * time.Millisecond)
	if ds := h.s.Deliveries(id2); len(ds) != 1 || !ds[0].Acked {
		t.Errorf("acked envelope delivered again: %+v", ds)
	}
}

func TestRedeliveryGivesUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := longCtx(t)
	h.s.SetRedelivery(100*time.Millisecond, 2)
	h.holdAcks(func(*socketmode.Request) bool { return true })
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := h.s.SendMention(Mention{UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.WaitDeliveries(ctx, id, 3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	ds := h.s.Deliveries(id)
	if len(ds) != 3 {
		t.Fatalf("%d deliveries, want 3 (the first and 2 retries)", len(ds))
	}
	for i, d := range ds {
		if d.RetryAttempt != i || d.EnvelopeID != id || d.Acked {
			t.Errorf("delivery %d = %+v", i, d)
		}
	}
	if n := len(h.s.Acks()); n != 0 {
		t.Errorf("%d acks", n)
	}
}

func TestRedeliveryIsOffByDefault(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := longCtx(t)
	h.holdAcks(func(*socketmode.Request) bool { return true })
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := h.s.SendSlashCommand(SlashCommand{Command: "/help", UserID: "U1", ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	h.nextEvent(t)
	h.s.DropConnections()
	if err := h.s.WaitConnections(ctx, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if ds := h.s.Deliveries(id); len(ds) != 1 {
		t.Errorf("deliveries = %+v, want 1", ds)
	}
}

var chaosKinds = []ChaosKind{ChaosDisconnect, ChaosCloseFrame, ChaosTCPClose, ChaosTCPReset}

// forEachChaos runs test in parallel for every kind, with a connected
// harness whose server redelivers after ackTimeout.
func forEachChaos(t *testing.T, ackTimeout time.Duration, test func(t *testing.T, ctx context.Context, h *harness, kind ChaosKind)) {
	t.Parallel()
	for _, kind := range chaosKinds {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			ctx := longCtx(t)
			h.s.SetRedelivery(ackTimeout, 3)
			if err := h.s.WaitConnected(ctx); err != nil {
				t.Fatal(err)
			}
			test(t, ctx, h, kind)
		})
	}
}

// TestChaosRedeliversOnTheNextConnection ends the connection each way while
// an envelope is unacked: the client reconnects and gets it again there.
func TestChaosRedeliversOnTheNextConnection(t *testing.T) {
	// A long ack timeout: only the connection's end redelivers.
	forEachChaos(t, time.Minute, func(t *testing.T, ctx context.Context, h *harness, kind ChaosKind) {
		h.holdAcks(firstDeliveryOf("victim"))
		if _, err := h.s.SendSlashCommand(SlashCommand{Command: "/launch", UserID: "U1", ChannelID: "C1", EnvelopeID: "victim"}); err != nil {
			t.Fatal(err)
		}
		if evt := h.nextEvent(t); evt.Request.EnvelopeID != "victim" {
			t.Fatalf("event %+v", evt.Request)
		}
		if err := h.s.Chaos(kind); err != nil {
			t.Fatal(err)
		}
		ack, err := h.s.WaitAck(ctx, "victim")
		if err != nil {
			t.Fatal(err)
		}
		ds := h.s.Deliveries("victim")
		if len(ds) != 2 || ds[1].RetryReason != RetryReasonConnectionClosed || ds[1].RetryAttempt != 1 || ds[1].Conn != 2 || ack.RetryAttempt != 1 || ack.Conn != 2 {
			t.Errorf("deliveries %+v, ack %+v", ds, ack)
		}
		if n := len(h.s.Calls("apps.connections.open")); n != 2 {
			t.Errorf("%d apps.connections.open calls, want 2", n)
		}
	})
}

// TestChaosDuringAStream ends connections each way in the middle of a
// stream of commands: with redelivery on, every command is acked in the end.
func TestChaosDuringAStream(t *testing.T) {
	forEachChaos(t, 300*time.Millisecond, func(t *testing.T, ctx context.Context, h *harness, kind ChaosKind) {
		var ids []string
		for i := range 30 {
			id, err := h.s.SendSlashCommand(SlashCommand{Command: "/launch", Text: fmt.Sprint(i), UserID: "U1", ChannelID: "C1"})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
			if i%10 == 5 {
				if err := h.s.Chaos(kind); err != nil && !errors.Is(err, ErrNotConnected) {
					t.Fatal(err)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		for _, id := range ids {
			if _, err := h.s.WaitAck(ctx, id); err != nil {
				t.Fatalf("%s never acked: %v (deliveries %+v)", id, err, h.s.Deliveries(id))
			}
		}
		if n := h.s.Hellos(); n < 2 {
			t.Errorf("%d connections, want a reconnection at least", n)
		}
	})
}

func TestChaosErrors(t *testing.T) {
	s := New()
	for _, kind := range chaosKinds {
		if err := s.Chaos(kind); !errors.Is(err, ErrNotConnected) {
			t.Errorf("%v without a connection: %v", kind, err)
		}
	}
	if err := s.Chaos(ChaosKind(42)); err == nil {
		t.Error("unknown kind accepted")
	}
	s.Close()
	if err := s.Chaos(ChaosTCPClose); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// limitedCalls makes n chat.update calls and reports which were refused
// with a 429.
func limitedCalls(t *testing.T, seed int64, n int) []bool {
	t.Helper()
	s, api := newAPI(t)
	ts := postText(t, api, "C1", "x")
	s.SetRateLimitRatio("chat.update", 0.3, 1500*time.Millisecond, seed)
	out := make([]bool, n)
	for i := range out {
		_, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionText(fmt.Sprint(i), false))
		var rl *slack.RateLimitedError
		switch {
		case errors.As(err, &rl):
			if rl.RetryAfter != 2*time.Second {
				t.Errorf("Retry-After %v", rl.RetryAfter)
			}
			out[i] = true
		case err != nil:
			t.Fatal(err)
		}
	}
	limited := 0
	for _, c := range s.Calls("chat.update") {
		if c.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if m, _ := s.Message("C1", ts); m.Updated != n-limited {
		t.Errorf("%d updates applied, %d calls limited of %d", m.Updated, limited, n)
	}
	return out
}

func TestRateLimitRatio(t *testing.T) {
	a, b, c := limitedCalls(t, 7, 200), limitedCalls(t, 7, 200), limitedCalls(t, 8, 200)
	count := func(v []bool) (n int) {
		for _, x := range v {
			if x {
				n++
			}
		}
		return n
	}
	if n := count(a); n < 40 || n > 80 {
		t.Errorf("%d of 200 calls limited at ratio 0.3", n)
	}
	same, differs := true, false
	for i := range a {
		same = same && a[i] == b[i]
		differs = differs || a[i] != c[i]
	}
	if !same || !differs {
		t.Errorf("the seed does not fix the sequence: same seed equal %v, other seed differs %v", same, differs)
	}

	// response_url too; ratio 0 turns it off.
	s, api := newAPI(t)
	respURL := slashResponseURL(t, s)
	s.SetRateLimitRatio("response_url", 1, 0, 1)
	if err := slack.PostWebhook(respURL, &slack.WebhookMessage{Text: "x"}); err == nil {
		t.Error("response_url not limited at ratio 1")
	}
	s.SetRateLimitRatio("response_url", 0, 0, 1)
	if err := slack.PostWebhook(respURL, &slack.WebhookMessage{Text: "x"}); err != nil {
		t.Errorf("ratio 0: %v", err)
	}
	if _, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false)); err != nil {
		t.Errorf("another method limited: %v", err)
	}
}

var authErrors = []string{"invalid_auth", "token_revoked", "account_inactive", "not_allowed_token_type", "missing_scope"}

func TestPersistentAuthFailures(t *testing.T) {
	for _, code := range authErrors {
		t.Run(code, func(t *testing.T) {
			s, api := newAPI(t)
			sm := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken("xapp-test"))
			s.SetError("auth.test", Always, code)
			s.SetError("apps.connections.open", Always, code)
			for range 3 {
				_, err := api.AuthTest()
				var se slack.SlackErrorResponse
				if !errors.As(err, &se) || se.Err != code {
					t.Fatalf("auth.test: %v, want SlackErrorResponse %s", err, code)
				}
				if code == "missing_scope" && (se.Needed != "" || !strings.Contains(se.Provided, "chat:write")) {
					t.Errorf("auth.test missing_scope needed %q provided %q", se.Needed, se.Provided)
				}
				_, _, err = socketmode.New(sm).OpenContext(context.Background())
				if !errors.As(err, &se) || se.Err != code {
					t.Fatalf("apps.connections.open: %v, want SlackErrorResponse %s", err, code)
				}
				if code == "missing_scope" && (se.Needed != "connections:write" || se.Provided != "") {
					t.Errorf("missing_scope needed %q provided %q", se.Needed, se.Provided)
				}
			}
			s.SetError("auth.test", 0, "")
			if _, err := api.AuthTest(); err != nil {
				t.Errorf("after clearing: %v", err)
			}
		})
	}
}

// TestRunStopsOnInvalidAuth checks that slack-go gives up on the fatal
// codes instead of reconnecting forever.
func TestRunStopsOnInvalidAuth(t *testing.T) {
	s := New()
	defer s.Close()
	s.SetError("apps.connections.open", Always, "token_revoked")
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken("xapp-test"))
	client := socketmode.New(api)
	ctx := longCtx(t)
	go func() {
		for {
			select {
			case <-client.Events:
			case <-ctx.Done():
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- client.RunContext(ctx) }()
	select {
	case err := <-done:
		var se slack.SlackErrorResponse
		if !errors.As(err, &se) || se.Err != "token_revoked" {
			t.Errorf("RunContext = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunContext kept going on token_revoked")
	}
}

// TestChaosOnTheWire checks what a plain websocket client sees for each
// kind: the disconnect envelope, a close frame (1001), an EOF, a reset.
func TestChaosOnTheWire(t *testing.T) {
	for _, kind := range chaosKinds {
		t.Run(kind.String(), func(t *testing.T) {
			s := New()
			defer s.Close()
			_, out := post(t, s.APIURL()+"apps.connections.open", "application/json", "xapp-1", "")
			wsURL, _ := out["url"].(string)
			conn, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {"https://api.slack.com"}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, _, err := conn.ReadMessage(); err != nil { // hello
				t.Fatal(err)
			}
			if err := s.WaitConnected(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if err := s.Chaos(kind); err != nil {
				t.Fatal(err)
			}
			_, data, err := conn.ReadMessage()
			var ce *websocket.CloseError
			switch kind {
			case ChaosDisconnect:
				if err != nil || !strings.Contains(string(data), `"type":"disconnect"`) || !strings.Contains(string(data), `"reason":"refresh_requested"`) {
					t.Errorf("frame %s, %v", data, err)
				}
			case ChaosCloseFrame:
				if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
					t.Errorf("err = %v, want a close frame 1001", err)
				}
			case ChaosTCPClose:
				// gorilla reports an EOF as 1006, a code no close frame carries.
				if !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
					t.Errorf("err = %v, want an EOF without a close frame", err)
				}
			case ChaosTCPReset:
				if err == nil || !strings.Contains(err.Error(), "reset") {
					t.Errorf("err = %v, want a connection reset", err)
				}
			}
			if err := s.SendDisconnect("warning"); !errors.Is(err, ErrNotConnected) {
				t.Errorf("after %v the connection still takes envelopes: %v", kind, err)
			}
		})
	}
}
