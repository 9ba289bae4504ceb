//go:build !nodemo

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/computebot/computebot/internal/fakeslack"
)

// channelView prints a fake Slack channel as plain text, incrementally: new
// messages as they come, edited ones again marked as edited. Thread replies
// are indented under their message.
type channelView struct {
	names   map[string]string // user ID → name
	shown   map[string]int    // ts → Updated count printed
	lastTop string            // ts of the thread the last printed message belongs to
}

func newChannelView(names map[string]string) *channelView {
	return &channelView{names: names, shown: map[string]int{}}
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
					parent = firstLine(v.body(p), 70)
				}
				fmt.Fprintf(w, "%s(in the thread of: %s)\n", topIndent, parent)
			}
		}
		v.lastTop = thread
		head := "@" + v.name(m.User)
		if m.User == fakeslack.BotUserID {
			head = "computebot"
		}
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
		fmt.Fprintf(w, "%s%s:\n", indent, head)
		for _, line := range strings.Split(v.body(m), "\n") {
			fmt.Fprintf(w, "%s  %s\n", indent, line)
		}
	}
	return printed
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
// [Label]), else its text, with Slack's markup turned into names.
func (v *channelView) body(m fakeslack.Message) string {
	var lines []string
	if len(m.Blocks) > 0 {
		lines = v.blockLines(m.Blocks)
	}
	if len(lines) == 0 && m.Text != "" {
		lines = []string{v.mrkdwn(m.Text)}
	}
	if len(m.Attachments) > 0 {
		var atts []map[string]any
		if json.Unmarshal(m.Attachments, &atts) == nil {
			for _, a := range atts {
				if b, err := json.Marshal(a["blocks"]); err == nil && a["blocks"] != nil {
					lines = append(lines, v.blockLines(b)...)
				} else if t, ok := a["text"].(string); ok && t != "" {
					lines = append(lines, v.mrkdwn(t))
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

func (v *channelView) blockLines(raw json.RawMessage) []string {
	var blocks []map[string]any
	if json.Unmarshal(raw, &blocks) != nil {
		return nil
	}
	var lines []string
	textOf := func(x any) string {
		if o, ok := x.(map[string]any); ok {
			if s, ok := o["text"].(string); ok {
				return v.mrkdwn(s)
			}
		}
		return ""
	}
	buttonOf := func(x any) string {
		if o, ok := x.(map[string]any); ok && o["type"] == "button" {
			return "[" + textOf(o["text"]) + "]"
		}
		return ""
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
				lines = append(lines, btn)
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
				lines = append(lines, strings.Join(btns, " "))
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
func (v *channelView) mrkdwn(s string) string { return fakeslack.Readable(s, v.names) }
