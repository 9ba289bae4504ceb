// Command computebot runs the Slack bot. main only wires: everything it
// starts is built by Main, so tests run the real wiring (see main_test.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/bot"
	"github.com/computebot/computebot/cluster"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/policy"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "version":
			printVersion(os.Stdout)
			return
		case "demo":
			os.Exit(runDemo(os.Args[2:], os.Stdin, os.Stdout))
		case "check":
			os.Exit(runCheck(os.Args[2:], os.Stdout, os.Stderr, os.Getenv))
		case "audit":
			os.Exit(runAudit(os.Args[2:], os.Stdout, os.Stderr, os.Getenv))
		case "health":
			os.Exit(runHealth(os.Args[2:], os.Stdout, os.Getenv))
		case "store":
			os.Exit(runStore(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "computebot:", err)
		os.Exit(1)
	}
	// Serve until a signal or a fatal bot error, then shut down in order.
	var err error
	select {
	case <-ctx.Done():
	case err = <-m.Done():
	}
	if cerr := m.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "computebot:", err)
		os.Exit(1)
	}
}

// Main is the program: flags and environment in, a running bot out.
type Main struct {
	ConfigPath string
	LogLevel   slog.Level
	// Listen is the address of /healthz, /readyz and /metrics; "" turns
	// them off. Set before ParseFlags, it replaces --listen's default.
	Listen string
	// Getenv reads the environment; tests replace it.
	Getenv func(string) string
	Stderr io.Writer

	// Timings, AWS and IdleCheckEvery let tests tighten timings; zero
	// values keep the defaults. Of AWS, the call timeout and the read
	// retries are used (the region comes from the config).
	Timings        flow.Options
	AWS            aws.Options
	IdleCheckEvery time.Duration
	// WrapObserver, when set, wraps what observes the Slack adapter
	// (metrics and readiness), for tests that want to see it too.
	WrapObserver func(bot.Observer) bot.Observer
	// OnStoreCall, when set, sees each DynamoDB call of the shared store
	// with the capacity units it consumed (tests count them).
	OnStoreCall func(op string, units float64, err error)

	log   *slog.Logger
	ops   *ops
	store botStore
	idle  *idle.Scheduler
	// cluster renews this replica's leases (shared store only) until
	// stopCluster, after the workflows stopped; clusterDone closes when
	// it has released them.
	cluster     *cluster.Cluster
	stopCluster context.CancelFunc
	clusterDone chan struct{}
	flow        *flow.Flow
	cancel      context.CancelFunc
	done        chan error
	once        sync.Once
	result      error
}

// NewMain returns a Main reading the real environment.
func NewMain() *Main {
	return &Main{Getenv: os.Getenv, Stderr: os.Stderr, done: make(chan error, 1)}
}

// ParseFlags reads command-line flags; --config falls back to COMPUTEBOT_CONFIG.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("computebot", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&m.ConfigPath, "config", m.Getenv("COMPUTEBOT_CONFIG"), "config file (YAML); env COMPUTEBOT_CONFIG")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	listen := m.Listen
	if listen == "" {
		listen = m.Getenv("COMPUTEBOT_LISTEN")
	}
	if listen == "" {
		listen = DefaultListen
	}
	fs.StringVar(&m.Listen, "listen", listen, `address of /healthz, /readyz and /metrics ("" to disable); env COMPUTEBOT_LISTEN`)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: computebot [--listen ADDR] [--log-level LEVEL] --config FILE\n       computebot demo            (the whole product in this terminal: no Slack app, no AWS account)\n       computebot check --config FILE\n       computebot audit --config FILE [--since 7d] [--json]   (read the audit log; with store.path, the bot must be stopped)\n       computebot store init --config FILE          (create the DynamoDB table of store.dynamodb.table)\n       computebot store migrate --from computebot.db --to TABLE\n       computebot version\n\nSecrets come from the environment: SLACK_BOT_TOKEN, SLACK_APP_TOKEN.\nSLACK_API_URL overrides the Slack Web API base URL; AWS uses the SDK's default chain (AWS_REGION, AWS_ENDPOINT_URL, …).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if err := m.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if m.ConfigPath == "" {
		return errors.New("no config: pass --config FILE or set COMPUTEBOT_CONFIG (see config/example.yaml)")
	}
	return nil
}

// Run loads the config, opens the store, connects AWS and starts the bot in
// the background. Errors here are start-up errors; later fatal errors arrive
// on Done.
//
// The pieces, in the order a command meets them: bot (Slack) → commands
// (parse) → flow (workflows) → policy → store → aws (cloud) → reply (words)
// → bot (Block Kit). The idle scheduler posts through flow's Notices.
func (m *Main) Run(ctx context.Context) (err error) {
	m.log = newLogger(m.Stderr, m.LogLevel)
	m.ops = newOps()

	cfg, err := config.Load(m.ConfigPath)
	if err != nil {
		return err
	}
	botToken, appToken := m.Getenv("SLACK_BOT_TOKEN"), m.Getenv("SLACK_APP_TOKEN")
	if err := checkTokens(botToken, appToken); err != nil {
		return err
	}

	db, err := openStore(ctx, cfg, m.log, m.OnStoreCall)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = db.Close()
		}
	}()
	m.store = db
	m.ops.storeOpen.Store(true)
	m.ops.metrics.PendingRequests(pendingRequests(db))

	awsOpts := m.AWS
	awsOpts.Region, awsOpts.Logger, awsOpts.OnCall = cfg.AWS.Region, m.log, m.ops.metrics.AWSCall
	cloud, err := aws.New(ctx, awsOpts)
	if err != nil {
		return fmt.Errorf("aws: %w", err)
	}

	var observer bot.Observer = m.ops.observer()
	if m.WrapObserver != nil {
		observer = m.WrapObserver(observer)
	}
	chat := bot.NewChat(bot.ChatOptions{APIURL: m.Getenv("SLACK_API_URL"), BotToken: botToken, AppToken: appToken, Observer: observer})
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = chat.CheckTokens(tctx) // a revoked or wrong bot token stops the start here, saying so
	cancel()
	if err != nil {
		return err
	}
	replicaID := cluster.ReplicaID(m.Getenv)
	leaseTTL := cfg.Store.DynamoDB.LeaseTTL.Duration()
	peers, lease, err := joinCluster(ctx, cfg, db, replicaID, leaseTTL, m.log)
	if err != nil {
		return err
	}
	t := m.Timings
	if t.AdoptInterval == 0 && cfg.Store.Shared() {
		// A gone replica's work is looked for as often as leases renew.
		t.AdoptInterval = leaseTTL / 3
	}
	authz := policy.New(cfg, policy.Options{Groups: chat, Usage: flow.NewUsage(cloud, db), Logger: m.log})
	prices := flow.NewPrices(cloud, cfg.Launch.Prices, m.log)
	audit := flow.NewAuditor(db, m.log)
	sched, err := idle.New(cfg.Idle, idle.Deps{
		Cloud: cloud, Notifier: flow.NewNotices(chat, cfg.NotifyChannel, t.NoticeInterval, m.log), Authorizer: authz,
		Audit: audit.Record, KV: db, Prices: prices.Price, Observer: m.ops.metrics,
		Logger: m.log, CheckEvery: m.IdleCheckEvery, Leader: peers,
	})
	if err != nil {
		return err
	}
	f, err := flow.New(flow.Deps{Config: cfg, Cloud: cloud, Store: db, Chat: chat, Authz: authz, Idle: sched,
		Prices: prices, Audit: audit, Logger: m.log, Cluster: peers, KV: db}, t)
	if err != nil {
		return err
	}
	b, err := bot.New(bot.Options{Chat: chat, Workflows: f, Logger: m.log})
	if err != nil {
		return err
	}
	if m.Listen != "" {
		if err := m.ops.listen(m.Listen); err != nil {
			return err
		}
		m.log.Info("serving /healthz, /readyz and /metrics", "addr", m.ops.addr())
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel, m.idle, m.flow = cancel, sched, f
	if lease != nil {
		cctx, stopCluster := context.WithCancel(context.WithoutCancel(ctx))
		m.cluster, m.stopCluster, m.clusterDone = lease, stopCluster, make(chan struct{})
		healthy := lease.Healthy
		m.ops.heartbeat.Store(&healthy)
		go func() { defer close(m.clusterDone); lease.Run(cctx) }()
	}
	f.Start(runCtx)
	go func() {
		err := b.Run(runCtx)
		if err != nil {
			m.ops.fail(err) // /healthz fails from here on
		}
		m.done <- err
		close(m.done)
	}()
	sched.Start(runCtx)
	m.log.Info("computebot started", "version", versionString(), "config", m.ConfigPath, "store", storeName(cfg),
		"replica", replicaID)
	return nil
}

// Done delivers the bot's exit: nil after Close, an error when it stopped on
// its own (for example Slack refused the tokens).
func (m *Main) Done() <-chan error { return m.done }

// Close stops taking envelopes, lets in-flight work finish (within the
// shutdown timeout) and closes the store.
func (m *Main) Close() error {
	m.once.Do(func() {
		if m.ops != nil {
			m.ops.storeOpen.Store(false) // /readyz fails from here on
		}
		if m.idle != nil {
			m.idle.Stop() // no new scans; a running one is cancelled and waited for
		}
		if m.cancel != nil {
			m.cancel()
			for err := range m.done { // no envelope is handed on after this
				m.result = errors.Join(m.result, err)
			}
		}
		if m.flow != nil {
			m.flow.Stop()
		}
		if m.stopCluster != nil {
			// Released only now that nothing of this replica runs: its
			// claims are then free for the leader to take at once.
			m.stopCluster()
			<-m.clusterDone
		}
		if m.store != nil {
			m.result = errors.Join(m.result, m.store.Close())
		}
		m.result = errors.Join(m.result, m.ops.shutdown())
	})
	return m.result
}

// checkTokens catches the common swap of the two tokens without ever
// printing them.
func checkTokens(botToken, appToken string) error {
	switch {
	case botToken == "" || appToken == "":
		return errors.New("SLACK_BOT_TOKEN (xoxb-…) and SLACK_APP_TOKEN (xapp-…) must be set in the environment")
	case !strings.HasPrefix(appToken, "xapp-"):
		return errors.New("SLACK_APP_TOKEN must be an app-level token (starts with xapp-, scope connections:write)")
	case !strings.HasPrefix(botToken, "xoxb-"):
		return errors.New("SLACK_BOT_TOKEN must be a bot token (starts with xoxb-)")
	}
	return nil
}
