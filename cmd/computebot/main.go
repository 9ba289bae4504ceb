// Command computebot runs the Slack bot. main only wires: everything it
// starts is built by Main, so tests run the real wiring (see harness_test.go).
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
	if code, handled := subcommand(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv); handled {
		os.Exit(code)
	}
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
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

// subcommand runs what args name other than the bot itself (demo, check,
// help, version, …) and returns its exit code; handled is false when args
// are the bot's own flags.
func subcommand(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) (code int, handled bool) {
	if len(args) == 0 {
		return 0, false
	}
	rest := args[1:]
	switch args[0] {
	case "version", "--version", "-version":
		printVersion(stdout)
	case "help", "--help", "-help", "-h":
		if len(rest) > 0 && rest[0] != "help" {
			// `computebot help check` is `computebot check --help`.
			return subcommand([]string{rest[0], "--help"}, stdin, stdout, stderr, getenv)
		}
		printUsage(stdout, getenv)
	case "demo":
		code = runDemo(rest, stdin, stdout)
	case "check":
		code = runCheck(rest, stdout, stderr, getenv)
	case "audit":
		code = runAudit(rest, stdout, stderr, getenv)
	case "health":
		code = runHealth(rest, stdout, getenv)
	case "store":
		code = runStore(rest, stdout, stderr)
	default:
		if wantsHelp(args) {
			printUsage(stdout, getenv)
			return 0, true
		}
		return 0, false
	}
	return code, true
}

// usageText is `computebot help`. Every subcommand is here, so that the
// first thing a newcomer types shows all of them.
const usageText = `usage: computebot [--config FILE] [--listen ADDR] [--log-level LEVEL]
           run the bot (Slack tokens from the environment, see below)
       computebot demo
           the whole product in this terminal: no Slack app, no AWS account
       computebot check --config FILE
           check a deployment: config, Slack tokens and approvers, AWS identity,
           image, types, network and launch permission; changes nothing
       computebot health [ADDR]
           ask a running bot's /healthz (default ADDR: --listen's); exit 0 when
           healthy (the container's health check: the image has no curl)
       computebot audit --config FILE [--since 7d|all] [--instance i-…] [--user U…] [--json]
           print the audit log (with store.path, the bot must be stopped)
       computebot store init --config FILE
           create the DynamoDB table of store.dynamodb.table
       computebot store migrate --from computebot.db --to TABLE
           copy the embedded store into the table
       computebot version       (or --version)
       computebot help [COMMAND] (or --help; computebot help check = computebot check --help)

Example:
  SLACK_BOT_TOKEN=xoxb-… SLACK_APP_TOKEN=xapp-… computebot --config config/example.yaml

Secrets come from the environment: SLACK_BOT_TOKEN, SLACK_APP_TOKEN.
SLACK_API_URL overrides the Slack Web API base URL; AWS uses the SDK's default
chain (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, …).

Flags of the bot:
`

// printUsage prints usageText and the bot's flags with their defaults.
func printUsage(w io.Writer, getenv func(string) string) {
	m := &Main{Getenv: getenv}
	fs, _ := m.flags()
	fmt.Fprint(w, usageText)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// wantsHelp reports whether args ask for help (-h, -help, --help) before
// any "--": such a request prints the usage on stdout and exits 0, as a
// person asking for help expects, instead of the flag package's stderr.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// parseFlags parses a subcommand's flags: help goes to stdout (code 0),
// a bad flag's message and the usage to fs's output (code 2). done means
// the caller returns code.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (code int, done bool) {
	if wantsHelp(args) {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0, true
	}
	if err := fs.Parse(args); err != nil {
		return 2, true
	}
	return 0, false
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
	// Now, when set, is the clock of the idle scheduler and the workflows
	// (tests of office hours across a daylight-saving change).
	Now func() time.Time
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
// Help (-h, --help) is handled before, by subcommand; here it is an error.
func (m *Main) ParseFlags(args []string) error {
	fs, level := m.flags()
	fs.SetOutput(m.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown command or argument %q: computebot help lists them", fs.Arg(0))
	}
	if err := m.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if m.ConfigPath == "" {
		return errors.New("no config: pass --config FILE or set COMPUTEBOT_CONFIG (see config/example.yaml)")
	}
	return nil
}

// flags defines the bot's flags on a new set: --config, --listen (their
// defaults from the environment) and --log-level, whose value it returns.
func (m *Main) flags() (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("computebot", flag.ContinueOnError)
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
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	return fs, level
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
	// The workflows are built after the scheduler (they use it); the
	// scheduler's news of an instance reaches them through this closure,
	// set before anything runs.
	var f *flow.Flow
	homeChanged := func(owner string) {
		if f != nil {
			f.HomeChanged(owner)
		}
	}
	sched, err := idle.New(cfg.Idle, idle.Deps{
		Cloud: cloud, Notifier: flow.NewNotices(chat, cfg.NotifyChannel, t.NoticeInterval, m.log), Authorizer: authz,
		Audit: audit.Record, KV: db, Prices: prices.Price, Observer: m.ops.metrics,
		Logger: m.log, CheckEvery: m.IdleCheckEvery, Leader: peers, Now: m.Now, Changed: homeChanged,
	})
	if err != nil {
		return err
	}
	f, err = flow.New(flow.Deps{Config: cfg, Cloud: cloud, Store: db, Chat: chat, Authz: authz, Idle: sched,
		Prices: prices, Audit: audit, Logger: m.log, Cluster: peers, KV: db, Now: m.Now}, t)
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
