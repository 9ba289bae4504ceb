//go:build !nodemo

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/computebot/computebot/internal/fakeslack"
)

// channelView prints a fake Slack channel as text, incrementally: new
// messages as they come, edited ones again marked as edited. Thread replies
// are indented under their message. Slack's formatting is shown as a
// terminal can (bold, code) or, for a script's output, just without its
// markers; lines are wrapped at spaces to width.
type channelView struct {
	names   map[string]string // user ID → name
	shown   map[string]int    // ts → Updated count printed
	lastTop string            // ts of the thread the last printed message belongs to
	width   int               // columns; lines are wrapped to it
	style   fakeslack.Style   // mrkdwn's formatting
	strong  [2]string         // around names and buttons
}

func newChannelView(names map[string]string) *channelView {
	return &channelView{names: names, shown: map[string]int{}, width: 80,
		style: fakeslack.Style{Date: demoDate(time.Now)}}
}

// ansi turns on a terminal's bold, italic, strikethrough and colour.
func (v *channelView) ansi() {
	v.style.Bold = [2]string{"\033[1m", "\033[22m"}
	v.style.Italic = [2]string{"\033[3m", "\033[23m"}
	v.style.Strike = [2]string{"\033[9m", "\033[29m"}
	v.style.Code = [2]string{"\033[36m", "\033[39m"}
	v.strong = v.style.Bold
}

// demoDate shows a Slack date as its text and how far it is from now
// ("2026-12-01 15:06 UTC (in 4 min 59 s)"): in the demo, the time an idle
// notice gives before its stop is minutes away.
func demoDate(now func() time.Time) func(time.Time, string) string {
	return func(t time.Time, fallback string) string {
		d := t.Sub(now()).Round(time.Second)
		if d > 7*24*time.Hour || d < -7*24*time.Hour {
			return fallback
		}
		return fallback + " (" + untilText(d) + ")"
	}
}

// untilText says how far away d is: "in 4 min 59 s", "in 8 h", "2 min
// ago". Its spaces are no-break spaces, so that wrapping keeps it whole.
func untilText(d time.Duration) string {
	past := d < 0
	if past {
		d = -d
	}
	m := int(d.Minutes()) % 60
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%d s", int(d.Seconds()))
	case d < 10*time.Minute:
		s = fmt.Sprintf("%d min %d s", m, int(d.Seconds())%60)
	case d < time.Hour:
		s = fmt.Sprintf("%d min", m)
	case m == 0:
		s = fmt.Sprintf("%d h", int(d.Hours()))
	default:
		s = fmt.Sprintf("%d h %d min", int(d.Hours()), m)
	}
	if past {
		s += " ago"
	} else {
		s = "in " + s
	}
	return strings.ReplaceAll(s, " ", "\u00a0")
}

const (
	replyIndent = "      │ "
	topIndent   = "  "
)

// render prints what changed since the last call; it reports whether it
// printed anything. me is the user the terminal is (for "(only you)").
func (v *channelView) render(w io.Writer, msgs []fakeslack.Message, me string) bool {
	slices.SortStableFunc(msgs, func(a, b fakeslack.Message) int { return strings.Compare(a.TS, b.TS) })
	byTS := map[string]fakeslack.Message{}
	for _, m := range msgs {
		byTS[m.TS] = m
	}
	printed := false
	for _, m := range msgs {
		n, seen := v.shown[m.TS]
		if seen && n == m.Updated {
			continue
		}
		v.shown[m.TS] = m.Updated
		printed = true
		thread := m.TS
		if m.ThreadTS != "" && m.ThreadTS != m.TS {
			thread = m.ThreadTS
		}
		indent := topIndent
		if thread != m.TS {
			indent = replyIndent
			if v.lastTop != thread {
				parent := "(an earlier message)"
				if p, ok := byTS[thread]; ok {
					parent = firstLine(v.body(p, fakeslack.Style{}), 70)
				}
				v.print(w, topIndent, "(in the thread of: "+parent+")")
			}
		}
		v.lastTop = thread
		head := "@" + v.name(m.User)
		if m.User == fakeslack.BotUserID {
			head = "computebot"
		}
		head = v.strong[0] + head + v.strong[1]
		if seen {
			head += " (edited)"
		}
		if m.Ephemeral {
			if m.EphemeralUser == me {
				head += " (only you)"
			} else {
				head += " (only @" + v.name(m.EphemeralUser) + ")"
			}
		}
		if thread == m.TS && !seen {
			fmt.Fprintln(w)
		}
		v.print(w, indent, head+":")
		for _, line := range strings.Split(v.body(m, v.style), "\n") {
			v.print(w, indent+"  ", line)
		}
	}
	return printed
}

// print writes line after indent, wrapped to the view's width, each
// further line under the first.
func (v *channelView) print(w io.Writer, indent, line string) {
	for i, l := range wrap(line, v.width-textWidth(indent)) {
		if i == 1 && strings.HasPrefix(line, "• ") {
			indent += "  " // a list item goes on under its text
		}
		fmt.Fprintln(w, strings.TrimRight(indent+l, " "))
	}
}

// wrapped is the demo's own text wrapped to the view's width, each line
// continuing under its first character.
func (v *channelView) wrapped(text string) string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		body := strings.TrimLeft(line, " ┌│└")
		indent := line[:len(line)-len(body)]
		for i, l := range wrap(body, v.width-textWidth(indent)) {
			if i == 1 { // under the text; a box's side goes on
				indent = strings.NewReplacer("┌", "│", "└", " ").Replace(indent)
			}
			b.WriteString(strings.TrimRight(indent+l, " ") + "\n")
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (v *channelView) name(id string) string {
	if n, ok := v.names[id]; ok {
		return n
	}
	return id
}

func firstLine(s string, max int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

// body is a message's readable text: its blocks when it has any (buttons as
// [Label]), else its text, with Slack's markup turned into names and its
// formatting into st's.
func (v *channelView) body(m fakeslack.Message, st fakeslack.Style) string {
	var lines []string
	if len(m.Blocks) > 0 {
		lines = v.blockLines(m.Blocks, st)
	}
	if len(lines) == 0 && m.Text != "" {
		lines = []string{v.mrkdwn(m.Text, st)}
	}
	if len(m.Attachments) > 0 {
		var atts []map[string]any
		if json.Unmarshal(m.Attachments, &atts) == nil {
			for _, a := range atts {
				if b, err := json.Marshal(a["blocks"]); err == nil && a["blocks"] != nil {
					lines = append(lines, v.blockLines(b, st)...)
				} else if t, ok := a["text"].(string); ok && t != "" {
					lines = append(lines, v.mrkdwn(t, st))
				}
			}
		}
	}
	if len(m.Files) > 0 {
		lines = append(lines, fmt.Sprintf("[%d file(s) attached]", len(m.Files)))
	}
	if len(lines) == 0 {
		return "(empty)"
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// demoButton is a button of a message, as the demo clicks it.
type demoButton struct {
	label, actionID, blockID, value string
	// n numbers the buttons of one label on a message (1, 2, …) when it
	// shows several, so that a person can say which; 0 when alone.
	n       int
	confirm *demoConfirm
	context string // the text of the section before it: what it acts on
}

// demoConfirm is a button's confirmation dialog (Block Kit's confirm).
type demoConfirm struct{ title, text, yes, no string }

// buttons lists a message's buttons in block order: the accessories of
// sections and the buttons of actions blocks.
func (v *channelView) buttons(raw json.RawMessage) []demoButton {
	var blocks []map[string]any
	if json.Unmarshal(raw, &blocks) != nil {
		return nil
	}
	var out []demoButton
	context := ""
	add := func(x any) {
		o, ok := x.(map[string]any)
		if !ok || o["type"] != "button" {
			return
		}
		b := demoButton{label: plainText(o["text"]), context: context}
		b.actionID, _ = o["action_id"].(string)
		b.blockID, _ = o["block_id"].(string)
		b.value, _ = o["value"].(string)
		if c, ok := o["confirm"].(map[string]any); ok {
			b.confirm = &demoConfirm{title: plainText(c["title"]), text: v.mrkdwn(plainText(c["text"]), fakeslack.Style{}),
				yes: plainText(c["confirm"]), no: plainText(c["deny"])}
			if b.confirm.yes == "" {
				b.confirm.yes = "Yes"
			}
			if b.confirm.no == "" {
				b.confirm.no = "Cancel"
			}
		}
		out = append(out, b)
	}
	for _, blk := range blocks {
		id, _ := blk["block_id"].(string)
		switch blk["type"] {
		case "section":
			context = strings.ToLower(v.mrkdwn(plainText(blk["text"]), fakeslack.Style{}))
			add(blk["accessory"])
		case "actions":
			els, _ := blk["elements"].([]any)
			for _, e := range els {
				add(e)
			}
		}
		for i := range out {
			if out[i].blockID == "" {
				out[i].blockID = id
			}
		}
	}
	count := map[string]int{}
	for _, b := range out {
		count[b.label]++
	}
	seen := map[string]int{}
	for i, b := range out {
		if count[b.label] > 1 {
			seen[b.label]++
			out[i].n = seen[b.label]
		}
	}
	return out
}

// plainText is a text object's text.
func plainText(x any) string {
	if o, ok := x.(map[string]any); ok {
		s, _ := o["text"].(string)
		return s
	}
	return ""
}

func (v *channelView) blockLines(raw json.RawMessage, st fakeslack.Style) []string {
	var blocks []map[string]any
	if json.Unmarshal(raw, &blocks) != nil {
		return nil
	}
	buttons, next := v.buttons(raw), 0
	var lines []string
	textOf := func(x any) string { return v.mrkdwn(plainText(x), st) }
	// buttonOf is the next button as shown: [Label], or [Label #2] where
	// the message has several of that label.
	buttonOf := func(x any) string {
		o, ok := x.(map[string]any)
		if !ok || o["type"] != "button" || next >= len(buttons) {
			return ""
		}
		b := buttons[next]
		next++
		if b.n > 0 {
			return fmt.Sprintf("[%s #%d]", b.label, b.n)
		}
		return "[" + b.label + "]"
	}
	strong := func(s string) string { return s }
	if st.Bold != [2]string{} { // a terminal's styles, not a plain line
		strong = func(s string) string { return v.strong[0] + s + v.strong[1] }
	}
	for _, b := range blocks {
		switch b["type"] {
		case "section", "header":
			if t := textOf(b["text"]); t != "" {
				lines = append(lines, t)
			}
			if fields, ok := b["fields"].([]any); ok {
				var fs []string
				for _, f := range fields {
					if t := textOf(f); t != "" {
						fs = append(fs, strings.ReplaceAll(t, "\n", " "))
					}
				}
				if len(fs) > 0 {
					lines = append(lines, strings.Join(fs, " · "))
				}
			}
			if btn := buttonOf(b["accessory"]); btn != "" {
				lines = append(lines, strong(btn))
			}
		case "context":
			var parts []string
			if els, ok := b["elements"].([]any); ok {
				for _, e := range els {
					if t := textOf(e); t != "" {
						parts = append(parts, t)
					}
				}
			}
			if len(parts) > 0 {
				lines = append(lines, strings.Join(parts, " · "))
			}
		case "actions":
			var btns []string
			if els, ok := b["elements"].([]any); ok {
				for _, e := range els {
					if btn := buttonOf(e); btn != "" {
						btns = append(btns, btn)
					}
				}
			}
			if len(btns) > 0 {
				lines = append(lines, strong(strings.Join(btns, " ")))
			}
		case "divider":
			lines = append(lines, "────")
		case "rich_text":
			// a user's message: the text says the same
		}
	}
	return lines
}

// mrkdwn is what a Slack client shows for s, people by their names.
func (v *channelView) mrkdwn(s string, st fakeslack.Style) string {
	if st.Date == nil {
		st.Date = v.style.Date
	}
	return fakeslack.Render(s, v.names, st)
}

// wrap breaks s into lines of at most width columns at spaces. A word
// longer than that (a URL, a key) stays whole on a line of its own: it
// must stay copyable.
func wrap(s string, width int) []string {
	if width < 20 || textWidth(s) <= width {
		return []string{s}
	}
	var lines []string
	var cur strings.Builder
	cols := 0
	for i, word := range strings.Split(s, " ") {
		ww := textWidth(word)
		switch {
		case i == 0:
		case cols > 0 && cols+1+ww > width:
			lines = append(lines, cur.String())
			cur.Reset()
			cols = 0
		default:
			cur.WriteByte(' ')
			cols++
		}
		cur.WriteString(word)
		cols += ww
	}
	return append(lines, cur.String())
}

// textWidth is how many columns s takes on a terminal: ANSI escape
// sequences take none, combining marks and variation selectors none,
// emoji and East Asian wide characters two.
func textWidth(s string) int {
	n, esc := 0, false
	for _, r := range s {
		switch {
		case esc:
			esc = !(r >= 0x40 && r <= 0x7e && r != '[')
		case r == 0x1b:
			esc = true
		case unicode.Is(unicode.Mn, r) || r == 0xfe0f || r == 0x200d:
		case r >= 0x1f300 && r <= 0x1faff, r >= 0x2600 && r <= 0x27bf,
			r >= 0x1100 && r <= 0x115f, r >= 0x2e80 && r <= 0xa4cf, r >= 0xac00 && r <= 0xd7a3,
			r >= 0xf900 && r <= 0xfaff, r >= 0xff00 && r <= 0xff60:
			n += 2
		default:
			n++
		}
	}
	return n
}
