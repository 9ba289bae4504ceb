package bot

import (
	"context"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/flow"
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
		if !b.seen.firstTime(req.EnvelopeID, time.Now()) {
			// Already acted on: ack again so Slack stops retrying.
			b.ack(req, nil)
			return
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

// ack answers an envelope; m, when set, is shown to the person who acted
// (an ephemeral slash-command response).
func (b *Bot) ack(req *socketmode.Request, m *reply.Message) {
	var err error
	if m == nil {
		err = b.socket.Ack(*req)
	} else {
		err = b.socket.Ack(*req, map[string]any{"response_type": slack.ResponseTypeEphemeral, "text": Text(m.Text)})
	}
	if err != nil {
		b.log.Error("ack failed", "envelope_id", req.EnvelopeID, "err", err)
	}
	if t, ok := b.received.LoadAndDelete(req.EnvelopeID); ok {
		b.observer.Ack(req.Type, time.Since(t.(time.Time)))
	}
}

// accept hands a parsed command to the workflows, acks with their quick
// answer, queues their job and counts the command.
func (b *Bot) accept(ctx context.Context, env *socketmode.Request, o flow.Origin, name string, res commands.Result) {
	var ans flow.Answer
	switch res.Outcome {
	case commands.Ignore:
		ans.Outcome = "ignored"
	case commands.Reply:
		m := reply.Plain(res.Reply)
		ans = flow.Answer{Reply: &m, Outcome: "reply"}
		if !o.ReplyInAck {
			ans = flow.Answer{Job: jobOf(flow.Tell(o, m)), Outcome: "reply"}
		}
	default:
		ans = b.flow.Accept(ctx, o, res.Command)
		name = res.Command.CommandName()
	}
	if o.ReplyInAck {
		b.ack(env, ans.Reply)
	} else {
		b.ack(env, nil)
	}
	if ans.Job != nil {
		b.flow.Submit(*ans.Job)
	}
	b.observer.Command(name, ans.Outcome)
}

func jobOf(j flow.Job) *flow.Job { return &j }

func (b *Bot) onSlash(ctx context.Context, env *socketmode.Request, cmd slack.SlashCommand) {
	trigger := cmd.TriggerID
	if trigger == "" {
		trigger = "envelope:" + env.EnvelopeID
	}
	o := flow.Origin{User: cmd.UserID, Channel: cmd.ChannelID, ResponseURL: cmd.ResponseURL, Trigger: trigger, ReplyInAck: true}
	b.accept(ctx, env, o, cmd.Command, commands.ParseSlash(cmd.Command, typedText(cmd.Text)))
}

// onInteraction acks a button click at once and hands on what it asks for.
func (b *Bot) onInteraction(ctx context.Context, env *socketmode.Request, cb slack.InteractionCallback) {
	b.ack(env, nil)
	if cb.Type != slack.InteractionTypeBlockActions {
		return
	}
	channel := cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	for _, a := range cb.ActionCallback.BlockActions {
		if a == nil {
			continue
		}
		cmd, err := flow.Click(a.ActionID, a.Value, cb.Container.MessageTs)
		if err != nil {
			b.log.Info("ignoring click", "action_id", a.ActionID, "err", err)
			continue
		}
		o := flow.Origin{User: cb.User.ID, Channel: channel, ThreadTS: cb.Container.ThreadTs, ResponseURL: cb.ResponseURL,
			Trigger: "click:" + cb.TriggerID}
		if a.ActionID == reply.ActionApprove || a.ActionID == reply.ActionDeny {
			// The clicked message is the request message: its ts is the
			// request's thread.
			o.ThreadTS = cb.Container.MessageTs
		}
		ans := b.flow.Accept(ctx, o, cmd)
		if ans.Job != nil {
			b.flow.Submit(*ans.Job)
		}
		b.observer.Command(cmd.CommandName(), ans.Outcome)
	}
}

// onEvent handles Events API envelopes: app mentions run commands like
// slash commands do, answered in the thread they were typed in.
func (b *Bot) onEvent(ctx context.Context, env *socketmode.Request, ev slackevents.EventsAPIEvent) {
	mention, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent)
	if ev.Type != slackevents.CallbackEvent || !ok || mention.BotID != "" || mention.User == "" {
		b.ack(env, nil)
		return
	}
	trigger := "envelope:" + env.EnvelopeID
	if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok && cb.EventID != "" {
		trigger = "event:" + cb.EventID
	}
	res := commands.ParseText(mentionText(mention.Text))
	thread := mention.ThreadTimeStamp
	if _, status := res.Command.(*commands.Status); !status && thread == "" {
		thread = mention.TimeStamp // answer in a thread under the mention
	}
	// status is about the thread it is asked in, so it keeps "" at top level.
	o := flow.Origin{User: mention.User, Channel: mention.Channel, ThreadTS: thread, Trigger: trigger}
	b.accept(ctx, env, o, "mention", res)
}

// envelopeSet remembers recently seen envelope IDs so a redelivered envelope
// is acked again but not acted on twice. Memory is enough here: request IDs
// are derived from Slack's trigger_id, so a redelivery after a restart still
// finds the stored request.
type envelopeSet struct {
	mu   sync.Mutex
	ttl  time.Duration
	seen map[string]time.Time
	last time.Time
}

func newEnvelopeSet(ttl time.Duration) *envelopeSet {
	return &envelopeSet{ttl: ttl, seen: map[string]time.Time{}}
}

// firstTime records id and reports whether it had not been seen.
func (s *envelopeSet) firstTime(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.last) > time.Minute {
		for k, t := range s.seen {
			if now.Sub(t) > s.ttl {
				delete(s.seen, k)
			}
		}
		s.last = now
	}
	if _, ok := s.seen[id]; ok {
		return false
	}
	s.seen[id] = now
	return true
}
