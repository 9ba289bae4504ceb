package flow

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
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
	if c.AMI != "" {
		ami = c.AMI
	}
	name := c.Name
	if name == "" {
		name = "computebot-" + strings.ToLower(id)
	}
	return &computebot.Request{
		ID: id, Requester: o.User, ChannelID: o.Channel, ResponseURL: o.ResponseURL,
		State: computebot.RequestNew, CreatedAt: f.now(),
		Launch: &computebot.LaunchRequest{InstanceType: c.InstanceType, ImageRef: ami, Name: name, Reason: c.Reason, Lease: lease},
	}
}

func (f *Flow) newLambdaRequest(o Origin, c *commands.LambdaInvoke) *computebot.Request {
	return &computebot.Request{
		ID: requestID(o.Trigger), Requester: o.User, ChannelID: o.Channel, ResponseURL: o.ResponseURL,
		State: computebot.RequestNew, CreatedAt: f.now(),
		Lambda: &computebot.LambdaRequest{Function: c.Function, Payload: c.Payload, Async: c.Async},
	}
}

// acceptRequest prechecks and persists a request that goes through
// approval; the rest happens after the ack.
func (f *Flow) acceptRequest(ctx context.Context, o Origin, r *computebot.Request) Answer {
	if r.Launch != nil {
		if d := f.authz.Precheck(policy.Action{Kind: policy.ActionLaunch, Actor: r.Requester, Request: r}); d.Verdict == policy.Deny {
			return f.answer(o, reply.Refusal(d.Refusal), "refused")
		}
	}
	err := f.store.CreateRequest(ctx, r)
	switch {
	case errors.Is(err, computebot.ErrExists):
		// The same command again (the platform redelivered it): it is
		// already being handled.
		return Answer{Outcome: "accepted"}
	case err != nil:
		f.log.Error("persist request", "request_id", r.ID, "err", err)
		return f.answer(o, reply.SaveFailed(), "refused")
	}
	f.log.Info("request accepted", "request_id", r.ID, "user", r.Requester, "kind", r.Kind())
	return Answer{Job: &Job{kind: jobAdmit, requestID: r.ID}, Outcome: "accepted"}
}

// admitAndPost authorizes a new request, looks up what the message shows,
// records it as pending (or approved, when auto-approved) and posts it.
// The state is saved before the message goes out, so a click arriving right
// after the post always finds the request approvable; a request whose post
// never happened (a crash in between) is posted on the next start.
func (f *Flow) admitAndPost(ctx context.Context, id string) {
	r, err := f.store.Request(ctx, id)
	if err != nil {
		f.log.Error("load request", "request_id", id, "err", err)
		return
	}
	if r.State == computebot.RequestNew {
		if r = f.admit(ctx, r); r == nil {
			return
		}
	}
	if r.MessageTS != "" || r.State.Terminal() {
		return
	}

	ts, err := f.chat.Post(ctx, r.ChannelID, "", reply.RequestMessage(r))
	if err != nil {
		f.log.Error("post request message", "request_id", id, "err", err)
		f.withdraw(ctx, r, reply.CannotPost(r.Kind(), errors.Is(err, ErrNotInChannel)))
		return
	}
	r, err = f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.MessageTS == "" {
			cur.MessageTS = ts
		}
		return nil
	})
	if err != nil {
		f.log.Error("save request message", "request_id", id, "err", err)
		return
	}
	switch {
	case r.State == computebot.RequestApproved && r.AutoApproved:
		f.launch(ctx, r.ID, false)
	case r.State == computebot.RequestPending:
		f.post(ctx, r.ChannelID, r.MessageTS, reply.ApproversNote(r, f.authz.Approvers(), f.authz.AllowsSelfApproval()),
			"approvers note", "request_id", id)
	default:
		// Decided while the message was going out (a very fast click,
		// whose handler launches): show the decision, not the buttons.
		f.refreshMessage(ctx, r)
	}
}

// admit authorizes a new request and fills in what the message shows. It
// returns the pending or approved request, or nil when it was refused.
func (f *Flow) admit(ctx context.Context, r *computebot.Request) *computebot.Request {
	if r.Lambda != nil {
		return f.admitLambda(ctx, r)
	}
	d, err := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionLaunch, Actor: r.Requester, Request: r})
	if err != nil {
		f.log.Error("authorize launch", "request_id", r.ID, "err", err)
	}
	if d.Verdict == policy.Deny {
		f.refuse(ctx, r, reply.Refusal(d.Refusal))
		return nil
	}

	l := r.Launch
	it, err := f.cloud.InstanceType(ctx, l.InstanceType)
	if err != nil {
		f.refuse(ctx, r, reply.TypeLookupFailed(l.InstanceType, computebot.UserMessage(err)))
		return nil
	}
	img, err := f.cloud.ResolveImage(ctx, l.ImageRef)
	if err != nil {
		f.refuse(ctx, r, reply.ImageLookupFailed(l.ImageRef, computebot.UserMessage(err)))
		return nil
	}
	price, priceKnown := f.prices.Price(ctx, l.InstanceType)

	auto := d.Verdict == policy.Allow
	r = f.settleNew(ctx, r.ID, auto, func(cur *computebot.Request) {
		cl := cur.Launch
		cl.VCPUs, cl.MemoryMiB = it.VCPUs, it.MemoryMiB
		cl.ImageID, cl.ImageName, cl.ImageRoot = img.ID, img.Name, img.RootDeviceName
		cl.PricePerHour, cl.PriceKnown = price, priceKnown
	})
	if r == nil {
		return nil
	}
	if auto {
		f.audit.Record(ctx, computebot.AuditEntry{Actor: computebot.PolicyActor, Action: "approve", RequestID: r.ID, Result: "ok", Detail: "auto-approved type " + l.InstanceType})
	}
	return r
}

// settleNew moves a new request to approved (auto) or pending with its
// approval window, after fill adds what the admission looked up. nil when
// the request was no longer new or the write failed.
func (f *Flow) settleNew(ctx context.Context, id string, auto bool, fill func(*computebot.Request)) *computebot.Request {
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
		} else {
			cur.State, cur.ApprovalExpiresAt = computebot.RequestPending, now.Add(f.cfg.ApprovalTTL.Duration())
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			f.log.Error("save admitted request", "request_id", id, "err", err)
		}
		return nil
	}
	return r
}

// refuse tells the requester why, privately, and closes a new request.
func (f *Flow) refuse(ctx context.Context, r *computebot.Request, why reply.Message) {
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

// decide applies an Approve or Deny click.
func (f *Flow) decide(ctx context.Context, o Origin, c decideCommand) {
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
	if r.State != computebot.RequestPending {
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
		cur.DecidedBy, cur.DecidedAt = o.User, now
		if cur.MessageTS == "" {
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
	f.audit.Record(ctx, computebot.AuditEntry{Actor: o.User, Action: string(kind), RequestID: r.ID, Result: "ok"})
	f.refreshMessage(ctx, r)
	f.post(ctx, r.ChannelID, r.MessageTS, reply.Decision(r), "decision", "request_id", r.ID)
	if r.State == computebot.RequestApproved {
		f.proceed(ctx, r.ID, false)
	}
}

// refreshMessage re-renders the request message from the stored state.
func (f *Flow) refreshMessage(ctx context.Context, r *computebot.Request) {
	if r.MessageTS == "" {
		return
	}
	if err := f.chat.Update(ctx, r.ChannelID, r.MessageTS, reply.RequestMessage(r)); err != nil {
		f.log.Error("update request message", "request_id", r.ID, "err", err)
	}
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
	reqs, err := f.store.Requests(ctx)
	if err != nil {
		f.log.Error("status: list requests", "err", err)
		f.tell(ctx, o, reply.LookupBroke())
		return
	}
	for _, r := range reqs {
		if r.ChannelID == o.Channel && r.MessageTS == o.ThreadTS {
			f.post(ctx, o.Channel, o.ThreadTS, reply.Status(r), "status", "request_id", r.ID)
			return
		}
	}
	f.tell(ctx, o, reply.StatusNotARequest())
}
