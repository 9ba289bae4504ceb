package reply

import (
	"strconv"
	"strings"
	"time"
)

// People, user groups and times are elements of a message's text, not chat
// syntax: User, Group and Date embed one, and each renderer turns it into its
// own form (a Slack mention or date in package bot, a name in the demo's
// terminal). The element is delimited by two code points of Unicode's private
// use area, which no chat text contains by accident; a renderer that does
// not know the elements still shows their ID.
const (
	elemStart = '\uE000'
	elemEnd   = '\uE001'
)

// SpanKind is what a piece of text is.
type SpanKind int

const (
	SpanText  SpanKind = iota // plain text in the light markup (*bold*, `code`)
	SpanUser                  // a person: Span.ID is a Slack user ID
	SpanGroup                 // a user group: Span.ID is a user-group ID
	SpanDate                  // a moment: Span.Time, shown in the reader's time zone where the platform can
)

var elemKinds = map[byte]SpanKind{'u': SpanUser, 'g': SpanGroup, 'd': SpanDate}

// Span is one piece of a text: plain text, or an element.
type Span struct {
	Kind SpanKind
	Text string // SpanText
	ID   string // SpanUser, SpanGroup
	Time time.Time
}

func elem(kind byte, payload string) string {
	return string(elemStart) + string(kind) + payload + string(elemEnd)
}

// User is a mention of a Slack user.
func User(id string) string { return elem('u', id) }

// Group is a mention of a user group.
func Group(id string) string { return elem('g', id) }

// Date is a moment, shown in each reader's own time zone where the platform
// can (with UTC as the fallback).
func Date(t time.Time) string { return elem('d', strconv.FormatInt(t.Unix(), 10)) }

// Mention names an approver entry: user-group IDs (S…) are groups, anything
// else a user.
func Mention(id string) string {
	if strings.HasPrefix(id, "S") {
		return Group(id)
	}
	return User(id)
}

// Mentions joins Mention of each ID with ", ".
func Mentions(ids []string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = Mention(id)
	}
	return strings.Join(parts, ", ")
}

// Spans splits text into plain text and elements, in order. A malformed
// element (an unknown kind, an ID that is not upper-case letters and
// digits, a time that is not a number) is kept as plain text, so text a
// person typed can never turn into something else.
func Spans(text string) []Span {
	var out []Span
	plain := func(s string) {
		if s == "" {
			return
		}
		if n := len(out); n > 0 && out[n-1].Kind == SpanText {
			out[n-1].Text += s
			return
		}
		out = append(out, Span{Kind: SpanText, Text: s})
	}
	for text != "" {
		i := strings.IndexRune(text, elemStart)
		if i < 0 {
			plain(text)
			break
		}
		plain(text[:i])
		rest := text[i+len(string(elemStart)):]
		j := strings.IndexRune(rest, elemEnd)
		if j < 0 {
			plain(rest)
			break
		}
		if s, ok := parseElem(rest[:j]); ok {
			out = append(out, s)
		} else {
			plain(rest[:j])
		}
		text = rest[j+len(string(elemEnd)):]
	}
	return out
}

func parseElem(body string) (Span, bool) {
	if body == "" {
		return Span{}, false
	}
	kind, ok := elemKinds[body[0]]
	payload := body[1:]
	if !ok || payload == "" {
		return Span{}, false
	}
	if kind == SpanDate {
		unix, err := strconv.ParseInt(payload, 10, 64)
		if err != nil {
			return Span{}, false
		}
		return Span{Kind: SpanDate, Time: time.Unix(unix, 0).UTC()}, true
	}
	for _, r := range payload {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return Span{}, false
		}
	}
	return Span{Kind: kind, ID: payload}, true
}

// PlainText renders text for a reader without a chat client (logs, the
// fallback of a date): users and groups by ID, dates in UTC.
func PlainText(text string) string {
	var b strings.Builder
	for _, s := range Spans(text) {
		switch s.Kind {
		case SpanText:
			b.WriteString(s.Text)
		case SpanUser, SpanGroup:
			b.WriteString("@" + s.ID)
		case SpanDate:
			b.WriteString(UTC(s.Time))
		}
	}
	return b.String()
}

// UTC is the fixed form of a moment: "2026-11-28 09:30 UTC".
func UTC(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// literalizer drops the element delimiters.
var literalizer = strings.NewReplacer(string(elemStart), "", string(elemEnd), "")

// Literal is text from outside the bot (a Lambda function's output, an
// instance's Name tag, an AWS error message, a payload) made safe to embed
// in a message: it can never contain an element, so it can never mention
// anyone. Every message that shows such text passes it through Literal.
func Literal(s string) string {
	if !strings.ContainsAny(s, string(elemStart)+string(elemEnd)) {
		return s
	}
	return literalizer.Replace(s)
}

// Clip cuts s to at most n runes, marking the cut with "…".
func Clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
