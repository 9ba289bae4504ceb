package bot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// handleEvent runs on the socket loop. Envelopes are taken off the loop at
// once: each one's parse, validate, persist and ack runs in its own
// goroutine, so one envelope waiting for its disk write does not hold up
// the acks of those behind it (concurrent writes share one commit).
// Everything slow after the ack is queued for the workers.
func (b *Bot) handleEvent(ctx context.Context, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		b.log.Info("connecting to Slack")
		b.disconnected()
	case socketmode.EventTypeConnected:
		b.log.Info("connected to Slack (socket mode)")
		if b.opts.OnConnected != nil {
			b.opts.OnConnected()
		}
	case socketmode.EventTypeConnectionError:
		b.log.Warn("Slack connection error; slack-go reconnects with backoff", "err", evt.Data)
		b.disconnected()
	case socketmode.EventTypeDisconnect:
		b.log.Info("Slack asked to disconnect; reconnecting")
		b.disconnected()
	case socketmode.EventTypeInvalidAuth:
		b.log.Error("Slack refused the tokens (invalid_auth)")
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
		req := evt.Request
		if req == nil {
			return
		}
		if b.opts.OnAck != nil {
			b.received.Store(req.EnvelopeID, time.Now())
		}
		if b.opts.OnEnvelope != nil {
			b.opts.OnEnvelope(req.Type)
		}
		if req.RetryAttempt > 0 {
			b.log.Info("redelivered envelope", "envelope_id", req.EnvelopeID, "retry_attempt", req.RetryAttempt, "retry_reason", req.RetryReason)
		}
		if !b.seen.firstTime(req.EnvelopeID, b.now()) {
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
				b.onInteraction(req, data)
			case slackevents.EventsAPIEvent:
				b.onEvent(ctx, req, data)
			default:
				b.ack(req, nil)
			}
		}()
	}
}

// ack answers an envelope; payload, when set, is shown to the person who
// acted (an ephemeral slash-command response).
func (b *Bot) ack(req *socketmode.Request, payload any) {
	var err error
	if payload == nil {
		err = b.socket.Ack(*req)
	} else {
		err = b.socket.Ack(*req, payload)
	}
	if err != nil {
		b.log.Error("ack failed", "envelope_id", req.EnvelopeID, "err", err)
	}
	if b.opts.OnAck != nil {
		if t, ok := b.received.LoadAndDelete(req.EnvelopeID); ok {
			b.opts.OnAck(req.Type, time.Since(t.(time.Time)))
		}
	}
}

// ephemeral is a slash-command ack payload only the invoker sees.
func ephemeral(text string) map[string]any {
	return map[string]any{"response_type": slack.ResponseTypeEphemeral, "text": text}
}

func (b *Bot) onSlash(ctx context.Context, env *socketmode.Request, cmd slack.SlashCommand) {
	o := origin{user: cmd.UserID, channel: cmd.ChannelID, responseURL: cmd.ResponseURL}
	seed := cmd.TriggerID
	if seed == "" {
		seed = "envelope:" + env.EnvelopeID
	}
	res := commands.ParseSlash(cmd.Command, cmd.Text)
	outcome := "accepted"
	switch res.Outcome {
	case commands.Ignore:
		outcome = "ignored"
		b.ack(env, nil)
	case commands.Reply:
		outcome = "reply"
		b.ack(env, ephemeral(res.Reply))
	default:
		if text, ok := b.accept(ctx, o, seed, res.Command); ok {
			b.ack(env, nil)
		} else {
			outcome = "refused"
			b.ack(env, ephemeral(text))
		}
	}
	b.countCommand(cmd.Command, res.Command, outcome)
}

// countCommand reports a command (typed, mentioned or clicked) and what
// became of it to the OnCommand hook.
func (b *Bot) countCommand(fallback string, cmd commands.Command, outcome string) {
	if b.opts.OnCommand == nil {
		return
	}
	name := fallback
	if cmd != nil {
		name = cmd.CommandName()
		if _, help := cmd.(*commands.Help); help {
			outcome = "reply"
		}
	}
	b.opts.OnCommand(name, outcome)
}

// disconnected reports the socket going down.
func (b *Bot) disconnected() {
	if b.opts.OnDisconnected != nil {
		b.opts.OnDisconnected()
	}
}

// accept does what must happen before the ack for a parsed command: the
// checks that need no I/O, and persisting anything that must survive a
// restart. It queues the rest. A false result carries the text to answer
// with instead (a refusal or help), which never changed anything.
func (b *Bot) accept(ctx context.Context, o origin, seed string, cmd commands.Command) (string, bool) {
	switch c := cmd.(type) {
	case *commands.Help:
		return commands.HelpText(c.Topic), false
	case *commands.Launch:
		return b.acceptRequest(ctx, b.newLaunchRequest(o, seed, c))
	case *commands.LambdaInvoke:
		d, _ := b.authz.Authorize(ctx, policy.Action{Kind: policy.ActionInvoke, Actor: o.user, Function: c.Function})
		switch d.Verdict {
		case policy.Deny:
			return d.Reason, false
		case policy.NeedsApproval:
			return b.acceptRequest(ctx, b.newLambdaRequest(o, seed, c))
		}
	}
	b.enqueue(job{kind: jobCommand, origin: o, command: cmd})
	return "", true
}

// acceptRequest prechecks and persists a request that goes through approval.
func (b *Bot) acceptRequest(ctx context.Context, r *computebot.Request) (string, bool) {
	if r.Kind == computebot.KindLaunch {
		if d := b.authz.Precheck(policy.Action{Kind: policy.ActionLaunch, Actor: r.Requester, Request: r}); d.Verdict == policy.Deny {
			return d.Reason, false
		}
	}
	err := b.store.CreateRequest(ctx, r)
	switch {
	case errors.Is(err, computebot.ErrExists):
		// The same command again (Slack redelivered it): it is already
		// being handled.
		return "", true
	case err != nil:
		b.log.Error("persist request", "request_id", r.ID, "err", err)
		return "I could not save your request (internal error). Nothing changed; please try again.", false
	}
	b.log.Info("request accepted", "request_id", r.ID, "user", r.Requester, "kind", kindName(r.Kind))
	b.enqueue(job{kind: jobNewRequest, requestID: r.ID})
	return "", true
}

func kindName(k computebot.RequestKind) string {
	if k == computebot.KindLambda {
		return "lambda"
	}
	return "launch"
}

func (b *Bot) newLaunchRequest(o origin, seed string, c *commands.Launch) *computebot.Request {
	id := requestID(seed)
	lease := b.set.DefaultLease
	if c.HoursSet {
		lease = hours(c.Hours)
	}
	ami := b.set.AMI
	if c.AMI != "" {
		ami = c.AMI
	}
	name := c.Name
	if name == "" {
		name = "computebot-" + strings.ToLower(id)
	}
	return &computebot.Request{
		ID:           id,
		Requester:    o.user,
		ChannelID:    o.channel,
		ResponseURL:  o.responseURL,
		InstanceType: c.InstanceType,
		ImageRef:     ami,
		Name:         name,
		Reason:       c.Reason,
		Lease:        lease,
		State:        computebot.RequestNew,
		CreatedAt:    b.now(),
	}
}

func (b *Bot) newLambdaRequest(o origin, seed string, c *commands.LambdaInvoke) *computebot.Request {
	return &computebot.Request{
		ID:          requestID(seed),
		Kind:        computebot.KindLambda,
		Requester:   o.user,
		ChannelID:   o.channel,
		ResponseURL: o.responseURL,
		Function:    c.Function,
		Payload:     c.Payload,
		Async:       c.Async,
		State:       computebot.RequestNew,
		CreatedAt:   b.now(),
	}
}

// requestID derives a short, readable ID from what Slack sends identically
// on redelivery and uniquely per invocation (a slash command's trigger_id,
// an event's event_id): the same command delivered twice maps to the same
// request.
func requestID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ" // no 0/O, 1/I
	var out [8]byte
	for i := range out {
		out[i] = alphabet[sum[i]&31]
	}
	return "R-" + string(out[:])
}

// onInteraction acks a button click at once and queues what it asks for.
// A button's value carries its command, so clicks go down the same pipeline
// as typed commands; the clicker, not the message's author, is authorized.
func (b *Bot) onInteraction(env *socketmode.Request, cb slack.InteractionCallback) {
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
		o := origin{user: cb.User.ID, channel: channel, threadTS: cb.Container.ThreadTs, responseURL: cb.ResponseURL}
		switch a.ActionID {
		case reply.ActionApprove, reply.ActionDeny:
			kind := jobApprove
			if a.ActionID == reply.ActionDeny {
				kind = jobDeny
			}
			// The clicked message is the request message: its ts is the
			// request's thread.
			o.threadTS = cb.Container.MessageTs
			b.countCommand(a.ActionID, nil, "accepted")
			b.enqueue(job{kind: kind, requestID: a.Value, origin: o})
		default:
			cmd, err := clickCommand(a.ActionID, a.Value)
			if err != nil {
				b.log.Info("ignoring click", "action_id", a.ActionID, "err", err)
				continue
			}
			b.countCommand(a.ActionID, cmd, "accepted")
			b.enqueue(job{kind: jobCommand, origin: o, command: cmd})
		}
	}
}

// pageCommand asks for another page of a list.
type pageCommand struct {
	list   string // "instances" or "lambda"
	all    bool
	offset int
}

func (pageCommand) CommandName() string { return "page" }

// clickCommand turns a button's action ID and value into the command it
// stands for.
func clickCommand(actionID, value string) (commands.Command, error) {
	switch actionID {
	case reply.ActionStop:
		return &commands.Stop{Target: value}, nil
	case reply.ActionStart:
		return &commands.Start{Target: value}, nil
	case reply.ActionTerminate:
		return &commands.Terminate{Target: value}, nil
	case reply.ActionExtend:
		id, h, ok := strings.Cut(value, "|")
		n, err := strconv.Atoi(h)
		if !ok || err != nil || n < 1 {
			return nil, fmt.Errorf("bad extend value %q", value)
		}
		return &commands.Extend{Target: id, Hours: n}, nil
	case reply.ActionKeepRunning:
		return keepCommand{instanceID: value}, nil
	case reply.ActionStopNow:
		return stopNowCommand{instanceID: value}, nil
	case reply.ActionPage:
		parts := strings.Split(value, "|")
		if len(parts) != 3 {
			return nil, fmt.Errorf("bad page value %q", value)
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad page offset %q", value)
		}
		return pageCommand{list: parts[0], all: parts[1] == "all", offset: n}, nil
	}
	return nil, fmt.Errorf("unknown action %q", actionID)
}

// onEvent handles Events API envelopes: app mentions run commands like
// slash commands do, answered in the thread they were typed in.
func (b *Bot) onEvent(ctx context.Context, env *socketmode.Request, ev slackevents.EventsAPIEvent) {
	mention, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent)
	if ev.Type != slackevents.CallbackEvent || !ok || mention.BotID != "" || mention.User == "" {
		b.ack(env, nil)
		return
	}
	seed := "envelope:" + env.EnvelopeID
	if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok && cb.EventID != "" {
		seed = "event:" + cb.EventID
	}
	thread := mention.ThreadTimeStamp
	if thread == "" {
		thread = mention.TimeStamp // answer in a thread under the mention
	}
	o := origin{user: mention.User, channel: mention.Channel, threadTS: thread}
	res := commands.ParseText(mention.Text)
	var text string
	outcome := "accepted"
	defer func() { b.countCommand("mention", res.Command, outcome) }()
	switch res.Outcome {
	case commands.Ignore:
		outcome = "ignored"
	case commands.Reply:
		text, outcome = res.Reply, "reply"
	default:
		if cmd, ok := res.Command.(*commands.Status); ok {
			o.threadTS = mention.ThreadTimeStamp // status is about the thread it is asked in
			b.enqueue(job{kind: jobCommand, origin: o, command: cmd})
			break
		}
		if t, ok := b.accept(ctx, o, seed, res.Command); !ok {
			text, outcome = t, "refused"
		}
	}
	b.ack(env, nil)
	if text != "" {
		// Events have no ack payload: the answer is an ephemeral message,
		// which is a Slack call, so it waits for a worker.
		b.enqueue(job{kind: jobTell, origin: o, text: text})
	}
}

func hours(n int) time.Duration { return time.Duration(n) * time.Hour }
