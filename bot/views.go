package bot

import (
	"context"
	"strconv"

	"github.com/slack-go/slack"

	"github.com/computebot/computebot/reply"
)

// Views: the launch form (a modal) and the App Home tab, rendered from
// reply.View, opened, updated and published with slack-go.

// plainOrNil is s as plain text cut to limit, or nil for "".
func plainOrNil(s string, limit int) *slack.TextBlockObject {
	if s == "" {
		return nil
	}
	return slack.NewTextBlockObject(slack.PlainTextType, reply.Clip(reply.PlainText(s), limit), false, false)
}

// ModalView renders a modal.
func ModalView(v reply.View) slack.ModalViewRequest {
	plain := plainOrNil
	return slack.ModalViewRequest{
		Type: slack.VTModal, Title: plain(v.Title, 24), Submit: plain(v.Submit, 24), Close: plain(v.Close, 24),
		CallbackID: v.CallbackID, PrivateMetadata: v.Metadata, Blocks: slack.Blocks{BlockSet: viewBlocks(v)},
	}
}

// HomeView renders a home tab.
func HomeView(v reply.View) slack.HomeTabViewRequest {
	return slack.HomeTabViewRequest{Type: slack.VTHomeTab, CallbackID: v.CallbackID, PrivateMetadata: v.Metadata,
		Blocks: slack.Blocks{BlockSet: viewBlocks(v)}}
}

// viewBlocks renders a view's blocks: a message's kinds, and inputs.
func viewBlocks(v reply.View) []slack.Block {
	var out []slack.Block
	var run []reply.Block // message blocks between inputs
	flush := func() {
		if len(run) > 0 {
			out = append(out, Blocks(reply.Message{Blocks: run})...)
			run = nil
		}
	}
	for _, b := range v.Blocks {
		if b.Kind != reply.Input || b.Field == nil {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, inputBlock(*b.Field))
	}
	flush()
	return out
}

// inputBlock renders one form field; its block ID and action ID are the
// field's ID, so a submission's values and errors are keyed by it.
func inputBlock(f reply.Field) *slack.InputBlock {
	plain := plainOrNil
	var elem slack.BlockElement
	switch f.Kind {
	case reply.FieldSelect:
		opts := make([]*slack.OptionBlockObject, 0, len(f.Options))
		var initial *slack.OptionBlockObject
		for _, o := range f.Options {
			value := o.Value
			if value == "" {
				value = "-" // Slack refuses an empty value; "-" reads as none
			}
			opt := slack.NewOptionBlockObject(value, plain(o.Text, 75), nil)
			opts = append(opts, opt)
			if o.Value == f.Initial && f.Initial != "" {
				initial = opt
			}
		}
		sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain(f.Placeholder, 150), f.ID, opts...)
		sel.InitialOption = initial
		elem = sel
	case reply.FieldText, reply.FieldLongText:
		in := slack.NewPlainTextInputBlockElement(nil, f.ID)
		in.Multiline = f.Kind == reply.FieldLongText
		in.MaxLength = f.MaxLen
		in.InitialValue = f.Initial
		elem = in
	case reply.FieldNumber:
		n := slack.NewNumberInputBlockElement(nil, f.ID, false)
		n.InitialValue = f.Initial
		if f.Max > 0 {
			n.MinValue, n.MaxValue = strconv.Itoa(f.Min), strconv.Itoa(f.Max)
		}
		elem = n
	case reply.FieldChannel:
		sel := slack.NewOptionsSelectBlockElement(slack.OptTypeConversations, plain(f.Placeholder, 150), f.ID)
		sel.InitialConversation = f.Initial
		sel.Filter = &slack.SelectBlockElementFilter{Include: []string{"public", "private"}, ExcludeBotUsers: true}
		elem = sel
	}
	in := slack.NewInputBlock(f.ID, plain(f.Label, 2000), plain(f.Hint, 2000), elem)
	in.Optional = f.Optional
	return in
}

// FieldValue reads one field's value from a submission's state: the text,
// the number, the chosen option ("" for none) or the channel.
func FieldValue(a slack.BlockAction) string {
	switch {
	case a.SelectedConversation != "":
		return a.SelectedConversation
	case a.SelectedChannel != "":
		return a.SelectedChannel
	case a.SelectedOption.Value != "":
		if a.SelectedOption.Value == "-" {
			return ""
		}
		return a.SelectedOption.Value
	}
	return a.Value
}

func (c *Chat) OpenView(ctx context.Context, trigger string, v reply.View) (string, string, error) {
	resp, err := c.api.OpenViewContext(ctx, trigger, ModalView(v))
	if err != nil {
		return "", "", slackError(err, "views.open")
	}
	return resp.ID, resp.Hash, nil
}

func (c *Chat) UpdateView(ctx context.Context, id, hash string, v reply.View) error {
	if _, err := c.api.UpdateViewContext(ctx, ModalView(v), "", hash, id); err != nil {
		return slackError(err, "views.update %s", id)
	}
	return nil
}

func (c *Chat) PublishHome(ctx context.Context, user string, v reply.View) error {
	if _, err := c.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: user, View: HomeView(v)}); err != nil {
		return slackError(err, "views.publish for %s", user)
	}
	return nil
}
