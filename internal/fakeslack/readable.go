package fakeslack

import (
	"regexp"
	"strings"
)

var slackMarkup = regexp.MustCompile(`<([^<>]*)>`)

// Readable is what a Slack client shows for a message's mrkdwn text:
// <@U…> → @name (names maps user IDs to names), <!subteam^S…> → @group,
// <!date^…|fallback> → fallback, <#C…|name> → #name, <url|label> → label
// (url), :emoji: shortcodes as emoji, escapes undone, code fences dropped.
func Readable(s string, names map[string]string) string {
	s = slackMarkup.ReplaceAllStringFunc(s, func(tok string) string {
		inner := tok[1 : len(tok)-1]
		ref, label, hasLabel := strings.Cut(inner, "|")
		switch {
		case strings.HasPrefix(ref, "@"):
			if n, ok := names[ref[1:]]; ok {
				return "@" + n
			}
			if hasLabel {
				return "@" + strings.TrimPrefix(label, "@")
			}
			return ref
		case strings.HasPrefix(ref, "!subteam^"):
			if hasLabel {
				return "@" + strings.TrimPrefix(label, "@")
			}
			return "@" + strings.TrimPrefix(ref, "!subteam^")
		case strings.HasPrefix(ref, "!date^"):
			if hasLabel {
				return label
			}
			return ref
		case strings.HasPrefix(ref, "!"):
			return "@" + ref[1:]
		case strings.HasPrefix(ref, "#"):
			if hasLabel {
				return "#" + label
			}
			return ref
		case hasLabel:
			return label + " (" + ref + ")"
		default:
			return ref
		}
	})
	s = slackEmoji.ReplaceAllStringFunc(s, func(tok string) string {
		if e, ok := emoji[strings.Trim(tok, ":")]; ok {
			return e
		}
		return tok
	})
	return strings.NewReplacer("```", "", "&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

var slackEmoji = regexp.MustCompile(`:[a-z0-9_+-]+:`)

// emoji are the shortcodes the bot uses, as a terminal can show them.
var emoji = map[string]string{
	"white_check_mark": "✅", "rocket": "🚀", "hourglass_flowing_sand": "⏳", "hourglass": "⌛", "zzz": "💤",
	"x": "❌", "warning": "⚠️", "no_entry": "⛔", "no_entry_sign": "🚫", "stop_sign": "🛑", "octagonal_sign": "🛑",
	"red_circle": "🔴", "large_green_circle": "🟢", "green_circle": "🟢", "white_circle": "⚪",
	"moneybag": "💰", "lock": "🔒", "key": "🔑", "clock3": "🕒", "alarm_clock": "⏰", "wastebasket": "🗑️",
	"arrows_counterclockwise": "🔄", "information_source": "ℹ️", "mag": "🔍", "zap": "⚡", "heavy_check_mark": "✔️",
	"black_square_for_stop": "⏹️", "robot_face": "🤖", "inbox_tray": "📥", "arrow_forward": "▶️", "broom": "🧹", "bulb": "💡", "computer": "💻",
}

// UserMention is how Slack writes a mention of a user in message text.
func UserMention(id string) string { return "<@" + id + ">" }
