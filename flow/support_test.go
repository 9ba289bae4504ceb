package flow_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/flow"
)

// TestActiveLaunches: a user's pending and running instances, plus the
// requests on their way to one whose instance EC2 does not list yet, each
// counted once; the request being decided is left out.
func TestActiveLaunches(t *testing.T) {
	cloud := newFakeCloud(func() time.Time { return epoch })
	store := newFakeStore()
	for _, in := range []computebot.Instance{
		managed("i-00000000000000001", ana, "a", computebot.InstanceRunning, epoch, "R-1"),
		managed("i-00000000000000002", ana, "b", computebot.InstancePending, epoch, "R-2"),
		managed("i-00000000000000003", ana, "c", computebot.InstanceStopped, epoch, "R-3"),
		managed("i-00000000000000004", ana, "d", computebot.InstanceTerminated, epoch, "R-4"),
		managed("i-00000000000000005", bo, "e", computebot.InstanceRunning, epoch, "R-5"),
		withTags(managed("i-00000000000000006", ana, "f", computebot.InstanceRunning, epoch, "R-6"), computebot.TagManaged, ""),
	} {
		cloud.add(in)
	}
	req := func(id, owner string, state computebot.RequestState, instance string) *computebot.Request {
		return &computebot.Request{ID: id, Requester: owner, State: state, CreatedAt: epoch,
			Launch: &computebot.LaunchRequest{InstanceType: "t2.micro", InstanceID: instance}}
	}
	for _, r := range []*computebot.Request{
		req("R-2", ana, computebot.RequestLaunched, "i-00000000000000002"), // its instance is listed: once
		req("R-7", ana, computebot.RequestApproved, ""),
		req("R-8", ana, computebot.RequestExecuting, ""),
		req("R-9", ana, computebot.RequestLaunched, "i-00000000000000099"), // EC2 does not list it yet
		req("R-10", ana, computebot.RequestPending, ""),
		req("R-11", ana, computebot.RequestDone, "i-00000000000000001"),
		req("R-12", bo, computebot.RequestApproved, ""),
		{ID: "R-13", Requester: ana, State: computebot.RequestApproved, CreatedAt: epoch, Lambda: &computebot.LambdaRequest{Function: "deploy-prod"}},
	} {
		store.put(r)
	}
	u := flow.NewUsage(cloud, store)
	ctx := context.Background()
	for _, tc := range []struct {
		owner, except string
		want          int
	}{
		{ana, "", 5},     // i-1, i-2, R-7, R-8, R-9
		{ana, "R-1", 4},  // i-1 is R-1's
		{ana, "R-7", 4},  // the approved request being decided
		{ana, "R-2", 4},  // neither R-2 nor its instance
		{ana, "R-10", 5}, // pending requests never count
		{bo, "", 2},
		{eve, "", 0},
	} {
		got, err := u.ActiveLaunches(ctx, tc.owner, tc.except)
		if err != nil || got != tc.want {
			t.Errorf("ActiveLaunches(%s, %q) = %d, %v; want %d", tc.owner, tc.except, got, err, tc.want)
		}
	}

	boom := errors.New("boom")
	cloud.failNext(cManagedInstances, boom)
	if _, err := u.ActiveLaunches(ctx, ana, ""); !errors.Is(err, boom) {
		t.Errorf("EC2 failing: err %v", err)
	}
	store.failNext(sRequests, boom)
	if _, err := u.ActiveLaunches(ctx, ana, ""); !errors.Is(err, boom) {
		t.Errorf("store failing: err %v", err)
	}
}

// TestPrices: configured prices first, then the Pricing API, else unknown.
func TestPrices(t *testing.T) {
	cloud := newFakeCloud(func() time.Time { return epoch })
	cloud.prices["g4dn.xlarge"] = 0.526
	p := flow.NewPrices(cloud, map[string]float64{"t3.small": 0.5, "t2.micro": 0.01}, quiet)
	ctx := context.Background()
	for _, tc := range []struct {
		typ   string
		setup func()
		usd   float64
		known bool
		api   int // HourlyPrice calls so far
	}{
		{typ: "t2.micro", usd: 0.01, known: true, api: 0}, // the override wins over the API
		{typ: "t3.small", usd: 0.5, known: true, api: 0},
		{typ: "g4dn.xlarge", usd: 0.526, known: true, api: 1},
		{typ: "m5.large", api: 2}, // the API does not know it
		{typ: "g4dn.xlarge", setup: func() { cloud.failNext(cHourlyPrice, awsErr("Throttling", "slow down", true)) }, api: 3},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		usd, known := p.Price(ctx, tc.typ)
		if usd != tc.usd || known != tc.known {
			t.Errorf("Price(%s) = %v, %v; want %v, %v", tc.typ, usd, known, tc.usd, tc.known)
		}
		if n := cloud.callCount(cHourlyPrice); n != tc.api {
			t.Errorf("after %s: %d Pricing API calls, want %d", tc.typ, n, tc.api)
		}
	}
}

// TestAuditor: entries get a time when they have none; a failing write is
// survived, and a cancelled caller still gets its entry written.
func TestAuditor(t *testing.T) {
	store := newFakeStore()
	a := flow.NewAuditor(store, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	at := epoch.Add(time.Minute)
	before := time.Now()
	a.Record(ctx, computebot.AuditEntry{Actor: ana, Action: "stop", Target: boxID, Result: "ok"})
	a.Record(ctx, computebot.AuditEntry{Time: at, Actor: bo, Action: "approve", RequestID: "R-1", Result: "ok"})
	store.failNext(sAudit, errors.New("disk full"))
	a.Record(context.Background(), computebot.AuditEntry{Actor: eve, Action: "terminate"})
	log := store.auditLog()
	if len(log) != 2 {
		t.Fatalf("log %+v", log)
	}
	if log[0].Time.Before(before) || log[0].Actor != ana {
		t.Errorf("first entry %+v: want it stamped now", log[0])
	}
	if !log[1].Time.Equal(at) || log[1].RequestID != "R-1" {
		t.Errorf("second entry %+v: want its own time kept", log[1])
	}
}
