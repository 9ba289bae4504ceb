// Package reply is the platform-neutral shape of everything the bot says:
// the approval flow builds these, and package bot renders them to Block Kit
// in one place. Text uses Slack mrkdwn (*bold*, `code`, <@U…> mentions),
// which is what every chat target computebot speaks today.
package reply

// Kind is the kind of a block.
type Kind string

const (
	Header  Kind = "header"  // large plain-text title
	Section Kind = "section" // text, optionally with two-column fields
	Context Kind = "context" // small grey print
	Actions Kind = "actions" // a row of buttons
	Divider Kind = "divider"
)

// Style is a button's colour.
type Style string

const (
	Default Style = ""
	Primary Style = "primary"
	Danger  Style = "danger"
)

// Message is one chat message.
type Message struct {
	// Text is the plain fallback shown in notifications and to screen
	// readers; it must make sense on its own.
	Text   string
	Blocks []Block
}

// Block is one visual block of a message.
type Block struct {
	Kind    Kind
	ID      string // stable block ID; buttons need one to be delivered
	Text    string
	Fields  []string
	Buttons []Button
}

// Button is a clickable action. Value carries what the click acts on (a
// request ID), so a click is self-contained and needs no session state.
type Button struct {
	Text     string
	ActionID string
	Value    string
	Style    Style
	Confirm  *Confirm
}

// Confirm is a confirmation dialog shown before a dangerous click counts.
type Confirm struct {
	Title, Text, Yes, No string
}

// Plain is a message of one text section.
func Plain(text string) Message {
	return Message{Text: text, Blocks: []Block{{Kind: Section, Text: text}}}
}
