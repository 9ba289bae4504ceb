package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/internal/fakeslack"
)

// throttleConfig is baseConfig with room for everyone's instances.
var throttleConfig = strings.Replace(baseConfig, "max_running_per_user: 3", "max_running_per_user: 10\n  max_lease: 48h", 1)

// TestThrottledAWSNothingSilentNothingTwice throttles 30 % of every AWS call
// (EC2, Pricing, SSM alike: RequestLimitExceeded and its kin) while ten
// launches go through, half auto-approved t3.medium, half t2.micro approved
// by a click, followed by /stop and /extend on what runs. Reads retry (in
// the standard mode, with short backoffs here); mutating calls are tried
// once by the SDK (AWS_MAX_ATTEMPTS=1, as the harness sets it), so throttled
// writes reach the workflows. Every action must end in its result or in a
// clear answer to its person: nothing silent, nothing done twice (one
// instance per approved request, one answer per /stop).
func TestThrottledAWSNothingSilentNothingTwice(t *testing.T) {
	const ratio, seed = 0.3, 20261201
	started := time.Now()
	b := newBedWith(t, func(m *Main) {
		m.AWS.ReadRetryMode = aws.RetryModeStandard
		m.AWS.ReadBackoffMax = 5 * time.Millisecond
	}, withConfig(throttleConfig))
	b.aws.SetThrottleRatio("", ratio, seed)

	type launch struct {
		user, typ string
		click     bool
	}
	var launches []launch
	for i := range 10 {
		l := launch{user: fmt.Sprintf("UTHR%02d", i), typ: "t3.medium"}
		if i%2 == 1 {
			l.typ, l.click = "t2.micro", true
		}
		b.slack.AddUser(l.user, strings.ToLower(l.user))
		launches = append(launches, l)
	}

	// Each launch: what its requester saw, once it is over.
	type outcome struct {
		thread  string // the request message's ts; "" when none was posted
		running bool
		failed  string // the thread's failure reply
		refused string // a private answer instead of a request message
	}
	outcomes := make([]outcome, len(launches))
	var wg sync.WaitGroup
	for i, l := range launches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env, err := b.slack.SendSlashCommand(fakeslack.SlashCommand{Command: "/launch", Text: l.typ + " --hours 4", UserID: l.user, ChannelID: channel})
			if err != nil {
				t.Error(err)
				return
			}
			ack, err := b.slack.WaitAck(b.ctx(), env)
			if err != nil {
				t.Errorf("%s: no ack: %v", l.user, err)
				return
			}
			if txt := chaosAckText(t, ack); txt != "" {
				outcomes[i].refused = txt // nothing before the ack calls AWS: not expected
				return
			}
			// A request message, or a private answer saying why not.
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if m, ok := throttleFind(b, isRequestMessageOf(l.user)); ok {
					outcomes[i].thread = m.TS
					break
				}
				if m, ok := throttleFind(b, func(m fakeslack.Message) bool { return m.Ephemeral && m.EphemeralUser == l.user }); ok {
					outcomes[i].refused = visible(m)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			if outcomes[i].thread == "" {
				return // silent: reported below
			}
			if l.click {
				env, err := b.slack.Click(bo, channel, outcomes[i].thread, "Approve")
				if err != nil {
					t.Errorf("%s: click: %v", l.user, err)
					return
				}
				if _, err := b.slack.WaitAck(b.ctx(), env); err != nil {
					t.Errorf("%s: no ack for the click: %v", l.user, err)
				}
			}
			for time.Now().Before(deadline) {
				if m, ok := throttleFind(b, func(m fakeslack.Message) bool {
					return m.ThreadTS == outcomes[i].thread && strings.Contains(m.Text, "failed:")
				}); ok {
					outcomes[i].failed = visible(m)
					return
				}
				if _, ok := throttleFind(b, func(m fakeslack.Message) bool {
					return m.ThreadTS == outcomes[i].thread && strings.Contains(visible(m), "is running")
				}); ok {
					outcomes[i].running = true
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()

	silent, dups := 0, 0
	running, failed, refused := 0, 0, 0
	requests := map[string]*computebot.Request{}
	for _, r := range b.requests() {
		requests[r.Requester] = r
	}
	for i, l := range launches {
		o := outcomes[i]
		switch {
		case o.running:
			running++
		case o.failed != "":
			failed++
			if !throttleClear(o.failed) {
				t.Errorf("%s: the launch failure does not say why in plain words: %s", l.user, o.failed)
			}
		case o.refused != "":
			refused++
			if !throttleClear(o.refused) {
				t.Errorf("%s: the refusal does not say why in plain words: %s", l.user, o.refused)
			}
		default:
			silent++
			t.Errorf("%s's %s launch: no request message, no answer, no result", l.user, l.typ)
		}
		if n := chaosCount(b, isRequestMessageOf(l.user)); n > 1 {
			dups++
			t.Errorf("%s: %d request messages", l.user, n)
		}
		if o.thread != "" {
			n := 0
			for _, m := range b.slack.Thread(channel, o.thread) {
				if strings.Contains(visible(m), "is running") && m.ThreadTS == o.thread {
					n++
				}
			}
			if n > 1 {
				dups++
				t.Errorf("%s: %d IP replies", l.user, n)
			}
		}
		r := requests[l.user]
		if r == nil {
			continue
		}
		var insts []string
		for _, in := range b.aws.Instances() {
			if in.Tags["computebot:request"] == r.ID {
				insts = append(insts, in.ID)
			}
		}
		switch {
		case len(insts) > 1:
			dups++
			t.Errorf("%s: request %s has %d instances: %v", l.user, r.ID, len(insts), insts)
		case o.running && len(insts) == 0:
			t.Errorf("%s: the thread says running but EC2 has no instance for %s", l.user, r.ID)
		case o.failed != "" && len(insts) == 1:
			t.Errorf("%s: request %s reported failed, yet instance %s was launched", l.user, r.ID, insts[0])
		}
	}

	// The lifecycle: /stop on most running instances, /extend on the rest,
	// all at once, each by its owner (who typed it at the channel's top
	// level, so the answer also comes privately).
	type action struct {
		user, cmd, id string
		mark          int
	}
	var actions []action
	mark := b.mark()
	for i, l := range launches {
		r := requests[l.user]
		if !outcomes[i].running || r == nil || r.Launch.InstanceID == "" {
			continue
		}
		cmd := "/stop"
		if len(actions)%3 == 2 {
			cmd = "/extend"
		}
		actions = append(actions, action{user: l.user, cmd: cmd, id: r.Launch.InstanceID, mark: mark})
	}
	if len(actions) < 3 {
		t.Fatalf("only %d instances run: too few for the lifecycle part", len(actions))
	}
	for _, a := range actions {
		text := a.id
		if a.cmd == "/extend" {
			text += " 4"
		}
		env, err := b.slack.SendSlashCommand(fakeslack.SlashCommand{Command: a.cmd, Text: text, UserID: a.user, ChannelID: channel})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.slack.WaitAck(b.ctx(), env); err != nil {
			t.Fatalf("%s %s: no ack: %v", a.cmd, a.id, err)
		}
	}
	// Each action's result in its request thread, or its failure told
	// privately to whoever typed it.
	outcomeOf := func(a action) (done, failed int, why string) {
		for _, m := range b.slack.Messages(channel)[a.mark:] {
			v := visible(m)
			if !strings.Contains(v, a.id) {
				continue
			}
			switch {
			case !m.Ephemeral && (strings.Contains(v, "stopped by") || strings.Contains(v, "extended by")):
				done++
			case m.Ephemeral && m.EphemeralUser == a.user && (strings.Contains(v, "I could not") || strings.Contains(v, "not reached")):
				failed++
				why = strings.SplitN(v, "\n", 2)[0]
			}
		}
		return done, failed, why
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		over := true
		for _, a := range actions {
			if done, failed, _ := outcomeOf(a); done+failed == 0 {
				over = false
			}
		}
		if over || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // room for a late duplicate
	stops, extends, done, reportedFail := 0, 0, 0, 0
	for _, a := range actions {
		if a.cmd == "/stop" {
			stops++
		} else {
			extends++
		}
		d, f, why := outcomeOf(a)
		switch {
		case d+f == 0:
			silent++
			t.Errorf("%s %s by %s: no result and no answer", a.cmd, a.id, a.user)
		case d+f > 1:
			dups++
			t.Errorf("%s %s: %d results, %d failure answers", a.cmd, a.id, d, f)
		case d == 1:
			done++
		default:
			reportedFail++
			if !throttleClear(why) {
				t.Errorf("%s %s: the failure does not say why in plain words: %s", a.cmd, a.id, why)
			}
			t.Logf("%s %s by %s, answered: %s", a.cmd, a.id, a.user, strings.TrimSpace(why))
		}
	}
	if d := b.aws.Calls("StopInstances"); len(d) == 0 {
		t.Error("no StopInstances call at all")
	}

	throttled, calls := 0, 0
	for _, c := range b.aws.Calls("") {
		calls++
		if c.ErrorCode == "RequestLimitExceeded" || strings.Contains(c.ErrorCode, "Throttl") {
			throttled++
		}
	}
	t.Logf("throttle: %d of %d AWS calls throttled (ratio %.1f, seed %d); launches: %d (%d auto-approved, %d by a click): %d running, %d failed and said why, %d refused and said why;"+
		" lifecycle: %d /stop + %d /extend: %d done, %d failed and said why; silent %d, duplicate %d; %s",
		throttled, calls, ratio, seed, len(launches), len(launches)/2, len(launches)/2, running, failed, refused,
		stops, extends, done, reportedFail, silent, dups, time.Since(started).Round(time.Millisecond))
	if throttled == 0 {
		t.Error("nothing was throttled: the test tested nothing")
	}
	if t.Failed() {
		t.Logf("messages:%s\nlog:\n%s", b.dump(), b.stderr)
	}
}

func throttleFind(b *bed, pred func(fakeslack.Message) bool) (fakeslack.Message, bool) {
	for _, m := range b.slack.Messages(channel) {
		if pred(m) {
			return m, true
		}
	}
	return fakeslack.Message{}, false
}

// throttleClear reports whether an answer says what went wrong in words a
// person can act on (not the catch-all, not a bare AWS code).
func throttleClear(s string) bool {
	return !strings.Contains(s, "internal error") && !strings.Contains(s, "RequestLimitExceeded") &&
		(strings.Contains(s, "throttling") || strings.Contains(s, "try again"))
}
