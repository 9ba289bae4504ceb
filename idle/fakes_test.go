package idle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/internal/syncbuf"
	"github.com/computebot/computebot/internal/testclock"
	"github.com/computebot/computebot/policy"
)

// t0 is the tests' "now" at the start: a period boundary plus a bit.
var t0 = time.Date(2026, 3, 2, 10, 2, 30, 0, time.UTC)

// fakeCloud is a recording fake of Cloud. Metrics are stored per instance
// as datapoints and returned for [Start, End), as CloudWatch does.
type fakeCloud struct {
	mu      sync.Mutex
	insts   map[string]*computebot.Instance
	metrics map[string]computebot.InstanceMetrics
	calls   []string // "list", "get i-1", "metrics 3", "stop i-1", "terminate i-1", "tag i-1 k=v"
	queries []computebot.MetricsQuery
	stopErr error // returned by Stop and Terminate
	// hibernateErr is returned by Hibernate (before stopErr applies).
	hibernateErr error
	getErr       error
	tagErr       error
	metricErr    error
	// onList runs at the start of ManagedInstances (panic, block…).
	onList func()
	// onGet, onStop and onTag run before Instance, Stop/Terminate and Tag
	// do anything (block, race another path…), without the fake's lock.
	onGet, onStop, onTag func(id string)
}

func newCloud() *fakeCloud {
	return &fakeCloud{insts: map[string]*computebot.Instance{}, metrics: map[string]computebot.InstanceMetrics{}}
}

func (f *fakeCloud) add(id string, launched time.Time, tags map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := map[string]string{
		computebot.TagManaged: "true", computebot.TagOwner: "U" + id, computebot.TagName: "box-" + id,
		computebot.TagChannel: "C1", computebot.TagThread: "1000.0001",
	}
	maps.Copy(t, tags)
	f.insts[id] = &computebot.Instance{ID: id, Type: "t3.large", State: computebot.InstanceRunning, LaunchTime: launched, Tags: t}
}

func (f *fakeCloud) setState(id, state string) {
	f.mu.Lock()
	f.insts[id].State = state
	f.mu.Unlock()
}

func (f *fakeCloud) remove(id string) {
	f.mu.Lock()
	delete(f.insts, id)
	f.mu.Unlock()
}

func (f *fakeCloud) setTag(id, k, v string) {
	f.mu.Lock()
	f.insts[id].Tags[k] = v
	f.mu.Unlock()
}

// flat stores one datapoint per 5 minutes in [from, to) for the instance.
// netOut < 0 leaves NetworkOut out.
func (f *fakeCloud) flat(id string, from, to time.Time, cpu, netIn, netOut float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.metrics[id]
	m.CPUMax = slices.DeleteFunc(m.CPUMax, func(d computebot.Datapoint) bool { return !d.Time.Before(from) && d.Time.Before(to) })
	m.NetworkIn = slices.DeleteFunc(m.NetworkIn, func(d computebot.Datapoint) bool { return !d.Time.Before(from) && d.Time.Before(to) })
	m.NetworkOut = slices.DeleteFunc(m.NetworkOut, func(d computebot.Datapoint) bool { return !d.Time.Before(from) && d.Time.Before(to) })
	for t := from.Truncate(5 * time.Minute); t.Before(to); t = t.Add(5 * time.Minute) {
		m.CPUMax = append(m.CPUMax, computebot.Datapoint{Time: t, Value: cpu})
		m.NetworkIn = append(m.NetworkIn, computebot.Datapoint{Time: t, Value: netIn})
		if netOut >= 0 {
			m.NetworkOut = append(m.NetworkOut, computebot.Datapoint{Time: t, Value: netOut})
		}
	}
	f.metrics[id] = m
}

// idleAll gives the instance idle metrics for a whole day around t0.
func (f *fakeCloud) idleAll(id string) {
	f.flat(id, t0.Add(-12*time.Hour), t0.Add(12*time.Hour), 1.2, 100e3, 200e3)
}

func (f *fakeCloud) record(s string) {
	f.calls = append(f.calls, s)
}

func (f *fakeCloud) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeCloud) count(prefix string) int {
	n := 0
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (f *fakeCloud) ManagedInstances(ctx context.Context, filter computebot.InstanceFilter) ([]computebot.Instance, error) {
	if f.onList != nil {
		f.onList()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("list " + strings.Join(filter.States, ","))
	var out []computebot.Instance
	for _, id := range slices.Sorted(maps.Keys(f.insts)) {
		inst := f.insts[id]
		if len(filter.States) > 0 && !slices.Contains(filter.States, inst.State) {
			continue
		}
		if _, ok := inst.Tags[filter.TagKey]; filter.TagKey != "" && !ok {
			continue
		}
		c := *inst
		c.Tags = maps.Clone(inst.Tags)
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeCloud) Instance(_ context.Context, id string) (computebot.Instance, error) {
	if f.onGet != nil {
		f.onGet(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("get " + id)
	if f.getErr != nil {
		return computebot.Instance{}, f.getErr
	}
	inst, ok := f.insts[id]
	if !ok {
		return computebot.Instance{}, fmt.Errorf("instance %s: %w", id, computebot.ErrNotFound)
	}
	c := *inst
	c.Tags = maps.Clone(inst.Tags)
	return c, nil
}

func (f *fakeCloud) change(verb, id, state string) (computebot.Instance, error) {
	if f.onStop != nil {
		f.onStop(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(verb + " " + id)
	if f.stopErr != nil {
		return computebot.Instance{}, f.stopErr
	}
	inst, ok := f.insts[id]
	if !ok {
		return computebot.Instance{}, computebot.ErrNotFound
	}
	inst.State = state
	return *inst, nil
}

func (f *fakeCloud) Stop(_ context.Context, id string) (computebot.Instance, error) {
	return f.change("stop", id, computebot.InstanceStopped)
}

func (f *fakeCloud) Hibernate(_ context.Context, id string) (computebot.Instance, error) {
	f.mu.Lock()
	err := f.hibernateErr
	if err != nil {
		f.record("hibernate " + id)
	}
	f.mu.Unlock()
	if err != nil {
		return computebot.Instance{}, err
	}
	return f.change("hibernate", id, computebot.InstanceStopped)
}

// setHibernation marks an instance as launched able to hibernate.
func (f *fakeCloud) setHibernation(id string) {
	f.mu.Lock()
	f.insts[id].Hibernation = true
	f.mu.Unlock()
}

func (f *fakeCloud) Start(_ context.Context, id string) (computebot.Instance, error) {
	return f.change("start", id, computebot.InstanceRunning)
}

func (f *fakeCloud) Terminate(_ context.Context, id string) (computebot.Instance, error) {
	return f.change("terminate", id, computebot.InstanceTerminated)
}

func (f *fakeCloud) Tag(_ context.Context, id string, tags map[string]string) error {
	if f.onTag != nil {
		f.onTag(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		f.record("tag " + id + " " + k + "=" + tags[k])
	}
	if f.tagErr != nil {
		return f.tagErr
	}
	inst, ok := f.insts[id]
	if !ok {
		return computebot.ErrNotFound
	}
	maps.Copy(inst.Tags, tags)
	return nil
}

func (f *fakeCloud) InstanceMetrics(_ context.Context, q computebot.MetricsQuery) (map[string]computebot.InstanceMetrics, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(fmt.Sprintf("metrics %d", len(q.InstanceIDs)))
	f.queries = append(f.queries, q)
	if f.metricErr != nil {
		return nil, f.metricErr
	}
	in := func(d []computebot.Datapoint) []computebot.Datapoint {
		var out []computebot.Datapoint
		for _, p := range d {
			if !p.Time.Before(q.Start) && p.Time.Before(q.End) {
				out = append(out, p)
			}
		}
		return out
	}
	out := map[string]computebot.InstanceMetrics{}
	for _, id := range q.InstanceIDs {
		m, ok := f.metrics[id]
		if !ok {
			continue
		}
		out[id] = computebot.InstanceMetrics{CPUMax: in(m.CPUMax), NetworkIn: in(m.NetworkIn), NetworkOut: in(m.NetworkOut)}
	}
	return out, nil
}

// fakeNotifier records what the scheduler shows, and checks that posts
// never run concurrently.
type fakeNotifier struct {
	mu        sync.Mutex
	posts     []Notice
	updates   []Notice
	announces []Notice
	started   []string // HoursStarted: "ID HOURS"
	postErr   error    // returned (once) by the next PostNotice
	inFlight  int
	maxFlight int
	seq       int
	postDelay time.Duration
	// onPost runs at the start of PostNotice, without the fake's lock.
	onPost func(n Notice)
}

func (f *fakeNotifier) PostNotice(_ context.Context, n Notice) (string, string, error) {
	if f.onPost != nil {
		f.onPost(n)
	}
	f.mu.Lock()
	f.inFlight++
	f.maxFlight = max(f.maxFlight, f.inFlight)
	delay := f.postDelay
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	if err := f.postErr; err != nil {
		f.postErr = nil
		return "", "", err
	}
	f.posts = append(f.posts, n)
	f.seq++
	ch := n.RequestChannel
	if ch == "" {
		ch = "D" + n.Owner
	}
	return ch, fmt.Sprintf("2000.%04d", f.seq), nil
}

func (f *fakeNotifier) UpdateNotice(_ context.Context, n Notice) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, n)
	return nil
}

func (f *fakeNotifier) Announce(_ context.Context, n Notice) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announces = append(f.announces, n)
	return nil
}

func (f *fakeNotifier) HoursStarted(_ context.Context, inst computebot.Instance, hours string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, inst.ID+" "+hours)
	return nil
}

// Started lists the HoursStarted calls: "ID HOURS".
func (f *fakeNotifier) Started() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.started)
}

func (f *fakeNotifier) Posts() []Notice {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.posts)
}

func (f *fakeNotifier) Updates() []Notice {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.updates)
}

func (f *fakeNotifier) Announces() []Notice {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.announces)
}

// fakeAuthz allows every action unless refuse (a Deny with that code) or
// err is set, and records what it was asked.
type fakeAuthz struct {
	mu     sync.Mutex
	refuse policy.RefusalCode
	err    error
	asked  []policy.Action
}

func (a *fakeAuthz) Authorize(_ context.Context, act policy.Action) (policy.Decision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := act
	if act.Instance != nil {
		inst := *act.Instance
		c.Instance = &inst
	}
	a.asked = append(a.asked, c)
	switch {
	case a.err != nil:
		return policy.Decision{Verdict: policy.Deny}, a.err
	case a.refuse != "":
		return policy.Decision{Verdict: policy.Deny, Refusal: policy.Refusal{Code: a.refuse, Action: act.Kind, Actor: act.Actor}}, nil
	}
	return policy.Decision{Verdict: policy.Allow}, nil
}

func (a *fakeAuthz) Asked() []policy.Action {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.asked)
}

// fakeObserver counts the Observer calls.
type fakeObserver struct {
	scans, scanErrs, noticed, stopped atomic.Int32
}

func (o *fakeObserver) IdleScanned(err error) {
	o.scans.Add(1)
	if err != nil {
		o.scanErrs.Add(1)
	}
}
func (o *fakeObserver) IdleNoticed() { o.noticed.Add(1) }
func (o *fakeObserver) IdleStopped() { o.stopped.Add(1) }

// memKV is an in-memory KV with the store's semantics: JSON values,
// ErrNotFound, key order in List, and Update as an optimistic
// compare-and-set. Update decodes and runs fn outside the fake's lock, so
// that concurrent updates really interleave, and stores only when the key
// has not changed since it was read; else it runs fn again. Every
// rerunEvery-th Update also runs fn a second time on purpose (as if it
// had lost a race), which proves that no caller relies on fn running once.
type memKV struct {
	mu         sync.Mutex
	data       map[string]map[string][]byte
	ver        map[string]int
	updates    int
	rerunEvery int
	reruns     atomic.Int32 // fn runs beyond the first, for any reason
}

func newMemKV() *memKV {
	return &memKV{data: map[string]map[string][]byte{}, ver: map[string]int{}, rerunEvery: 3}
}

func (m *memKV) Get(ctx context.Context, bucket, key string, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	raw, ok := m.data[bucket][key]
	if !ok {
		return fmt.Errorf("memkv: get %s/%s: %w", bucket, key, computebot.ErrNotFound)
	}
	return json.Unmarshal(raw, v)
}

func (m *memKV) Update(ctx context.Context, bucket, key string, v any, fn func(found bool) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	m.updates++
	rerun := m.rerunEvery > 0 && m.updates%m.rerunEvery == 0
	m.mu.Unlock()
	for runs := 0; ; runs++ {
		if runs > 0 {
			m.reruns.Add(1)
		}
		m.mu.Lock()
		raw, found := m.data[bucket][key]
		ver := m.ver[bucket+"/"+key]
		m.mu.Unlock()
		reflect.ValueOf(v).Elem().SetZero()
		if found {
			if err := json.Unmarshal(raw, v); err != nil {
				return err
			}
		}
		err := fn(found)
		del := errors.Is(err, computebot.ErrDeleteKey)
		if err != nil && !del {
			return err
		}
		var out []byte
		if !del {
			if out, err = json.Marshal(v); err != nil {
				return err
			}
		}
		if rerun {
			rerun = false
			continue
		}
		m.mu.Lock()
		if m.ver[bucket+"/"+key] != ver {
			m.mu.Unlock()
			continue // lost the race: decide again
		}
		m.ver[bucket+"/"+key]++
		if del {
			delete(m.data[bucket], key)
		} else {
			if m.data[bucket] == nil {
				m.data[bucket] = map[string][]byte{}
			}
			m.data[bucket][key] = out
		}
		m.mu.Unlock()
		return nil
	}
}

func (m *memKV) List(ctx context.Context, bucket string, fn func(key string, raw []byte) error) error {
	m.mu.Lock()
	b := maps.Clone(m.data[bucket])
	m.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if err := fn(k, b[k]); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// put stores a notice as is (a test's setup).
func (m *memKV) put(t testing.TB, n Notice) {
	t.Helper()
	raw, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	m.putRaw(n.InstanceID, raw)
}

func (m *memKV) putRaw(key string, raw []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data[NoticesBucket] == nil {
		m.data[NoticesBucket] = map[string][]byte{}
	}
	m.data[NoticesBucket][key] = raw
	m.ver[NoticesBucket+"/"+key]++
}

func (m *memKV) notice(t testing.TB, id string) Notice {
	t.Helper()
	var n Notice
	if err := m.Get(context.Background(), NoticesBucket, id, &n); err != nil {
		t.Fatalf("notice of %s: %v", id, err)
	}
	return n
}

func (m *memKV) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.data[NoticesBucket][id]
	return ok
}

// rig is one scheduler with its fakes.
type rig struct {
	*Scheduler
	cloud  *fakeCloud
	notes  *fakeNotifier
	authz  *fakeAuthz
	obs    *fakeObserver
	mem    *memKV
	kv     KV // the scheduler's KV when not mem
	clock  *testclock.Clock
	logs   *syncbuf.Buffer
	audits *auditLog
	prices atomic.Int32 // price look-ups
	// stopWait is the scheduler's StopWait (0: the default).
	stopWait time.Duration
	// changed records Deps.Changed's calls (owners).
	changed owners
}

// owners records owners, safe for concurrent use.
type owners struct {
	mu   sync.Mutex
	list []string
}

func (o *owners) add(owner string) {
	o.mu.Lock()
	o.list = append(o.list, owner)
	o.mu.Unlock()
}

func (o *owners) all() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.list)
}

type auditLog struct {
	mu sync.Mutex
	e  []computebot.AuditEntry
}

func (a *auditLog) add(_ context.Context, e computebot.AuditEntry) {
	a.mu.Lock()
	a.e = append(a.e, e)
	a.mu.Unlock()
}

func (a *auditLog) entries() []computebot.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.e)
}

// testConfig is the validated default idle section, scanning every 10
// minutes, without a metrics delay.
func testConfig() config.Idle {
	c := config.Default().Idle
	c.Schedule = "*/10 * * * *"
	c.MetricsDelay = 0
	return c
}

func newRig(t testing.TB, cfg config.Idle) *rig {
	t.Helper()
	r := &rig{cloud: newCloud(), notes: &fakeNotifier{}, authz: &fakeAuthz{}, obs: &fakeObserver{}, mem: newMemKV(),
		clock: testclock.New(t0), logs: &syncbuf.Buffer{}, audits: &auditLog{}}
	r.Scheduler = r.build(t, cfg)
	return r
}

// build makes a scheduler on the rig's fakes (again, for a "restart", or
// a second process on the same KV).
func (r *rig) build(t testing.TB, cfg config.Idle) *Scheduler {
	t.Helper()
	var kv KV = r.mem
	if r.kv != nil {
		kv = r.kv
	}
	s, err := New(cfg, Deps{
		Cloud: r.cloud, Notifier: r.notes, Authorizer: r.authz, KV: kv, Audit: r.audits.add,
		Prices: func(_ context.Context, typ string) (float64, bool) {
			r.prices.Add(1)
			return 0.0832, typ == "t3.large"
		},
		Logger:   slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      r.clock.Now,
		Observer: r.obs,
		StopWait: r.stopWait,
		Changed:  r.changed.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *rig) scan(t testing.TB) {
	t.Helper()
	if err := r.Scan(context.Background()); err != nil {
		t.Fatalf("Scan: %v", err)
	}
}

func (r *rig) checkDue(t testing.TB) {
	t.Helper()
	if err := r.CheckDue(context.Background()); err != nil {
		t.Fatalf("CheckDue: %v", err)
	}
}

// everySchedule is a cron.Schedule with sub-second intervals for tests.
type everySchedule time.Duration

func (e everySchedule) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

// gpuTypes are the fake's instance types with GPUs.
var gpuTypes = map[string]int32{"g5.xlarge": 1, "g4dn.xlarge": 1}

func (c *fakeCloud) InstanceType(_ context.Context, name string) (computebot.InstanceType, error) {
	return computebot.InstanceType{Name: name, GPUs: gpuTypes[name]}, nil
}
