package reply

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/computebot/computebot"
)

var auditT0 = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)

func auditQuery() AuditQuery {
	return AuditQuery{Since: auditT0.Add(-7 * 24 * time.Hour), Until: auditT0}
}

func TestAuditLine(t *testing.T) {
	for _, tc := range []struct {
		e    computebot.AuditEntry
		want string // as PlainText renders it
	}{
		{computebot.AuditEntry{Time: auditT0, Actor: "UBO", Action: "launch", RequestID: "R-7K2F9QXM", Target: "i-0123456789abcdef0", Result: "ok", Detail: "t3.small"},
			"2026-12-01 09:30 UTC · @UBO · *launch* · `i-0123456789abcdef0` · request `R-7K2F9QXM` · ok — t3.small"},
		{computebot.AuditEntry{Time: auditT0, Actor: computebot.PolicyActor, Action: "approve", RequestID: "R-1", Result: "ok", Detail: "auto-approved type t3.medium"},
			"2026-12-01 09:30 UTC · policy · *approve* · request `R-1` · ok — auto-approved type t3.medium"},
		{computebot.AuditEntry{Time: auditT0, Actor: computebot.SystemActor, Action: "idle-stop", Target: "i-0123abcd", Result: "ok"},
			"2026-12-01 09:30 UTC · computebot · *idle-stop* · `i-0123abcd` · ok"},
		{computebot.AuditEntry{Time: auditT0, Actor: "UANA", Action: "invoke", Target: "etl", Result: "AccessDeniedException", Detail: "User: arn:aws:sts::1:assumed-role/x is not\nauthorized"},
			"2026-12-01 09:30 UTC · @UANA · *invoke* · `etl` · :x: `AccessDeniedException` — User: arn:aws:sts::1:assumed-role/x is not authorized"},
		{computebot.AuditEntry{Time: auditT0, Action: "stop"},
			"2026-12-01 09:30 UTC · unknown · *stop* · no result recorded"},
		{computebot.AuditEntry{Time: auditT0, Actor: "someone else", Action: "stop", Target: "a`b", Result: "ok"},
			"2026-12-01 09:30 UTC · someone else · *stop* · `a'b` · ok"},
	} {
		if got := PlainText(AuditLine(tc.e)); got != tc.want {
			t.Errorf("AuditLine(%+v) =\n%s\nwant\n%s", tc.e, got, tc.want)
		}
	}
	// People and times are elements, for each renderer to show its way.
	spans := Spans(AuditLine(computebot.AuditEntry{Time: auditT0, Actor: "UBO", Action: "deny", Result: "ok"}))
	if spans[0].Kind != SpanDate || !spans[0].Time.Equal(auditT0) || spans[2].Kind != SpanUser || spans[2].ID != "UBO" {
		t.Errorf("spans = %+v", spans)
	}
}

// Foreign text (AWS messages, function names) can never carry an element:
// no mention, no date out of a detail.
func TestAuditLineLiteral(t *testing.T) {
	forged := User("UEVE") + " " + Date(auditT0)
	line := AuditLine(computebot.AuditEntry{Time: auditT0, Actor: "UBO", Action: "invoke" + forged, Target: forged, Result: forged, Detail: forged})
	users := 0
	for _, s := range Spans(line) {
		if s.Kind == SpanUser {
			users++
			if s.ID != "UBO" {
				t.Errorf("forged mention of %s in %q", s.ID, line)
			}
		}
	}
	if users != 1 {
		t.Errorf("%d mentions in %q, want 1", users, line)
	}
	long := AuditLine(computebot.AuditEntry{Time: auditT0, Actor: "UBO", Action: "invoke", Result: "ok", Detail: strings.Repeat("x", 5000)})
	if n := utf8.RuneCountInString(long); n > 500 {
		t.Errorf("a long detail makes a %d-rune line", n)
	}
}

// entries returns n entries, newest first, one a minute before auditT0.
func auditEntries(n int) []computebot.AuditEntry {
	es := make([]computebot.AuditEntry, n)
	for i := range es {
		es[i] = computebot.AuditEntry{Time: auditT0.Add(-time.Duration(i) * time.Minute), Actor: "UBO", Action: fmt.Sprintf("act-%02d", i),
			Target: "i-0123456789abcdef0", RequestID: "R-7K2F9QXM", Result: "ok", Detail: strings.Repeat("d", 1000)}
	}
	return es
}

func TestAuditLogPages(t *testing.T) {
	q := auditQuery()
	es := auditEntries(60)
	first := AuditLog(es, 0, q)
	if first.Text != "Audit log: 1–25 of 60" {
		t.Errorf("text = %q", first.Text)
	}
	if got := PlainText(first.Blocks[0].Text); got != "*Audit log* since 2026-11-24 09:30 UTC, newest first (1–25 of 60)" {
		t.Errorf("title = %q", got)
	}
	if len(first.Blocks) != 1+AuditPageSize+1 || len(first.Blocks) > 50 {
		t.Fatalf("%d blocks", len(first.Blocks))
	}
	if !strings.Contains(first.Blocks[1].Text, "*act-00*") || !strings.Contains(first.Blocks[25].Text, "*act-24*") {
		t.Errorf("page 1 is not the newest 25: %q … %q", first.Blocks[1].Text, first.Blocks[25].Text)
	}
	for _, b := range first.Blocks {
		// A Slack date renders to about 70 characters, a mention to 12.
		if n := utf8.RuneCountInString(b.Text); n > 1000 {
			t.Errorf("section of %d runes", n)
		}
	}
	next := first.Blocks[len(first.Blocks)-1]
	if next.Kind != Actions || len(next.Buttons) != 1 || next.Buttons[0].Text != "Next page (26–50)" || next.Buttons[0].ActionID != ActionPage {
		t.Fatalf("next-page block = %+v", next)
	}
	wantValue := fmt.Sprintf("audit||%d|%d|25", q.Since.UnixNano(), q.Until.UnixNano())
	if v := next.Buttons[0].Value; v != wantValue {
		t.Errorf("value = %q, want %q", v, wantValue)
	}
	last := AuditLog(es, 50, q)
	if last.Text != "Audit log: 51–60 of 60" || len(last.Blocks) != 1+10 {
		t.Errorf("last page: %q, %d blocks", last.Text, len(last.Blocks))
	}
	for _, b := range last.Blocks {
		if b.Kind == Actions {
			t.Error("the last page has a next-page button")
		}
	}
	if got := AuditLog(es, 99, q).Text; got != "Audit log: 51–60 of 60" {
		t.Errorf("an offset past the end shows %q, want the last page", got)
	}
	if got := AuditLog(es[:AuditPageSize], 0, q); len(got.Blocks) != 1+AuditPageSize {
		t.Errorf("exactly one page: %d blocks", len(got.Blocks))
	}
}

func TestAuditLogFilteredAndEmpty(t *testing.T) {
	q := auditQuery()
	q.Instance = "i-0123456789abcdef0"
	if got := PlainText(AuditLog(auditEntries(1), 0, q).Blocks[0].Text); !strings.HasPrefix(got, "*Audit log* for `i-0123456789abcdef0` since") {
		t.Errorf("instance title = %q", got)
	}
	if got := PlainText(AuditLog(nil, 0, q).Text); got != "The audit log has no entries for `i-0123456789abcdef0` since 2026-11-24 09:30 UTC. `--since 90d` looks further back." {
		t.Errorf("empty = %q", got)
	}
	q = auditQuery()
	q.User = "UANA"
	if got := PlainText(AuditLog(auditEntries(1), 0, q).Blocks[0].Text); !strings.HasPrefix(got, "*Audit log* of what @UANA did since") {
		t.Errorf("user title = %q", got)
	}
	q.Since = q.Until.Add(-90 * 24 * time.Hour)
	if got := PlainText(AuditLog(nil, 0, q).Text); got != "The audit log has no entries of what @UANA did since 2026-09-02 09:30 UTC." {
		t.Errorf("empty over 90 days = %q", got)
	}
}

func TestAuditPageValue(t *testing.T) {
	since := time.Date(2026, 11, 24, 9, 30, 0, 123, time.UTC)
	for _, q := range []AuditQuery{
		{Since: since, Until: auditT0.Add(456)},
		{Instance: "i-0123456789abcdef0", Since: since, Until: auditT0},
		{User: "UANA", Since: since, Until: auditT0},
	} {
		v := AuditPageValue(q, 50)
		got, offset, ok := ParseAuditPageValue(v)
		if !ok || offset != 50 || !reflect.DeepEqual(got, q) {
			t.Errorf("%q → %+v %d %v, want %+v", v, got, offset, ok, q)
		}
		if len(v) > 2000 {
			t.Errorf("value of %d bytes (Slack's limit is 2,000)", len(v))
		}
	}
	for _, v := range []string{"", "instances|all|20", "lambda||40", "audit||1|2", "audit||1|2|3|4", "audit||x|2|0", "audit||1|2|-1", "audit||5|2|0", "list|x|1|2|3"} {
		if _, _, ok := ParseAuditPageValue(v); ok {
			t.Errorf("%q parsed", v)
		}
	}
}

func TestAuditLogFailed(t *testing.T) {
	if got := AuditLogFailed("store is closed " + User("UEVE")).Text; strings.ContainsRune(got, elemStart) || !strings.HasPrefix(got, "I could not read the audit log: store is closed") {
		t.Errorf("AuditLogFailed = %q", got)
	}
}
