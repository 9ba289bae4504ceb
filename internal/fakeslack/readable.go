package fakeslack

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

var slackMarkup = regexp.MustCompile(`<([^<>]*)>`)

// Readable is what a Slack client shows for a message's mrkdwn text:
// <@U…> → @name (names maps user IDs to names), <!subteam^S…> → @group,
// <!date^…|fallback> → fallback, <#C…|name> → #name, <url|label> → label
// (url), :emoji: shortcodes as emoji, escapes undone, code fences dropped.
// Inline formatting (*bold*, `code`) is kept as typed; Render applies it.
func Readable(s string, names map[string]string) string {
	s = slackMarkup.ReplaceAllStringFunc(s, func(tok string) string {
		return readableToken(tok[1:len(tok)-1], names, nil)
	})
	s = slackEmoji.ReplaceAllStringFunc(s, emojiOf)
	return strings.NewReplacer("```", "", "&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

// readableToken is what a client shows for the markup inside <…>.
func readableToken(inner string, names map[string]string, date func(time.Time, string) string) string {
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
		if !hasLabel {
			return ref
		}
		unix, _, _ := strings.Cut(strings.TrimPrefix(ref, "!date^"), "^")
		if sec, err := strconv.ParseInt(unix, 10, 64); err == nil && date != nil {
			return date(time.Unix(sec, 0), label)
		}
		return label
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
}

var (
	slackEmoji   = regexp.MustCompile(`:[a-z0-9_+-]+:`)
	leadingEmoji = regexp.MustCompile(`^:[a-z0-9_+-]+:`)
)

func emojiOf(tok string) string {
	if e, ok := emoji[strings.Trim(tok, ":")]; ok {
		return e
	}
	return tok
}

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

// Style is how Render shows mrkdwn's formatting: the strings put before
// and after bold, italic, struck-through and code text (empty: the markers
// are just dropped, as for plain text), and, when Date is set, what a
// <!date^…|fallback> shows instead of its fallback.
type Style struct {
	Bold, Italic, Strike, Code [2]string
	Date                       func(t time.Time, fallback string) string
}

// Render is what a Slack client shows for mrkdwn text, as text: what
// Readable does, and *bold*, _italic_, ~strike~, `code` and ```blocks```
// shown with style's strings in place of their markers. A marker counts
// as Slack counts it: opening after a space or punctuation (not inside a
// word: snake_case stays), closing on the same line before a space or
// punctuation; nothing is formatted inside code.
func Render(s string, names map[string]string, style Style) string {
	r := renderer{names: names, style: style}
	parts := strings.Split(s, "```")
	if len(parts)%2 == 0 { // an unclosed fence is text
		parts[len(parts)-2] += "```" + parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	}
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 0 {
			b.WriteString(r.inline([]rune(p)))
			continue
		}
		p = strings.TrimPrefix(p, "\n")
		for j, line := range strings.Split(strings.TrimSuffix(p, "\n"), "\n") {
			if j > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(r.code([]rune(line)))
		}
		if i+1 < len(parts) && !strings.HasPrefix(parts[i+1], "\n") {
			b.WriteByte('\n') // a block is its own lines
		}
	}
	return b.String()
}

type renderer struct {
	names map[string]string
	style Style
}

// code is a code span's text: markup readable, no formatting.
func (r renderer) code(rs []rune) string {
	return r.style.Code[0] + r.plain(rs) + r.style.Code[1]
}

// plain is text with its <…> markup made readable and its escapes undone.
func (r renderer) plain(rs []rune) string {
	var b strings.Builder
	for i := 0; i < len(rs); i++ {
		if n, s := r.atom(rs, i); n > 0 {
			b.WriteString(s)
			i += n - 1
			continue
		}
		b.WriteRune(rs[i])
	}
	return b.String()
}

// atom reads the markup at rs[i] that is shown as one piece (<…>, an
// escape, an emoji shortcode): how many runes it takes and what it shows;
// 0 when there is none.
func (r renderer) atom(rs []rune, i int) (int, string) {
	switch rs[i] {
	case '<':
		for j := i + 1; j < len(rs) && rs[j] != '<'; j++ {
			if rs[j] == '>' {
				return j - i + 1, readableToken(string(rs[i+1:j]), r.names, r.style.Date)
			}
		}
	case '&':
		for _, e := range [...]struct{ esc, s string }{{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}} {
			if strings.HasPrefix(string(rs[i:min(len(rs), i+5)]), e.esc) {
				return len(e.esc), e.s
			}
		}
	case ':':
		if m := leadingEmoji.FindString(string(rs[i:min(len(rs), i+40)])); m != "" {
			if e := emojiOf(m); e != m {
				return len([]rune(m)), e
			}
		}
	}
	return 0, ""
}

func (r renderer) inline(rs []rune) string {
	var b strings.Builder
	for i := 0; i < len(rs); i++ {
		if n, s := r.atom(rs, i); n > 0 {
			b.WriteString(s)
			i += n - 1
			continue
		}
		c := rs[i]
		if c == '`' {
			if j := closing(rs, i, false); j > 0 {
				b.WriteString(r.code(rs[i+1 : j]))
				i = j
				continue
			}
		}
		if wrap, ok := r.marker(c); ok && opens(rs, i) {
			if j := closing(rs, i, true); j > 0 {
				b.WriteString(wrap[0] + r.inline(rs[i+1:j]) + wrap[1])
				i = j
				continue
			}
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r renderer) marker(c rune) ([2]string, bool) {
	switch c {
	case '*':
		return r.style.Bold, true
	case '_':
		return r.style.Italic, true
	case '~':
		return r.style.Strike, true
	}
	return [2]string{}, false
}

// opens reports whether the marker at rs[i] may open a span: not inside
// a word, and followed by something to format.
func opens(rs []rune, i int) bool {
	if i+1 >= len(rs) || unicode.IsSpace(rs[i+1]) || rs[i+1] == rs[i] {
		return false
	}
	return i == 0 || !isWordRune(rs[i-1])
}

// closing finds the marker closing the one at rs[i] on the same line:
// for formatting (word), one after a non-space and not followed by a
// letter or digit; for code, the next backtick. -1 when there is none.
func closing(rs []rune, i int, word bool) int {
	for j := i + 1; j < len(rs) && rs[j] != '\n'; j++ {
		if rs[j] != rs[i] {
			continue
		}
		if !word {
			if j > i+1 {
				return j
			}
			return -1
		}
		if j > i+1 && !unicode.IsSpace(rs[j-1]) && (j+1 == len(rs) || !isWordRune(rs[j+1])) {
			return j
		}
	}
	return -1
}

func isWordRune(c rune) bool { return unicode.IsLetter(c) || unicode.IsDigit(c) }
