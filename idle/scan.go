package idle

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/internal/crash"
)

// Scan runs one full scan: it lists the running managed instances, posts a
// notice for each new idle or lease-expired episode (one at a time), prunes
// old settled notices, and finally runs CheckDue. The metrics of all
// candidates are read with one InstanceMetrics call.
func (s *Scheduler) Scan(ctx context.Context) error {
	now := s.now()
	notices, err := s.loadNotices(ctx)
	if err != nil {
		return fmt.Errorf("idle: scan: %w", err)
	}
	end := s.windowEnd(now)
	start := end.Add(-s.window)
	r := s.rule()

	var (
		mu       sync.Mutex
		fresh    []Notice // to post
		errs     []error
		wg       sync.WaitGroup
		inFlight = make(chan struct{}, metricPagesInFlight)
	)
	// handle classifies one page of instances and reads the metrics of its
	// idle candidates in the background, so metric reads overlap the
	// listing of the next page. The calls stay batched: one InstanceMetrics
	// per page of up to 1000 instances (6 GetMetricData calls of 500
	// queries), the same count as one call for all.
	handle := func(page []computebot.Instance) error {
		var cands []computebot.Instance // idle candidates
		for _, inst := range page {
			if inst.State != computebot.InstanceRunning {
				continue
			}
			if n, ok := notices[inst.ID]; ok && n.blocks(now) {
				continue // pending, snoozed or lease just extended
			}
			if exp, ok := leaseEnd(inst); ok && !exp.After(now) {
				n := s.newNotice(inst, ReasonLease, now)
				n.LeaseEnded = exp
				mu.Lock()
				fresh = append(fresh, n)
				mu.Unlock()
				continue
			}
			// Running for the whole window: younger instances lack data.
			if inst.LaunchTime.After(start) {
				continue
			}
			if until, ok := keepUntil(inst); ok && until.After(now) {
				continue // /keep: no idle stops until then (the lease still ends)
			}
			cands = append(cands, inst)
		}
		if len(cands) == 0 {
			return nil
		}
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-inFlight; wg.Done() }()
			cands, gpu := s.gpuIDs(ctx, cands)
			isGPU := make(map[string]bool, len(gpu))
			for _, id := range gpu {
				isGPU[id] = true
			}
			ids := make([]string, len(cands))
			for i, inst := range cands {
				ids[i] = inst.ID
			}
			metrics, err := s.cloud.InstanceMetrics(ctx, computebot.MetricsQuery{InstanceIDs: ids, GPUInstanceIDs: gpu, Start: start, End: end, Period: period})
			var idle []Notice
			if err == nil {
				for _, inst := range cands {
					v := r.evaluate(metrics[inst.ID], start, end, isGPU[inst.ID])
					if !v.Idle {
						continue
					}
					n := s.newNotice(inst, ReasonIdle, now)
					n.MaxCPU, n.NetworkBytes, n.Window = v.MaxCPU, v.NetworkBytes, s.window
					n.GPU, n.MaxGPU = v.GPU, v.MaxGPU
					idle = append(idle, n)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("idle: scan: metrics of %d instances: %w", len(ids), err))
				return
			}
			fresh = append(fresh, idle...)
		}()
		return nil
	}
	running := computebot.InstanceFilter{States: []string{computebot.InstanceRunning}}
	if pl, ok := s.cloud.(pagedLister); ok {
		err = pl.ManagedInstancePages(ctx, running, handle)
	} else {
		var insts []computebot.Instance
		if insts, err = s.cloud.ManagedInstances(ctx, running); err == nil {
			err = handle(insts)
		}
	}
	wg.Wait()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("idle: scan: list instances: %w", err))...)
	}

	// Only the notices are needed from here on (insts and the metrics are
	// dead, so the collector can take them while posts are paced).
	s.log.Debug("idle scan", "window_start", start, "window_end", end, "notices", len(fresh))

	// What stopping saves; one price look-up per instance type.
	type price struct {
		usd float64
		ok  bool
	}
	prices := map[string]price{}
	for i := range fresh {
		n := &fresh[i]
		if n.Type == "" {
			continue
		}
		p, seen := prices[n.Type]
		if !seen {
			p.usd, p.ok = s.prices(ctx, n.Type)
			prices[n.Type] = p
		}
		n.CostPerHour, n.PriceKnown = p.usd, p.ok
	}

	// Leases first, then by instance: deterministic, one post at a time.
	slices.SortFunc(fresh, func(a, b Notice) int {
		if a.Reason != b.Reason {
			return cmp.Compare(b.Reason, a.Reason) // "lease" before "idle"
		}
		return cmp.Compare(a.InstanceID, b.InstanceID)
	})
	posted := 0
	for _, n := range fresh {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		ok, err := s.post(ctx, n)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			posted++
		}
	}
	if posted > 0 {
		s.log.Info("idle notices posted", "count", posted)
	}

	for id, n := range notices {
		if n.prunable(now) {
			s.prune(ctx, id, n.Episode, now)
		}
	}
	if err := s.CheckDue(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// windowEnd is the exclusive end of the metrics window for a run at now.
func (s *Scheduler) windowEnd(now time.Time) time.Time {
	return now.Add(-s.delay).Truncate(period)
}

func (s *Scheduler) rule() rule {
	return rule{CPUBelow: s.cfg.CPUBelowPercent, NetBelow: s.cfg.NetworkBelowBytes, GPUBelow: s.cfg.GPUBelowPercent, Period: period}
}

// gpuIDs sorts instances by whether their type has GPUs (looked up once
// per type, then remembered: a type's hardware does not change). An
// instance whose type cannot be looked up is dropped: without knowing, its
// idleness cannot be judged.
func (s *Scheduler) gpuIDs(ctx context.Context, insts []computebot.Instance) (kept []computebot.Instance, gpu []string) {
	for _, inst := range insts {
		n, ok := s.gpuTypes.Load(inst.Type)
		if !ok {
			it, err := s.cloud.InstanceType(ctx, inst.Type)
			if err != nil {
				s.log.Warn("idle: look up the instance type; not judged this time", "instance", inst.ID, "type", inst.Type, "err", err)
				continue
			}
			n = it.GPUs
			s.gpuTypes.Store(inst.Type, it.GPUs)
		}
		kept = append(kept, inst)
		if n.(int32) > 0 {
			gpu = append(gpu, inst.ID)
		}
	}
	return kept, gpu
}

// leaseEnd returns the instance's expires-at tag, if it has a valid one.
func leaseEnd(inst computebot.Instance) (time.Time, bool) {
	v, ok := inst.Tags[computebot.TagExpiresAt]
	if !ok || v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

func (s *Scheduler) newNotice(inst computebot.Instance, reason string, now time.Time) Notice {
	n := Notice{
		InstanceID:     inst.ID,
		Name:           inst.Tags[computebot.TagName],
		Owner:          inst.Tags[computebot.TagOwner],
		Type:           inst.Type,
		Reason:         reason,
		Action:         ActionStop,
		NoticedAt:      now,
		StopAt:         now.Add(s.grace),
		State:          StateNoticed,
		RequestChannel: inst.Tags[computebot.TagChannel],
		RequestThread:  inst.Tags[computebot.TagThread],
		Episode:        reason + "/" + inst.ID + "/" + strconv.FormatInt(now.Unix(), 10),
		Hibernates:     inst.Hibernation,
	}
	if reason == ReasonLease {
		n.Action = s.cfg.LeaseAction
	}
	return n
}

// pagedLister is a Cloud that hands over instances a page at a time (the
// aws client does), which lets a scan read metrics while listing.
type pagedLister interface {
	ManagedInstancePages(ctx context.Context, filter computebot.InstanceFilter, fn func([]computebot.Instance) error) error
}

// metricPagesInFlight bounds the pages whose metrics are read at once
// (each is up to 6 GetMetricData calls, themselves run 8 at a time).
const metricPagesInFlight = 2

// postTimeout bounds one notice post, including waiting out Slack's pacing
// and rate limits.
const postTimeout = 2 * time.Minute

// post persists a new notice, then posts it, then records where it went.
// Persisting first means that a crash mid-post never leads to a second
// notice for the episode (at most one), and the stop still happens. A post
// that fails outright removes the record, so the next scan warns again
// instead of stopping an instance whose owner was never told.
func (s *Scheduler) post(ctx context.Context, n Notice) (bool, error) {
	// The grace runs from the post, not from the scan: posts are paced.
	at := s.now()
	n.NoticedAt, n.StopAt = at, at.Add(s.grace)
	// Marked before the record exists: a click or settle that reads the
	// record the moment it is written must see the post as in flight, not
	// as a post whose poster died.
	s.posting.Store(n.Episode, true)
	defer s.posting.Delete(n.Episode)
	_, err := s.update(ctx, n.InstanceID, func(cur *Notice, found bool) error {
		if found && cur.blocks(at) {
			return errSkip // another scan got there first
		}
		*cur = n
		return nil
	})
	switch {
	case errors.Is(err, errSkip):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("idle: notice for %s: %w", n.InstanceID, err)
	}

	// The post and its bookkeeping are not cut short by Stop: a post that
	// reached Slack but was cancelled on our side would look failed, be
	// forgotten, and be posted again after a restart.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), postTimeout)
	channel, ts, perr := s.notify.PostNotice(pctx, n)
	if perr == nil {
		crash.Point("post-notice") // posted, where it went not saved
	}
	cancel()
	if perr == nil {
		s.obs.IdleNoticed()
	}
	// Where the post went is a fact, not a decision: it is recorded even
	// if this replica lost the lease meanwhile (unfenced), so the next
	// leader need not look for the post.
	ctx, cancel = context.WithTimeout(unfenced(context.WithoutCancel(ctx)), callTimeout)
	defer cancel()

	cur, err := s.update(ctx, n.InstanceID, func(cur *Notice, found bool) error {
		switch {
		case !found || cur.Episode != n.Episode:
			return errReplaced
		case perr == nil:
			cur.Channel, cur.TS = channel, ts
			return nil
		case cur.State == StateNoticed:
			return computebot.ErrDeleteKey
		}
		return errSkip // settled meanwhile: keep what happened
	})
	if perr != nil {
		if err != nil && !errors.Is(err, errSkip) && !errors.Is(err, computebot.ErrDeleteKey) {
			s.log.Error("idle: forget unposted notice", "instance", n.InstanceID, "err", err)
		}
		return false, fmt.Errorf("idle: post notice for %s: %w", n.InstanceID, perr)
	}
	if err != nil {
		return true, fmt.Errorf("idle: notice for %s: save where it was posted: %w", n.InstanceID, err)
	}
	s.log.Info("idle notice", "instance", n.InstanceID, "reason", n.Reason, "owner", n.Owner, "stop_at", n.StopAt, "channel", channel)
	if cur.Settled() {
		// Kept or stopped while the post was in flight: whoever settled it
		// left the showing to this post (it could not know where it went).
		s.show(ctx, cur)
	}
	return true, nil
}

// mayBePosting reports whether the notice's post may still be in flight:
// it has not been recorded, and this process is posting it.
func (s *Scheduler) mayBePosting(n Notice) bool {
	if n.posted() {
		return false
	}
	_, ok := s.posting.Load(n.Episode)
	return ok
}

// prune forgets a settled notice, unless it changed since it was listed.
func (s *Scheduler) prune(ctx context.Context, id, episode string, now time.Time) {
	_, err := s.update(ctx, id, func(cur *Notice, found bool) error {
		if !found || cur.Episode != episode || !cur.prunable(now) {
			return errSkip
		}
		return computebot.ErrDeleteKey
	})
	if err != nil && !errors.Is(err, errSkip) {
		s.log.Warn("idle: prune notice", "instance", id, "err", err)
	}
}

// errSkip aborts a compare-and-set that found nothing to change;
// errReplaced one whose notice is another episode's by now.
var (
	errSkip     = errors.New("idle: nothing to change")
	errReplaced = errors.New("record replaced meanwhile")
)

// update is one compare-and-set of an instance's notice: fn sees the
// stored notice (found false: there is none) and changes it, or returns
// errSkip (or any other error) to leave it unchanged, or
// computebot.ErrDeleteKey to delete it. It returns the notice as fn left
// it, also when fn's error is returned. fn may run more than once.
//
// In a scheduler run (scan or check) ctx carries the run's fencing token:
// a notice that carries a newer one was changed by a newer leader, and is
// left alone (ErrFenced); a notice the run changes carries its token.
func (s *Scheduler) update(ctx context.Context, id string, fn func(n *Notice, found bool) error) (Notice, error) {
	var n Notice
	fence, fenced := fenceOf(ctx)
	err := s.kv.Update(ctx, NoticesBucket, id, &n, func(found bool) error {
		if fenced && found && n.Fence > fence {
			return ErrFenced
		}
		if err := fn(&n, found); err != nil {
			return err
		}
		if fenced {
			n.Fence = fence
		}
		return nil
	})
	return n, err
}

// ErrFenced is a scheduler run's change refused because a newer leader
// has changed the notice since: this replica lost the lease.
var ErrFenced = errors.New("idle: the notice was changed by a newer leader")

type fenceKey struct{}

// withFence marks ctx as a scheduler run under the leader lease's token.
func withFence(ctx context.Context, token int64) context.Context {
	return context.WithValue(ctx, fenceKey{}, token)
}

// unfenced drops the run's token from ctx.
func unfenced(ctx context.Context) context.Context { return context.WithValue(ctx, fenceKey{}, nil) }

func fenceOf(ctx context.Context) (int64, bool) {
	t, ok := ctx.Value(fenceKey{}).(int64)
	return t, ok
}

// loadNotices reads every stored notice.
func (s *Scheduler) loadNotices(ctx context.Context) (map[string]Notice, error) {
	out := map[string]Notice{}
	err := s.kv.List(ctx, NoticesBucket, func(key string, raw []byte) error {
		var n Notice
		if err := json.Unmarshal(raw, &n); err != nil {
			s.log.Error("idle: unreadable notice record, ignored", "instance", key, "err", err)
			return nil
		}
		out[key] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list notices: %w", err)
	}
	return out, nil
}

// CheckDue acts on the notices whose grace has ended: it checks each
// instance again and stops it, or cancels the notice when the instance was
// stopped meanwhile, became active, or had its lease extended. A stop that
// fails is retried at the next check (maxAttempts in all). It also takes
// over the claims that crashed processes left (see the package doc).
// Checks may run concurrently (in several processes); in one process, a
// call while one runs returns at once.
func (s *Scheduler) CheckDue(ctx context.Context) error {
	if !s.checkMu.TryLock() {
		return nil
	}
	defer s.checkMu.Unlock()
	now := s.now()
	notices, err := s.loadNotices(ctx)
	if err != nil {
		return fmt.Errorf("idle: check: %w", err)
	}
	var due, stale []Notice
	for _, n := range notices {
		switch {
		case n.staleClaim(now):
			stale = append(stale, n)
		case n.State == StateNoticed && !n.StopAt.After(now) && !s.mayBePosting(n):
			due = append(due, n)
		}
	}
	byID := func(a, b Notice) int { return cmp.Compare(a.InstanceID, b.InstanceID) }
	slices.SortFunc(stale, byID)
	slices.SortFunc(due, byID)

	var errs []error
	for _, n := range stale {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := s.resume(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(due) == 0 {
		return errors.Join(errs...)
	}

	insts, failed, err := s.lookup(ctx, due)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("idle: check: %w", err))...)
	}
	if len(failed) > 0 {
		errs = append(errs, fmt.Errorf("idle: check: could not look up %d instances (retried at the next check)", len(failed)))
	}
	// Fresh metrics for the idle notices whose instance still runs.
	end := s.windowEnd(now)
	start := end.Add(-s.window)
	var recheck []computebot.Instance
	for _, n := range due {
		if inst, ok := insts[n.InstanceID]; ok && n.Reason == ReasonIdle && inst.State == computebot.InstanceRunning {
			recheck = append(recheck, inst)
		}
	}
	recheck, gpu := s.gpuIDs(ctx, recheck)
	isGPU := make(map[string]bool, len(gpu))
	for _, id := range gpu {
		isGPU[id] = true
	}
	judged := make(map[string]bool, len(recheck))
	ids := make([]string, len(recheck))
	for i, inst := range recheck {
		ids[i] = inst.ID
		judged[inst.ID] = true
	}
	var metrics map[string]computebot.InstanceMetrics
	metricsOK := true
	if len(ids) > 0 {
		metrics, err = s.cloud.InstanceMetrics(ctx, computebot.MetricsQuery{InstanceIDs: ids, GPUInstanceIDs: gpu, Start: start, End: end, Period: period})
		if err != nil {
			metricsOK = false
			errs = append(errs, fmt.Errorf("idle: check: metrics of %d instances: %w", len(ids), err))
		}
	}
	r := s.rule()
	for _, n := range due {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if failed[n.InstanceID] {
			continue // try again at the next check
		}
		inst, found := insts[n.InstanceID]
		var v verdict
		if found && n.Reason == ReasonIdle && inst.State == computebot.InstanceRunning {
			if !metricsOK || !judged[n.InstanceID] {
				continue // cannot tell it is still idle: try again
			}
			v = r.evaluate(metrics[n.InstanceID], start, end, isGPU[n.InstanceID])
		}
		if err := s.settle(ctx, n, inst, found, v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lookup finds the current state of the due notices' instances: one
// DescribeInstances each for a few, one listing of all managed instances
// for many. An ID absent from found was not found (terminated long ago);
// failed holds the IDs whose lookup failed.
func (s *Scheduler) lookup(ctx context.Context, due []Notice) (found map[string]computebot.Instance, failed map[string]bool, err error) {
	found, failed = map[string]computebot.Instance{}, map[string]bool{}
	if len(due) > lookupEach {
		all, err := s.cloud.ManagedInstances(ctx, computebot.InstanceFilter{})
		if err != nil {
			return nil, nil, fmt.Errorf("list instances: %w", err)
		}
		want := make(map[string]bool, len(due))
		for _, n := range due {
			want[n.InstanceID] = true
		}
		for _, inst := range all {
			if want[inst.ID] {
				found[inst.ID] = inst
			}
		}
		return found, failed, nil
	}
	for _, n := range due {
		inst, err := s.cloud.Instance(ctx, n.InstanceID)
		switch {
		case err == nil:
			found[n.InstanceID] = inst
		case errors.Is(err, computebot.ErrNotFound):
		default:
			s.log.Warn("idle: look up instance", "instance", n.InstanceID, "err", err)
			failed[n.InstanceID] = true
		}
	}
	return found, failed, nil
}
