// Package idle is the scheduler that stops computebot's instances when
// they sit idle, or when their lease has expired, without losing anyone's
// work: it warns first, in the instance's request thread, waits a grace
// period, checks again, and only then stops.
//
// The flow for one instance:
//
//	running, idle for Settings.For (or lease expired)
//	  → notice posted, state "noticed", StopAt = now + Grace
//	  → Keep running: state "kept" (snoozed, or lease extended, by Snooze)
//	  → Stop now: stopped at once, state "stopped"
//	  → grace over: checked again: still idle → stopped ("stopped");
//	    active again, already stopped, lease extended → "cancelled"
//
// Every notice is persisted (KV bucket NoticesBucket, one small record per
// instance, written before the notice is posted), so a restart neither
// repeats a notice nor forgets a pending stop. Nothing is held in memory
// per instance between scans: no goroutine, no timer, no map.
package idle

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/computebot/computebot"
	"github.com/robfig/cron/v3"
)

// Defaults for zero Settings fields.
const (
	DefaultCPUBelowPercent   = 5
	DefaultNetworkBelowBytes = 5e6
	DefaultFor               = time.Hour
	DefaultGrace             = 30 * time.Minute
	DefaultSnooze            = 4 * time.Hour
	DefaultPeriod            = 5 * time.Minute
	DefaultCheckEvery        = time.Minute
)

// NoticesBucket is the KV bucket holding one Notice per instance (the
// latest), keyed by instance ID. Settled notices are pruned after
// keepSettled.
const NoticesBucket = "idle-notices"

// Reasons for a notice.
const (
	ReasonIdle  = "idle"
	ReasonLease = "lease"
)

// States of a notice.
const (
	StateNoticed   = "noticed"
	StateKept      = "kept"
	StateStopped   = "stopped"
	StateCancelled = "cancelled"
)

// Actions taken when the grace ends (Notice.Action, Settings.LeaseAction).
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
)

// SystemActor is the audit actor of the scheduler's own stops.
const SystemActor = "computebot"

const (
	// keepSettled is how long a settled notice stays in the KV (so that a
	// late click on it gets a clear answer) before a scan prunes it.
	keepSettled = 7 * 24 * time.Hour
	// maxAttempts is how many checks try to stop an instance whose Stop
	// call fails before the notice is cancelled.
	maxAttempts = 3
	// lookupEach is how many due notices CheckDue resolves with one
	// DescribeInstances each; more use one listing of all managed instances.
	lookupEach = 20
	// lockStripes serialize state changes per instance without a lock per
	// instance.
	lockStripes = 64
)

// Settings configure the scheduler (config section idle). Zero fields get
// the defaults above; Grace, Snooze, For, Period and CheckEvery must not be
// negative, and For must be a multiple of Period.
type Settings struct {
	Schedule          string        // cron, 5 fields or "@every 10m"
	CPUBelowPercent   float64       // default 5
	NetworkBelowBytes float64       // per period, NetworkIn+NetworkOut; default 5e6
	For               time.Duration // look-back window; default 1h
	Grace             time.Duration // default 30m
	Snooze            time.Duration // Keep running; default 4h
	Period            time.Duration // default 5m
	LeaseAction       string        // "stop" (default) or "terminate" for lease expiry
	CheckEvery        time.Duration // how often due notices are checked between scans; default 1m
	// MetricsDelay moves the window back: end = (now - MetricsDelay)
	// truncated to Period. CloudWatch publishes a basic-monitoring period
	// a few minutes after it ends, and a missing last period is partial
	// data (not idle, and a cancelled stop), so production wants about
	// 10m. Default 0.
	MetricsDelay time.Duration
}

// Cloud is what the scheduler needs from AWS: a subset of
// computebot.Compute and computebot.Metrics.
type Cloud interface {
	ManagedInstances(ctx context.Context, filter computebot.InstanceFilter) ([]computebot.Instance, error)
	Instance(ctx context.Context, id string) (computebot.Instance, error)
	Stop(ctx context.Context, id string) (computebot.Instance, error)
	Terminate(ctx context.Context, id string) (computebot.Instance, error)
	Tag(ctx context.Context, id string, tags map[string]string) error
	InstanceMetrics(ctx context.Context, q computebot.MetricsQuery) (map[string]computebot.InstanceMetrics, error)
}

// Notifier shows notices to people (implemented by the bot).
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
	// Announce posts a line in the notice's thread (n.ThreadTS() in
	// n.Channel): "stopped … (idle)", "cancelled: …".
	Announce(ctx context.Context, n Notice, text string) error
}

// Authorizer is the bot's one policy check, asked before each of the
// scheduler's own stops (actor SystemActor). An error refuses the stop; its
// text is shown in the cancellation.
type Authorizer interface {
	AllowStop(ctx context.Context, inst computebot.Instance) error
}

// Auditor records cloud-changing actions.
type Auditor func(ctx context.Context, e computebot.AuditEntry)

// KV is the store's key/value API; *store.DB satisfies it.
type KV interface {
	Get(ctx context.Context, bucket, key string, v any) error
	Put(ctx context.Context, bucket, key string, v any) error
	Delete(ctx context.Context, bucket, key string) error
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
	// FormatTime renders a time in outcomes and announcements (the bot
	// passes reply.SlackDate); "2006-01-02 15:04 UTC" when nil.
	FormatTime func(time.Time) string
	// OnScan, when set, is called after each scheduled scan with its error
	// (metrics).
	OnScan func(err error)
}

// Scheduler runs the idle scans. Create it with New; it is safe for
// concurrent use (the bot calls Keep, StopNow and Report from its workers
// while scans run).
type Scheduler struct {
	set   Settings
	sched cron.Schedule
	// every is the schedule of the due-notice checker (a test shortens it).
	every cron.Schedule

	cloud  Cloud
	notify Notifier
	authz  Authorizer
	audit  Auditor
	kv     KV
	prices func(ctx context.Context, instanceType string) (float64, bool)
	log    *slog.Logger
	now    func() time.Time
	fmtT   func(time.Time) string
	onScan func(error)

	locks   [lockStripes]sync.Mutex
	checkMu sync.Mutex // one CheckDue at a time

	runMu  sync.Mutex
	cron   *cron.Cron
	cancel context.CancelFunc
}

// New checks the settings and builds a scheduler; Start runs it. A bad
// cron spec is an error naming idle.schedule and the spec, so that the bot
// refuses to start instead of never scanning.
func New(s Settings, d Deps) (*Scheduler, error) {
	sched, err := cron.ParseStandard(s.Schedule)
	if err != nil {
		return nil, fmt.Errorf("idle.schedule: invalid cron schedule %q (%v): use 5 fields such as \"*/10 * * * *\", or \"@every 10m\"", s.Schedule, err)
	}
	def := func(v *time.Duration, key string, dflt time.Duration) error {
		switch {
		case *v < 0:
			return fmt.Errorf("idle.%s: must not be negative, not %s", key, *v)
		case *v == 0:
			*v = dflt
		}
		return nil
	}
	if err := errors.Join(
		def(&s.For, "for", DefaultFor),
		def(&s.Grace, "grace", DefaultGrace),
		def(&s.Snooze, "snooze", DefaultSnooze),
		def(&s.Period, "period", DefaultPeriod),
		def(&s.CheckEvery, "check_every", DefaultCheckEvery),
		def(&s.MetricsDelay, "metrics_delay", 0),
	); err != nil {
		return nil, err
	}
	if s.For%s.Period != 0 {
		return nil, fmt.Errorf("idle.for: must be a multiple of the metrics period %s, not %s", s.Period, s.For)
	}
	if s.CPUBelowPercent == 0 {
		s.CPUBelowPercent = DefaultCPUBelowPercent
	}
	if !(s.CPUBelowPercent > 0 && s.CPUBelowPercent <= 100) {
		return nil, fmt.Errorf("idle.cpu_below_percent: must be more than 0 and at most 100, not %v", s.CPUBelowPercent)
	}
	if s.NetworkBelowBytes == 0 {
		s.NetworkBelowBytes = DefaultNetworkBelowBytes
	}
	if !(s.NetworkBelowBytes > 0) {
		return nil, fmt.Errorf("idle.network_below_bytes: must be more than 0, not %v", s.NetworkBelowBytes)
	}
	switch s.LeaseAction {
	case "":
		s.LeaseAction = ActionStop
	case ActionStop, ActionTerminate:
	default:
		return nil, fmt.Errorf("idle.lease_action: must be %q or %q, not %q", ActionStop, ActionTerminate, s.LeaseAction)
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
	sc := &Scheduler{
		set: s, sched: sched, every: cron.Every(s.CheckEvery),
		cloud: d.Cloud, notify: d.Notifier, authz: d.Authorizer, audit: d.Audit, kv: d.KV,
		prices: d.Prices, log: d.Logger, now: d.Now, fmtT: d.FormatTime, onScan: d.OnScan,
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
	if sc.fmtT == nil {
		sc.fmtT = func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
	}
	return sc, nil
}

// Settings returns the effective settings (defaults filled in).
func (s *Scheduler) Settings() Settings { return s.set }

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
	c.Start()
	s.cron, s.cancel = c, cancel
	s.log.Info("idle scheduler started", "schedule", s.set.Schedule, "for", s.set.For, "grace", s.set.Grace, "check_every", s.set.CheckEvery)
}

// Stop stops the schedule, cancels the running scan or check and waits for
// it to return.
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
	<-done.Done()
	s.log.Info("idle scheduler stopped")
}

// job adapts a run to cron, logging its error.
func (s *Scheduler) job(ctx context.Context, name string, run func(context.Context) error) cron.Job {
	return cron.FuncJob(func() {
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		err := run(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("idle "+name+" failed", "err", err, "took", time.Since(start))
		}
		if name == "scan" && s.onScan != nil {
			s.onScan(err)
		}
	})
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

// lock serializes state changes of one instance's notice.
func (s *Scheduler) lock(id string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	m := &s.locks[h.Sum32()%lockStripes]
	m.Lock()
	return m.Unlock
}
