package idle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/schedule"
)

// Office hours. An instance tagged computebot:schedule ("weekdays
// 08:00-19:00 Europe/Berlin") is started when its hours begin and, when
// they end, gets a notice (ReasonHours) whose grace ends in a stop, with
// Keep running and Stop now as for idle notices. The scheduler acts on the
// starts and ends themselves, never on "is it within hours now": an
// instance someone stopped by hand during its hours stays stopped until the
// next start, and one started by hand after hours is left to the idle
// check. Every run looks at the events since the instance's last run
// (hoursRecord.Checked), so a run late by minutes, or a restart, misses
// none; a start or end that is no longer current when it is seen (the bot
// was down through it) is not acted on.

// HoursBucket holds each scheduled instance's hoursRecord, by instance ID.
const HoursBucket = "office-hours"

// hoursRecord is where office hours stand for one instance.
type hoursRecord struct {
	// Schedule is the tag's text the record is about; another text (a new
	// /schedule) starts afresh from the moment it is seen.
	Schedule string `json:"schedule"`
	// Checked is the end of the last run's window: events up to it are done.
	Checked time.Time `json:"checked"`
	// StopDue: the hours ended and the instance has not been stopped or
	// started again since, so it gets a notice (again, after a Keep
	// running) until it stops. Episode is the notice posted for it.
	StopDue bool   `json:"stop_due,omitempty"`
	Episode string `json:"episode,omitempty"`
	// Announce: started for its hours, its address not posted yet (it is
	// once a run finds it running: the start itself does not wait).
	Announce bool `json:"announce,omitempty"`
}

// Hours runs office hours once: for every instance with a schedule, the
// starts and ends since its last run.
func (s *Scheduler) Hours(ctx context.Context) error {
	now := s.now()
	insts, err := s.cloud.ManagedInstances(ctx, computebot.InstanceFilter{TagKey: computebot.TagSchedule,
		States: []string{computebot.InstancePending, computebot.InstanceRunning, computebot.InstanceStopping, computebot.InstanceStopped}})
	if err != nil {
		return fmt.Errorf("idle: office hours: list instances: %w", err)
	}
	notices, err := s.loadNotices(ctx)
	if err != nil {
		return fmt.Errorf("idle: office hours: %w", err)
	}
	var errs []error
	for _, inst := range insts {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		text := inst.Tags[computebot.TagSchedule]
		if text == "" || text == schedule.Off {
			continue
		}
		hours, err := schedule.Parse(text, nil)
		if err != nil {
			s.log.Warn("idle: office hours: the instance's schedule tag does not parse; ignored", "instance", inst.ID, "schedule", text, "err", err)
			continue
		}
		if err := s.hoursOf(ctx, inst, hours, notices[inst.ID], now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hoursOf handles one instance's events in (Checked, now], then posts the
// end-of-hours notice if one is due.
func (s *Scheduler) hoursOf(ctx context.Context, inst computebot.Instance, hours schedule.Schedule, notice Notice, now time.Time) error {
	text := hours.String()
	var rec hoursRecord
	if err := s.kv.Get(ctx, HoursBucket, inst.ID, &rec); err != nil && !errors.Is(err, computebot.ErrNotFound) {
		return fmt.Errorf("idle: office hours of %s: %w", inst.ID, err)
	}
	if rec.Schedule != text || rec.Checked.IsZero() || rec.Checked.After(now) {
		rec = hoursRecord{Schedule: text, Checked: now} // from now on
	}
	within := hours.Within(now)
	for _, ev := range hours.Events(rec.Checked, now) {
		if ev.Start {
			rec.StopDue, rec.Episode = false, ""
			if within && inst.State == computebot.InstanceStopped && s.startForHours(ctx, inst, text) {
				rec.Announce = true
			}
			continue
		}
		rec.StopDue, rec.Episode, rec.Announce = !within, "", false
	}
	if rec.Announce && inst.State == computebot.InstanceRunning {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), postTimeout)
		err := s.notify.HoursStarted(pctx, inst, text)
		cancel()
		if err != nil {
			s.log.Warn("idle: office hours: could not post the started instance's address", "instance", inst.ID, "err", err)
		}
		rec.Announce = false // posted, or given up: the thread is not worth a retry loop
	}
	switch {
	case inst.State == computebot.InstanceStopped || inst.State == computebot.InstanceStopping:
		rec.StopDue = false // stopped: by the notice, by Stop now or by hand
	case rec.Episode != "" && notice.Episode == rec.Episode && notice.State == StateCancelled:
		rec.StopDue = false // the notice was cancelled (kept by /keep, refused…): no new one
	}
	if rec.StopDue && inst.State == computebot.InstanceRunning && !notice.blocks(now) {
		if until, ok := keepUntil(inst); !ok || !until.After(now) {
			n := s.newNotice(inst, ReasonHours, now)
			n.Hours, n.HoursEnded = text, lastEnd(hours, now)
			n.CostPerHour, n.PriceKnown = s.prices(ctx, inst.Type)
			posted, err := s.post(ctx, n)
			if err != nil {
				return err
			}
			if posted {
				rec.Episode = n.Episode
			}
		}
	}
	rec.Checked = now
	var stored hoursRecord
	err := s.kv.Update(ctx, HoursBucket, inst.ID, &stored, func(bool) error {
		stored = rec
		return nil
	})
	if err != nil {
		return fmt.Errorf("idle: office hours of %s: save: %w", inst.ID, err)
	}
	return nil
}

// startForHours starts a stopped instance whose hours began, after the
// policy's yes, and reports whether it did; a later run posts its address
// once it runs. A failure is logged and audited: the instance stays
// stopped until someone starts it.
func (s *Scheduler) startForHours(ctx context.Context, inst computebot.Instance, hours string) bool {
	if exp, ok := leaseEnd(inst); ok && !exp.After(s.now()) {
		// Its lease is over: starting it would only lead to a lease stop,
		// each morning again. /extend gives it a lease to start with.
		s.log.Info("idle: office hours began, but the lease has ended: not started", "instance", inst.ID, "lease_ended", exp)
		return false
	}
	d, err := s.authz.Authorize(ctx, policy.Action{Kind: policy.ActionAutoStart, Actor: computebot.SystemActor, Instance: &inst})
	if err != nil || d.Verdict != policy.Allow {
		s.log.Warn("idle: office hours: the start is refused", "instance", inst.ID, "refusal", d.Refusal.Code, "err", err)
		return false
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	_, err = s.cloud.Start(cctx, inst.ID)
	s.audit(cctx, computebot.AuditEntry{Time: s.now(), Actor: computebot.SystemActor, Action: AuditHoursStart, Target: inst.ID,
		RequestID: inst.Tags[computebot.TagRequest], Result: computebot.AuditResult(err), Detail: "office hours (" + hours + ") began"})
	if err != nil {
		s.log.Error("idle: office hours: start failed", "instance", inst.ID, "err", err)
		return false
	}
	s.log.Info("idle: office hours began: started", "instance", inst.ID, "schedule", hours)
	s.tellChanged(inst.Tags[computebot.TagOwner])
	return true
}

// lastEnd is the latest end of hours at or before now.
func lastEnd(hours schedule.Schedule, now time.Time) time.Time {
	var last time.Time
	for _, ev := range hours.Events(now.AddDate(0, 0, -8), now) {
		if !ev.Start {
			last = ev.At
		}
	}
	return last
}

// hoursCancellation is why a due office-hours notice must not lead to a
// stop: the instance has other hours now (or none), or is within them.
func hoursCancellation(n Notice, inst computebot.Instance, now time.Time) *Cancellation {
	hours, err := schedule.Parse(inst.Tags[computebot.TagSchedule], nil)
	if err != nil || hours.String() != n.Hours {
		return &Cancellation{Reason: CancelUnscheduled}
	}
	if hours.Within(now) {
		return &Cancellation{Reason: CancelHoursBegan}
	}
	return nil
}
