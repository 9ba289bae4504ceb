// Package bot is everything that talks to Slack: the socket-mode loop, the
// approval flow and Block Kit rendering. It is the only package that imports
// slack-go. It reaches AWS only through computebot.Cloud and persists only
// through computebot.Store.
//
// Every envelope follows one path: parse and validate, persist, ack, then
// work in a worker pool. Nothing slow (AWS, most Slack calls) happens before
// the ack, so a slow AWS never makes Slack retry an envelope.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
)

// Settings is the part of the configuration the bot acts on.
type Settings struct {
	Approvers         []string
	AllowSelfApproval bool
	ApprovalTTL       time.Duration
	NotifyChannel     string

	AllowedTypes      []string
	AutoApproveTypes  []string
	AMI               string
	SSHUser           string
	KeyName           string
	SecurityGroupIDs  []string
	SubnetID          string
	MaxRunningPerUser int
	DefaultLease      time.Duration
	MaxLease          time.Duration
	Prices            map[string]float64 // USD per hour; overrides the Pricing API

	AllowedFunctions []string      // glob patterns of Lambda functions people may list and invoke
	RequireApproval  []string      // glob patterns of functions that go through approval first
	LambdaTimeout    time.Duration // longest wait for a synchronous invoke; default 60s
}

// Options wire a Bot. Zero durations take the defaults noted.
type Options struct {
	Settings Settings
	Cloud    computebot.Cloud
	Store    computebot.Store
	Logger   *slog.Logger

	// Slack connection. APIURL defaults to https://slack.com/api/.
	BotToken string
	AppToken string
	APIURL   string

	Workers         int           // worker pool size; default 8
	CallTimeout     time.Duration // per AWS call; default 30s
	PollInterval    time.Duration // while waiting for an instance to run; default 1s
	LaunchWait      time.Duration // give up waiting for running after; default 10m
	LaunchAttempts  int           // RunInstances attempts on transient failures; default 3
	RetryBackoff    time.Duration // wait before the next attempt, times the attempt number; default 1s
	SweepInterval   time.Duration // how often pending requests are checked for expiry; default 30s
	ShutdownTimeout time.Duration // in-flight work gets this long after Run's context ends; default 20s
	NoticeInterval  time.Duration // least time between two notices in one channel; default 1s (Slack's limit)
	Now             func() time.Time

	// OnConnected, when set, is called each time the socket connects
	// (readiness probes, tests).
	OnConnected func()
	// OnAck, when set, gets the time from the bot receiving each envelope
	// to its ack being handed to the socket (metrics, benchmarks).
	OnAck func(envelopeType string, d time.Duration)
	// OnDisconnected, when set, is called when the socket goes down
	// (connection error, disconnect request or a reconnect starting).
	OnDisconnected func()
	// OnEnvelope, when set, is called for each envelope received.
	OnEnvelope func(envelopeType string)
	// OnCommand, when set, is called once per command (slash command,
	// mention or button click) with its name and outcome: "accepted",
	// "refused", "reply" or "ignored".
	OnCommand func(name, outcome string)
	// OnSlackCall, when set, is called after each Slack Web API HTTP
	// request with the API method and HTTP status (0: transport error).
	OnSlackCall func(method string, status int)
}

// Bot is computebot's Slack side.
type Bot struct {
	opts  Options
	set   Settings
	cloud computebot.Cloud
	store computebot.Store
	log   *slog.Logger
	now   func() time.Time
	authz *policy.Authorizer

	api    *slack.Client
	socket *socketmode.Client
	chat   chat

	jobs     chan job
	acking   chan struct{} // semaphore: envelopes between receipt and ack
	inflight sync.WaitGroup
	seen     *envelopeSet
	waiters  sync.WaitGroup
	waitCtx  context.Context // cancelled when shutdown starts

	idle IdleScheduler
	pace *pacer // spaces notices per channel

	userLocks sync.Map // Slack user ID → *sync.Mutex
	received  sync.Map // envelope ID → time.Time, until its ack
}

// New checks opts and builds a Bot; Run starts it.
func New(opts Options) (*Bot, error) {
	if opts.Cloud == nil || opts.Store == nil {
		return nil, errors.New("bot: Cloud and Store are required")
	}
	if opts.BotToken == "" || opts.AppToken == "" {
		return nil, errors.New("bot: SLACK_BOT_TOKEN and SLACK_APP_TOKEN are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.APIURL == "" {
		opts.APIURL = slack.APIURL
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	setDefault(&opts.CallTimeout, 30*time.Second)
	setDefault(&opts.PollInterval, time.Second)
	setDefault(&opts.LaunchWait, 10*time.Minute)
	setDefault(&opts.RetryBackoff, time.Second)
	if opts.LaunchAttempts <= 0 {
		opts.LaunchAttempts = 3
	}
	setDefault(&opts.SweepInterval, 30*time.Second)
	setDefault(&opts.ShutdownTimeout, 20*time.Second)
	setDefault(&opts.NoticeInterval, time.Second)
	setDefault(&opts.Settings.ApprovalTTL, 24*time.Hour)
	setDefault(&opts.Settings.DefaultLease, 8*time.Hour)
	setDefault(&opts.Settings.MaxLease, 72*time.Hour)
	setDefault(&opts.Settings.LambdaTimeout, 60*time.Second)
	if opts.Now == nil {
		opts.Now = time.Now
	}

	slackOpts := []slack.Option{slack.OptionAPIURL(opts.APIURL), slack.OptionAppLevelToken(opts.AppToken)}
	if opts.OnSlackCall != nil {
		slackOpts = append(slackOpts, slack.OptionHTTPClient(&http.Client{Transport: countingTransport{http.DefaultTransport, opts.OnSlackCall}}))
	}
	api := slack.New(opts.BotToken, slackOpts...)
	b := &Bot{
		opts:   opts,
		set:    opts.Settings,
		cloud:  opts.Cloud,
		store:  opts.Store,
		log:    opts.Logger,
		now:    opts.Now,
		api:    api,
		socket: socketmode.New(api),
		jobs:   make(chan job, 4096),
		acking: make(chan struct{}, 256),
		seen:   newEnvelopeSet(15 * time.Minute),
		pace:   newPacer(opts.NoticeInterval),
	}
	b.chat = newSlackChat(api)
	b.authz = policy.New(policy.Rules{
		Approvers:         opts.Settings.Approvers,
		AllowSelfApproval: opts.Settings.AllowSelfApproval,
		AllowedTypes:      opts.Settings.AllowedTypes,
		AutoApproveTypes:  opts.Settings.AutoApproveTypes,
		MaxRunningPerUser: opts.Settings.MaxRunningPerUser,
		MaxLease:          opts.Settings.MaxLease,
		AllowedFunctions:  opts.Settings.AllowedFunctions,
		RequireApproval:   opts.Settings.RequireApproval,
	}, policy.Options{Groups: b.chat, Usage: usage{b}, Now: opts.Now, Logger: opts.Logger})
	return b, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Run connects to Slack and serves until ctx ends, then stops taking
// envelopes and gives in-flight work ShutdownTimeout to finish. It returns
// an error when Slack refuses the tokens.
func (b *Bot) Run(ctx context.Context) error {
	// Work outlives ctx by up to ShutdownTimeout so that a click acked just
	// before SIGTERM still gets its answer.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	var workers sync.WaitGroup
	for range b.opts.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range b.jobs {
				b.runJob(workCtx, j)
			}
		}()
	}

	waitCtx, cancelWaits := context.WithCancel(workCtx)
	defer cancelWaits()
	b.waitCtx = waitCtx

	b.resume(workCtx)

	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		b.sweepLoop(ctx, workCtx)
	}()

	sockCtx, cancelSock := context.WithCancel(ctx)
	defer cancelSock()
	sockErr := make(chan error, 1)
	go func() { sockErr <- b.socket.RunContext(sockCtx) }()

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-sockErr:
			if err != nil && ctx.Err() == nil {
				runErr = fmt.Errorf("bot: socket mode: %w", err)
			}
			break loop
		case evt := <-b.socket.Events:
			b.handleEvent(sockCtx, evt)
		}
	}
	cancelSock()
	cancelWaits()
	<-sweepDone
	b.inflight.Wait() // they may still queue jobs

	// No more envelopes: let the queue drain, then wait for workers and
	// launch waiters, cutting them off after ShutdownTimeout.
	close(b.jobs)
	done := make(chan struct{})
	go func() { workers.Wait(); b.waiters.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(b.opts.ShutdownTimeout):
		b.log.Warn("shutdown timeout: cancelling in-flight work; it resumes on the next start")
		cancelWork()
		<-done
	}
	return runErr
}

// awsCtx bounds one AWS call.
func (b *Bot) awsCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.opts.CallTimeout)
}

// lockUser serialises the decisions that count a user's quota, so that two
// approvals racing each other cannot both pass the same check.
func (b *Bot) lockUser(user string) func() {
	m, _ := b.userLocks.LoadOrStore(user, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// audit writes an audit entry and logs it; a failing audit write is logged
// loudly but does not undo what already happened in the cloud.
func (b *Bot) audit(ctx context.Context, e computebot.AuditEntry) {
	if e.Time.IsZero() {
		e.Time = b.now()
	}
	b.log.Info("audit", "actor", e.Actor, "action", e.Action, "request_id", e.RequestID,
		"target", e.Target, "result", e.Result, "detail", e.Detail)
	if err := b.store.Audit(context.WithoutCancel(ctx), e); err != nil {
		b.log.Error("audit write failed", "request_id", e.RequestID, "action", e.Action, "err", err)
	}
}

// usage counts a user's active launches for the quota: pending or running
// managed instances plus approved requests that have no instance yet.
type usage struct{ b *Bot }

func (u usage) ActiveLaunches(ctx context.Context, owner string) (int, error) {
	actx, cancel := u.b.awsCtx(ctx)
	defer cancel()
	insts, err := u.b.cloud.ManagedInstances(actx, computebot.InstanceFilter{
		Owner:  owner,
		States: []string{computebot.InstancePending, computebot.InstanceRunning},
	})
	if err != nil {
		return 0, err
	}
	n := len(insts)
	reqs, err := u.b.store.Requests(ctx, computebot.RequestApproved, computebot.RequestLaunching)
	if err != nil {
		return 0, err
	}
	for _, r := range reqs {
		if r.Requester == owner && r.InstanceID == "" {
			n++
		}
	}
	return n, nil
}

// envelopeSet remembers recently seen envelope IDs so a redelivered envelope
// is acked again but not acted on twice. Memory is enough here: request IDs
// are derived from Slack's trigger_id, so a redelivery after a restart still
// finds the stored request.
type envelopeSet struct {
	mu   sync.Mutex
	ttl  time.Duration
	seen map[string]time.Time
	last time.Time
}

func newEnvelopeSet(ttl time.Duration) *envelopeSet {
	return &envelopeSet{ttl: ttl, seen: map[string]time.Time{}}
}

// firstTime records id and reports whether it had not been seen.
func (s *envelopeSet) firstTime(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.last) > time.Minute {
		for k, t := range s.seen {
			if now.Sub(t) > s.ttl {
				delete(s.seen, k)
			}
		}
		s.last = now
	}
	if _, ok := s.seen[id]; ok {
		return false
	}
	s.seen[id] = now
	return true
}
