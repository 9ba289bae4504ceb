package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computebot/computebot/bot"
)

// onConnect runs a function on each connection before passing it on.
type onConnect struct {
	bot.Observer
	before func()
}

func (o onConnect) Connected() {
	o.before()
	o.Observer.Connected()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestOpsEndpoints: /healthz is up with the process, /readyz only while the
// socket is connected and the store open, and /metrics counts what the bot
// did.
func TestOpsEndpoints(t *testing.T) {
	var (
		once        sync.Once
		checked     = make(chan struct{})
		beforeReady = -1
		beforeBody  string
	)
	b := newBedWith(t, func(m *Main) {
		m.WrapObserver = func(o bot.Observer) bot.Observer {
			return onConnect{o, func() {
				// Runs on the first connection, before Main marks it ready.
				once.Do(func() {
					defer close(checked)
					resp, err := http.Get("http://" + m.ListenAddr() + "/readyz")
					if err != nil {
						beforeBody = err.Error()
						return
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					beforeReady, beforeBody = resp.StatusCode, string(body)
				})
			}}
		}
	})
	select {
	case <-checked:
	case <-time.After(10 * time.Second):
		t.Fatal("OnConnected not called")
	}
	if beforeReady != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the socket connected: %d %q, want 503", beforeReady, beforeBody)
	}
	base := "http://" + b.main.ListenAddr()
	if b.main.ListenAddr() == "" {
		t.Fatal("ListenAddr empty")
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %q", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !b.main.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once connected: %d %q", code, body)
	}

	b.slash(ana, "/launch", "t2.micro --hours 2")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")
	b.slash(eve, "/launch", "m5.24xlarge") // not an allowed type: refused

	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`computebot_envelopes_total{type="slash_commands"} 2`,
		`computebot_envelopes_total{type="interactive"} 1`,
		`computebot_ack_latency_seconds_count{type="slash_commands"} 2`,
		`computebot_commands_total{command="launch",outcome="accepted"} 1`,
		`computebot_commands_total{command="launch",outcome="refused"} 1`,
		`computebot_aws_calls_total{code="",operation="ec2:RunInstances"} 1`,
		`computebot_aws_call_duration_seconds_count{operation="ec2:RunInstances"} 1`,
		`computebot_slack_api_calls_total{method="chat.postMessage",status="200"}`,
		"computebot_slack_rate_limited_total 0",
		`computebot_slack_api_calls_total{method="apps.connections.open",status="200"} 1`,
		"computebot_slack_rate_limited_total",
		"computebot_pending_requests 0",
		"computebot_socket_connected 1",
		"computebot_socket_reconnects_total 0",
		`computebot_idle_scans_total{result="error"} 0`,
		"computebot_idle_notices_total 0",
		"computebot_idle_stops_total 0",
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, "xoxb-") || strings.Contains(metrics, "xapp-") {
		t.Error("/metrics shows a token")
	}

	m := b.main
	b.stop()
	if m.Ready() {
		t.Error("Ready after Close")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after Close")
	}
}

// TestPendingRequestsGauge: a request waiting for an approver shows.
func TestPendingRequestsGauge(t *testing.T) {
	b := newBed(t)
	b.slash(ana, "/launch", "t2.micro")
	b.requestMessage(ana)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, metrics := get(t, "http://"+b.main.ListenAddr()+"/metrics")
		if strings.Contains(metrics, "computebot_pending_requests 1") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending_requests not 1:\n%s", grepLines(metrics, "pending"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVersion: `computebot version` has something to say.
func TestVersion(t *testing.T) {
	var sb strings.Builder
	printVersion(&sb)
	if !strings.HasPrefix(sb.String(), "computebot ") || len(sb.String()) < len("computebot x") {
		t.Errorf("version: %q", sb.String())
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestIdleMetrics: scans, notices and stops are counted.
func TestIdleMetrics(t *testing.T) {
	b := newIdleBed(t)
	id := "i-0aaaa00000000002a"
	thread := b.seed(id, ana, 1.2, 150_000, nil)
	b.waitThread(thread, "looks idle")
	b.waitState(id, "stopped")
	b.waitThread(thread, "(idle)")
	wants := []string{
		"computebot_idle_notices_total 1",
		"computebot_idle_stops_total 1",
		`computebot_aws_calls_total{code="",operation="ec2:StopInstances"} 1`,
	}
	// The thread reply and the counters are updated by different steps of
	// the stop, so poll briefly rather than race them.
	var metrics string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, metrics = get(t, "http://"+b.main.ListenAddr()+"/metrics")
		missing := 0
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(metrics, "idle"))
		}
	}
	if strings.Contains(metrics, `computebot_idle_scans_total{result="ok"} 0`) {
		t.Errorf("no scan counted:\n%s", grepLines(metrics, "idle_scans"))
	}
}

func TestHealthCommand(t *testing.T) {
	b := newBed(t)
	var out strings.Builder
	if code := runHealth([]string{b.main.ListenAddr()}, &out, func(string) string { return "" }); code != 0 {
		t.Fatalf("health = %d: %s", code, out.String())
	}
	addr := b.main.ListenAddr()
	b.stop()
	out.Reset()
	if code := runHealth([]string{addr}, &out, func(string) string { return "" }); code != 1 {
		t.Fatalf("health after stop = %d: %s", code, out.String())
	}
}

// TestReadyNeedsACurrentHeartbeat: with the shared store, a replica whose
// heartbeat is not current (the table unreachable: the others are about
// to take its work over) is not ready, whatever its connection.
func TestReadyNeedsACurrentHeartbeat(t *testing.T) {
	o := newOps()
	o.storeOpen.Store(true)
	o.connected.Store(true)
	if err := o.ready(); err != nil {
		t.Fatalf("the embedded store, connected: %v", err)
	}
	current := true
	healthy := func() bool { return current }
	o.heartbeat.Store(&healthy)
	if err := o.ready(); err != nil {
		t.Fatalf("a current heartbeat: %v", err)
	}
	current = false
	if err := o.ready(); err == nil || !strings.Contains(err.Error(), "heartbeat") {
		t.Fatalf("a stale heartbeat: ready() = %v, want an error naming it", err)
	}
}
