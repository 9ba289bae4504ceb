// Package idle is the scheduler that stops computebot's instances when
// they sit idle, or when their lease has expired, without losing anyone's
// work: it warns first, in the instance's request thread, waits a grace
// period, checks again, and only then stops.
//
// The notice of one instance, and how it moves (each arrow is one
// compare-and-set of the stored notice, KV.Update):
//
//	(none) ── idle for idle.for, or lease ended ──▶ noticed      persisted, then posted
//	noticed ── Keep running (idle) ──▶ kept                      snoozed until now + snooze
//	noticed, kept ── Keep running (lease) ──▶ extending ──┬─ Tag ok ──▶ kept
//	                                                     └─ failed ──▶ Claim.Prev
//	noticed ── grace over, checked again ──┬─ no reason to stop any more ──▶ cancelled
//	                                       └─ still idle / lease over, policy allows ──▶ stopping
//	stopping ── Stop (Terminate) ──┬─ ok ──▶ stopped
//	                               └─ failed ──▶ noticed (retried at the next check),
//	                                             cancelled after maxAttempts
//	noticed, kept, cancelled ── Stop now ──▶ stopping ──┬─ ok ──▶ stopped
//	                                                    └─ failed ──▶ Claim.Prev
//	kept, after KeptUntil, idle again ──▶ a new episode: noticed
//	kept, stopped, cancelled ── 7 days later ──▶ pruned (a conditional delete)
//
// Nothing relies on a lock. stopping and extending are claims: whoever
// moves a notice there (from a state that allows it) is the only one to
// call AWS for it, and records the result with a compare-and-set that
// holds only while its claim (Claim.Token) is still the stored one. A due
// check and a Stop now click at the same moment, or two checks of two
// processes, cannot both claim the notice, so StopInstances is called once
// per episode. A due check decides (stop or cancel) only over a notice
// that is still noticed, of the episode it checked: a Keep running that
// lands first leaves it nothing to stop and nothing to cancel. The AWS
// call under a claim is bounded by callTimeout; a claim older than
// claimTTL was left by a crash, and the next check takes it over: a
// stopping notice is stopped again (StopInstances is idempotent), an
// extending one goes back to its previous state.
//
// Every notice is persisted (KV bucket NoticesBucket, one small record per
// instance, written before the notice is posted), so a restart neither
// repeats a notice nor forgets a pending stop. A notice is not stopped
// while its post may still be in flight, and a crash mid-post is told to
// the owner by posting the settled notice. Nothing is held in memory per
// instance between scans: no goroutine, no timer, no map.
//
// Notices hold facts (IDs, numbers, times, codes); package reply words them.
package idle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/policy"
	"github.com/robfig/cron/v3"
)

// NoticesBucket is the KV bucket holding one Notice per instance (the
// latest), keyed by instance ID. Settled notices are pruned after
// keepSettled.
const NoticesBucket = "idle-notices"

// Reasons for a notice.
const (
	ReasonIdle  = "idle"
	ReasonLease = "lease"
	// ReasonHours: the instance's office hours (tag computebot:schedule)
	// ended; see hours.go.
	ReasonHours = "hours"
)

// States of a notice (see the package doc).
const (
	StateNoticed   = "noticed"
	StateStopping  = "stopping"  // claimed: a Stop or Terminate call in flight
	StateExtending = "extending" // claimed: Keep running's lease extension (Tag) in flight
	StateKept      = "kept"
	StateStopped   = "stopped"
	StateCancelled = "cancelled"
)

// Actions taken when the grace ends (Notice.Action, idle.lease_action).
const (
	ActionStop      = "stop"
	ActionTerminate = "terminate"
)

// Audit actions (computebot.AuditEntry.Action) this package records.
const (
	AuditIdleStop       = "idle-stop"       // the scheduler stopped an idle instance
	AuditLeaseStop      = "lease-stop"      // the scheduler stopped an instance whose lease ended
	AuditLeaseTerminate = "lease-terminate" // … or terminated it (lease_action: terminate)
	AuditStopNow        = "idle-stop-now"   // a user clicked Stop now
	AuditKeep           = "idle-keep"       // a user clicked Keep running on an idle notice
	AuditLeaseExtend    = "lease-extend"    // … on a lease notice (expires-at re-tagged)
	AuditHoursStop      = "hours-stop"      // the scheduler stopped an instance whose office hours ended
	AuditHoursStart     = "hours-start"     // … or started one whose office hours began
)

const (
	// period is the metrics period (basic monitoring); config checks that
	// idle.for is a multiple of it.
	period = config.IdleMetricsPeriod
	// defaultCheckEvery is how often due notices are checked between scans.
	defaultCheckEvery = time.Minute
	// keepSettled is how long a settled notice stays in the KV (so that a
	// late click on it gets a clear answer) before a scan prunes it.
	keepSettled = 7 * 24 * time.Hour
	// maxAttempts is how many checks try to stop an instance whose Stop
	// call fails before the notice is cancelled.
	maxAttempts = 3
	// lookupEach is how many due notices CheckDue resolves with one
	// DescribeInstances each; more use one listing of all managed instances.
	lookupEach = 20
	// callTimeout bounds the AWS call made under a claim.
	callTimeout = time.Minute
	// claimTTL is the age after which a claim cannot be in flight any more
	// (well above callTimeout, so that clocks a little apart do not matter).
	claimTTL = 5 * time.Minute
)

// Cloud is what the scheduler needs from AWS: a subset of
// computebot.Compute and computebot.Metrics.
type Cloud interface {
	ManagedInstances(ctx context.Context, filter computebot.InstanceFilter) ([]computebot.Instance, error)
	Instance(ctx context.Context, id string) (computebot.Instance, error)
	Stop(ctx context.Context, id string) (computebot.Instance, error)
	// Hibernate: stops of instances launched able to hibernate keep their
	// memory (computebot.StopKeepingMemory).
	Hibernate(ctx context.Context, id string) (computebot.Instance, error)
	// Start: office hours begin.
	Start(ctx context.Context, id string) (computebot.Instance, error)
	Terminate(ctx context.Context, id string) (computebot.Instance, error)
	Tag(ctx context.Context, id string, tags map[string]string) error
	InstanceMetrics(ctx context.Context, q computebot.MetricsQuery) (map[string]computebot.InstanceMetrics, error)
	// InstanceType tells GPU types (GPU utilization counts for them).
	InstanceType(ctx context.Context, name string) (computebot.InstanceType, error)
}

// Notifier shows notices to people (implemented by the workflows, which
// render them with package reply).
type Notifier interface {
	// PostNotice posts a new notice (in the instance's request thread from
	// its tags, n.RequestChannel / n.RequestThread; the implementation
	// falls back to DM the owner, then notify_channel) and returns where it
	// went. The scheduler also calls it, with a settled notice, when a
	// notice's first post never completed (a crash mid-post).
	PostNotice(ctx context.Context, n Notice) (channel, ts string, err error)
	// UpdateNotice re-renders a posted notice after its state changed
	// (kept, stopped, cancelled).
	UpdateNotice(ctx context.Context, n Notice) error
	// Announce posts the line for a stopped or cancelled notice
	// (reply.NoticeAnnouncement) in its thread: n.ThreadTS() in n.Channel.
	Announce(ctx context.Context, n Notice) error
	// HoursStarted posts that the scheduler started inst (running now,
	// with its new address) because its office hours began.
	HoursStarted(ctx context.Context, inst computebot.Instance, hours string) error
}

// Authorizer is the one policy check (*policy.Authorizer), asked before
// each of the scheduler's own stops with ActionAutoStop and
// computebot.SystemActor. A Deny, or an error, refuses the stop.
type Authorizer interface {
	Authorize(ctx context.Context, act policy.Action) (policy.Decision, error)
}

// Observer counts what the scheduler does (metrics). Its methods must be
// quick and safe for concurrent use.
type Observer interface {
	// IdleScanned is called after each scheduled scan with its error.
	IdleScanned(err error)
	// IdleNoticed is called for each new notice that was posted.
	IdleNoticed()
	// IdleStopped is called for each instance stopped or terminated by the
	// scheduler or by Stop now.
	IdleStopped()
}

// Auditor records cloud-changing actions.
type Auditor func(ctx context.Context, e computebot.AuditEntry)

// KV is the store's key/value API; *store.DB satisfies it. Values are JSON.
type KV interface {
	// Get decodes the value under key into v; the error wraps
	// computebot.ErrNotFound when there is none.
	Get(ctx context.Context, bucket, key string, v any) error
	// Update is a compare-and-set on one key: it zeroes *v, decodes the
	// stored value into v when there is one (found), calls fn, then stores
	// v — or deletes the key when fn returns computebot.ErrDeleteKey. Any
	// other error from fn aborts (nothing written) and is returned
	// unchanged. fn may run more than once, so it must decide from v alone
	// and do nothing but change v.
	Update(ctx context.Context, bucket, key string, v any, fn func(found bool) error) error
	// List calls fn with every key and raw value of bucket, in key order.
	List(ctx context.Context, bucket string, fn func(key string, raw []byte) error) error
}

// Deps are the scheduler's collaborators. Cloud, Notifier, Authorizer and
// KV are required.
type Deps struct {
	Cloud      Cloud
	Notifier   Notifier
	Authorizer Authorizer
	Audit      Auditor // nil: not audited
	KV         KV
	// Prices returns the hourly price of an instance type (ok false when
	// unknown). Nil: prices unknown.
	Prices func(ctx context.Context, instanceType string) (float64, bool)
	Logger *slog.Logger     // slog.Default() when nil
	Now    func() time.Time // time.Now when nil
	// CheckEvery is how often due notices are checked between scans;
	// 1 minute when zero.
	CheckEvery time.Duration
	Observer   Observer // nil: not observed
	// StopWait bounds how long Stop waits for a running scan or check;
	// 3 seconds when zero. A notice post is not cut short by Stop (see
	// post), and Slack's rate limits can hold one up for minutes: past
	// this bound the process stops anyway, and the next start finds the
	// post by its key.
	StopWait time.Duration
	// Changed, when set, is told the owner of an instance the scheduler
	// stopped, terminated or started (their Home tab shows it).
	Changed func(owner string)
	// Leader is the leader lease (package cluster): scans and checks run
	// only while this replica holds it, each bounded by the lease's end
	// and fenced by its token. Nil: this process is the only scheduler.
	Leader Leader
}

// Leader is the leader lease of a deployment of several replicas.
type Leader interface {
	// Lease returns the lease's fencing token and until when this
	// replica may act on it; ok is false when it does not hold it.
	Lease() (token int64, until time.Time, ok bool)
}

const defaultStopWait = 3 * time.Second

// Scheduler runs the idle scans. Create it with New; it is safe for
// concurrent use (the workflows call Keep, StopNow and Report while scans
// run), and several schedulers may share one KV.
type Scheduler struct {
	cfg   config.Idle
	sched cron.Schedule
	// every is the schedule of the due-notice checker (a test shortens it).
	every cron.Schedule

	window, grace, snooze, delay time.Duration

	cloud  Cloud
	notify Notifier
	authz  Authorizer
	audit  Auditor
	kv     KV
	prices func(ctx context.Context, instanceType string) (float64, bool)
	log    *slog.Logger
	now    func() time.Time
	obs    Observer
	// stopWait bounds Stop's wait for a running job.
	stopWait time.Duration
	leader   Leader // nil: always runs, unfenced
	changed  func(owner string)
	// gpuTypes remembers each instance type's GPU count (int32).
	gpuTypes sync.Map

	// checkMu skips a CheckDue while another runs in this process: an
	// optimisation only (claims make concurrent checks safe).
	checkMu sync.Mutex
	// posting holds the episodes whose post this process has in flight. A
	// notice not recorded as posted and not in here lost its poster to a
	// crash: it may be in Slack, and is shown by finding it (PostNotice).
	// Only one scheduler posts (one process; later, the lease holder), so
	// what this process knows is what there is to know.
	posting sync.Map

	runMu  sync.Mutex
	cron   *cron.Cron
	cancel context.CancelFunc
}

// New builds a scheduler from the validated idle section; Start runs it.
func New(cfg config.Idle, d Deps) (*Scheduler, error) {
	sched, err := cron.ParseStandard(cfg.Schedule)
	if err != nil {
		return nil, fmt.Errorf("idle.schedule: %w", err)
	}
	var missing []string
	if d.Cloud == nil {
		missing = append(missing, "Cloud")
	}
	if d.Notifier == nil {
		missing = append(missing, "Notifier")
	}
	if d.Authorizer == nil {
		missing = append(missing, "Authorizer")
	}
	if d.KV == nil {
		missing = append(missing, "KV")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("idle: missing dependencies %v", missing)
	}
	if d.CheckEvery <= 0 {
		d.CheckEvery = defaultCheckEvery
	}
	if d.StopWait <= 0 {
		d.StopWait = defaultStopWait
	}
	sc := &Scheduler{
		cfg: cfg, sched: sched, every: cron.Every(d.CheckEvery),
		window: cfg.For.Duration(), grace: cfg.Grace.Duration(), snooze: cfg.Snooze.Duration(), delay: cfg.MetricsDelay.Duration(),
		cloud: d.Cloud, notify: d.Notifier, authz: d.Authorizer, audit: d.Audit, kv: d.KV,
		prices: d.Prices, log: d.Logger, now: d.Now, obs: d.Observer, stopWait: d.StopWait, leader: d.Leader, changed: d.Changed,
	}
	if sc.audit == nil {
		sc.audit = func(context.Context, computebot.AuditEntry) {}
	}
	if sc.prices == nil {
		sc.prices = func(context.Context, string) (float64, bool) { return 0, false }
	}
	if sc.log == nil {
		sc.log = slog.Default()
	}
	sc.log = sc.log.With("component", "idle")
	if sc.now == nil {
		sc.now = time.Now
	}
	if sc.obs == nil {
		sc.obs = nopObserver{}
	}
	return sc, nil
}

type nopObserver struct{}

func (nopObserver) IdleScanned(error) {}
func (nopObserver) IdleNoticed()      {}
func (nopObserver) IdleStopped()      {}

// Start runs the scans on the schedule and the due-notice check every
// CheckEvery, each in one goroutine of a robfig/cron scheduler: a run that
// is still going when the next is due is skipped (SkipIfStillRunning), and
// a panic is recovered and logged. ctx bounds every run; Stop ends them.
// Calling Start on a started scheduler does nothing.
func (s *Scheduler) Start(ctx context.Context) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.cron != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	l := cronLogger{s.log}
	// Recover goes inside SkipIfStillRunning: v3.0.1's SkipIfStillRunning
	// hands its token back without a defer, so a panic passing through it
	// would skip every later run.
	c := cron.New(cron.WithLogger(l), cron.WithChain(cron.SkipIfStillRunning(l), cron.Recover(l)))
	c.Schedule(s.sched, s.job(ctx, "scan", s.Scan))
	c.Schedule(s.every, s.job(ctx, "check", s.CheckDue))
	c.Schedule(s.every, s.job(ctx, "hours", s.Hours))
	c.Start()
	s.cron, s.cancel = c, cancel
	s.log.Info("idle scheduler started", "schedule", s.cfg.Schedule, "for", s.window, "grace", s.grace)
}

// Stop stops the schedule, cancels the running scan or check and waits for
// it to return, at most StopWait.
func (s *Scheduler) Stop() {
	s.runMu.Lock()
	c, cancel := s.cron, s.cancel
	s.cron, s.cancel = nil, nil
	s.runMu.Unlock()
	if c == nil {
		return
	}
	done := c.Stop()
	cancel()
	t := time.NewTimer(s.stopWait)
	defer t.Stop()
	select {
	case <-done.Done():
		s.log.Info("idle scheduler stopped")
	case <-t.C:
		s.log.Warn("idle scheduler stopped without waiting longer for a notice post in flight; the next start finds it by its key", "waited", s.stopWait)
	}
}

// job adapts a run to cron, logging its error.
func (s *Scheduler) job(ctx context.Context, name string, run func(context.Context) error) cron.Job {
	return cron.FuncJob(func() {
		if ctx.Err() != nil {
			return
		}
		runCtx := ctx // this run's own: ctx is every run's
		if s.leader != nil {
			token, until, ok := s.leader.Lease()
			if !ok {
				return // another replica schedules
			}
			var cancel context.CancelFunc
			runCtx, cancel = context.WithCancel(withFence(ctx, token))
			defer cancel()
			go s.holdLease(runCtx, cancel, token, until)
		}
		start := time.Now()
		err := run(runCtx)
		if err != nil && runCtx.Err() == nil {
			s.log.Error("idle "+name+" failed", "err", err, "took", time.Since(start))
		}
		if name == "scan" {
			s.obs.IdleScanned(err)
		}
	})
}

// leaseRecheck is how often a run looks at the lease before its end.
const leaseRecheck = time.Second

// holdLease cancels a run when this replica stops holding the lease it
// started under: at each end of the lease it looks again, and a renewal
// (same term, a later end) lets the run go on. So a scan longer than one
// renewal period is not cut short, and none outlives the lease.
func (s *Scheduler) holdLease(ctx context.Context, cancel context.CancelFunc, token int64, until time.Time) {
	for {
		// At the lease's end at the latest; sooner too, in case the
		// cluster saw it go (it cannot have, before its end, unless a
		// clock jumped: then sooner is better).
		t := time.NewTimer(min(time.Until(until), leaseRecheck))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		next, end, ok := s.leader.Lease()
		if !ok || next != token {
			s.log.Warn("idle: the leader lease is gone; stopping this run", "term", token)
			cancel()
			return
		}
		until = end
	}
}

// cronLogger adapts slog to cron.Logger. cron's own chatter (start,
// schedule, wake, run) is debug; a skipped run is worth a warning; panics
// (from cron.Recover) are errors.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	if msg == "skip" {
		c.l.Warn("idle run skipped: the previous one is still running")
		return
	}
	c.l.Debug("cron "+msg, kv...)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron "+msg, append([]any{"err", err}, kv...)...)
}
