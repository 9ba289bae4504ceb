package bot

import (
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
	for _, b := range m.Blocks {
		switch b.Kind {
		case reply.Header:
			out = append(out, slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, clip(b.Text, 150), true, false)))
		case reply.Section:
			var text *slack.TextBlockObject
			if b.Text != "" {
				text = slack.NewTextBlockObject(slack.MarkdownType, clip(b.Text, maxSectionText), false, false)
			}
			var fields []*slack.TextBlockObject
			for _, f := range b.Fields {
				fields = append(fields, slack.NewTextBlockObject(slack.MarkdownType, clip(f, 2000), false, false))
			}
			out = append(out, slack.NewSectionBlock(text, fields, nil, slack.SectionBlockOptionBlockID(b.ID)))
		case reply.Context:
			out = append(out, slack.NewContextBlock(b.ID, slack.NewTextBlockObject(slack.MarkdownType, clip(b.Text, maxSectionText), false, false)))
		case reply.Divider:
			out = append(out, slack.NewDividerBlock())
		case reply.Actions:
			elems := make([]slack.BlockElement, 0, len(b.Buttons))
			for _, btn := range b.Buttons {
				e := slack.NewButtonBlockElement(btn.ActionID, btn.Value, slack.NewTextBlockObject(slack.PlainTextType, btn.Text, false, false))
				if btn.Style != reply.Default {
					e.Style = slack.Style(btn.Style)
				}
				if c := btn.Confirm; c != nil {
					e.Confirm = slack.NewConfirmationBlockObject(
						slack.NewTextBlockObject(slack.PlainTextType, c.Title, false, false),
						slack.NewTextBlockObject(slack.MarkdownType, c.Text, false, false),
						slack.NewTextBlockObject(slack.PlainTextType, c.Yes, false, false),
						slack.NewTextBlockObject(slack.PlainTextType, c.No, false, false),
					)
				}
				elems = append(elems, e)
			}
			out = append(out, slack.NewActionBlock(b.ID, elems...))
		}
	}
	return out
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
