package store

import (
	"context"
	"time"

	"github.com/computebot/computebot"
)

// intentRecord is the stored form of a computebot.Intent (since schema 2;
// the bucket came later, which needs no migration: an older computebot of
// schema 2 never opens it).
type intentRecord struct {
	ID          string `json:"id"`
	TriggerID   string `json:"trigger_id,omitempty"`
	Actor       string `json:"actor,omitempty"`
	Channel     string `json:"channel,omitempty"`
	ThreadTS    string `json:"thread_ts,omitempty"`
	ResponseURL string `json:"response_url,omitempty"`
	ReplyInAck  bool   `json:"reply_in_ack,omitempty"`

	Source    string `json:"source"`
	Command   string `json:"command,omitempty"`
	Text      string `json:"text,omitempty"`
	ActionID  string `json:"action_id,omitempty"`
	Value     string `json:"value,omitempty"`
	MessageTS string `json:"message_ts,omitempty"`

	Ack   string `json:"ack,omitempty"`
	State string `json:"state"`
	Step  string `json:"step,omitempty"`
	Claim string `json:"claim,omitempty"`

	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

func toIntentRecord(in *computebot.Intent) intentRecord {
	return intentRecord{
		ID: in.ID, TriggerID: in.TriggerID, Actor: in.Actor, Channel: in.Channel, ThreadTS: in.ThreadTS,
		ResponseURL: in.ResponseURL, ReplyInAck: in.ReplyInAck,
		Source: string(in.Source), Command: in.Command, Text: in.Text, ActionID: in.ActionID, Value: in.Value,
		MessageTS: in.MessageTS, Ack: in.Ack, State: string(in.State), Step: in.Step, Claim: in.Claim,
		Version: in.Version, CreatedAt: in.CreatedAt.UTC(), UpdatedAt: in.UpdatedAt.UTC(),
	}
}

func (rec *intentRecord) intent() *computebot.Intent {
	return &computebot.Intent{
		ID: rec.ID, TriggerID: rec.TriggerID, Actor: rec.Actor, Channel: rec.Channel, ThreadTS: rec.ThreadTS,
		ResponseURL: rec.ResponseURL, ReplyInAck: rec.ReplyInAck,
		Source: computebot.IntentSource(rec.Source), Command: rec.Command, Text: rec.Text, ActionID: rec.ActionID,
		Value: rec.Value, MessageTS: rec.MessageTS, Ack: rec.Ack, State: computebot.IntentState(rec.State), Step: rec.Step,
		Claim:   rec.Claim,
		Version: rec.Version, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt,
	}
}

func (db *DB) intents() table[computebot.Intent] {
	return table[computebot.Intent]{
		db: db, bucket: intentsBucket, what: "intent",
		fields: func(in *computebot.Intent) header {
			return header{id: &in.ID, version: &in.Version, created: &in.CreatedAt, updated: &in.UpdatedAt}
		},
		encode: EncodeIntent,
		decode: DecodeIntent,
	}
}

// AcceptIntent stores in with Version 1 (one durable write: this is what
// an envelope's ack waits for). When an intent with in.ID is stored
// already, the envelope came before: it returns that intent, with an
// error wrapping computebot.ErrExists.
func (db *DB) AcceptIntent(ctx context.Context, in *computebot.Intent) (*computebot.Intent, error) {
	return db.intents().create(ctx, in)
}

// Intent returns a fresh copy of the stored intent; the error wraps
// computebot.ErrNotFound when there is none.
func (db *DB) Intent(ctx context.Context, id string) (*computebot.Intent, error) {
	return db.intents().get(ctx, id)
}

// UpdateIntent is the compare-and-set of UpdateRequest, for intents.
func (db *DB) UpdateIntent(ctx context.Context, id string, fn func(*computebot.Intent) error) (*computebot.Intent, error) {
	return db.intents().update(ctx, id, fn)
}

// UnfinishedIntents lists the intents not done, oldest first (by
// CreatedAt, then ID): the work a restart resumes.
func (db *DB) UnfinishedIntents(ctx context.Context) ([]*computebot.Intent, error) {
	return db.intents().list(ctx, func(in *computebot.Intent) bool { return in.State != computebot.IntentDone })
}

// PruneIntents deletes the intents done and last updated before t.
func (db *DB) PruneIntents(ctx context.Context, before time.Time) (int, error) {
	return db.intents().prune(ctx, func(in *computebot.Intent) bool {
		return in.State == computebot.IntentDone && in.UpdatedAt.Before(before)
	})
}
