package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// liveStates are the states /instances shows: terminated ones are gone.
var liveStates = []string{computebot.InstancePending, computebot.InstanceRunning,
	computebot.InstanceStopping, computebot.InstanceStopped, computebot.InstanceShuttingDown}

// listInstances answers /instances (all: everyone's, approvers only) with
// one page starting at offset; a button brings the next page.
func (b *Bot) listInstances(ctx context.Context, o origin, all bool, offset int) {
	filter := computebot.InstanceFilter{States: liveStates}
	if all {
		d, err := b.authz.Authorize(ctx, policy.Action{Kind: policy.ActionListAll, Actor: o.user})
		if d.Verdict == policy.Deny {
			if err != nil {
				b.log.Error("authorize list-all", "user", o.user, "err", err)
			}
			b.tell(ctx, o, reply.Plain(d.Reason))
			return
		}
	} else {
		filter.Owner = o.user
	}
	actx, cancel := b.awsCtx(ctx)
	defer cancel()
	insts, err := b.cloud.ManagedInstances(actx, filter)
	if err != nil {
		b.log.Error("list instances", "user", o.user, "err", err)
		b.tell(ctx, o, reply.Plain("I could not list instances: "+computebot.UserMessage(err)))
		return
	}
	// Newest first: the instance someone just launched is the one they look for.
	slices.SortFunc(insts, func(x, y computebot.Instance) int {
		if c := y.LaunchTime.Compare(x.LaunchTime); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	prices := map[string]float64{}
	known := map[string]bool{}
	rows := make([]reply.InstanceRow, 0, len(insts))
	for _, in := range insts {
		if _, seen := known[in.Type]; !seen {
			prices[in.Type], known[in.Type] = b.price(actx, in.Type)
		}
		rows = append(rows, reply.InstanceRow{Instance: in, PricePerHour: prices[in.Type], PriceKnown: known[in.Type]})
	}
	if offset >= len(rows) {
		offset = 0
	}
	b.tell(ctx, o, reply.InstanceList(rows, offset, all, b.now()))
}

// change describes one lifecycle action.
type change struct {
	verb   string // for messages: "stop"
	doing  string // "Stopping"
	target string // the state that means done; "" for extend
}

var changes = map[policy.ActionKind]change{
	policy.ActionStop:      {"stop", "Stopping", computebot.InstanceStopped},
	policy.ActionStart:     {"start", "Starting", computebot.InstanceRunning},
	policy.ActionTerminate: {"terminate", "Terminating", computebot.InstanceTerminated},
	policy.ActionExtend:    {"extend", "Extending", ""},
}

// changeInstance runs /stop, /start, /terminate and /extend (and their
// buttons): resolve the target, authorize, check the state, act, then
// report in the instance's request thread once the change is done.
func (b *Bot) changeInstance(ctx context.Context, o origin, kind policy.ActionKind, target string, extendHours int) {
	ch := changes[kind]
	inst, refusal := b.resolveTarget(ctx, o, target)
	if refusal != "" {
		b.tell(ctx, o, reply.Plain(refusal))
		return
	}
	act := policy.Action{Kind: kind, Actor: o.user, Instance: &inst}
	if kind == policy.ActionExtend {
		base := b.now()
		if exp, err := time.Parse(time.RFC3339, inst.Tags[computebot.TagExpiresAt]); err == nil && exp.After(base) {
			base = exp
		}
		act.ExtendTo = base.Add(hours(extendHours)).Truncate(time.Second)
	}
	d, err := b.authz.Authorize(ctx, act)
	if d.Verdict != policy.Allow {
		if err != nil {
			b.log.Error("authorize instance action", "instance", inst.ID, "request_id", inst.Tags[computebot.TagRequest], "user", o.user, "err", err)
		}
		b.log.Info("instance action refused", "instance", inst.ID, "request_id", inst.Tags[computebot.TagRequest], "user", o.user, "action", kind, "reason", d.Reason)
		b.tell(ctx, o, reply.Plain(d.Reason))
		return
	}
	if why := wrongState(kind, inst); why != "" {
		b.tell(ctx, o, reply.Plain(why))
		return
	}

	actx, cancel := b.awsCtx(ctx)
	defer cancel()
	switch kind {
	case policy.ActionStop:
		_, err = b.cloud.Stop(actx, inst.ID)
	case policy.ActionStart:
		_, err = b.cloud.Start(actx, inst.ID)
	case policy.ActionTerminate:
		_, err = b.cloud.Terminate(actx, inst.ID)
	case policy.ActionExtend:
		err = b.cloud.Tag(actx, inst.ID, map[string]string{computebot.TagExpiresAt: act.ExtendTo.UTC().Format(time.RFC3339)})
	}
	requestID := inst.Tags[computebot.TagRequest]
	if err != nil {
		b.audit(ctx, computebot.AuditEntry{Actor: o.user, Action: ch.verb, RequestID: requestID, Target: inst.ID, Result: codeOr(err)})
		b.log.Error("instance action failed", "instance", inst.ID, "request_id", inst.Tags[computebot.TagRequest], "action", kind, "err", err)
		b.tell(ctx, o, reply.Plain(fmt.Sprintf("I could not %s `%s`: %s", ch.verb, inst.ID, computebot.UserMessage(err))))
		return
	}
	detail := ""
	if kind == policy.ActionExtend {
		detail = "expires-at " + act.ExtendTo.UTC().Format(time.RFC3339)
	}
	b.audit(ctx, computebot.AuditEntry{Actor: o.user, Action: ch.verb, RequestID: requestID, Target: inst.ID, Result: "ok", Detail: detail})

	if kind == policy.ActionExtend {
		b.announce(ctx, o, inst, reply.Extended(inst, o.user, act.ExtendTo, extendHours))
		return
	}
	b.tell(ctx, o, reply.Plain(fmt.Sprintf("%s `%s`… I'll post in its request thread when it is %s.", ch.doing, inst.ID, ch.target)))
	b.background(func(ctx context.Context) { b.awaitChange(ctx, o, kind, inst) })
}

// awaitChange waits until the instance reaches the state the action aims
// at, then announces it.
func (b *Bot) awaitChange(ctx context.Context, o origin, kind policy.ActionKind, inst computebot.Instance) {
	ch := changes[kind]
	res := b.pollInstance(ctx, inst.ID, func(cur computebot.Instance, err error) bool {
		if err != nil || cur.State != ch.target {
			return false
		}
		cur.Tags = inst.Tags
		var msg reply.Message
		switch kind {
		case policy.ActionStop:
			msg = reply.Stopped(cur, o.user)
		case policy.ActionStart:
			msg = reply.Started(cur, o.user, b.sshUser(ctx, cur.ImageID), b.set.KeyName)
		default:
			msg = reply.Terminated(cur, o.user)
		}
		b.announce(ctx, o, cur, msg)
		return true
	})
	if res == pollTimedOut {
		b.tell(ctx, o, reply.Plain(fmt.Sprintf("`%s` has not reached %s after %s; check it with `/instances`.", inst.ID, ch.target, b.opts.LaunchWait)))
	}
}

// announce posts news about an instance in its request thread, and also
// privately to whoever acted when they are not looking at that thread.
func (b *Bot) announce(ctx context.Context, o origin, inst computebot.Instance, msg reply.Message) {
	channel, thread := requestThread(inst)
	if channel == "" {
		channel, thread = o.channel, o.threadTS
	}
	if _, err := b.chat.Post(ctx, channel, thread, msg); err != nil {
		b.log.Error("announce in request thread", "instance", inst.ID, "request_id", inst.Tags[computebot.TagRequest], "err", err)
	}
	if o.channel != channel || o.threadTS != thread {
		b.tell(ctx, o, msg)
	}
}

// sshUser is the login for an instance's AMI (configured, or inferred from
// the AMI's name).
func (b *Bot) sshUser(ctx context.Context, imageID string) string {
	if b.set.SSHUser != "" || imageID == "" {
		return reply.SSHUser(b.set.SSHUser, "")
	}
	actx, cancel := b.awsCtx(ctx)
	defer cancel()
	img, err := b.cloud.ResolveImage(actx, imageID)
	if err != nil {
		b.log.Warn("look up AMI for the SSH user", "image", imageID, "err", err)
	}
	return reply.SSHUser("", img.Name)
}

// resolveTarget finds the instance a command names: an instance ID, or the
// name of exactly one of the caller's instances. A non-empty string is the
// refusal to give instead.
func (b *Bot) resolveTarget(ctx context.Context, o origin, target string) (computebot.Instance, string) {
	actx, cancel := b.awsCtx(ctx)
	defer cancel()
	if commands.IsInstanceID(target) {
		inst, err := b.cloud.Instance(actx, target)
		switch {
		case errors.Is(err, computebot.ErrNotFound):
			return inst, fmt.Sprintf("I can't find instance `%s` in this region. `/instances` lists yours.", target)
		case err != nil:
			return inst, fmt.Sprintf("I could not look up `%s`: %s", target, computebot.UserMessage(err))
		}
		return inst, ""
	}
	insts, err := b.cloud.ManagedInstances(actx, computebot.InstanceFilter{Owner: o.user, States: liveStates})
	if err != nil {
		return computebot.Instance{}, "I could not list your instances: " + computebot.UserMessage(err)
	}
	var matches []computebot.Instance
	for _, in := range insts {
		if in.Tags[computebot.TagName] == target {
			matches = append(matches, in)
		}
	}
	switch len(matches) {
	case 0:
		return computebot.Instance{}, fmt.Sprintf("You have no instance named `%s`. `/instances` lists yours; you can also use an instance ID.", target)
	case 1:
		return matches[0], ""
	}
	ids := make([]string, len(matches))
	for i, m := range matches {
		ids[i] = "`" + m.ID + "`"
	}
	return computebot.Instance{}, fmt.Sprintf("You have %d instances named `%s` (%s); use the instance ID.", len(matches), target, strings.Join(ids, ", "))
}

// wrongState explains why the instance's state does not allow the action.
func wrongState(kind policy.ActionKind, in computebot.Instance) string {
	gone := in.State == computebot.InstanceTerminated || in.State == computebot.InstanceShuttingDown
	switch {
	case gone && kind == policy.ActionTerminate:
		return fmt.Sprintf("`%s` is already terminated.", in.ID)
	case gone:
		return fmt.Sprintf("`%s` has been terminated; there is nothing to %s.", in.ID, changes[kind].verb)
	}
	switch kind {
	case policy.ActionStop:
		switch in.State {
		case computebot.InstanceRunning:
			return ""
		case computebot.InstancePending:
			return fmt.Sprintf("`%s` is still starting; stop it once it runs (or terminate it).", in.ID)
		}
		return fmt.Sprintf("`%s` is already %s.", in.ID, in.State)
	case policy.ActionStart:
		switch in.State {
		case computebot.InstanceStopped:
			return ""
		case computebot.InstanceStopping:
			return fmt.Sprintf("`%s` is still stopping; start it once it has stopped.", in.ID)
		case computebot.InstancePending:
			return fmt.Sprintf("`%s` is already starting.", in.ID)
		}
		return fmt.Sprintf("`%s` is already %s.", in.ID, in.State)
	}
	return ""
}

func codeOr(err error) string {
	if c := computebot.ErrorCode(err); c != "" {
		return c
	}
	return "error"
}

// background runs slow follow-up work (waiting for a state change) outside
// the worker pool; it stops when the bot shuts down.
func (b *Bot) background(f func(ctx context.Context)) {
	b.waiters.Add(1)
	go func() {
		defer b.waiters.Done()
		f(b.waitCtx)
	}()
}
