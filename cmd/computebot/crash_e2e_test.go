package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/internal/crash"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
	"github.com/computebot/computebot/internal/syncbuf"
	"github.com/computebot/computebot/reply"
	"github.com/computebot/computebot/store"
)

// The crash-point tests: the real binary, built with -tags crashpoints, is
// killed at a named point (os.Exit, no cleanup: crash.Point), restarted on
// the same store, and the scenario is driven to its end. Whatever the
// point, Slack must show one request message per request, one IP reply,
// one notice per idle episode; EC2 must hold one instance per approved
// request; and nothing acked may be lost: the approval, the stop, the
// extension (by exactly the hours asked) all reach their end state.
//
// Each point runs crashRuns times, each run with its own fakes, store and
// slightly different latencies (so that the crash lands at different
// moments of the surrounding work), crashParallel runs at a time.

const (
	crashRuns     = 3
	crashParallel = 6
	// crashDeadline bounds each wait: for a point to be reached, for an
	// effect to show.
	crashDeadline = 25 * time.Second
	// crashSettle is how long a finished scenario is left running, so that
	// a late duplicate (a resumed post, a second launch) has time to show.
	crashSettle = 1500 * time.Millisecond
)

// crashConfig is baseConfig (t2.micro needs an approver, t3.medium is
// auto-approved) with Lambda functions that need no approval.
var crashConfig = baseConfig + `lambda:
  allowed_functions: ["report-*"]
  timeout: 5s
`

// crashIdleConfig adds an idle scan every second. The grace is long: the
// notice's outcome comes from a Stop now click.
var crashIdleConfig = baseConfig + `idle:
  schedule: "@every 1s"
  cpu_below_percent: 5
  for: 1h
  grace: 1h
  snooze: 4h
`

// crashFallbackConfig lets t2.micro fall back to t3.small, over two
// subnets; the fallback scenario gives EC2 no t2.micro capacity anywhere,
// so a launch makes three attempts (t2.micro in each subnet, then
// t3.small), each with its own ClientToken.
var crashFallbackConfig = strings.Replace(crashConfig, "  default_ttl: 8h\n",
	"  default_ttl: 8h\n  subnet_ids: [subnet-0aaaaaaaaaaaaaaa1, subnet-0bbbbbbbbbbbbbbb2]\n  fallback_types:\n    t2.micro: [t3.small]\n", 1)

// crashCase is one row of the table: a scenario and the point it is
// killed at.
type crashCase struct {
	point    string // COMPUTEBOT_CRASH_AT
	scenario string // launch, mention, stop, start, terminate, extend, invoke, notice
}

func (c crashCase) name() string { return strings.ReplaceAll(c.point, ":", "_") + "/" + c.scenario }

var crashCases = []crashCase{
	{"ack:slash_commands", "launch"},
	{"ack:interactive", "launch"},
	{"ack:events_api", "mention"},
	{"post-request", "launch"},
	{"after-decision", "launch"},
	{"before-run-instances", "launch"},
	{"after-run-instances", "launch"},
	{"post-ready", "launch"},
	{"before-run-instances#3", "fallback"}, // the move to the fallback type saved, its RunInstances not made
	{"after-run-instances", "fallback"},    // the fallback type launched, its instance ID not saved
	{"before-lifecycle", "stop"},
	{"before-lifecycle", "start"},
	{"before-lifecycle", "terminate"},
	{"before-lifecycle", "extend"},
	{"after-lifecycle", "stop"},
	{"after-lifecycle", "start"},
	{"after-lifecycle", "terminate"},
	{"after-lifecycle", "extend"},
	{"ack:slash_commands", "extend"},
	{"before-invoke", "invoke"},
	{"ack:slash_commands", "invoke"},
	{"post-notice", "notice"},
}

// crashResult is what one run found.
type crashResult struct {
	dups  []string // something shown or done more than once
	lost  []string // an acked action whose end state was never reached
	notes []string // observations that break no promise of the table
}

func TestCrashPoints(t *testing.T) {
	started := time.Now()
	bin := buildCrashBinary(t)

	var (
		mu      sync.Mutex
		results = map[string][]crashResult{}
		wg      sync.WaitGroup
		sem     = make(chan struct{}, crashParallel)
		seq     atomic.Int64
	)
	// t.Run is called from several goroutines at once (allowed): the runs
	// mostly wait on processes and polls, so more of them than -parallel's
	// default (GOMAXPROCS) fit in the machine.
	for run := 1; run <= crashRuns; run++ {
		for _, cc := range crashCases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				t.Run(fmt.Sprintf("%s/run%d", cc.name(), run), func(t *testing.T) {
					c := newCrashBed(t, bin, cc, run, seq.Add(1))
					defer func() {
						res := c.res
						if t.Failed() {
							if len(res.dups)+len(res.lost) == 0 {
								res.lost = append(res.lost, "run aborted") // a t.Fatal: the point never reached, an exit
							}
							t.Logf("messages:%s\nlog:\n%s", c.dump(), c.log)
						}
						mu.Lock()
						results[cc.name()] = append(results[cc.name()], res)
						mu.Unlock()
					}()
					res := c.play()
					for _, d := range res.dups {
						t.Errorf("duplicate: %s", d)
					}
					for _, l := range res.lost {
						t.Errorf("lost: %s", l)
					}
				})
			}()
		}
	}
	wg.Wait()

	var sb strings.Builder
	fmt.Fprintf(&sb, "crash points: %d cases × %d runs in %s\n", len(crashCases), crashRuns, time.Since(started).Round(time.Second))
	fmt.Fprintf(&sb, "%-22s %-10s %5s %5s %5s  %s\n", "point", "scenario", "runs", "dups", "lost", "notes")
	for _, cc := range crashCases {
		rs := results[cc.name()]
		dups, lost := 0, 0
		var notes []string
		for _, r := range rs {
			dups += len(r.dups)
			lost += len(r.lost)
			for _, n := range r.notes {
				if !slices.Contains(notes, n) {
					notes = append(notes, n)
				}
			}
		}
		sort.Strings(notes)
		fmt.Fprintf(&sb, "%-22s %-10s %5d %5d %5d  %s\n", cc.point, cc.scenario, len(rs), dups, lost, strings.Join(notes, "; "))
	}
	t.Log("\n" + sb.String())
}

// buildCrashBinary builds the bot with its crash points compiled in, once
// for the test run.
func buildCrashBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "computebot-crash")
	build := exec.Command("go", "build", "-tags", "crashpoints", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags crashpoints: %v\n%s", err, out)
	}
	return bin
}

// crashBed is one run: fakes, a store, and the bot's processes, one after
// the other (the first one crashes).
type crashBed struct {
	t     *testing.T
	cc    crashCase
	bin   string
	slack *fakeslack.Server
	aws   *fakeaws.Server
	dir   string
	cfg   string
	db    string
	log   *syncbuf.Buffer // every process's stderr, one after the other
	seq   int64           // distinguishes this run's instance IDs

	proc    *exec.Cmd
	exited  chan error // the running process's exit, received once
	running bool       // a process is up and its exit not received yet
	crashed bool
	envs    []string // envelopes sent, to check that each was acked
	res     crashResult
}

func newCrashBed(t *testing.T, bin string, cc crashCase, run int, seq int64) *crashBed {
	t.Helper()
	c := &crashBed{t: t, cc: cc, bin: bin, slack: fakeslack.New(), aws: fakeaws.New(), dir: t.TempDir(), log: &syncbuf.Buffer{}, seq: seq}
	t.Cleanup(c.slack.Close)
	t.Cleanup(c.aws.Close)
	t.Cleanup(c.kill) // runs first: the process goes before its fakes
	// Envelopes not acked when the process died come again, to the next
	// process, as Slack does.
	c.slack.SetRedelivery(300*time.Millisecond, 5)
	// Each run shifts the timing a little, so that the crash lands at
	// different moments of the work around it.
	c.slack.SetLatency("*", time.Duration(run-1)*15*time.Millisecond)
	c.aws.SetLatency("", time.Duration(run-1)*10*time.Millisecond)
	for _, u := range []struct{ id, name string }{{ana, "ana"}, {bo, "bo"}, {carl, "carl"}, {eve, "eve"}} {
		c.slack.AddUser(u.id, u.name)
	}
	c.slack.AddUserGroup("SPLATFORM", carl)
	c.slack.AddChannel(channel, "data-science")
	c.aws.AddFunction(fakeaws.Function{Name: "report-daily", Handler: func(p []byte) ([]byte, string, string) {
		return []byte(`{"rows": 42}`), "loading\ndone", ""
	}})

	yaml := crashConfig
	switch cc.scenario {
	case "notice":
		yaml = crashIdleConfig
	case "fallback":
		yaml = crashFallbackConfig
		c.aws.SetNoCapacity("t2.micro", "", true)
	}
	c.db = filepath.Join(c.dir, "computebot.db")
	c.cfg = filepath.Join(c.dir, "config.yaml")
	if err := os.WriteFile(c.cfg, []byte(fmt.Sprintf(yaml, c.db)), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs the binary on the run's config and store, crashing at
// crashAt ("" for no crash), and waits for it to connect.
func (c *crashBed) start(crashAt string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, "--config", c.cfg, "--listen", "", "--log-level", "debug")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.dir,
		"SLACK_BOT_TOKEN=xoxb-test-bot-token",
		"SLACK_APP_TOKEN=xapp-test-app-token",
		"SLACK_API_URL=" + c.slack.APIURL(),
		"AWS_ENDPOINT_URL=" + c.aws.URL(),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDTEST",
		"AWS_SECRET_ACCESS_KEY=SECRETTEST",
		"AWS_MAX_ATTEMPTS=1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(c.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(c.dir, "no-aws-credentials"),
	}
	if crashAt != "" {
		cmd.Env = append(cmd.Env, crash.EnvVar+"="+crashAt)
	}
	fmt.Fprintf(c.log, "=== start (%s=%q) at %s ===\n", crash.EnvVar, crashAt, time.Now().Format("15:04:05.000"))
	cmd.Stdout, cmd.Stderr = c.log, c.log
	before := c.slack.Hellos()
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c.proc, c.exited, c.running = cmd, exited, true
	deadline := time.Now().Add(crashDeadline)
	for c.slack.Hellos() <= before {
		select {
		case err := <-exited:
			c.running = false
			c.t.Fatalf("the bot exited before it connected: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatal("the bot did not connect")
		}
	}
}

// crashReport is the line the bot writes when it crashes at point
// ("NAME" or "NAME#N", the N-th hit), as package crash words it.
func crashReport(point string) string {
	if name, nth, ok := strings.Cut(point, "#"); ok {
		return "crash point " + name + " (hit " + nth + "): exiting"
	}
	return "crash point " + point + " "
}

// kill ends a process still running at the end of the test.
func (c *crashBed) kill() {
	if c.running {
		_ = c.proc.Process.Kill()
		<-c.exited
		c.running = false
	}
}

// exitedWith handles the process's exit: the first one must be the crash
// at the run's point, after which the bot is started again on the same
// store; any other exit fails the run.
func (c *crashBed) exitedWith(err error) {
	c.t.Helper()
	c.running = false
	var ee *exec.ExitError
	switch {
	case c.crashed:
		c.t.Fatalf("the restarted bot exited: %v", err)
	case !errors.As(err, &ee) || ee.ExitCode() != crash.ExitCode:
		c.t.Fatalf("the bot exited with %v, not at crash point %s (status %d)", err, c.cc.point, crash.ExitCode)
	case !strings.Contains(c.log.String(), crashReport(c.cc.point)):
		c.t.Fatalf("the bot exited with status %d but did not report crash point %s", crash.ExitCode, c.cc.point)
	}
	c.crashed = true
	c.start("")
}

// poll checks, without waiting, whether the process has exited.
func (c *crashBed) poll() {
	c.t.Helper()
	select {
	case err := <-c.exited:
		c.exitedWith(err)
	default:
	}
}

// await waits until cond holds, restarting the bot when it crashes
// meanwhile; false when it never held within crashDeadline.
func (c *crashBed) await(cond func() bool) bool {
	c.t.Helper()
	return c.awaitFor(crashDeadline, cond)
}

func (c *crashBed) awaitFor(d time.Duration, cond func() bool) bool {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		c.poll()
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireCrash waits for the crash if it has not happened yet: a point
// may come after the scenario's last visible effect (post-ready comes
// after the IP reply).
func (c *crashBed) requireCrash() {
	c.t.Helper()
	if c.crashed {
		return
	}
	select {
	case err := <-c.exited:
		c.exitedWith(err)
	case <-time.After(crashDeadline):
		c.t.Fatalf("crash point %s was never reached within %s", c.cc.point, crashDeadline)
	}
}

// settle lets the restarted bot run a little longer, watching that it
// does not exit, so that a late duplicate has time to show.
func (c *crashBed) settle() {
	c.t.Helper()
	select {
	case err := <-c.exited:
		c.exitedWith(err)
	case <-time.After(crashSettle):
	}
}

// shutdown stops the restarted bot with SIGTERM (it must exit cleanly)
// and opens its store, for the checks.
func (c *crashBed) shutdown() *store.DB {
	c.t.Helper()
	fmt.Fprintf(c.log, "=== SIGTERM at %s ===\n", time.Now().Format("15:04:05.000"))
	if err := c.proc.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	select {
	case err := <-c.exited:
		c.running = false
		if err != nil {
			c.t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		c.t.Fatal("no exit within 30 s of SIGTERM")
	}
	fmt.Fprintf(c.log, "=== exited at %s ===\n", time.Now().Format("15:04:05.000"))
	db, err := store.Open(c.db, store.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = db.Close() })
	return db
}

func (c *crashBed) dup(format string, args ...any) {
	c.res.dups = append(c.res.dups, fmt.Sprintf(format, args...))
}

func (c *crashBed) lost(format string, args ...any) {
	c.res.lost = append(c.res.lost, fmt.Sprintf(format, args...))
}

func (c *crashBed) note(format string, args ...any) {
	c.res.notes = append(c.res.notes, fmt.Sprintf(format, args...))
}

// want1 records a count that must be exactly one: more is a duplicate,
// none is lost.
func (c *crashBed) want1(what string, n int) {
	switch {
	case n > 1:
		c.dup("%d %s, want 1", n, what)
	case n == 0:
		c.lost("no %s", what)
	}
}

// Inputs, as Slack sends them.

func (c *crashBed) slash(user, command, text string) {
	c.t.Helper()
	env, err := c.slack.SendSlashCommand(fakeslack.SlashCommand{Command: command, Text: text, UserID: user, ChannelID: channel})
	if err != nil {
		c.t.Fatal(err)
	}
	c.envs = append(c.envs, env)
}

func (c *crashBed) mention(user, text string) {
	c.t.Helper()
	env, err := c.slack.SendMention(fakeslack.Mention{UserID: user, ChannelID: channel, Text: "<@" + fakeslack.BotUserID + "> " + text})
	if err != nil {
		c.t.Fatal(err)
	}
	c.envs = append(c.envs, env)
}

func (c *crashBed) click(user, ts, button string) {
	c.t.Helper()
	env, err := c.slack.Click(user, channel, ts, button)
	if err != nil {
		c.t.Fatalf("click %q: %v\nmessages:%s", button, err, c.dump())
	}
	c.envs = append(c.envs, env)
}

// checkAcked: every envelope sent was acked by some delivery (Slack then
// considers it handled: the bot must not lose it).
func (c *crashBed) checkAcked() {
	for _, env := range c.envs {
		acked := false
		for _, d := range c.slack.Deliveries(env) {
			acked = acked || d.Acked
		}
		if !acked {
			c.lost("envelope %s never acked (%d deliveries)", env, len(c.slack.Deliveries(env)))
		}
	}
}

// checkIntents: the store holds no intent left unfinished after a clean
// shutdown at the end of the scenario.
func (c *crashBed) checkIntents(db *store.DB) {
	ins, err := db.UnfinishedIntents(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, in := range ins {
		c.lost("intent %s (%s%s %q) unfinished, step %q", in.ID, in.Command, in.ActionID, in.Text, in.Step)
	}
}

// auditCount counts the audit entries of action on target ("" any) with
// result ok.
func (c *crashBed) auditCount(db *store.DB, action, target string) int {
	es, err := db.AuditLog(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Action == action && (target == "" || e.Target == target) && e.Result == "ok" {
			n++
		}
	}
	return n
}

// postsWithKey counts the chat.postMessage calls Slack accepted whose
// message metadata carries key (reply.Message.Key; a prefix will do).
func (c *crashBed) postsWithKey(key string) int {
	n := 0
	for _, call := range c.slack.Calls("chat.postMessage") {
		if call.OK() && strings.Contains(call.Params["metadata"], `"`+key) {
			n++
		}
	}
	return n
}

// Channel state.

func (c *crashBed) messages(pred func(fakeslack.Message) bool) []fakeslack.Message {
	return channelMessages(c.slack, pred)
}

func (c *crashBed) count(pred func(fakeslack.Message) bool) int { return len(c.messages(pred)) }

func (c *crashBed) find(pred func(fakeslack.Message) bool) (fakeslack.Message, bool) {
	ms := c.messages(pred)
	if len(ms) == 0 {
		return fakeslack.Message{}, false
	}
	return ms[0], true
}

func crashIsRequestMessage(m fakeslack.Message) bool {
	return m.ThreadTS == "" && !m.Ephemeral && m.Via == "chat.postMessage" && strings.Contains(m.Text, "<@"+ana+"> requests")
}

func crashInThread(ts, substr string) func(fakeslack.Message) bool {
	return func(m fakeslack.Message) bool {
		return m.ThreadTS == ts && !m.Ephemeral && strings.Contains(visible(m), substr)
	}
}

func crashPrivateTo(user, substr string) func(fakeslack.Message) bool {
	return func(m fakeslack.Message) bool {
		return m.Ephemeral && m.EphemeralUser == user && strings.Contains(visible(m), substr)
	}
}

func (c *crashBed) dump() string { return dumpChannel(c.slack) }

// postThread posts a top-level message as the bot would have (a request
// message of an earlier launch), for a seeded instance's thread: replies
// and thread look-ups then find a real parent.
func (c *crashBed) postThread(text string) string {
	c.t.Helper()
	resp, err := http.PostForm(c.slack.APIURL()+"chat.postMessage", url.Values{"token": {"xoxb-seed"}, "channel": {channel}, "text": {text}})
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		OK    bool   `json:"ok"`
		TS    string `json:"ts"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !out.OK {
		c.t.Fatalf("seed thread: %v %s", err, out.Error)
	}
	return out.TS
}

// seedInstance adds a managed instance of ana's, in state, whose request
// thread is a real message; expires is its lease end.
func (c *crashBed) seedInstance(state string, launched, expires time.Time) (id, thread string) {
	c.t.Helper()
	id = fmt.Sprintf("i-0c%015x", c.seq)
	thread = c.postThread("seeded request message of " + id)
	c.aws.AddInstance(fakeaws.Instance{ID: id, Type: "t3.small", State: state, LaunchTime: launched, Tags: map[string]string{
		computebot.TagManaged: "true", computebot.TagOwner: ana, computebot.TagName: "box-" + id[len(id)-4:],
		computebot.TagChannel: channel, computebot.TagThread: thread, computebot.TagRequest: fmt.Sprintf("R-SEED%04d", c.seq%10000),
		computebot.TagExpiresAt: expires.UTC().Format(time.RFC3339),
	}})
	return id, thread
}

// play runs the case: the first process crashes at the point, the second
// finishes the scenario; then the checks.
func (c *crashBed) play() crashResult {
	c.start(c.cc.point)
	switch c.cc.scenario {
	case "launch", "mention", "fallback":
		c.playLaunch(c.cc.scenario == "mention")
	case "stop", "start", "terminate", "extend":
		c.playLifecycle(c.cc.scenario)
	case "invoke":
		c.playInvoke()
	case "notice":
		c.playNotice()
	default:
		c.t.Fatalf("unknown scenario %q", c.cc.scenario)
	}
	return c.res
}

// playLaunch: /launch t2.micro (or the mention), the request message, Bo
// approves, the instance runs, the IP reply.
func (c *crashBed) playLaunch(viaMention bool) {
	if viaMention {
		c.mention(ana, "launch t2.micro --hours 2")
	} else {
		c.slash(ana, "/launch", "t2.micro --hours 2")
	}
	var msg fakeslack.Message
	if !c.await(func() bool { var ok bool; msg, ok = c.find(crashIsRequestMessage); return ok }) {
		c.requireCrash()
		c.lost("no request message")
		return
	}
	if !c.await(func() bool { return slices.Contains(c.slack.Buttons(channel, msg.TS), "Approve") }) {
		c.lost("the request message never got its Approve button")
		return
	}
	c.click(bo, msg.TS, "Approve")
	ipReply := func(m fakeslack.Message) bool {
		return m.ThreadTS == msg.TS && !m.Ephemeral && strings.Contains(m.Text, " is running: ")
	}
	if !c.await(func() bool { return c.count(ipReply) > 0 }) {
		c.requireCrash()
		c.lost("no IP reply after the approval")
	}
	c.requireCrash()
	// The request message shows the running instance once the request is
	// recorded done (the store says whether it is, after the shutdown).
	done := func() bool {
		m, ok := c.slack.Message(channel, msg.TS)
		return ok && strings.Contains(m.Text, "` running")
	}
	if !c.awaitFor(5*time.Second, done) {
		c.note("the request message never showed the instance running (stale update)")
	}
	c.settle()
	db := c.shutdown()

	c.want1("request messages", c.count(crashIsRequestMessage))
	c.want1("IP replies", c.count(ipReply))
	if n := c.count(crashInThread(msg.TS, "Approved by <@"+bo+">")); n != 1 {
		c.want1("decision replies", n)
	}
	// The approvers' note goes with a pending request: a click that
	// decided it before a resumed post adopted its message leaves none.
	if n := c.count(crashInThread(msg.TS, "needs approval")); n > 1 {
		c.dup("%d approvers notes", n)
	} else if n == 0 {
		c.note("no approvers note (decided before the message was adopted)")
	}
	// The thread keeps the order of events: the decision comes before
	// the launch's progress.
	thread := c.messages(func(m fakeslack.Message) bool { return m.ThreadTS == msg.TS && !m.Ephemeral })
	approvedAt := slices.IndexFunc(thread, func(m fakeslack.Message) bool { return strings.HasPrefix(m.Text, "Approved by") })
	pendingAt := slices.IndexFunc(thread, func(m fakeslack.Message) bool { return strings.Contains(m.Text, "is pending") })
	if approvedAt > pendingAt && pendingAt >= 0 {
		c.note("the decision reply came after the launch's replies")
	}
	if n := c.count(crashInThread(msg.TS, "Launching")); n != 1 {
		c.note("%d launching replies", n)
	}
	reqs, err := db.Requests(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	if len(reqs) != 1 {
		c.dup("%d requests stored, want 1", len(reqs))
	}
	for _, r := range reqs {
		if r.State != computebot.RequestDone {
			c.lost("request %s is %s, want done", r.ID, r.State)
		}
		var mine []string
		for _, in := range c.aws.Instances() {
			if in.Tags[computebot.TagRequest] == r.ID {
				mine = append(mine, in.ID)
			}
		}
		c.want1("instances for request "+r.ID, len(mine))
		c.want1("chat.postMessage calls carrying request "+r.ID, c.postsWithKey(reply.RequestKey(r.ID)))
		c.want1("chat.postMessage calls carrying the IP reply of "+r.ID, c.postsWithKey(reply.ReadyKey(r.ID)))
		if r.Launch != nil && len(mine) == 1 && r.Launch.InstanceID != mine[0] {
			c.lost("request %s records instance %s, EC2 has %s", r.ID, r.Launch.InstanceID, mine[0])
		}
		if n := c.auditCount(db, "launch", ""); n != 1 {
			c.note("%d launch audit entries", n)
		}
		if n := c.auditCount(db, "approve", ""); n != 1 {
			c.note("%d approve audit entries", n)
		}
	}
	if n := c.aws.CallCount("RunInstances"); n > 1 {
		c.note("RunInstances called %d times (one ClientToken per attempt)", n)
	}
	if n := len(c.aws.Instances()); n != 1 {
		c.dup("%d instances in EC2, want 1", n)
	}
	if c.cc.scenario == "fallback" {
		for _, in := range c.aws.Instances() {
			if in.Type != "t3.small" || in.ClientToken != "computebot-"+in.Tags[computebot.TagRequest]+"-2" {
				c.lost("instance %s is a %s with token %q, want the fallback t3.small with the third attempt's token", in.ID, in.Type, in.ClientToken)
			}
		}
		if n := c.count(crashInThread(msg.TS, "trying `t3.small`")); n == 0 {
			c.note("no thread note for the move to t3.small (posted by the process that died)")
		}
	}
	c.checkAcked()
	c.checkIntents(db)
}

// playLifecycle: /stop, /start, /terminate or /extend on one of ana's
// instances; the instance reaches the state asked for (the lease moves by
// exactly the hours asked), and the request thread hears of it.
func (c *crashBed) playLifecycle(kind string) {
	const hours = 3
	now := time.Now()
	expires := now.Add(2 * time.Hour).Truncate(time.Second)
	state := "running"
	if kind == "start" {
		state = "stopped"
	}
	id, thread := c.seedInstance(state, now.Add(-time.Hour), expires)
	target := map[string]string{"stop": "stopped", "start": "running", "terminate": "terminated"}[kind]
	announce := map[string]string{"stop": "stopped by <@" + ana + ">", "start": "started by <@" + ana + ">",
		"terminate": "terminated by <@" + ana + ">", "extend": fmt.Sprintf("extended by %d h by <@%s>", hours, ana)}[kind]
	wantLease := expires.Add(hours * time.Hour).UTC().Format(time.RFC3339)
	lease := func() string { in, _ := c.aws.Instance(id); return in.Tags[computebot.TagExpiresAt] }
	reached := func() bool {
		if kind == "extend" {
			return lease() != expires.UTC().Format(time.RFC3339)
		}
		in, _ := c.aws.Instance(id)
		return in.State == target
	}

	if kind == "extend" {
		c.slash(ana, "/extend", fmt.Sprintf("%s %d", id, hours))
	} else {
		c.slash(ana, "/"+kind, id)
	}
	if !c.await(reached) {
		c.requireCrash()
		if !c.await(reached) {
			c.lost("/%s never took effect", kind)
		}
	}
	c.requireCrash()
	// The announcement in the request thread, once the change is done.
	announced := c.awaitFor(5*time.Second, func() bool { return c.count(crashInThread(thread, announce)) > 0 })
	c.settle()
	db := c.shutdown()

	if kind == "extend" {
		switch got := lease(); {
		case got == wantLease:
		case got == expires.UTC().Format(time.RFC3339):
			c.lost("the lease was not extended")
		default:
			c.dup("the lease ends %s, want %s (%d h after %s)", got, wantLease, hours, expires.UTC().Format(time.RFC3339))
		}
	} else if in, _ := c.aws.Instance(id); in.State != target {
		c.lost("the instance is %s, want %s", in.State, target)
	}
	n := c.count(crashInThread(thread, announce))
	switch {
	case n > 1:
		c.dup("%d %q announcements", n, announce)
	case !announced:
		// The change is done, but the thread never heard of it (the
		// person who asked got a private answer instead).
		c.note("no %s announcement in the request thread", kind)
		if m, ok := c.find(func(m fakeslack.Message) bool { return m.Ephemeral && m.EphemeralUser == ana }); ok {
			c.note("ana was told %q", strings.ReplaceAll(m.Text, id, "ID"))
		}
	}
	if n := c.auditCount(db, kind, id); n != 1 {
		c.note("%d %s audit entries", n, kind)
	}
	c.checkAcked()
	c.checkIntents(db)
}

// playInvoke: /lambda invoke of a function that needs no approval. It runs
// at most once, and ana sees its result once or is told it is unknown.
func (c *crashBed) playInvoke() {
	c.slash(ana, "/lambda", `invoke report-daily {"day": "2026-11-27"}`)
	result := func(m fakeslack.Message) bool {
		return !m.Ephemeral && m.ThreadTS != "" && strings.Contains(m.Text, "`report-daily` returned status")
	}
	unknown := crashPrivateTo(ana, "result is unknown")
	told := func() bool { return c.count(result)+c.count(unknown) > 0 }
	if !c.await(told) {
		c.requireCrash()
		if !c.await(told) {
			c.lost("ana never heard of the invocation")
		}
	}
	c.requireCrash()
	c.settle()
	db := c.shutdown()

	inv := len(c.aws.Invocations("report-daily"))
	if inv > 1 {
		c.dup("%d invocations, want at most 1", inv)
	}
	r, u := c.count(result), c.count(unknown)
	switch {
	case r+u > 1:
		c.dup("%d results and %d 'unknown' answers, want one of them", r, u)
	case r+u == 0:
		c.lost("neither the result nor 'unknown'")
	case r == 1 && inv == 0:
		c.lost("a result shown for an invocation that never happened")
	}
	if u == 1 {
		c.note("told 'result unknown' (%d invocations)", inv)
	}
	if n := c.count(func(m fakeslack.Message) bool {
		return !m.Ephemeral && strings.Contains(m.Text, "invoked `report-daily`")
	}); n > 1 {
		c.dup("%d 'invoked' messages", n)
	}
	c.checkAcked()
	c.checkIntents(db)
}

// playNotice: an idle instance gets its notice; the process dies right
// after posting it; after the restart the owner clicks Stop now. One
// notice for the episode, the instance stops, and the notice says so.
func (c *crashBed) playNotice() {
	id, thread := c.seedInstance("running", time.Now().Add(-3*time.Hour), time.Now().Add(24*time.Hour))
	c.idleMetrics(id)
	isNotice := func(m fakeslack.Message) bool {
		return !m.Ephemeral && m.User == fakeslack.BotUserID && strings.Contains(m.Text, id) && strings.Contains(m.Text, "looks idle")
	}
	var notice fakeslack.Message
	if !c.await(func() bool { var ok bool; notice, ok = c.find(isNotice); return ok }) {
		c.requireCrash()
		c.lost("no idle notice")
		return
	}
	if notice.ThreadTS != thread {
		c.note("notice posted outside the request thread")
	}
	c.requireCrash()
	c.awaitFor(2*time.Second, func() bool { return false }) // a few scans of the restarted bot
	c.click(ana, notice.TS, "Stop now")
	if !c.await(func() bool { in, _ := c.aws.Instance(id); return in.State == "stopped" }) {
		c.lost("Stop now never stopped the instance")
	}
	shown := c.awaitFor(5*time.Second, func() bool {
		m, ok := c.slack.Message(channel, notice.TS)
		return ok && strings.Contains(visible(m), "topped") && !slices.Contains(c.slack.Buttons(channel, notice.TS), "Stop now")
	})
	c.settle()
	db := c.shutdown()

	if n := c.count(isNotice); n > 1 {
		c.dup("%d notices for one idle episode", n)
	}
	if n := c.postsWithKey("notice/" + id + "/"); n > 1 {
		c.dup("%d chat.postMessage calls carrying a notice of %s", n, id)
	}
	if !shown {
		c.note("the notice never showed the stop")
	}
	if n := c.auditCount(db, "idle-stop-now", id); n != 1 {
		c.note("%d idle-stop-now audit entries", n)
	}
	c.checkAcked()
	c.checkIntents(db)
}

// idleMetrics gives an instance two hours of idle metrics.
func (c *crashBed) idleMetrics(id string) {
	start := time.Now().Add(-2 * time.Hour).Truncate(5 * time.Minute)
	n := int(time.Since(start)/(5*time.Minute)) + 1
	series := func(v float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	c.aws.SetMetricSeries(id, "CPUUtilization", start, 5*time.Minute, series(0.5))
	c.aws.SetMetricSeries(id, "NetworkIn", start, 5*time.Minute, series(1000))
	c.aws.SetMetricSeries(id, "NetworkOut", start, 5*time.Minute, series(1000))
}
