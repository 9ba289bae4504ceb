package flow

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// This month's spend per person, for approvers' home tabs: how long each
// instance ran this month, from the audit log (its launch, stops and
// starts, by the bot or by people), at its request's hourly price. An
// instance with no entry this month that runs now ran all month.

// runEvents are the audited actions that start or stop an instance.
var (
	runStarts = map[string]bool{"launch": true, string(policy.ActionStart): true, idle.AuditHoursStart: true}
	runStops  = map[string]bool{string(policy.ActionStop): true, string(policy.ActionTerminate): true, idle.AuditIdleStop: true,
		idle.AuditLeaseStop: true, idle.AuditLeaseTerminate: true, idle.AuditStopNow: true, idle.AuditHoursStop: true}
)

// monthSpend adds up, per owner, the cost of every instance's running time
// since the month began. running are the instances listed now (their
// owners, types and states); the audit log says the rest.
func (f *Flow) monthSpend(ctx context.Context, running []computebot.Instance, now time.Time) []reply.Spend {
	monthStart := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	entries, err := f.store.AuditSince(ctx, monthStart)
	if err != nil {
		f.log.Warn("home tab: read the audit log for the spend", "err", err)
		return nil // no figures rather than wrong ones
	}
	slices.SortStableFunc(entries, func(a, b computebot.AuditEntry) int { return a.Time.Compare(b.Time) })

	type run struct {
		owner, typ, request string
		since               time.Time // running since; zero: not running
		hours               float64
		seen                bool      // a start or stop this month
		lastStart           time.Time // EC2's launch time (its last start), when listed
	}
	runs := map[string]*run{}
	get := func(id string) *run {
		if runs[id] == nil {
			runs[id] = &run{}
		}
		return runs[id]
	}
	for _, in := range running {
		r := get(in.ID)
		r.owner, r.typ, r.lastStart = in.Tags[computebot.TagOwner], in.Type, in.LaunchTime
	}
	// fromThe1st is when an instance whose first news this month is a stop
	// started running: the 1st, or its last start when that is later.
	fromThe1st := func(r *run) time.Time {
		if r.lastStart.After(monthStart) {
			return r.lastStart
		}
		return monthStart
	}
	for _, e := range entries {
		if e.Result != "ok" || e.Target == "" || !strings.HasPrefix(e.Target, "i-") {
			continue
		}
		r := get(e.Target)
		if r.request == "" {
			r.request = e.RequestID
		}
		switch {
		case runStarts[e.Action]:
			if r.since.IsZero() {
				r.since = e.Time
			}
			r.seen = true
		case runStops[e.Action]:
			// A first stop this month means it ran from the 1st; a first
			// terminate says nothing (a stopped instance can be terminated).
			if !r.seen && r.since.IsZero() && !strings.HasSuffix(e.Action, "terminate") {
				r.since = fromThe1st(r)
				if r.since.After(e.Time) {
					r.since = e.Time
				}
			}
			if !r.since.IsZero() {
				r.hours += e.Time.Sub(r.since).Hours()
				r.since = time.Time{}
			}
			r.seen = true
		}
	}
	byOwner := map[string]float64{}
	for id, r := range runs {
		if !r.seen && slices.ContainsFunc(running, func(in computebot.Instance) bool {
			return in.ID == id && in.State == computebot.InstanceRunning
		}) {
			r.since = fromThe1st(r) // running, with no start or stop this month
		}
		if !r.since.IsZero() {
			r.hours += now.Sub(r.since).Hours()
		}
		if r.hours <= 0 {
			continue
		}
		owner, typ := r.owner, r.typ
		if req, err := f.store.Request(ctx, r.request); r.request != "" && err == nil && req.Launch != nil {
			owner = cmp.Or(owner, req.Requester)
			typ = cmp.Or(typ, req.Launch.Current().InstanceType)
		}
		if owner == "" || typ == "" {
			continue
		}
		if usd, known := f.prices.Price(ctx, typ); known {
			byOwner[owner] += usd * r.hours
		}
	}
	out := make([]reply.Spend, 0, len(byOwner))
	for owner, usd := range byOwner {
		out = append(out, reply.Spend{User: owner, USD: usd})
	}
	slices.SortFunc(out, func(a, b reply.Spend) int { return cmp.Or(cmp.Compare(b.USD, a.USD), strings.Compare(a.User, b.User)) })
	return out
}
