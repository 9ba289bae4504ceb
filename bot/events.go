package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/internal/crash"
	"github.com/computebot/computebot/reply"
)

// handleEvent runs on the socket loop. Envelopes are taken off the loop at
// once: each one's parse, persist and ack runs in its own goroutine, so one
// envelope waiting for its disk write does not hold up the acks of those
// behind it (concurrent writes share one commit).
func (b *Bot) handleEvent(ctx context.Context, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		b.log.Info("connecting to Slack")
		b.observer.Disconnected()
	case socketmode.EventTypeConnected:
		b.log.Info("connected to Slack (socket mode)")
		b.observer.Connected()
	case socketmode.EventTypeConnectionError:
		b.log.Warn("Slack connection error; slack-go reconnects with backoff", "err", evt.Data)
		b.observer.Disconnected()
	case socketmode.EventTypeDisconnect:
		b.log.Info("Slack asked to disconnect; reconnecting")
		b.observer.Disconnected()
	case socketmode.EventTypeInvalidAuth:
		b.log.Error("Slack refused the tokens (invalid_auth)")
	case socketmode.EventTypeErrorBadMessage:
		b.ackUnreadable(evt.Data)
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
		req := evt.Request
		if req == nil {
			return
		}
		b.received.Store(req.EnvelopeID, time.Now())
		b.observer.Envelope(req.Type)
		if req.RetryAttempt > 0 {
			b.log.Info("redelivered envelope", "envelope_id", req.EnvelopeID, "retry_attempt", req.RetryAttempt, "retry_reason", req.RetryReason)
		}
		b.acking <- struct{}{} // bounds envelopes in flight before their ack
		b.inflight.Add(1)
		go func() {
			defer func() { <-b.acking; b.inflight.Done() }()
			switch data := evt.Data.(type) {
			case slack.SlashCommand:
				b.onSlash(ctx, req, data)
			case slack.InteractionCallback:
				b.onInteraction(ctx, req, data)
			case slackevents.EventsAPIEvent:
				b.onEvent(ctx, req, data)
			default:
				b.ack(req, nil)
			}
		}()
	}
}

// ackTimeout bounds handing an ack to the socket: Slack redelivers an
// envelope not acked within 3 s anyway.
const ackTimeout = 3 * time.Second

// ackUnreadable acks a frame slack-go could not parse (a payload shape it
// does not know): redelivering it would fail the same way, three more
// times. Only its envelope ID and type are logged: a payload can carry a
// verification token.
func (b *Bot) ackUnreadable(data any) {
	bad, ok := data.(*socketmode.ErrorBadMessage)
	if !ok {
		return
	}
	// Read apart: a type of the wrong shape must not lose the ID.
	var id struct {
		EnvelopeID string `json:"envelope_id"`
	}
	var typ struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(bad.Message, &id) != nil || id.EnvelopeID == "" {
		b.log.Warn("unreadable frame from Slack without an envelope ID", "cause", bad.Cause)
		return
	}
	_ = json.Unmarshal(bad.Message, &typ) // for the log only
	b.log.Warn("unreadable envelope from Slack; acked so it is not redelivered", "envelope_id", id.EnvelopeID, "type", typ.Type, "cause", bad.Cause)
	b.ack(&socketmode.Request{EnvelopeID: id.EnvelopeID, Type: typ.Type}, nil)
}

// ack answers an envelope; m, when set, is shown to the person who acted
// (an ephemeral slash-command response).
func (b *Bot) ack(req *socketmode.Request, m *reply.Message) {
	var payload any
	if m != nil {
		payload = map[string]any{"response_type": slack.ResponseTypeEphemeral, "text": Text(m.Text)}
	}
	b.ackPayload(req, payload)
}

// ackPayload answers an envelope with payload (nil for an empty ack).
func (b *Bot) ackPayload(req *socketmode.Request, payload any) {
	// The ack waits for the socket's sender; past Slack's 3 s deadline it
	// is worthless (the envelope is redelivered), so it is not awaited
	// longer than that.
	actx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	err := b.socket.AckCtx(actx, req.EnvelopeID, payload)
	cancel()
	if err != nil {
		b.log.Error("ack failed", "envelope_id", req.EnvelopeID, "err", err)
	}
	crash.Point("ack:" + req.Type)
	if t, ok := b.received.LoadAndDelete(req.EnvelopeID); ok {
		b.observer.Ack(req.Type, time.Since(t.(time.Time)))
	}
}

// accept hands an envelope to the workflows (which persist it before
// anything else), acks it with their quick answer, queues their job and
// counts the command. A redelivered envelope gets the same answer and is
// not counted again.
func (b *Bot) accept(ctx context.Context, req *socketmode.Request, env flow.Envelope, name string) {
	ans := b.flow.Accept(ctx, env)
	b.ack(req, ans.Reply)
	if ans.Job != nil {
		b.flow.Submit(*ans.Job)
	}
	if ans.Outcome == "duplicate" {
		return
	}
	if ans.Command != "" {
		name = ans.Command
	}
	b.observer.Command(name, ans.Outcome)
}

func (b *Bot) onSlash(ctx context.Context, req *socketmode.Request, cmd slack.SlashCommand) {
	trigger := cmd.TriggerID
	if trigger == "" && req.EnvelopeID != "" {
		trigger = "envelope:" + req.EnvelopeID
	}
	b.accept(ctx, req, flow.Envelope{
		ID:     req.EnvelopeID,
		Origin: flow.Origin{User: cmd.UserID, Channel: cmd.ChannelID, ResponseURL: cmd.ResponseURL, Trigger: trigger, ReplyInAck: true},
		Input:  flow.Input{Source: computebot.SourceSlash, Command: cmd.Command, Text: typedText(cmd.Text)},
	}, cmd.Command)
}

// onInteraction hands on a button click; its ack carries nothing (Slack
// shows no ack payload for clicks), answers come after it.
func (b *Bot) onInteraction(ctx context.Context, req *socketmode.Request, cb slack.InteractionCallback) {
	switch cb.Type {
	case slack.InteractionTypeViewSubmission:
		b.onSubmission(ctx, req, cb)
		return
	case slack.InteractionTypeShortcut:
		if cb.CallbackID != reply.ActionOpenLaunchForm {
			b.ack(req, nil)
			return
		}
		o := flow.Origin{User: cb.User.ID, Trigger: cb.TriggerID}
		b.accept(ctx, req, flow.Envelope{ID: req.EnvelopeID, Origin: o,
			Input: flow.Input{Source: computebot.SourceClick, ActionID: reply.ActionOpenLaunchForm}}, "shortcut")
		return
	}
	var actions []*slack.BlockAction
	if cb.Type == slack.InteractionTypeBlockActions {
		actions = cb.ActionCallback.BlockActions
	}
	if len(actions) == 0 {
		b.ack(req, nil)
		return
	}
	channel := cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	// One intent per action (Slack sends one per click); the first takes
	// the envelope's ID, so a redelivery is recognised.
	for i, a := range actions {
		if a == nil {
			continue
		}
		id := req.EnvelopeID
		if i > 0 && id != "" {
			id = fmt.Sprintf("%s/%d", id, i)
		}
		o := flow.Origin{User: cb.User.ID, Channel: channel, ThreadTS: cb.Container.ThreadTs, ResponseURL: cb.ResponseURL}
		if cb.Container.Type == "view" {
			// A click on the home tab or in a form: its trigger may open
			// the form; answers go by DM (there is no channel).
			o.Trigger = cb.TriggerID
		}
		if a.ActionID == reply.ActionApprove || a.ActionID == reply.ActionDeny {
			// The clicked message is the request message: its ts is the
			// request's thread.
			o.ThreadTS = cb.Container.MessageTs
		}
		env := flow.Envelope{ID: id, Origin: o, Input: flow.Input{Source: computebot.SourceClick, ActionID: a.ActionID,
			Value: a.Value, MessageTS: cb.Container.MessageTs}}
		if i == 0 {
			b.accept(ctx, req, env, a.ActionID)
			continue
		}
		ans := b.flow.Accept(ctx, env)
		if ans.Job != nil {
			b.flow.Submit(*ans.Job)
		}
	}
}

// onSubmission hands a submitted form to the workflows; their field errors
// travel back in the ack (the form stays open showing them), and an empty
// ack closes the form.
func (b *Bot) onSubmission(ctx context.Context, req *socketmode.Request, cb slack.InteractionCallback) {
	if cb.View.CallbackID != reply.LaunchFormCallback {
		b.ack(req, nil) // not a form of ours: closes it
		return
	}
	values := map[string]string{}
	for block, byAction := range cb.View.State.Values {
		for _, a := range byAction {
			values[block] = FieldValue(a)
		}
	}
	channel := cb.View.PrivateMetadata // where /launch was typed
	if ch := values[commands.FieldChannel]; ch != "" {
		channel = ch
	}
	env := flow.Envelope{ID: req.EnvelopeID, Origin: flow.Origin{User: cb.User.ID, Channel: channel, Trigger: cb.TriggerID},
		Input: flow.FormInput(cb.View.CallbackID, values)}
	ans := b.flow.Accept(ctx, env)
	var payload any
	if len(ans.FieldErrors) > 0 {
		errs := map[string]string{}
		for field, msg := range ans.FieldErrors {
			errs[field] = reply.Clip(reply.PlainText(msg), 150)
		}
		payload = slack.NewErrorsViewSubmissionResponse(errs)
	}
	b.ackPayload(req, payload)
	if ans.Job != nil {
		b.flow.Submit(*ans.Job)
	}
	if ans.Outcome != "duplicate" {
		b.observer.Command("launch form", ans.Outcome)
	}
}

// onEvent handles Events API envelopes: app mentions run commands like
// slash commands do, answered in the thread they were typed in.
func (b *Bot) onEvent(ctx context.Context, req *socketmode.Request, ev slackevents.EventsAPIEvent) {
	if home, ok := ev.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent); ok && ev.Type == slackevents.CallbackEvent {
		b.ack(req, nil)
		if home.Tab == "home" && home.User != "" {
			b.flow.Submit(flow.HomeJob(home.User))
		}
		return
	}
	mention, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent)
	if ev.Type != slackevents.CallbackEvent || !ok || mention.BotID != "" || mention.User == "" {
		b.ack(req, nil)
		return
	}
	// An event's retries share its event_id, whatever envelope carries
	// them: the event, not the envelope, is the delivery to recognise.
	id, trigger := req.EnvelopeID, ""
	if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok && cb.EventID != "" {
		id = "event:" + cb.EventID
		trigger = id
	} else if req.EnvelopeID != "" {
		trigger = "envelope:" + req.EnvelopeID
	}
	text := mentionText(mention.Text)
	thread := mention.ThreadTimeStamp
	if _, status := commands.ParseText(text).Command.(*commands.Status); !status && thread == "" {
		thread = mention.TimeStamp // answer in a thread under the mention
	}
	// status is about the thread it is asked in, so it keeps "" at top level.
	b.accept(ctx, req, flow.Envelope{
		ID:     id,
		Origin: flow.Origin{User: mention.User, Channel: mention.Channel, ThreadTS: thread, Trigger: trigger},
		Input:  flow.Input{Source: computebot.SourceMention, Text: text},
	}, "mention")
}
