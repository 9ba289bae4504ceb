package reply

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/computebot/computebot"
)

// AuditPageSize is how many entries one page of /computebot audit shows:
// a section each, plus the title and the Next page button, 27 of Slack's
// 50 blocks; a section stays far below Slack's 3,000 characters because
// the detail is clipped (maxAuditDetail).
const AuditPageSize = 25

// maxAuditDetail is the most of an entry's detail a page shows, in runes.
const maxAuditDetail = 300

// AuditQuery is the window and the filter of /computebot audit. Its Next
// page button carries it whole (AuditPageValue), so every page of one
// answer shows the same entries: what is recorded after the first page
// (after Until) does not shift the later pages.
type AuditQuery struct {
	Instance string    // only the entries about this instance (their Target); "" for any
	User     string    // only the entries this Slack user acted in (their Actor); "" for anyone
	Since    time.Time // the window's start, included
	Until    time.Time // its end, included: the moment the first page was asked for
}

// AuditPageValue is the value of the Next page button of an audit page:
// "audit|FILTER|SINCE|UNTIL|OFFSET", FILTER the instance or user ID (or
// empty), SINCE and UNTIL in Unix nanoseconds, OFFSET the index of the
// next page's first entry. (The lists' values have three fields, see
// ActionPage.)
func AuditPageValue(q AuditQuery, offset int) string {
	filter := q.Instance
	if filter == "" {
		filter = q.User
	}
	return fmt.Sprintf("audit|%s|%d|%d|%d", filter, q.Since.UnixNano(), q.Until.UnixNano(), offset)
}

// AuditLog renders one page of an audit answer. entries is the whole
// answer, newest first; offset is the index of this page's first entry.
func AuditLog(entries []computebot.AuditEntry, offset int, q AuditQuery) Message {
	of := ""
	switch {
	case q.Instance != "":
		of = fmt.Sprintf(" for `%s`", q.Instance)
	case q.User != "":
		of = " of what " + User(q.User) + " did"
	}
	if len(entries) == 0 {
		text := fmt.Sprintf("The audit log has no entries%s since %s.", of, Date(q.Since))
		if q.Until.Sub(q.Since) < 90*24*time.Hour {
			text += " `--since 90d` looks further back."
		}
		return Plain(text)
	}
	if offset < 0 || offset >= len(entries) {
		offset = (len(entries) - 1) / AuditPageSize * AuditPageSize // the last page
	}
	end := min(offset+AuditPageSize, len(entries))
	blocks := []Block{{Kind: Section, Text: fmt.Sprintf("*Audit log*%s since %s, newest first (%d–%d of %d)", of, Date(q.Since), offset+1, end, len(entries))}}
	for _, e := range entries[offset:end] {
		blocks = append(blocks, Block{Kind: Section, Text: AuditLine(e)})
	}
	if end < len(entries) {
		blocks = append(blocks, Block{Kind: Actions, ID: "page:audit", Buttons: []Button{{
			Text:     fmt.Sprintf("Next page (%d–%d)", end+1, min(end+AuditPageSize, len(entries))),
			ActionID: ActionPage,
			Value:    AuditPageValue(q, end),
		}}})
	}
	return Message{Text: fmt.Sprintf("Audit log%s: %d–%d of %d", of, offset+1, end, len(entries)), Blocks: blocks}
}

// AuditLine is one entry on one line: when, who, what, on what, in which
// request, how it ended, and the detail.
func AuditLine(e computebot.AuditEntry) string {
	parts := []string{Date(e.Time), auditActor(e.Actor), "*" + oneLine(e.Action) + "*"}
	if e.Target != "" {
		parts = append(parts, inlineCode(e.Target))
	}
	if e.RequestID != "" {
		parts = append(parts, "request "+inlineCode(e.RequestID))
	}
	switch e.Result {
	case "ok":
		parts = append(parts, "ok")
	case "":
		parts = append(parts, "no result recorded")
	default:
		parts = append(parts, ":x: "+inlineCode(e.Result))
	}
	line := strings.Join(parts, " · ")
	if d := strings.TrimSpace(oneLine(e.Detail)); d != "" {
		line += " — " + Clip(d, maxAuditDetail)
	}
	return line
}

// auditActor names who acted: a person, or the bot itself.
func auditActor(actor string) string {
	switch actor {
	case computebot.SystemActor:
		return "computebot"
	case computebot.PolicyActor:
		return "policy"
	case "":
		return "unknown"
	}
	for _, r := range actor {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return oneLine(actor) // not a Slack user ID: shown as it is
		}
	}
	return User(actor)
}

// oneLine is foreign text (Literal) on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(Literal(s)), " ")
}

// inlineCode shows foreign text as `code`, with any backtick that would
// end it early replaced.
func inlineCode(s string) string {
	return "`" + strings.ReplaceAll(oneLine(s), "`", "'") + "`"
}

// AuditLogFailed answers /computebot audit when the log could not be read.
func AuditLogFailed(why string) Message {
	return Plain("I could not read the audit log: " + Literal(why))
}

// ParseAuditPageValue reads an AuditPageValue back; false when value is
// not one (the filter is not checked here beyond its shape).
func ParseAuditPageValue(value string) (q AuditQuery, offset int, ok bool) {
	parts := strings.Split(value, "|")
	if len(parts) != 5 || parts[0] != "audit" {
		return AuditQuery{}, 0, false
	}
	since, err1 := strconv.ParseInt(parts[2], 10, 64)
	until, err2 := strconv.ParseInt(parts[3], 10, 64)
	offset, err3 := strconv.Atoi(parts[4])
	if err1 != nil || err2 != nil || err3 != nil || offset < 0 || until < since {
		return AuditQuery{}, 0, false
	}
	q = AuditQuery{Since: time.Unix(0, since).UTC(), Until: time.Unix(0, until).UTC()}
	if f := parts[1]; strings.HasPrefix(f, "i-") {
		q.Instance = f
	} else {
		q.User = f
	}
	return q, offset, true
}
