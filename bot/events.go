package bot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
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
	case socketmode.EventTypeConnected:
		b.log.Info("connected to Slack (socket mode)")
		if b.opts.OnConnected != nil {
			b.opts.OnConnected()
		}
	case socketmode.EventTypeConnectionError:
		b.log.Warn("Slack connection error; slack-go reconnects with backoff", "err", evt.Data)
	case socketmode.EventTypeInvalidAuth:
		b.log.Error("Slack refused the tokens (invalid_auth)")
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
		req := evt.Request
		if req == nil {
			return
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
}

// ephemeral is a slash-command ack payload only the invoker sees.
func ephemeral(text string) map[string]any {
	return map[string]any{"response_type": slack.ResponseTypeEphemeral, "text": text}
}

func (b *Bot) onSlash(ctx context.Context, req *socketmode.Request, cmd slack.SlashCommand) {
	res := commands.ParseSlash(cmd.Command, cmd.Text)
	switch res.Outcome {
	case commands.Ignore:
		b.ack(req, nil)
		return
	case commands.Reply:
		b.ack(req, ephemeral(res.Reply))
		return
	}
	switch c := res.Command.(type) {
	case *commands.Help:
		b.ack(req, ephemeral(commands.HelpText(c.Topic)))
	case *commands.Launch:
		b.acceptLaunch(ctx, req, cmd, c)
	default:
		b.ack(req, ephemeral(fmt.Sprintf("`%s` is not available yet. Try `/computebot help`.", strings.TrimSpace(cmd.Command+" "+cmd.Text))))
	}
}

// acceptLaunch validates a /launch without I/O, persists it and acks.
func (b *Bot) acceptLaunch(ctx context.Context, env *socketmode.Request, cmd slack.SlashCommand, c *commands.Launch) {
	r := b.newRequest(cmd, env.EnvelopeID, c)
	if d := b.authz.Precheck(policy.Action{Kind: policy.ActionLaunch, Actor: cmd.UserID, Request: r}); d.Verdict == policy.Deny {
		b.ack(env, ephemeral(d.Reason))
		return
	}
	err := b.store.CreateRequest(ctx, r)
	switch {
	case errors.Is(err, computebot.ErrExists):
		// The same slash command again (Slack redelivered it): it is already
		// being handled.
		b.ack(env, nil)
		return
	case err != nil:
		b.log.Error("persist request", "request_id", r.ID, "err", err)
		b.ack(env, ephemeral("I could not save your request (internal error). Nothing was launched; please try again."))
		return
	}
	b.ack(env, nil)
	b.log.Info("launch requested", "request_id", r.ID, "user", r.Requester, "type", r.InstanceType)
	b.enqueue(job{kind: jobNewRequest, requestID: r.ID})
}

func (b *Bot) newRequest(cmd slack.SlashCommand, envelopeID string, c *commands.Launch) *computebot.Request {
	id := requestID(cmd.TriggerID, envelopeID)
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
		Requester:    cmd.UserID,
		ChannelID:    cmd.ChannelID,
		ResponseURL:  cmd.ResponseURL,
		InstanceType: c.InstanceType,
		ImageRef:     ami,
		Name:         name,
		Reason:       c.Reason,
		Lease:        lease,
		State:        computebot.RequestNew,
		CreatedAt:    b.now(),
	}
}

// requestID derives a short, readable ID from Slack's trigger_id, which is
// unique per invocation and identical on redelivery: the same slash command
// delivered twice maps to the same request.
func requestID(triggerID, envelopeID string) string {
	seed := triggerID
	if seed == "" {
		seed = "envelope:" + envelopeID
	}
	sum := sha256.Sum256([]byte(seed))
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ" // no 0/O, 1/I
	var out [8]byte
	for i := range out {
		out[i] = alphabet[sum[i]&31]
	}
	return "R-" + string(out[:])
}

// onInteraction acks a button click at once and queues the decision. The
// clicker, not the message's author, is who gets authorized.
func (b *Bot) onInteraction(env *socketmode.Request, cb slack.InteractionCallback) {
	b.ack(env, nil)
	if cb.Type != slack.InteractionTypeBlockActions {
		return
	}
	for _, a := range cb.ActionCallback.BlockActions {
		if a == nil {
			continue
		}
		var kind jobKind
		switch a.ActionID {
		case reply.ActionApprove:
			kind = jobApprove
		case reply.ActionDeny:
			kind = jobDeny
		default:
			b.log.Info("ignoring unknown action", "action_id", a.ActionID)
			continue
		}
		channel := cb.Channel.ID
		if channel == "" {
			channel = cb.Container.ChannelID
		}
		b.enqueue(job{
			kind:      kind,
			requestID: a.Value,
			actor:     cb.User.ID,
			channel:   channel,
			threadTS:  cb.Container.MessageTs,
		})
	}
}

func hours(n int) time.Duration { return time.Duration(n) * time.Hour }
