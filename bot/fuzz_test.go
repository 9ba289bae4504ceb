package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/reply"
)

// FuzzEnvelope feeds raw socket-mode frames through what slack-go does
// with a frame (socketmode.Client's read and parseEvent, mirrored below)
// and then through the bot's dispatch (handleEvent, onSlash, onInteraction,
// onEvent), with a recording Workflows. frame is sent as it is; payload is
// also wrapped in an envelope of each type (slash_commands, interactive,
// events_api), so that the fuzzer can change a payload without having to
// keep an envelope around it. The properties, for each frame slack-go turns
// into an envelope event:
//
//   - nothing panics (the dispatch runs on goroutines: a panic there ends
//     the fuzzing process, and is reported as a crasher);
//   - the envelope gets exactly one ack, with its envelope_id, carrying an
//     ephemeral text only for a slash command whose Accept gave a reply;
//   - every Accept call's Input.Source matches the envelope type (slash →
//     slash, interactive → click, events_api → mention), its Origin.User is
//     the payload's user, and the first one carries the envelope's ID (a
//     mention: its event's event_id, which its retries share);
//   - envelopes that ask nothing (an interaction without block actions, an
//     event that is not a person's app mention) get no Accept at all;
//   - every job Accept returns is submitted, once.
//
// Frames slack-go cannot read as JSON are dropped before the bot sees
// them. Frames it cannot turn into an envelope event (an unknown type, a
// payload of the wrong shape) reach the bot as bad messages: those with an
// envelope_id get one bare ack (a redelivery would fail the same way), and
// none reaches Accept.
//
// Seed corpus: testdata/fuzz/FuzzEnvelope. Run with
// go test -run '^$' -fuzz FuzzEnvelope ./bot/
func FuzzEnvelope(f *testing.F) {
	fw := &fuzzWorkflows{}
	b, acks := newFuzzBot(f, fw)
	f.Fuzz(func(t *testing.T, frame, payload []byte) {
		checkFrame(t, b, fw, acks, frame)
		for _, typ := range []string{socketmode.RequestTypeSlashCommands, socketmode.RequestTypeInteractive, socketmode.RequestTypeEventsAPI} {
			wrapped := fmt.Appendf(nil, `{"envelope_id":"fz-%s","type":%q,"accepts_response_payload":%t,"payload":`, typ, typ, typ == socketmode.RequestTypeSlashCommands)
			wrapped = append(append(wrapped, payload...), '}')
			checkFrame(t, b, fw, acks, wrapped)
		}
	})
}

// checkFrame runs one frame through slack-go's parsing and the bot's
// dispatch, and checks the properties.
func checkFrame(t *testing.T, b *Bot, fw *fuzzWorkflows, acks chan *socketmode.Response, frame []byte) {
	t.Helper()
	fw.reset()
	evt, ok := readFrame(frame)
	if !ok {
		return // slack-go ignores the frame (and reads the next)
	}
	b.handleEvent(context.Background(), evt)
	b.inflight.Wait() // every ack is in the channel once the envelope's goroutine is done

	var got []*socketmode.Response
	for drained := false; !drained; {
		select {
		case r := <-acks:
			got = append(got, r)
		default:
			drained = true
		}
	}
	calls, submits := fw.recorded()

	req := evt.Request
	if evt.Type == socketmode.EventTypeErrorBadMessage {
		// An envelope slack-go cannot parse is acked bare (redelivery
		// would fail the same way) and reaches no Accept.
		var head struct {
			EnvelopeID string `json:"envelope_id"`
		}
		wantAcks := 0
		if json.Unmarshal(evt.Data.(*socketmode.ErrorBadMessage).Message, &head) == nil && head.EnvelopeID != "" {
			wantAcks = 1
		}
		if len(got) != wantAcks || len(calls) > 0 {
			t.Fatalf("unreadable frame: %d acks (want %d), %d Accept calls\nframe: %q", len(got), wantAcks, len(calls), frame)
		}
		if wantAcks == 1 && (got[0].EnvelopeID != head.EnvelopeID || got[0].Payload != nil) {
			t.Fatalf("unreadable frame: ack %+v, want a bare ack for %q", got[0], head.EnvelopeID)
		}
		return
	}
	isEnvelope := req != nil && (evt.Type == socketmode.EventTypeSlashCommand || evt.Type == socketmode.EventTypeInteractive || evt.Type == socketmode.EventTypeEventsAPI)
	if !isEnvelope {
		if len(got) > 0 || len(calls) > 0 {
			t.Fatalf("event %s (not an envelope): %d acks, %d Accept calls", evt.Type, len(got), len(calls))
		}
		return
	}

	if len(got) != 1 {
		t.Fatalf("%s envelope %q: %d acks, want exactly 1\nframe: %q", req.Type, req.EnvelopeID, len(got), frame)
	}
	if got[0].EnvelopeID != req.EnvelopeID {
		t.Fatalf("ack for envelope %q, want %q", got[0].EnvelopeID, req.EnvelopeID)
	}
	if submits != fw.jobs {
		t.Fatalf("%d jobs returned by Accept, %d submitted", fw.jobs, submits)
	}

	wantSource, wantUser, actionable, wantCalls := expected(evt)
	if !actionable {
		if len(calls) > 0 {
			t.Fatalf("%s envelope that asks nothing: %d Accept calls (%+v)\nframe: %q", req.Type, len(calls), calls[0], frame)
		}
	} else {
		if len(calls) != wantCalls {
			t.Fatalf("%s envelope: %d Accept calls, want %d\nframe: %q", req.Type, len(calls), wantCalls, frame)
		}
		for i, env := range calls {
			if env.Input.Source != wantSource {
				t.Fatalf("%s envelope: Accept with Source %q, want %q", req.Type, env.Input.Source, wantSource)
			}
			if env.Origin.User != wantUser {
				t.Fatalf("%s envelope: Accept with User %q, want the payload's %q", req.Type, env.Origin.User, wantUser)
			}
			if env.Origin.ReplyInAck != (wantSource == computebot.SourceSlash) {
				t.Fatalf("%s envelope: ReplyInAck %t", req.Type, env.Origin.ReplyInAck)
			}
			wantID := req.EnvelopeID
			if eventID := callbackEventID(evt); eventID != "" {
				wantID = "event:" + eventID // an event's retries share its event_id
			} else if i > 0 && wantID != "" {
				wantID = fmt.Sprintf("%s/%d", req.EnvelopeID, i)
			}
			if env.ID != wantID {
				t.Fatalf("%s envelope: Accept call %d with ID %q, want %q", req.Type, i, env.ID, wantID)
			}
		}
	}

	// Only a slash command's ack carries an answer, and only the one its
	// Accept gave.
	wantText := ""
	if wantSource == computebot.SourceSlash && len(calls) > 0 {
		wantText = Text(fuzzReply(calls[0]).Text)
	}
	ack := got[0]
	if wantText == "" {
		if ack.Payload != nil {
			t.Fatalf("%s envelope: ack payload %#v, want a bare ack", req.Type, ack.Payload)
		}
		return
	}
	p, ok := ack.Payload.(map[string]any)
	if !ok || p["response_type"] != slack.ResponseTypeEphemeral || p["text"] != wantText {
		t.Fatalf("slash ack payload %#v, want an ephemeral %q", ack.Payload, wantText)
	}
	if _, err := json.Marshal(ack); err != nil {
		t.Fatalf("the ack does not marshal: %v", err)
	}
}

// expected is what the dispatch must do with an envelope event: the
// Source and user of its Accept calls, whether it asks anything, and how
// many Accept calls it makes (one per block action for a click).
func expected(evt socketmode.Event) (computebot.IntentSource, string, bool, int) {
	switch d := evt.Data.(type) {
	case slack.SlashCommand:
		return computebot.SourceSlash, d.UserID, true, 1
	case slack.InteractionCallback:
		n := 0
		if d.Type == slack.InteractionTypeBlockActions {
			for _, a := range d.ActionCallback.BlockActions {
				if a != nil {
					n++
				}
			}
		}
		return computebot.SourceClick, d.User.ID, n > 0, n
	case slackevents.EventsAPIEvent:
		m, ok := d.InnerEvent.Data.(*slackevents.AppMentionEvent)
		if d.Type != slackevents.CallbackEvent || !ok || m.BotID != "" || m.User == "" {
			return computebot.SourceMention, "", false, 0
		}
		return computebot.SourceMention, m.User, true, 1
	}
	return "", "", false, 0
}

// callbackEventID is the event_id of an Events API envelope, or "".
func callbackEventID(evt socketmode.Event) string {
	ev, ok := evt.Data.(slackevents.EventsAPIEvent)
	if !ok {
		return ""
	}
	if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok {
		return cb.EventID
	}
	return ""
}

// readFrame is what socketmode.Client does with one websocket text frame
// (slack-go v0.35.0, socket_mode_managed_conn.go): receiveMessagesInto
// reads it with conn.ReadJSON into a json.RawMessage (a frame that is not
// one JSON value is skipped), then runRequestHandler parses it with
// parseEvent; a parse error becomes an EventTypeErrorBadMessage event,
// which the bot gets too. A disconnect is handled inside slack-go.
func readFrame(frame []byte) (socketmode.Event, bool) {
	var raw json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(frame)).Decode(&raw); err != nil {
		return socketmode.Event{}, false
	}
	evt, err := parseEvent(raw)
	if err != nil {
		return socketmode.Event{Type: socketmode.EventTypeErrorBadMessage, Data: &socketmode.ErrorBadMessage{Cause: err, Message: raw}}, true
	}
	if evt.Type == socketmode.EventTypeDisconnect {
		return socketmode.Event{}, false
	}
	return *evt, true
}

// parseEvent mirrors socketmode.(*Client).parseEvent of slack-go v0.35.0
// (unexported there): keep it in step when slack-go is upgraded.
func parseEvent(wsMsg json.RawMessage) (*socketmode.Event, error) {
	req := &socketmode.Request{}
	if err := json.Unmarshal(wsMsg, req); err != nil {
		return nil, fmt.Errorf("unmarshalling WebSocket message: %w", err)
	}
	newEvent := func(tpe socketmode.EventType, data any) *socketmode.Event {
		return &socketmode.Event{Type: tpe, Data: data, Request: req}
	}
	switch req.Type {
	case socketmode.RequestTypeHello:
		return newEvent(socketmode.EventTypeHello, nil), nil
	case socketmode.RequestTypeEventsAPI:
		ev, err := slackevents.ParseEvent(req.Payload, slackevents.OptionNoVerifyToken())
		if err != nil {
			return nil, fmt.Errorf("parsing Events API event: %w", err)
		}
		return newEvent(socketmode.EventTypeEventsAPI, ev), nil
	case socketmode.RequestTypeDisconnect:
		return newEvent(socketmode.EventTypeDisconnect, nil), nil
	case socketmode.RequestTypeSlashCommands:
		var cmd slack.SlashCommand
		if err := json.Unmarshal(req.Payload, &cmd); err != nil {
			return nil, fmt.Errorf("parsing slash command: %w", err)
		}
		return newEvent(socketmode.EventTypeSlashCommand, cmd), nil
	case socketmode.RequestTypeInteractive:
		var cb slack.InteractionCallback
		if err := json.Unmarshal(req.Payload, &cb); err != nil {
			return nil, fmt.Errorf("parsing interaction callback: %w", err)
		}
		return newEvent(socketmode.EventTypeInteractive, cb), nil
	}
	return nil, fmt.Errorf("processing WebSocket message: encountered unsupported type %q", req.Type)
}

// newFuzzBot builds a Bot whose Chat points at nowhere (the dispatch makes
// no Web API call) and returns the socket client's queue of outgoing
// responses, where Ack puts each ack. The queue is unexported in slack-go
// (Client.socketModeResponses, 20 slots, written by the connection's sender
// when one is up); on a client that never connects, Ack blocks once it is
// full, so the test drains it after every frame.
func newFuzzBot(tb testing.TB, w Workflows) (*Bot, chan *socketmode.Response) {
	tb.Helper()
	chat := NewChat(ChatOptions{APIURL: "http://127.0.0.1:1/api/", BotToken: "xoxb-fuzz", AppToken: "xapp-fuzz"})
	b, err := New(Options{Chat: chat, Workflows: w, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	field := reflect.ValueOf(b.socket).Elem().FieldByName("socketModeResponses")
	if !field.IsValid() || field.Type() != reflect.TypeOf((chan *socketmode.Response)(nil)) {
		tb.Fatalf("socketmode.Client has no socketModeResponses chan *Response (slack-go changed?): %v", field)
	}
	acks := *(*chan *socketmode.Response)(unsafe.Pointer(field.UnsafeAddr()))
	return b, acks
}

// fuzzWorkflows records what the adapter hands on. Accept answers a slash
// command with a short reply (so that the ack's payload is exercised) and
// returns a job for everything.
type fuzzWorkflows struct {
	mu      sync.Mutex
	calls   []flow.Envelope
	submits int
	jobs    int
}

func (w *fuzzWorkflows) Accept(_ context.Context, env flow.Envelope) flow.Answer {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, env)
	w.jobs++
	ans := flow.Answer{Outcome: "accepted", Job: &flow.Job{}}
	if env.Origin.ReplyInAck {
		m := fuzzReply(env)
		ans.Reply = &m
	}
	return ans
}

func (w *fuzzWorkflows) Submit(flow.Job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.submits++
}

func (w *fuzzWorkflows) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls, w.submits, w.jobs = nil, 0, 0
}

func (w *fuzzWorkflows) recorded() ([]flow.Envelope, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]flow.Envelope(nil), w.calls...), w.submits
}

// fuzzReply is the answer the fake gives a slash command: it echoes a
// little of what was typed, odd bytes included, as a usage error would.
func fuzzReply(env flow.Envelope) reply.Message {
	text := env.Input.Text
	if len(text) > 64 {
		text = text[:64]
	}
	return reply.Plain("usage: " + env.Input.Command + " " + strings.TrimSpace(text))
}
