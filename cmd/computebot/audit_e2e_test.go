package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
)

// TestAuditLogInSlack: after a launch and a stop, an approver reads the
// audit log privately (all of it, one instance's, one person's), a stranger
// is refused privately, and every entry is also a JSON log line with
// "audit":true.
func TestAuditLogInSlack(t *testing.T) {
	b := newBed(t)
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")
	r := b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestDone })
	id := r.Launch.InstanceID
	b.slash(ana, "/stop", id)
	b.waitThread(msg.TS, "stopped by <@UANA>")

	// Everything, newest first.
	mark := b.mark()
	if txt := ackText(t, b.slash(bo, "/computebot", "audit")); txt != "" {
		t.Errorf("ack = %q, want a silent ack", txt)
	}
	page := visible(b.waitPrivateAfter(mark, bo, "Audit log"))
	stop := strings.Index(page, "<@UANA> · *stop* · `"+id+"` · request `"+r.ID+"` · ok")
	launch := strings.Index(page, "<@UBO> · *launch* · `"+id+"` · request `"+r.ID+"` · ok")
	approve := strings.Index(page, "<@UBO> · *approve* · request `"+r.ID+"` · ok")
	if stop < 0 || launch < 0 || approve < 0 || !(stop < launch && launch < approve) {
		t.Errorf("want stop, launch, approve, newest first (at %d, %d, %d):\n%s", stop, launch, approve, page)
	}
	if !strings.Contains(page, "(1–3 of 3)") || !strings.Contains(page, "<!date^") {
		t.Errorf("page lacks its count or the entries' dates:\n%s", page)
	}
	for _, m := range b.slack.Messages(channel) {
		if !m.Ephemeral && strings.Contains(visible(m), "Audit log") {
			t.Errorf("the audit log was posted in the channel: %s", visible(m))
		}
	}

	// One instance: what happened to it, and the approval of the request
	// that launched it (whose entry names the request, not the instance).
	mark = b.mark()
	b.slash(bo, "/computebot", "audit "+strings.ToUpper(id)+" --since 1d")
	page = visible(b.waitPrivateAfter(mark, bo, "for `"+id+"`"))
	if !strings.Contains(page, "*stop*") || !strings.Contains(page, "*launch*") || !strings.Contains(page, "*approve*") || !strings.Contains(page, "(1–3 of 3)") {
		t.Errorf("instance filter:\n%s", page)
	}

	// One person, as Slack writes a mention: what they did.
	mark = b.mark()
	b.slash(carl, "/computebot", "audit <@UANA|ana>") // carl approves through SPLATFORM
	page = visible(b.waitPrivateAfter(mark, carl, "of what <@UANA> did"))
	if !strings.Contains(page, "*stop*") || strings.Contains(page, "*launch*") || !strings.Contains(page, "(1–1 of 1)") {
		t.Errorf("user filter:\n%s", page)
	}
	mark = b.mark()
	b.slash(bo, "/computebot", "audit @ana")
	b.waitPrivateAfter(mark, bo, "pick the person from Slack's list")
	mark = b.mark()
	b.slash(bo, "/computebot", "audit i-0fffffffffffffff0")
	b.waitPrivateAfter(mark, bo, "The audit log has no entries for `i-0fffffffffffffff0` since")

	// A stranger is refused, privately.
	mark = b.mark()
	b.slash(eve, "/computebot", "audit")
	b.waitPrivateAfter(mark, eve, "Only approvers can read the audit log (<@UBO>, <!subteam^SPLATFORM>).")
	for _, m := range b.slack.Messages(channel)[mark:] {
		if strings.Contains(visible(m), "*launch*") {
			t.Errorf("a stranger saw the log: %s", visible(m))
		}
	}

	// Every entry is a structured log line.
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(b.stderr.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"audit":true`) {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %v: %s", err, line)
		}
		if rec["msg"] != "audit" || rec["audit"] != true || rec["request_id"] != r.ID || strings.Count(line, `"time":`) != 1 {
			t.Errorf("audit line = %s", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["time"])); err != nil {
			t.Errorf("audit line time: %v: %s", err, line)
		}
		seen[fmt.Sprintf("%s:%s:%s:%s", rec["actor"], rec["action"], rec["target"], rec["result"])] = true
	}
	for _, want := range []string{bo + ":approve::ok", bo + ":launch:" + id + ":ok", ana + ":stop:" + id + ":ok"} {
		if !seen[want] {
			t.Errorf("no audit log line %s; saw %v", want, seen)
		}
	}
}

// TestAuditLogPaging: many entries come in pages of 25 within Slack's
// limits; the Next page button keeps the window, so an entry recorded in
// between does not shift the pages; a stranger's click on it is refused.
func TestAuditLogPaging(t *testing.T) {
	b := newBed(t)
	now := time.Now()
	ctx := context.Background()
	// In time order, as the bot records them (see store.AuditSince).
	if err := b.main.store.Audit(ctx, computebot.AuditEntry{Time: now.Add(-8 * 24 * time.Hour), Actor: ana, Action: "too-old", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		e := computebot.AuditEntry{Time: now.Add(time.Duration(i-60) * time.Minute), Actor: ana, Action: fmt.Sprintf("seeded-%02d", i),
			Target: "i-0123456789abcdef0", RequestID: "R-PAGE2222", Result: "ok", Detail: strings.Repeat("detail ", 100)}
		if err := b.main.store.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	b.slash(bo, "/computebot", "audit")
	first := b.waitPrivate(bo, "(1–25 of 60)")
	var blocks []map[string]any
	if err := jsonUnmarshal(first.Blocks, &blocks); err != nil || len(blocks) > 50 {
		t.Fatalf("page has %d blocks (max 50), err %v", len(blocks), err)
	}
	for _, bl := range blocks {
		if txt, _ := bl["text"].(map[string]any); txt != nil && len([]rune(fmt.Sprint(txt["text"]))) > 3000 {
			t.Errorf("a section of %d characters", len([]rune(fmt.Sprint(txt["text"]))))
		}
	}
	if text := visible(first); !strings.Contains(text, "*seeded-59*") || strings.Contains(text, "*seeded-34*") {
		t.Errorf("page 1 is not the newest 25:\n%s", text)
	}

	// Recorded after the first page: not in this answer's pages.
	if err := b.main.store.Audit(ctx, computebot.AuditEntry{Actor: bo, Action: "late", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	b.clickOn(0, bo, "(1–25 of 60)", "Next page (26–50)")
	second := visible(b.waitPrivate(bo, "(26–50 of 60)"))
	if !strings.Contains(second, "*seeded-34*") || !strings.Contains(second, "*seeded-10*") || strings.Contains(second, "*seeded-35*") || strings.Contains(second, "*late*") {
		t.Errorf("page 2:\n%s", second)
	}
	b.clickOn(0, bo, "(26–50 of 60)", "Next page (51–60)")
	last := b.waitPrivate(bo, "(51–60 of 60)")
	if text := visible(last); !strings.Contains(text, "*seeded-00*") || strings.Contains(text, "too-old") {
		t.Errorf("last page:\n%s", text)
	}
	if btns := b.slack.Buttons(channel, last.TS); len(btns) != 0 {
		t.Errorf("the last page has buttons %v", btns)
	}

	// A click is authorized for the clicker.
	mark := b.mark()
	b.clickOn(0, bo, "(1–25 of 60)", "Next page (26–50)") // bo's page, bo's click: fine
	b.waitPrivateAfter(mark, bo, "(26–50 of 60)")
	env, err := b.slack.Click(eve, channel, first.TS, "Next page (26–50)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), env); err != nil {
		t.Fatal(err)
	}
	b.waitPrivateAfter(mark, eve, "Only approvers can read the audit log")
}
