package main

import (
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/internal/fakeaws"
)

// gpuConfig allows GPU types; g5.xlarge falls back to g6.xlarge, over two
// subnets.
// g4dn.xlarge is auto-approved: a quota refusal must stop it before it
// launches on its own.
var gpuConfig = strings.Replace(strings.Replace(baseConfig, "  allowed_types: [t2.micro, t3.small, t3.medium]\n",
	`  allowed_types: [t2.micro, t3.small, t3.medium, g4dn.xlarge, g5.xlarge, g6.xlarge, p3.2xlarge]
  subnet_ids: [subnet-0aaaaaaaaaaaaaaa1, subnet-0bbbbbbbbbbbbbbb2]
  fallback_types:
    g5.xlarge: [g6.xlarge]
`, 1), "  auto_approve_types: [t3.medium]\n", "  auto_approve_types: [t3.medium, g4dn.xlarge]\n", 1)

const (
	subnetA = "subnet-0aaaaaaaaaaaaaaa1"
	subnetB = "subnet-0bbbbbbbbbbbbbbb2"
)

// TestVCPUQuotaEndToEnd: the quota is read from Service Quotas and the use
// counted from every running instance of the class. A request that cannot
// fit is refused at once, privately, and nothing is posted or launched; one
// that fits shows the figures; a failed lookup says "quota unknown".
func TestVCPUQuotaEndToEnd(t *testing.T) {
	b := newBed(t, withConfig(gpuConfig))
	b.aws.SetServiceQuota("ec2", "L-DB2E81BA", 6)
	// Someone else's GPU box, not launched by the bot: it counts.
	b.aws.AddInstance(fakeaws.Instance{Type: "g4dn.xlarge", State: "running"})

	b.slash(ana, "/launch", "g4dn.xlarge --reason training")
	refusal := b.waitPrivate(ana, "vCPU quota")
	for _, want := range []string{"`g4dn.xlarge` needs 4 vCPUs", "quota for G instances is 6 with 4 in use (2 free)", "Nothing was launched",
		"Running On-Demand G and VT instances", "L-DB2E81BA", "https://us-east-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-DB2E81BA"} {
		if !strings.Contains(visible(refusal), want) {
			t.Errorf("refusal lacks %q: %s", want, visible(refusal))
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, m := range b.slack.Messages(channel) {
		if !m.Ephemeral && strings.Contains(m.Text, "requests 1") {
			t.Errorf("a request message was posted: %s", m.Text)
		}
	}
	if n := b.aws.CallCount("RunInstances"); n != 0 {
		t.Errorf("%d RunInstances calls, want none", n)
	}

	// A standard type fits: the message shows the figures.
	b.slash(ana, "/launch", "t3.small")
	msg := b.requestMessage(ana)
	if !strings.Contains(visible(msg), "vCPU quota for standard instances: 0 of 512 in use, this needs 2") {
		t.Errorf("request message lacks the quota figure: %s", visible(msg))
	}

	// The P quota cannot be read: the request goes on, saying so.
	b.aws.FailNext("GetServiceQuota", "AccessDeniedException", "User is not authorized to perform servicequotas:GetServiceQuota", 1)
	b.slash(bo, "/launch", "p3.2xlarge")
	msg = b.requestMessage(bo)
	if !strings.Contains(visible(msg), "vCPU quota unknown") {
		t.Errorf("request message lacks \"quota unknown\": %s", visible(msg))
	}
}

// TestCapacityFallbackEndToEnd: EC2 has no g5.xlarge anywhere; the launch
// tries it in both subnets, then g6.xlarge, each step said in the thread and
// each attempt with its own ClientToken; one instance, of the fallback type.
func TestCapacityFallbackEndToEnd(t *testing.T) {
	b := newBed(t, withConfig(gpuConfig))
	b.aws.SetPrice("g5.xlarge", 1.006)
	b.aws.SetPrice("g6.xlarge", 0.8048)
	b.aws.SetNoCapacity("g5.xlarge", "", true)

	b.slash(ana, "/launch", "g5.xlarge --reason training")
	msg := b.requestMessage(ana)
	if !strings.Contains(visible(msg), "If AWS has no `g5.xlarge` capacity: `g6.xlarge` (up to ≈ $1.006/h)") {
		t.Errorf("request message lacks the fallbacks: %s", visible(msg))
	}
	b.click(bo, msg, "Approve")
	ready := b.waitThread(msg.TS, "is running")
	if !strings.Contains(visible(ready), "so it is a `g6.xlarge`, one of the approved fallbacks") {
		t.Errorf("ready reply: %s", visible(ready))
	}
	b.waitThread(msg.TS, "AWS has no `g5.xlarge` capacity in `"+subnetA+"`; trying subnet `"+subnetB+"`")
	b.waitThread(msg.TS, "AWS has no `g5.xlarge` capacity in any subnet; trying `g6.xlarge` in `"+subnetA+"`")

	var tries []string
	for _, c := range b.aws.Calls("RunInstances") {
		try := c.Params.Get("ClientToken") + " " + c.Params.Get("InstanceType") + " " + c.Params.Get("SubnetId")
		if len(tries) == 0 || tries[len(tries)-1] != try { // the SDK's own retries resend the same
			tries = append(tries, try)
		}
	}
	r := b.waitRequest(func(r *computebot.Request) bool { return r.Launch != nil && r.Launch.InstanceID != "" })
	want := []string{
		"computebot-" + r.ID + " g5.xlarge " + subnetA,
		"computebot-" + r.ID + "-1 g5.xlarge " + subnetB,
		"computebot-" + r.ID + "-2 g6.xlarge " + subnetA,
	}
	if strings.Join(tries, "\n") != strings.Join(want, "\n") {
		t.Errorf("RunInstances attempts:\n%s\nwant\n%s", strings.Join(tries, "\n"), strings.Join(want, "\n"))
	}
	insts := b.aws.Instances()
	if len(insts) != 1 || insts[0].Type != "g6.xlarge" || insts[0].SubnetID != subnetA {
		t.Errorf("instances %+v, want one g6.xlarge in %s", insts, subnetA)
	}
}

// TestHibernationEndToEnd: --hibernate launches a type that can with
// HibernationOptions and a root volume for its memory; /stop hibernates
// it; when EC2 refuses (the agent not ready), /stop stops it plainly and
// says so; a type that cannot hibernate is said to in the message.
func TestHibernationEndToEnd(t *testing.T) {
	b := newBed(t, withConfig(gpuConfig))
	b.slash(ana, "/launch", "t3.small --hibernate --reason notebook")
	msg := b.requestMessage(ana)
	if !strings.Contains(visible(msg), "yes: a stop keeps the memory") {
		t.Errorf("request message: %s", visible(msg))
	}
	b.click(bo, msg, "Approve")
	ready := b.waitThread(msg.TS, "is running")
	if !strings.Contains(visible(ready), "It can hibernate") {
		t.Errorf("ready reply: %s", visible(ready))
	}
	run := b.aws.Calls("RunInstances")[0].Params
	if run.Get("HibernationOptions.Configured") != "true" || run.Get("BlockDeviceMapping.1.Ebs.VolumeSize") != "10" || run.Get("BlockDeviceMapping.1.Ebs.Encrypted") != "true" {
		t.Errorf("RunInstances: hibernation %q, root %q GiB encrypted %q; want true, 10 (8 + 2 GiB of memory), true",
			run.Get("HibernationOptions.Configured"), run.Get("BlockDeviceMapping.1.Ebs.VolumeSize"), run.Get("BlockDeviceMapping.1.Ebs.Encrypted"))
	}
	id := b.aws.Instances()[0].ID

	b.slash(ana, "/stop", id)
	b.waitThread(msg.TS, "hibernated by")
	if in, _ := b.aws.Instance(id); !in.Hibernated {
		t.Errorf("the instance was not hibernated: %+v", in)
	}
	b.slash(ana, "/start", id)
	b.waitThread(msg.TS, "started by")

	b.aws.RefuseHibernation(id, "UnsupportedOperation", "The instance is not ready to hibernate yet.")
	before := len(b.aws.Calls("StopInstances"))
	b.slash(ana, "/stop", id)
	stopped := b.waitThread(msg.TS, "stopped by")
	if !strings.Contains(visible(stopped), "It was not hibernated") || !strings.Contains(visible(stopped), "its memory is lost") {
		t.Errorf("stop reply: %s", visible(stopped))
	}
	calls := b.aws.Calls("StopInstances")[before:]
	if len(calls) != 2 || calls[0].Params.Get("Hibernate") != "true" || calls[1].Params.Get("Hibernate") == "true" {
		t.Errorf("StopInstances calls %d (hibernate %q then %q), want a hibernate then a plain stop", len(calls), calls[0].Params.Get("Hibernate"), calls[len(calls)-1].Params.Get("Hibernate"))
	}
	if in, _ := b.aws.Instance(id); in.Hibernated || (in.State != "stopped" && in.State != "stopping") {
		t.Errorf("after the fallback: %+v, want stopped, not hibernated", in)
	}

	b.slash(bo, "/launch", "g5.xlarge --hibernate")
	msg = b.requestMessage(bo)
	if !strings.Contains(visible(msg), "no: `g5.xlarge` cannot hibernate; a stop will not keep the memory") {
		t.Errorf("request message: %s", visible(msg))
	}
}

// TestIdleHibernates: an idle instance launched for hibernation is told
// its memory will be kept, and hibernated when the grace ends.
func TestIdleHibernates(t *testing.T) {
	b := newIdleBed(t)
	id := "i-0aaaa0000000000e1"
	thread := b.seed(id, ana, 1.0, 1000, nil, func(in *fakeaws.Instance) { in.HibernationConfigured = true })
	notice := b.waitThread(thread, "looks idle")
	if !strings.Contains(visible(notice), "It will hibernate: its memory is kept") {
		t.Errorf("notice: %s", visible(notice))
	}
	b.waitState(id, "stopped")
	if in, _ := b.aws.Instance(id); !in.Hibernated {
		t.Errorf("idle stop did not hibernate: %+v", in)
	}
	b.waitThread(thread, "It hibernated: its memory is kept")
}
