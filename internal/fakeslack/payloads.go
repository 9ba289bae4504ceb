package fakeslack

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// SlashCommand describes a slash command a user typed. Empty optional fields
// get defaults: TeamID TeamID, UserName from AddUser (else the lowercased
// ID), ChannelName from AddChannel, a fresh EnvelopeID and TriggerID. The
// trigger_id, fresh or given, is issued to UserID (see Trigger): views.open
// accepts it once, within the trigger TTL of the envelope's write.
type SlashCommand struct {
	Command     string // "/launch"; required
	Text        string // everything after the command
	UserID      string // required
	UserName    string
	ChannelID   string // required
	ChannelName string
	TeamID      string
	EnvelopeID  string
	TriggerID   string
}

// SendSlashCommand sends a slash_commands envelope with the payload fields
// Slack sends (token aside) and a response_url that points at this server
// and replies in ChannelID, ephemerally to UserID unless the reply says
// response_type "in_channel". The envelope accepts a response payload; an
// ack payload with text or blocks is recorded as a message too (Via "ack").
func (s *Server) SendSlashCommand(cmd SlashCommand) (envelopeID string, err error) {
	if cmd.Command == "" || cmd.UserID == "" || cmd.ChannelID == "" {
		return "", errors.New("fakeslack: SlashCommand needs Command, UserID and ChannelID")
	}
	s.mu.Lock()
	if cmd.UserName == "" {
		cmd.UserName = s.userNameLocked(cmd.UserID)
	}
	if cmd.ChannelName == "" {
		cmd.ChannelName = s.channelNameLocked(cmd.ChannelID)
	}
	respURL := s.newResponseURLLocked(&responseTarget{channel: cmd.ChannelID, user: cmd.UserID})
	s.mu.Unlock()
	if cmd.TeamID == "" {
		cmd.TeamID = TeamID
	}
	if cmd.EnvelopeID == "" {
		cmd.EnvelopeID = newEnvelopeID()
	}
	if cmd.TriggerID == "" {
		cmd.TriggerID = newTriggerID()
	}
	s.issueTrigger(cmd.TriggerID, cmd.UserID, cmd.EnvelopeID, "")
	payload, err := json.Marshal(map[string]any{
		"team_id":               cmd.TeamID,
		"team_domain":           TeamDomain,
		"channel_id":            cmd.ChannelID,
		"channel_name":          cmd.ChannelName,
		"user_id":               cmd.UserID,
		"user_name":             cmd.UserName,
		"command":               cmd.Command,
		"text":                  cmd.Text,
		"api_app_id":            AppID,
		"is_enterprise_install": false,
		"response_url":          respURL,
		"trigger_id":            cmd.TriggerID,
	})
	if err != nil {
		return "", err
	}
	return cmd.EnvelopeID, s.SendEnvelope(Envelope{
		EnvelopeID:             cmd.EnvelopeID,
		Type:                   "slash_commands",
		Payload:                payload,
		AcceptsResponsePayload: true,
	})
}

// BlockAction describes a click on a Block Kit element of a message.
//
// When MessageTS names a message the server holds (one posted through the
// fake), the payload's message, container and thread come from it, and an
// empty BlockID, Value or Text is taken from the element with ActionID in its
// blocks. Otherwise MessageText and MessageBlocks describe the message. A
// BlockID still empty gets a random one: Slack always sends one, and slack-go
// ignores actions without it.
type BlockAction struct {
	UserID    string // required
	UserName  string
	ChannelID string // required
	MessageTS string
	ActionID  string // required
	BlockID   string
	Value     string
	Text      string // the button's label
	Type      string // element type; "button" when empty

	MessageText   string
	MessageBlocks json.RawMessage

	TeamID     string
	EnvelopeID string
	TriggerID  string
}

// SendBlockAction sends an interactive envelope with a block_actions
// payload, laid out as Slack sends it, whose response_url points at this
// server: replace_original and delete_original act on the clicked message.
// Its trigger_id (TriggerID, or a fresh one) is issued to UserID, for
// views.open. For buttons in a view (home tab or modal) use ClickInView.
func (s *Server) SendBlockAction(a BlockAction) (envelopeID string, err error) {
	if a.UserID == "" || a.ChannelID == "" || a.ActionID == "" {
		return "", errors.New("fakeslack: BlockAction needs UserID, ChannelID and ActionID")
	}
	if a.Type == "" {
		a.Type = "button"
	}
	if a.TeamID == "" {
		a.TeamID = TeamID
	}
	if a.EnvelopeID == "" {
		a.EnvelopeID = newEnvelopeID()
	}
	if a.TriggerID == "" {
		a.TriggerID = newTriggerID()
	}

	s.mu.Lock()
	if a.UserName == "" {
		a.UserName = s.userNameLocked(a.UserID)
	}
	channelName := s.channelNameLocked(a.ChannelID)
	var message map[string]any
	var threadTS string
	ephemeral := false
	if m := s.findMessage(a.ChannelID, a.MessageTS); m != nil {
		message = s.messageJSON(m)
		threadTS = m.ThreadTS
		ephemeral = m.Ephemeral
		if el, found := findElement(m.Blocks, func(e element) bool { return e.actionID == a.ActionID }); found {
			a.BlockID = firstNonEmpty(a.BlockID, el.blockID)
			a.Value = firstNonEmpty(a.Value, el.value)
			a.Text = firstNonEmpty(a.Text, el.text)
		}
	} else {
		message = map[string]any{
			"type":   "message",
			"user":   BotUserID,
			"bot_id": BotID,
			"text":   a.MessageText,
			"ts":     a.MessageTS,
		}
		if len(a.MessageBlocks) > 0 {
			message["blocks"] = a.MessageBlocks
		}
	}
	respURL := s.newResponseURLLocked(&responseTarget{
		channel:   a.ChannelID,
		user:      a.UserID,
		messageTS: a.MessageTS,
		threadTS:  threadTS,
	})
	s.issueTriggerLocked(a.TriggerID, a.UserID, a.EnvelopeID, "")
	s.mu.Unlock()

	if a.BlockID == "" {
		a.BlockID = randomHex(3)
	}
	actionTS := fmt.Sprintf("%d.%06d", time.Now().Unix(), time.Now().Nanosecond()/1000)
	action := map[string]any{
		"action_id": a.ActionID,
		"block_id":  a.BlockID,
		"value":     a.Value,
		"type":      a.Type,
		"action_ts": actionTS,
	}
	if a.Type == "button" {
		action["text"] = map[string]any{"type": "plain_text", "text": a.Text, "emoji": true}
	}
	container := map[string]any{
		"type":         "message",
		"message_ts":   a.MessageTS,
		"channel_id":   a.ChannelID,
		"is_ephemeral": ephemeral,
	}
	if threadTS != "" {
		container["thread_ts"] = threadTS
	}
	payload, err := json.Marshal(map[string]any{
		"type":                  "block_actions",
		"user":                  map[string]any{"id": a.UserID, "username": a.UserName, "name": a.UserName, "team_id": a.TeamID},
		"api_app_id":            AppID,
		"container":             container,
		"trigger_id":            a.TriggerID,
		"team":                  map[string]any{"id": a.TeamID, "domain": TeamDomain},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": a.ChannelID, "name": channelName},
		"message":               message,
		"state":                 map[string]any{"values": map[string]any{}},
		"response_url":          respURL,
		"actions":               []any{action},
	})
	if err != nil {
		return "", err // e.g. MessageBlocks that are not valid JSON
	}
	return a.EnvelopeID, s.SendEnvelope(Envelope{
		EnvelopeID: a.EnvelopeID,
		Type:       "interactive",
		Payload:    payload,
	})
}

// Click sends the block action of userID clicking the button labelled
// buttonText on the message channel/ts, as the fake holds it now. It fails
// when the message or the button is not there, which is how a test sees that
// buttons were removed.
func (s *Server) Click(userID, channel, ts, buttonText string) (envelopeID string, err error) {
	s.mu.Lock()
	m := s.findMessage(channel, ts)
	var el element
	found := false
	if m != nil {
		el, found = findElement(m.Blocks, func(e element) bool { return e.typ == "button" && e.text == buttonText })
	}
	s.mu.Unlock()
	if m == nil {
		return "", fmt.Errorf("fakeslack: no message %s in %s", ts, channel)
	}
	if !found {
		return "", fmt.Errorf("fakeslack: message %s in %s has no button %q", ts, channel, buttonText)
	}
	return s.SendBlockAction(BlockAction{
		UserID:    userID,
		ChannelID: channel,
		MessageTS: ts,
		ActionID:  el.actionID,
		BlockID:   el.blockID,
		Value:     el.value,
		Text:      el.text,
		Type:      el.typ,
	})
}

// Buttons lists the labels of the buttons on a message, in block order.
func (s *Server) Buttons(channel, ts string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMessage(channel, ts)
	if m == nil {
		return nil
	}
	var out []string
	_, _ = findElement(m.Blocks, func(e element) bool {
		if e.typ == "button" {
			out = append(out, e.text)
		}
		return false
	})
	return out
}

// newResponseURLLocked registers t and returns its response_url.
func (s *Server) newResponseURLLocked(t *responseTarget) string {
	id := strconv.FormatInt(time.Now().UnixNano()%1e9, 10) + "/" + randomHex(12)
	s.responses[id] = t
	return s.ts.URL + "/response/" + id
}

// element is an interactive element found in a message's blocks.
type element struct {
	blockID  string
	typ      string
	actionID string
	value    string
	text     string
}

// findElement walks the elements of actions blocks and the accessories of
// section blocks and returns the first for which match is true. Blocks it
// cannot read are skipped: stored blocks come from the code under test.
func findElement(blocks json.RawMessage, match func(element) bool) (element, bool) {
	var list []map[string]any
	if json.Unmarshal(blocks, &list) != nil {
		return element{}, false
	}
	for _, b := range list {
		blockID, _ := b["block_id"].(string)
		var candidates []any
		if els, isList := b["elements"].([]any); isList && b["type"] == "actions" {
			candidates = append(candidates, els...)
		}
		if acc, isObj := b["accessory"].(map[string]any); isObj {
			candidates = append(candidates, acc)
		}
		for _, c := range candidates {
			obj, isObj := c.(map[string]any)
			if !isObj {
				continue
			}
			e := element{blockID: blockID}
			e.typ, _ = obj["type"].(string)
			e.actionID, _ = obj["action_id"].(string)
			e.value, _ = obj["value"].(string)
			if t, isObj := obj["text"].(map[string]any); isObj {
				e.text, _ = t["text"].(string)
			}
			if match(e) {
				return e, true
			}
		}
	}
	return element{}, false
}
