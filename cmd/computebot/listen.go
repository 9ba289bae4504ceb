package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/bot"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/metrics"
)

// DefaultListen is where /healthz, /readyz and /metrics are served unless
// --listen says otherwise.
const DefaultListen = "127.0.0.1:9090"

// ops is the operations side of a running Main: the metrics, the readiness
// state and the HTTP server of the three endpoints.
type ops struct {
	metrics   *metrics.Metrics
	connected atomic.Bool // socket-mode connection up
	storeOpen atomic.Bool
	everUp    atomic.Bool // a connection before this one makes it a reconnect
	srv       *http.Server
	ln        net.Listener
	served    chan struct{}
}

func newOps() *ops { return &ops{metrics: metrics.New()} }

// ready is the /readyz answer: nil when the bot can serve.
func (o *ops) ready() error {
	switch {
	case !o.storeOpen.Load():
		return errors.New("store not open")
	case !o.connected.Load():
		return errors.New("not connected to Slack (socket mode)")
	}
	return nil
}

func (o *ops) onConnected() {
	o.metrics.Connected(!o.everUp.Swap(true))
	o.connected.Store(true)
}

func (o *ops) onDisconnected() {
	o.connected.Store(false)
	o.metrics.Disconnected()
}

func (o *ops) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := o.ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", o.metrics.Handler())
	return mux
}

// listen binds addr and serves in the background; Addr reports the bound
// address (useful with port 0).
func (o *ops) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", addr, err)
	}
	o.ln = ln
	o.srv = &http.Server{Handler: o.handler(), ReadHeaderTimeout: 5 * time.Second}
	o.served = make(chan struct{})
	go func() {
		defer close(o.served)
		_ = o.srv.Serve(ln) // ErrServerClosed after shutdown
	}()
	return nil
}

// addr is the bound address, "" when not listening.
func (o *ops) addr() string {
	if o == nil || o.ln == nil {
		return ""
	}
	return o.ln.Addr().String()
}

// shutdown stops the server, letting running requests finish briefly.
func (o *ops) shutdown() error {
	if o == nil || o.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := o.srv.Shutdown(ctx)
	<-o.served
	return err
}

// pendingRequests counts requests awaiting a decision, for the gauge.
func pendingRequests(s computebot.Store) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		reqs, err := s.Requests(ctx, computebot.RequestPending)
		return len(reqs), err
	}
}

// ListenAddr is the address /healthz, /readyz and /metrics are served on
// once Run has returned ("" when --listen is off).
func (m *Main) ListenAddr() string { return m.ops.addr() }

// Ready reports whether /readyz answers 200: Slack connected and store open.
func (m *Main) Ready() bool { return m.ops != nil && m.ops.ready() == nil }

// hookMetrics chains the metrics and readiness callbacks onto opts, after
// any a test set.
func (m *Main) hookMetrics(opts *bot.Options) {
	mt := m.ops.metrics
	onConnected, onDisconnected, onAck := opts.OnConnected, opts.OnDisconnected, opts.OnAck
	onEnvelope, onCommand, onSlackCall := opts.OnEnvelope, opts.OnCommand, opts.OnSlackCall
	opts.OnConnected = func() {
		if onConnected != nil {
			onConnected()
		}
		m.ops.onConnected()
	}
	opts.OnDisconnected = func() {
		m.ops.onDisconnected()
		if onDisconnected != nil {
			onDisconnected()
		}
	}
	opts.OnAck = func(t string, d time.Duration) {
		mt.Ack(t, d)
		if onAck != nil {
			onAck(t, d)
		}
	}
	opts.OnEnvelope = func(t string) {
		mt.Envelope(t)
		if onEnvelope != nil {
			onEnvelope(t)
		}
	}
	opts.OnCommand = func(name, outcome string) {
		mt.Command(name, outcome)
		if onCommand != nil {
			onCommand(name, outcome)
		}
	}
	opts.OnSlackCall = func(method string, status int) {
		mt.SlackCall(method, status)
		if onSlackCall != nil {
			onSlackCall(method, status)
		}
	}
}

// countNotices counts the idle notices the scheduler posts.
type countNotices struct {
	idle.Notifier
	m *metrics.Metrics
}

func (c countNotices) PostNotice(ctx context.Context, n idle.Notice) (string, string, error) {
	channel, ts, err := c.Notifier.PostNotice(ctx, n)
	if err == nil && n.State == idle.StateNoticed { // not a settled notice's re-post
		c.m.Notice()
	}
	return channel, ts, err
}

// countStops counts, from the audit log, the instances the idle scheduler
// (or a Stop now click on its notice) stopped or terminated.
func countStops(audit idle.Auditor, m *metrics.Metrics) idle.Auditor {
	return func(ctx context.Context, e computebot.AuditEntry) {
		if e.Result == "ok" {
			switch e.Action {
			case idle.AuditIdleStop, idle.AuditLeaseStop, idle.AuditLeaseTerminate, idle.AuditStopNow:
				m.Stop()
			}
		}
		audit(ctx, e)
	}
}

// newLogger logs JSON, or text when w is a terminal.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, opts))
		}
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
