package flow

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/internal/crash"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
	"github.com/computebot/computebot/schedule"
)

// The lifecycle workflows: /instances, and /stop, /start, /terminate and
// /extend with their buttons. Each resolves its target, asks policy, checks
// the instance's state, acts, and reports in the instance's request thread
// once the change is done.

// liveStates are the states /instances shows: terminated ones are gone.
var liveStates = []string{computebot.InstancePending, computebot.InstanceRunning,
	computebot.InstanceStopping, computebot.InstanceStopped, computebot.InstanceShuttingDown}

// listInstances answers /instances (all: everyone's, approvers only) with
// one page starting at offset; a button brings the next page.
func (f *Flow) listInstances(ctx context.Context, o Origin, all bool, offset int) {
	filter := computebot.InstanceFilter{States: liveStates}
	if all {
		d, err := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionListAll, Actor: o.User})
		if d.Verdict == policy.Deny {
			if err != nil {
				f.log.Error("authorize list-all", "user", o.User, "err", err)
			}
			f.tell(ctx, o, reply.Refusal(d.Refusal))
			return
		}
	} else {
		filter.Owner = o.User
	}
	insts, err := f.cloud.ManagedInstances(ctx, filter)
	if err != nil {
		f.log.Error("list instances", "user", o.User, "err", err)
		f.tell(ctx, o, reply.ListFailed(computebot.UserMessage(err)))
		return
	}
	// Newest first: the instance someone just launched is the one they look for.
	slices.SortFunc(insts, func(x, y computebot.Instance) int {
		if c := y.LaunchTime.Compare(x.LaunchTime); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	type price struct {
		usd   float64
		known bool
	}
	prices := map[string]price{}
	rows := make([]reply.InstanceRow, 0, len(insts))
	for _, in := range insts {
		p, seen := prices[in.Type]
		if !seen {
			p.usd, p.known = f.prices.Price(ctx, in.Type)
			prices[in.Type] = p
		}
		rows = append(rows, reply.InstanceRow{Instance: in, PricePerHour: p.usd, PriceKnown: p.known})
	}
	if offset >= len(rows) {
		offset = 0
	}
	f.tell(ctx, o, reply.InstanceList(rows, offset, all, f.now()))
}

// targetState is the instance state that means an action is done.
var targetState = map[policy.ActionKind]string{
	policy.ActionStop:      computebot.InstanceStopped,
	policy.ActionStart:     computebot.InstanceRunning,
	policy.ActionTerminate: computebot.InstanceTerminated,
}

// changeInstance runs /stop, /start, /terminate and /extend (and their
// buttons). It finishes its intent itself: for stop, start and terminate
// only once the instance got there and the change was announced, so that
// a restart in between asks again (EC2 takes a repeated ask in its
// stride) and still announces.
func (f *Flow) changeInstance(ctx context.Context, in *computebot.Intent, o Origin, kind policy.ActionKind, target string, extendHours int) {
	waiting := false // handed to the background wait, which finishes
	finish := f.finishing(ctx, in)
	defer func() {
		if !waiting {
			finish()
		}
	}()
	inst, refusal := f.resolveTarget(ctx, o, target)
	if refusal != nil {
		f.tell(ctx, o, *refusal)
		return
	}
	requestID := inst.Tags[computebot.TagRequest]
	act := policy.Action{Kind: kind, Actor: o.User, Instance: &inst}
	if kind == policy.ActionExtend {
		act.ExtendTo = f.extendTo(in, inst, extendHours)
	}
	d, err := f.authz.Authorize(ctx, act)
	if d.Verdict != policy.Allow {
		if err != nil {
			f.log.Error("authorize instance action", "instance", inst.ID, "request_id", requestID, "user", o.User, "err", err)
		}
		f.log.Info("instance action refused", "instance", inst.ID, "request_id", requestID, "user", o.User, "action", kind, "refusal", d.Refusal.Code)
		f.tell(ctx, o, reply.Refusal(d.Refusal))
		return
	}
	// A run of this intent after a restart that finds it may have asked
	// EC2 already (stepAsked) asks again, but does not judge the state the
	// first ask brought about.
	asked := in.Step == stepAsked
	if why, wrong := reply.WrongState(kind, inst); wrong && !asked {
		f.tell(ctx, o, why)
		return
	}

	detail := ""
	if kind != policy.ActionExtend && !asked && !f.step(ctx, in, stepAsked) {
		f.tell(ctx, o, reply.ActionFailed(kind, inst.ID, reply.InternalError()))
		return
	}
	crash.Point("before-lifecycle") // the ask recorded, not made
	var how computebot.Stopped
	switch {
	case kind == policy.ActionStop && asked && inst.State != computebot.InstanceRunning:
		// The first run's stop took effect: asking again could not say
		// whether that one hibernated, so the announcement does not claim it.
	case kind == policy.ActionStop:
		how, err = computebot.StopKeepingMemory(ctx, f.cloud, inst)
	case kind == policy.ActionStart:
		_, err = f.cloud.Start(ctx, inst.ID)
	case kind == policy.ActionTerminate:
		_, err = f.cloud.Terminate(ctx, inst.ID)
	case kind == policy.ActionExtend:
		until := act.ExtendTo.UTC().Format(time.RFC3339)
		detail = "expires-at " + until
		// The new lease end is recorded first: a run of this intent after
		// a restart tags the same end, instead of extending twice.
		if !strings.HasPrefix(in.Step, stepExtendTo) && !f.step(ctx, in, stepExtendTo+until) {
			f.tell(ctx, o, reply.ActionFailed(kind, inst.ID, reply.InternalError()))
			return
		}
		err = f.cloud.Tag(ctx, inst.ID, map[string]string{computebot.TagExpiresAt: until})
	}
	if asked && computebot.ErrorCode(err) == "IncorrectInstanceState" {
		err = nil // the first ask took effect: the instance is on its way
	}
	if err != nil {
		detail = ""
	} else {
		crash.Point("after-lifecycle") // asked of EC2, not audited, the intent not finished
	}
	f.audit.Record(ctx, computebot.AuditEntry{Actor: o.User, Action: string(kind), RequestID: requestID, Target: inst.ID, Result: computebot.AuditResult(err), Detail: detail})
	if err != nil {
		f.log.Error("instance action failed", "instance", inst.ID, "request_id", requestID, "action", kind, "err", err)
		f.tell(ctx, o, reply.ActionFailed(kind, inst.ID, computebot.UserMessage(err)))
		return
	}
	if kind == policy.ActionExtend {
		f.announce(ctx, o, inst, reply.Extended(inst, o.User, act.ExtendTo, extendHours))
		return
	}
	f.tell(ctx, o, reply.ActionUnderWay(kind, inst.ID))
	waiting = true
	// The intent stays unfinished while the wait runs: busy, so that
	// Adopt does not run it again meanwhile.
	leave := f.busy.enter("intent:" + in.ID)
	f.background(func(bctx context.Context) {
		defer leave()
		if f.awaitChange(bctx, o, kind, inst, how) != pollStopped {
			f.finish(bctx, in) // not when shutting down: a restart waits again
		}
	})
}

// extendTo is the lease end an /extend asks for: hours past the current
// end (or now, when that has passed), or, when an earlier run of the
// intent computed it already, that.
func (f *Flow) extendTo(in *computebot.Intent, inst computebot.Instance, hours int) time.Time {
	if v, ok := strings.CutPrefix(in.Step, stepExtendTo); ok {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t
		}
	}
	base := f.now()
	if exp, err := time.Parse(time.RFC3339, inst.Tags[computebot.TagExpiresAt]); err == nil && exp.After(base) {
		base = exp
	}
	return base.Add(time.Duration(hours) * time.Hour).Truncate(time.Second)
}

// awaitChange waits until the instance reaches the state the action aims
// at, then announces it (how a stop went: hibernated or not); it returns
// how the wait ended.
func (f *Flow) awaitChange(ctx context.Context, o Origin, kind policy.ActionKind, inst computebot.Instance, how computebot.Stopped) pollResult {
	res := f.pollInstance(ctx, inst.ID, func(cur computebot.Instance, err error) bool {
		if err != nil || cur.State != targetState[kind] {
			return false
		}
		cur.Tags = inst.Tags
		var msg reply.Message
		switch kind {
		case policy.ActionStop:
			msg = reply.Stopped(cur, o.User, how)
		case policy.ActionStart:
			msg = reply.Started(cur, o.User, f.sshUser(ctx, cur.ImageID), f.cfg.Launch.KeyName)
		default:
			msg = reply.Terminated(cur, o.User)
		}
		f.announce(ctx, o, cur, msg)
		return true
	})
	if res == pollTimedOut {
		f.tell(ctx, o, reply.ActionSlow(kind, inst.ID, f.opts.LaunchWait))
	}
	return res
}

// announce posts news about an instance in its request thread (from its
// tags), and also privately to whoever acted when they are not looking at
// that thread.
func (f *Flow) announce(ctx context.Context, o Origin, inst computebot.Instance, msg reply.Message) {
	channel, thread := inst.Tags[computebot.TagChannel], inst.Tags[computebot.TagThread]
	if channel == "" {
		channel, thread = o.Channel, o.ThreadTS
	}
	f.post(ctx, channel, thread, msg, "in request thread", "instance", inst.ID, "request_id", inst.Tags[computebot.TagRequest])
	f.refreshHomes([]string{inst.Tags[computebot.TagOwner], o.User}, false)
	if o.Channel != channel || o.ThreadTS != thread {
		f.tell(ctx, o, msg)
	}
}

// sshUser is the login for an instance's AMI (configured, or inferred from
// the AMI's name).
func (f *Flow) sshUser(ctx context.Context, imageID string) string {
	configured := f.cfg.Launch.SSHUser
	if configured != "" || imageID == "" {
		return reply.SSHUser(configured, "")
	}
	img, err := f.cloud.ResolveImage(ctx, imageID)
	if err != nil {
		f.log.Warn("look up AMI for the SSH user", "image", imageID, "err", err)
	}
	return reply.SSHUser("", img.Name)
}

// resolveTarget finds the instance a command names: an instance ID, or the
// name of exactly one of the caller's instances. A non-nil message is the
// answer to give instead.
func (f *Flow) resolveTarget(ctx context.Context, o Origin, target string) (computebot.Instance, *reply.Message) {
	refuse := func(m reply.Message) (computebot.Instance, *reply.Message) { return computebot.Instance{}, &m }
	if commands.IsInstanceID(target) {
		inst, err := f.cloud.Instance(ctx, target)
		switch {
		case errors.Is(err, computebot.ErrNotFound):
			return refuse(reply.NoSuchInstance(target))
		case err != nil:
			return refuse(reply.LookupFailed(target, computebot.UserMessage(err)))
		}
		return inst, nil
	}
	insts, err := f.cloud.ManagedInstances(ctx, computebot.InstanceFilter{Owner: o.User, States: liveStates})
	if err != nil {
		return refuse(reply.OwnListFailed(computebot.UserMessage(err)))
	}
	var matches []computebot.Instance
	for _, in := range insts {
		if in.Tags[computebot.TagName] == target {
			matches = append(matches, in)
		}
	}
	switch len(matches) {
	case 0:
		return refuse(reply.NoInstanceNamed(target))
	case 1:
		return matches[0], nil
	}
	ids := make([]string, len(matches))
	for i, m := range matches {
		ids[i] = m.ID
	}
	return refuse(reply.AmbiguousName(target, ids))
}

// liveTarget resolves a command's target, refusing one that is terminated
// (or going); false when the person was told why.
func (f *Flow) liveTarget(ctx context.Context, o Origin, target string) (computebot.Instance, bool) {
	inst, refusal := f.resolveTarget(ctx, o, target)
	switch {
	case refusal != nil:
		f.tell(ctx, o, *refusal)
		return inst, false
	case inst.State == computebot.InstanceTerminated || inst.State == computebot.InstanceShuttingDown:
		f.tell(ctx, o, reply.InstanceGone(inst.ID, inst.State))
		return inst, false
	}
	return inst, true
}

// permitted asks policy about an action on an instance; false when the
// person was told the refusal.
func (f *Flow) permitted(ctx context.Context, o Origin, act policy.Action) bool {
	d, err := f.authz.Authorize(ctx, act)
	if d.Verdict == policy.Allow {
		return true
	}
	if err != nil {
		f.log.Error("authorize", "action", act.Kind, "user", o.User, "err", err)
	}
	f.tell(ctx, o, reply.Refusal(d.Refusal))
	return false
}

// setSchedule runs /schedule INSTANCE HOURS|off: the tag
// computebot:schedule, which the idle scheduler follows. Tagging the same
// value again changes nothing, so a rerun after a restart needs no step.
func (f *Flow) setSchedule(ctx context.Context, o Origin, c *commands.SetSchedule) {
	inst, ok := f.liveTarget(ctx, o, c.Target)
	if !ok || !f.permitted(ctx, o, policy.Action{Kind: policy.ActionSchedule, Actor: o.User, Instance: &inst}) {
		return
	}
	value := schedule.Off
	if !c.Off {
		value = c.Hours.String()
	}
	err := f.cloud.Tag(ctx, inst.ID, map[string]string{computebot.TagSchedule: value})
	f.audit.Record(ctx, computebot.AuditEntry{Actor: o.User, Action: string(policy.ActionSchedule), RequestID: inst.Tags[computebot.TagRequest],
		Target: inst.ID, Result: computebot.AuditResult(err), Detail: value})
	if err != nil {
		f.log.Error("schedule", "instance", inst.ID, "err", err)
		f.tell(ctx, o, reply.ActionFailed(policy.ActionSchedule, inst.ID, computebot.UserMessage(err)))
		return
	}
	if c.Off {
		f.announce(ctx, o, inst, reply.Unscheduled(inst, o.User))
		return
	}
	f.announce(ctx, o, inst, reply.Scheduled(inst, o.User, c.Hours, c.Hours.Next(f.now())))
}

// stepKeepUntil records the end a /keep computed, so a run of its intent
// after a restart tags the same one.
const stepKeepUntil = "keep-until:"

// keep runs /keep INSTANCE DURATION: the tag computebot:keep-until, which
// the idle scheduler honours; owners within idle.max_keep (policy).
func (f *Flow) keep(ctx context.Context, in *computebot.Intent, o Origin, c *commands.Keep) {
	inst, ok := f.liveTarget(ctx, o, c.Target)
	if !ok {
		return
	}
	until := f.now().Add(c.For).UTC().Truncate(time.Second)
	if v, ok := strings.CutPrefix(in.Step, stepKeepUntil); ok {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			until = t
		}
	}
	if !f.permitted(ctx, o, policy.Action{Kind: policy.ActionKeepUntil, Actor: o.User, Instance: &inst, ExtendTo: until}) {
		return
	}
	stamp := until.Format(time.RFC3339)
	if !strings.HasPrefix(in.Step, stepKeepUntil) && !f.step(ctx, in, stepKeepUntil+stamp) {
		f.tell(ctx, o, reply.ActionFailed(policy.ActionKeepUntil, inst.ID, reply.InternalError()))
		return
	}
	err := f.cloud.Tag(ctx, inst.ID, map[string]string{computebot.TagKeepUntil: stamp})
	f.audit.Record(ctx, computebot.AuditEntry{Actor: o.User, Action: string(policy.ActionKeepUntil), RequestID: inst.Tags[computebot.TagRequest],
		Target: inst.ID, Result: computebot.AuditResult(err), Detail: "keep-until " + stamp})
	if err != nil {
		f.log.Error("keep", "instance", inst.ID, "err", err)
		f.tell(ctx, o, reply.ActionFailed(policy.ActionKeepUntil, inst.ID, computebot.UserMessage(err)))
		return
	}
	f.announce(ctx, o, inst, reply.KeptUntil(inst, o.User, until))
	// An idle notice waiting out its grace is settled now, as Keep running
	// would (it snoozes; the tag keeps it from new notices after that), so
	// its message stops saying the instance will be stopped.
	if f.idle == nil {
		return
	}
	if n, err := f.idle.Notice(ctx, inst.ID); err == nil && n.Reason != idle.ReasonLease && n.State == idle.StateNoticed {
		if _, err := f.idle.Keep(ctx, inst.ID, o.User); err != nil {
			f.log.Warn("keep: settle the pending idle notice", "instance", inst.ID, "err", err)
		}
	}
}
