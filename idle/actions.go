package idle

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
)

// settle decides a due notice: cancel it (stopped meanwhile, active again,
// lease extended, policy refused) or claim it and stop the instance.
// listed is the notice as CheckDue listed it; the decision is written only
// over a stored notice of the same episode that is still due, so a Keep or
// Stop now that came first wins.
func (s *Scheduler) settle(ctx context.Context, listed Notice, inst computebot.Instance, found bool, v verdict) error {
	id := listed.InstanceID
	now := s.now()
	stillDue := func(cur *Notice, found bool) bool {
		return found && cur.Episode == listed.Episode && cur.State == StateNoticed && !cur.StopAt.After(now)
	}

	cancel := s.whyNot(listed, inst, found, v, now)
	var refusal *computebot.AuditEntry
	if cancel == nil {
		if code, err := s.allowStop(ctx, inst); code != "" {
			if err != nil {
				s.log.Error("idle: policy check failed: the stop is refused", "instance", id, "err", err)
			}
			cancel = &Cancellation{Reason: CancelRefused, Refusal: code}
			refusal = &computebot.AuditEntry{Time: now, Actor: computebot.SystemActor, Action: stopAudit(listed, ""), Target: id,
				RequestID: inst.Tags[computebot.TagRequest], Result: "refused", Detail: string(code)}
		}
	}
	if cancel != nil {
		n, err := s.update(ctx, id, func(cur *Notice, found bool) error {
			if !stillDue(cur, found) {
				return errSkip
			}
			cur.State, cur.How, cur.SettledBy, cur.SettledAt, cur.Cancel = StateCancelled, SettledCancelled, "", now, cancel
			return nil
		})
		switch {
		case errors.Is(err, errSkip):
			return nil // settled meanwhile
		case err != nil:
			return fmt.Errorf("idle: cancel the notice of %s: %w", id, err)
		}
		if refusal != nil {
			s.audit(ctx, *refusal)
		}
		s.log.Info("idle: notice cancelled", "instance", id, "why", cancel.Reason)
		s.show(ctx, n)
		return nil
	}

	token := newToken()
	n, err := s.update(ctx, id, func(cur *Notice, found bool) error {
		if !stillDue(cur, found) {
			return errSkip
		}
		cur.State, cur.Claim = StateStopping, &Claim{Token: token, At: now, Prev: StateNoticed}
		return nil
	})
	switch {
	case errors.Is(err, errSkip):
		return nil // kept, stopped now or claimed meanwhile
	case err != nil:
		return fmt.Errorf("idle: claim the notice of %s: %w", id, err)
	}
	return s.finish(ctx, s.stopClaimed(ctx, n, inst.Tags[computebot.TagRequest]))
}

// resume takes over a claim that a crashed process left: a stopping
// notice is stopped again (StopInstances and TerminateInstances are
// idempotent), an extending one goes back to its previous state (whether
// the lease was extended or not, the next check sees the tag).
func (s *Scheduler) resume(ctx context.Context, listed Notice) error {
	id := listed.InstanceID
	now := s.now()
	same := func(cur *Notice, found bool) bool {
		return found && cur.Episode == listed.Episode && cur.State == listed.State && cur.staleClaim(now) &&
			tokenOf(cur.Claim) == tokenOf(listed.Claim)
	}
	if listed.State == StateExtending {
		_, err := s.update(ctx, id, func(cur *Notice, found bool) error {
			if !same(cur, found) {
				return errSkip
			}
			cur.State, cur.Claim = prevOf(cur.Claim), nil
			return nil
		})
		switch {
		case errors.Is(err, errSkip):
			return nil
		case err != nil:
			return fmt.Errorf("idle: release the stale claim on %s: %w", id, err)
		}
		s.log.Warn("idle: released a lease extension left by a crash", "instance", id)
		return nil
	}
	token := newToken()
	n, err := s.update(ctx, id, func(cur *Notice, found bool) error {
		if !same(cur, found) {
			return errSkip
		}
		c := &Claim{Token: token, At: now, Prev: StateNoticed}
		if cur.Claim != nil {
			c.By, c.Prev = cur.Claim.By, cur.Claim.Prev
		}
		cur.Claim = c
		return nil
	})
	switch {
	case errors.Is(err, errSkip):
		return nil
	case err != nil:
		return fmt.Errorf("idle: take over the stale claim on %s: %w", id, err)
	}
	s.log.Warn("idle: resuming a stop left by a crash", "instance", id, "by", n.Claim.By)
	return s.finish(ctx, s.stopClaimed(ctx, n, ""))
}

// stopResult is what became of a stop under a claim.
type stopResult struct {
	n       Notice // as recorded (or as claimed when the record failed)
	callErr error  // from Stop or Terminate
	err     error  // recording the result failed; the claim stays, for a later check to take over
}

// stopClaimed makes the call n's claim (State stopping) stands for, then
// records its result over the same claim: stopped; or, when the call
// failed, the previous state (Stop now), another attempt at the next check
// (noticed) or, after maxAttempts, cancelled. The call and the record are
// not cut short by Stop, so that a shutdown leaves no claim behind.
func (s *Scheduler) stopClaimed(ctx context.Context, n Notice, requestID string) stopResult {
	c := *n.Claim
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	terminate := c.By == "" && n.Terminates()
	actor := c.By
	if actor == "" {
		actor = computebot.SystemActor
	}
	var how computebot.Stopped
	var callErr error
	if terminate {
		_, callErr = s.cloud.Terminate(ctx, n.InstanceID)
	} else {
		how, callErr = computebot.StopKeepingMemory(ctx, s.cloud, computebot.Instance{ID: n.InstanceID, Hibernation: n.Hibernates})
	}
	now := s.now()
	s.audit(ctx, computebot.AuditEntry{Time: now, Actor: actor, Action: stopAudit(n, c.By), Target: n.InstanceID,
		RequestID: requestID, Result: computebot.AuditResult(callErr), Detail: why(n)})

	rec, err := s.update(ctx, n.InstanceID, func(cur *Notice, found bool) error {
		if !found || cur.Episode != n.Episode || cur.State != StateStopping || tokenOf(cur.Claim) != c.Token {
			return errReplaced
		}
		cur.Claim = nil
		switch {
		case callErr == nil:
			cur.State, cur.SettledBy, cur.SettledAt, cur.Cancel = StateStopped, c.By, now, nil
			cur.Hibernated, cur.NotHibernated = how.Hibernated, how.NotHibernated
			switch {
			case c.By != "":
				cur.How = SettledStopNow
			case terminate:
				cur.How = SettledTerminated
			default:
				cur.How = SettledStopped
			}
		case c.By != "":
			cur.State = c.Prev
		default:
			cur.Attempts++
			cur.State = StateNoticed
			if cur.Attempts >= maxAttempts {
				cur.State, cur.How, cur.SettledBy, cur.SettledAt = StateCancelled, SettledCancelled, "", now
				cur.Cancel = &Cancellation{Reason: CancelStopFailed, ErrorCode: computebot.ErrorCode(callErr), ErrorMessage: computebot.UserMessage(callErr)}
			}
		}
		return nil
	})
	if err != nil {
		return stopResult{n: n, callErr: callErr, err: fmt.Errorf("idle: record the %s of %s: %w", verb(terminate), n.InstanceID, err)}
	}
	if rec.State == StateStopped {
		s.obs.IdleStopped()
		s.log.Info("idle: "+string(rec.How)+" instance", "instance", n.InstanceID, "reason", n.Reason, "by", c.By)
		s.tellChanged(n.Owner)
	}
	return stopResult{n: rec, callErr: callErr}
}

func verb(terminate bool) string {
	if terminate {
		return "terminate"
	}
	return "stop"
}

// finish shows the outcome of the scheduler's own stop; a failed call is
// an error, retried at the next check while attempts are left.
func (s *Scheduler) finish(ctx context.Context, r stopResult) error {
	n := r.n
	if r.err != nil {
		return errors.Join(r.callErr, r.err)
	}
	switch n.State {
	case StateStopped:
		s.show(ctx, n)
	case StateCancelled:
		s.log.Error("idle: giving up", "instance", n.InstanceID, "attempts", n.Attempts, "err", r.callErr)
		s.show(ctx, n)
	case StateNoticed:
		return fmt.Errorf("idle: %s %s (attempt %d of %d, retried at the next check): %w",
			verb(n.Terminates()), n.InstanceID, n.Attempts, maxAttempts, r.callErr)
	default: // a resumed Stop now that failed: back where it was
		s.log.Warn("idle: resumed Stop now failed", "instance", n.InstanceID, "err", r.callErr)
	}
	return nil
}

// whyNot returns why a due notice must not lead to a stop, or nil.
func (s *Scheduler) whyNot(n Notice, inst computebot.Instance, found bool, v verdict, now time.Time) *Cancellation {
	if !found {
		return &Cancellation{Reason: CancelTerminated}
	}
	switch inst.State {
	case computebot.InstanceRunning:
	case computebot.InstanceStopped, computebot.InstanceStopping:
		return &Cancellation{Reason: CancelStopped}
	case computebot.InstanceTerminated, computebot.InstanceShuttingDown:
		return &Cancellation{Reason: CancelTerminated}
	default:
		return &Cancellation{Reason: CancelState, State: inst.State}
	}
	if n.Reason == ReasonLease {
		exp, ok := leaseEnd(inst)
		switch {
		case !ok:
			return &Cancellation{Reason: CancelNoLease}
		case exp.After(now):
			return &Cancellation{Reason: CancelLeaseExtended, LeaseUntil: exp}
		}
		return nil
	}
	if until, ok := keepUntil(inst); ok && until.After(now) {
		return &Cancellation{Reason: CancelKept, LeaseUntil: until}
	}
	if n.Reason == ReasonHours {
		return hoursCancellation(n, inst, now)
	}
	return v.cancellation(s.window)
}

// keepUntil is an instance's computebot:keep-until (/keep), if any.
func keepUntil(inst computebot.Instance) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, inst.Tags[computebot.TagKeepUntil])
	return t, err == nil
}

// allowStop asks the policy about the scheduler's own stop of inst: the
// refusal code when it is refused (also when the check failed: err).
func (s *Scheduler) allowStop(ctx context.Context, inst computebot.Instance) (policy.RefusalCode, error) {
	d, err := s.authz.Authorize(ctx, policy.Action{Kind: policy.ActionAutoStop, Actor: computebot.SystemActor, Instance: &inst})
	if err == nil && d.Verdict == policy.Allow {
		return "", nil
	}
	if d.Verdict == policy.Deny && d.Refusal.Code != "" {
		return d.Refusal.Code, err
	}
	return policy.RefuseInternal, err
}

// stopAudit is the audit action of a stop by user ("" the scheduler).
func stopAudit(n Notice, user string) string {
	switch {
	case user != "":
		return AuditStopNow
	case n.Reason == ReasonHours:
		return AuditHoursStop
	case n.Reason != ReasonLease:
		return AuditIdleStop
	case n.Terminates():
		return AuditLeaseTerminate
	}
	return AuditLeaseStop
}

// why is the audit detail of a stop: the facts behind it.
func why(n Notice) string {
	switch n.Reason {
	case ReasonLease:
		return "lease ended " + n.LeaseEnded.UTC().Format(time.RFC3339)
	case ReasonHours:
		return "office hours (" + n.Hours + ") ended " + n.HoursEnded.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("idle: max_cpu=%.1f network_bytes=%.0f window=%s", n.MaxCPU, n.NetworkBytes, n.Window)
}

// show tells people about a notice whose state changed: it re-renders the
// notice and, once stopped or cancelled, announces it in its thread. A
// notice whose post may still be in flight is left to the poster, which
// shows the settled notice when its post returns; one whose post never
// completed (a crash mid-post) is posted settled, so that the owner learns
// what happened.
func (s *Scheduler) show(ctx context.Context, n Notice) {
	if !n.posted() {
		if s.mayBePosting(n) || n.State == StateKept {
			return
		}
		// Its poster died (a crash after the post): PostNotice finds the
		// first post and updates it, or posts the settled notice.
		ch, ts, err := s.notify.PostNotice(ctx, n)
		if err != nil {
			s.log.Warn("idle: post settled notice", "instance", n.InstanceID, "err", err)
			return
		}
		n.Channel, n.TS = ch, ts
		if n.State == StateStopped || n.State == StateCancelled {
			if err := s.notify.Announce(ctx, n); err != nil {
				s.log.Warn("idle: announce", "instance", n.InstanceID, "err", err)
			}
		}
		return
	}
	if err := s.notify.UpdateNotice(ctx, n); err != nil {
		s.log.Warn("idle: update notice", "instance", n.InstanceID, "err", err)
	}
	if n.State == StateStopped || n.State == StateCancelled {
		if err := s.notify.Announce(ctx, n); err != nil {
			s.log.Warn("idle: announce", "instance", n.InstanceID, "err", err)
		}
	}
}

// Notice returns an instance's notice: an error wrapping ErrNoNotice when
// it has none.
func (s *Scheduler) Notice(ctx context.Context, instanceID string) (Notice, error) {
	var n Notice
	err := s.kv.Get(ctx, NoticesBucket, instanceID, &n)
	switch {
	case errors.Is(err, computebot.ErrNotFound):
		return Notice{}, &NoNoticeError{InstanceID: instanceID}
	case err != nil:
		return Notice{}, fmt.Errorf("idle: notice of %s: %w", instanceID, err)
	}
	return n, nil
}

// Keep is Keep running, by actor (the caller has authorized the click): an
// idle instance is snoozed until now + snooze; a lease is extended to
// max(now, expires-at) + snooze (tag computebot:expires-at). The notice
// becomes "kept" and is re-rendered. Keeping a kept notice extends again
// from now. Errors: a *NoNoticeError; a *SettledError for a stopped or
// cancelled notice, or one being stopped or extended right now.
func (s *Scheduler) Keep(ctx context.Context, instanceID, actor string) (Notice, error) {
	now := s.now()
	token := newToken()
	n, err := s.update(ctx, instanceID, func(cur *Notice, found bool) error {
		if !found {
			return &NoNoticeError{InstanceID: instanceID}
		}
		if cur.State != StateNoticed && cur.State != StateKept {
			return &SettledError{Notice: *cur}
		}
		if cur.Reason == ReasonLease {
			// The new lease end depends on the tag: claim, then tag.
			cur.State, cur.Claim = StateExtending, &Claim{Token: token, At: now, By: actor, Prev: cur.State}
			return nil
		}
		cur.State, cur.How, cur.SettledBy, cur.SettledAt, cur.Cancel = StateKept, SettledKept, actor, now, nil
		cur.KeptUntil = now.Add(s.snooze)
		return nil
	})
	if err != nil {
		return n, keepErr(instanceID, err)
	}
	entry := computebot.AuditEntry{Time: now, Actor: actor, Action: AuditKeep, Target: instanceID, Result: "ok"}
	if n.State == StateExtending {
		entry.Action = AuditLeaseExtend
		if n, err = s.extend(ctx, n, &entry); err != nil {
			return n, err
		}
	} else {
		entry.Detail = "snoozed until " + n.KeptUntil.UTC().Format(time.RFC3339)
	}
	s.audit(ctx, entry)
	s.log.Info("idle: kept", "instance", instanceID, "by", actor, "until", n.KeptUntil, "reason", n.Reason)
	s.show(ctx, n)
	return n, nil
}

// extend is Keep running on a lease notice n claimed "extending": read the
// lease, tag the new one, record "kept" over the claim. When a call fails
// the claim is released (the notice goes back to its previous state).
func (s *Scheduler) extend(ctx context.Context, n Notice, entry *computebot.AuditEntry) (Notice, error) {
	c := *n.Claim
	id := n.InstanceID
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	release := func(cause error) (Notice, error) {
		rec, err := s.update(ctx, id, func(cur *Notice, found bool) error {
			if !found || cur.State != StateExtending || tokenOf(cur.Claim) != c.Token {
				return errReplaced
			}
			cur.State, cur.Claim = c.Prev, nil
			return nil
		})
		if err != nil {
			s.log.Error("idle: release the lease claim (a later check does)", "instance", id, "err", err)
			rec = n
		}
		return rec, cause
	}
	inst, err := s.cloud.Instance(ctx, id)
	if err != nil {
		return release(fmt.Errorf("idle: keep %s: %w", id, err))
	}
	base := c.At
	if exp, ok := leaseEnd(inst); ok && exp.After(base) {
		base = exp
	}
	until := base.Add(s.snooze).UTC().Truncate(time.Second)
	entry.Detail = "expires-at " + until.Format(time.RFC3339)
	entry.RequestID = inst.Tags[computebot.TagRequest]
	if err := s.cloud.Tag(ctx, id, map[string]string{computebot.TagExpiresAt: until.Format(time.RFC3339)}); err != nil {
		entry.Result = computebot.AuditResult(err)
		s.audit(ctx, *entry)
		return release(fmt.Errorf("idle: keep %s: extend the lease: %w", id, err))
	}
	rec, err := s.update(ctx, id, func(cur *Notice, found bool) error {
		if !found || cur.State != StateExtending || tokenOf(cur.Claim) != c.Token {
			return errReplaced
		}
		cur.State, cur.How, cur.SettledBy, cur.SettledAt, cur.KeptUntil = StateKept, SettledKept, c.By, c.At, until
		cur.Claim, cur.Cancel = nil, nil
		return nil
	})
	if err != nil {
		s.audit(ctx, *entry) // the lease was extended
		return n, fmt.Errorf("idle: keep %s: record it: %w", id, err)
	}
	return rec, nil
}

// StopNow is Stop now, by actor (the caller has authorized the click): the
// instance is stopped at once (also for a lease notice: the button says
// stop), the notice becomes "stopped", is re-rendered and announced.
// Errors: a *NoNoticeError; a *SettledError for a notice already stopped
// or being stopped or extended right now; the Stop call's error (the
// notice is then as it was).
func (s *Scheduler) StopNow(ctx context.Context, instanceID, actor string) (Notice, error) {
	now := s.now()
	token := newToken()
	n, err := s.update(ctx, instanceID, func(cur *Notice, found bool) error {
		if !found {
			return &NoNoticeError{InstanceID: instanceID}
		}
		if cur.State == StateStopped || cur.claimed() {
			return &SettledError{Notice: *cur}
		}
		cur.State, cur.Claim = StateStopping, &Claim{Token: token, At: now, By: actor, Prev: cur.State}
		return nil
	})
	if err != nil {
		return n, keepErr(instanceID, err)
	}
	r := s.stopClaimed(ctx, n, "")
	switch {
	case r.callErr != nil:
		if r.err != nil {
			s.log.Error("idle: stop now failed and its claim stays (a later check retries)", "instance", instanceID, "err", r.err)
		}
		return r.n, fmt.Errorf("idle: stop %s: %w", instanceID, r.callErr)
	case r.err != nil:
		return r.n, r.err
	}
	s.show(ctx, r.n)
	return r.n, nil
}

// keepErr passes the typed refusals through and wraps the rest.
func keepErr(id string, err error) error {
	var noNotice *NoNoticeError
	var settled *SettledError
	if errors.As(err, &noNotice) || errors.As(err, &settled) {
		return err
	}
	return fmt.Errorf("idle: notice of %s: %w", id, err)
}

// newToken returns a fresh claim token.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

func tokenOf(c *Claim) string {
	if c == nil {
		return ""
	}
	return c.Token
}

func prevOf(c *Claim) string {
	if c == nil || c.Prev == "" {
		return StateNoticed
	}
	return c.Prev
}

// Report lists the pending notices (soonest stop first), those due before
// the next scan, and the kept instances whose snooze has not ended.
func (s *Scheduler) Report(ctx context.Context) (Report, error) {
	now := s.now()
	notices, err := s.loadNotices(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("idle: report: %w", err)
	}
	r := Report{NextScan: s.sched.Next(now)}
	for _, n := range notices {
		switch {
		case n.pending():
			r.Noticed = append(r.Noticed, n)
		case n.State == StateKept && now.Before(n.KeptUntil):
			r.Snoozed = append(r.Snoozed, Snooze{InstanceID: n.InstanceID, Name: n.Name, Owner: n.Owner, Reason: n.Reason, KeptBy: n.SettledBy, Until: n.KeptUntil})
		}
	}
	slices.SortFunc(r.Noticed, func(a, b Notice) int {
		return cmp.Or(a.StopAt.Compare(b.StopAt), cmp.Compare(a.InstanceID, b.InstanceID))
	})
	slices.SortFunc(r.Snoozed, func(a, b Snooze) int {
		return cmp.Or(a.Until.Compare(b.Until), cmp.Compare(a.InstanceID, b.InstanceID))
	})
	for _, n := range r.Noticed {
		if !n.StopAt.After(r.NextScan) {
			r.AboutToStop = append(r.AboutToStop, n)
		}
	}
	return r, nil
}

// tellChanged tells whoever asked (Deps.Changed) that an owner's instance
// changed.
func (s *Scheduler) tellChanged(owner string) {
	if s.changed != nil && owner != "" {
		s.changed(owner)
	}
}
