package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/internal/fakeaws"
)

// lifecycleConfig auto-approves t3.medium so tests get instances quickly.
var lifecycleConfig = strings.Replace(baseConfig, "max_running_per_user: 3", "max_running_per_user: 10\n  max_lease: 24h", 1)

// launched runs an auto-approved /launch as user and returns the request
// once its instance runs.
func (b *bed) launched(user, extra string) *computebot.Request {
	b.t.Helper()
	b.slash(user, "/launch", "t3.medium "+extra)
	r := b.waitRequest(func(r *computebot.Request) bool {
		return r.Requester == user && r.State == computebot.RequestDone && !b.seen[r.ID]
	})
	b.seen[r.ID] = true
	b.waitThread(r.MessageTS, "is running")
	return r
}

// clickOn presses the button labelled button on the newest private
// message to user, posted after mark, that shows substr.
func (b *bed) clickOn(mark int, user, substr, button string) {
	b.t.Helper()
	m := b.waitPrivateAfter(mark, user, substr)
	env, err := b.slack.Click(user, channel, m.TS, button)
	if err != nil {
		b.t.Fatalf("click %q on %q: %v", button, visible(m), err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), env); err != nil {
		b.t.Fatal(err)
	}
}

func TestInstancesListsOwnAndAll(t *testing.T) {
	b := newBed(t, withConfig(lifecycleConfig))
	b.aws.SetPrice("t3.medium", 0.0416)
	mine := b.launched(ana, "--name notebook --hours 6")
	b.launched(carl, "--name carls-box")
	b.aws.AddInstance(fakeaws.Instance{ID: "i-0dead00000000beef", Type: "t2.micro", State: "terminated",
		Tags: map[string]string{"computebot:managed": "true", "computebot:owner": ana, "Name": "old"}})

	if txt := ackText(t, b.slash(ana, "/instances", "")); txt != "" {
		t.Fatalf("/instances ack = %q", txt)
	}
	list := b.waitPrivate(ana, "Your instances")
	text := visible(list)
	for _, want := range []string{"notebook", mine.Launch.InstanceID, "`t3.medium`", "running", "IP `" + mine.Launch.PublicIP + "`", "up ", "since it started", "lease ends"} {
		if !strings.Contains(text, want) {
			t.Errorf("list lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "carls-box") || strings.Contains(text, "i-0dead00000000beef") {
		t.Errorf("list shows someone else's or a terminated instance:\n%s", text)
	}
	if got := b.slack.Buttons(channel, list.TS); strings.Join(got, ",") != "Stop,Extend 4 h,Terminate" {
		t.Errorf("buttons of a running instance = %v", got)
	}
	if !strings.Contains(string(list.Blocks), `"confirm"`) {
		t.Error("Terminate must ask for confirmation")
	}

	b.slash(eve, "/instances", "")
	b.waitPrivate(eve, "You have no instances. Launch one with `/launch t2.micro`")

	b.slash(eve, "/instances", "--all")
	b.waitPrivate(eve, "Only approvers can list everyone's instances")

	b.slash(bo, "/instances", "--all")
	all := visible(b.waitPrivate(bo, "All computebot instances"))
	for _, want := range []string{"notebook", "carls-box", "owner <@UANA>", "owner <@UCARL>"} {
		if !strings.Contains(all, want) {
			t.Errorf("--all lacks %q:\n%s", want, all)
		}
	}
}

func TestInstancesPaging(t *testing.T) {
	b := newBed(t, withConfig(lifecycleConfig))
	for i := range 45 {
		b.aws.AddInstance(fakeaws.Instance{ID: fmt.Sprintf("i-%017x", 0xa000+i), Type: "t2.micro", State: "running",
			LaunchTime: time.Now().Add(-time.Duration(i) * time.Minute),
			Tags:       map[string]string{"computebot:managed": "true", "computebot:owner": ana, "Name": fmt.Sprintf("box-%02d", i)}})
	}
	b.slash(ana, "/instances", "")
	first := b.waitPrivate(ana, "(1–20 of 45)")
	if n := strings.Count(string(first.Blocks), `"type":"actions"`) + strings.Count(string(first.Blocks), `"type": "actions"`); n > 21 {
		t.Errorf("actions blocks = %d", n)
	}
	var blocks []any
	if err := jsonUnmarshal(first.Blocks, &blocks); err != nil || len(blocks) > 50 {
		t.Fatalf("page has %d blocks (max 50), err %v", len(blocks), err)
	}
	b.clickOn(0, ana, "(1–20 of 45)", "Next page (21–40)")
	b.clickOn(0, ana, "(21–40 of 45)", "Next page (41–45)")
	last := visible(b.waitPrivate(ana, "(41–45 of 45)"))
	if !strings.Contains(last, "box-44") {
		t.Errorf("last page lacks the oldest instance:\n%s", last)
	}
}

func TestStopStartTerminateExtendByOwner(t *testing.T) {
	b := newBed(t, withConfig(lifecycleConfig))
	r := b.launched(ana, "--name notebook")
	firstIP := r.Launch.PublicIP

	b.slash(ana, "/stop", r.Launch.InstanceID)
	b.waitThread(r.MessageTS, "stopped by <@UANA>")
	b.waitPrivate(ana, "stopped by <@UANA>") // she typed it outside the thread
	if in, _ := b.aws.Instance(r.Launch.InstanceID); in.State != "stopped" {
		t.Fatalf("state = %s", in.State)
	}

	b.slash(ana, "/start", "notebook") // by name
	started := b.waitThread(r.MessageTS, "started by <@UANA>")
	in, _ := b.aws.Instance(r.Launch.InstanceID)
	if in.PublicIP == firstIP || !strings.Contains(visible(started), "new public IP `"+in.PublicIP+"`") ||
		!strings.Contains(visible(started), "ssh -i ~/.ssh/data-science.pem ec2-user@"+in.PublicIP) {
		t.Errorf("start reply (old IP %s, new %s):\n%s", firstIP, in.PublicIP, visible(started))
	}

	before, _ := time.Parse(time.RFC3339, in.Tags["computebot:expires-at"])
	b.slash(ana, "/extend", r.Launch.InstanceID+" 4")
	b.waitThread(r.MessageTS, "extended by 4 h by <@UANA>")
	in, _ = b.aws.Instance(r.Launch.InstanceID)
	after, _ := time.Parse(time.RFC3339, in.Tags["computebot:expires-at"])
	if after.Sub(before) != 4*time.Hour {
		t.Errorf("expires-at moved %v, want 4h (%s → %s)", after.Sub(before), before, after)
	}

	b.slash(ana, "/terminate", r.Launch.InstanceID)
	b.waitThread(r.MessageTS, "terminated by <@UANA>")
	if in, _ := b.aws.Instance(r.Launch.InstanceID); in.State != "terminated" {
		t.Fatalf("state = %s", in.State)
	}

	var got []string
	for _, e := range b.audit() {
		if e.Target == r.Launch.InstanceID {
			got = append(got, e.Actor+":"+e.Action+":"+e.Result)
		}
	}
	want := "UANA:launch:ok,UANA:stop:ok,UANA:start:ok,UANA:extend:ok,UANA:terminate:ok"
	if strings.Join(got, ",") != strings.Replace(want, "UANA:launch", "policy:launch", 1) {
		t.Errorf("audit = %v", got)
	}
}

func TestButtonsActOnTheInstance(t *testing.T) {
	b := newBed(t, withConfig(lifecycleConfig))
	r := b.launched(ana, "")
	for _, step := range []struct{ state, button, done string }{
		{"running", "Stop", "stopped by <@UANA>"},
		{"stopped", "Start", "started by <@UANA>"},
		{"running", "Extend 4 h", "extended by 4 h"},
		{"running", "Terminate", "terminated by <@UANA>"},
	} {
		m := b.mark()
		b.slash(ana, "/instances", "")
		b.clickOn(m, ana, "Your instances", step.button)
		b.waitThread(r.MessageTS, step.done)
	}
}

func TestAuthorizationMatrix(t *testing.T) {
	b := newBed(t, withConfig(lifecycleConfig))
	type actor struct {
		id      string
		allowed bool
	}
	actors := []actor{{ana, true}, {bo, true}, {eve, false}} // owner, approver, stranger
	for _, a := range actors {
		r := b.launched(ana, "")
		id := r.Launch.InstanceID
		steps := []struct{ cmd, text, done string }{
			{"/extend", id + " 2", "extended by 2 h"},
			{"/stop", id, "stopped by"},
			{"/start", id, "started by"},
			{"/terminate", id, "terminated by"},
		}
		for _, s := range steps {
			if !a.allowed {
				// The stranger's attempt first: refused privately, nothing changes.
				m := b.mark()
				b.slash(a.id, s.cmd, s.text)
				b.waitPrivateAfter(m, a.id, "belongs to <@UANA>. Only its owner or an approver")
				for _, e := range b.audit() {
					if e.Actor == a.id {
						t.Fatalf("stranger's %s reached AWS: %+v", s.cmd, e)
					}
				}
				b.slash(ana, s.cmd, s.text) // the owner moves the instance on
			} else {
				b.slash(a.id, s.cmd, s.text)
			}
			b.waitThread(r.MessageTS, s.done)
		}
	}
}

func TestInstanceRefusals(t *testing.T) {
	b := newBed(t, withConfig(lifecycleConfig))
	r := b.launched(ana, "--name twin")
	b.launched(ana, "--name twin")
	b.aws.AddInstance(fakeaws.Instance{ID: "i-0f0e0d0c0b0a09080", Type: "t2.micro", State: "running", Tags: map[string]string{"Name": "prod-db"}})
	calls := func() int {
		return b.aws.CallCount("StopInstances") + b.aws.CallCount("StartInstances") + b.aws.CallCount("TerminateInstances") + b.aws.CallCount("CreateTags")
	}
	cases := []struct {
		user, cmd, text, want string
		inAck                 bool
	}{
		{ana, "/stop", "i-xyz", "not an instance ID", true},
		{ana, "/extend", r.Launch.InstanceID + " lots", "hours", true},
		{ana, "/stop", "i-0123456789abcdeff", "I can't find instance `i-0123456789abcdeff`", false},
		{ana, "/start", r.Launch.InstanceID, "is already running", false},
		{ana, "/stop", "twin", "You have 2 instances named `twin`", false},
		{ana, "/stop", "nosuch", "You have no instance named `nosuch`", false},
		{bo, "/terminate", "i-0f0e0d0c0b0a09080", "was not launched by computebot", false},
		{ana, "/extend", r.Launch.InstanceID + " 40", "the maximum is 24 h", false},
	}
	for _, tc := range cases {
		t.Run(tc.cmd+" "+tc.text, func(t *testing.T) {
			ack := ackText(t, b.slash(tc.user, tc.cmd, tc.text))
			if tc.inAck {
				if !strings.Contains(ack, tc.want) {
					t.Errorf("ack = %q, want %q", ack, tc.want)
				}
				return
			}
			b.waitPrivateAfter(0, tc.user, tc.want)
		})
	}
	if n := calls(); n != 0 {
		t.Errorf("%d cloud-changing calls after refusals", n)
	}
	// An approver may extend past the owner's cap.
	b.slash(bo, "/extend", r.Launch.InstanceID+" 40")
	b.waitThread(r.MessageTS, "extended by 40 h by <@UBO>")
}
