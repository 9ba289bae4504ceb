package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/reply"
)

// launch runs an approved request. RunInstances carries a ClientToken
// derived from the request ID, so running this again (a restart, a retry)
// returns the same instance instead of a second one. Only the first launch
// moves approved → launching; resume (after a restart) also takes over a
// request left in launching.
func (b *Bot) launch(ctx context.Context, id string, resume bool) {
	r, err := b.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		switch {
		case cur.State == computebot.RequestApproved:
		case cur.State == computebot.RequestLaunching && resume:
		default:
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestLaunching
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			b.log.Error("start launch", "request_id", id, "err", err)
		}
		return
	}
	if !resume {
		if _, err := b.chat.Post(ctx, r.ChannelID, r.MessageTS, reply.Launching(r)); err != nil {
			b.log.Error("post launching", "request_id", id, "err", err)
		}
	}

	inst, err := b.runInstance(ctx, r)
	if err != nil {
		b.failLaunch(ctx, r, computebot.UserMessage(err), computebot.ErrorCode(err))
		b.log.Error("launch failed", "request_id", id, "err", err)
		return
	}
	r, err = b.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestLaunching {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestLaunched
		cur.InstanceID = inst.ID
		return nil
	})
	if err != nil {
		b.log.Error("record launched instance", "request_id", id, "instance", inst.ID, "err", err)
		return
	}
	b.audit(ctx, computebot.AuditEntry{Actor: r.DecidedByOrPolicy(), Action: "launch", RequestID: id, Target: inst.ID, Result: "ok",
		Detail: fmt.Sprintf("%s for %s", r.InstanceType, r.Requester)})
	if _, err := b.chat.Post(ctx, r.ChannelID, r.MessageTS, reply.Pending(r)); err != nil {
		b.log.Error("post pending", "request_id", id, "err", err)
	}
	b.startWaiter(id)
}

// transientCodes are failures worth another attempt with the same
// ClientToken; anything else (capacity, quota, a bad AMI) is reported.
var transientCodes = map[string]bool{
	"Timeout": true, "Unreachable": true, "RequestLimitExceeded": true, "Throttling": true,
	"ThrottlingException": true, "InternalError": true, "ServiceUnavailable": true, "Unavailable": true,
}

// runInstance calls RunInstances, retrying transient failures with the same
// ClientToken: EC2 returns the instance an earlier attempt created instead
// of a second one. When AWS never answered, it looks for an instance tagged
// with the request before giving up, so a launch that succeeded behind a
// timeout is not reported as failed and left running unseen.
func (b *Bot) runInstance(ctx context.Context, r *computebot.Request) (computebot.Instance, error) {
	spec := b.launchSpec(r)
	var err error
	for attempt := 1; attempt <= b.opts.LaunchAttempts; attempt++ {
		actx, cancel := b.awsCtx(ctx)
		var inst computebot.Instance
		inst, err = b.cloud.Launch(actx, spec)
		cancel()
		if err == nil || !transientCodes[computebot.ErrorCode(err)] {
			return inst, err
		}
		b.log.Warn("launch attempt failed; retrying with the same ClientToken", "request_id", r.ID, "attempt", attempt, "err", err)
		if attempt < b.opts.LaunchAttempts {
			select {
			case <-ctx.Done():
				return computebot.Instance{}, err
			case <-time.After(time.Duration(attempt) * b.opts.RetryBackoff):
			}
		}
	}
	actx, cancel := b.awsCtx(ctx)
	defer cancel()
	if found, lerr := b.cloud.ManagedInstances(actx, computebot.InstanceFilter{Request: r.ID}); lerr == nil && len(found) > 0 {
		b.log.Info("launch timed out but the instance exists", "request_id", r.ID, "instance", found[0].ID)
		return found[0], nil
	}
	return computebot.Instance{}, err
}

func (b *Bot) launchSpec(r *computebot.Request) computebot.LaunchSpec {
	return computebot.LaunchSpec{
		ClientToken:      r.ClientToken(),
		InstanceType:     r.InstanceType,
		ImageID:          r.ImageID,
		RootDeviceName:   r.ImageRoot,
		KeyName:          b.set.KeyName,
		SecurityGroupIDs: b.set.SecurityGroupIDs,
		SubnetID:         b.set.SubnetID,
		Tags: map[string]string{
			computebot.TagName:    r.Name,
			computebot.TagManaged: "true",
			computebot.TagOwner:   r.Requester,
			computebot.TagRequest: r.ID,
			computebot.TagChannel: r.ChannelID,
			computebot.TagThread:  r.MessageTS,
			// From the decision time, not "now", so that a resumed launch
			// sends identical parameters with the same ClientToken.
			computebot.TagExpiresAt: r.DecidedAt.Add(r.Lease).UTC().Format(time.RFC3339),
		},
	}
}

// failLaunch marks the request failed and says so in plain words.
func (b *Bot) failLaunch(ctx context.Context, r *computebot.Request, why, code string) {
	if code == "" {
		code = "error"
	}
	id := r.ID
	r, err := b.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.State.Terminal() {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestFailed
		cur.Failure = why
		return nil
	})
	if err != nil {
		b.log.Error("mark launch failed", "request_id", id, "err", err)
		return
	}
	b.audit(ctx, computebot.AuditEntry{Actor: r.DecidedByOrPolicy(), Action: "launch", RequestID: r.ID, Target: r.InstanceID, Result: code, Detail: why})
	if _, err := b.chat.Post(ctx, r.ChannelID, r.MessageTS, reply.Failed(r)); err != nil {
		b.log.Error("post failure", "request_id", r.ID, "err", err)
	}
	b.refreshMessage(ctx, r)
}

// startWaiter waits for the instance in the background: waiting can take
// minutes and must not hold a worker. Waiters stop as soon as the bot shuts
// down; the next start resumes them from the store.
func (b *Bot) startWaiter(id string) {
	b.background(func(ctx context.Context) { b.waitRunning(ctx, id) })
}

// pollResult says how a pollInstance ended.
type pollResult int

const (
	pollDone     pollResult = iota // the check said done
	pollTimedOut                   // LaunchWait passed first
	pollStopped                    // the bot is shutting down; resumed on the next start
)

// pollInstance describes the instance every PollInterval (the SDK waiter's
// 15 s minimum would leave people waiting) until check says done, for at
// most LaunchWait. Describe errors are passed to check: right after
// RunInstances EC2 may not know the ID yet (eventual consistency).
func (b *Bot) pollInstance(ctx context.Context, id string, check func(computebot.Instance, error) bool) pollResult {
	deadline := b.now().Add(b.opts.LaunchWait)
	t := time.NewTicker(b.opts.PollInterval)
	defer t.Stop()
	for {
		actx, cancel := b.awsCtx(ctx)
		inst, err := b.cloud.Instance(actx, id)
		cancel()
		if check(inst, err) {
			return pollDone
		}
		if b.now().After(deadline) {
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
func (b *Bot) waitRunning(ctx context.Context, id string) {
	r, err := b.store.Request(ctx, id)
	if err != nil || r.State != computebot.RequestLaunched {
		return
	}
	res := b.pollInstance(ctx, r.InstanceID, func(inst computebot.Instance, err error) bool {
		switch {
		case err != nil:
			b.log.Debug("poll instance", "request_id", id, "instance", r.InstanceID, "err", err)
			return false
		case inst.State == computebot.InstanceRunning:
			b.ready(ctx, r, inst)
			return true
		case inst.State == computebot.InstanceTerminated || inst.State == computebot.InstanceShuttingDown:
			b.failLaunch(ctx, r, fmt.Sprintf("`%s` was terminated before it started running (state %s). Nothing is running; try again or pick another type.", r.InstanceID, inst.State), "Terminated")
			return true
		}
		return false
	})
	if res == pollTimedOut {
		b.failLaunch(ctx, r, fmt.Sprintf("`%s` did not reach running within %s. It may still start; check it in the EC2 console.", r.InstanceID, b.opts.LaunchWait), "Timeout")
	}
}

func (b *Bot) ready(ctx context.Context, r *computebot.Request, inst computebot.Instance) {
	r.PublicIP, r.PrivateIP = inst.PublicIP, inst.PrivateIP
	// Post before recording: a crash in between repeats the reply on the
	// next start rather than losing it.
	user := reply.SSHUser(b.set.SSHUser, r.ImageName)
	if _, err := b.chat.Post(ctx, r.ChannelID, r.MessageTS, reply.Ready(r, user, b.set.KeyName)); err != nil {
		b.log.Error("post ready", "request_id", r.ID, "err", err)
	}
	r, err := b.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestLaunched {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestReady
		cur.PublicIP, cur.PrivateIP = inst.PublicIP, inst.PrivateIP
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			b.log.Error("record ready", "instance", inst.ID, "err", err)
		}
		return
	}
	b.refreshMessage(ctx, r)
	b.log.Info("instance ready", "request_id", r.ID, "instance", r.InstanceID, "public_ip", r.PublicIP)
}
