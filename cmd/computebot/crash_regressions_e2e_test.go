package main

// Regression tests of the defects TestCrashPoints found (each comment says
// what went wrong before the fix).

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot/internal/fakeslack"
)

// A crash at after-lifecycle (EC2 was asked, nothing else done) loses the
// command's report: the rerun of the intent finds the instance already in
// (or on its way to) the state asked for and answers privately that it
// "is already …" (reply.WrongState), so the request thread never gets
// "stopped by" / "started by … new public IP" / "terminated by", and the
// audit log never records the action computebot did carry out.
func TestCrashRegressionAfterLifecycleReport(t *testing.T) {
	bin := buildCrashBinary(t)
	for i, kind := range []string{"stop", "start", "terminate"} {
		t.Run(kind, func(t *testing.T) {
			c := newCrashBed(t, bin, crashCase{"after-lifecycle", kind}, 1, int64(i+1))
			c.start("after-lifecycle")
			state := map[string]string{"stop": "running", "start": "stopped", "terminate": "running"}[kind]
			id, thread := c.seedInstance(state, time.Now().Add(-time.Hour), time.Now().Add(2*time.Hour))
			c.slash(ana, "/"+kind, id)
			c.requireCrash()
			want := map[string]string{"stop": "stopped by <@" + ana + ">", "start": "started by <@" + ana + ">: new public IP",
				"terminate": "terminated by <@" + ana + ">"}[kind]
			if !c.awaitFor(10*time.Second, func() bool { return c.count(crashInThread(thread, want)) > 0 }) {
				var told []string
				for _, m := range c.messages(func(m fakeslack.Message) bool { return m.Ephemeral }) {
					told = append(told, m.Text)
				}
				t.Errorf("/%s done (instance %s) but the request thread never got %q; ana was told %q", kind, c.aws.Instances()[0].State, want, told)
			}
			db := c.shutdown()
			if n := c.auditCount(db, kind, id); n != 1 {
				t.Errorf("%d %q audit entries for %s, want 1", n, kind, id)
			}
		})
	}
}

// A crash at post-notice (the notice is in Slack, where it went is not
// saved), then the owner clicks Stop now on that notice: the instance
// stops, but the notice keeps its buttons and never says so, and its
// thread gets no announcement. Scheduler.show leaves an unposted notice to
// its poster while mayBePosting (for postTimeout + 1 min after NoticedAt),
// but the poster is dead, and the click's own message ts is not used to
// adopt the notice.
func TestCrashRegressionNoticeOutcomeAfterPostNoticeCrash(t *testing.T) {
	bin := buildCrashBinary(t)
	c := newCrashBed(t, bin, crashCase{"post-notice", "notice"}, 1, 1)
	c.start("post-notice")
	id, thread := c.seedInstance("running", time.Now().Add(-3*time.Hour), time.Now().Add(24*time.Hour))
	c.idleMetrics(id)
	var notice fakeslack.Message
	if !c.await(func() bool {
		var ok bool
		notice, ok = c.find(crashInThread(thread, "looks idle"))
		return ok
	}) {
		t.Fatal("no notice")
	}
	c.requireCrash()
	c.click(ana, notice.TS, "Stop now")
	if !c.await(func() bool { in, _ := c.aws.Instance(id); return in.State == "stopped" }) {
		t.Fatal("Stop now did not stop the instance")
	}
	if !c.awaitFor(10*time.Second, func() bool {
		m, _ := c.slack.Message(channel, notice.TS)
		return strings.Contains(visible(m), "topped")
	}) {
		m, _ := c.slack.Message(channel, notice.TS)
		t.Errorf("the instance is stopped but its notice still shows %v (buttons %v, %d updates)",
			strings.Split(visible(m), "\n")[0], c.slack.Buttons(channel, notice.TS), m.Updated)
	}
}

// A crash at post-notice with no click: the grace (2 s) ends, but the
// restarted bot does not stop the instance before NoticedAt + postTimeout
// + 1 min (3 minutes): CheckDue skips a notice that "may be posting" even
// though the process that was posting it is gone.
func TestCrashRegressionIdleStopDelayedAfterPostNoticeCrash(t *testing.T) {
	bin := buildCrashBinary(t)
	cc := crashCase{"post-notice", "notice"}
	c := newCrashBed(t, bin, cc, 1, 1)
	// The same idle config with a 2 s grace.
	if err := crashWriteConfig(c.cfg, strings.Replace(crashIdleConfig, "grace: 1h", "grace: 2s", 1), c.db); err != nil {
		t.Fatal(err)
	}
	c.start("post-notice")
	id, _ := c.seedInstance("running", time.Now().Add(-3*time.Hour), time.Now().Add(24*time.Hour))
	c.idleMetrics(id)
	c.requireCrash()
	crashed := time.Now()
	if !c.awaitFor(30*time.Second, func() bool { in, _ := c.aws.Instance(id); return in.State == "stopped" }) {
		stopped := c.awaitFor(4*time.Minute, func() bool { in, _ := c.aws.Instance(id); return in.State == "stopped" })
		t.Errorf("grace 2 s, but the idle instance was not stopped within 30 s of the restart (stopped after %s: %v)",
			time.Since(crashed).Round(time.Second), stopped)
	}
	c.settle()
	t.Logf("messages:%s", c.dump())
}

// A crash at after-decision (Approve recorded, its intent not finished):
// the restarted bot resumes two jobs for the request, the click's intent
// (decide → recorded: audit, refresh of the request message, "Approved
// by" reply) and the request's launch (jobProceed). They take the
// request's lock in either order: when the launch goes first, the thread
// reads pending → running → "Approved by" (about half the runs), and the
// decision's refresh, rendered from the request as it read it (launched),
// can land after ready()'s (done), leaving the request message without
// its running instance for good.
func TestCrashRegressionAfterDecisionOrder(t *testing.T) {
	bin := buildCrashBinary(t)
	for run := 1; run <= 8; run++ {
		t.Run(fmt.Sprint("run", run), func(t *testing.T) {
			t.Parallel()
			c := newCrashBed(t, bin, crashCase{"after-decision", "launch"}, 1, int64(run))
			c.start("after-decision")
			c.slash(ana, "/launch", "t2.micro --hours 2")
			var msg fakeslack.Message
			if !c.await(func() bool {
				var ok bool
				msg, ok = c.find(crashIsRequestMessage)
				return ok && strings.Contains(strings.Join(c.slack.Buttons(channel, msg.TS), ","), "Approve")
			}) {
				t.Fatal("no request message")
			}
			c.click(bo, msg.TS, "Approve")
			c.requireCrash()
			if !c.await(func() bool { return c.count(crashInThread(msg.TS, " is running")) > 0 }) {
				t.Fatal("no IP reply")
			}
			c.settle()
			var order []string
			for _, m := range c.slack.Thread(channel, msg.TS) {
				order = append(order, strings.SplitN(m.Text, " ", 3)[0]+" "+strings.SplitN(m.Text+" ", " ", 3)[1])
			}
			approved := slices.IndexFunc(c.slack.Thread(channel, msg.TS), func(m fakeslack.Message) bool { return strings.HasPrefix(m.Text, "Approved by") })
			pending := slices.IndexFunc(c.slack.Thread(channel, msg.TS), func(m fakeslack.Message) bool { return strings.Contains(m.Text, "is pending") })
			if approved > pending {
				t.Errorf("the decision is announced after the launch: thread %q", order)
			}
			if m, _ := c.slack.Message(channel, msg.TS); !strings.Contains(m.Text, "` running") {
				t.Errorf("the request is done but its message shows %q", m.Text)
			}
		})
	}
}

func crashWriteConfig(path, yaml, db string) error {
	return os.WriteFile(path, []byte(fmt.Sprintf(yaml, db)), 0o600)
}
