package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws/dynamostore"
	"github.com/computebot/computebot/cluster"
	"github.com/computebot/computebot/internal/crash"
	"github.com/computebot/computebot/internal/dynamotest"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
	"github.com/computebot/computebot/internal/syncbuf"
)

// The multi-replica tests: three bot processes (the real binary, built
// with crash points) share one DynamoDB table on moto, an independent
// DynamoDB implementation, and one fake Slack that delivers each envelope
// to one of their connections at random and redelivers an envelope not
// acked in time to another, as Slack does. Leases run at lease_ttl 3s, so
// takeovers take seconds; the README gives the figures at the defaults.

func TestMain(m *testing.M) {
	code := m.Run()
	dynamotest.Stop()
	os.Exit(code)
}

var replicaConfig = baseIdleless + `idle:
  schedule: "@every 1s"
  cpu_below_percent: 5
  for: 1h
  grace: %s
  snooze: 4h
store:
  dynamodb:
    table: %s
    lease_ttl: 3s
`

// baseIdleless is baseConfig without its store section.
var baseIdleless = strings.TrimSuffix(baseConfig, "store:\n  path: %s\n")

const replicaLeaseTTL = 3 * time.Second

var (
	replicaBinOnce sync.Once
	replicaBin     string
	replicaBinErr  error
)

// replicaBinary builds the binary with crash points once per test run.
func replicaBinary(t *testing.T) string {
	t.Helper()
	replicaBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "computebot-replicas-")
		if err != nil {
			replicaBinErr = err
			return
		}
		replicaBin = filepath.Join(dir, "computebot")
		out, err := exec.Command("go", "build", "-tags", "crashpoints", "-o", replicaBin, ".").CombinedOutput()
		if err != nil {
			replicaBinErr = fmt.Errorf("go build -tags crashpoints: %v\n%s", err, out)
		}
	})
	if replicaBinErr != nil {
		t.Fatal(replicaBinErr)
	}
	return replicaBin
}

type replicaBed struct {
	t     *testing.T
	bin   string
	slack *fakeslack.Server
	aws   *fakeaws.Server
	ddb   dynamotest.Server
	table string
	dir   string
	cfg   string
	store *dynamostore.Store // the test's own view of the table
	procs map[string]*replicaProc
}

type replicaProc struct {
	name   string
	cmd    *exec.Cmd
	exited chan error
	log    *syncbuf.Buffer
	done   bool
}

func newReplicaBed(t *testing.T, grace string) *replicaBed {
	t.Helper()
	return newReplicaBedTTL(t, grace, "3s")
}

// newReplicaBedTTL is newReplicaBed with another store.dynamodb.lease_ttl.
func newReplicaBedTTL(t *testing.T, grace, leaseTTL string) *replicaBed {
	t.Helper()
	b := &replicaBed{t: t, bin: replicaBinary(t), slack: fakeslack.New(), aws: fakeaws.New(), ddb: dynamotest.Moto(t),
		dir: t.TempDir(), procs: map[string]*replicaProc{}}
	t.Cleanup(b.slack.Close)
	t.Cleanup(b.aws.Close)
	t.Cleanup(b.killAll) // runs first: the processes go before their fakes
	b.table = dynamotest.NewTable(t, b.ddb)
	b.slack.SetRedelivery(700*time.Millisecond, 8)
	b.slack.SetSpread(true, 20261201)
	for _, u := range []struct{ id, name string }{{ana, "ana"}, {bo, "bo"}, {carl, "carl"}, {eve, "eve"}} {
		b.slack.AddUser(u.id, u.name)
	}
	b.slack.AddUserGroup("SPLATFORM", carl)
	b.slack.AddChannel(channel, "data-science")
	b.cfg = filepath.Join(b.dir, "config.yaml")
	cfg := strings.Replace(fmt.Sprintf(replicaConfig, grace, b.table), "lease_ttl: 3s", "lease_ttl: "+leaseTTL, 1)
	if err := os.WriteFile(b.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := dynamostore.Open(t.Context(), dynamotest.Client(b.ddb), dynamostore.Options{Table: b.table})
	if err != nil {
		t.Fatal(err)
	}
	b.store = s
	return b
}

// start runs replica name (COMPUTEBOT_REPLICA), crashing at crashAt when
// set, and waits for its socket-mode connection.
func (b *replicaBed) start(name, crashAt string) {
	b.t.Helper()
	p := &replicaProc{name: name, log: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	cmd := exec.Command(b.bin, "--config", b.cfg, "--listen", "", "--log-level", "debug")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + b.dir,
		"SLACK_BOT_TOKEN=xoxb-test-bot-token",
		"SLACK_APP_TOKEN=xapp-test-app-token",
		"SLACK_API_URL=" + b.slack.APIURL(),
		"AWS_ENDPOINT_URL=" + b.aws.URL(),
		"AWS_ENDPOINT_URL_DYNAMODB=" + b.ddb.Endpoint,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDTEST",
		"AWS_SECRET_ACCESS_KEY=SECRETTEST",
		"AWS_MAX_ATTEMPTS=1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(b.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(b.dir, "no-aws-credentials"),
		cluster.EnvReplica + "=" + name,
	}
	if crashAt != "" {
		cmd.Env = append(cmd.Env, crash.EnvVar+"="+crashAt)
	}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	before := b.slack.Hellos()
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	p.cmd = cmd
	go func() { p.exited <- cmd.Wait() }()
	b.procs[name] = p
	deadline := time.Now().Add(20 * time.Second)
	for b.slack.Hellos() <= before {
		select {
		case err := <-p.exited:
			p.done = true
			b.t.Fatalf("replica %s exited before it connected: %v\n%s", name, err, p.log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("replica %s did not connect\n%s", name, p.log)
		}
	}
}

// kill9 kills a replica at once, as a node failure would.
func (b *replicaBed) kill9(name string) {
	b.t.Helper()
	p := b.procs[name]
	if p == nil || p.done {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.done = true
}

// term stops a replica with SIGTERM; it must exit cleanly within 10 s.
func (b *replicaBed) term(name string) {
	b.t.Helper()
	p := b.procs[name]
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.done = true
		if err != nil {
			b.t.Fatalf("replica %s exited with %v after SIGTERM\n%s", name, err, p.log)
		}
	case <-time.After(10 * time.Second):
		b.t.Fatalf("replica %s did not stop within 10 s of SIGTERM", name)
	}
}

// waitExit waits for a replica to exit on its own (a crash point).
func (b *replicaBed) waitExit(name string, within time.Duration) error {
	p := b.procs[name]
	select {
	case err := <-p.exited:
		p.done = true
		return err
	case <-time.After(within):
		return errors.New("still running")
	}
}

func (b *replicaBed) killAll() {
	for name := range b.procs {
		b.kill9(name)
	}
}

// logs is every replica's log, for failure messages.
func (b *replicaBed) logs() string {
	var sb strings.Builder
	for name, p := range b.procs {
		fmt.Fprintf(&sb, "\n===== %s =====\n%s", name, p.log)
	}
	return sb.String()
}

func (b *replicaBed) await(within time.Duration, cond func() bool) bool { return pollFor(within, cond) }

func (b *replicaBed) messages(pred func(fakeslack.Message) bool) []fakeslack.Message {
	return channelMessages(b.slack, pred)
}

func (b *replicaBed) dump() string { return dumpChannel(b.slack) }

// leader is the replica holding the leader lease, as the table says.
func (b *replicaBed) leader() string {
	var l struct {
		Holder string `json:"holder"`
	}
	if err := b.store.Get(b.t.Context(), cluster.Bucket, "leader", &l); err != nil {
		return ""
	}
	return l.Holder
}

// requestOf is the latest request of requester.
func (b *replicaBed) requestOf(requester string) *computebot.Request {
	rs, err := b.store.Requests(b.t.Context())
	if err != nil {
		b.t.Fatal(err)
	}
	var last *computebot.Request
	for _, r := range rs {
		if r.Requester == requester {
			last = r
		}
	}
	return last
}

func (b *replicaBed) deliveryConns(env string) []int {
	var conns []int
	for _, d := range b.slack.Deliveries(env) {
		conns = append(conns, d.Conn)
	}
	return conns
}

func (b *replicaBed) startThree() {
	for _, n := range []string{"r1", "r2", "r3"} {
		b.start(n, "")
	}
	if !b.await(10*time.Second, func() bool { return b.leader() != "" }) {
		b.t.Fatalf("no replica took the leader lease\n%s", b.logs())
	}
}

func isSSHReply(m fakeslack.Message) bool {
	return !m.Ephemeral && m.ThreadTS != "" && strings.Contains(visible(m), "ssh ")
}

// TestReplicasDoubleApprove: Approve clicked twice, the clicks delivered to
// two replicas: one approval, one instance, one IP reply; the click that
// lost is answered privately.
func TestReplicasDoubleApprove(t *testing.T) {
	t.Parallel() // processes and sleeps, little CPU: two at a time
	b := newReplicaBed(t, "1h")
	b.startThree()
	if _, err := b.slack.SendSlashCommand(fakeslack.SlashCommand{Command: "/launch", Text: "t2.micro --reason replicas", UserID: ana, ChannelID: channel}); err != nil {
		t.Fatal(err)
	}
	var req fakeslack.Message
	if !b.await(15*time.Second, func() bool {
		ms := b.messages(crashIsRequestMessage)
		if len(ms) > 0 {
			req = ms[0]
		}
		return len(ms) > 0 && len(b.slack.Buttons(channel, req.TS)) > 0
	}) {
		t.Fatalf("no request message%s\n%s", b.dump(), b.logs())
	}
	// Four clicks at once, from two approvers (a double click each): each
	// goes to a random connection, and the replicas race on the store.
	var envs []string
	for i := range 4 {
		env, err := b.slack.Click([]string{bo, carl}[i%2], channel, req.TS, "Approve")
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	conns := map[int]bool{}
	for i, env := range envs {
		if !b.await(5*time.Second, func() bool { return len(b.slack.Deliveries(env)) > 0 }) {
			t.Fatalf("click %d never delivered", i)
		}
		conns[b.slack.Deliveries(env)[0].Conn] = true
	}
	if len(conns) < 2 {
		t.Fatalf("the 4 clicks all went to one connection (seeded spread); the test needs two")
	}
	if !b.await(20*time.Second, func() bool { return len(b.messages(isSSHReply)) > 0 }) {
		t.Fatalf("no IP reply%s\n%s", b.dump(), b.logs())
	}
	time.Sleep(3 * replicaLeaseTTL) // past an adoption, for a second launch or reply to show
	if n := len(b.aws.Instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	if n := len(b.messages(isSSHReply)); n != 1 {
		t.Errorf("%d IP replies, want 1", n)
	}
	approvals := b.messages(func(m fakeslack.Message) bool {
		return !m.Ephemeral && m.ThreadTS == req.TS && strings.Contains(visible(m), "pproved by")
	})
	if len(approvals) != 1 {
		t.Errorf("%d approval posts in the thread, want 1%s", len(approvals), b.dump())
	}
	already := b.messages(func(m fakeslack.Message) bool {
		return strings.Contains(visible(m), "already")
	})
	for _, m := range already {
		if !m.Ephemeral && m.Via != "response_url" {
			t.Errorf("a lost race was answered in the channel: %s", m.Text)
		}
	}
	if len(already) != len(envs)-1 {
		t.Errorf("%d private 'already decided' answers to %d clicks, want one per losing click%s", len(already), len(envs), b.dump())
	}
	r := b.requestOf(ana)
	if r == nil || r.State != computebot.RequestDone {
		t.Errorf("request %+v, want done", r)
	}
	t.Logf("%d clicks over connections %v; one approval, one instance", len(envs), conns)
}

// TestReplicasRedeliveredSlashCommand: the same /launch delivered again to
// another replica (its ack came too late for Slack) is recognised there
// (its intent is in the table): one request message.
func TestReplicasRedeliveredSlashCommand(t *testing.T) {
	t.Parallel() // processes and sleeps, little CPU: two at a time
	b := newReplicaBed(t, "1h")
	b.startThree()
	env, err := b.slack.SendSlashCommand(fakeslack.SlashCommand{Command: "/launch", Text: "t2.micro --reason redelivered", UserID: ana, ChannelID: channel})
	if err != nil {
		t.Fatal(err)
	}
	acked := func() bool { ds := b.slack.Deliveries(env); return len(ds) > 0 && ds[len(ds)-1].Acked }
	if !b.await(10*time.Second, acked) {
		t.Fatalf("the /launch was never acked\n%s", b.logs())
	}
	first := b.slack.Deliveries(env)[0].Conn
	for i := 0; i < 5 && !slicesContainsOther(b.deliveryConns(env), first); i++ {
		n := len(b.slack.Deliveries(env))
		if err := b.slack.Redeliver(env); err != nil {
			t.Fatal(err)
		}
		if !b.await(10*time.Second, func() bool { return len(b.slack.Deliveries(env)) > n && acked() }) {
			t.Fatalf("the redelivery was never acked\n%s", b.logs())
		}
	}
	if !slicesContainsOther(b.deliveryConns(env), first) {
		t.Fatalf("deliveries on %v: never redelivered to another connection", b.deliveryConns(env))
	}
	if !b.await(15*time.Second, func() bool { return len(b.messages(crashIsRequestMessage)) > 0 }) {
		t.Fatalf("no request message%s\n%s", b.dump(), b.logs())
	}
	time.Sleep(3 * replicaLeaseTTL) // past an adoption, for a second one to show
	if n := len(b.messages(crashIsRequestMessage)); n != 1 {
		t.Errorf("%d request messages, want 1%s", n, b.dump())
	}
	t.Logf("delivered on connections %v; one request message", b.deliveryConns(env))
}

// TestReplicasCrashAtAck: the replica that got a /launch dies right after
// persisting it (at its ack): the leader takes the dead replica's intent
// over once its heartbeat is stale, and Slack's redelivery (if the ack was
// lost) is recognised by another: one request message.
func TestReplicasCrashAtAck(t *testing.T) {
	t.Parallel() // processes and sleeps, little CPU: two at a time
	b := newReplicaBed(t, "1h")
	b.slack.SetSpread(false, 0) // to the newest connection: r3, which dies at the ack
	b.start("r1", "")
	b.start("r2", "")
	b.start("r3", "ack:slash_commands")
	if _, err := b.slack.SendSlashCommand(fakeslack.SlashCommand{Command: "/launch", Text: "t2.micro --reason crash-at-ack", UserID: ana, ChannelID: channel}); err != nil {
		t.Fatal(err)
	}
	if err := b.waitExit("r3", 10*time.Second); err == nil || !strings.Contains(b.procs["r3"].log.String(), "crash point ack:slash_commands") {
		t.Fatalf("r3 did not crash at its ack (%v)\n%s", err, b.logs())
	}
	died := time.Now()
	if !b.await(30*time.Second, func() bool { return len(b.messages(crashIsRequestMessage)) > 0 }) {
		t.Fatalf("no request message after r3 died%s\n%s", b.dump(), b.logs())
	}
	took := time.Since(died)
	// The leader waits for r3's heartbeat to stand still for 2 TTL, then
	// adopts at its next tick.
	if took > 5*replicaLeaseTTL {
		t.Errorf("the dead replica's intent was taken over after %s, want ≤ 5 × lease_ttl (%s)", took, 5*replicaLeaseTTL)
	}
	time.Sleep(3 * replicaLeaseTTL) // for a second one to show
	if n := len(b.messages(crashIsRequestMessage)); n != 1 {
		t.Errorf("%d request messages, want 1%s", n, b.dump())
	}
	t.Logf("r3 died at its ack; the request was posted %s later (lease_ttl %s)", took.Round(100*time.Millisecond), replicaLeaseTTL)
}

func slicesContainsOther(conns []int, first int) bool {
	for _, c := range conns {
		if c != first {
			return true
		}
	}
	return false
}

// TestReplicasLeaderKilled: kill -9 the lease holder while an idle notice
// waits out its grace: another replica takes the lease over, the pending
// stop still happens, once, and no notice is posted twice.
func TestReplicasLeaderKilled(t *testing.T) {
	t.Parallel() // processes and sleeps, little CPU: two at a time
	b := newReplicaBed(t, "6s")
	id := "i-0rep0000000000a1"
	thread := b.seedThread("seeded request message of " + id)
	b.aws.AddInstance(fakeaws.Instance{ID: id, Type: "t3.small", State: "running", LaunchTime: time.Now().Add(-3 * time.Hour), Tags: map[string]string{
		computebot.TagManaged: "true", computebot.TagOwner: ana, computebot.TagName: "box-a1",
		computebot.TagChannel: channel, computebot.TagThread: thread, computebot.TagRequest: "R-SEEDREP1",
		computebot.TagExpiresAt: time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
	}})
	b.idleMetrics(id)
	b.startThree()
	isNotice := func(m fakeslack.Message) bool {
		return !m.Ephemeral && strings.Contains(m.Text, id) && strings.Contains(m.Text, "looks idle")
	}
	if !b.await(15*time.Second, func() bool { return len(b.messages(isNotice)) > 0 }) {
		t.Fatalf("no idle notice%s\n%s", b.dump(), b.logs())
	}
	old := b.leader()
	killed := time.Now()
	b.kill9(cluster.Name(old))
	var next string
	if !b.await(60*time.Second, func() bool { next = b.leader(); return next != "" && next != old }) {
		t.Fatalf("no replica took over the lease within 60 s of killing %s\n%s", old, b.logs())
	}
	takeover := time.Since(killed)
	// At most a TTL since the last renewal, plus a tick to see it and one
	// to take it: 4 × TTL leaves room for a loaded machine.
	if takeover > 4*replicaLeaseTTL {
		t.Errorf("the lease was taken over %s after the leader died, want ≤ 4 × lease_ttl (%s)", takeover, 4*replicaLeaseTTL)
	}
	if !b.await(30*time.Second, func() bool { in, _ := b.aws.Instance(id); return in.State == "stopped" }) {
		t.Fatalf("the pending stop never happened after the failover%s\n%s", b.dump(), b.logs())
	}
	time.Sleep(3 * replicaLeaseTTL)
	if n := len(b.messages(isNotice)); n != 1 {
		t.Errorf("%d idle notices, want 1%s", n, b.dump())
	}
	stops := 0
	for _, c := range b.aws.Calls("StopInstances") {
		if c.ErrorCode == "" && strings.Contains(c.Params.Encode(), id) {
			stops++
		}
	}
	if stops != 1 {
		t.Errorf("%d StopInstances calls for %s, want 1", stops, id)
	}
	t.Logf("killed leader %s; %s took the lease %s later (lease_ttl %s); stopped once, one notice", old, next, takeover.Round(100*time.Millisecond), replicaLeaseTTL)
}

// TestReplicasKilledMidLaunch: kill -9 the replica whose RunInstances is
// in flight: another takes the request over once its claim is stale, with
// the same ClientToken: one instance, one IP reply.
func TestReplicasKilledMidLaunch(t *testing.T) {
	t.Parallel() // processes and sleeps, little CPU: two at a time
	b := newReplicaBed(t, "1h")
	b.aws.SetLatency("RunInstances", 1500*time.Millisecond)
	b.startThree()
	claim := b.launchUnderWay("midlaunch")
	killed := time.Now()
	b.kill9(cluster.Name(claim))
	if !b.await(60*time.Second, func() bool { return len(b.messages(isSSHReply)) > 0 }) {
		t.Fatalf("nobody finished the launch of killed %s%s\n%s", claim, b.dump(), b.logs())
	}
	resumed := time.Since(killed)
	// A lease takeover if it was the leader (≤ 2 TTL), its heartbeat still
	// for 2 TTL (watched by every replica, so a new leader need not start
	// watching), an adoption tick, then RunInstances (1.5 s here) again.
	if resumed > 6*replicaLeaseTTL+2*time.Second {
		t.Errorf("the launch was finished %s after its replica died, want ≤ 6 × lease_ttl + the launch (%s)", resumed, 6*replicaLeaseTTL+2*time.Second)
	}
	time.Sleep(3 * replicaLeaseTTL)
	if n := len(b.aws.Instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	if n := len(b.messages(isSSHReply)); n != 1 {
		t.Errorf("%d IP replies, want 1%s", n, b.dump())
	}
	r := b.requestOf(ana)
	if r.State != computebot.RequestDone || r.Claim == claim {
		t.Errorf("request state %s claimed by %s; want done, by another replica than %s", r.State, r.Claim, claim)
	}
	tokens := map[string]bool{}
	for _, c := range b.aws.Calls("RunInstances") {
		tokens[c.Params.Get("ClientToken")] = true
	}
	if len(tokens) != 1 {
		t.Errorf("RunInstances sent %d ClientTokens, want 1", len(tokens))
	}
	t.Logf("killed %s mid-RunInstances; the launch finished %s later (lease_ttl %s), %d RunInstances calls, one instance",
		claim, resumed.Round(100*time.Millisecond), replicaLeaseTTL, len(b.aws.Calls("RunInstances")))
}

// TestReplicasRollingRestart: a rolling restart of all three, one at a
// time (SIGTERM, start again), under a stream of 300 commands: every
// command answered once.
func TestReplicasRollingRestart(t *testing.T) {
	t.Parallel() // processes and sleeps, little CPU: two at a time
	const commands = 300
	b := newReplicaBed(t, "1h")
	b.startThree()
	type sent struct{ env, user, kind string }
	var all []sent
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(time.Second)
		for _, n := range []string{"r1", "r2", "r3"} {
			b.term(n)
			b.start(n, "")
			time.Sleep(time.Second)
		}
	}()
	for i := range commands {
		user := fmt.Sprintf("UROLL%03d", i)
		b.slack.AddUser(user, strings.ToLower(user))
		kind, cmd, text := "instances", "/instances", ""
		switch {
		case i%50 == 10:
			kind, cmd, text = "launch", "/launch", "t2.micro --reason rolling"
		case i%3 == 0:
			kind, cmd, text = "help", "/computebot", "help"
		}
		env, err := b.slack.SendSlashCommand(fakeslack.SlashCommand{Command: cmd, Text: text, UserID: user, ChannelID: channel})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sent{env, user, kind})
		time.Sleep(40 * time.Millisecond)
	}
	<-restarted
	answers := func(user string) int {
		n := 0
		for _, m := range b.slack.Messages(channel) {
			if m.Via == "response_url" && m.EphemeralUser == user {
				n++
			}
		}
		return n
	}
	settled := func() bool {
		for _, s := range all {
			ds := b.slack.Deliveries(s.env)
			if len(ds) == 0 || !ds[len(ds)-1].Acked {
				return false
			}
			switch s.kind {
			case "instances":
				if answers(s.user) == 0 {
					return false
				}
			case "launch":
				if len(b.messages(isRequestMessageOf(s.user))) == 0 {
					return false
				}
			}
		}
		return true
	}
	b.await(60*time.Second, settled)
	time.Sleep(3 * replicaLeaseTTL) // past an adoption, for a second answer to show
	acks := map[string][]fakeslack.Ack{}
	for _, a := range b.slack.Acks() {
		acks[a.EnvelopeID] = append(acks[a.EnvelopeID], a)
	}
	var lost, twice []string
	redelivered := 0
	for _, s := range all {
		ds := b.slack.Deliveries(s.env)
		if len(ds) > 1 {
			redelivered++
		}
		if len(ds) == 0 || !ds[len(ds)-1].Acked {
			lost = append(lost, s.kind+" "+s.env+": never acked")
			continue
		}
		switch s.kind {
		case "help":
			texts := map[string]bool{}
			for _, a := range acks[s.env] {
				if txt := chaosAckText(t, a); txt != "" {
					texts[txt] = true
				}
			}
			if len(texts) != 1 {
				lost = append(lost, fmt.Sprintf("help %s: %d different answers in its acks", s.env, len(texts)))
			}
		case "instances":
			switch n := answers(s.user); {
			case n == 0:
				lost = append(lost, "instances "+s.env)
			case n > 1:
				twice = append(twice, fmt.Sprintf("instances %s: %d answers", s.env, n))
			}
		case "launch":
			switch n := len(b.messages(isRequestMessageOf(s.user))); {
			case n == 0:
				lost = append(lost, "launch "+s.env)
			case n > 1:
				twice = append(twice, fmt.Sprintf("launch %s: %d request messages", s.env, n))
			}
		}
	}
	t.Logf("rolling restart of 3 replicas under %d commands: %d redelivered, lost %d, answered twice %d", len(all), redelivered, len(lost), len(twice))
	for _, l := range lost {
		t.Errorf("lost: %s", l)
	}
	for _, d := range twice {
		t.Errorf("answered twice: %s", d)
	}
	if t.Failed() {
		t.Log(b.logs())
	}
}

// seedThread posts a message as the bot would have, for a seeded
// instance's request thread.
func (b *replicaBed) seedThread(text string) string {
	c := &crashBed{t: b.t, slack: b.slack}
	return c.postThread(text)
}

// idleMetrics gives an instance two hours of idle metrics.
func (b *replicaBed) idleMetrics(id string) {
	c := &crashBed{t: b.t, aws: b.aws}
	c.idleMetrics(id)
}

// TestReplicasAtDefaults: at the default lease_ttl (15 s), kill -9 the
// replica whose RunInstances is in flight and the leader (the same one,
// or two replicas of one node): the last replica takes the lease over and
// finishes the launch, each within 60 s.
func TestReplicasAtDefaults(t *testing.T) {
	t.Parallel() // processes and sleeps, little CPU: two at a time
	b := newReplicaBedTTL(t, "1h", "15s")
	b.aws.SetLatency("RunInstances", 1500*time.Millisecond)
	b.startThree()
	claim := b.launchUnderWay("defaults")
	leader := b.leader()
	killed := time.Now()
	b.kill9(cluster.Name(claim))
	b.kill9(cluster.Name(leader))
	var next string
	if !b.await(60*time.Second, func() bool { next = b.leader(); return next != "" && next != leader }) {
		t.Fatalf("no replica took the lease within 60 s of the leader's death\n%s", b.logs())
	}
	takeover := time.Since(killed)
	if !b.await(60*time.Second-takeover, func() bool { return len(b.messages(isSSHReply)) > 0 }) {
		t.Fatalf("the launch was not finished within 60 s of its replica's death%s\n%s", b.dump(), b.logs())
	}
	finished := time.Since(killed)
	time.Sleep(5 * time.Second)
	if n := len(b.aws.Instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	if n := len(b.messages(isSSHReply)); n != 1 {
		t.Errorf("%d IP replies, want 1", n)
	}
	t.Logf("lease_ttl 15s: killed %s (launching) and %s (leader); %s took the lease %s later and the launch was finished %s later",
		claim, leader, next, takeover.Round(100*time.Millisecond), finished.Round(100*time.Millisecond))
}

// launchUnderWay has ana ask for a t2.micro and bo approve it, and
// returns the replica that claimed it once its RunInstances is in flight.
func (b *replicaBed) launchUnderWay(reason string) string {
	b.t.Helper()
	if _, err := b.slack.SendSlashCommand(fakeslack.SlashCommand{Command: "/launch", Text: "t2.micro --reason " + reason, UserID: ana, ChannelID: channel}); err != nil {
		b.t.Fatal(err)
	}
	var req fakeslack.Message
	if !b.await(15*time.Second, func() bool {
		ms := b.messages(crashIsRequestMessage)
		if len(ms) > 0 {
			req = ms[0]
		}
		return len(ms) > 0 && len(b.slack.Buttons(channel, req.TS)) > 0
	}) {
		b.t.Fatalf("no request message%s\n%s", b.dump(), b.logs())
	}
	if _, err := b.slack.Click(bo, channel, req.TS, "Approve"); err != nil {
		b.t.Fatal(err)
	}
	var claim string
	if !b.await(15*time.Second, func() bool {
		r := b.requestOf(ana)
		if r != nil && r.State == computebot.RequestExecuting && len(b.aws.Calls("RunInstances")) > 0 {
			claim = r.Claim
		}
		return claim != ""
	}) {
		b.t.Fatalf("the launch never started%s\n%s", b.dump(), b.logs())
	}
	return claim
}
