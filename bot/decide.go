package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

var errExpired = errors.New("approval expired")

// decide applies an Approve or Deny click.
func (b *Bot) decide(ctx context.Context, j job) {
	kind := policy.ActionApprove
	if j.kind == jobDeny {
		kind = policy.ActionDeny
	}
	actor := j.origin.user
	tell := func(text string) { b.tell(ctx, j.origin, reply.Plain(text)) }
	r, err := b.store.Request(ctx, j.requestID)
	if errors.Is(err, computebot.ErrNotFound) {
		tell(fmt.Sprintf("I don't know request `%s`; it may come from another computebot installation.", j.requestID))
		return
	}
	if err != nil {
		b.log.Error("load request", "request_id", j.requestID, "err", err)
		tell("Something went wrong on my side (internal error); please click again in a minute.")
		return
	}
	if r.State != computebot.RequestPending {
		tell(alreadyDecided(r))
		b.refreshMessage(ctx, r) // the click came from a stale message
		return
	}
	if b.now().After(r.ApprovalExpiresAt) {
		b.expire(ctx, r)
		tell(fmt.Sprintf("Request `%s` expired at %s, so it can't be %s. Nothing was done; <@%s> can ask again.",
			r.ID, reply.SlackDate(r.ApprovalExpiresAt), pastTense(kind), r.Requester))
		return
	}

	unlock := b.lockUser(r.Requester)
	defer unlock()
	d, err := b.authz.Authorize(ctx, policy.Action{Kind: kind, Actor: actor, Request: r})
	if err != nil {
		b.log.Error("authorize decision", "request_id", r.ID, "user", actor, "err", err)
	}
	if d.Verdict == policy.Deny {
		b.log.Info("click refused", "request_id", r.ID, "user", actor, "action", kind, "reason", d.Reason)
		tell(d.Reason)
		return
	}
	now := b.now()
	r, err = b.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestPending {
			return computebot.ErrConflict
		}
		if now.After(cur.ApprovalExpiresAt) {
			return errExpired
		}
		cur.State = computebot.RequestApproved
		if kind == policy.ActionDeny {
			cur.State = computebot.RequestDenied
		}
		cur.DecidedBy, cur.DecidedAt = actor, now
		if cur.MessageTS == "" {
			// The click raced the save of the message's ts: the click
			// itself says which message it came from.
			cur.MessageTS = j.origin.threadTS
		}
		return nil
	})
	switch {
	case errors.Is(err, computebot.ErrConflict):
		// Someone (or a double click) got there first.
		if cur, lerr := b.store.Request(ctx, j.requestID); lerr == nil {
			tell(alreadyDecided(cur))
		}
		return
	case errors.Is(err, errExpired):
		tell(fmt.Sprintf("Request `%s` expired; nothing was launched.", j.requestID))
		return
	case err != nil:
		b.log.Error("record decision", "request_id", j.requestID, "err", err)
		tell("I could not record your decision (internal error); please click again.")
		return
	}
	b.audit(ctx, computebot.AuditEntry{Actor: actor, Action: string(kind), RequestID: r.ID, Result: "ok"})
	b.refreshMessage(ctx, r)
	if _, err := b.chat.Post(ctx, r.ChannelID, r.MessageTS, reply.Decision(r)); err != nil {
		b.log.Error("post decision", "request_id", r.ID, "err", err)
	}
	if r.State == computebot.RequestApproved {
		b.proceed(ctx, r.ID, false)
	}
}

func pastTense(k policy.ActionKind) string {
	if k == policy.ActionDeny {
		return "denied"
	}
	return "approved"
}

func alreadyDecided(r *computebot.Request) string {
	switch r.State {
	case computebot.RequestDenied:
		return fmt.Sprintf("Request `%s` was already denied by <@%s>.", r.ID, r.DecidedBy)
	case computebot.RequestExpired:
		return fmt.Sprintf("Request `%s` has expired; <@%s> can run `/launch` again.", r.ID, r.Requester)
	case computebot.RequestRefused, computebot.RequestNew:
		return fmt.Sprintf("Request `%s` is not waiting for approval.", r.ID)
	}
	if r.AutoApproved {
		return fmt.Sprintf("Request `%s` was auto-approved by policy.", r.ID)
	}
	return fmt.Sprintf("Request `%s` was already approved by <@%s>.", r.ID, r.DecidedBy)
}

// refreshMessage re-renders the request message from the stored state.
func (b *Bot) refreshMessage(ctx context.Context, r *computebot.Request) {
	if r.MessageTS == "" {
		return
	}
	if err := b.chat.Update(ctx, r.ChannelID, r.MessageTS, reply.RequestMessage(r)); err != nil {
		b.log.Error("update request message", "request_id", r.ID, "err", err)
	}
}

// expire closes a pending request whose approval window has passed.
func (b *Bot) expire(ctx context.Context, r *computebot.Request) {
	now := b.now()
	id := r.ID
	r, err := b.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestPending || !now.After(cur.ApprovalExpiresAt) {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestExpired
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			b.log.Error("expire request", "request_id", id, "err", err)
		}
		return
	}
	b.log.Info("request expired", "request_id", r.ID)
	b.refreshMessage(ctx, r)
	if _, err := b.chat.Post(ctx, r.ChannelID, r.MessageTS, reply.Expired(r)); err != nil {
		b.log.Error("post expiry", "request_id", r.ID, "err", err)
	}
}

func (b *Bot) sweepLoop(ctx, workCtx context.Context) {
	t := time.NewTicker(b.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.sweep(workCtx)
		}
	}
}

// sweep expires pending requests nobody decided on in time.
func (b *Bot) sweep(ctx context.Context) {
	reqs, err := b.store.Requests(ctx, computebot.RequestPending)
	if err != nil {
		b.log.Error("sweep: list pending requests", "err", err)
		return
	}
	now := b.now()
	for _, r := range reqs {
		if now.After(r.ApprovalExpiresAt) {
			b.expire(ctx, r)
		}
	}
}
