package flow_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/reply"
)

// The in-memory fakes the flow tests run against: a recording Chat, a Cloud
// that behaves like EC2 and Lambda as far as the workflows can tell, a Store
// with the real contract, an idle scheduler and a clock. None of them calls
// into testing.T: background waits may outlive a test by a moment.

// ---------------------------------------------------------------- chat

// Chat methods, as recorded.
const (
	mPost      = "post"
	mUpdate    = "update"
	mEphemeral = "ephemeral"
	mRespond   = "respond"
	mDM        = "dm"
	mUpload    = "upload"
	mFind      = "find"
	mOpenView  = "open-view"
	mUpdView   = "update-view"
	mHome      = "publish-home"
)

// errDown is what every fake answers once the process "died" (see
// env.crash): nothing a dead process does reaches anything.
var errDown = errors.New("fake: the process is dead")

// crashed is the panic a crash unwinds the job under way with (Run
// recovers it).
type crashed struct{}

// chatCall is one call of the fake Chat.
type chatCall struct {
	Method  string
	Channel string
	Thread  string // Post, Ephemeral, Upload
	TS      string // Post: the ts returned; Update: the ts updated; FindMessage: the ts found
	User    string // Ephemeral, DM
	URL     string // Respond
	Msg     reply.Message
	// Upload.
	Filename, Title, Content string
	// FindMessage.
	Key   string
	Since time.Time
	// OpenView (Trigger), UpdateView (TS: the view ID), PublishHome (User).
	Trigger string
	View    reply.View
	At      time.Time // when the call was made, on the chat's clock
	Err     error     // what the call returned
}

// fakeChat is an in-memory Chat that records every call. Safe for
// concurrent use.
type fakeChat struct {
	mu    sync.Mutex
	calls []chatCall
	ts    int
	// now is the chat's clock: when each call was made (posts are found
	// again by it); epoch unless the env sets its own.
	now func() time.Time
	// fail, when set, decides the error of each call (nil: it works).
	fail func(c chatCall) error
	// after, when set, runs once a call is recorded, outside the lock,
	// before the call returns: it may block (a slow Slack) or crash the
	// process (a post that reached Slack but whose answer never did).
	after func(c chatCall)
	// down is the process's death (env.crash): every call fails.
	down *atomic.Bool
}

func newFakeChat() *fakeChat {
	return &fakeChat{now: func() time.Time { return epoch }, down: new(atomic.Bool)}
}

// failWith makes every call of method fail with err (nil: none fails).
func (c *fakeChat) failWith(method string, err error) {
	c.failWhen(func(call chatCall) error {
		if call.Method == method {
			return err
		}
		return nil
	})
}

func (c *fakeChat) failWhen(fn func(call chatCall) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = fn
}

// record records a call and returns the ts of a post and the injected error.
func (c *fakeChat) record(call chatCall) (string, error) {
	call, after := c.recordLocked(call)
	if after != nil {
		after(call)
	}
	return call.TS, call.Err
}

func (c *fakeChat) recordLocked(call chatCall) (chatCall, func(chatCall)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	call.At = c.now()
	switch {
	case c.down.Load():
		call.Err = errDown
	case c.fail != nil:
		call.Err = c.fail(call)
	}
	if call.Err == nil && call.Method == mPost {
		c.ts++
		call.TS = fmt.Sprintf("1700000000.%06d", c.ts)
	}
	if call.Err == nil && call.Method == mOpenView {
		c.ts++
		call.TS = fmt.Sprintf("V%06d", c.ts)
	}
	if call.Err == nil && call.Method == mFind {
		call.TS, call.Err = c.findLocked(call)
	}
	c.calls = append(c.calls, call)
	if c.down.Load() {
		return call, nil // a dead process's calls make nothing happen
	}
	return call, c.after
}

// findLocked is Slack's history as FindMessage reads it: the first
// successful post with the key in the channel (in the thread, when one is
// given; at top level otherwise), made at or after since.
func (c *fakeChat) findLocked(q chatCall) (string, error) {
	for _, p := range c.calls {
		if p.Method == mPost && p.Err == nil && p.Msg.Key == q.Key && p.Channel == q.Channel &&
			p.Thread == q.Thread && !p.At.Before(q.Since) {
			return p.TS, nil
		}
	}
	return "", fmt.Errorf("fake chat: message %s in %s: %w", q.Key, q.Channel, computebot.ErrNotFound)
}

// setAfter sets the hook run after each recorded call (nil: none).
func (c *fakeChat) setAfter(fn func(call chatCall)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.after = fn
}

func (c *fakeChat) Post(_ context.Context, channel, threadTS string, m reply.Message) (string, error) {
	return c.record(chatCall{Method: mPost, Channel: channel, Thread: threadTS, Msg: m})
}

func (c *fakeChat) Update(_ context.Context, channel, ts string, m reply.Message) error {
	_, err := c.record(chatCall{Method: mUpdate, Channel: channel, TS: ts, Msg: m})
	return err
}

func (c *fakeChat) Ephemeral(_ context.Context, channel, user, threadTS string, m reply.Message) error {
	_, err := c.record(chatCall{Method: mEphemeral, Channel: channel, User: user, Thread: threadTS, Msg: m})
	return err
}

func (c *fakeChat) Respond(_ context.Context, responseURL string, m reply.Message) error {
	_, err := c.record(chatCall{Method: mRespond, URL: responseURL, Msg: m})
	return err
}

func (c *fakeChat) DM(_ context.Context, user string) (string, error) {
	if _, err := c.record(chatCall{Method: mDM, User: user}); err != nil {
		return "", err
	}
	return "D" + user, nil
}

func (c *fakeChat) Upload(_ context.Context, channel, threadTS, filename, title, content string) error {
	_, err := c.record(chatCall{Method: mUpload, Channel: channel, Thread: threadTS, Filename: filename, Title: title, Content: content})
	return err
}

func (c *fakeChat) OpenView(_ context.Context, trigger string, v reply.View) (string, string, error) {
	call, err := c.record(chatCall{Method: mOpenView, Trigger: trigger, View: v})
	return call, "h1", err
}

func (c *fakeChat) UpdateView(_ context.Context, id, hash string, v reply.View) error {
	_, err := c.record(chatCall{Method: mUpdView, TS: id, View: v})
	return err
}

func (c *fakeChat) PublishHome(_ context.Context, user string, v reply.View) error {
	_, err := c.record(chatCall{Method: mHome, User: user, View: v})
	return err
}

// views are the calls of method (mOpenView, mUpdView, mHome) made.
func (c *fakeChat) views(method string) []chatCall {
	return c.where(func(call chatCall) bool { return call.Method == method })
}

func (c *fakeChat) FindMessage(_ context.Context, channel, threadTS, key string, since time.Time) (string, error) {
	return c.record(chatCall{Method: mFind, Channel: channel, Thread: threadTS, Key: key, Since: since})
}

// finds are the FindMessage calls made, found or not.
func (c *fakeChat) finds() []chatCall {
	var out []chatCall
	for _, call := range c.all() {
		if call.Method == mFind {
			out = append(out, call)
		}
	}
	return out
}

// keyed are the successful posts with the key.
func (c *fakeChat) keyed(key string) []chatCall {
	return c.where(func(call chatCall) bool { return call.Method == mPost && call.Msg.Key == key })
}

// all returns every call so far.
func (c *fakeChat) all() []chatCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// where returns the successful calls matching keep.
func (c *fakeChat) where(keep func(chatCall) bool) []chatCall {
	var out []chatCall
	for _, call := range c.all() {
		if call.Err == nil && keep(call) {
			out = append(out, call)
		}
	}
	return out
}

// posts are the successful posts in channel (any channel when ""), in
// thread (top level when thread is "").
func (c *fakeChat) posts(channel, thread string) []chatCall {
	return c.where(func(call chatCall) bool {
		return call.Method == mPost && (channel == "" || call.Channel == channel) && call.Thread == thread
	})
}

// allPosts are every successful post.
func (c *fakeChat) allPosts() []chatCall {
	return c.where(func(call chatCall) bool { return call.Method == mPost })
}

// updates are the successful updates of the message ts.
func (c *fakeChat) updates(ts string) []chatCall {
	return c.where(func(call chatCall) bool { return call.Method == mUpdate && call.TS == ts })
}

// private are the private answers to o: through its response URL, or
// ephemeral to its user.
func (c *fakeChat) private(o flow.Origin) []chatCall {
	return c.where(func(call chatCall) bool {
		if o.ResponseURL != "" {
			return call.Method == mRespond && call.URL == o.ResponseURL
		}
		return call.Method == mEphemeral && call.User == o.User
	})
}

// texts are the plain words of each call's message.
func texts(calls []chatCall) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = words(c.Msg)
	}
	return out
}

// words is what a reader sees of a message: its fallback text and every
// block's text and fields, with mentions and dates in plain form.
func words(m reply.Message) string {
	parts := []string{m.Text}
	for _, b := range m.Blocks {
		if b.Text != "" {
			parts = append(parts, b.Text)
		}
		parts = append(parts, b.Fields...)
		for _, btn := range b.Buttons {
			parts = append(parts, "["+btn.Text+"]")
		}
	}
	return reply.PlainText(strings.Join(parts, "\n"))
}

// ---------------------------------------------------------------- cloud

// Cloud methods, as recorded and as keys of error injection.
const (
	cInstanceType     = "InstanceType"
	cResolveImage     = "ResolveImage"
	cHourlyPrice      = "HourlyPrice"
	cLaunch           = "Launch"
	cInstance         = "Instance"
	cManagedInstances = "ManagedInstances"
	cStop             = "Stop"
	cHibernate        = "Hibernate"
	cVCPUQuota        = "VCPUQuota"
	cStart            = "Start"
	cTerminate        = "Terminate"
	cTag              = "Tag"
	cListFunctions    = "ListFunctions"
	cGetFunction      = "GetFunction"
	cInvoke           = "Invoke"
)

// lostReply is an injected error for a call that did happen in AWS but
// whose answer never arrived (a timeout after the request was served).
type lostReply struct{ err error }

func (l lostReply) Error() string { return "lost reply: " + l.err.Error() }

// awsErr is a cloud error with a code and a message for users.
func awsErr(code, msg string, transient bool) error {
	return &computebot.Error{Code: code, Message: msg, Transient: transient, Err: errors.New("fake aws: " + code)}
}

// transition is a state change that completes on a later describe.
type transition struct {
	to    string
	after int // describes still showing the current state; <0 never completes
}

// fakeCloud is an in-memory computebot.Cloud. Instances move through EC2's
// states deterministically: each transitional state (pending, stopping,
// shutting-down) shows for settleAfter describes and then completes (0:
// the next describe shows the final state; <0: never). Safe for concurrent
// use.
type fakeCloud struct {
	mu   sync.Mutex
	now  func() time.Time
	seq  int
	inst map[string]*computebot.Instance
	move map[string]*transition
	// byToken is EC2's ClientToken idempotency: token → instance ID.
	byToken map[string]string
	// launches records the LaunchSpec of every Launch call.
	launches []computebot.LaunchSpec
	// describes counts Instance calls per instance ID.
	describes map[string]int
	calls     []string

	settleAfter int    // see the type comment
	launchTo    string // the state a launch settles in; default running

	types     map[string]computebot.InstanceType
	quotas    map[string]computebot.VCPUQuota // by instance type; none: no quota (ErrNotFound)
	images    map[string]computebot.Image
	prices    map[string]float64
	functions map[string]computebot.Function
	// invoke answers Invoke; default: status 200 with {"ok": true}.
	invoke      func(ctx context.Context, in computebot.Invocation) (computebot.InvocationResult, error)
	invocations []computebot.Invocation

	// queued errors per method, one per call, then sticky ones.
	queued map[string][]error
	sticky map[string]error
	panics map[string]bool
	// crashAfter makes Launch panic after the instance exists: the
	// process died between RunInstances and recording its answer.
	crashAfter bool
	// onCall runs at the start of every call, with the cloud locked (it
	// must not call the cloud): a hook to make something else happen
	// meanwhile.
	onCall func(method, arg string)
	// down is the process's death (env.crash): every call fails, unseen.
	down *atomic.Bool
}

func newFakeCloud(now func() time.Time) *fakeCloud {
	return &fakeCloud{
		now: now, inst: map[string]*computebot.Instance{}, move: map[string]*transition{},
		byToken: map[string]string{}, describes: map[string]int{},
		launchTo: computebot.InstanceRunning,
		types: map[string]computebot.InstanceType{
			"t2.micro":  {Name: "t2.micro", VCPUs: 1, MemoryMiB: 1024},
			"t3.small":  {Name: "t3.small", VCPUs: 2, MemoryMiB: 2048},
			"t3.medium": {Name: "t3.medium", VCPUs: 2, MemoryMiB: 4096},
		},
		images: map[string]computebot.Image{
			testAMI: {ID: testAMI, Name: "ubuntu-noble-24.04-amd64-server", RootDeviceName: "/dev/sda1"},
		},
		quotas:    map[string]computebot.VCPUQuota{},
		prices:    map[string]float64{"t2.micro": 0.0116, "t3.medium": 0.0416},
		functions: map[string]computebot.Function{},
		queued:    map[string][]error{}, sticky: map[string]error{}, panics: map[string]bool{},
		down: new(atomic.Bool),
	}
}

// failNext queues errors for the next calls of method, one per call.
func (c *fakeCloud) failNext(method string, errs ...error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queued[method] = append(c.queued[method], errs...)
}

// failAlways makes every call of method fail with err (nil: none).
func (c *fakeCloud) failAlways(method string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sticky[method] = err
}

func (c *fakeCloud) panicOn(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.panics[method] = true
}

// calm undoes panicOn and crashAfter.
func (c *fakeCloud) calm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.panics = map[string]bool{}
	c.crashAfter = false
}

func (c *fakeCloud) setCrashAfter() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.crashAfter = true
}

// settle makes the instance's pending change complete on the next
// describe, into state to.
func (c *fakeCloud) settle(id, to string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.move[id] = &transition{to: to}
}

func (c *fakeCloud) setOnCall(fn func(method, arg string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onCall = fn
}

// set changes how new instances and changes behave (see fakeCloud).
func (c *fakeCloud) set(settleAfter int, launchTo string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleAfter, c.launchTo = settleAfter, launchTo
}

// begin records a call and returns its injected error. Called with c.mu held.
func (c *fakeCloud) begin(method, arg string) error {
	if c.down.Load() {
		return errDown
	}
	c.calls = append(c.calls, strings.TrimSpace(method+" "+arg))
	if c.onCall != nil {
		c.onCall(method, arg)
	}
	if c.panics[method] {
		panic("fake cloud: " + method + " panicked")
	}
	if q := c.queued[method]; len(q) > 0 {
		c.queued[method] = q[1:]
		return q[0]
	}
	return c.sticky[method]
}

// callCount counts the calls of method.
func (c *fakeCloud) callCount(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, call := range c.calls {
		if call == method || strings.HasPrefix(call, method+" ") {
			n++
		}
	}
	return n
}

// launchSpecs returns the spec of every Launch call.
func (c *fakeCloud) launchSpecs() []computebot.LaunchSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.launches)
}

// instanceCount counts the instances that exist (in any state).
func (c *fakeCloud) instanceCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.inst)
}

func (c *fakeCloud) describeCount(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.describes[id]
}

// add puts an instance in the cloud as it is (the test's setup).
func (c *fakeCloud) add(in computebot.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in.Tags = maps.Clone(in.Tags)
	c.inst[in.ID] = &in
}

// get returns an instance as stored, without describing it.
func (c *fakeCloud) get(id string) (computebot.Instance, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.inst[id]
	if !ok {
		return computebot.Instance{}, false
	}
	return copyInstance(in), true
}

func copyInstance(in *computebot.Instance) computebot.Instance {
	out := *in
	out.Tags = maps.Clone(in.Tags)
	return out
}

func (c *fakeCloud) addFunction(fns ...computebot.Function) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fn := range fns {
		c.functions[fn.Name] = fn
	}
}

func (c *fakeCloud) InstanceType(_ context.Context, name string) (computebot.InstanceType, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(cInstanceType, name); err != nil {
		return computebot.InstanceType{}, err
	}
	it, ok := c.types[name]
	if !ok {
		return computebot.InstanceType{}, awsErr("InvalidInstanceType", "EC2 does not offer "+name+" in this region.", false)
	}
	return it, nil
}

func (c *fakeCloud) ResolveImage(_ context.Context, ref string) (computebot.Image, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(cResolveImage, ref); err != nil {
		return computebot.Image{}, err
	}
	img, ok := c.images[ref]
	if !ok {
		return computebot.Image{}, awsErr("InvalidAMIID.NotFound", "the AMI does not exist.", false)
	}
	return img, nil
}

func (c *fakeCloud) HourlyPrice(_ context.Context, instanceType string) (float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(cHourlyPrice, instanceType); err != nil {
		return 0, err
	}
	p, ok := c.prices[instanceType]
	if !ok {
		return 0, fmt.Errorf("fake pricing %s: %w", instanceType, computebot.ErrPriceUnknown)
	}
	return p, nil
}

func (c *fakeCloud) Launch(_ context.Context, spec computebot.LaunchSpec) (computebot.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down.Load() {
		return computebot.Instance{}, errDown
	}
	spec.Tags = maps.Clone(spec.Tags)
	spec.SecurityGroupIDs = slices.Clone(spec.SecurityGroupIDs)
	c.launches = append(c.launches, spec)
	err := c.begin(cLaunch, spec.ClientToken)
	var lost lostReply
	if err != nil && !errors.As(err, &lost) {
		return computebot.Instance{}, err
	}
	in := c.launchLocked(spec)
	if c.crashAfter {
		panic("fake cloud: the process died right after RunInstances")
	}
	if err != nil {
		return computebot.Instance{}, lost.err
	}
	return in, nil
}

// launchLocked is RunInstances with EC2's idempotency: a ClientToken seen
// before returns the instance it created.
func (c *fakeCloud) launchLocked(spec computebot.LaunchSpec) computebot.Instance {
	if id, ok := c.byToken[spec.ClientToken]; ok && spec.ClientToken != "" {
		return copyInstance(c.inst[id])
	}
	c.seq++
	id := fmt.Sprintf("i-%017x", 0xabc0000+c.seq)
	in := &computebot.Instance{
		ID: id, Type: spec.InstanceType, State: computebot.InstancePending, ImageID: spec.ImageID,
		PrivateIP: fmt.Sprintf("10.0.0.%d", c.seq), LaunchTime: c.now(), Tags: maps.Clone(spec.Tags),
		Hibernation: spec.Hibernate,
	}
	c.inst[id] = in
	c.move[id] = &transition{to: c.launchTo, after: c.settleAfter}
	c.byToken[spec.ClientToken] = id
	return copyInstance(in)
}

func (c *fakeCloud) Instance(_ context.Context, id string) (computebot.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.describes[id]++
	if err := c.begin(cInstance, id); err != nil {
		return computebot.Instance{}, err
	}
	in, ok := c.inst[id]
	if !ok {
		return computebot.Instance{}, fmt.Errorf("fake ec2: instance %s: %w", id, computebot.ErrNotFound)
	}
	if mv := c.move[id]; mv != nil {
		switch {
		case mv.after < 0:
		case mv.after > 0:
			mv.after--
		default:
			in.State = mv.to
			delete(c.move, id)
			if in.State == computebot.InstanceRunning && in.PublicIP == "" {
				c.seq++
				in.PublicIP = fmt.Sprintf("54.0.0.%d", c.seq)
			}
		}
	}
	return copyInstance(in), nil
}

func (c *fakeCloud) ManagedInstances(_ context.Context, f computebot.InstanceFilter) ([]computebot.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(cManagedInstances, fmt.Sprintf("owner=%s request=%s states=%v", f.Owner, f.Request, f.States)); err != nil {
		return nil, err
	}
	var out []computebot.Instance
	for _, in := range c.inst {
		if in.Tags[computebot.TagManaged] != "true" ||
			(f.Owner != "" && in.Tags[computebot.TagOwner] != f.Owner) ||
			(f.Request != "" && in.Tags[computebot.TagRequest] != f.Request) ||
			(len(f.States) > 0 && !slices.Contains(f.States, in.State)) {
			continue
		}
		out = append(out, copyInstance(in))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// change starts a state change: the instance shows via at once and to on
// a later describe.
func (c *fakeCloud) change(method, id, via, to string) (computebot.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(method, id); err != nil {
		return computebot.Instance{}, err
	}
	in, ok := c.inst[id]
	if !ok {
		return computebot.Instance{}, fmt.Errorf("fake ec2: instance %s: %w", id, computebot.ErrNotFound)
	}
	in.State = via
	if via != computebot.InstanceRunning {
		in.PublicIP = ""
	}
	c.move[id] = &transition{to: to, after: c.settleAfter}
	return copyInstance(in), nil
}

func (c *fakeCloud) Stop(_ context.Context, id string) (computebot.Instance, error) {
	return c.change(cStop, id, computebot.InstanceStopping, computebot.InstanceStopped)
}

func (c *fakeCloud) Hibernate(_ context.Context, id string) (computebot.Instance, error) {
	return c.change(cHibernate, id, computebot.InstanceStopping, computebot.InstanceStopped)
}

func (c *fakeCloud) VCPUQuota(_ context.Context, instanceType string) (computebot.VCPUQuota, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(cVCPUQuota, instanceType); err != nil {
		return computebot.VCPUQuota{}, err
	}
	q, ok := c.quotas[instanceType]
	if !ok {
		return computebot.VCPUQuota{}, fmt.Errorf("fake quotas %s: %w", instanceType, computebot.ErrNotFound)
	}
	return q, nil
}

func (c *fakeCloud) Start(_ context.Context, id string) (computebot.Instance, error) {
	return c.change(cStart, id, computebot.InstancePending, computebot.InstanceRunning)
}

func (c *fakeCloud) Terminate(_ context.Context, id string) (computebot.Instance, error) {
	return c.change(cTerminate, id, computebot.InstanceShuttingDown, computebot.InstanceTerminated)
}

func (c *fakeCloud) Tag(_ context.Context, id string, tags map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(cTag, id); err != nil {
		return err
	}
	in, ok := c.inst[id]
	if !ok {
		return fmt.Errorf("fake ec2: instance %s: %w", id, computebot.ErrNotFound)
	}
	if in.Tags == nil {
		in.Tags = map[string]string{}
	}
	maps.Copy(in.Tags, tags)
	return nil
}

func (c *fakeCloud) ListFunctions(context.Context) ([]computebot.Function, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(cListFunctions, ""); err != nil {
		return nil, err
	}
	out := slices.Collect(maps.Values(c.functions))
	// Lambda's own order is not the bot's: reverse-sorted here.
	sort.Slice(out, func(i, j int) bool { return out[i].Name > out[j].Name })
	return out, nil
}

func (c *fakeCloud) GetFunction(_ context.Context, name string) (computebot.Function, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(cGetFunction, name); err != nil {
		return computebot.Function{}, err
	}
	fn, ok := c.functions[name]
	if !ok {
		return computebot.Function{}, fmt.Errorf("fake lambda: function %s: %w", name, computebot.ErrNotFound)
	}
	return fn, nil
}

func (c *fakeCloud) Invoke(ctx context.Context, in computebot.Invocation) (computebot.InvocationResult, error) {
	if c.down.Load() {
		return computebot.InvocationResult{}, errDown
	}
	c.mu.Lock()
	in.Payload = slices.Clone(in.Payload)
	c.invocations = append(c.invocations, in)
	err := c.begin(cInvoke, in.Function)
	invoke := c.invoke
	c.mu.Unlock()
	if err != nil {
		return computebot.InvocationResult{}, err
	}
	if invoke != nil {
		return invoke(ctx, in)
	}
	return computebot.InvocationResult{StatusCode: 200, Payload: []byte(`{"ok":true}`), RequestID: "req-1"}, nil
}

func (c *fakeCloud) setInvoke(fn func(ctx context.Context, in computebot.Invocation) (computebot.InvocationResult, error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invoke = fn
}

func (c *fakeCloud) invoked() []computebot.Invocation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.invocations)
}

// ---------------------------------------------------------------- store

// fakeStore is an in-memory computebot.Store with the real contract:
// Version 1 on create, ErrExists, UpdateRequest and UpdateIntent as
// compare-and-sets whose fn may run more than once (it does, on every
// twiceEvery-th call of each), copies in and out, lists oldest first.
// Safe for concurrent use.
type fakeStore struct {
	mu      sync.Mutex
	reqs    map[string]*computebot.Request
	created []string
	audit   []computebot.AuditEntry
	// history is every saved state of each request, in order.
	history map[string][]computebot.RequestState
	intents map[string]*computebot.Intent
	// now stamps what the store stamps (times left zero, UpdatedAt);
	// time.Now unless the env sets its clock.
	now func() time.Time

	updates       int
	intentUpdates int
	gated         map[string]int // calls per method, failed or not
	twiceEvery    int            // UpdateRequest (UpdateIntent) runs fn twice on every Nth call; 0: never
	fnRuns        int

	// afterUpdate runs after every successful update, outside the lock (a
	// concurrent writer in another process, say).
	afterUpdate func(r *computebot.Request)
	// refuseWrite, when it returns an error, makes the write of the
	// request fn produced fail with it (nothing saved).
	refuseWrite func(r *computebot.Request) error
	// afterIntentUpdate runs after every successful intent update, outside
	// the lock; onIntentRead at every Intent call; onAudit after every
	// audit entry is written.
	afterIntentUpdate func(in *computebot.Intent)
	onIntentRead      func(id string)
	onAudit           func(e computebot.AuditEntry)

	queued map[string][]error
	sticky map[string]error
	// down is the process's death (env.crash): every call fails.
	down *atomic.Bool
}

// Store methods, as keys of error injection.
const (
	sCreate       = "CreateRequest"
	sRequest      = "Request"
	sUpdate       = "UpdateRequest"
	sRequests     = "Requests"
	sAudit        = "Audit"
	sAuditSince   = "AuditSince"
	sAccept       = "AcceptIntent"
	sIntent       = "Intent"
	sUpdateIntent = "UpdateIntent"
	sUnfinished   = "UnfinishedIntents"
	sPrune        = "PruneIntents"
)

func newFakeStore() *fakeStore {
	return &fakeStore{reqs: map[string]*computebot.Request{}, history: map[string][]computebot.RequestState{},
		intents: map[string]*computebot.Intent{}, now: time.Now,
		twiceEvery: 3, queued: map[string][]error{}, sticky: map[string]error{}, down: new(atomic.Bool)}
}

func (s *fakeStore) failNext(method string, errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queued[method] = append(s.queued[method], errs...)
}

func (s *fakeStore) failAlways(method string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sticky[method] = err
}

// injected returns the injected error of a call. Called with s.mu held.
func (s *fakeStore) injected(method string) error {
	if q := s.queued[method]; len(q) > 0 {
		s.queued[method] = q[1:]
		return q[0]
	}
	return s.sticky[method]
}

// gate is what every call goes through first, with s.mu held: like the
// real store, a call fails once its context is done; a dead process's
// calls fail; then the injected errors.
func (s *fakeStore) gate(ctx context.Context, method string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake store: %s: %w", method, err)
	}
	if s.gated == nil {
		s.gated = map[string]int{}
	}
	s.gated[method]++
	if s.down.Load() {
		return errDown
	}
	return s.injected(method)
}

// callCount is how many times method was called.
func (s *fakeStore) callCount(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gated[method]
}

func copyRequest(r *computebot.Request) *computebot.Request {
	out := *r
	if r.Launch != nil {
		l := *r.Launch
		out.Launch = &l
	}
	if r.Lambda != nil {
		l := *r.Lambda
		out.Lambda = &l
	}
	return &out
}

func (s *fakeStore) CreateRequest(ctx context.Context, r *computebot.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gate(ctx, sCreate); err != nil {
		return err
	}
	if r.ID == "" {
		return errors.New("fake store: empty request ID")
	}
	if _, ok := s.reqs[r.ID]; ok {
		return fmt.Errorf("fake store: create request %s: %w", r.ID, computebot.ErrExists)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now()
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	r.Version = 1
	s.reqs[r.ID] = copyRequest(r)
	s.created = append(s.created, r.ID)
	s.history[r.ID] = []computebot.RequestState{r.State}
	return nil
}

func (s *fakeStore) Request(ctx context.Context, id string) (*computebot.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gate(ctx, sRequest); err != nil {
		return nil, err
	}
	r, ok := s.reqs[id]
	if !ok {
		return nil, fmt.Errorf("fake store: request %s: %w", id, computebot.ErrNotFound)
	}
	return copyRequest(r), nil
}

func (s *fakeStore) UpdateRequest(ctx context.Context, id string, fn func(*computebot.Request) error) (*computebot.Request, error) {
	s.mu.Lock()
	if err := s.gate(ctx, sUpdate); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.updates++
	twice := s.twiceEvery > 0 && s.updates%s.twiceEvery == 0
	s.mu.Unlock()
	for {
		s.mu.Lock()
		stored, ok := s.reqs[id]
		if !ok {
			s.mu.Unlock()
			return nil, fmt.Errorf("fake store: update request %s: %w", id, computebot.ErrNotFound)
		}
		read := copyRequest(stored)
		s.mu.Unlock()

		cur := copyRequest(read)
		s.countRun()
		if err := fn(cur); err != nil {
			return nil, err
		}
		if twice {
			// As if another writer won the race: decide again, afresh.
			twice = false
			cur = copyRequest(read)
			s.countRun()
			if err := fn(cur); err != nil {
				return nil, err
			}
		}
		if cur.ID != id {
			return nil, fmt.Errorf("fake store: fn changed the request ID to %q", cur.ID)
		}

		s.mu.Lock()
		if s.down.Load() {
			s.mu.Unlock()
			return nil, errDown
		}
		if s.refuseWrite != nil {
			if err := s.refuseWrite(copyRequest(cur)); err != nil {
				s.mu.Unlock()
				return nil, err
			}
		}
		if s.reqs[id].Version != read.Version {
			s.mu.Unlock()
			continue // lost the race: read and decide again
		}
		cur.Version = read.Version + 1
		cur.UpdatedAt = s.now()
		s.reqs[id] = copyRequest(cur)
		if h := s.history[id]; len(h) == 0 || h[len(h)-1] != cur.State {
			s.history[id] = append(h, cur.State)
		}
		hook := s.afterUpdate
		s.mu.Unlock()
		if hook != nil {
			hook(copyRequest(cur))
		}
		return copyRequest(cur), nil
	}
}

// fnStats returns how often UpdateRequest ran fn, and how often it was called.
func (s *fakeStore) fnStats() (runs, updates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fnRuns, s.updates
}

func (s *fakeStore) countRun() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fnRuns++
}

func (s *fakeStore) Requests(ctx context.Context, states ...computebot.RequestState) ([]*computebot.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gate(ctx, sRequests); err != nil {
		return nil, err
	}
	var out []*computebot.Request
	for _, r := range s.reqs {
		if len(states) == 0 || slices.Contains(states, r.State) {
			out = append(out, copyRequest(r))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (s *fakeStore) RequestByMessage(ctx context.Context, channel, ts string) (*computebot.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gate(ctx, sRequests); err != nil {
		return nil, err
	}
	for _, r := range s.reqs {
		if ts != "" && r.ChannelID == channel && r.MessageTS == ts {
			return copyRequest(r), nil
		}
	}
	return nil, computebot.ErrNotFound
}

func (s *fakeStore) Audit(ctx context.Context, e computebot.AuditEntry) error {
	s.mu.Lock()
	if err := s.gate(ctx, sAudit); err != nil {
		s.mu.Unlock()
		return err
	}
	s.audit = append(s.audit, e)
	hook := s.onAudit
	s.mu.Unlock()
	if hook != nil {
		hook(e)
	}
	return nil
}

func (s *fakeStore) AuditLog(context.Context) ([]computebot.AuditEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.audit), nil
}

// AuditSince returns the entries at or after since, in the order written
// (the flow's clock is monotonic, so oldest first).
func (s *fakeStore) AuditSince(ctx context.Context, since time.Time) ([]computebot.AuditEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gate(ctx, sAuditSince); err != nil {
		return nil, err
	}
	var out []computebot.AuditEntry
	for _, e := range s.audit {
		if !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *fakeStore) Close() error { return nil }

// AcceptIntent stores in with Version 1 and its zero times stamped (on in
// too); an intent with in.ID stored already is returned, with an error
// wrapping ErrExists.
func (s *fakeStore) AcceptIntent(ctx context.Context, in *computebot.Intent) (*computebot.Intent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gate(ctx, sAccept); err != nil {
		return nil, err
	}
	if in.ID == "" {
		return nil, errors.New("fake store: empty intent ID")
	}
	if cur, ok := s.intents[in.ID]; ok {
		stored := *cur
		return &stored, fmt.Errorf("fake store: create intent %s: %w", in.ID, computebot.ErrExists)
	}
	now := s.now()
	if in.CreatedAt.IsZero() {
		in.CreatedAt = now
	}
	if in.UpdatedAt.IsZero() {
		in.UpdatedAt = now
	}
	in.Version = 1
	stored := *in
	s.intents[in.ID] = &stored
	return in, nil
}

func (s *fakeStore) Intent(ctx context.Context, id string) (*computebot.Intent, error) {
	s.mu.Lock()
	hook := s.onIntentRead
	err := s.gate(ctx, sIntent)
	cur, ok := s.intents[id]
	var out computebot.Intent
	if ok {
		out = *cur
	}
	s.mu.Unlock()
	if hook != nil {
		hook(id)
	}
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("fake store: intent %s: %w", id, computebot.ErrNotFound)
	}
	return &out, nil
}

func (s *fakeStore) UpdateIntent(ctx context.Context, id string, fn func(*computebot.Intent) error) (*computebot.Intent, error) {
	s.mu.Lock()
	if err := s.gate(ctx, sUpdateIntent); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.intentUpdates++
	twice := s.twiceEvery > 0 && s.intentUpdates%s.twiceEvery == 0
	s.mu.Unlock()
	for {
		s.mu.Lock()
		stored, ok := s.intents[id]
		if !ok {
			s.mu.Unlock()
			return nil, fmt.Errorf("fake store: update intent %s: %w", id, computebot.ErrNotFound)
		}
		read := *stored
		s.mu.Unlock()

		cur := read
		if err := fn(&cur); err != nil {
			return nil, err
		}
		if twice {
			twice = false
			cur = read
			if err := fn(&cur); err != nil {
				return nil, err
			}
		}
		if cur.ID != id {
			return nil, fmt.Errorf("fake store: fn changed the intent ID to %q", cur.ID)
		}
		s.mu.Lock()
		if s.down.Load() {
			s.mu.Unlock()
			return nil, errDown
		}
		if s.intents[id].Version != read.Version {
			s.mu.Unlock()
			continue
		}
		cur.Version = read.Version + 1
		cur.UpdatedAt = s.now()
		saved := cur
		s.intents[id] = &saved
		hook := s.afterIntentUpdate
		s.mu.Unlock()
		if hook != nil {
			c := cur
			hook(&c)
		}
		return &cur, nil
	}
}

func (s *fakeStore) UnfinishedIntents(ctx context.Context) ([]*computebot.Intent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gate(ctx, sUnfinished); err != nil {
		return nil, err
	}
	var out []*computebot.Intent
	for _, in := range s.intents {
		if in.State != computebot.IntentDone {
			c := *in
			out = append(out, &c)
		}
	}
	slices.SortFunc(out, func(a, b *computebot.Intent) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (s *fakeStore) PruneIntents(ctx context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gate(ctx, sPrune); err != nil {
		return 0, err
	}
	n := 0
	for id, in := range s.intents {
		if in.State == computebot.IntentDone && in.UpdatedAt.Before(before) {
			delete(s.intents, id)
			n++
		}
	}
	return n, nil
}

// intent returns the stored intent, or nil.
func (s *fakeStore) intent(id string) *computebot.Intent {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.intents[id]
	if !ok {
		return nil
	}
	c := *in
	return &c
}

// allIntents returns every stored intent, oldest first.
func (s *fakeStore) allIntents() []*computebot.Intent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*computebot.Intent
	for _, in := range s.intents {
		c := *in
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *computebot.Intent) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// unfinished returns the IDs of the intents not done, oldest first.
func (s *fakeStore) unfinished() []string {
	var ids []string
	for _, in := range s.allIntents() {
		if in.State != computebot.IntentDone {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

// put stores r as it is (the test's setup: a request a previous process
// left behind), Version 1.
func (s *fakeStore) put(r *computebot.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r = copyRequest(r)
	r.Version = 1
	s.reqs[r.ID] = r
	s.created = append(s.created, r.ID)
	s.history[r.ID] = []computebot.RequestState{r.State}
}

// get returns the stored request, or nil.
func (s *fakeStore) get(id string) *computebot.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reqs[id]
	if !ok {
		return nil
	}
	return copyRequest(r)
}

// last returns the most recently created request, or nil.
func (s *fakeStore) last() *computebot.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.created) == 0 {
		return nil
	}
	return copyRequest(s.reqs[s.created[len(s.created)-1]])
}

func (s *fakeStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func (s *fakeStore) states(id string) []computebot.RequestState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.history[id])
}

func (s *fakeStore) auditLog() []computebot.AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.audit)
}

// failWrites makes the writes that would leave a request matching match
// fail (nil: none).
func (s *fakeStore) failWrites(match func(r *computebot.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if match == nil {
		s.refuseWrite = nil
		return
	}
	s.refuseWrite = func(r *computebot.Request) error {
		if match(r) {
			return errors.New("fake store: disk full")
		}
		return nil
	}
}

func (s *fakeStore) setAfterUpdate(fn func(r *computebot.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterUpdate = fn
}

func (s *fakeStore) setAfterIntentUpdate(fn func(in *computebot.Intent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterIntentUpdate = fn
}

func (s *fakeStore) setOnIntentRead(fn func(id string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onIntentRead = fn
}

func (s *fakeStore) setOnAudit(fn func(e computebot.AuditEntry)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onAudit = fn
}

// ---------------------------------------------------------------- idle

// fakeIdle is the idle scheduler as the notice buttons see it: one notice
// (of whichever instance it names), which Keep and Stop now settle as the
// scheduler does.
type fakeIdle struct {
	mu        sync.Mutex
	calls     []string // "keep i-… UANA", "stop-now i-… UANA", "report"
	notice    idle.Notice
	err       error // what Keep and StopNow answer (nil: they act)
	noticeErr error // what Notice answers
	report    idle.Report
	reportErr error
	// after runs once Keep or StopNow acted (or failed), before it returns.
	after func(call string)
	down  *atomic.Bool
}

func (s *fakeIdle) record(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call)
}

func (s *fakeIdle) Notice(_ context.Context, instanceID string) (idle.Notice, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.isDown():
		return idle.Notice{}, errDown
	case s.noticeErr != nil:
		return idle.Notice{}, s.noticeErr
	case s.notice.InstanceID != instanceID:
		return idle.Notice{}, &idle.NoNoticeError{InstanceID: instanceID}
	}
	return s.notice, nil
}

func (s *fakeIdle) isDown() bool { return s.down != nil && s.down.Load() }

// act is Keep or Stop now: recorded, and the notice settled unless an
// error is injected.
func (s *fakeIdle) act(call, instanceID string, settle func(n *idle.Notice)) (idle.Notice, error) {
	s.mu.Lock()
	if s.isDown() {
		s.mu.Unlock()
		return idle.Notice{}, errDown
	}
	s.calls = append(s.calls, call)
	err := s.err
	if err == nil && s.notice.InstanceID == instanceID {
		settle(&s.notice)
	}
	n, after := s.notice, s.after
	s.mu.Unlock()
	if after != nil {
		after(call)
	}
	return n, err
}

func (s *fakeIdle) Keep(_ context.Context, instanceID, actor string) (idle.Notice, error) {
	return s.act("keep "+instanceID+" "+actor, instanceID, func(n *idle.Notice) {
		n.State, n.How, n.SettledBy = idle.StateKept, idle.SettledKept, actor
	})
}

func (s *fakeIdle) StopNow(_ context.Context, instanceID, actor string) (idle.Notice, error) {
	return s.act("stop-now "+instanceID+" "+actor, instanceID, func(n *idle.Notice) {
		n.State, n.How, n.SettledBy = idle.StateStopping, idle.SettledStopNow, actor
	})
}

func (s *fakeIdle) Report(context.Context) (idle.Report, error) {
	s.record("report")
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.report, s.reportErr
}

func (s *fakeIdle) recorded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *fakeIdle) current() idle.Notice {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notice
}

// ---------------------------------------------------------------- groups, clock

// fakeGroups resolves Slack user groups (policy.GroupMembers).
type fakeGroups struct {
	mu      sync.Mutex
	members map[string][]string
	err     error
}

func (g *fakeGroups) UserGroupMembers(_ context.Context, group string) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return nil, g.err
	}
	return slices.Clone(g.members[group]), nil
}
