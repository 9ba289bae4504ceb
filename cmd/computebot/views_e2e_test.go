package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/internal/fakeslack"
	"github.com/computebot/computebot/reply"
)

// waitView waits for a view matching pred.
func (b *bed) waitView(what string, pred func(fakeslack.View) bool) fakeslack.View {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := b.slack.WaitView(ctx, pred)
	if err != nil {
		b.t.Fatalf("no %s: %v\nlog:\n%s", what, err, b.stderr)
	}
	return v
}

// viewJSON is a view's blocks as Slack holds them (option labels are not
// in View.Text).
func viewJSON(v fakeslack.View) string {
	var b strings.Builder
	for _, raw := range v.Blocks {
		b.Write(raw)
	}
	return b.String()
}

func formValues(typ, hours, name, reason string) map[string]map[string]any {
	return map[string]map[string]any{
		commands.FieldType:   {commands.FieldType: fakeslack.SelectValue(typ)},
		commands.FieldHours:  {commands.FieldHours: fakeslack.NumberValue(hours)},
		commands.FieldName:   {commands.FieldName: fakeslack.TextValue(name)},
		commands.FieldReason: {commands.FieldReason: fakeslack.TextValue(reason)},
	}
}

// TestLaunchFormEndToEnd: /launch alone opens the form within Slack's 3 s
// while every AWS call takes 2 s; the form is updated with the specs and
// prices when they arrive; a bad field comes back as an error on it (the
// form stays open, nothing is posted); a good submission is the typed
// /launch's request, posted in the channel, approved and launched.
func TestLaunchFormEndToEnd(t *testing.T) {
	b := newBed(t)
	b.aws.SetLatency("", 2*time.Second)
	b.slash(ana, "/launch", "")
	form := b.waitView("launch form", func(v fakeslack.View) bool { return v.Type == "modal" && v.CallbackID == reply.LaunchFormCallback })
	if len(b.slack.Calls("views.open")) != 1 || b.slack.Calls("views.open")[0].Error != "" {
		t.Fatalf("views.open: %+v", b.slack.Calls("views.open"))
	}
	if strings.Contains(viewJSON(form), "vCPU") {
		t.Errorf("the form waited for AWS (it has the specs already): %s", viewJSON(form))
	}
	updated := b.waitView("the form with the specs", func(v fakeslack.View) bool {
		return v.ID == form.ID && strings.Contains(viewJSON(v), "t2.micro · 1 vCPU, 1 GiB, ≈ $0.0116/h")
	})
	b.aws.SetLatency("", 0)

	// A name with a control character: refused on the field.
	if _, err := b.slack.SendViewSubmission(ana, updated.ID, formValues("t2.micro", "4", "box\x07", "form")); err != nil {
		t.Fatal(err)
	}
	if !pollFor(5*time.Second, func() bool { return b.slack.ViewErrors(updated.ID)[commands.FieldName] != "" }) {
		t.Fatalf("no error on the name field; errors %v, bad acks %+v", b.slack.ViewErrors(updated.ID), b.slack.BadAcks())
	}
	if v, _ := b.slack.View(updated.ID); v.Closed {
		t.Fatal("the form closed on an error")
	}
	if n := len(b.requests()); n != 0 {
		t.Fatalf("%d requests stored from a refused form", n)
	}

	if _, err := b.slack.SendViewSubmission(ana, updated.ID, formValues("t2.micro", "4", "form-box", "from the form")); err != nil {
		t.Fatal(err)
	}
	msg := b.requestMessage(ana)
	if text := visible(msg); !strings.Contains(text, "t2.micro") || !strings.Contains(text, "from the form") || !strings.Contains(text, "4 h") {
		t.Errorf("request message: %s", text)
	}
	if v, _ := b.slack.View(updated.ID); !v.Closed {
		t.Error("the form stayed open after a good submission")
	}
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")
	if insts := b.aws.Instances(); len(insts) != 1 || insts[0].Tags[computebot.TagName] != "form-box" {
		t.Errorf("instances %+v", insts)
	}
}

// TestAppHomeEndToEnd: opening the home tab publishes it (Launch…, the
// person's instances and requests; for an approver the pending ones); its
// Launch… button and the global shortcut open the form, which asks for the
// channel; an approver approves from the tab, and the tabs follow.
func TestAppHomeEndToEnd(t *testing.T) {
	b := newBed(t)
	b.slash(ana, "/launch", "t2.micro --reason home")
	msg := b.requestMessage(ana)

	if _, err := b.slack.SendAppHomeOpened(ana); err != nil {
		t.Fatal(err)
	}
	anaHome := b.waitView("ana's home tab", func(v fakeslack.View) bool { return v.Type == "home" && v.UserID == ana })
	if !strings.Contains(anaHome.Text, "waiting for an approver") || strings.Contains(anaHome.Text, "Waiting for an approver (") {
		t.Errorf("ana's tab: %s", anaHome.Text)
	}
	if _, err := b.slack.ClickInView(ana, anaHome.ID, "Launch…"); err != nil {
		t.Fatal(err)
	}
	form := b.waitView("the form from the tab", func(v fakeslack.View) bool { return v.Type == "modal" && v.UserID == ana })
	if !strings.Contains(form.Text, "Post the request in") {
		t.Errorf("the form from the home tab does not ask for a channel: %s", form.Text)
	}
	if _, err := b.slack.SendShortcut(bo, reply.ActionOpenLaunchForm); err != nil {
		t.Fatal(err)
	}
	b.waitView("the form from the shortcut", func(v fakeslack.View) bool { return v.Type == "modal" && v.UserID == bo })

	if _, err := b.slack.SendAppHomeOpened(bo); err != nil {
		t.Fatal(err)
	}
	boHome := b.waitView("bo's home tab", func(v fakeslack.View) bool {
		return v.Type == "home" && v.UserID == bo && strings.Contains(v.Text, "Waiting for an approver")
	})
	if got := b.slack.ViewButtons(boHome.ID); !strings.Contains(strings.Join(got, ","), "Approve,Deny") {
		t.Fatalf("bo's buttons %v", got)
	}
	if _, err := b.slack.ClickInView(bo, boHome.ID, "Approve"); err != nil {
		t.Fatal(err)
	}
	b.waitThread(msg.TS, "is running")
	// Ana's tab now shows her running instance.
	b.waitView("ana's tab with the instance", func(v fakeslack.View) bool {
		return v.Type == "home" && v.UserID == ana && strings.Contains(v.Text, "running")
	})
}
