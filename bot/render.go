package bot

import (
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/computebot/computebot/reply"
)

// maxSectionText is Slack's limit for a section's text; longer text is cut
// with a visible marker rather than rejected by the API.
const maxSectionText = 3000

// Blocks renders a platform-neutral message to Block Kit. It is the only
// place that knows Block Kit, so golden files over it pin what users see.
func Blocks(m reply.Message) []slack.Block {
	out := make([]slack.Block, 0, len(m.Blocks))
	mrkdwn := func(s string, limit int) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.MarkdownType, clipMrkdwn(Text(s), limit), false, false)
	}
	plain := func(s string, limit int) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.PlainTextType, reply.Clip(reply.PlainText(s), limit), false, false)
	}
	for _, b := range m.Blocks {
		switch b.Kind {
		case reply.Header:
			out = append(out, slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, reply.Clip(reply.PlainText(b.Text), 150), true, false)))
		case reply.Section:
			var text *slack.TextBlockObject
			if b.Text != "" {
				text = mrkdwn(b.Text, maxSectionText)
			}
			var fields []*slack.TextBlockObject
			for _, f := range b.Fields {
				fields = append(fields, mrkdwn(f, 2000))
			}
			out = append(out, slack.NewSectionBlock(text, fields, nil, slack.SectionBlockOptionBlockID(b.ID)))
		case reply.Context:
			out = append(out, slack.NewContextBlock(b.ID, mrkdwn(b.Text, maxSectionText)))
		case reply.Divider:
			out = append(out, slack.NewDividerBlock())
		case reply.Actions:
			elems := make([]slack.BlockElement, 0, len(b.Buttons))
			for _, btn := range b.Buttons {
				e := slack.NewButtonBlockElement(btn.ActionID, btn.Value, plain(btn.Text, 75))
				if btn.Style != reply.Default {
					e.Style = slack.Style(btn.Style)
				}
				if c := btn.Confirm; c != nil {
					e.Confirm = slack.NewConfirmationBlockObject(plain(c.Title, 100), mrkdwn(c.Text, 300), plain(c.Yes, 30), plain(c.No, 30))
				}
				elems = append(elems, e)
			}
			out = append(out, slack.NewActionBlock(b.ID, elems...))
		}
	}
	return out
}

// clipMrkdwn cuts rendered mrkdwn to at most n runes, marking the cut with
// "…", and never in the middle of an escape (&amp;) or a mention (<@U…>),
// which Slack would show as garbage.
func clipMrkdwn(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	cut := r[:n-1]
	for _, pair := range [][2]rune{{'&', ';'}, {'<', '>'}} {
		if i := lastRune(cut, pair[0]); i >= 0 && lastRune(cut[i:], pair[1]) < 0 {
			cut = cut[:i]
		}
	}
	return string(cut) + "…"
}

func lastRune(rs []rune, r rune) int {
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i] == r {
			return i
		}
	}
	return -1
}

// escaper escapes the three characters Slack's mrkdwn treats as control
// characters, so that text a person typed (a reason, a JSON payload) can
// never become a mention, a link or an @channel.
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Text renders a reply text to Slack mrkdwn: plain text escaped, people and
// groups as mentions, times as Slack dates in each reader's time zone.
func Text(s string) string {
	var b strings.Builder
	for _, sp := range reply.Spans(s) {
		switch sp.Kind {
		case reply.SpanText:
			b.WriteString(escaper.Replace(sp.Text))
		case reply.SpanUser:
			fmt.Fprintf(&b, "<@%s>", sp.ID)
		case reply.SpanGroup:
			fmt.Fprintf(&b, "<!subteam^%s>", sp.ID)
		case reply.SpanDate:
			fmt.Fprintf(&b, "<!date^%d^{date_short_pretty} at {time}|%s>", sp.Time.Unix(), reply.UTC(sp.Time))
		}
	}
	return b.String()
}
