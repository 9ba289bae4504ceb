// Package reply is every word the bot says, in a platform-neutral shape:
// the workflows (flow/) build these messages from facts (requests,
// instances, policy refusals, idle notices), and package bot renders them to
// Block Kit in one place.
//
// Text uses a light markup that Slack's mrkdwn and the demo's terminal both
// read: *bold*, `code`, ```preformatted``` and :emoji: shortcodes. People,
// user groups and times are elements (User, Group, Date in markup.go), never
// chat syntax: each renderer gives them its own form, and escapes the rest.
package reply

import "fmt"

// Kind is the kind of a block.
type Kind string

const (
	Header  Kind = "header"  // large plain-text title
	Section Kind = "section" // text, optionally with two-column fields
	Context Kind = "context" // small grey print
	Actions Kind = "actions" // a row of buttons
	Divider Kind = "divider"
	Input   Kind = "input" // a form field (views only): Block.Field
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
	// Key names the messages whose loss or repeat matters (a request's
	// message, its approvers note and IP reply, an idle notice, the
	// message that opens an invocation's thread), so that a post a crashed run made can be found and
	// adopted instead of posted again; "" for the others. The adapter
	// carries it with the message (on Slack, as message metadata).
	Key string
}

// Keys of the messages that are posted exactly once.
func RequestKey(requestID string) string { return "request/" + requestID }
func ReadyKey(requestID string) string   { return "ready/" + requestID }
func NoticeKey(instanceID, episode string) string {
	return "notice/" + instanceID + "/" + episode
}
func NoteKey(requestID string) string   { return "note/" + requestID }
func InvokedKey(intentID string) string { return "invoked/" + intentID }

// Block is one visual block of a message.
type Block struct {
	Kind    Kind
	ID      string // stable block ID; buttons need one to be delivered
	Text    string
	Fields  []string
	Buttons []Button
	Field   *Field // Kind Input
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

// CannotRun answers a command that has no workflow (a bug, or a command
// from a newer version).
func CannotRun(command string) Message {
	return Plain(fmt.Sprintf("I can't run `%s` here. Try `/computebot help`.", command))
}

// InternalError is why something failed on the bot's side, for the words
// that need a why.
func InternalError() string { return "internal error (details are in the bot's log)" }

// SomethingWentWrong answers a command whose work failed on a bug.
func SomethingWentWrong() Message {
	return Plain("Something went wrong on my side (internal error); the details are in the bot's log. Please try again.")
}

// IdleNotRunning answers a notice button or /computebot idle when the idle
// scheduler is off.
func IdleNotRunning() Message { return Plain("The idle scheduler is not running.") }

// IdleReportFailed answers /computebot idle when the report could not be built.
func IdleReportFailed(why string) Message {
	return Plain("I could not build the idle report: " + Literal(why))
}
