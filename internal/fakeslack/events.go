package fakeslack

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// VerificationToken is the (deprecated) verification token the fake puts in
// Events API payloads, as Slack still does. slack-go's socketmode client does
// not check it.
const VerificationToken = "fakeslackverificationtoken"

// Mention describes a user mentioning the bot in a message: an app_mention
// event.
type Mention struct {
	UserID    string // required
	ChannelID string // required
	// Text is the message as Slack encodes it, e.g.
	// "<@U0FAKEBOT> launch t2.micro". It is sent as given (a mention need
	// not start the text); empty means "<@U0FAKEBOT>".
	Text string
	// ThreadTS makes the message a reply in that thread.
	ThreadTS string
	// TS is the message's ts. When empty the server hands out a new one and
	// records the user's message in the channel (or thread), so Messages,
	// Thread and WaitMessage show it (User UserID, Via "app_mention").
	// When set, nothing is recorded: the message is taken to exist already.
	TS         string
	EnvelopeID string
	// EventID is the event's event_id; empty means a new one. Slack's
	// retries of an event share it, whatever envelope carries them.
	EventID string
}

// SendMention sends an events_api envelope whose payload is an
// event_callback carrying an app_mention event, laid out as Slack sends it
// (team_id, api_app_id, event_id, event_time, authorizations for the bot
// user, and the event with user, text, rich_text blocks, ts, thread_ts,
// channel and event_ts). slack-go's socketmode client hands it on as an
// EventTypeEventsAPI event whose InnerEvent.Data is a
// *slackevents.AppMentionEvent. The envelope takes no response payload.
func (s *Server) SendMention(m Mention) (envelopeID string, err error) {
	if m.UserID == "" || m.ChannelID == "" {
		return "", errors.New("fakeslack: Mention needs UserID and ChannelID")
	}
	if m.Text == "" {
		m.Text = "<@" + BotUserID + ">"
	}
	if m.EnvelopeID == "" {
		m.EnvelopeID = newEnvelopeID()
	}
	if m.EventID == "" {
		m.EventID = "Ev" + strings.ToUpper(randomHex(5))
	}

	s.mu.Lock()
	if s.closed() {
		s.mu.Unlock()
		return "", ErrClosed
	}
	if m.TS == "" {
		msg := s.addMessageLocked(Message{
			Channel:  m.ChannelID,
			ThreadTS: m.ThreadTS,
			User:     m.UserID,
			Text:     m.Text,
			Via:      "app_mention",
		})
		m.TS = msg.TS
	}
	parentUser := ""
	if m.ThreadTS != "" {
		if p := s.findMessage(m.ChannelID, m.ThreadTS); p != nil {
			parentUser = p.User
		}
	}
	s.mu.Unlock()

	event := map[string]any{
		"type":          "app_mention",
		"user":          m.UserID,
		"text":          m.Text,
		"ts":            m.TS,
		"client_msg_id": newEnvelopeID(),
		"team":          TeamID,
		"blocks":        richTextBlocks(m.Text),
		"channel":       m.ChannelID,
		"event_ts":      m.TS,
	}
	if m.ThreadTS != "" {
		event["thread_ts"] = m.ThreadTS
		if parentUser != "" {
			event["parent_user_id"] = parentUser
		}
	}
	payload, err := eventCallbackPayload(event, m.EventID)
	if err != nil {
		return "", err
	}
	return m.EnvelopeID, s.SendEnvelope(Envelope{
		EnvelopeID: m.EnvelopeID,
		Type:       "events_api",
		Payload:    payload,
	})
}

// eventCallbackPayload wraps an Events API event as Slack does in an
// events_api envelope's payload.
func eventCallbackPayload(event map[string]any, eventID string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"token":                 VerificationToken,
		"team_id":               TeamID,
		"context_team_id":       TeamID,
		"context_enterprise_id": nil,
		"api_app_id":            AppID,
		"event":                 event,
		"type":                  "event_callback",
		"event_id":              eventID,
		"event_time":            time.Now().Unix(),
		"authorizations": []any{map[string]any{
			"enterprise_id":         nil,
			"team_id":               TeamID,
			"user_id":               BotUserID,
			"is_bot":                true,
			"is_enterprise_install": false,
		}},
		"is_ext_shared_channel": false,
		"event_context":         "4-" + randomHex(16),
	})
}

// richTextBlocks builds the rich_text block Slack attaches to a typed
// message from its encoded text: <@U…> user, <#C…|name> channel,
// <!subteam^S…> user group, <!here> broadcast and <url|label> link
// elements, the rest text with &lt; &gt; &amp; decoded.
func richTextBlocks(text string) []any {
	var els []any
	addText := func(t string) {
		t = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(t)
		if t != "" {
			els = append(els, map[string]any{"type": "text", "text": t})
		}
	}
	rest := text
	for rest != "" {
		i := strings.IndexByte(rest, '<')
		j := -1
		if i >= 0 {
			j = strings.IndexByte(rest[i:], '>')
		}
		if i < 0 || j < 0 {
			addText(rest)
			break
		}
		addText(rest[:i])
		els = append(els, richTextElement(rest[i+1:i+j]))
		rest = rest[i+j+1:]
	}
	return []any{map[string]any{
		"type":     "rich_text",
		"block_id": randomHex(2),
		"elements": []any{map[string]any{"type": "rich_text_section", "elements": els}},
	}}
}

// richTextElement turns one <…> token (without the brackets) into its
// rich text element.
func richTextElement(tok string) map[string]any {
	ref, label, _ := strings.Cut(tok, "|")
	switch {
	case strings.HasPrefix(ref, "@"):
		return map[string]any{"type": "user", "user_id": ref[1:]}
	case strings.HasPrefix(ref, "#"):
		return map[string]any{"type": "channel", "channel_id": ref[1:]}
	case strings.HasPrefix(ref, "!subteam^"):
		return map[string]any{"type": "usergroup", "usergroup_id": strings.TrimPrefix(ref, "!subteam^")}
	case ref == "!here" || ref == "!channel" || ref == "!everyone":
		return map[string]any{"type": "broadcast", "range": ref[1:]}
	case strings.HasPrefix(ref, "!"):
		return map[string]any{"type": "text", "text": firstNonEmpty(label, ref[1:])}
	default:
		el := map[string]any{"type": "link", "url": ref}
		if label != "" {
			el["text"] = label
		}
		return el
	}
}
