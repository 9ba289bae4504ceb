package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// IdleScheduler is what the bot needs from the idle scheduler: the buttons
// on a notice and the approvers' report.
type IdleScheduler interface {
	Keep(ctx context.Context, instanceID, actor string) (idle.Notice, error)
	StopNow(ctx context.Context, instanceID, actor string) (idle.Notice, error)
	Report(ctx context.Context) (idle.Report, error)
}

// SetIdle connects the scheduler (it is built after the bot, since the bot
// is its Notifier).
func (b *Bot) SetIdle(s IdleScheduler) { b.idle = s }

// keepCommand and stopNowCommand are the notice's buttons.
type keepCommand struct{ instanceID string }
type stopNowCommand struct{ instanceID string }

func (keepCommand) CommandName() string    { return "keep running" }
func (stopNowCommand) CommandName() string { return "stop now" }

// onNoticeButton authorizes the clicker (owner or approver, like any other
// action on the instance) and hands the click to the scheduler.
func (b *Bot) onNoticeButton(ctx context.Context, o origin, instanceID string, keep bool) {
	if b.idle == nil {
		b.tell(ctx, o, reply.Plain("The idle scheduler is not running."))
		return
	}
	kind := policy.ActionStop
	if keep {
		kind = policy.ActionKeep
	}
	inst, refusal := b.resolveTarget(ctx, o, instanceID)
	if refusal != "" {
		b.tell(ctx, o, reply.Plain(refusal))
		return
	}
	d, err := b.authz.Authorize(ctx, policy.Action{Kind: kind, Actor: o.user, Instance: &inst})
	if d.Verdict != policy.Allow {
		if err != nil {
			b.log.Error("authorize notice button", "instance", inst.ID, "err", err)
		}
		b.tell(ctx, o, reply.Plain(d.Reason))
		return
	}
	var n idle.Notice
	if keep {
		n, err = b.idle.Keep(ctx, inst.ID, o.user)
	} else {
		n, err = b.idle.StopNow(ctx, inst.ID, o.user)
	}
	if err != nil {
		b.log.Error("notice button", "instance", inst.ID, "keep", keep, "err", err)
		b.tell(ctx, o, reply.Plain(fmt.Sprintf("That did not work: %s", computebot.UserMessage(err))))
		return
	}
	b.log.Info("notice button", "instance", inst.ID, "user", o.user, "keep", keep, "state", n.State)
}

// idleReport answers /computebot idle (approvers).
func (b *Bot) idleReport(ctx context.Context, o origin) {
	d, err := b.authz.Authorize(ctx, policy.Action{Kind: policy.ActionIdleReport, Actor: o.user})
	if d.Verdict != policy.Allow {
		if err != nil {
			b.log.Error("authorize idle report", "err", err)
		}
		b.tell(ctx, o, reply.Plain(d.Reason))
		return
	}
	if b.idle == nil {
		b.tell(ctx, o, reply.Plain("The idle scheduler is not running."))
		return
	}
	rep, err := b.idle.Report(ctx)
	if err != nil {
		b.log.Error("idle report", "err", err)
		b.tell(ctx, o, reply.Plain("I could not build the idle report: "+computebot.UserMessage(err)))
		return
	}
	b.tell(ctx, o, reply.IdleReport(rep, b.now()))
}

// PostNotice posts an idle or lease notice: in the instance's request
// thread, else a DM to the owner, else notify_channel. Posts are paced per
// channel so a burst of notices stays under Slack's rate limit.
func (b *Bot) PostNotice(ctx context.Context, n idle.Notice) (string, string, error) {
	msg := reply.IdleNotice(n)
	channel, thread := n.RequestChannel, n.RequestThread
	var tried []string
	try := func(ch, th string) (string, string, error) {
		if err := b.pace.wait(ctx, ch); err != nil {
			return "", "", err
		}
		ts, err := b.chat.Post(ctx, ch, th, msg)
		if err != nil {
			tried = append(tried, ch+": "+err.Error())
			return "", "", err
		}
		return ch, ts, nil
	}
	if channel != "" {
		if ch, ts, err := try(channel, thread); err == nil {
			return ch, ts, nil
		}
	}
	if n.Owner != "" {
		if dm, err := b.chat.DMChannel(ctx, n.Owner); err == nil {
			if ch, ts, err := try(dm, ""); err == nil {
				return ch, ts, nil
			}
		} else {
			tried = append(tried, "DM: "+err.Error())
		}
	}
	if b.set.NotifyChannel != "" {
		if ch, ts, err := try(b.set.NotifyChannel, ""); err == nil {
			return ch, ts, nil
		}
	}
	return "", "", fmt.Errorf("bot: post notice for %s: nowhere to post (%v)", n.InstanceID, tried)
}

// UpdateNotice re-renders a posted notice (kept, stopped, cancelled).
func (b *Bot) UpdateNotice(ctx context.Context, n idle.Notice) error {
	if n.Channel == "" || n.TS == "" {
		return errors.New("bot: notice was never posted")
	}
	return b.chat.Update(ctx, n.Channel, n.TS, reply.IdleNotice(n))
}

// Announce posts a line in the notice's thread.
func (b *Bot) Announce(ctx context.Context, n idle.Notice, text string) error {
	if n.Channel == "" {
		return errors.New("bot: notice was never posted")
	}
	thread := n.ThreadTS()
	if err := b.pace.wait(ctx, n.Channel); err != nil {
		return err
	}
	_, err := b.chat.Post(ctx, n.Channel, thread, reply.Plain(text))
	return err
}

// AllowStop is the scheduler's way through the one authorization point.
func (b *Bot) AllowStop(ctx context.Context, inst computebot.Instance) error {
	d, err := b.authz.Authorize(ctx, policy.Action{Kind: policy.ActionAutoStop, Actor: policy.SystemActor, Instance: &inst})
	if err != nil {
		return err
	}
	if d.Verdict != policy.Allow {
		return fmt.Errorf("policy refused to stop %s: %s", inst.ID, d.Reason)
	}
	return nil
}

// Audit records a cloud-changing action of the scheduler.
func (b *Bot) Audit(ctx context.Context, e computebot.AuditEntry) { b.audit(ctx, e) }

// Price is an instance type's hourly price (config overrides, then the
// Pricing API), bounded by the AWS call timeout.
func (b *Bot) Price(ctx context.Context, instanceType string) (float64, bool) {
	actx, cancel := b.awsCtx(ctx)
	defer cancel()
	return b.price(actx, instanceType)
}
