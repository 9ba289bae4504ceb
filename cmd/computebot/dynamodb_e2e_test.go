package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws/dynamostore"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/internal/dynamotest"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
	"github.com/computebot/computebot/store"
)

// dynamoConfig is baseConfig on a DynamoDB table (the %s the bed fills in
// with a file path lands in a comment).
func dynamoConfig(table string) string {
	return baseIdleless + "store:\n  dynamodb:\n    table: " + table + "\n# unused: %s\n"
}

// units counts the capacity units of the store's DynamoDB calls.
type units struct {
	mu     sync.Mutex
	reads  float64
	writes float64
	calls  map[string]int
}

func (u *units) add(op string, n float64, _ error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.calls == nil {
		u.calls = map[string]int{}
	}
	u.calls[op]++
	switch op {
	case "PutItem", "DeleteItem":
		u.writes += n
	default:
		u.reads += n
	}
}

// take returns what was counted since the last take, and resets.
func (u *units) take() (reads, writes float64, calls map[string]int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	reads, writes, calls = u.reads, u.writes, u.calls
	u.reads, u.writes, u.calls = 0, 0, nil
	return reads, writes, calls
}

func callsLine(calls map[string]int) string {
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(calls)) {
		parts = append(parts, fmt.Sprintf("%s %d", op, calls[op]))
	}
	return strings.Join(parts, ", ")
}

// newDynamoBed is the in-process bed (real wiring) on a fresh table of
// moto, with the store's calls counted.
func newDynamoBed(t *testing.T, u *units, opts ...bedOption) *bed {
	t.Helper()
	srv := dynamotest.Moto(t)
	table := dynamotest.NewTable(t, srv)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.Endpoint)
	return newBedWith(t, func(m *Main) { m.OnStoreCall = u.add }, append([]bedOption{withConfig(dynamoConfig(table))}, opts...)...)
}

// TestDynamoDBRequestLife runs one request's whole life on the DynamoDB
// store (one replica): /launch, Approve, launched, running and the IP
// reply, and reports what it cost in DynamoDB request units (the README's
// figures). Background work (heartbeats, the leader lease, adoption and
// expiry sweeps) is counted apart.
func TestDynamoDBRequestLife(t *testing.T) {
	u := &units{}
	// The production sweep interval, so that the life is measured with
	// little background (a heartbeat tick every 5 s may fall in it).
	b := newDynamoBed(t, u, withTimings(func(o *flow.Options) { o.SweepInterval = 30 * time.Second }))
	time.Sleep(100 * time.Millisecond)
	u.take()

	b.slash(ana, "/launch", "t2.micro --reason capacity")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "ssh ")
	time.Sleep(100 * time.Millisecond) // the last writes after the reply
	reads, writes, calls := u.take()
	r := b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestDone })
	if r.Launch.InstanceID == "" || len(b.aws.Instances()) != 1 {
		t.Fatalf("request %+v, %d instances", r, len(b.aws.Instances()))
	}
	t.Logf("one request life on DynamoDB (/launch → approved → launched → ready): %.0f read units, %.0f write units (%s)",
		reads, writes, callsLine(calls))
	// The README's figures (22 and 21), with room for a heartbeat tick
	// falling in the window: more means a change to look at (and to put
	// in the README).
	if reads < 15 || reads > 30 || writes < 15 || writes > 26 {
		t.Errorf("a request life cost %.0f read and %.0f write units, want about 22 and 21 (README, Running several replicas)", reads, writes)
	}
	// The thread asked about reads the request by its message.
	if _, err := b.slack.SendMention(fakeslack.Mention{UserID: ana, ChannelID: channel, ThreadTS: msg.TS,
		Text: "<@" + fakeslack.BotUserID + "> status"}); err != nil {
		t.Fatal(err)
	}
	b.waitThread(msg.TS, "was launched")
}

// TestDynamoDBIdleScanCapacity reports what one idle scan of N running
// instances costs on DynamoDB, when none is idle (the usual case) and when
// all are (each gets a notice).
func TestDynamoDBIdleScanCapacity(t *testing.T) {
	const n = 50
	u := &units{}
	b := newDynamoBed(t, u, withTimings(func(o *flow.Options) { o.SweepInterval, o.NoticeInterval = 30*time.Second, time.Millisecond }))
	sched := b.main.idle
	for i := range n {
		id := fmt.Sprintf("i-0d%015x", i)
		b.aws.AddInstance(fakeaws.Instance{ID: id, Type: "t3.small", State: "running", LaunchTime: time.Now().Add(-3 * time.Hour), Tags: map[string]string{
			computebot.TagManaged: "true", computebot.TagOwner: ana, computebot.TagName: fmt.Sprintf("box-%d", i),
			computebot.TagExpiresAt: time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
		}})
		start := time.Now().Add(-2 * time.Hour).Truncate(5 * time.Minute)
		k := int(time.Since(start)/(5*time.Minute)) + 1
		busy := make([]float64, k)
		for j := range busy {
			busy[j] = 60
		}
		b.aws.SetMetricSeries(id, "CPUUtilization", start, 5*time.Minute, busy)
		b.aws.SetMetricSeries(id, "NetworkIn", start, 5*time.Minute, busy)
		b.aws.SetMetricSeries(id, "NetworkOut", start, 5*time.Minute, busy)
	}
	u.take()
	if err := sched.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	busyR, busyW, busyCalls := u.take()
	t.Logf("idle scan of %d busy instances: %.0f read units, %.0f write units (%s)", n, busyR, busyW, callsLine(busyCalls))
	if busyW != 0 {
		t.Errorf("a scan that found nothing idle wrote %.0f units", busyW)
	}
	// As many idle ones beside them: each gets a notice (persisted,
	// posted, where it went recorded).
	for i := range n {
		id := fmt.Sprintf("i-0e%015x", i)
		b.aws.AddInstance(fakeaws.Instance{ID: id, Type: "t3.small", State: "running", LaunchTime: time.Now().Add(-3 * time.Hour), Tags: map[string]string{
			computebot.TagManaged: "true", computebot.TagOwner: ana, computebot.TagName: fmt.Sprintf("idle-%d", i),
			computebot.TagExpiresAt: time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
		}})
		(&crashBed{t: t, aws: b.aws}).idleMetrics(id)
	}
	u.take()
	if err := sched.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	idleR, idleW, idleCalls := u.take()
	t.Logf("idle scan of %d busy and %d idle instances (a notice each): %.0f read units, %.0f write units (%s)", n, n, idleR, idleW, callsLine(idleCalls))
	if got := len(b.slack.Calls("chat.postMessage")); got < n {
		t.Errorf("%d posts, want a notice for each of %d instances\n%s", got, n, b.stderr)
	}
}

// TestStoreInitAndCheck: `computebot store init` creates the table
// (PAY_PER_REQUEST, TTL) and is harmless when it exists; the check then
// finds it right, and finds a table with other keys wrong.
func TestStoreInitAndCheck(t *testing.T) {
	srv := dynamotest.Moto(t)
	dynamoEnv(t, srv)
	dir := t.TempDir()
	table := fmt.Sprintf("computebot-init-%d", os.Getpid())
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(dynamoConfig(table), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := runStore([]string{"init", "--config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("store init: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "created table "+table) || !strings.Contains(out.String(), "enabled time to live") {
		t.Errorf("first store init said:\n%s", out.String())
	}
	out.Reset()
	if code := runStore([]string{"init", "--config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("second store init: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "table "+table+" exists") || !strings.Contains(out.String(), "time to live is on") {
		t.Errorf("second store init said:\n%s", out.String())
	}
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &checkReport{out: &out, counts: map[checkStatus]int{}}
	out.Reset()
	checkTable(context.Background(), r, 10*time.Second, c)
	if r.counts[checkPassed] != 1 || !strings.Contains(out.String(), "✓ dynamodb table — "+table+" is active") {
		t.Errorf("check of the initialised table:\n%s", out.String())
	}

	// A table someone made with other keys, and no TTL.
	other := table + "-wrong"
	dynamotest.NewWrongTable(t, srv, other)
	c.Store.DynamoDB.Table = other
	out.Reset()
	r = &checkReport{out: &out, counts: map[checkStatus]int{}}
	checkTable(context.Background(), r, 10*time.Second, c)
	if r.counts[checkFailed] != 1 || !strings.Contains(out.String(), "keys must be pk (HASH, S) and sk (RANGE, S)") ||
		!strings.Contains(out.String(), "time to live is not enabled") {
		t.Errorf("check of a wrong table:\n%s", out.String())
	}
	// The embedded store needs no init.
	plain := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(plain, []byte(fmt.Sprintf(baseConfig, filepath.Join(dir, "x.db"))), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := runStore([]string{"init", "--config", plain}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "sets no store.dynamodb.table") {
		t.Errorf("store init on a store.path config: exit %d, %s", code, errOut.String())
	}
}

// TestStoreMigrate copies an embedded file's requests, unfinished intents,
// idle notices and audit log to a table; a second run copies nothing
// twice.
func TestStoreMigrate(t *testing.T) {
	srv := dynamotest.Moto(t)
	dynamoEnv(t, srv)
	table := dynamotest.NewTable(t, srv)
	path := filepath.Join(t.TempDir(), "computebot.db")
	ctx := context.Background()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	pending := &computebot.Request{ID: "R-pending", Requester: ana, ChannelID: channel, MessageTS: "1700000000.000001",
		State: computebot.RequestPending, CreatedAt: now.Add(-time.Hour), ApprovalExpiresAt: now.Add(time.Hour),
		Launch: &computebot.LaunchRequest{InstanceType: "t2.micro", ImageID: "ami-1", Lease: 8 * time.Hour}}
	done := &computebot.Request{ID: "R-done", Requester: bo, ChannelID: channel, MessageTS: "1700000000.000002",
		State: computebot.RequestDone, CreatedAt: now.Add(-2 * time.Hour), Launch: &computebot.LaunchRequest{InstanceType: "t3.small", InstanceID: "i-0123"}}
	for _, r := range []*computebot.Request{pending, done} {
		if err := db.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.AcceptIntent(ctx, &computebot.Intent{ID: "E-open", Source: computebot.SourceSlash, Command: "/stop", Text: "i-0123",
		State: computebot.IntentAccepted}); err != nil {
		t.Fatal(err)
	}
	var n idle.Notice
	if err := db.Update(ctx, idle.NoticesBucket, "i-0123", &n, func(bool) error {
		n = idle.Notice{InstanceID: "i-0123", State: idle.StateNoticed, Reason: idle.ReasonIdle}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := db.Audit(ctx, computebot.AuditEntry{Time: now.Add(time.Duration(i-3) * 24 * time.Hour), Actor: ana, Action: "launch", RequestID: fmt.Sprint(i), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	if code := runStore([]string{"migrate", "--from", path, "--to", table}, &out, &errOut); code != 0 {
		t.Fatalf("store migrate: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "copied 2 requests, 1 unfinished intents, 1 key/value entries and 3 audit entries") {
		t.Errorf("store migrate said: %s", out.String())
	}
	out.Reset()
	if code := runStore([]string{"migrate", "--from", path, "--to", table}, &out, &errOut); code != 0 {
		t.Fatalf("second store migrate: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "copied 0 requests, 0 unfinished intents, 0 key/value entries") || !strings.Contains(out.String(), "(4 already there)") {
		t.Errorf("second store migrate said: %s", out.String())
	}

	dst, err := dynamostore.Open(ctx, dynamotest.Client(srv), dynamostore.Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	got, err := dst.Requests(ctx, computebot.RequestPending)
	if err != nil || len(got) != 1 || got[0].ID != "R-pending" || got[0].Version != 1 || !got[0].ApprovalExpiresAt.Equal(pending.ApprovalExpiresAt) {
		t.Errorf("pending requests in the table: %+v, %v", got, err)
	}
	if r, err := dst.RequestByMessage(ctx, channel, "1700000000.000002"); err != nil || r.ID != "R-done" {
		t.Errorf("RequestByMessage of the done request: %v, %v", r, err)
	}
	if ins, err := dst.UnfinishedIntents(ctx); err != nil || len(ins) != 1 || ins[0].ID != "E-open" {
		t.Errorf("unfinished intents in the table: %v, %v", ins, err)
	}
	var copied idle.Notice
	if err := dst.Get(ctx, idle.NoticesBucket, "i-0123", &copied); err != nil || copied.State != idle.StateNoticed {
		t.Errorf("notice in the table: %+v, %v", copied, err)
	}
	log, err := dst.AuditLog(ctx)
	if err != nil || len(log) != 3 || log[0].RequestID != "0" || log[2].RequestID != "2" {
		t.Errorf("audit log in the table (after two migrations): %+v, %v", log, err)
	}
}

// TestDynamoDBBackground measures what a quiet replica (the leader, alone)
// costs per lease tick (lease_ttl / 3): its heartbeat, the lease, the
// reading of the heartbeats, the listing of open work; the README's cost
// figures come from it.
func TestDynamoDBBackground(t *testing.T) {
	u := &units{}
	srv := dynamotest.Moto(t)
	table := dynamotest.NewTable(t, srv)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.Endpoint)
	cfg := baseIdleless + "store:\n  dynamodb:\n    table: " + table + "\n    lease_ttl: 3s\n# unused: %s\n"
	b := newBedWith(t, func(m *Main) { m.OnStoreCall = u.add }, withConfig(cfg),
		withTimings(func(o *flow.Options) { o.SweepInterval = 30 * time.Second }))
	_ = b
	time.Sleep(500 * time.Millisecond)
	u.take()
	const ticks = 5
	time.Sleep(ticks * time.Second) // lease_ttl 3s: a tick a second
	reads, writes, calls := u.take()
	t.Logf("a quiet leader, per tick: %.1f read units, %.1f write units (%d ticks: %s)", reads/ticks, writes/ticks, ticks, callsLine(calls))
	if reads/ticks > 8 || writes/ticks > 3 {
		t.Errorf("background per tick %.1f read and %.1f write units, more than the README's figures allow", reads/ticks, writes/ticks)
	}
}

// dynamoEnv points the SDK's default chain at srv, with test credentials.
func dynamoEnv(t *testing.T, srv dynamotest.Server) {
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.Endpoint)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRETTEST")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}
