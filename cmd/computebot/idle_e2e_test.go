package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
)

const idleConfig = `
approvers: [UBO, SPLATFORM]
notify_channel: COPS
launch:
  allowed_types: [t2.micro, t3.small, t3.medium]
  ami: ami-0123456789abcdef0
  key_name: data-science
  max_running_per_user: 200
store:
  path: %s
idle:
  schedule: "@every 1s"
  cpu_below_percent: 5
  for: 1h
  grace: 2s
  snooze: 4h
`

func newIdleBed(t testing.TB, opts ...bedOption) *bed {
	opts = append([]bedOption{withConfig(idleConfig), withTimings(func(o *flow.Options) { o.NoticeInterval = 5 * time.Millisecond })}, opts...)
	b := newBedWith(t, func(m *Main) { m.IdleCheckEvery = 100 * time.Millisecond }, opts...)
	return b
}

// seed adds a running managed instance launched 3 h ago whose request
// thread is a real message in the channel, with constant metrics over the
// last 2 h (cpu in %, network bytes per 5 minutes, each way).
func (b *bed) seed(id, owner string, cpu, netPerPeriod float64, extraTags map[string]string, opts ...func(*fakeaws.Instance)) (thread string) {
	b.t.Helper()
	thread = fmt.Sprintf("1790000000.%06d", len(b.aws.Instances())+1)
	tags := map[string]string{"computebot:managed": "true", "computebot:owner": owner, "Name": "box-" + id[len(id)-4:],
		"computebot:channel": channel, "computebot:thread": thread, "computebot:request": "R-" + id[len(id)-8:]}
	for k, v := range extraTags {
		tags[k] = v
	}
	in := fakeaws.Instance{ID: id, Type: "t3.small", State: "running", LaunchTime: time.Now().Add(-3 * time.Hour), Tags: tags}
	for _, o := range opts {
		o(&in)
	}
	b.aws.AddInstance(in)
	b.metrics(id, cpu, netPerPeriod)
	return thread
}

func (b *bed) metrics(id string, cpu, netPerPeriod float64) {
	start := time.Now().Add(-2 * time.Hour).Truncate(5 * time.Minute)
	n := int(time.Since(start)/(5*time.Minute)) + 1
	series := func(v float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	b.aws.SetMetricSeries(id, "CPUUtilization", start, 5*time.Minute, series(cpu))
	b.aws.SetMetricSeries(id, "NetworkIn", start, 5*time.Minute, series(netPerPeriod))
	b.aws.SetMetricSeries(id, "NetworkOut", start, 5*time.Minute, series(netPerPeriod))
}

func (b *bed) state(id string) string {
	in, _ := b.aws.Instance(id)
	return in.State
}

// waitState waits until the fake instance is in state.
func (b *bed) waitState(id, state string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if b.state(id) == state {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("%s never became %s (is %s)\nmessages: %s\nlog:\n%s", id, state, b.state(id), b.dump(), b.stderr)
}

func (b *bed) notices(id string) []fakeslack.Message {
	var out []fakeslack.Message
	for _, m := range b.slack.Messages(channel) {
		if !m.Ephemeral && m.User == fakeslack.BotUserID && strings.Contains(m.Text, id) && (strings.Contains(m.Text, "looks idle") || strings.Contains(m.Text, "lease of")) {
			out = append(out, m)
		}
	}
	return out
}

func TestIdleNoticeThenStop(t *testing.T) {
	b := newIdleBed(t)
	id := "i-0aaaa00000000001a"
	thread := b.seed(id, ana, 1.2, 150_000, nil)
	notice := b.waitThread(thread, "looks idle")
	text := visible(notice)
	for _, want := range []string{"<@UANA>", id, "max CPU 1.2 %", "over the last 1 h", "Stopping it saves"} {
		if !strings.Contains(text, want) {
			t.Errorf("notice lacks %q:\n%s", want, text)
		}
	}
	if got := b.slack.Buttons(channel, notice.TS); strings.Join(got, ",") != "Keep running,Stop now" {
		t.Errorf("buttons = %v", got)
	}
	b.waitState(id, "stopped")
	b.waitThread(thread, "(idle)")
	b.waitMessage(notice.TS, "topped")
	if n := len(b.notices(id)); n != 1 {
		t.Errorf("notices = %d, want 1", n)
	}
	found := false
	for _, e := range b.audit() {
		if e.Target == id && e.Actor == "computebot" && strings.Contains(e.Action, "stop") && e.Result == "ok" {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit entry for the idle stop: %+v", b.audit())
	}
}

func TestIdleKeepRunning(t *testing.T) {
	b := newIdleBed(t, withConfig(strings.Replace(idleConfig, "grace: 2s", "grace: 4s", 1)))
	id := "i-0aaaa00000000002a"
	thread := b.seed(id, ana, 0.5, 1000, nil)
	notice := b.waitThread(thread, "looks idle")
	b.click(eve, notice, "Keep running") // a stranger
	b.waitPrivate(eve, "Only its owner or an approver")
	b.click(ana, notice, "Keep running")
	b.waitMessage(notice.TS, "ept")
	time.Sleep(5 * time.Second) // past the grace and a few scans
	if s := b.state(id); s != "running" {
		t.Fatalf("a kept instance was %s", s)
	}
	if n := len(b.notices(id)); n != 1 {
		t.Errorf("notices = %d, want 1 (snoozed)", n)
	}
}

func TestIdleStopNow(t *testing.T) {
	b := newIdleBed(t, withConfig(strings.Replace(idleConfig, "grace: 2s", "grace: 1h", 1)))
	id := "i-0aaaa00000000003a"
	thread := b.seed(id, ana, 0.5, 1000, nil)
	notice := b.waitThread(thread, "looks idle")
	b.click(bo, notice, "Stop now")
	b.waitState(id, "stopped")
	b.waitMessage(notice.TS, "topped")
}

func TestIdleActivityResumedCancels(t *testing.T) {
	b := newIdleBed(t, withConfig(strings.Replace(idleConfig, "grace: 2s", "grace: 3s", 1)))
	id := "i-0aaaa00000000004a"
	thread := b.seed(id, ana, 0.5, 1000, nil)
	b.waitThread(thread, "looks idle")
	b.metrics(id, 85, 1000) // busy again
	b.waitThread(thread, "ancel")
	time.Sleep(500 * time.Millisecond)
	if s := b.state(id); s != "running" {
		t.Fatalf("an instance that became busy was %s", s)
	}
}

func TestNotIdle(t *testing.T) {
	b := newIdleBed(t)
	busyNet := "i-0aaaa00000000005a"
	b.seed(busyNet, ana, 0.5, 40_000_000, nil) // low CPU, a big download
	noData := "i-0aaaa00000000006a"
	b.seed(noData, ana, 0.5, 1000, nil)
	b.aws.ClearMetrics(noData) // detailed monitoring off / metrics delayed
	partial := "i-0aaaa00000000007a"
	b.seed(partial, ana, 0.5, 1000, nil)
	b.aws.ClearMetrics(partial)
	b.aws.SetMetricSeries(partial, "CPUUtilization", time.Now().Add(-20*time.Minute).Truncate(5*time.Minute), 5*time.Minute, []float64{0.5, 0.5, 0.5, 0.5, 0.5})
	time.Sleep(3500 * time.Millisecond) // three scans
	for _, id := range []string{busyNet, noData, partial} {
		if n := len(b.notices(id)); n != 0 {
			t.Errorf("%s got %d notices", id, n)
		}
		if s := b.state(id); s != "running" {
			t.Errorf("%s is %s", id, s)
		}
	}
	if b.aws.CallCount("GetMetricData") == 0 {
		t.Error("no GetMetricData call: the scans did not run")
	}
}

func TestLeaseExpiry(t *testing.T) {
	b := newIdleBed(t)
	id := "i-0aaaa00000000008a"
	// Busy, but its lease ended: lease expiry does not depend on idleness.
	thread := b.seed(id, ana, 60, 1000, map[string]string{"computebot:expires-at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
	notice := b.waitThread(thread, "lease of")
	if got := b.slack.Buttons(channel, notice.TS); strings.Join(got, ",") != "Keep running,Stop now" {
		t.Errorf("buttons = %v", got)
	}
	b.waitState(id, "stopped")
}

func TestIdleRestartBetweenNoticeAndStop(t *testing.T) {
	b := newIdleBed(t, withConfig(strings.Replace(idleConfig, "grace: 2s", "grace: 4s", 1)))
	id := "i-0aaaa00000000009a"
	thread := b.seed(id, ana, 0.5, 1000, nil)
	b.waitThread(thread, "looks idle")
	b.restart()
	b.waitState(id, "stopped")
	if n := len(b.notices(id)); n != 1 {
		t.Errorf("notices = %d after a restart, want 1\nmessages: %s\nlog:\n%s", n, b.dump(), b.stderr)
	}
}

func TestIdleReport(t *testing.T) {
	b := newIdleBed(t, withConfig(strings.Replace(idleConfig, "grace: 2s", "grace: 1h", 1)))
	id := "i-0aaaa0000000000aa"
	thread := b.seed(id, ana, 0.5, 1000, nil)
	b.waitThread(thread, "looks idle")
	b.slash(bo, "/computebot", "idle")
	b.waitPrivate(bo, id)
	b.slash(eve, "/computebot", "idle")
	b.waitPrivate(eve, "Only approvers can see the idle report")
}

func TestHundredIdleInstancesWithoutA429Storm(t *testing.T) {
	b := newIdleBed(t, withConfig(strings.Replace(idleConfig, "grace: 2s", "grace: 1h", 1)))
	b.slack.SetRateLimit("chat.postMessage", 3, time.Second) // Slack pushes back once
	var ids []string
	for i := range 100 {
		id := fmt.Sprintf("i-0bbbb%012x", i)
		ids = append(ids, id)
		b.seed(id, ana, 0.5, 1000, nil)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		done := 0
		for _, id := range ids {
			if len(b.notices(id)) > 0 {
				done++
			}
		}
		if done == len(ids) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range ids {
		if n := len(b.notices(id)); n != 1 {
			t.Errorf("%s: %d notices, want exactly 1", id, n)
		}
	}
	limited := 0
	for _, c := range b.slack.Calls("chat.postMessage") {
		if c.Status == 429 {
			limited++
		}
	}
	if limited > 3 {
		t.Errorf("%d rate-limited posts: a 429 storm", limited)
	}
}

func TestIdleNoticeFallsBackToADM(t *testing.T) {
	b := newIdleBed(t, withConfig(strings.Replace(idleConfig, "grace: 2s", "grace: 1h", 1)))
	id := "i-0aaaa0000000000ba"
	b.seed(id, ana, 0.5, 1000, map[string]string{"computebot:channel": "", "computebot:thread": ""})
	dm, err := b.slack.WaitMessage(b.ctx(), "DANA", func(m fakeslack.Message) bool {
		return strings.Contains(m.Text, id) && strings.Contains(m.Text, "looks idle")
	})
	if err != nil {
		t.Fatalf("no DM to the owner: %v\n%s", err, b.stderr)
	}
	if got := b.slack.Buttons("DANA", dm.TS); strings.Join(got, ",") != "Keep running,Stop now" {
		t.Errorf("buttons = %v", got)
	}
}

// TestKeep: /keep exempts an instance from idle stops for a while (the
// tag computebot:keep-until, shown in /instances); an owner within
// idle.max_keep, an approver longer; a pending idle notice is cancelled by
// it; a stranger is refused.
func TestKeep(t *testing.T) {
	b := newIdleBed(t)
	kept, pending := "i-0aaaa0000000000c1", "i-0aaaa0000000000c2"
	b.seed(kept, ana, 0.5, 1000, nil)
	if txt := ackText(t, b.slash(ana, "/keep", kept+" 5d")); txt != "" {
		t.Fatalf("/keep acked with %q", txt)
	}
	b.waitPrivate(ana, "for at most 72 h (idle.max_keep)")
	b.slash(eve, "/keep", kept+" 1d")
	b.waitPrivate(eve, "Only its owner or an approver (")
	b.slash(ana, "/keep", kept+" 2d")
	b.waitAny("keeps `" + kept + "` from idle stops until")
	in, _ := b.aws.Instance(kept)
	until, err := time.Parse(time.RFC3339, in.Tags["computebot:keep-until"])
	if err != nil || time.Until(until) < 47*time.Hour || time.Until(until) > 49*time.Hour {
		t.Fatalf("keep-until tag %q, want about 2 days from now", in.Tags["computebot:keep-until"])
	}
	b.slash(bo, "/keep", kept+" 10d") // an approver may keep longer
	b.waitAny("<@" + bo + "> keeps `" + kept + "`")

	// A pending notice is cancelled once the instance is kept.
	b.seed(pending, ana, 0.5, 1000, nil)
	b.waitAny("`" + pending + "`")
	b.slash(ana, "/keep", pending+" 1d")
	b.waitAny("keeps `" + pending + "` from idle stops until")
	// The notice says at once that it will not stop.
	if !b.await(5*time.Second, func() bool {
		for _, m := range b.slack.Messages(channel) {
			if strings.Contains(m.Text, "`"+pending+"`") && m.Updated > 0 && strings.Contains(visible(m), "ept") && !slices.Contains(b.slack.Buttons(channel, m.TS), "Keep running") {
				return true
			}
		}
		return false
	}) {
		t.Errorf("the pending notice was not settled by /keep%s", b.dump())
	}
	time.Sleep(3 * time.Second) // past the 2 s grace and a few checks
	if s := b.state(pending); s != "running" {
		t.Fatalf("%s is %s after /keep, want running", pending, s)
	}
	if s := b.state(kept); s != "running" {
		t.Fatalf("%s is %s, want running (kept)", kept, s)
	}
	for _, m := range b.slack.Messages(channel) {
		if strings.Contains(m.Text, "`"+kept+"`") && strings.Contains(m.Text, "looks idle") {
			t.Errorf("a kept instance got an idle notice: %s", m.Text)
		}
	}
	b.slash(ana, "/instances", "")
	b.waitPrivate(ana, "kept from idle stops until")
	var audited int
	for _, e := range b.audit() {
		if e.Action == "keep-until" && e.Result == "ok" {
			audited++
		}
	}
	if audited != 3 {
		t.Errorf("%d keep-until audit entries, want 3", audited)
	}
}

// waitAny waits for a message anyone can see containing substr.
func (b *bed) waitAny(substr string) fakeslack.Message {
	b.t.Helper()
	m, err := b.slack.WaitMessage(b.ctx(), channel, func(m fakeslack.Message) bool {
		return !m.Ephemeral && strings.Contains(visible(m), substr)
	})
	if err != nil {
		b.t.Fatalf("no message containing %q: %v\nmessages: %s\nlog:\n%s", substr, err, b.dump(), b.stderr)
	}
	return m
}

// TestIdleGPU: on a GPU type, low CPU alone is not idle: a training run
// at 2 % CPU and 97 % GPU is never noticed, one with its GPU idle too is,
// naming the GPU figure, and one without the agent's GPU metric never is.
func TestIdleGPU(t *testing.T) {
	b := newIdleBed(t)
	busy, quiet, blind := "i-0aaaa0000000000d1", "i-0aaaa0000000000d2", "i-0aaaa0000000000d3"
	for _, id := range []string{busy, quiet, blind} {
		b.aws.AddInstance(fakeaws.Instance{ID: id, Type: "g4dn.xlarge", State: "running", LaunchTime: time.Now().Add(-3 * time.Hour),
			Tags: map[string]string{"computebot:managed": "true", "computebot:owner": ana, "Name": "gpu-" + id[len(id)-2:],
				"computebot:channel": channel, "computebot:thread": "1790000000.0009" + id[len(id)-2:]}})
		b.metrics(id, 2, 1000)
	}
	gpu := func(id string, v float64) {
		start := time.Now().Add(-2 * time.Hour).Truncate(5 * time.Minute)
		n := int(time.Since(start)/(5*time.Minute)) + 1
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = v
		}
		b.aws.SetMetricSeries(id, "nvidia_smi_utilization_gpu", start, 5*time.Minute, vals)
	}
	gpu(busy, 97)
	gpu(quiet, 0.5)
	notice := b.waitAny("`" + quiet + "`")
	if !strings.Contains(visible(notice), "GPU 0.5 %") {
		t.Errorf("the notice does not name the GPU figure: %s", visible(notice))
	}
	time.Sleep(2 * time.Second) // more scans
	for _, m := range b.slack.Messages(channel) {
		for _, id := range []string{busy, blind} {
			if strings.Contains(m.Text, "`"+id+"`") && strings.Contains(m.Text, "looks idle") {
				t.Errorf("%s got an idle notice: %s", id, m.Text)
			}
		}
	}
	agent := 0
	for _, c := range b.aws.Calls("GetMetricData") {
		for k, v := range c.Params {
			if strings.HasSuffix(k, ".Namespace") && v[0] == "CWAgent" {
				agent++
			}
		}
	}
	if agent == 0 {
		t.Error("no GetMetricData query of the CWAgent namespace")
	}
}

// await polls cond for up to d.
func (b *bed) await(d time.Duration, cond func() bool) bool { return pollFor(d, cond) }
