package flow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/internal/crash"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// The approval workflow: a request is persisted before the ack (new), then
// checked and posted with Approve / Deny (pending, or approved at once for
// an auto-approved type), decided by one click (approved or denied), or
// expired by the sweeper. Every transition is a compare-and-set in the
// store, so a double click or a redelivery decides once.

var errExpired = errors.New("approval expired")

func (f *Flow) newLaunchRequest(o Origin, c *commands.Launch) *computebot.Request {
	id := requestID(o.Trigger)
	lease := f.cfg.Launch.DefaultTTL.Duration()
	if c.HoursSet {
		lease = time.Duration(c.Hours) * time.Hour
	}
	ami := f.cfg.Launch.AMI
	switch {
	case c.AMI != "":
		ami = c.AMI
	case c.Image != "":
		ami = f.cfg.Launch.Images[c.Image] // known: triage refused an unknown one
	}
	name := c.Name
	if name == "" {
		name = "computebot-" + strings.ToLower(id)
	}
	return &computebot.Request{
		ID: id, Requester: o.User, ChannelID: o.Channel, ResponseURL: o.ResponseURL,
		State: computebot.RequestNew, CreatedAt: f.now(),
		Launch: &computebot.LaunchRequest{InstanceType: c.InstanceType, ImageRef: ami, Name: name, Reason: c.Reason, Lease: lease,
			Hibernate: c.Hibernate || f.cfg.Launch.Hibernate},
	}
}

func (f *Flow) newLambdaRequest(o Origin, c *commands.LambdaInvoke) *computebot.Request {
	return &computebot.Request{
		ID: requestID(o.Trigger), Requester: o.User, ChannelID: o.Channel, ResponseURL: o.ResponseURL,
		State: computebot.RequestNew, CreatedAt: f.now(),
		Lambda: &computebot.LambdaRequest{Function: c.Function, Payload: c.Payload, Async: c.Async},
	}
}

// acceptRequest carries out an intent that asks for a request (a /launch,
// an approval-gated /lambda invoke): it creates the request (the same ID
// on every run of the intent: it derives from the trigger), admits it and
// posts it. The intent is done once the request is posted or refused; an
// auto-approved request is launched next, as the request's own work.
func (f *Flow) acceptRequest(ctx context.Context, in *computebot.Intent, r *computebot.Request) {
	// An auto-approved request is launched from here once its intent is
	// finished: busy from the start, so Adopt does not launch it too.
	defer f.busy.enter("launch:" + r.ID)()
	r.CreatedAt = in.CreatedAt
	switch err := f.store.CreateRequest(ctx, r); {
	case errors.Is(err, computebot.ErrExists): // an earlier run of the intent created it
	case err != nil:
		f.log.Error("persist request", "request_id", r.ID, "intent", in.ID, "err", err)
		return // the intent stays unfinished: the next start tries again
	default:
		f.log.Info("request accepted", "request_id", r.ID, "user", r.Requester, "kind", r.Kind())
	}
	posted, over := f.admitAndPost(ctx, in, r.ID)
	if !over {
		return // a store write failed: the intent stays unfinished, the next start tries again
	}
	f.finish(ctx, in)
	if posted != nil && posted.State == computebot.RequestApproved && posted.AutoApproved {
		f.launch(ctx, posted.ID, false)
	}
}

// admitAndPost authorizes a new request, looks up what the message shows,
// records it as pending (or approved, when auto-approved) and posts it. It
// returns the request as posted (nil when it was refused or withdrawn), and
// whether the intent's part is over: false when a store write failed, so
// that the next start tries again. The state is saved before the message
// goes out, so a click arriving right after the post always finds the
// request approvable.
//
// The message is posted once: before posting, the intent records that it
// is about to (stepPosting); a run that finds that mark, with no message
// ts saved, first looks for the message a previous run posted (by its key)
// and adopts it.
func (f *Flow) admitAndPost(ctx context.Context, in *computebot.Intent, id string) (*computebot.Request, bool) {
	r, err := f.store.Request(ctx, id)
	if err != nil {
		f.log.Error("load request", "request_id", id, "err", err)
		return nil, false
	}
	if r.State == computebot.RequestNew {
		admitted, err := f.admit(ctx, r)
		switch {
		case errors.Is(err, errRefused):
			return nil, true
		case errors.Is(err, computebot.ErrConflict): // admitted by another run meanwhile
			if admitted, err = f.store.Request(ctx, id); err != nil {
				return nil, false
			}
		case err != nil:
			return nil, false
		}
		r = admitted
	}
	if r.State.Terminal() {
		return nil, true
	}
	if r.MessageTS != "" {
		if in.Step == stepPosting && r.State == computebot.RequestPending {
			// This intent posted the message and died before (or while)
			// it pinged the approvers: ping them, unless it did.
			note := reply.ApproversNote(r, f.authz.Approvers(), f.authz.AllowsSelfApproval())
			if f.findPosted(ctx, r.ChannelID, r.MessageTS, note.Key, in.CreatedAt) == "" {
				f.post(ctx, r.ChannelID, r.MessageTS, note, "approvers note", "request_id", id)
			}
		}
		return r, true
	}
	msg := reply.RequestMessage(r)
	ts := ""
	if in.Step == stepPosting {
		ts = f.findPosted(ctx, r.ChannelID, "", msg.Key, in.CreatedAt)
	}
	if ts == "" {
		if !f.step(ctx, in, stepPosting) {
			return nil, false // could not mark it: better not post (the next start retries)
		}
		if ts, err = f.chat.Post(ctx, r.ChannelID, "", msg); err != nil {
			f.log.Error("post request message", "request_id", id, "err", err)
			f.withdraw(ctx, r, reply.CannotPost(r.Kind(), errors.Is(err, ErrNotInChannel)))
			return nil, true
		}
		crash.Point("post-request") // posted, its ts not saved
	}
	r, err = f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.MessageTS == "" {
			cur.MessageTS = ts
		}
		return nil
	})
	if err != nil {
		f.log.Error("save request message", "request_id", id, "err", err)
		return nil, false // posted; the next run adopts the message
	}
	switch r.State {
	case computebot.RequestPending:
		f.post(ctx, r.ChannelID, r.MessageTS, reply.ApproversNote(r, f.authz.Approvers(), f.authz.AllowsSelfApproval()),
			"approvers note", "request_id", id)
		f.refreshHomes([]string{r.Requester}, true)
	case computebot.RequestApproved:
		if !r.AutoApproved {
			f.refreshMessage(ctx, r) // decided while the message was going out
		}
	default:
		f.refreshMessage(ctx, r)
	}
	return r, true
}

// findPosted looks for a message with key posted in channel (thread) since
// a moment, for a post a previous run may have made before it died: its ts,
// or "" when there is none (or the lookup failed: then posting is the
// lesser harm than never telling anyone).
func (f *Flow) findPosted(ctx context.Context, channel, thread, key string, since time.Time) string {
	ts, err := f.chat.FindMessage(ctx, channel, thread, key, since.Add(-time.Minute))
	switch {
	case err == nil:
		f.log.Info("adopting a message an earlier run posted", "key", key, "ts", ts)
		return ts
	case !errors.Is(err, computebot.ErrNotFound):
		f.log.Warn("could not look for an earlier post; posting", "key", key, "err", err)
	}
	return ""
}

// admit authorizes a new request and fills in what the message shows. It
// returns the pending or approved request, or nil when it was refused.
func (f *Flow) admit(ctx context.Context, r *computebot.Request) (*computebot.Request, error) {
	if r.Lambda != nil {
		return f.admitLambda(ctx, r)
	}
	d, err := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionLaunch, Actor: r.Requester, Request: r})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // shutting down: it resumes
		}
		f.log.Error("authorize launch", "request_id", r.ID, "err", err)
	}
	if d.Verdict == policy.Deny {
		return nil, f.refuse(ctx, r, reply.Refusal(d.Refusal))
	}

	l := r.Launch
	it, err := f.cloud.InstanceType(ctx, l.InstanceType)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // shutting down: not the request's fault, it resumes
		}
		return nil, f.refuse(ctx, r, reply.TypeLookupFailed(l.InstanceType, computebot.UserMessage(err)))
	}
	// Refused now rather than failing after its approval with
	// VcpuLimitExceeded; an unknown quota does not block.
	quota, overQuota, quotaErr := f.checkQuota(ctx, r, it)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if overQuota != nil {
		return nil, f.refuse(ctx, r, *overQuota)
	}
	img, err := f.cloud.ResolveImage(ctx, l.ImageRef)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, f.refuse(ctx, r, reply.ImageLookupFailed(l.ImageRef, computebot.UserMessage(err)))
	}
	price, priceKnown := f.prices.Price(ctx, l.InstanceType)
	// The requester's keys as of the request: persisted with it, so that
	// every RunInstances attempt, also after a restart, sends the same
	// user data under the same ClientToken.
	keys, err := f.keysOf(ctx, r.Requester)
	if err != nil {
		// Not launched without them: the admission is tried again (its
		// intent stays unfinished).
		f.log.Error("read the requester's ssh keys", "request_id", r.ID, "err", err)
		return nil, fmt.Errorf("flow: read the requester's ssh keys: %w", err)
	}
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = k.Line
	}
	userData, err := config.UserData(f.cfg.Launch.UserData, lines)
	if err != nil {
		return nil, f.refuse(ctx, r, reply.UserDataRefused(err.Error()))
	}

	l.PricePerHour, l.PriceKnown = price, priceKnown
	plan, maxPrice, maxKnown, noHibernation := f.planLaunch(ctx, l, it, img)

	auto := d.Verdict == policy.Allow
	r, err = f.settleNew(ctx, r.ID, auto, func(cur *computebot.Request) {
		cl := cur.Launch
		cl.VCPUs, cl.MemoryMiB = it.VCPUs, it.MemoryMiB
		cl.ImageID, cl.ImageName, cl.ImageRoot = img.ID, img.Name, img.RootDeviceName
		cl.PricePerHour, cl.PriceKnown = price, priceKnown
		cl.SSHKeys, cl.UserData = lines, userData
		cl.Quota, cl.QuotaUnknown = quota, quotaErr != nil
		cl.Plan, cl.Try, cl.MaxPricePerHour, cl.MaxPriceKnown = plan, 0, maxPrice, maxKnown
		cl.NoHibernation = noHibernation
		cl.Schedule = f.defaultSchedule()
	})
	if err != nil {
		return nil, err
	}
	if auto {
		f.audit.Record(ctx, computebot.AuditEntry{Actor: computebot.PolicyActor, Action: "approve", RequestID: r.ID, Result: "ok", Detail: "auto-approved type " + l.InstanceType})
	}
	return r, nil
}

// errRefused says an admission ended in a refusal the requester was told.
var errRefused = errors.New("request refused")

// settleNew moves a new request to approved (auto) or pending with its
// approval window, after fill adds what the admission looked up. The error
// is computebot.ErrConflict when the request was no longer new (another run
// admitted it), else the store's.
func (f *Flow) settleNew(ctx context.Context, id string, auto bool, fill func(*computebot.Request)) (*computebot.Request, error) {
	now := f.now()
	r, err := f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestNew {
			return computebot.ErrConflict
		}
		if fill != nil {
			fill(cur)
		}
		if auto {
			cur.State, cur.AutoApproved, cur.DecidedAt = computebot.RequestApproved, true, now
			cur.Claim = f.cluster.Self() // this replica launches it
		} else {
			cur.State, cur.ApprovalExpiresAt = computebot.RequestPending, now.Add(f.cfg.ApprovalTTL.Duration())
		}
		return nil
	})
	if err != nil && !errors.Is(err, computebot.ErrConflict) {
		f.log.Error("save admitted request", "request_id", id, "err", err)
	}
	return r, err
}

// refuse tells the requester why, privately, and closes a new request. It
// returns errRefused, for the admission to return.
func (f *Flow) refuse(ctx context.Context, r *computebot.Request, why reply.Message) error {
	f.log.Info("request refused", "request_id", r.ID, "user", r.Requester, "reason", reply.PlainText(why.Text))
	f.tell(ctx, requesterOf(r), why)
	_, err := f.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestNew {
			return computebot.ErrConflict
		}
		cur.State, cur.Failure = computebot.RequestRefused, why.Text
		return nil
	})
	if err != nil {
		f.log.Error("mark request refused", "request_id", r.ID, "err", err)
	}
	return errRefused
}

// withdraw closes a request whose message could not be posted.
func (f *Flow) withdraw(ctx context.Context, r *computebot.Request, why reply.Message) {
	f.tell(ctx, requesterOf(r), why)
	_, err := f.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.MessageTS != "" || (cur.State != computebot.RequestPending && cur.State != computebot.RequestApproved) {
			return computebot.ErrConflict
		}
		cur.State, cur.Failure = computebot.RequestRefused, why.Text
		return nil
	})
	if err != nil {
		f.log.Error("withdraw request", "request_id", r.ID, "err", err)
	}
}

// requesterOf is the requester's side of a stored request.
func requesterOf(r *computebot.Request) Origin {
	return Origin{User: r.Requester, Channel: r.ChannelID, ResponseURL: r.ResponseURL}
}

// decide carries out an Approve or Deny click. Its intent is done once the
// decision is recorded (or refused); what follows an approval (the launch)
// is the request's own work, resumed from its state after a restart.
func (f *Flow) decide(ctx context.Context, in *computebot.Intent, o Origin, c decideCommand) {
	// An approval launches from here once its intent is finished: busy
	// from the start, so Adopt does not launch it too.
	defer f.busy.enter("launch:" + c.requestID)()
	done := false
	finishing := f.finishing(ctx, in)
	finish := func() {
		if !done {
			done = true
			f.finish(ctx, in)
		}
	}
	defer func() {
		if !done {
			done = true
			finishing()
		}
	}()
	kind := policy.ActionDeny
	if c.approve {
		kind = policy.ActionApprove
	}
	r, err := f.store.Request(ctx, c.requestID)
	if errors.Is(err, computebot.ErrNotFound) {
		f.tell(ctx, o, reply.UnknownRequest(c.requestID))
		return
	}
	if err != nil {
		f.log.Error("load request", "request_id", c.requestID, "err", err)
		f.tell(ctx, o, reply.ClickFailed())
		return
	}
	// The button's value must belong to the message it was clicked on: a
	// crafted click naming another request decides nothing. A request
	// whose message ts was not saved (a crash right after the post) is
	// checked against the message found by its key.
	onItsMessage := r.MessageTS
	if onItsMessage == "" && r.ChannelID == o.Channel {
		onItsMessage = f.findPosted(ctx, r.ChannelID, "", reply.RequestKey(r.ID), r.CreatedAt)
	}
	if c.fromHome {
		// No message to check against; a request still being posted is
		// not decided from the tab (its thread does not exist yet). Its
		// state is judged below, as for a click in the thread (a rerun
		// recognises its own decision).
		if r.MessageTS == "" {
			f.tell(ctx, o, reply.HomeDecisionTooEarly(r))
			return
		}
	} else if r.ChannelID != o.Channel || onItsMessage == "" || onItsMessage != c.messageTS {
		f.log.Warn("click refused: its request is not the clicked message's", "request_id", r.ID, "user", o.User,
			"channel", o.Channel, "message_ts", c.messageTS)
		f.tell(ctx, o, reply.ClickNotOnItsMessage())
		return
	}
	if r.State != computebot.RequestPending {
		if r.DecidedIn == in.ID {
			// This click's own decision, recorded by a run that died
			// before it was told: tell it now, then carry on as that run
			// would have (Resume leaves the request to this intent).
			f.recorded(ctx, r, kind)
			finish()
			switch r.State {
			case computebot.RequestApproved, computebot.RequestExecuting:
				f.proceed(ctx, r.ID, true)
			case computebot.RequestLaunched:
				f.startWaiter(r.ID, true)
			}
			return
		}
		f.tell(ctx, o, reply.AlreadyDecided(r))
		f.refreshMessage(ctx, r) // the click came from a stale message
		return
	}
	if f.now().After(r.ApprovalExpiresAt) {
		f.expire(ctx, r)
		f.tell(ctx, o, reply.ClickedTooLate(r, c.approve))
		return
	}
	d, err := f.authz.Authorize(ctx, policy.Action{Kind: kind, Actor: o.User, Request: r})
	if err != nil {
		f.log.Error("authorize decision", "request_id", r.ID, "user", o.User, "err", err)
	}
	if d.Verdict == policy.Deny {
		f.log.Info("click refused", "request_id", r.ID, "user", o.User, "action", kind, "refusal", d.Refusal.Code)
		f.tell(ctx, o, reply.Refusal(d.Refusal))
		return
	}
	now := f.now()
	r, err = f.store.UpdateRequest(ctx, r.ID, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestPending {
			return computebot.ErrConflict
		}
		if now.After(cur.ApprovalExpiresAt) {
			return errExpired
		}
		cur.State = computebot.RequestApproved
		if !c.approve {
			cur.State = computebot.RequestDenied
		}
		cur.DecidedBy, cur.DecidedAt, cur.DecidedIn = o.User, now, in.ID
		cur.Claim = f.cluster.Self() // the decider takes it on
		if cur.MessageTS == "" && !c.fromHome {
			// The click raced the save of the message's ts: the click
			// itself says which message it came from.
			cur.MessageTS = c.messageTS
		}
		return nil
	})
	switch {
	case errors.Is(err, computebot.ErrConflict):
		// Someone (or a double click) got there first.
		if cur, lerr := f.store.Request(ctx, c.requestID); lerr == nil {
			f.tell(ctx, o, reply.AlreadyDecided(cur))
		}
		return
	case errors.Is(err, errExpired):
		if cur, lerr := f.store.Request(ctx, c.requestID); lerr == nil {
			f.tell(ctx, o, reply.ClickedTooLate(cur, c.approve))
		}
		return
	case err != nil:
		f.log.Error("record decision", "request_id", c.requestID, "err", err)
		f.tell(ctx, o, reply.DecisionNotSaved())
		return
	}
	crash.Point("after-decision") // recorded, the intent not finished
	f.recorded(ctx, r, kind)
	finish()
	if r.State == computebot.RequestApproved {
		f.proceed(ctx, r.ID, false)
	}
}

// recorded tells a recorded decision: the audit log, the request message,
// the thread. It runs before the decision's intent is finished, so a crash
// in between repeats it rather than losing it.
func (f *Flow) recorded(ctx context.Context, r *computebot.Request, kind policy.ActionKind) {
	f.audit.Record(ctx, computebot.AuditEntry{Actor: r.DecidedBy, Action: string(kind), RequestID: r.ID, Result: "ok"})
	f.refreshMessage(ctx, r)
	f.post(ctx, r.ChannelID, r.MessageTS, reply.Decision(r), "decision", "request_id", r.ID)
}

// refreshMessage re-renders the request message from the stored state.
func (f *Flow) refreshMessage(ctx context.Context, r *computebot.Request) {
	if r.MessageTS == "" {
		return
	}
	f.refreshHomes([]string{r.Requester}, true)
	err := f.chat.Update(ctx, r.ChannelID, r.MessageTS, reply.RequestMessage(r))
	switch {
	case errors.Is(err, ErrRateLimited):
		// The message would keep showing a stale state: try again later,
		// with the state as it is then.
		f.log.Warn("update request message: rate limited; trying again later", "request_id", r.ID)
		f.background(func(ctx context.Context) { f.refreshLater(ctx, r.ID) })
	case err != nil:
		f.log.Error("update request message", "request_id", r.ID, "err", err)
	}
}

// refreshLater updates a request message whose update was rate limited,
// after RefreshRetry, 3× and 9× that, until one goes through.
func (f *Flow) refreshLater(ctx context.Context, id string) {
	wait := f.opts.RefreshRetry
	for range 3 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 3
		r, err := f.store.Request(ctx, id)
		if err != nil {
			f.log.Error("update request message later: load", "request_id", id, "err", err)
			return
		}
		err = f.chat.Update(ctx, r.ChannelID, r.MessageTS, reply.RequestMessage(r))
		if err == nil {
			return
		}
		if !errors.Is(err, ErrRateLimited) {
			f.log.Error("update request message", "request_id", id, "err", err)
			return
		}
	}
	f.log.Error("update request message: still rate limited; it shows an older state", "request_id", id)
}

// expire closes a pending request whose approval window has passed.
func (f *Flow) expire(ctx context.Context, r *computebot.Request) {
	now := f.now()
	id := r.ID
	r, err := f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestPending || !now.After(cur.ApprovalExpiresAt) {
			return computebot.ErrConflict
		}
		cur.State = computebot.RequestExpired
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			f.log.Error("expire request", "request_id", id, "err", err)
		}
		return
	}
	f.log.Info("request expired", "request_id", r.ID)
	f.refreshMessage(ctx, r)
	f.post(ctx, r.ChannelID, r.MessageTS, reply.Expired(r), "expiry", "request_id", r.ID)
}

// SweepExpired expires the pending requests nobody decided on in time.
func (f *Flow) SweepExpired(ctx context.Context) {
	reqs, err := f.store.Requests(ctx, computebot.RequestPending)
	if err != nil {
		f.log.Error("sweep: list pending requests", "err", err)
		return
	}
	now := f.now()
	for _, r := range reqs {
		if now.After(r.ApprovalExpiresAt) {
			f.expire(ctx, r)
		}
	}
}

// status answers "@computebot status" in a request's thread.
func (f *Flow) status(ctx context.Context, o Origin) {
	if o.ThreadTS == "" {
		f.tell(ctx, o, reply.StatusNotHere())
		return
	}
	r, err := f.store.RequestByMessage(ctx, o.Channel, o.ThreadTS)
	switch {
	case errors.Is(err, computebot.ErrNotFound):
		f.tell(ctx, o, reply.StatusNotARequest())
	case err != nil:
		f.log.Error("status: look up the thread's request", "err", err)
		f.tell(ctx, o, reply.LookupBroke())
	default:
		f.post(ctx, o.Channel, o.ThreadTS, reply.Status(r), "status", "request_id", r.ID)
	}
}
