package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

type jobKind int

const (
	jobNewRequest jobKind = iota // post a persisted request (or refuse it)
	jobApprove
	jobDeny
	jobLaunch // launch an approved request
)

// job is one unit of slow work, queued after the ack.
type job struct {
	kind      jobKind
	requestID string
	actor     string // who clicked
	channel   string // where they clicked
	threadTS  string
	resume    bool // picked up after a restart
}

func (b *Bot) enqueue(j job) {
	b.jobs <- j
}

func (b *Bot) runJob(ctx context.Context, j job) {
	defer func() {
		// A bug in one request must not take the bot down with it.
		if p := recover(); p != nil {
			b.log.Error("job panicked", "request_id", j.requestID, "panic", p)
		}
	}()
	switch j.kind {
	case jobNewRequest:
		b.postRequest(ctx, j.requestID)
	case jobApprove, jobDeny:
		b.decide(ctx, j)
	case jobLaunch:
		b.launch(ctx, j.requestID, j.resume)
	}
}

// resume picks up every request a previous run left unfinished.
func (b *Bot) resume(ctx context.Context) {
	reqs, err := b.store.Requests(ctx, computebot.RequestNew, computebot.RequestPending, computebot.RequestApproved,
		computebot.RequestLaunching, computebot.RequestLaunched)
	if err != nil {
		b.log.Error("resume: list requests", "err", err)
		return
	}
	for _, r := range reqs {
		if r.State != computebot.RequestPending {
			b.log.Info("resuming request", "request_id", r.ID, "state", r.State)
		}
		switch {
		case r.State == computebot.RequestPending && r.MessageTS != "":
			continue // stays approvable; the sweeper expires it
		case r.State == computebot.RequestNew, r.MessageTS == "":
			b.enqueue(job{kind: jobNewRequest, requestID: r.ID})
			continue
		}
		switch r.State {
		case computebot.RequestApproved, computebot.RequestLaunching:
			b.enqueue(job{kind: jobLaunch, requestID: r.ID, resume: true})
		case computebot.RequestLaunched:
			b.startWaiter(r.ID)
		}
	}
}

// refuse tells the requester why, privately, and closes the request.
func (b *Bot) refuse(ctx context.Context, r *computebot.Request, reason string) {
	b.log.Info("request refused", "request_id", r.ID, "user", r.Requester, "reason", reason)
	if err := b.chat.Respond(ctx, r.ResponseURL, reply.Plain(reason)); err != nil {
		b.log.Error("tell requester about refusal", "request_id", r.ID, "err", err)
	}
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

	ts, err := b.chat.Post(ctx, r.ChannelID, "", reply.LaunchRequest(r))
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
	now := b.now()
	r, err = b.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestNew {
			return computebot.ErrConflict
		}
		cur.VCPUs, cur.MemoryMiB = it.VCPUs, it.MemoryMiB
		cur.ImageID, cur.ImageName, cur.ImageRoot = img.ID, img.Name, img.RootDeviceName
		cur.PricePerHour, cur.PriceKnown = price, priceKnown
		if auto {
			cur.State, cur.AutoApproved, cur.DecidedAt = computebot.RequestApproved, true, now
		} else {
			cur.State, cur.ApprovalExpiresAt = computebot.RequestPending, now.Add(b.set.ApprovalTTL)
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			b.log.Error("save admitted request", "request_id", r.ID, "err", err)
		}
		return nil
	}
	if auto {
		b.audit(ctx, computebot.AuditEntry{Actor: "policy", Action: "approve", RequestID: r.ID, Result: "ok", Detail: "auto-approved type " + r.InstanceType})
	}
	return r
}

// withdraw closes a request whose message could not be posted.
func (b *Bot) withdraw(ctx context.Context, r *computebot.Request, reason string) {
	if err := b.chat.Respond(ctx, r.ResponseURL, reply.Plain(reason)); err != nil {
		b.log.Error("tell requester", "request_id", r.ID, "err", err)
	}
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

var errExpired = errors.New("approval expired")

// decide applies an Approve or Deny click.
func (b *Bot) decide(ctx context.Context, j job) {
	kind := policy.ActionApprove
	if j.kind == jobDeny {
		kind = policy.ActionDeny
	}
	tell := func(text string) {
		if err := b.chat.Ephemeral(ctx, j.channel, j.actor, "", reply.Plain(text)); err != nil {
			b.log.Error("tell clicker", "request_id", j.requestID, "user", j.actor, "err", err)
		}
	}
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
		tell(fmt.Sprintf("Request `%s` expired at %s, so it can't be %s. Nothing was launched; <@%s> can run `/launch` again.",
			r.ID, reply.SlackDate(r.ApprovalExpiresAt), pastTense(kind), r.Requester))
		return
	}

	unlock := b.lockUser(r.Requester)
	defer unlock()
	d, err := b.authz.Authorize(ctx, policy.Action{Kind: kind, Actor: j.actor, Request: r})
	if err != nil {
		b.log.Error("authorize decision", "request_id", r.ID, "user", j.actor, "err", err)
	}
	if d.Verdict == policy.Deny {
		b.log.Info("click refused", "request_id", r.ID, "user", j.actor, "action", kind, "reason", d.Reason)
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
		cur.DecidedBy, cur.DecidedAt = j.actor, now
		if cur.MessageTS == "" {
			// The click raced the save of the message's ts: the click
			// itself says which message it came from.
			cur.MessageTS = j.threadTS
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
	b.audit(ctx, computebot.AuditEntry{Actor: j.actor, Action: string(kind), RequestID: r.ID, Result: "ok"})
	b.refreshMessage(ctx, r)
	if _, err := b.chat.Post(ctx, r.ChannelID, r.MessageTS, reply.Decision(r)); err != nil {
		b.log.Error("post decision", "request_id", r.ID, "err", err)
	}
	if r.State == computebot.RequestApproved {
		b.launch(ctx, r.ID, false)
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
	if err := b.chat.Update(ctx, r.ChannelID, r.MessageTS, reply.LaunchRequest(r)); err != nil {
		b.log.Error("update request message", "request_id", r.ID, "err", err)
	}
}

// expire closes a pending request whose approval window has passed.
func (b *Bot) expire(ctx context.Context, r *computebot.Request) {
	now := b.now()
	r, err := b.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestPending || !now.After(cur.ApprovalExpiresAt) {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestExpired
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			b.log.Error("expire request", "err", err)
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
	r, err := b.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State.Terminal() {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestFailed
		cur.Failure = why
		return nil
	})
	if err != nil {
		b.log.Error("mark launch failed", "request_id", r.ID, "err", err)
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
	b.waiters.Add(1)
	go func() {
		defer b.waiters.Done()
		b.waitRunning(b.waitCtx, id)
	}()
}

// waitRunning polls the instance every PollInterval (the SDK waiter's 15 s
// minimum would leave the requester waiting) and posts the connection
// details as soon as it runs.
func (b *Bot) waitRunning(ctx context.Context, id string) {
	r, err := b.store.Request(ctx, id)
	if err != nil || r.State != computebot.RequestLaunched {
		return
	}
	deadline := b.now().Add(b.opts.LaunchWait)
	t := time.NewTicker(b.opts.PollInterval)
	defer t.Stop()
	for {
		actx, cancel := b.awsCtx(ctx)
		inst, err := b.cloud.Instance(actx, r.InstanceID)
		cancel()
		switch {
		case err != nil:
			// Right after RunInstances EC2 may not know the ID yet
			// (eventual consistency); keep polling until the deadline.
			b.log.Debug("poll instance", "request_id", id, "instance", r.InstanceID, "err", err)
		case inst.State == computebot.InstanceRunning:
			b.ready(ctx, r, inst)
			return
		case inst.State == computebot.InstanceTerminated || inst.State == computebot.InstanceShuttingDown:
			b.failLaunch(ctx, r, fmt.Sprintf("`%s` was terminated before it started running (state %s). Nothing is running; try again or pick another type.", r.InstanceID, inst.State), "Terminated")
			return
		}
		if b.now().After(deadline) {
			b.failLaunch(ctx, r, fmt.Sprintf("`%s` did not reach running within %s. It may still start; check it in the EC2 console.", r.InstanceID, b.opts.LaunchWait), "Timeout")
			return
		}
		select {
		case <-ctx.Done():
			return // resumed on the next start
		case <-t.C:
		}
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
			b.log.Error("record ready", "request_id", inst.ID, "err", err)
		}
		return
	}
	b.refreshMessage(ctx, r)
	b.log.Info("instance ready", "request_id", r.ID, "instance", r.InstanceID, "public_ip", r.PublicIP)
}
