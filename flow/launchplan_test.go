package flow_test

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/reply"
)

// noCapacity is EC2's InsufficientInstanceCapacity as package aws maps it.
func noCapacity(instanceType string) error {
	return &computebot.Error{Code: "InsufficientInstanceCapacity",
		Message: "AWS has no spare " + instanceType + " capacity in this Availability Zone right now.",
		Err:     fmt.Errorf("%w: fake ec2", computebot.ErrNoCapacity)}
}

var standardQuota = computebot.VCPUQuota{Class: "standard", QuotaCode: "L-1216C47A",
	QuotaName: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", Region: "us-east-1"}

func quota(limit, inUse int) computebot.VCPUQuota {
	q := standardQuota
	q.Limit, q.InUse = limit, inUse
	return q
}

// TestVCPUQuota: the quota is checked before the request is posted. One
// that cannot fit is refused at once, privately, with the numbers and where
// to ask; nothing is posted or launched. One that fits shows the figures;
// a lookup that fails says the quota is unknown and goes on.
func TestVCPUQuota(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     string                // default t3.small
		quota   *computebot.VCPUQuota // nil: the type has none
		lookup  error
		refused bool
		showing string // in the request message
		state   computebot.RequestState
	}{
		{name: "over the quota", quota: ptr(quota(4, 3)), refused: true, state: sRefused},
		// Auto-approved: without the refusal it would launch at once.
		{name: "over the quota, auto-approved type", typ: "t3.medium", quota: ptr(quota(4, 3)), refused: true, state: sRefused},
		{name: "exactly fits", quota: ptr(quota(4, 2)), showing: "vCPU quota for standard instances: 2 of 4 in use, this needs 2", state: sPending},
		{name: "lookup fails", quota: ptr(quota(4, 3)), lookup: awsErr("AccessDeniedException", "no", false),
			showing: "vCPU quota unknown", state: sPending},
		{name: "no quota for the type", state: sPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			typ := cmp.Or(tc.typ, "t3.small")
			if tc.quota != nil {
				e.cloud.quotas[typ] = *tc.quota
			}
			if tc.lookup != nil {
				e.cloud.failNext(cVCPUQuota, tc.lookup)
			}
			o := e.slashOrigin(ana)
			e.slash(o, "/launch", typ)
			r := e.store.last()
			if r.State != tc.state {
				t.Fatalf("state %s, want %s", r.State, tc.state)
			}
			if tc.refused {
				e.told(o, reply.VCPUQuotaExceeded(typ, 2, *tc.quota))
				contains(t, "refusal", e.chat.private(o)[0].Msg, "needs 2 vCPUs", "quota for standard instances is 4 with 3 in use (1 free)",
					"L-1216C47A", "https://us-east-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-1216C47A")
				if n := len(e.chat.posts(channel, "")); n != 0 {
					t.Errorf("%d posts in the channel, want none", n)
				}
				if e.cloud.callCount(cLaunch) != 0 {
					t.Error("RunInstances was called")
				}
				return
			}
			top := e.chat.posts(channel, "")
			if len(top) != 1 {
				t.Fatalf("%d request messages, want 1", len(top))
			}
			if tc.showing != "" {
				contains(t, "request message", top[0].Msg, tc.showing)
			} else if strings.Contains(words(top[0].Msg), "quota") {
				t.Errorf("request message mentions a quota: %s", words(top[0].Msg))
			}
		})
	}
}

// fallbackEnv is an env with two subnets and t3.small falling back to
// t2.micro.
func fallbackEnv(t *testing.T) *env {
	return newEnv(t, withConfig(func(c *config.Config) {
		c.Launch.SubnetIDs = []string{"subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"}
		c.Launch.FallbackTypes = map[string][]string{"t3.small": {"t2.micro"}}
	}))
}

// TestCapacityFallback: without capacity the launch tries the next subnet,
// then the next type, each with its own ClientToken and a note in the
// thread; the message showed the fallbacks and the highest price; the
// ready reply says which type it is.
func TestCapacityFallback(t *testing.T) {
	e := fallbackEnv(t)
	r, _ := e.request(ana, "t3.small")
	msg := e.chat.posts(channel, "")[0].Msg
	contains(t, "request message", msg, "If AWS has no `t3.small` capacity: `t2.micro` (up to ≈ $0.50/h)")
	if got := len(r.Launch.Plan); got != 4 {
		t.Fatalf("plan of %d tries, want 4 (2 types × 2 subnets): %+v", got, r.Launch.Plan)
	}
	e.cloud.failNext(cLaunch, noCapacity("t3.small"), noCapacity("t3.small"))
	e.decide(r, bo, true)
	r = e.waitState(r.ID, sDone)

	specs := e.cloud.launchSpecs()
	type try struct{ token, typ, subnet string }
	var got []try
	for _, s := range specs {
		got = append(got, try{s.ClientToken, s.InstanceType, s.SubnetID})
	}
	want := []try{
		{"computebot-" + r.ID, "t3.small", "subnet-0aaaaaaaaaaaaaaa1"},
		{"computebot-" + r.ID + "-1", "t3.small", "subnet-0bbbbbbbbbbbbbbb2"},
		{"computebot-" + r.ID + "-2", "t2.micro", "subnet-0aaaaaaaaaaaaaaa1"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("RunInstances calls:\n got %+v\nwant %+v", got, want)
	}
	if n := e.cloud.instanceCount(); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	if r.Launch.Try != 2 || r.Launch.Current().InstanceType != "t2.micro" {
		t.Errorf("recorded try %d (%+v), want 2 (t2.micro)", r.Launch.Try, r.Launch.Current())
	}
	thread := texts(e.chat.posts(channel, r.MessageTS))
	joined := strings.Join(thread, "\n")
	for _, want := range []string{
		"AWS has no `t3.small` capacity in `subnet-0aaaaaaaaaaaaaaa1`; trying subnet `subnet-0bbbbbbbbbbbbbbb2`.",
		"AWS has no `t3.small` capacity in any subnet; trying `t2.micro` in `subnet-0aaaaaaaaaaaaaaa1`.",
		"AWS had no `t3.small` capacity, so it is a `t2.micro`, one of the approved fallbacks.",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("thread lacks %q:\n%s", want, joined)
		}
	}
}

// TestCapacityFallbackExhausted: when no attempt finds capacity, the
// request fails saying so, once every attempt was made.
func TestCapacityFallbackExhausted(t *testing.T) {
	e := fallbackEnv(t)
	r, _ := e.request(ana, "t3.small")
	e.cloud.failAlways(cLaunch, noCapacity("t3.small"))
	e.decide(r, bo, true)
	r = e.waitState(r.ID, sFailed)
	if n := e.cloud.callCount(cLaunch); n != 4 {
		t.Errorf("%d RunInstances calls, want 4", n)
	}
	if want := "AWS has no capacity for `t3.small`, `t2.micro` in any of its 2 subnets right now."; !strings.Contains(r.Failure, want) {
		t.Errorf("failure %q, want it to say %q", r.Failure, want)
	}
}

// TestCapacityFallbackAfterRestart: the process dies right after the
// second attempt's RunInstances reached EC2; the restart resends that
// attempt (its token), so there is exactly one instance.
func TestCapacityFallbackAfterRestart(t *testing.T) {
	e := fallbackEnv(t)
	r, _ := e.request(ana, "t3.small")
	e.cloud.failNext(cLaunch, noCapacity("t3.small"))
	e.cloud.setCrashAfter()
	e.decide(r, bo, true)
	e.cloud.calm()
	if got := e.store.get(r.ID); got.State != sExecuting || got.Launch.Try != 1 {
		t.Fatalf("after the crash: %s at try %d, want executing at try 1", got.State, got.Launch.Try)
	}
	e.restart()
	if n := e.resume(); n != 1 {
		t.Fatalf("%d jobs resumed, want the launch", n)
	}
	r = e.waitState(r.ID, sDone)
	specs := e.cloud.launchSpecs()
	if len(specs) != 3 || specs[2].ClientToken != specs[1].ClientToken || specs[1].ClientToken != r.TryToken(1) {
		t.Errorf("RunInstances tokens %v, want the first, then the second twice", tokens(specs))
	}
	if n := e.cloud.instanceCount(); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
}

func tokens(specs []computebot.LaunchSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.ClientToken
	}
	return out
}

// TestHibernationPlan: asked for (--hibernate, or launch.hibernate), a
// type that can hibernate launches configured for it, its root volume the
// image's size plus its memory; one that cannot launches plainly, and the
// message says why.
func TestHibernationPlan(t *testing.T) {
	for _, tc := range []struct {
		name, args string
		config     bool
		hibernate  bool
		root       int32
		says       string
	}{
		{name: "asked, type can", args: "t3.small --hibernate", hibernate: true, root: 8 + 2, says: "yes: a stop keeps the memory"},
		{name: "by config", args: "t3.small", config: true, hibernate: true, root: 10, says: "yes: a stop keeps the memory"},
		{name: "asked, type cannot", args: "t2.micro --hibernate", says: "no: `t2.micro` cannot hibernate; a stop will not keep the memory"},
		{name: "not asked", args: "t3.small"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *config.Config) { c.Launch.Hibernate = tc.config }))
			e.cloud.types["t3.small"] = computebot.InstanceType{Name: "t3.small", VCPUs: 2, MemoryMiB: 2048, Hibernation: true}
			r, _ := e.request(ana, tc.args)
			msg := e.chat.posts(channel, "")[0].Msg
			if tc.says != "" {
				contains(t, "request message", msg, tc.says)
			} else if strings.Contains(words(msg), "Hibernation") {
				t.Errorf("the message mentions hibernation: %s", words(msg))
			}
			e.decide(r, bo, true)
			e.waitState(r.ID, sDone)
			spec := e.cloud.launchSpecs()[0]
			if spec.Hibernate != tc.hibernate || spec.RootVolumeGiB != tc.root {
				t.Errorf("launch: hibernate %v, root %d GiB; want %v, %d", spec.Hibernate, spec.RootVolumeGiB, tc.hibernate, tc.root)
			}
		})
	}
}

// TestStopHibernates: /stop hibernates an instance launched for it; when
// EC2 refuses, it is stopped plainly and the thread says it was not
// hibernated.
func TestStopHibernates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refuse  bool
		calls   []string
		says    string
		notSays string
	}{
		{name: "hibernated", calls: []string{cHibernate}, says: "hibernated by @UANA. Its memory and disk are kept"},
		{name: "refused", refuse: true, calls: []string{cHibernate, cStop},
			says: "It was not hibernated (EC2 would not hibernate", notSays: "hibernated by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.add(computebot.Instance{ID: boxID, Type: "t3.small", State: computebot.InstanceRunning, Hibernation: true,
				Tags: map[string]string{computebot.TagManaged: "true", computebot.TagOwner: ana, computebot.TagName: "box"}})
			if tc.refuse {
				e.cloud.failNext(cHibernate, &computebot.Error{Code: "UnsupportedHibernationConfiguration",
					Message: "EC2 would not hibernate " + boxID + " (UnsupportedHibernationConfiguration)",
					Err:     fmt.Errorf("%w: fake", computebot.ErrHibernationRefused)})
			}
			o := e.slashOrigin(ana)
			e.slash(o, "/stop", boxID)
			said := func() string {
				return strings.Join(append(texts(e.chat.private(o)), texts(e.chat.posts(o.Channel, o.ThreadTS))...), "\n")
			}
			waitFor(t, "the stop to be announced", func() bool {
				return strings.Contains(said(), "stopped by") || strings.Contains(said(), "hibernated by")
			})
			var calls []string
			for _, c := range []string{cHibernate, cStop} {
				for range e.cloud.callCount(c) {
					calls = append(calls, c)
				}
			}
			if !slices.Equal(calls, tc.calls) {
				t.Errorf("calls %v, want %v", calls, tc.calls)
			}
			all := said()
			if !strings.Contains(all, tc.says) || (tc.notSays != "" && strings.Contains(all, tc.notSays)) {
				t.Errorf("answers:\n%s\nwant %q (and not %q)", all, tc.says, tc.notSays)
			}
		})
	}
}

// TestFallbackTakenOver: while an attempt fails for lack of capacity, the
// request is taken over by another replica; this one neither moves it on
// nor fails it, and sends no further RunInstances.
func TestFallbackTakenOver(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error // the first attempt's answer
	}{
		{"at the move to the next attempt", noCapacity("t3.small")},
		{"between retries of one attempt", awsErr("RequestLimitExceeded", "AWS is throttling requests.", true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := fallbackEnv(t)
			r, _ := e.request(ana, "t3.small")
			e.cloud.failNext(cLaunch, tc.err)
			once := false
			e.cloud.setOnCall(func(method, _ string) {
				if method == cLaunch && !once {
					once = true
					if _, err := e.store.UpdateRequest(e.ctx, r.ID, func(cur *computebot.Request) error { cur.Claim = "replica-b"; return nil }); err != nil {
						t.Error(err)
					}
				}
			})
			e.decide(r, bo, true)
			waitFor(t, "the first attempt", func() bool { return e.cloud.callCount(cLaunch) >= 1 })
			time.Sleep(20 * time.Millisecond)
			got := e.store.get(r.ID)
			if got.State != sExecuting || got.Launch.Try != 0 || got.Failure != "" {
				t.Errorf("request %s at try %d (%q), want executing at try 0 for replica-b", got.State, got.Launch.Try, got.Failure)
			}
			if n := e.cloud.callCount(cLaunch); n != 1 {
				t.Errorf("%d RunInstances calls, want 1 (the rest is replica-b's)", n)
			}
		})
	}
}

// TestPlanlessRequestKeepsItsSubnet: a request made before plans, resumed
// under a config that lists subnets, launches in launch.subnet_id as it
// would have, so its ClientToken carries the same parameters.
func TestPlanlessRequestKeepsItsSubnet(t *testing.T) {
	e := newEnv(t, withConfig(func(c *config.Config) {
		c.Launch.SubnetIDs = []string{"subnet-0bbbbbbbbbbbbbbb2", c.Launch.SubnetID}
	}))
	r, _ := e.request(ana, "t2.micro")
	if _, err := e.store.UpdateRequest(e.ctx, r.ID, func(cur *computebot.Request) error { cur.Launch.Plan = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	e.decide(r, bo, true)
	e.waitState(r.ID, sDone)
	if spec := e.cloud.launchSpecs()[0]; spec.SubnetID != e.cfg.Launch.SubnetID || spec.ClientToken != "computebot-"+r.ID {
		t.Errorf("launched in %s with %s, want %s with the request's own token", spec.SubnetID, spec.ClientToken, e.cfg.Launch.SubnetID)
	}
}

// TestFallbackOverQuotaLeftOut: a fallback type that does not fit its vCPU
// quota is not part of the plan (nor of the message).
func TestFallbackOverQuotaLeftOut(t *testing.T) {
	e := fallbackEnv(t)
	e.cloud.quotas["t2.micro"] = quota(4, 4)
	r, _ := e.request(ana, "t3.small")
	for _, try := range r.Launch.Plan {
		if try.InstanceType != "t3.small" {
			t.Errorf("plan has %+v, want only t3.small (t2.micro is over its quota)", try)
		}
	}
	if msg := e.chat.posts(channel, "")[0].Msg; strings.Contains(words(msg), "If AWS has no") {
		t.Errorf("the message shows fallbacks: %s", words(msg))
	}
}
