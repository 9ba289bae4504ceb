package flow_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/reply"
	"github.com/computebot/computebot/store"
)

// withKV gives the env a real key/value store (bbolt in a temp dir).
func withKV(t *testing.T) envOption {
	return func(e *env) {
		db, err := store.Open(filepath.Join(t.TempDir(), "kv.db"), store.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		e.kv = db
	}
}

func fieldOf(v reply.View, id string) *reply.Field {
	for _, b := range v.Blocks {
		if b.Field != nil && b.Field.ID == id {
			return b.Field
		}
	}
	return nil
}

// TestLaunchFormOpens: /launch alone opens the form with its trigger; the
// allowed types carry their specs and prices; the channel it was typed in
// travels with it.
func TestLaunchFormOpens(t *testing.T) {
	e := newEnv(t)
	o := e.slashOrigin(ana)
	ans := e.slash(o, "/launch", "")
	if ans.Reply != nil || ans.Command != "launch" {
		t.Fatalf("answer %+v", ans)
	}
	opened := e.chat.views(mOpenView)
	if len(opened) != 1 || opened[0].Trigger != o.Trigger {
		t.Fatalf("views.open calls %+v, want one with the command's trigger", opened)
	}
	v := opened[0].View
	if !v.Modal || v.CallbackID != reply.LaunchFormCallback || v.Metadata != channel || fieldOf(v, commands.FieldChannel) != nil {
		t.Errorf("form %+v", v)
	}
	var labels []string
	for _, o := range fieldOf(v, commands.FieldType).Options {
		labels = append(labels, o.Text)
	}
	if want := []string{"t2.micro · 1 vCPU, 1 GiB, ≈ $0.0116/h", "t3.small · 2 vCPU, 2 GiB, ≈ $0.50/h", "t3.medium · 2 vCPU, 4 GiB, ≈ $0.0416/h"}; !slices.Equal(labels, want) {
		t.Errorf("type options %q, want %q", labels, want)
	}
}

// TestLaunchFormSlowAWS: when the specs take longer than the form may wait,
// it opens at once with the type names, and is updated when they arrive.
func TestLaunchFormSlowAWS(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	e.cloud.setOnCall(func(method, _ string) {
		if method == cInstanceType {
			<-release
		}
	})
	o := e.slashOrigin(ana)
	e.slash(o, "/launch", "")
	opened := e.chat.views(mOpenView)
	if len(opened) != 1 || fieldOf(opened[0].View, commands.FieldType).Options[0].Text != "t2.micro" {
		t.Fatalf("opened %+v, want the form with bare type names", opened)
	}
	close(release)
	waitFor(t, "the form updated with the specs", func() bool { return len(e.chat.views(mUpdView)) == 1 })
	up := e.chat.views(mUpdView)[0]
	if up.TS != opened[0].TS || !strings.Contains(fieldOf(up.View, commands.FieldType).Options[0].Text, "1 vCPU") {
		t.Errorf("update %+v", up)
	}
}

// TestLaunchFormSubmit: the submission is checked field by field before the
// ack (errors on the fields, nothing stored); a good one is the same
// request as the typed /launch, posted where /launch was typed, or in the
// channel the form asked for.
func TestLaunchFormSubmit(t *testing.T) {
	e := newEnv(t)
	submit := func(ch string, values map[string]string) flow.Answer {
		e.n++
		return e.deliver(flow.Envelope{ID: "sub-" + strings.Repeat("x", e.n),
			Origin: flow.Origin{User: ana, Channel: ch, Trigger: "trigger-" + strings.Repeat("y", e.n)},
			Input:  flow.FormInput(reply.LaunchFormCallback, values)})
	}
	before := len(e.store.allIntents())
	ans := submit(channel, map[string]string{commands.FieldType: "m5.large", commands.FieldHours: "500", commands.FieldName: "a\x01b"})
	for _, f := range []string{commands.FieldType, commands.FieldName} {
		if ans.FieldErrors[f] == "" {
			t.Errorf("no error on %s: %v", f, ans.FieldErrors)
		}
	}
	if !strings.Contains(ans.FieldErrors[commands.FieldType], "not an allowed instance type") || ans.Job != nil || len(e.store.allIntents()) != before || e.store.count() != 0 {
		t.Errorf("answer %+v; stored %d intents, %d requests: want field errors and nothing stored", ans, len(e.store.allIntents())-before, e.store.count())
	}
	// Hours over launch.max_lease (72 h): on the hours field.
	if ans := submit(channel, map[string]string{commands.FieldType: "t2.micro", commands.FieldHours: "100"}); !strings.Contains(ans.FieldErrors[commands.FieldHours], "longer than the maximum") {
		t.Errorf("long lease: %v", ans.FieldErrors)
	}
	// From the home tab without a channel: asked for.
	if ans := submit("", map[string]string{commands.FieldType: "t2.micro"}); ans.FieldErrors[commands.FieldChannel] == "" {
		t.Errorf("no channel: %v", ans.FieldErrors)
	}

	ans = submit(elsewhere, map[string]string{commands.FieldType: "t2.micro", commands.FieldHours: "4", commands.FieldReason: "from the form"})
	if len(ans.FieldErrors) > 0 || ans.Outcome != "accepted" {
		t.Fatalf("good submission: %+v", ans)
	}
	r := e.store.last()
	if r == nil || r.State != sPending || r.ChannelID != elsewhere || r.Launch.InstanceType != "t2.micro" || r.Launch.Reason != "from the form" || r.Launch.Lease.Hours() != 4 {
		t.Fatalf("request %+v", r)
	}
	if posts := e.chat.posts(elsewhere, ""); len(posts) != 1 || posts[0].TS != r.MessageTS {
		t.Errorf("posts in %s: %q", elsewhere, texts(posts))
	}
}

// TestHomeTab: the tab shows the person's instances, open requests and
// keys, and a Launch… button; an approver also sees the pending requests
// with Approve / Deny, which decide them from there.
func TestHomeTab(t *testing.T) {
	e := newEnv(t, withKV(t))
	box := managed(boxID, ana, "box", computebot.InstanceRunning, epoch.Add(-2*60*60*1e9), "R-BOX")
	box.Tags[computebot.TagSchedule] = "weekdays 08:00-19:00 Europe/Berlin"
	e.cloud.add(box)
	r, _ := e.request(ana, "t2.micro --reason home")
	e.f.Run(e.ctx, flow.HomeJob(ana))
	homes := e.chat.views(mHome)
	if len(homes) != 1 || homes[0].User != ana {
		t.Fatalf("publishes %+v", homes)
	}
	tab := words(reply.Message{Blocks: homes[0].View.Blocks})
	for _, want := range []string{"[Launch…]", "box", boxID, "[Stop]", "office hours weekdays 08:00-19:00 Europe/Berlin", r.ID, "waiting for an approver", "Your SSH keys"} {
		if !strings.Contains(tab, want) {
			t.Errorf("ana's tab lacks %q:\n%s", want, tab)
		}
	}
	if strings.Contains(tab, "Waiting for an approver (") {
		t.Errorf("ana is no approver but sees the pending list:\n%s", tab)
	}

	e.f.Run(e.ctx, flow.HomeJob(bo))
	boTab := words(reply.Message{Blocks: e.chat.views(mHome)[1].View.Blocks})
	if !strings.Contains(boTab, "Waiting for an approver* (1)") || !strings.Contains(boTab, "[Approve]") || !strings.Contains(boTab, "Spend this month") {
		t.Errorf("bo's tab:\n%s", boTab)
	}
	// Bo approves from his tab: no channel, no message.
	o := flow.Origin{User: bo, Trigger: "home-click"}
	e.deliver(flow.Envelope{ID: "home-approve", Origin: o, Input: flow.Input{Source: computebot.SourceClick, ActionID: reply.ActionHomeApprove, Value: r.ID}})
	e.waitState(r.ID, sDone)
	if got := e.store.get(r.ID); got.DecidedBy != bo {
		t.Errorf("decided by %q", got.DecidedBy)
	}
	// The change refreshes the tabs of those who opened them.
	waitFor(t, "the tabs refreshed", func() bool { return len(e.chat.views(mHome)) >= 4 })

	// A second click on the decided request is refused, privately (a DM).
	e.deliver(flow.Envelope{ID: "home-approve-2", Origin: o, Input: flow.Input{Source: computebot.SourceClick, ActionID: reply.ActionHomeApprove, Value: r.ID}})
	waitFor(t, "the refusal by DM", func() bool { return len(e.chat.posts("D"+bo, "")) == 1 })
	if got := texts(e.chat.posts("D"+bo, "")); !strings.Contains(got[0], "already") {
		t.Errorf("refusal %q", got)
	}
}

// TestMonthSpend: an approver's tab adds up each person's running time this
// month from the audit log (launch, stop, start) at the request's price,
// and counts an instance without news this month that runs now from the 1st.
func TestMonthSpend(t *testing.T) {
	e := newEnv(t, withKV(t))
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	e.store.put(&computebot.Request{ID: "R-A", Requester: ana, State: sDone, Launch: &computebot.LaunchRequest{InstanceType: "t2.micro", InstanceID: "i-0000000000000000a"}})
	for _, a := range []computebot.AuditEntry{
		{Time: day(2, 0), Actor: bo, Action: "launch", RequestID: "R-A", Target: "i-0000000000000000a", Result: "ok"},
		{Time: day(3, 0), Actor: ana, Action: "stop", RequestID: "R-A", Target: "i-0000000000000000a", Result: "ok"}, // 24 h
		{Time: day(10, 0), Actor: ana, Action: "start", RequestID: "R-A", Target: "i-0000000000000000a", Result: "ok"},
		{Time: day(11, 0), Actor: "computebot", Action: "idle-stop", RequestID: "R-A", Target: "i-0000000000000000a", Result: "ok"}, // 24 h
		{Time: day(12, 0), Actor: ana, Action: "start", RequestID: "R-A", Target: "i-0000000000000000a", Result: "InsufficientInstanceCapacity"},
	} {
		if err := e.store.Audit(e.ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// An extension is no news of running: Carl's box has run since October.
	if err := e.store.Audit(e.ctx, computebot.AuditEntry{Time: day(5, 0), Actor: carl, Action: "extend", Target: "i-0000000000000000c", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	// A box stopped since October and terminated this month cost nothing.
	if err := e.store.Audit(e.ctx, computebot.AuditEntry{Time: day(20, 0), Actor: eve, Action: "terminate", Target: "i-0000000000000000e", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	// Carl's box has run since October without news: all of November.
	old := managed("i-0000000000000000c", carl, "old", computebot.InstanceRunning, time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC), "R-OLD")
	old.Type = "t3.medium"
	e.cloud.add(old)
	e.f.Run(e.ctx, flow.HomeJob(bo))
	tab := words(reply.Message{Blocks: e.chat.views(mHome)[0].View.Blocks})
	// ana: 48 h × $0.0116 = $0.56; carl: (27 d + 9 h) × $0.0416 = 657 h × 0.0416 = $27.33.
	if strings.Contains(tab, "UEVE") {
		t.Errorf("a terminate of a stopped box counted:\n%s", tab)
	}
	for _, want := range []string{"@UCARL ≈ $27.33", "@UANA ≈ $0.56"} {
		if !strings.Contains(tab, want) {
			t.Errorf("tab lacks %q:\n%s", want, tab)
		}
	}
	if strings.Index(tab, "UCARL") > strings.Index(tab, "@UANA ≈") {
		t.Errorf("not highest first:\n%s", tab)
	}
}

// TestFormRedeliveryAfterConfigChange: a submission delivered again after
// the rules changed is recognised as the same delivery, not judged anew.
func TestFormRedeliveryAfterConfigChange(t *testing.T) {
	e := newEnv(t)
	env := flow.Envelope{ID: "sub-1", Origin: flow.Origin{User: ana, Channel: channel, Trigger: "trig-1"},
		Input: flow.FormInput(reply.LaunchFormCallback, map[string]string{commands.FieldType: "t2.micro"})}
	if ans := e.deliver(env); ans.Outcome != "accepted" {
		t.Fatalf("first delivery: %+v", ans)
	}
	e.cfg.Launch.AllowedTypes = []string{"t3.small"}
	ans := e.f.Accept(e.ctx, env)
	if ans.Outcome != "duplicate" || len(ans.FieldErrors) > 0 || ans.Job != nil {
		t.Errorf("redelivery: %+v, want a duplicate without field errors", ans)
	}
	if n := e.store.count(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
