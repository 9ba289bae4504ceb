package idle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/computebot/computebot"
)

// Error codes of the *computebot.Error values Keep and StopNow return;
// their Message is meant for the user who clicked.
const (
	CodeNoNotice      = "no-notice"      // the instance has no notice
	CodeNoticeSettled = "notice-settled" // the notice was already stopped or cancelled
)

// settle decides a due notice: cancel it (stopped meanwhile, active again,
// lease extended, policy refused) or stop the instance. listed is the
// notice as CheckDue listed it; the stored one is re-read under the
// instance's lock, so a Keep or Stop now that came first wins.
func (s *Scheduler) settle(ctx context.Context, listed Notice, inst computebot.Instance, found bool, v verdict) error {
	unlock := s.lock(listed.InstanceID)
	now := s.now()
	n, err := s.stored(ctx, listed.InstanceID)
	if err != nil {
		unlock()
		if errors.Is(err, computebot.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("idle: check %s: %w", listed.InstanceID, err)
	}
	if n.Episode != listed.Episode || n.State != StateNoticed || n.StopAt.After(now) {
		unlock()
		return nil // settled meanwhile
	}

	action := AuditIdleStop
	if n.Reason == ReasonLease {
		action = AuditLeaseStop
		if n.Action == ActionTerminate {
			action = AuditLeaseTerminate
		}
	}
	entry := computebot.AuditEntry{Time: now, Actor: SystemActor, Action: action, Target: n.InstanceID,
		RequestID: inst.Tags[computebot.TagRequest], Detail: s.why(n)}
	var audits []computebot.AuditEntry
	var announce string
	var retryErr error

	cancel := s.whyNot(n, inst, found, v, now)
	if cancel == "" {
		if err := s.authz.AllowStop(ctx, inst); err != nil {
			entry.Result = "refused"
			entry.Detail = err.Error()
			audits = append(audits, entry)
			cancel = "not stopped: " + err.Error()
		}
	}
	if cancel == "" {
		verb := "stop"
		act := s.cloud.Stop
		if n.Reason == ReasonLease && n.Action == ActionTerminate {
			verb, act = "terminate", s.cloud.Terminate
		}
		if _, err := act(ctx, n.InstanceID); err != nil {
			entry.Result = resultOf(err)
			audits = append(audits, entry)
			n.Attempts++
			if n.Attempts < maxAttempts {
				retryErr = fmt.Errorf("idle: %s %s (attempt %d of %d, retried at the next check): %w", verb, n.InstanceID, n.Attempts, maxAttempts, err)
			} else {
				cancel = fmt.Sprintf("could not %s `%s`: %s", verb, n.InstanceID, computebot.UserMessage(err))
				s.log.Error("idle: giving up", "instance", n.InstanceID, "action", verb, "err", err)
			}
		} else {
			entry.Result = "ok"
			audits = append(audits, entry)
			n.State, n.SettledAt = StateStopped, now
			done := "Stopped"
			if verb == "terminate" {
				done = "Terminated"
			}
			if n.Reason == ReasonLease {
				n.Outcome = fmt.Sprintf("%s %s (lease ended).", done, s.fmtT(now))
				announce = fmt.Sprintf("%s `%s` (lease ended %s).", strings.ToLower(done), n.InstanceID, s.fmtT(n.LeaseEnded))
			} else {
				n.Outcome = fmt.Sprintf("%s %s (idle).", done, s.fmtT(now))
				announce = fmt.Sprintf("%s `%s` (idle): %s.", strings.ToLower(done), n.InstanceID, n.Evidence())
			}
			s.log.Info("idle: "+strings.ToLower(done)+" instance", "instance", n.InstanceID, "reason", n.Reason)
		}
	}
	if cancel != "" {
		n.State, n.SettledAt = StateCancelled, now
		n.Outcome = "Cancelled: " + cancel + "."
		announce = "cancelled: " + cancel + "."
		s.log.Info("idle: notice cancelled", "instance", n.InstanceID, "why", cancel)
	}
	perr := s.kv.Put(ctx, NoticesBucket, n.InstanceID, n)
	unlock()
	for _, e := range audits {
		s.audit(ctx, e)
	}
	if perr != nil {
		return errors.Join(retryErr, fmt.Errorf("idle: save notice of %s: %w", n.InstanceID, perr))
	}
	if retryErr != nil {
		return retryErr
	}
	s.tell(ctx, n, announce)
	return nil
}

// whyNot returns why a due notice must not lead to a stop, or "".
func (s *Scheduler) whyNot(n Notice, inst computebot.Instance, found bool, v verdict, now time.Time) string {
	if !found {
		return fmt.Sprintf("`%s` was terminated meanwhile", n.InstanceID)
	}
	switch inst.State {
	case computebot.InstanceRunning:
	case computebot.InstanceStopped, computebot.InstanceStopping:
		return fmt.Sprintf("`%s` was stopped meanwhile", n.InstanceID)
	case computebot.InstanceTerminated, computebot.InstanceShuttingDown:
		return fmt.Sprintf("`%s` was terminated meanwhile", n.InstanceID)
	default:
		return fmt.Sprintf("`%s` is %s now", n.InstanceID, inst.State)
	}
	if n.Reason == ReasonLease {
		exp, ok := leaseEnd(inst)
		switch {
		case !ok:
			return fmt.Sprintf("`%s` no longer has a lease", n.InstanceID)
		case exp.After(now):
			return fmt.Sprintf("the lease of `%s` was extended until %s", n.InstanceID, s.fmtT(exp))
		}
		return ""
	}
	if !v.Idle {
		return v.activity(s.set.For)
	}
	return ""
}

// why is the audit detail of a stop.
func (s *Scheduler) why(n Notice) string {
	if n.Reason == ReasonLease {
		return "lease ended " + n.LeaseEnded.UTC().Format(time.RFC3339)
	}
	return "idle: " + n.Evidence()
}

// tell shows a settled notice: re-render it and announce in its thread;
// when the first post never completed (a crash mid-post), post the settled
// notice instead, so that the owner learns what happened.
func (s *Scheduler) tell(ctx context.Context, n Notice, announce string) {
	if n.Channel == "" || n.TS == "" {
		if _, _, err := s.notify.PostNotice(ctx, n); err != nil {
			s.log.Warn("idle: post settled notice", "instance", n.InstanceID, "err", err)
		}
		return
	}
	if err := s.notify.UpdateNotice(ctx, n); err != nil {
		s.log.Warn("idle: update notice", "instance", n.InstanceID, "err", err)
	}
	if announce != "" {
		if err := s.notify.Announce(ctx, n, announce); err != nil {
			s.log.Warn("idle: announce", "instance", n.InstanceID, "err", err)
		}
	}
}

// stored reads an instance's notice (an error wrapping
// computebot.ErrNotFound when there is none).
func (s *Scheduler) stored(ctx context.Context, id string) (Notice, error) {
	var n Notice
	err := s.kv.Get(ctx, NoticesBucket, id, &n)
	return n, err
}

// current reads the notice a user acts on, with user-facing errors.
func (s *Scheduler) current(ctx context.Context, id string) (Notice, error) {
	n, err := s.stored(ctx, id)
	switch {
	case errors.Is(err, computebot.ErrNotFound):
		return n, &computebot.Error{Code: CodeNoNotice, Message: fmt.Sprintf("`%s` has no idle or lease notice.", id), Err: err}
	case err != nil:
		return n, fmt.Errorf("idle: notice of %s: %w", id, err)
	}
	return n, nil
}

// Keep is Keep running, by actor (the bot has authorized the click): an
// idle instance is snoozed until now + Snooze; a lease is extended to
// max(now, expires-at) + Snooze (tag computebot:expires-at). The notice
// becomes "kept" and is re-rendered. Keeping a kept notice extends again
// from now; a stopped or cancelled notice cannot be kept (an error with
// code CodeNoticeSettled).
func (s *Scheduler) Keep(ctx context.Context, instanceID, actor string) (Notice, error) {
	unlock := s.lock(instanceID)
	now := s.now()
	n, err := s.current(ctx, instanceID)
	if err != nil {
		unlock()
		return Notice{}, err
	}
	if err := settledError(n); err != nil {
		unlock()
		return n, err
	}
	entry := computebot.AuditEntry{Time: now, Actor: actor, Action: AuditKeep, Target: instanceID, Result: "ok"}
	if n.Reason == ReasonLease {
		entry.Action = AuditLeaseExtend
		inst, err := s.cloud.Instance(ctx, instanceID)
		if err != nil {
			unlock()
			return n, fmt.Errorf("idle: keep %s: %w", instanceID, err)
		}
		base := now
		if exp, ok := leaseEnd(inst); ok && exp.After(base) {
			base = exp
		}
		until := base.Add(s.set.Snooze).UTC().Truncate(time.Second)
		entry.Detail = "expires-at " + until.Format(time.RFC3339)
		entry.RequestID = inst.Tags[computebot.TagRequest]
		if err := s.cloud.Tag(ctx, instanceID, map[string]string{computebot.TagExpiresAt: until.Format(time.RFC3339)}); err != nil {
			unlock()
			entry.Result = resultOf(err)
			s.audit(ctx, entry)
			return n, fmt.Errorf("idle: keep %s: extend the lease: %w", instanceID, err)
		}
		n.KeptUntil = until
		n.Outcome = fmt.Sprintf("Lease extended by <@%s> until %s.", actor, s.fmtT(until))
	} else {
		n.KeptUntil = now.Add(s.set.Snooze)
		entry.Detail = "snoozed until " + n.KeptUntil.UTC().Format(time.RFC3339)
		n.Outcome = fmt.Sprintf("Kept running by <@%s> until %s.", actor, s.fmtT(n.KeptUntil))
	}
	n.State, n.KeptBy, n.SettledAt = StateKept, actor, now
	err = s.kv.Put(ctx, NoticesBucket, instanceID, n)
	unlock()
	s.audit(ctx, entry)
	if err != nil {
		return n, fmt.Errorf("idle: keep %s: %w", instanceID, err)
	}
	s.log.Info("idle: kept", "instance", instanceID, "by", actor, "until", n.KeptUntil, "reason", n.Reason)
	if n.Channel != "" && n.TS != "" {
		if err := s.notify.UpdateNotice(ctx, n); err != nil {
			s.log.Warn("idle: update notice", "instance", instanceID, "err", err)
		}
	}
	return n, nil
}

// StopNow is Stop now, by actor (the bot has authorized the click): the
// instance is stopped at once (also for a lease notice: the button says
// stop), the notice becomes "stopped", is re-rendered and announced.
func (s *Scheduler) StopNow(ctx context.Context, instanceID, actor string) (Notice, error) {
	unlock := s.lock(instanceID)
	now := s.now()
	n, err := s.current(ctx, instanceID)
	if err != nil {
		unlock()
		return Notice{}, err
	}
	if n.State == StateStopped {
		unlock()
		return n, settledError(n)
	}
	entry := computebot.AuditEntry{Time: now, Actor: actor, Action: AuditStopNow, Target: instanceID, Detail: s.why(n)}
	if _, err := s.cloud.Stop(ctx, instanceID); err != nil {
		unlock()
		entry.Result = resultOf(err)
		s.audit(ctx, entry)
		return n, fmt.Errorf("idle: stop %s: %w", instanceID, err)
	}
	entry.Result = "ok"
	n.State, n.SettledAt = StateStopped, now
	n.Outcome = fmt.Sprintf("Stopped by <@%s> %s (Stop now).", actor, s.fmtT(now))
	err = s.kv.Put(ctx, NoticesBucket, instanceID, n)
	unlock()
	s.audit(ctx, entry)
	if err != nil {
		return n, fmt.Errorf("idle: stop %s: save the notice: %w", instanceID, err)
	}
	s.log.Info("idle: stopped now", "instance", instanceID, "by", actor)
	s.tell(ctx, n, fmt.Sprintf("stopped `%s` (Stop now by <@%s>).", instanceID, actor))
	return n, nil
}

// settledError refuses to act on a stopped or cancelled notice.
func settledError(n Notice) error {
	switch n.State {
	case StateStopped:
		return &computebot.Error{Code: CodeNoticeSettled, Message: fmt.Sprintf("`%s` was already stopped. %s", n.InstanceID, n.Outcome)}
	case StateCancelled:
		return &computebot.Error{Code: CodeNoticeSettled, Message: fmt.Sprintf("That notice for `%s` is over. %s", n.InstanceID, n.Outcome)}
	}
	return nil
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
		case n.State == StateNoticed:
			r.Noticed = append(r.Noticed, n)
		case n.State == StateKept && now.Before(n.KeptUntil):
			r.Snoozed = append(r.Snoozed, Snooze{InstanceID: n.InstanceID, Name: n.Name, Owner: n.Owner, Reason: n.Reason, KeptBy: n.KeptBy, Until: n.KeptUntil})
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

// resultOf is an audit result for a failed call: the error's code, or
// "error".
func resultOf(err error) string {
	if c := computebot.ErrorCode(err); c != "" {
		return c
	}
	return "error"
}
