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
	// heartbeat, with the shared store, reports whether this replica's
	// heartbeat is current (cluster.Healthy); nil with the embedded one.
	heartbeat atomic.Pointer[func() bool]
	failed    atomic.Pointer[string] // set once the bot stopped on a fatal error
	srv       *http.Server
	ln        net.Listener
	served    chan struct{}
}

func newOps() *ops { return &ops{metrics: metrics.New()} }

// fail records that the bot stopped on a fatal error: /healthz fails, so
// an orchestrator restarts (or flags) the process even if it lingers.
func (o *ops) fail(err error) {
	why := err.Error()
	o.failed.Store(&why)
}

// ready is the /readyz answer: nil when the bot can serve.
func (o *ops) ready() error {
	switch {
	case !o.storeOpen.Load():
		return errors.New("store not open")
	case !o.connected.Load():
		return errors.New("not connected to Slack (socket mode)")
	}
	if h := o.heartbeat.Load(); h != nil && !(*h)() {
		// The others are about to judge this replica gone and take its
		// work over: it should not look ready.
		return errors.New("this replica's heartbeat in the shared store is not current (the store is unreachable or refusing writes)")
	}
	return nil
}

// observer is what watches the Slack adapter: the metrics, plus the
// connection state /readyz answers from.
func (o *ops) observer() bot.Observer { return readiness{o.metrics, o} }

type readiness struct {
	*metrics.Metrics
	ops *ops
}

func (r readiness) Connected() {
	r.Metrics.Connected()
	r.ops.connected.Store(true)
}

func (r readiness) Disconnected() {
	r.ops.connected.Store(false)
	r.Metrics.Disconnected()
}

func (o *ops) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if why := o.failed.Load(); why != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "failed:", *why)
			return
		}
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

// newLogger logs JSON, or text when w is a terminal. Durations are
// written as Go durations ("1h0m0s", "1.5ms"): JSON would otherwise print
// them as integer nanoseconds, which nobody reads right.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, opts))
		}
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
