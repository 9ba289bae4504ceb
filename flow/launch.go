package flow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/internal/crash"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// The launch workflow: approved → executing (RunInstances, with a
// ClientToken derived from the request so that a retry or a restart gets
// the same instance back) → launched (EC2 returned the instance) → done
// (it runs; the IP and SSH line are posted), or failed.

// proceed carries out an approved request: a launch, or a Lambda invocation.
func (f *Flow) proceed(ctx context.Context, id string, resume bool) {
	defer f.busy.enter("launch:" + id)()
	r, err := f.store.Request(ctx, id)
	if err != nil {
		f.log.Error("load approved request", "request_id", id, "err", err)
		return
	}
	if r.Lambda != nil {
		f.invokeApproved(ctx, id, resume)
		return
	}
	f.launch(ctx, id, resume)
}

// launch runs an approved launch request. Only the first launch moves
// approved → executing; resume (after a restart) also takes over a request
// left executing.
func (f *Flow) launch(ctx context.Context, id string, resume bool) {
	r, err := f.store.Request(ctx, id)
	if err != nil {
		f.log.Error("load approved request", "request_id", id, "err", err)
		return
	}
	if r.State == computebot.RequestApproved && !f.stillWithinQuota(ctx, r) {
		return
	}
	r, err = f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		switch {
		case !f.mine(cur):
			return computebot.ErrConflict // another replica took it over
		case cur.State == computebot.RequestApproved:
		case cur.State == computebot.RequestExecuting && resume:
		default:
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestExecuting
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			f.log.Error("start launch", "request_id", id, "err", err)
		}
		return
	}
	if !resume {
		f.post(ctx, r.ChannelID, r.MessageTS, reply.Launching(r), "launching", "request_id", id)
	}

	inst, r, err := f.runInstance(ctx, r)
	switch {
	case errors.Is(err, computebot.ErrConflict):
		// Another replica took the request over (or moved it on): the
		// launch is theirs now, not a failure.
		f.log.Info("launch taken over; stopping here", "request_id", id)
		return
	case errors.Is(err, errResumeLater):
		f.log.Error("launch left for the next start", "request_id", id, "err", err)
		return
	}
	if err != nil {
		f.log.Error("launch failed", "request_id", id, "err", err)
		why := reply.Literal(computebot.UserMessage(err))
		if errors.Is(err, computebot.ErrNoCapacity) && len(r.Launch.Plan) > 1 {
			why = reply.NoCapacityAnywhere(r.Launch)
		}
		f.fail(ctx, r, why, computebot.AuditResult(err))
		return
	}
	r, err = f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestExecuting || !f.mine(cur) {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestLaunched
		cur.Launch.InstanceID = inst.ID
		return nil
	})
	if err != nil {
		f.log.Error("record launched instance", "request_id", id, "instance", inst.ID, "err", err)
		return
	}
	f.audit.Record(ctx, computebot.AuditEntry{Actor: r.DecidedByOrPolicy(), Action: "launch", RequestID: id, Target: inst.ID, Result: "ok",
		Detail: fmt.Sprintf("%s for %s", r.Launch.Current().InstanceType, r.Requester)})
	f.post(ctx, r.ChannelID, r.MessageTS, reply.Pending(r), "pending", "request_id", id)
	f.startWaiter(id, false)
}

// stillWithinQuota counts the quota again right before RunInstances, now
// that this approval is written: of two approvals that raced each other past
// the limit, each sees the other here, and at least one is undone (both,
// at worst: never too many). An undone request goes back to its approvers
// (or, auto-approved, is refused), privately. When the count itself fails,
// the launch goes ahead: it was within quota when it was approved, and an
// AWS hiccup must not cost an approved request.
func (f *Flow) stillWithinQuota(ctx context.Context, r *computebot.Request) bool {
	d, err := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionStartLaunch, Actor: r.DecidedByOrPolicy(), Request: r})
	if err != nil {
		f.log.Warn("could not count the quota again before the launch; going ahead (it was counted at approval)", "request_id", r.ID, "err", err)
		return true
	}
	if d.Verdict != policy.Deny {
		return true
	}
	f.log.Info("approval undone: over the quota at launch", "request_id", r.ID, "refusal", d.Refusal.Code)
	why := reply.NotLaunched(d.Refusal, !r.AutoApproved)
	undone, err := f.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestApproved {
			return computebot.ErrConflict
		}
		if cur.AutoApproved {
			cur.State, cur.Failure = computebot.RequestRefused, why.Text
		} else {
			cur.State, cur.DecidedBy, cur.DecidedAt, cur.DecidedIn = computebot.RequestPending, "", time.Time{}, ""
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			f.log.Error("undo approval", "request_id", r.ID, "err", err)
		}
		return false
	}
	f.audit.Record(ctx, computebot.AuditEntry{Actor: r.DecidedByOrPolicy(), Action: "approve", RequestID: r.ID,
		Result: string(d.Refusal.Code), Detail: "undone before the launch: over the quota"})
	to := requesterOf(r)
	if !r.AutoApproved {
		to = Origin{User: r.DecidedBy, Channel: r.ChannelID, ThreadTS: r.MessageTS}
	}
	f.tell(ctx, to, why)
	f.refreshMessage(ctx, undone)
	return false
}

// errResumeLater: the launch could not record its progress; it stays
// executing, and the next start (or Adopt) takes it on from the store.
var errResumeLater = errors.New("left for the next start")

// runInstance launches the request's instance: its plan's attempts in
// order from the one under way (r.Launch.Try), moving to the next only
// when EC2 had no capacity for one (the next subnet, then the next type),
// each move saved before the next attempt and said in the thread. Each
// attempt has its own ClientToken (Request.TryToken), so a restart
// resends the attempt it was at and gets its instance back, and a moved-on
// launch can never also launch an earlier attempt's instance (EC2 launched
// nothing for it). It returns the instance and the request as saved.
func (f *Flow) runInstance(ctx context.Context, r *computebot.Request) (computebot.Instance, *computebot.Request, error) {
	tries := max(len(r.Launch.Plan), 1)
	for {
		inst, err := f.runTry(ctx, r)
		if err == nil || !errors.Is(err, computebot.ErrNoCapacity) || r.Launch.Try+1 >= tries {
			return inst, r, err
		}
		from := r.Launch.Current()
		next, uerr := f.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
			if cur.State != computebot.RequestExecuting || !f.mine(cur) || cur.Launch.Try != r.Launch.Try {
				return computebot.ErrConflict
			}
			cur.Launch.Try++
			return nil
		})
		switch {
		case errors.Is(uerr, computebot.ErrConflict):
			return computebot.Instance{}, r, fmt.Errorf("flow: move to the next launch attempt: %w", uerr)
		case uerr != nil:
			// The request stays executing at the saved attempt, resumed by
			// the next start, rather than failing a launch that may go on.
			return computebot.Instance{}, r, fmt.Errorf("flow: move to the next launch attempt: %w: %w", errResumeLater, uerr)
		}
		r = next
		f.log.Info("no capacity; trying the next", "request_id", r.ID, "from", from, "to", r.Launch.Current())
		f.post(ctx, r.ChannelID, r.MessageTS, reply.NoCapacityTrying(from, r.Launch.Current()), "capacity fallback", "request_id", r.ID)
	}
}

// runTry calls RunInstances for the attempt under way, retrying transient
// failures (as the aws package classifies them) with the same ClientToken:
// EC2 returns the instance an earlier attempt created instead of a second
// one. When AWS never answered, it looks for an instance tagged with the
// request before giving up, so a launch that succeeded behind a timeout is
// not reported as failed and left running unseen.
func (f *Flow) runTry(ctx context.Context, r *computebot.Request) (computebot.Instance, error) {
	spec := f.launchSpec(r)
	var err error
	for attempt := 1; attempt <= f.opts.LaunchAttempts; attempt++ {
		if attempt > 1 {
			// Between retries another replica may have taken the request
			// over and moved on to a later attempt: this attempt's token
			// then must not be sent again (EC2 launched nothing for it, so
			// it would launch a second instance).
			if cur, rerr := f.store.Request(ctx, r.ID); rerr != nil || !f.mine(cur) || cur.State != computebot.RequestExecuting || cur.Launch.Try != r.Launch.Try {
				return computebot.Instance{}, fmt.Errorf("flow: the launch moved on while retrying: %w", computebot.ErrConflict)
			}
		}
		var inst computebot.Instance
		crash.Point("before-run-instances")
		inst, err = f.cloud.Launch(ctx, spec)
		if err == nil {
			crash.Point("after-run-instances") // launched, the instance ID not saved
		}
		if err == nil || !computebot.Transient(err) {
			return inst, err
		}
		f.log.Warn("launch attempt failed; retrying with the same ClientToken", "request_id", r.ID, "attempt", attempt, "err", err)
		if attempt < f.opts.LaunchAttempts {
			select {
			case <-ctx.Done():
				return computebot.Instance{}, err
			case <-time.After(time.Duration(attempt) * f.opts.RetryBackoff):
			}
		}
	}
	if found, lerr := f.cloud.ManagedInstances(ctx, computebot.InstanceFilter{Request: r.ID}); lerr == nil && len(found) > 0 {
		f.log.Info("launch timed out but the instance exists", "request_id", r.ID, "instance", found[0].ID)
		return found[0], nil
	}
	return computebot.Instance{}, err
}

// launchSpec is the RunInstances of the request's attempt under way. A
// request from before plans has one attempt: its type in launch.subnet_id
// (the first of launch.subnet_ids), with ClientToken.
func (f *Flow) launchSpec(r *computebot.Request) computebot.LaunchSpec {
	l, launch := r.Launch, f.cfg.Launch
	try := l.Current()
	if len(l.Plan) == 0 {
		// As it was made before plans: in launch.subnet_id, so that the
		// resent ClientToken carries the same parameters.
		try.SubnetID = launch.SubnetID
		if try.SubnetID == "" {
			try.SubnetID = launch.Subnets()[0]
		}
	}
	spec := computebot.LaunchSpec{
		UserData:         l.UserData,
		ClientToken:      r.TryToken(l.Try),
		InstanceType:     try.InstanceType,
		ImageID:          l.ImageID,
		RootDeviceName:   l.ImageRoot,
		KeyName:          launch.KeyName,
		SecurityGroupIDs: launch.SecurityGroupIDs,
		SubnetID:         try.SubnetID,
		Hibernate:        try.Hibernate,
		RootVolumeGiB:    try.RootVolumeGiB,
		Tags: map[string]string{
			computebot.TagName:    l.Name,
			computebot.TagManaged: "true",
			computebot.TagOwner:   r.Requester,
			computebot.TagRequest: r.ID,
			computebot.TagChannel: r.ChannelID,
			computebot.TagThread:  r.MessageTS,
			// From the decision time, not "now", so that a resumed launch
			// sends identical parameters with the same ClientToken.
			computebot.TagExpiresAt: r.DecidedAt.Add(l.Lease).UTC().Format(time.RFC3339),
		},
	}
	if l.Schedule != "" {
		spec.Tags[computebot.TagSchedule] = l.Schedule
	}
	return spec
}

// fail marks an approved request failed (a launch or an invocation) and
// says why in its thread, in plain words; code goes to the audit log.
func (f *Flow) fail(ctx context.Context, r *computebot.Request, why, code string) {
	id := r.ID
	r, err := f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.State.Terminal() || !f.mine(cur) {
			return computebot.ErrConflict // done, or another replica's to finish
		}
		cur.State, cur.Failure = computebot.RequestFailed, why
		return nil
	})
	if err != nil {
		f.log.Error("mark request failed", "request_id", id, "err", err)
		return
	}
	action, target := "launch", ""
	if r.Lambda != nil {
		action, target = "invoke", r.Lambda.Function
	} else {
		target = r.Launch.InstanceID
	}
	f.audit.Record(ctx, computebot.AuditEntry{Actor: r.DecidedByOrPolicy(), Action: action, RequestID: r.ID, Target: target, Result: code, Detail: reply.PlainText(why)})
	f.post(ctx, r.ChannelID, r.MessageTS, reply.Failed(r), "failure", "request_id", r.ID)
	f.refreshMessage(ctx, r)
}

// startWaiter waits for the instance in the background: waiting can take
// minutes and must not hold a worker. resumed: a previous process was
// waiting already, and may have posted the IP reply before it died.
func (f *Flow) startWaiter(id string, resumed bool) {
	// Busy from now, not from when the goroutine runs: an Adopt in
	// between would start a second wait.
	leave := f.busy.enter("wait:" + id)
	f.background(func(ctx context.Context) { defer leave(); f.waitRunning(ctx, id, resumed) })
}

// pollResult says how a pollInstance ended.
type pollResult int

const (
	pollDone     pollResult = iota // the check said done
	pollTimedOut                   // LaunchWait passed first
	pollStopped                    // shutting down; resumed on the next start
)

// pollInstance describes the instance every PollInterval (the SDK waiter's
// 15 s minimum would leave people waiting) until check says done, for at
// most LaunchWait. Describe errors are passed to check: right after
// RunInstances EC2 may not know the ID yet (eventual consistency).
func (f *Flow) pollInstance(ctx context.Context, id string, check func(computebot.Instance, error) bool) pollResult {
	deadline := f.now().Add(f.opts.LaunchWait)
	t := time.NewTicker(f.opts.PollInterval)
	defer t.Stop()
	for {
		inst, err := f.cloud.Instance(ctx, id)
		if check(inst, err) {
			return pollDone
		}
		if f.now().After(deadline) {
			return pollTimedOut
		}
		select {
		case <-ctx.Done():
			return pollStopped
		case <-t.C:
		}
	}
}

// waitRunning posts the connection details as soon as the request's
// instance runs.
func (f *Flow) waitRunning(ctx context.Context, id string, resumed bool) {
	r, err := f.store.Request(ctx, id)
	if err != nil || r.State != computebot.RequestLaunched || !f.mine(r) {
		return
	}
	instanceID := r.Launch.InstanceID
	res := f.pollInstance(ctx, instanceID, func(inst computebot.Instance, err error) bool {
		switch {
		case err != nil:
			f.log.Debug("poll instance", "request_id", id, "instance", instanceID, "err", err)
			return false
		case inst.State == computebot.InstanceRunning:
			f.ready(ctx, r, inst, resumed)
			return true
		case inst.State == computebot.InstanceTerminated || inst.State == computebot.InstanceShuttingDown:
			f.fail(ctx, r, reply.TerminatedBeforeRunning(instanceID, inst.State), "Terminated")
			return true
		}
		return false
	})
	if res == pollTimedOut {
		f.fail(ctx, r, reply.NotRunningInTime(instanceID, f.opts.LaunchWait), "Timeout")
	}
}

// ready posts the IP reply and records the request done. The reply is
// posted before the record, so a crash in between is no lost reply; and
// once: a resumed wait first looks for the reply the previous process may
// have posted, and adopts it.
func (f *Flow) ready(ctx context.Context, r *computebot.Request, inst computebot.Instance, resumed bool) {
	r.Launch.PublicIP, r.Launch.PrivateIP = inst.PublicIP, inst.PrivateIP
	user := reply.SSHUser(f.cfg.Launch.SSHUser, r.Launch.ImageName)
	msg := reply.Ready(r, user, f.cfg.Launch.KeyName)
	if cur, err := f.store.Request(ctx, r.ID); err != nil || !f.mine(cur) || cur.State != computebot.RequestLaunched {
		// Taken over by another replica (this one was judged gone), or
		// done meanwhile: the reply is theirs to post.
		return
	}
	if !resumed || f.findPosted(ctx, r.ChannelID, r.MessageTS, msg.Key, r.DecidedAt) == "" {
		f.post(ctx, r.ChannelID, r.MessageTS, msg, "ready", "request_id", r.ID)
		crash.Point("post-ready") // posted, the request not recorded done
	}
	r, err := f.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestLaunched || !f.mine(cur) {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestDone
		cur.Launch.PublicIP, cur.Launch.PrivateIP = inst.PublicIP, inst.PrivateIP
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			f.log.Error("record ready", "instance", inst.ID, "err", err)
		}
		return
	}
	f.refreshMessage(ctx, r)
	f.log.Info("instance ready", "request_id", r.ID, "instance", r.Launch.InstanceID, "public_ip", r.Launch.PublicIP)
}

// mine reports whether this replica drives the request: it claimed it, or
// nobody did (a request from before claims). A replica that was judged
// gone while it still ran (a long pause) finds the claim moved, and stops.
func (f *Flow) mine(r *computebot.Request) bool {
	return r.Claim == "" || r.Claim == f.cluster.Self()
}
