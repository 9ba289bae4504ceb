package aws_test

import (
	"context"
	"errors"
	"testing"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/internal/fakeaws"
)

// TestVCPUQuota: the quota of the type's class from Service Quotas, and the
// vCPUs of that class's running and pending instances across the account
// (not only the bot's), from one listing; both cached briefly.
func TestVCPUQuota(t *testing.T) {
	fake := newFake(t)
	fake.SetServiceQuota("ec2", "L-DB2E81BA", 32)
	for _, in := range []fakeaws.Instance{
		{Type: "g4dn.xlarge", State: "running"},                                        // 4, G
		{Type: "g5.xlarge", State: "pending"},                                          // 4, G
		{Type: "g6.xlarge", State: "stopped"},                                          // not counted
		{Type: "p3.2xlarge", State: "running"},                                         // P
		{Type: "t3.small", State: "running", Tags: map[string]string{"team": "other"}}, // standard
		{Type: "g5.xlarge", State: "running", Spot: true},                              // Spot: its own quota
	} {
		fake.AddInstance(in)
	}
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()

	q, err := c.VCPUQuota(ctx, "g5.xlarge")
	if err != nil {
		t.Fatal(err)
	}
	want := computebot.VCPUQuota{Class: "G", QuotaCode: "L-DB2E81BA", QuotaName: "Running On-Demand G and VT instances", Region: "us-east-1", Limit: 32, InUse: 8}
	if q != want {
		t.Errorf("got %+v\nwant %+v", q, want)
	}
	p, err := c.VCPUQuota(ctx, "p3.2xlarge")
	if err != nil || p.InUse != 8 || p.QuotaCode != "L-417A185B" || p.Class != "P" {
		t.Errorf("P quota %+v, %v; want 8 in use under L-417A185B", p, err)
	}
	s, err := c.VCPUQuota(ctx, "t3.large")
	if err != nil || s.InUse != 2 || s.QuotaCode != "L-1216C47A" || s.Class != "standard" {
		t.Errorf("standard quota %+v, %v; want 2 in use under L-1216C47A", s, err)
	}
	// One listing and one quota lookup per class for all of that.
	if n := fake.CallCount("DescribeInstances"); n != 1 {
		t.Errorf("DescribeInstances calls = %d, want 1 (cached)", n)
	}
	if _, err := c.VCPUQuota(ctx, "g4dn.xlarge"); err != nil || fake.CallCount("GetServiceQuota") != 3 {
		t.Errorf("GetServiceQuota calls = %d, want 3 (G cached)", fake.CallCount("GetServiceQuota"))
	}
	// A newer family of the class counts against it too.
	if g, err := c.VCPUQuota(ctx, "gr6.4xlarge"); err != nil || g.QuotaCode != "L-DB2E81BA" {
		t.Errorf("gr6: %+v, %v; want the G and VT quota", g, err)
	}
}

func TestVCPUQuotaFailures(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()

	if _, err := c.VCPUQuota(ctx, "mac2.metal"); !errors.Is(err, computebot.ErrNotFound) {
		t.Errorf("mac2.metal: %v, want ErrNotFound (no on-demand vCPU quota)", err)
	}
	fake.DeleteServiceQuota("ec2", "L-DB2E81BA")
	_, err := c.VCPUQuota(ctx, "g5.xlarge")
	wantCode(t, err, "NoSuchResourceException")
	if errors.Is(err, computebot.ErrNotFound) {
		t.Error("a missing quota reads as a type without one; it must read as unknown")
	}
	fake.FailNext("GetServiceQuota", "AccessDeniedException", "not authorized", 1)
	_, err = c.VCPUQuota(ctx, "t3.small")
	wantCode(t, err, "AccessDeniedException")
}

// TestHibernateLaunchAndStop: a launch asks for hibernation and a root
// volume that holds the memory; the instance then reports it, and
// Hibernate stops it keeping its memory. EC2's refusals to hibernate wrap
// ErrHibernationRefused, so the caller can stop plainly.
func TestHibernateLaunchAndStop(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()

	spec := launchSpec("tok-hib")
	spec.InstanceType, spec.Hibernate, spec.RootVolumeGiB = "t3.small", true, 10
	inst, err := c.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := fake.Instance(inst.ID)
	if !got.HibernationConfigured || got.RootVolumeGiB != 10 || !got.RootEncrypted {
		t.Errorf("launched %+v, want hibernation configured on an encrypted 10 GiB root", got)
	}
	if described, err := c.Instance(ctx, inst.ID); err != nil || !described.Hibernation {
		t.Errorf("Instance = %+v, %v; want Hibernation", described, err)
	}
	fake.SetRunningDelay(0)
	if _, err := c.Hibernate(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	if p := fake.Calls("StopInstances"); len(p) != 1 || p[0].Params.Get("Hibernate") != "true" {
		t.Errorf("StopInstances params %v, want Hibernate=true", p)
	}

	plain, err := c.Launch(ctx, launchSpec("tok-plain"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Hibernate(ctx, plain.ID)
	if !errors.Is(err, computebot.ErrHibernationRefused) {
		t.Errorf("hibernating an instance not launched for it: %v, want ErrHibernationRefused", err)
	}
	stopped, err := computebot.StopKeepingMemory(ctx, c, computebot.Instance{ID: plain.ID, Hibernation: true})
	if err != nil || stopped.Hibernated || stopped.NotHibernated == "" {
		t.Errorf("StopKeepingMemory = %+v, %v; want a plain stop saying why", stopped, err)
	}
	if f, _ := fake.Instance(plain.ID); f.State != "stopping" && f.State != "stopped" {
		t.Errorf("after the fallback the instance is %s, want stopping", f.State)
	}
}

func TestLaunchNoCapacity(t *testing.T) {
	fake := newFake(t)
	fake.SetNoCapacity("t2.micro", "subnet-0abc", true)
	c := newClient(t, fake, aws.Options{})
	_, err := c.Launch(context.Background(), launchSpec("tok-cap"))
	wantCode(t, err, "InsufficientInstanceCapacity")
	if !errors.Is(err, computebot.ErrNoCapacity) || computebot.Transient(err) {
		t.Errorf("capacity error %v: want ErrNoCapacity, not transient", err)
	}
}
