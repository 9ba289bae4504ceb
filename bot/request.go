package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// refuse tells the requester why, privately, and closes the request.
func (b *Bot) refuse(ctx context.Context, r *computebot.Request, reason string) {
	b.log.Info("request refused", "request_id", r.ID, "user", r.Requester, "reason", reason)
	b.tell(ctx, originOf(r), reply.Plain(reason))
	_, err := b.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestNew {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestRefused
		cur.Failure = reason
		return nil
	})
	if err != nil {
		b.log.Error("mark request refused", "request_id", r.ID, "err", err)
	}
}

// postRequest authorizes a new request, looks up what the message shows,
// records it as pending (or approved, when auto-approved) and posts it.
// The state is saved before the message goes out, so a click arriving right
// after the post always finds the request approvable; a request whose post
// never happened (a crash in between) is posted on the next start.
func (b *Bot) postRequest(ctx context.Context, id string) {
	r, err := b.store.Request(ctx, id)
	if err != nil {
		b.log.Error("load request", "request_id", id, "err", err)
		return
	}
	if r.State == computebot.RequestNew {
		if r = b.admit(ctx, r); r == nil {
			return
		}
	}
	if r.MessageTS != "" || r.State.Terminal() {
		return
	}

	ts, err := b.chat.Post(ctx, r.ChannelID, "", reply.RequestMessage(r))
	if err != nil {
		b.log.Error("post request message", "request_id", id, "err", err)
		reason := "I could not post your request in this channel, so nothing was launched. Please try again."
		if strings.Contains(err.Error(), "not_in_channel") || strings.Contains(err.Error(), "channel_not_found") {
			reason = "I can't post in this channel: invite me first (`/invite @computebot`), then run the command again. Nothing was launched."
		}
		b.withdraw(ctx, r, reason)
		return
	}
	r, err = b.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.MessageTS == "" {
			cur.MessageTS = ts
		}
		return nil
	})
	if err != nil {
		b.log.Error("save request message", "request_id", id, "err", err)
		return
	}
	switch {
	case r.State == computebot.RequestApproved && r.AutoApproved:
		b.launch(ctx, r.ID, false)
	case r.State == computebot.RequestPending:
		if _, err := b.chat.Post(ctx, r.ChannelID, r.MessageTS, reply.ApproversNote(r, b.authz.ApproverMentions(), b.set.AllowSelfApproval)); err != nil {
			b.log.Error("post approvers note", "request_id", id, "err", err)
		}
	default:
		// Decided while the message was going out (a very fast click,
		// whose handler launches): show the decision, not the buttons.
		b.refreshMessage(ctx, r)
	}
}

// admit authorizes a new request and fills in what the message shows. It
// returns the pending or approved request, or nil when it was refused.
func (b *Bot) admit(ctx context.Context, r *computebot.Request) *computebot.Request {
	if r.Kind == computebot.KindLambda {
		return b.admitLambda(ctx, r)
	}
	unlock := b.lockUser(r.Requester)
	d, err := b.authz.Authorize(ctx, policy.Action{Kind: policy.ActionLaunch, Actor: r.Requester, Request: r})
	unlock()
	if err != nil {
		b.log.Error("authorize launch", "request_id", r.ID, "err", err)
	}
	if d.Verdict == policy.Deny {
		b.refuse(ctx, r, d.Reason)
		return nil
	}

	actx, cancel := b.awsCtx(ctx)
	defer cancel()
	it, err := b.cloud.InstanceType(actx, r.InstanceType)
	if err != nil {
		b.refuse(ctx, r, fmt.Sprintf("I could not look up `%s`: %s Nothing was launched.", r.InstanceType, computebot.UserMessage(err)))
		return nil
	}
	img, err := b.cloud.ResolveImage(actx, r.ImageRef)
	if err != nil {
		b.refuse(ctx, r, fmt.Sprintf("I could not use AMI `%s`: %s Nothing was launched.", r.ImageRef, computebot.UserMessage(err)))
		return nil
	}
	price, priceKnown := b.price(actx, r.InstanceType)

	auto := d.Verdict == policy.Allow
	r = b.settleNew(ctx, r.ID, auto, func(cur *computebot.Request) {
		cur.VCPUs, cur.MemoryMiB = it.VCPUs, it.MemoryMiB
		cur.ImageID, cur.ImageName, cur.ImageRoot = img.ID, img.Name, img.RootDeviceName
		cur.PricePerHour, cur.PriceKnown = price, priceKnown
	})
	if r == nil {
		return nil
	}
	if auto {
		b.audit(ctx, computebot.AuditEntry{Actor: "policy", Action: "approve", RequestID: r.ID, Result: "ok", Detail: "auto-approved type " + r.InstanceType})
	}
	return r
}

// settleNew moves a new request to approved (auto) or pending with its
// approval window, after fill adds what the admission looked up. nil when
// the request was no longer new or the write failed.
func (b *Bot) settleNew(ctx context.Context, id string, auto bool, fill func(*computebot.Request)) *computebot.Request {
	now := b.now()
	r, err := b.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestNew {
			return computebot.ErrConflict
		}
		if fill != nil {
			fill(cur)
		}
		if auto {
			cur.State, cur.AutoApproved, cur.DecidedAt = computebot.RequestApproved, true, now
		} else {
			cur.State, cur.ApprovalExpiresAt = computebot.RequestPending, now.Add(b.set.ApprovalTTL)
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			b.log.Error("save admitted request", "request_id", id, "err", err)
		}
		return nil
	}
	return r
}

// withdraw closes a request whose message could not be posted.
func (b *Bot) withdraw(ctx context.Context, r *computebot.Request, reason string) {
	b.tell(ctx, originOf(r), reply.Plain(reason))
	_, err := b.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.MessageTS != "" || (cur.State != computebot.RequestPending && cur.State != computebot.RequestApproved) {
			return computebot.ErrConflict
		}
		cur.State, cur.Failure = computebot.RequestRefused, reason
		return nil
	})
	if err != nil {
		b.log.Error("withdraw request", "request_id", r.ID, "err", err)
	}
}

// price answers from the configured overrides first (negotiated rates),
// then the Pricing API; false when neither knows.
func (b *Bot) price(ctx context.Context, instanceType string) (float64, bool) {
	if p, ok := b.set.Prices[instanceType]; ok {
		return p, true
	}
	p, err := b.cloud.HourlyPrice(ctx, instanceType)
	if err != nil {
		if !errors.Is(err, computebot.ErrPriceUnknown) {
			b.log.Warn("price lookup failed; showing price unknown", "type", instanceType, "err", err)
		}
		return 0, false
	}
	return p, true
}
