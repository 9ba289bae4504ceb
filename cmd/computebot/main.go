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

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/bot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/reply"
	"github.com/computebot/computebot/store"
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
		case "health":
			os.Exit(runHealth(os.Args[2:], os.Stdout, os.Getenv))
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

	// BotOptions and IdleCheckEvery let tests tighten timings; zero values
	// keep the defaults.
	BotOptions     bot.Options
	IdleCheckEvery time.Duration

	log    *slog.Logger
	ops    *ops
	store  *store.DB
	idle   *idle.Scheduler
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	result error
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
		fmt.Fprintln(fs.Output(), "usage: computebot [--listen ADDR] [--log-level LEVEL] --config FILE\n       computebot demo            (the whole product in this terminal: no Slack app, no AWS account)\n       computebot check --config FILE\n       computebot version\n\nSecrets come from the environment: SLACK_BOT_TOKEN, SLACK_APP_TOKEN.\nSLACK_API_URL overrides the Slack Web API base URL; AWS uses the SDK's default chain (AWS_REGION, AWS_ENDPOINT_URL, …).")
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
func (m *Main) Run(ctx context.Context) error {
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

	db, err := store.Open(cfg.Store.Path, store.Options{Logger: m.log})
	if err != nil {
		return err
	}
	m.store = db
	m.ops.storeOpen.Store(true)
	m.ops.metrics.PendingRequests(pendingRequests(db))

	cloud, err := aws.New(ctx, aws.Options{Region: cfg.AWS.Region, Logger: m.log, OnCall: m.ops.metrics.AWSCall})
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("aws: %w", err)
	}

	opts := m.BotOptions
	opts.Settings = settings(cfg)
	opts.Cloud = cloud
	opts.Store = db
	opts.Logger = m.log
	opts.BotToken, opts.AppToken = botToken, appToken
	opts.APIURL = m.Getenv("SLACK_API_URL")
	m.hookMetrics(&opts)
	b, err := bot.New(opts)
	if err != nil {
		_ = db.Close()
		return err
	}
	sched, err := idle.New(idleSettings(cfg, m.IdleCheckEvery), idle.Deps{
		Cloud: cloud, Notifier: countNotices{b, m.ops.metrics}, Authorizer: b, Audit: countStops(b.Audit, m.ops.metrics), KV: db, Prices: b.Price,
		Logger: m.log.With("component", "idle"), FormatTime: reply.SlackDate,
		OnScan: m.ops.metrics.Scan,
	})
	if err != nil {
		_ = db.Close()
		return err
	}
	b.SetIdle(sched)
	m.idle = sched
	if m.Listen != "" {
		if err := m.ops.listen(m.Listen); err != nil {
			_ = db.Close()
			return err
		}
		m.log.Info("serving /healthz, /readyz and /metrics", "addr", m.ops.addr())
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	go func() {
		m.done <- b.Run(runCtx)
		close(m.done)
	}()
	sched.Start(runCtx)
	m.log.Info("computebot started", "version", versionString(), "config", m.ConfigPath, "store", cfg.Store.Path)
	return nil
}

// Done delivers the bot's exit: nil after Close, an error when it stopped on
// its own (for example Slack refused the tokens).
func (m *Main) Done() <-chan error { return m.done }

// Close stops the bot, waits for in-flight work and closes the store.
func (m *Main) Close() error {
	m.once.Do(func() {
		if m.ops != nil {
			m.ops.storeOpen.Store(false) // /readyz fails from here on
		}
		if m.idle != nil {
			m.idle.Stop() // no new scans; a running one finishes
		}
		if m.cancel != nil {
			m.cancel()
			for err := range m.done {
				m.result = errors.Join(m.result, err)
			}
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

func idleSettings(c *config.Config, checkEvery time.Duration) idle.Settings {
	return idle.Settings{
		Schedule:          c.Idle.Schedule,
		CPUBelowPercent:   c.Idle.CPUBelowPercent,
		NetworkBelowBytes: c.Idle.NetworkBelowBytes,
		For:               c.Idle.For.Duration(),
		Grace:             c.Idle.Grace.Duration(),
		Snooze:            c.Idle.Snooze.Duration(),
		LeaseAction:       c.Idle.LeaseAction,
		MetricsDelay:      c.Idle.MetricsDelay.Duration(),
		CheckEvery:        checkEvery,
	}
}

func settings(c *config.Config) bot.Settings {
	return bot.Settings{
		Approvers:         c.Approvers,
		AllowSelfApproval: c.AllowSelfApproval,
		ApprovalTTL:       c.ApprovalTTL.Duration(),
		NotifyChannel:     c.NotifyChannel,
		AllowedTypes:      c.Launch.AllowedTypes,
		AutoApproveTypes:  c.Launch.AutoApproveTypes,
		AMI:               c.Launch.AMI,
		SSHUser:           c.Launch.SSHUser,
		KeyName:           c.Launch.KeyName,
		SecurityGroupIDs:  c.Launch.SecurityGroupIDs,
		SubnetID:          c.Launch.SubnetID,
		MaxRunningPerUser: c.Launch.MaxRunningPerUser,
		DefaultLease:      c.Launch.DefaultTTL.Duration(),
		MaxLease:          c.Launch.MaxLease.Duration(),
		Prices:            c.Launch.Prices,
		AllowedFunctions:  c.Lambda.AllowedFunctions,
		RequireApproval:   c.Lambda.RequireApproval,
		LambdaTimeout:     c.Lambda.Timeout.Duration(),
	}
}

var _ computebot.Store = (*store.DB)(nil)
