// Package metrics holds computebot's Prometheus collectors. A Metrics has
// its own registry (no global state). It is the Slack adapter's observer
// (bot.Observer) and the idle scheduler's (idle.Observer), and the AWS
// client reports each call to AWSCall.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "computebot"

// Metrics is the set of computebot's collectors. All methods are safe for
// concurrent use; a nil *Metrics ignores every call.
type Metrics struct {
	reg *prometheus.Registry

	envelopes   *prometheus.CounterVec
	ackLatency  *prometheus.HistogramVec
	commands    *prometheus.CounterVec
	awsCalls    *prometheus.CounterVec
	awsDuration *prometheus.HistogramVec
	slackCalls  *prometheus.CounterVec
	slack429    prometheus.Counter
	idleScans   *prometheus.CounterVec
	notices     prometheus.Counter
	stops       prometheus.Counter
	reconnects  prometheus.Counter
	connected   prometheus.Gauge

	everConnected atomic.Bool // a connection before this one makes it a reconnect
}

// New registers the collectors on a fresh registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.envelopes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "envelopes_total",
		Help: "Socket-mode envelopes received, by type (slash_commands, interactive, events_api).",
	}, []string{"type"})
	m.ackLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "ack_latency_seconds",
		Help:    "Time from receiving an envelope to handing its ack to the socket, by envelope type.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"type"})
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "commands_total",
		Help: "Slash commands by name and outcome (accepted, refused, reply, ignored).",
	}, []string{"command", "outcome"})
	m.awsCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "aws_calls_total",
		Help: "AWS API calls by operation and error code (\"\" on success).",
	}, []string{"operation", "code"})
	m.awsDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "aws_call_duration_seconds",
		Help:    "AWS API call duration, retries included, by operation.",
		Buckets: prometheus.DefBuckets,
	}, []string{"operation"})
	m.slackCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "slack_api_calls_total",
		Help: "Slack Web API HTTP requests by method and HTTP status.",
	}, []string{"method", "status"})
	m.slack429 = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "slack_rate_limited_total",
		Help: "Slack Web API responses with HTTP 429 (rate limited); by method in slack_api_calls_total{status=\"429\"}.",
	})
	m.idleScans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "idle_scans_total",
		Help: "Idle scans run, by result (ok, error).",
	}, []string{"result"})
	m.idleScans.WithLabelValues("ok")
	m.idleScans.WithLabelValues("error")
	m.notices = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "idle_notices_total",
		Help: "Idle or lease-end notices posted.",
	})
	m.stops = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "idle_stops_total",
		Help: "Instances the idle scheduler stopped or terminated.",
	})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "socket_reconnects_total",
		Help: "Socket-mode connections after the first one.",
	})
	m.connected = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "socket_connected",
		Help: "1 while the socket-mode connection is up.",
	})
	m.reg.MustRegister(m.envelopes, m.ackLatency, m.commands, m.awsCalls, m.awsDuration,
		m.slackCalls, m.slack429, m.idleScans, m.notices, m.stops, m.reconnects, m.connected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the collectors are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Envelope counts one received envelope.
func (m *Metrics) Envelope(envelopeType string) {
	if m == nil {
		return
	}
	m.envelopes.WithLabelValues(envelopeType).Inc()
}

// Ack observes one envelope's ack latency.
func (m *Metrics) Ack(envelopeType string, d time.Duration) {
	if m == nil {
		return
	}
	m.ackLatency.WithLabelValues(envelopeType).Observe(d.Seconds())
}

// Command counts one command.
func (m *Metrics) Command(name, outcome string) {
	if m == nil {
		return
	}
	m.commands.WithLabelValues(name, outcome).Inc()
}

// AWSCall counts one AWS call; code is "" on success.
func (m *Metrics) AWSCall(operation, code string, d time.Duration) {
	if m == nil {
		return
	}
	m.awsCalls.WithLabelValues(operation, code).Inc()
	m.awsDuration.WithLabelValues(operation).Observe(d.Seconds())
}

// SlackCall counts one Slack Web API request; status 0 is a transport error.
func (m *Metrics) SlackCall(method string, status int) {
	if m == nil {
		return
	}
	m.slackCalls.WithLabelValues(method, strconv.Itoa(status)).Inc()
	if status == http.StatusTooManyRequests {
		m.slack429.Inc()
	}
}

// IdleScanned counts one idle scan.
func (m *Metrics) IdleScanned(err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.idleScans.WithLabelValues(result).Inc()
}

// IdleNoticed counts one posted idle notice.
func (m *Metrics) IdleNoticed() {
	if m == nil {
		return
	}
	m.notices.Inc()
}

// IdleStopped counts one instance stopped (or terminated) by the idle
// scheduler or a notice's Stop now.
func (m *Metrics) IdleStopped() {
	if m == nil {
		return
	}
	m.stops.Inc()
}

// Connected records a socket connection; every one after the first is a
// reconnect.
func (m *Metrics) Connected() {
	if m == nil {
		return
	}
	if m.everConnected.Swap(true) {
		m.reconnects.Inc()
	}
	m.connected.Set(1)
}

// Disconnected records the socket going down.
func (m *Metrics) Disconnected() {
	if m == nil {
		return
	}
	m.connected.Set(0)
}

// PendingRequests registers a gauge read at scrape time from count (for
// example the store's pending requests). Call it once.
func (m *Metrics) PendingRequests(count func(ctx context.Context) (int, error)) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "pending_requests",
		Help: "Requests waiting for an approver's decision.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}
