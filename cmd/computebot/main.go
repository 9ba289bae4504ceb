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
	// Getenv reads the environment; tests replace it.
	Getenv func(string) string
	Stderr io.Writer

	// BotOptions and IdleCheckEvery let tests tighten timings; zero values
	// keep the defaults.
	BotOptions     bot.Options
	IdleCheckEvery time.Duration

	log    *slog.Logger
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
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: computebot --config FILE\n\nSecrets come from the environment: SLACK_BOT_TOKEN, SLACK_APP_TOKEN.\nSLACK_API_URL overrides the Slack Web API base URL; AWS uses the SDK's default chain (AWS_REGION, AWS_ENDPOINT_URL, …).")
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
	m.log = slog.New(slog.NewJSONHandler(m.Stderr, &slog.HandlerOptions{Level: m.LogLevel}))

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

	cloud, err := aws.New(ctx, aws.Options{Region: cfg.AWS.Region, Logger: m.log})
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
	b, err := bot.New(opts)
	if err != nil {
		_ = db.Close()
		return err
	}
	sched, err := idle.New(idleSettings(cfg, m.IdleCheckEvery), idle.Deps{
		Cloud: cloud, Notifier: b, Authorizer: b, Audit: b.Audit, KV: db, Prices: b.Price,
		Logger: m.log.With("component", "idle"), FormatTime: reply.SlackDate,
	})
	if err != nil {
		_ = db.Close()
		return err
	}
	b.SetIdle(sched)
	m.idle = sched

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	go func() {
		m.done <- b.Run(runCtx)
		close(m.done)
	}()
	sched.Start(runCtx)
	m.log.Info("computebot started", "config", m.ConfigPath, "store", cfg.Store.Path)
	return nil
}

// Done delivers the bot's exit: nil after Close, an error when it stopped on
// its own (for example Slack refused the tokens).
func (m *Main) Done() <-chan error { return m.done }

// Close stops the bot, waits for in-flight work and closes the store.
func (m *Main) Close() error {
	m.once.Do(func() {
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
