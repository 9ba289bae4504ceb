// Package flow holds computebot's workflows: what happens after a command is
// parsed and before a reply is rendered. A request's approval (approval.go)
// and launch (launch.go), the lifecycle commands (instances.go), Lambda
// (lambda.go) and the idle scheduler's notices (notices.go) each live in one
// file, on top of computebot.Cloud, computebot.Store, the policy authorizer
// and the small Chat interface below. The package knows neither Slack nor
// AWS: bot/ implements Chat with slack-go, aws/ implements Cloud.
//
// Two entry points carry every command, whether typed, mentioned or clicked:
// Accept runs before the ack (the checks that need no I/O, and persisting
// the envelope's intent with its quick answer, intents.go) and returns that
// answer and the Job to run after the ack; Run does that job. Start runs
// jobs in a worker pool, resumes what a previous process left unfinished
// (Resume) and expires requests nobody decided on.
package flow

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// Chat is what the workflows need from the chat platform, in platform-neutral
// messages. Implemented by package bot (slack-go); tests use an in-memory one.
type Chat interface {
	// Post posts in a channel, in a thread when threadTS is set, and
	// returns the new message's ts.
	Post(ctx context.Context, channel, threadTS string, m reply.Message) (ts string, err error)
	Update(ctx context.Context, channel, ts string, m reply.Message) error
	// Ephemeral shows m to user only, in channel (and thread).
	Ephemeral(ctx context.Context, channel, user, threadTS string, m reply.Message) error
	// Respond answers privately through a response URL, which works even in
	// channels the bot is not a member of.
	Respond(ctx context.Context, responseURL string, m reply.Message) error
	// DM opens (or finds) the direct-message channel with a user.
	DM(ctx context.Context, user string) (channel string, err error)
	// Upload attaches content as a file in a thread.
	Upload(ctx context.Context, channel, threadTS, filename, title, content string) error
	// FindMessage finds the bot's message with the key (reply.Message.Key)
	// in channel (in the thread threadTS, when set) posted since a moment,
	// and returns its ts; an error wrapping computebot.ErrNotFound when
	// there is none.
	FindMessage(ctx context.Context, channel, threadTS, key string, since time.Time) (ts string, err error)
	// OpenView opens a modal in answer to an interaction (trigger: its
	// short-lived token) and returns the view's ID and version (hash).
	OpenView(ctx context.Context, trigger string, v reply.View) (id, hash string, err error)
	// UpdateView replaces an open modal, only over the version hash.
	UpdateView(ctx context.Context, id, hash string, v reply.View) error
	// PublishHome sets a person's home tab.
	PublishHome(ctx context.Context, user string, v reply.View) error
}

// ErrNotInChannel is what a Chat wraps its platform's "not a member" or "no
// such channel" answers in, so the workflows can say "invite me".
var ErrNotInChannel = errors.New("the bot cannot post in this channel")

// ErrRateLimited wraps a chat call the platform refused for its rate
// limit, after the adapter's own retries: worth trying again later.
var ErrRateLimited = errors.New("the chat platform is rate limiting the bot")

// Authorizer is the policy check (policy.Authorizer).
type Authorizer interface {
	Precheck(act policy.Action) policy.Decision
	Authorize(ctx context.Context, act policy.Action) (policy.Decision, error)
	FunctionAllowed(name string) bool
	Approvers() []string
	AllowsSelfApproval() bool
}

// IdleScheduler is what the notice buttons and /computebot idle need from
// the idle scheduler.
type IdleScheduler interface {
	Notice(ctx context.Context, instanceID string) (idle.Notice, error)
	Keep(ctx context.Context, instanceID, actor string) (idle.Notice, error)
	StopNow(ctx context.Context, instanceID, actor string) (idle.Notice, error)
	Report(ctx context.Context) (idle.Report, error)
}

// Origin is who acted, where, and how to answer them privately. Slash
// commands, clicks and mentions all reduce to one.
type Origin struct {
	User     string
	Channel  string
	ThreadTS string // the thread they typed or clicked in; "" at top level
	// ResponseURL answers privately even in channels the bot is not in
	// (slash commands, clicks); mentions have none.
	ResponseURL string
	// Trigger is what the platform sends identically on redelivery and
	// uniquely per invocation (a slash command's trigger_id, an event's
	// ID): request IDs derive from it, so a redelivery is the same request.
	Trigger string
	// ReplyInAck: a quick answer can travel in the ack itself (slash
	// commands). Otherwise Accept sends it after the ack, as a job.
	ReplyInAck bool
}

// Answer is what Accept decided before the ack.
type Answer struct {
	// Reply is the quick answer for the person who acted, to put in the
	// ack (only when Origin.ReplyInAck; otherwise it is in Job).
	Reply *reply.Message
	// Job is what to run after the ack; nil when nothing is left.
	Job *Job
	// Outcome says what became of the command, for metrics: "accepted",
	// "refused", "reply" (help and usage), "ignored", or "duplicate" (a
	// redelivery: not counted again).
	Outcome string
	// Command names the command, "" when the input parsed to none.
	Command string
	// FieldErrors are a submitted form's problems by field: the form stays
	// open showing them (on Slack, response_action errors), nothing is
	// persisted or done.
	FieldErrors map[string]string
}

// Job is one unit of work after the ack: an intent to carry out, or a
// request to take further after a restart. Accept and Resume make them;
// Run does them. A Job names what is stored, so dropping one loses
// nothing: Resume finds it again.
type Job struct {
	kind      jobKind
	intentID  string
	requestID string
	origin    Origin // jobHome (its User), jobForm
}

type jobKind int

const (
	jobIntent  jobKind = iota // carry out an intent
	jobProceed                // take an approved or executing request further (resume)
	jobHome                   // publish a person's home tab (not stored: it changes nothing)
	jobForm                   // open the launch form (not stored: its trigger lasts 3 s)
)

// Options are the workflows' timings. Zero values take the defaults noted.
// Each AWS call is bounded by the cloud client itself (aws.Options.CallTimeout),
// and a synchronous Lambda invocation by lambda.timeout.
type Options struct {
	Workers         int           // worker pool size; default 8
	PollInterval    time.Duration // while waiting for an instance state; default 1s
	LaunchWait      time.Duration // give up waiting for a state after; default 10m
	LaunchAttempts  int           // RunInstances attempts on transient failures; default 3
	RetryBackoff    time.Duration // wait before the next attempt, times the attempt number; default 1s
	SweepInterval   time.Duration // how often pending requests are checked for expiry; default 30s
	ShutdownTimeout time.Duration // in-flight work gets this long in Stop; default 5s (docker stop kills after 10 s)
	NoticeInterval  time.Duration // least time between two notices in one channel; default 1s (Slack's limit)
	// NoticeRecordWait bounds how long a click on a notice waits for the
	// notice's post to be recorded (the poster records its ts right after
	// chat.postMessage returns, and a quick reader can click in between);
	// default 3s.
	NoticeRecordWait time.Duration
	// RefreshRetry is the first wait before a request message's update
	// that was rate limited is tried again (then 3× and 9× that); default
	// 5s.
	RefreshRetry time.Duration
	// AdoptInterval is how often the leader looks for work whose replica
	// is gone (intents and requests it claimed) and takes it over; default
	// 5s. Only with a Cluster of several replicas.
	AdoptInterval time.Duration
}

// withDefaults fills in the zero fields.
func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.LaunchAttempts <= 0 {
		o.LaunchAttempts = 3
	}
	def(&o.PollInterval, time.Second)
	def(&o.LaunchWait, 10*time.Minute)
	def(&o.RetryBackoff, time.Second)
	def(&o.SweepInterval, 30*time.Second)
	def(&o.ShutdownTimeout, 5*time.Second)
	def(&o.NoticeInterval, time.Second)
	def(&o.NoticeRecordWait, 3*time.Second)
	def(&o.AdoptInterval, 5*time.Second)
	def(&o.RefreshRetry, 5*time.Second)
	return o
}

// Deps are the workflows' collaborators; all but Idle and Logger are
// required.
type Deps struct {
	Config *config.Config // validated
	Cloud  computebot.Cloud
	Store  computebot.Store
	Chat   Chat
	Authz  Authorizer
	Idle   IdleScheduler // nil: the idle scheduler is off
	Prices *Prices
	Audit  *Auditor
	Logger *slog.Logger
	Now    func() time.Time
	// Cluster is what this replica knows of the others (package cluster);
	// nil: this process is the only one (see soloCluster).
	Cluster Cluster
	// KV keeps the people's SSH keys; nil: /sshkey is unavailable.
	KV KV
}

// Cluster is the replicas' shared view: this replica's identity, written
// into the claims of the intents and requests it runs; whether it leads
// (then it sweeps expired approvals and adopts the work of replicas that
// are gone); and whether a replica is gone.
type Cluster interface {
	Self() string
	Leading() bool
	Gone(ctx context.Context, replica string) bool
}

// soloCluster is one process alone on its store: it leads, and every
// claim but its own is a previous process's, to take over at start.
type soloCluster struct{}

func (soloCluster) Self() string                                { return "solo" }
func (soloCluster) Leading() bool                               { return true }
func (soloCluster) Gone(_ context.Context, replica string) bool { return replica != "solo" }

// Flow runs the workflows. Create it with New.
type Flow struct {
	cfg     *config.Config
	opts    Options
	cloud   computebot.Cloud
	store   computebot.Store
	chat    Chat
	authz   Authorizer
	idle    IdleScheduler
	prices  *Prices
	audit   *Auditor
	log     *slog.Logger
	now     func() time.Time
	cluster Cluster
	kv      KV

	types    typeInfos // the launch form's specs and prices, cached
	homes    homeQueue // home tabs waiting to be republished
	jobs     chan Job
	locks    keyedLocks  // per request or instance: the order of a thread
	busy     busySet     // the work this process has queued or under way
	stopping atomic.Bool // Stop has begun: no queued job starts

	mu         sync.Mutex // guards started, stopped and waitCtx
	started    bool
	stopped    bool            // a Flow runs once
	waitCtx    context.Context // background waits; cancelled when Stop starts
	cancelWait context.CancelFunc
	cancelWork context.CancelFunc
	stopSweep  context.CancelFunc
	workers    sync.WaitGroup
	waiters    sync.WaitGroup
	sweepDone  chan struct{}
}

// New checks the dependencies and builds the workflows; Start runs them.
func New(d Deps, opts Options) (*Flow, error) {
	var missing []string
	for _, dep := range []struct {
		name string
		ok   bool
	}{{"Config", d.Config != nil}, {"Cloud", d.Cloud != nil}, {"Store", d.Store != nil}, {"Chat", d.Chat != nil},
		{"Authz", d.Authz != nil}, {"Prices", d.Prices != nil}, {"Audit", d.Audit != nil}} {
		if !dep.ok {
			missing = append(missing, dep.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("flow: missing dependencies %v", missing)
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Cluster == nil {
		d.Cluster = soloCluster{}
	}
	f := &Flow{
		cfg: d.Config, opts: opts.withDefaults(), cloud: d.Cloud, store: d.Store, chat: d.Chat, authz: d.Authz,
		idle: d.Idle, prices: d.Prices, audit: d.Audit, log: d.Logger, now: d.Now, cluster: d.Cluster, kv: d.KV,
		jobs: make(chan Job, 4096),
	}
	// Until Start, background waits run with a context of their own (tests
	// call Run directly).
	f.waitCtx, f.cancelWait = context.WithCancel(context.Background())
	return f, nil
}

// Start runs the worker pool, resumes every request a previous process left
// unfinished and starts the expiry sweeper. Work outlives ctx: Stop ends it.
// A Flow runs once: Start after Stop does nothing.
func (f *Flow) Start(ctx context.Context) {
	f.mu.Lock()
	if f.started || f.stopped {
		f.mu.Unlock()
		return
	}
	f.started = true
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	f.cancelWork = cancelWork
	f.waitCtx, f.cancelWait = context.WithCancel(workCtx)
	sweepCtx, stopSweep := context.WithCancel(workCtx)
	f.stopSweep, f.sweepDone = stopSweep, make(chan struct{})
	// Not held from here on: resuming starts background waits, which
	// take it.
	f.mu.Unlock()

	for range f.opts.Workers {
		f.workers.Add(1)
		go func() {
			defer f.workers.Done()
			for j := range f.jobs {
				if f.stopping.Load() {
					f.busy.leave(j.key())
					continue // stored: it resumes on the next start
				}
				f.Run(workCtx, j)
				f.busy.leave(j.key())
			}
		}()
	}
	for _, j := range f.Resume(workCtx) {
		f.Submit(j)
	}
	go func() {
		defer close(f.sweepDone)
		t := time.NewTicker(f.opts.SweepInterval)
		defer t.Stop()
		adopt := time.NewTicker(f.opts.AdoptInterval)
		defer adopt.Stop()
		var pruned time.Time // zero: the first sweep prunes
		for {
			select {
			case <-sweepCtx.Done():
				return
			case <-adopt.C:
				for _, j := range f.Adopt(sweepCtx) {
					f.Submit(j)
				}
			case <-t.C:
				if !f.cluster.Leading() {
					continue // one sweeper for the deployment: the leader
				}
				f.SweepExpired(sweepCtx)
				// Done intents are kept a day: pruning them hourly is
				// plenty, and spares the store a scan every sweep.
				// A failed prune is tried again at the next sweep.
				if now := f.now(); now.Sub(pruned) >= pruneEvery && f.pruneIntents(sweepCtx) {
					pruned = now
				}
			}
		}
	}()
}

// keepIntents is how long a done intent is kept: Slack redelivers an
// envelope for minutes, and its answer must be there to send again.
const keepIntents = 24 * time.Hour

// pruneEvery is how often done intents are pruned.
const pruneEvery = time.Hour

// pruneIntents forgets the intents done long enough ago, and reports
// whether it could.
func (f *Flow) pruneIntents(ctx context.Context) bool {
	n, err := f.store.PruneIntents(ctx, f.now().Add(-keepIntents))
	switch {
	case err != nil:
		f.log.Error("prune intents", "err", err)
		return false
	case n > 0:
		f.log.Debug("pruned done intents", "count", n)
	}
	return true
}

// Submit queues a job for the workers.
func (f *Flow) Submit(j Job) {
	if j.kind == jobForm {
		// The form must open within the trigger's 3 seconds: not behind
		// the queue.
		f.background(func(ctx context.Context) { f.Run(ctx, j) })
		return
	}
	f.busy.enter(j.key()) // left by the worker that runs it
	f.jobs <- j
}

// key names the work a job does, for busySet.
func (j Job) key() string {
	switch j.kind {
	case jobIntent:
		return "intent:" + j.intentID
	case jobHome, jobForm:
		return "view:" + j.origin.User
	}
	return "launch:" + j.requestID
}

// busySet counts, per piece of work (an intent, a request's launch, a
// request's wait for running), the jobs of this process queued or under
// way on it: the work this replica claimed but has nothing on (a job
// that gave up on an error) is submitted again (Adopt), and nothing else.
type busySet struct {
	mu sync.Mutex
	n  map[string]int
}

// enter counts one more on key; the returned func counts it off.
func (b *busySet) enter(key string) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == nil {
		b.n = map[string]int{}
	}
	b.n[key]++
	return func() { b.leave(key) }
}

func (b *busySet) leave(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n[key]--; b.n[key] <= 0 {
		delete(b.n, key)
	}
}

func (b *busySet) idle(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[key] == 0
}

// Stop starts no queued job (each is stored, and resumes on the next
// start), gives the jobs under way up to ShutdownTimeout, then cancels what
// is left (it resumes too). Background waits stop at once. So a stop takes
// ShutdownTimeout at most, whatever the backlog. Nothing may Submit once
// Stop has started.
func (f *Flow) Stop() {
	f.stopping.Store(true)
	f.mu.Lock()
	started := f.started
	f.started, f.stopped = false, true
	f.mu.Unlock()
	f.cancelWait()
	if !started {
		f.waiters.Wait()
		return
	}
	f.stopSweep()
	<-f.sweepDone
	close(f.jobs)
	done := make(chan struct{})
	go func() { f.workers.Wait(); f.waiters.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(f.opts.ShutdownTimeout):
		f.log.Warn("shutdown timeout: cancelling in-flight work; it resumes on the next start")
		f.cancelWork()
		<-done
	}
	f.cancelWork()
}

// Run does one job. Workers call it; tests call it directly.
func (f *Flow) Run(ctx context.Context, j Job) {
	defer func() {
		// A bug in one job must not take the bot down with it.
		if p := recover(); p != nil {
			f.log.Error("job panicked", "intent", j.intentID, "request_id", j.requestID, "panic", p)
		}
	}()
	switch j.kind {
	case jobIntent:
		f.runIntent(ctx, j.intentID)
	case jobProceed:
		defer f.locks.lock(j.requestID)()
		f.proceed(ctx, j.requestID, true)
	case jobHome:
		f.publishHome(ctx, j.origin.User, true)
	case jobForm:
		f.openLaunchForm(ctx, j.origin)
	}
}

// Resume returns the jobs that finish what a previous process left
// unfinished, each once: every intent not done, and every request between
// its decision and its end (approved and executing ones are launched with
// the same ClientToken; launched ones are waited for, in the background).
// Requests not decided yet belong to their intents, and so do those whose
// deciding intent is unfinished. With several replicas, only what this
// replica claimed before (same COMPUTEBOT_REPLICA) or what a replica that
// is gone claimed is resumed: the rest is under way elsewhere.
func (f *Flow) Resume(ctx context.Context) []Job { return f.adopt(ctx, true) }

// Adopt returns, every AdoptInterval, the jobs for the work this replica
// claimed and has nothing queued or under way on (a job that gave up on a
// store or AWS error: it is tried again), and, when it leads, those that
// take over the work of replicas that are gone.
func (f *Flow) Adopt(ctx context.Context) []Job {
	return f.adopt(ctx, false)
}

// adopt finds the work to (re)start: this replica's own claims with
// nothing on them in this process; at start (Resume) or when it leads,
// also the claims of replicas that are gone, each taken with a
// compare-and-set on its claim, so of two adopters one wins. A process is
// a replica of its own (the cluster's IDs have an incarnation), so at
// start it has no claims yet: what its previous run claimed is a gone
// replica's.
func (f *Flow) adopt(ctx context.Context, atStart bool) []Job {
	self := f.cluster.Self()
	leads := atStart || f.cluster.Leading()
	now := f.now()
	mine := func(claim string, busyKeys ...string) bool {
		if claim == self {
			for _, k := range busyKeys {
				if !f.busy.idle(k) {
					return false
				}
			}
			return true
		}
		return leads && f.cluster.Gone(ctx, claim)
	}
	var jobs []Job
	ins, err := f.store.UnfinishedIntents(ctx)
	if err != nil {
		f.log.Error("resume: list intents", "err", err)
	}
	unfinished := make(map[string]bool, len(ins))
	for _, in := range ins {
		unfinished[in.ID] = true
		if !atStart && in.Claim == self && (now.Sub(in.CreatedAt) < ownIntentGrace || in.Step == stepInvoking) {
			// Just accepted: its job is on its way (the adapter submits
			// it after the ack). Or an invocation under way, which must
			// not run twice: only a restart or another replica, after
			// this one is gone, tells it was interrupted.
			continue
		}
		if !mine(in.Claim, "intent:"+in.ID) || !f.claimIntent(ctx, in) {
			continue
		}
		f.log.Info("resuming intent", "intent", in.ID, "source", in.Source, "command", in.Command+in.ActionID, "from", in.Claim)
		jobs = append(jobs, Job{kind: jobIntent, intentID: in.ID})
	}
	reqs, err := f.store.Requests(ctx, computebot.RequestApproved, computebot.RequestExecuting, computebot.RequestLaunched)
	if err != nil {
		f.log.Error("resume: list requests", "err", err)
		return jobs
	}
	for _, r := range reqs {
		if r.MessageTS == "" || unfinished[r.DecidedIn] {
			// Not posted yet, or its decision not told yet: its intent
			// does that, then takes the request further, in that order.
			continue
		}
		if !atStart && r.Claim == self && r.Lambda != nil && r.State == computebot.RequestExecuting {
			continue // an invocation under way: never twice (see above)
		}
		// A launched request is busy while its launch job still runs
		// (it starts the wait) or its wait does.
		if !mine(r.Claim, "launch:"+r.ID, "wait:"+r.ID) || !f.claimRequest(ctx, r.ID, r.Claim) {
			continue
		}
		f.log.Info("resuming request", "request_id", r.ID, "state", r.State, "from", r.Claim)
		if r.State == computebot.RequestLaunched {
			f.startWaiter(r.ID, true)
			continue
		}
		jobs = append(jobs, Job{kind: jobProceed, requestID: r.ID})
	}
	return jobs
}

// ownIntentGrace is how old an intent of this replica must be before
// Adopt restarts it: the adapter submits an accepted intent's job right
// after the ack (within Slack's 3 s).
const ownIntentGrace = 30 * time.Second

// errClaimed: the claim changed since it was read (another replica took
// the work, or it finished).
var errClaimed = errors.New("flow: claimed meanwhile")

// claimIntent makes this replica the one that runs in, if its claim is
// still the one read.
func (f *Flow) claimIntent(ctx context.Context, in *computebot.Intent) bool {
	self := f.cluster.Self()
	if in.Claim == self {
		return true
	}
	_, err := f.store.UpdateIntent(ctx, in.ID, func(cur *computebot.Intent) error {
		if cur.Claim != in.Claim || cur.State == computebot.IntentDone {
			return errClaimed
		}
		cur.Claim = self
		return nil
	})
	if err != nil && !errors.Is(err, errClaimed) {
		f.log.Error("claim intent", "intent", in.ID, "err", err)
	}
	return err == nil
}

// claimRequest makes this replica the one that takes request id on, if
// its claim is still from (the one read).
func (f *Flow) claimRequest(ctx context.Context, id, from string) bool {
	self := f.cluster.Self()
	if from == self {
		return true
	}
	_, err := f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.Claim != from || cur.State.Terminal() {
			return errClaimed
		}
		cur.Claim = self
		return nil
	})
	if err != nil && !errors.Is(err, errClaimed) {
		f.log.Error("claim request", "request_id", id, "err", err)
	}
	return err == nil
}

// runCommand runs the commands that need no request: the lists, status,
// the idle report and the audit log (running them twice does no harm), and
// the lifecycle commands (their EC2 calls are idempotent; /extend records
// the lease end it computed first).
func (f *Flow) runCommand(ctx context.Context, in *computebot.Intent, o Origin, cmd commands.Command) {
	switch c := cmd.(type) { // the lifecycle commands finish their intents themselves
	case *commands.Stop:
		f.changeInstance(ctx, in, o, policy.ActionStop, c.Target, 0)
		return
	case *commands.Start:
		f.changeInstance(ctx, in, o, policy.ActionStart, c.Target, 0)
		return
	case *commands.Terminate:
		f.changeInstance(ctx, in, o, policy.ActionTerminate, c.Target, 0)
		return
	case *commands.Extend:
		f.changeInstance(ctx, in, o, policy.ActionExtend, c.Target, c.Hours)
		return
	}
	defer f.finishing(ctx, in)()
	switch c := cmd.(type) {
	case *commands.Instances:
		f.listInstances(ctx, o, c.All, 0)
	case pageCommand:
		if c.list == "lambda" {
			f.listFunctions(ctx, o, c.offset)
		} else {
			f.listInstances(ctx, o, c.all, c.offset)
		}
	case *commands.LambdaList:
		f.listFunctions(ctx, o, 0)
	case *commands.Status:
		f.status(ctx, o)
	case *commands.Idle:
		f.idleReport(ctx, o)
	case *commands.Audit:
		f.auditLog(ctx, o, f.auditQuery(c), 0)
	case auditPageCommand:
		f.auditLog(ctx, o, c.query, c.offset)
	case *commands.SSHKeyAdd:
		f.sshKeyAdd(ctx, o, c)
	case *commands.SSHKeyList:
		f.sshKeyList(ctx, o)
	case *commands.SSHKeyRemove:
		f.sshKeyRemove(ctx, o, c.Name)
	case *commands.Connect:
		f.connect(ctx, o, c.Target)
	case *commands.Keep:
		f.keep(ctx, in, o, c)
	case *commands.SetSchedule:
		f.setSchedule(ctx, o, c)
	default:
		f.tell(ctx, o, reply.CannotRun(cmd.CommandName()))
	}
}

// dm sends m to a person's direct-message channel with the bot.
func (f *Flow) dm(ctx context.Context, user string, m reply.Message) {
	ch, err := f.chat.DM(ctx, user)
	if err == nil {
		_, err = f.chat.Post(ctx, ch, "", m)
	}
	if err != nil {
		f.log.Error("private reply by DM failed", "user", user, "err", err)
	}
}

// tell answers the person who acted, and only them.
func (f *Flow) tell(ctx context.Context, o Origin, m reply.Message) {
	var err error
	if o.ResponseURL != "" {
		err = f.chat.Respond(ctx, o.ResponseURL, m)
		if err == nil {
			return
		}
		// A response URL lives 30 minutes and five uses; a rerun after a
		// restart, or a long wait, can outlive it. An ephemeral message
		// still reaches the person wherever the bot is a member.
		f.log.Warn("response URL failed; answering ephemerally", "user", o.User, "err", err)
	}
	if o.Channel == "" {
		// From the home tab or a form: no channel to whisper in, so a DM.
		f.dm(ctx, o.User, m)
		return
	}
	err = f.chat.Ephemeral(ctx, o.Channel, o.User, o.ThreadTS, m)
	if errors.Is(err, ErrNotInChannel) {
		// A channel the bot is not in (a form's pick): still privately.
		f.dm(ctx, o.User, m)
		return
	}
	if err != nil {
		f.log.Error("private reply failed", "user", o.User, "channel", o.Channel, "err", err)
	}
}

// post posts m and logs a failure; what a lost progress message costs is
// only the message.
func (f *Flow) post(ctx context.Context, channel, thread string, m reply.Message, what string, logArgs ...any) {
	if _, err := f.chat.Post(ctx, channel, thread, m); err != nil {
		f.log.Error("post "+what, append(logArgs, "err", err)...)
	}
}

// background runs slow follow-up work (waiting for a state change) outside
// the worker pool; it stops when Stop starts, and resumes from the store on
// the next start.
func (f *Flow) background(fn func(ctx context.Context)) {
	f.mu.Lock()
	ctx := f.waitCtx
	f.waiters.Add(1)
	f.mu.Unlock()
	go func() {
		defer f.waiters.Done()
		fn(ctx)
	}()
}

// requestID derives a short, readable ID from what the platform sends
// identically on redelivery and uniquely per invocation: the same command
// delivered twice maps to the same request.
func requestID(trigger string) string {
	sum := sha256.Sum256([]byte(trigger))
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ" // no 0/O, 1/I
	var out [8]byte
	for i := range out {
		out[i] = alphabet[sum[i]&31]
	}
	return "R-" + string(out[:])
}
