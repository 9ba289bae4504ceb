package main

import (
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
)

func TestLaunchApproveRunSSH(t *testing.T) {
	b := newBed(t)
	ack := b.slash(ana, "/launch", `t2.micro --hours 4 --reason "feature engineering"`)
	if txt := ackText(t, ack); txt != "" {
		t.Fatalf("a valid /launch should be acked silently, got %q", txt)
	}

	msg := b.requestMessage(ana)
	for _, want := range []string{"<@UANA> requests 1 × `t2.micro` (1 vCPU, 1 GiB)", "ami-0123456789abcdef0", "4 h", "feature engineering",
		"≈ $0.0116/h, ≈ $0.05 for the lease", "R-"} {
		if !strings.Contains(visible(msg), want) {
			t.Errorf("request message lacks %q: %s", want, visible(msg))
		}
	}
	if got := b.slack.Buttons(channel, msg.TS); strings.Join(got, ",") != "Approve,Deny" {
		t.Fatalf("buttons = %v, want Approve, Deny", got)
	}
	b.waitThread(msg.TS, "Approvers: <@UBO>, <!subteam^SPLATFORM>")

	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "Launching `t2.micro`")
	b.waitThread(msg.TS, "is pending")
	ready := b.waitThread(msg.TS, "is running")

	insts := b.aws.Instances()
	if len(insts) != 1 {
		t.Fatalf("instances = %d, want 1", len(insts))
	}
	inst := insts[0]
	for _, want := range []string{inst.ID, "chmod 0400 ~/.ssh/data-science.pem", "ssh -i ~/.ssh/data-science.pem ec2-user@" + inst.PublicIP} {
		if !strings.Contains(visible(ready), want) {
			t.Errorf("ready reply lacks %q: %s", want, visible(ready))
		}
	}
	b.waitMessage(msg.TS, "Approved by <@UBO> — `"+inst.ID+"` running")
	if btns := b.slack.Buttons(channel, msg.TS); len(btns) != 0 {
		t.Errorf("buttons still there after approval: %v", btns)
	}

	r := b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestDone })
	wantTags := map[string]string{
		"Name": "computebot-" + strings.ToLower(r.ID), "computebot:managed": "true", "computebot:owner": ana,
		"computebot:request": r.ID, "computebot:channel": channel, "computebot:thread": msg.TS,
	}
	for k, v := range wantTags {
		if inst.Tags[k] != v {
			t.Errorf("instance tag %s = %q, want %q", k, inst.Tags[k], v)
		}
		if inst.VolumeTags[k] != v {
			t.Errorf("volume tag %s = %q, want %q", k, inst.VolumeTags[k], v)
		}
	}
	exp, err := time.Parse(time.RFC3339, inst.Tags["computebot:expires-at"])
	if err != nil || exp.Sub(r.DecidedAt.Truncate(time.Second)) != 4*time.Hour {
		t.Errorf("expires-at = %q (decided %v), want decision + 4h", inst.Tags["computebot:expires-at"], r.DecidedAt)
	}
	if inst.HttpTokens != "required" || !inst.RootEncrypted || inst.KeyName != "data-science" {
		t.Errorf("launch hardening: HttpTokens=%q RootEncrypted=%v KeyName=%q", inst.HttpTokens, inst.RootEncrypted, inst.KeyName)
	}
	if inst.ClientToken != "computebot-"+r.ID {
		t.Errorf("ClientToken = %q", inst.ClientToken)
	}
	if n := b.aws.CallCount("CreateSecurityGroup"); n != 0 {
		t.Errorf("the bot must never create security groups, made %d calls", n)
	}

	var actions []string
	for _, e := range b.audit() {
		actions = append(actions, e.Actor+":"+e.Action+":"+e.Result)
	}
	if got := strings.Join(actions, ","); got != "UBO:approve:ok,UBO:launch:ok" {
		t.Errorf("audit = %s", got)
	}
	if strings.Contains(b.stderr.String(), "xoxb-test-bot-token") || strings.Contains(b.stderr.String(), "xapp-test-app-token") {
		t.Error("a token appears in the logs")
	}
}

func TestDenyLaunchesNothing(t *testing.T) {
	b := newBed(t)
	b.slash(ana, "/launch", "t3.small")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Deny")
	b.waitThread(msg.TS, "Denied by <@UBO>. Nothing was launched.")
	b.waitMessage(msg.TS, "Denied by <@UBO>")
	if len(b.slack.Buttons(channel, msg.TS)) != 0 {
		t.Error("buttons still there after deny")
	}
	b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestDenied })
	if n := b.aws.CallCount("RunInstances"); n != 0 {
		t.Errorf("RunInstances called %d times after a deny", n)
	}
}

func TestGroupApprover(t *testing.T) {
	b := newBed(t)
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(carl, msg, "Approve") // approver through user group SPLATFORM
	b.waitThread(msg.TS, "is running")
	if n := len(b.slack.Calls("usergroups.users.list")); n != 1 {
		t.Errorf("usergroups.users.list calls = %d, want 1", n)
	}
}

func TestAutoApprove(t *testing.T) {
	b := newBed(t)
	b.slash(ana, "/launch", "t3.medium")
	msg := b.requestMessage(ana)
	if !strings.Contains(visible(msg), "Auto-approved by policy") {
		t.Errorf("auto-approved request message: %s", visible(msg))
	}
	if len(b.slack.Buttons(channel, msg.TS)) != 0 {
		t.Error("an auto-approved request must have no buttons")
	}
	b.waitThread(msg.TS, "is running")
	if e := b.audit(); len(e) == 0 || e[0].Actor != "policy" || e[0].Action != "approve" {
		t.Errorf("audit = %+v", e)
	}
}

func TestLaunchFailureIsReportedInPlainWords(t *testing.T) {
	b := newBed(t)
	b.aws.FailNext("RunInstances", "InsufficientInstanceCapacity", "We currently do not have sufficient t2.micro capacity.", 1)
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "AWS has no spare t2.micro capacity")
	r := b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestFailed })
	if !strings.Contains(r.Failure, "capacity") {
		t.Errorf("failure = %q", r.Failure)
	}
	last := b.audit()[len(b.audit())-1]
	if last.Action != "launch" || last.Result != "InsufficientInstanceCapacity" {
		t.Errorf("audit of the failed launch = %+v", last)
	}
	b.waitMessage(msg.TS, "launch failed")
}

func TestThrottledLaunchIsRetriedWithTheSameToken(t *testing.T) {
	b := newBed(t)
	b.aws.FailNext("RunInstances", "RequestLimitExceeded", "Request limit exceeded.", 2)
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")
	calls := b.aws.Calls("RunInstances")
	if len(calls) != 3 || calls[0].Params.Get("ClientToken") != calls[2].Params.Get("ClientToken") {
		t.Errorf("RunInstances calls = %d, want 3 with one ClientToken", len(calls))
	}
	if n := len(b.aws.Instances()); n != 1 {
		t.Errorf("instances = %d, want 1", n)
	}
}

func TestLaunchTimeoutFindsTheInstanceAWSCreatedAnyway(t *testing.T) {
	b := newBed(t, withAWSCallTimeout(300*time.Millisecond))
	// Every RunInstances answer comes too late, but EC2 still launches.
	b.aws.SetLatency("RunInstances", 400*time.Millisecond)
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")
	if n := len(b.aws.Instances()); n != 1 {
		t.Errorf("instances = %d, want 1", n)
	}
}

func TestLaunchTimeoutIsReportedInPlainWords(t *testing.T) {
	b := newBed(t, withAWSCallTimeout(300*time.Millisecond))
	b.aws.SetLatency("RunInstances", 400*time.Millisecond)
	b.aws.FailNext("RunInstances", "InternalError", "", 10) // …and never launches
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "AWS did not answer within")
	b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestFailed })
}
