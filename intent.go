package computebot

import (
	"context"
	"time"
)

// Intent is one envelope (a typed command, a mention, a click) as it is
// persisted before its ack: who acted, where, what they typed or clicked,
// and the answer the ack carried. The workflows run intents, never
// commands from memory alone: a restart runs every unfinished intent
// again, and a redelivered envelope finds its intent and is acked with
// the same answer.
//
// What an intent typed or clicked is kept as input (Source, Command, Text,
// ActionID, Value), not as a parsed command: it is parsed again when it
// runs, by the same parser.
type Intent struct {
	// ID is the envelope's ID (Slack sends the same one on redelivery).
	ID string
	// TriggerID is what requests derive their IDs from (a slash command's
	// trigger_id, an event's ID); unique per invocation.
	TriggerID string

	Actor       string // Slack user ID
	Channel     string
	ThreadTS    string // the thread they typed or clicked in
	ResponseURL string
	// ReplyInAck: the quick answer travelled in the ack (slash commands).
	ReplyInAck bool

	Source   IntentSource
	Command  string // a slash command's name ("/launch"), "" otherwise
	Text     string // what was typed, decoded from the platform's format
	ActionID string // a click's action ID
	Value    string // a click's button value
	// MessageTS is the message a button was clicked on.
	MessageTS string

	// Ack is the answer sent in the ack (text for the person who acted),
	// "" for a bare ack; it is sent again when the envelope comes back.
	Ack string

	State IntentState
	// Step records the effects of an intent that must not happen twice
	// when it runs again (the lease end an /extend computed, an invocation
	// under way); the workflow that runs the intent owns its meaning.
	Step string

	// Claim is the replica running the intent: the one that accepted it,
	// or the one that took it over after that replica was gone.
	Claim string

	Version   int64 // as Request.Version: the compare-and-set token
	CreatedAt time.Time
	UpdatedAt time.Time
}

// IntentSource is where an intent came from.
type IntentSource string

const (
	SourceSlash   IntentSource = "slash"
	SourceMention IntentSource = "mention"
	SourceClick   IntentSource = "click"
	// SourceForm is a submitted form: ActionID names it, Value holds its
	// values as a JSON object (field → value).
	SourceForm IntentSource = "form"
)

// IntentState is how far an intent got.
type IntentState string

const (
	// IntentAccepted: persisted and acked; its work is still to be done
	// (or under way).
	IntentAccepted IntentState = "accepted"
	// IntentDone: nothing left to do (also an intent that was only
	// answered, such as help).
	IntentDone IntentState = "done"
)

// Intents persist intents. Implemented by package store.
type Intents interface {
	// AcceptIntent stores in (State, Version 1 and the times set). When an
	// intent with in.ID exists, it returns the stored one and an error
	// wrapping ErrExists: the envelope was seen before.
	AcceptIntent(ctx context.Context, in *Intent) (*Intent, error)
	// Intent returns a copy of the intent; ErrNotFound when absent.
	Intent(ctx context.Context, id string) (*Intent, error)
	// UpdateIntent is a compare-and-set, with UpdateRequest's contract.
	UpdateIntent(ctx context.Context, id string, fn func(*Intent) error) (*Intent, error)
	// UnfinishedIntents lists the intents not done, oldest first.
	UnfinishedIntents(ctx context.Context) ([]*Intent, error)
	// PruneIntents forgets the intents done before t (Slack redelivers an
	// envelope for minutes, not days); it returns how many it removed.
	PruneIntents(ctx context.Context, before time.Time) (int, error)
}
