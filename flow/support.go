package flow

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/computebot/computebot"
)

// What the workflows share with the policy and the idle scheduler, built
// once in cmd/computebot: the quota count, prices and the audit log.

// Usage counts a user's active launches for the quota (policy.Usage): their
// pending or running managed instances, and their requests that are
// approved, executing or launched but whose instance is not among those yet
// (EC2's listing lags a launch by a few seconds), each counted once.
type Usage struct {
	cloud computebot.Compute
	store computebot.Store
}

// NewUsage counts from cloud and store.
func NewUsage(cloud computebot.Compute, store computebot.Store) *Usage {
	return &Usage{cloud: cloud, store: store}
}

// ActiveLaunches counts owner's active launches, leaving out request except.
func (u *Usage) ActiveLaunches(ctx context.Context, owner, except string) (int, error) {
	insts, err := u.cloud.ManagedInstances(ctx, computebot.InstanceFilter{
		Owner:  owner,
		States: []string{computebot.InstancePending, computebot.InstanceRunning},
	})
	if err != nil {
		return 0, err
	}
	active := make(map[string]bool, len(insts))
	for _, in := range insts {
		if in.Tags[computebot.TagRequest] != except || except == "" {
			active[in.ID] = true
		}
	}
	reqs, err := u.store.Requests(ctx, computebot.RequestApproved, computebot.RequestExecuting, computebot.RequestLaunched)
	if err != nil {
		return 0, err
	}
	n := len(active)
	for _, r := range reqs {
		if r.Requester != owner || r.ID == except || r.Launch == nil {
			continue
		}
		if id := r.Launch.InstanceID; id == "" || !active[id] {
			n++
		}
	}
	return n, nil
}

// Prices answers hourly prices: the configured overrides first (negotiated
// rates), then the Pricing API.
type Prices struct {
	cloud     computebot.Compute
	overrides map[string]float64
	log       *slog.Logger
}

// NewPrices looks prices up in overrides (launch.prices), then in cloud.
func NewPrices(cloud computebot.Compute, overrides map[string]float64, log *slog.Logger) *Prices {
	if log == nil {
		log = slog.Default()
	}
	return &Prices{cloud: cloud, overrides: overrides, log: log}
}

// Price is an instance type's on-demand price in USD per hour; false when
// neither the config nor the Pricing API knows it.
func (p *Prices) Price(ctx context.Context, instanceType string) (float64, bool) {
	if usd, ok := p.overrides[instanceType]; ok {
		return usd, true
	}
	usd, err := p.cloud.HourlyPrice(ctx, instanceType)
	if err != nil {
		if !errors.Is(err, computebot.ErrPriceUnknown) {
			p.log.Warn("price lookup failed; showing price unknown", "type", instanceType, "err", err)
		}
		return 0, false
	}
	return usd, true
}

// Auditor writes the audit log: every cloud-changing action and decision,
// in the store and in the log.
type Auditor struct {
	store computebot.Store
	log   *slog.Logger
	now   func() time.Time
}

// NewAuditor records into store.
func NewAuditor(store computebot.Store, log *slog.Logger) *Auditor {
	if log == nil {
		log = slog.Default()
	}
	return &Auditor{store: store, log: log, now: time.Now}
}

// Record writes an entry. A failing write is logged loudly but does not
// undo what already happened in the cloud; it is not cut short by the
// caller's cancellation either.
//
// The entry is also a structured log line, so that it reaches the log
// system even when the store is lost: message "audit", audit=true, and the
// entry's fields (actor, action, request_id, target, result, detail). The
// line's own time is the entry's, so a JSON handler writes one "time" key,
// and log queries on it match the store.
func (a *Auditor) Record(ctx context.Context, e computebot.AuditEntry) {
	if e.Time.IsZero() {
		e.Time = a.now()
	}
	if lctx := context.WithoutCancel(ctx); a.log.Enabled(lctx, slog.LevelInfo) {
		r := slog.NewRecord(e.Time, slog.LevelInfo, "audit", 0)
		r.AddAttrs(slog.Bool("audit", true), slog.String("actor", e.Actor), slog.String("action", e.Action),
			slog.String("request_id", e.RequestID), slog.String("target", e.Target),
			slog.String("result", e.Result), slog.String("detail", e.Detail))
		if err := a.log.Handler().Handle(lctx, r); err != nil {
			a.log.Error("audit log line failed", "request_id", e.RequestID, "action", e.Action, "err", err)
		}
	}
	if err := a.store.Audit(context.WithoutCancel(ctx), e); err != nil {
		a.log.Error("audit write failed", "request_id", e.RequestID, "action", e.Action, "err", err)
	}
}
