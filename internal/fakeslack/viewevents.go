package fakeslack

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// BadAck is an ack of a view_submission that Slack would not act on: the
// modal stays as it was and the user sees Slack's generic error. Reason
// says why, e.g. an errors key that names no input block.
type BadAck struct {
	EnvelopeID string
	ViewID     string
	Payload    json.RawMessage
	Reason     string
}

// BadAcks returns the refused view_submission acks, in order.
func (s *Server) BadAcks() []BadAck {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]BadAck, len(s.badAcks))
	for i, b := range s.badAcks {
		out[i] = b
		out[i].Payload = slices.Clone(b.Payload)
	}
	return out
}

// submission is a view_submission envelope waiting for its ack.
type submission struct {
	viewID  string
	handled bool // its first ack was applied
}

func actionTS() string {
	now := time.Now()
	return fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
}

func interactionUser(id, name string) map[string]any {
	return map[string]any{"id": id, "username": name, "name": name, "team_id": TeamID}
}

var interactionTeam = map[string]any{"id": TeamID, "domain": TeamDomain}

// SendAppHomeOpened sends the app_home_opened event of userID opening the
// app's Home tab: an events_api envelope whose event carries user, the
// user's DM channel with the bot as channel, tab "home", event_ts and, once
// one was published for the user, the home view as it is now. slack-go
// hands it on as a *slackevents.AppHomeOpenedEvent.
func (s *Server) SendAppHomeOpened(userID string) (envelopeID string, err error) {
	if userID == "" {
		return "", errors.New("fakeslack: SendAppHomeOpened needs a user ID")
	}
	event := map[string]any{
		"type":     "app_home_opened",
		"user":     userID,
		"channel":  dmChannel(userID),
		"tab":      "home",
		"event_ts": actionTS(),
	}
	s.mu.Lock()
	if v := s.homes[userID]; v != nil {
		event["view"] = s.viewJSONLocked(v)
	}
	s.mu.Unlock()
	payload, err := eventCallbackPayload(event, "Ev"+strings.ToUpper(randomHex(5)))
	if err != nil {
		return "", err
	}
	envelopeID = newEnvelopeID()
	return envelopeID, s.SendEnvelope(Envelope{EnvelopeID: envelopeID, Type: "events_api", Payload: payload})
}

// SendShortcut sends userID using the app's global shortcut callbackID: an
// interactive envelope with a "shortcut" payload (callback_id, a fresh
// trigger_id, user, team, action_ts), as slack.InteractionCallback decodes
// it. The trigger opens a modal with views.open.
func (s *Server) SendShortcut(userID, callbackID string) (envelopeID string, err error) {
	if userID == "" || callbackID == "" {
		return "", errors.New("fakeslack: SendShortcut needs a user ID and a callback ID")
	}
	envelopeID, trigger := newEnvelopeID(), newTriggerID()
	s.mu.Lock()
	name := s.userNameLocked(userID)
	s.issueTriggerLocked(trigger, userID, envelopeID, "")
	s.mu.Unlock()
	payload, err := json.Marshal(map[string]any{
		"type":                  "shortcut",
		"token":                 VerificationToken,
		"action_ts":             actionTS(),
		"team":                  interactionTeam,
		"user":                  interactionUser(userID, name),
		"is_enterprise_install": false,
		"enterprise":            nil,
		"callback_id":           callbackID,
		"trigger_id":            trigger,
	})
	if err != nil {
		return "", err
	}
	return envelopeID, s.SendEnvelope(Envelope{EnvelopeID: envelopeID, Type: "interactive", Payload: payload})
}

// openViewLocked returns the view userID can act on now: a home tab of
// theirs, or an open modal of theirs on top of its stack.
func (s *Server) openViewLocked(userID, viewID string) (*viewRec, error) {
	v := s.views[viewID]
	switch {
	case v == nil:
		return nil, fmt.Errorf("fakeslack: no view %s", viewID)
	case v.user != userID:
		return nil, fmt.Errorf("fakeslack: view %s is %s's, not %s's", viewID, v.user, userID)
	case v.closed:
		return nil, fmt.Errorf("fakeslack: view %s is closed", viewID)
	case !s.isTopLocked(v):
		return nil, fmt.Errorf("fakeslack: view %s is covered by a view pushed on it", viewID)
	}
	return v, nil
}

// ClickInView sends the block_actions of userID clicking the button
// labelled buttonText in a view: a home tab (HomeView) or a modal on top of
// its stack. The payload has container {type "view", view_id}, the view as
// it is now, the action (action_id, block_id, value, text, type "button"),
// the view's state and a fresh trigger_id (views.push pushes onto the
// modal's stack with it); no channel, message or response_url, as Slack
// gives none for views. It fails when the view or the button is not there.
func (s *Server) ClickInView(userID, viewID, buttonText string) (envelopeID string, err error) {
	s.mu.Lock()
	v, err := s.openViewLocked(userID, viewID)
	if err != nil {
		s.mu.Unlock()
		return "", err
	}
	el, found := findElement(blocksArray(v.blocks), func(e element) bool { return e.typ == "button" && e.text == buttonText })
	if !found {
		s.mu.Unlock()
		return "", fmt.Errorf("fakeslack: view %s has no button %q", viewID, buttonText)
	}
	envelopeID, trigger := newEnvelopeID(), newTriggerID()
	s.issueTriggerLocked(trigger, userID, envelopeID, v.id)
	name := s.userNameLocked(userID)
	view := s.viewJSONLocked(v)
	state, _ := json.Marshal(map[string]any{"values": v.stateValues()})
	s.mu.Unlock()

	payload, err := json.Marshal(map[string]any{
		"type":                  "block_actions",
		"user":                  interactionUser(userID, name),
		"api_app_id":            AppID,
		"token":                 VerificationToken,
		"container":             map[string]any{"type": "view", "view_id": viewID},
		"trigger_id":            trigger,
		"team":                  interactionTeam,
		"enterprise":            nil,
		"is_enterprise_install": false,
		"view":                  view,
		"state":                 json.RawMessage(state),
		"actions": []any{map[string]any{
			"action_id": el.actionID,
			"block_id":  el.blockID,
			"text":      map[string]any{"type": "plain_text", "text": el.text, "emoji": true},
			"value":     el.value,
			"type":      "button",
			"action_ts": actionTS(),
		}},
	})
	if err != nil {
		return "", err
	}
	return envelopeID, s.SendEnvelope(Envelope{EnvelopeID: envelopeID, Type: "interactive", Payload: payload})
}

func (v *viewRec) stateValues() map[string]map[string]any {
	if v.state == nil {
		return map[string]map[string]any{}
	}
	return v.state
}

// Values for SendViewSubmission, shaped as Slack puts them in
// view.state.values[block_id][action_id].

// TextValue is what a plain_text_input holds: {type, value}.
func TextValue(s string) any { return map[string]any{"type": "plain_text_input", "value": s} }

// NumberValue is what a number_input holds: {type, value} (Slack sends the
// number as typed, a string).
func NumberValue(s string) any { return map[string]any{"type": "number_input", "value": s} }

// SelectValue is a static_select's choice: {type, selected_option}. The
// option's text is filled in from the element's options when sent.
func SelectValue(value string) any {
	return map[string]any{"type": "static_select", "selected_option": map[string]any{"value": value}}
}

// ConversationValue is a conversations_select's choice: {type,
// selected_conversation}.
func ConversationValue(ch string) any {
	return map[string]any{"type": "conversations_select", "selected_conversation": ch}
}

// ChannelValue is a channels_select's choice: {type, selected_channel}.
func ChannelValue(ch string) any {
	return map[string]any{"type": "channels_select", "selected_channel": ch}
}

// statefulElement is an element whose value goes into view.state.
type statefulElement struct {
	blockID, actionID, typ string
	input, optional        bool
	el                     map[string]any
}

// statelessTypes are interactive elements that hold no value.
var statelessTypes = map[string]bool{"button": true, "overflow": true, "workflow_button": true}

func statefulElements(blocks []json.RawMessage) []statefulElement {
	var out []statefulElement
	for _, raw := range blocks {
		b, isObj := decodeObject(raw)
		if !isObj {
			continue
		}
		blockID, _ := b["block_id"].(string)
		optional, _ := b["optional"].(bool)
		for _, el := range interactiveElements(b) {
			typ, _ := el["type"].(string)
			if statelessTypes[typ] {
				continue
			}
			actionID, _ := el["action_id"].(string)
			out = append(out, statefulElement{blockID: blockID, actionID: actionID, typ: typ, input: b["type"] == "input", optional: optional, el: el})
		}
	}
	return out
}

// valueKeys maps element types to the state key holding their value, and
// initialKeys the element fields that preset them.
var (
	valueKeys = map[string]string{
		"static_select": "selected_option", "external_select": "selected_option", "radio_buttons": "selected_option",
		"multi_static_select": "selected_options", "multi_external_select": "selected_options", "checkboxes": "selected_options",
		"users_select": "selected_user", "multi_users_select": "selected_users",
		"conversations_select": "selected_conversation", "multi_conversations_select": "selected_conversations",
		"channels_select": "selected_channel", "multi_channels_select": "selected_channels",
		"datepicker": "selected_date", "timepicker": "selected_time", "datetimepicker": "selected_date_time",
	}
	initialKeys = map[string]string{
		"initial_value": "value", "initial_option": "selected_option", "initial_options": "selected_options",
		"initial_user": "selected_user", "initial_users": "selected_users",
		"initial_conversation": "selected_conversation", "initial_conversations": "selected_conversations",
		"initial_channel": "selected_channel", "initial_channels": "selected_channels",
		"initial_date": "selected_date", "initial_time": "selected_time", "initial_date_time": "selected_date_time",
	}
)

func valueKey(typ string) string {
	if k, has := valueKeys[typ]; has {
		return k
	}
	return "value" // plain_text_input, number_input, email_text_input, url_text_input, …
}

// presetValue is what Slack reports for an element the user left alone:
// its initial value, else null.
func presetValue(e statefulElement) map[string]any {
	m := map[string]any{"type": e.typ, valueKey(e.typ): nil}
	for from, to := range initialKeys {
		if v, has := e.el[from]; has {
			m[to] = v
		}
	}
	return m
}

func isEmptyValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	}
	return false
}

// submissionStateLocked builds view.state.values for a submission of v with
// the values a test gave, or says why a Slack client would not send it.
func submissionStateLocked(v *viewRec, values map[string]map[string]any) (map[string]map[string]any, error) {
	elements := statefulElements(v.blocks)
	find := func(blockID, actionID string) (statefulElement, bool) {
		for _, e := range elements {
			if e.blockID == blockID && e.actionID == actionID {
				return e, true
			}
		}
		return statefulElement{}, false
	}
	state := map[string]map[string]any{}
	for blockID, actions := range values {
		for actionID, val := range actions {
			e, found := find(blockID, actionID)
			if !found {
				return nil, fmt.Errorf("fakeslack: view %s has no element %s/%s that holds a value", v.id, blockID, actionID)
			}
			m, err := normalizeValue(e, val)
			if err != nil {
				return nil, fmt.Errorf("fakeslack: value for %s/%s: %w", blockID, actionID, err)
			}
			if state[blockID] == nil {
				state[blockID] = map[string]any{}
			}
			state[blockID][actionID] = m
		}
	}
	for _, e := range elements {
		m, given := state[e.blockID][e.actionID].(map[string]any)
		if !given {
			if !e.input {
				continue
			}
			m = presetValue(e)
			if state[e.blockID] == nil {
				state[e.blockID] = map[string]any{}
			}
			state[e.blockID][e.actionID] = m
		}
		if e.input && !e.optional && isEmptyValue(m[valueKey(e.typ)]) {
			return nil, fmt.Errorf("fakeslack: required input %s/%s has no value: Slack does not let the user submit", e.blockID, e.actionID)
		}
	}
	return state, nil
}

// normalizeValue turns a test's value into the state entry for e, checking
// it against the element as a Slack client would.
func normalizeValue(e statefulElement, val any) (map[string]any, error) {
	b, err := json.Marshal(val)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil || m == nil {
		return nil, fmt.Errorf("%s is not a JSON object", b)
	}
	if typ, _ := m["type"].(string); typ != "" && typ != e.typ {
		return nil, fmt.Errorf("a %s value for a %s element", typ, e.typ)
	}
	m["type"] = e.typ
	key := valueKey(e.typ)
	switch e.typ {
	case "static_select", "radio_buttons":
		sel, _ := m[key].(map[string]any)
		if sel == nil {
			break
		}
		want, _ := sel["value"].(string)
		opt, found := findOption(e.el, want)
		if !found {
			return nil, fmt.Errorf("%s has no option %q", e.actionID, want)
		}
		m[key] = opt
	case "plain_text_input":
		text, _ := m[key].(string)
		n := utf8.RuneCountInString(text)
		if maxLen, has := numberField(e.el, "max_length"); has && float64(n) > maxLen {
			return nil, fmt.Errorf("%d characters, more than max_length %v", n, maxLen)
		}
		if minLen, has := numberField(e.el, "min_length"); has && n > 0 && float64(n) < minLen {
			return nil, fmt.Errorf("%d characters, fewer than min_length %v", n, minLen)
		}
	case "number_input":
		text, _ := m[key].(string)
		if text == "" {
			break
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", text)
		}
		if dec, _ := e.el["is_decimal_allowed"].(bool); !dec && strings.ContainsAny(text, ".eE") {
			return nil, fmt.Errorf("%q is not a whole number (is_decimal_allowed is false)", text)
		}
		if lo, has := numberField(e.el, "min_value"); has && f < lo {
			return nil, fmt.Errorf("%s is below min_value %v", text, lo)
		}
		if hi, has := numberField(e.el, "max_value"); has && f > hi {
			return nil, fmt.Errorf("%s is above max_value %v", text, hi)
		}
	}
	return m, nil
}

// numberField reads a number (or numeric string, as number_input's
// min_value is) from an element.
func numberField(el map[string]any, key string) (float64, bool) {
	var s string
	switch x := el[key].(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// findOption returns the element's option (or option group member) with
// the value, as Slack sends it back: text and value.
func findOption(el map[string]any, value string) (map[string]any, bool) {
	var opts []any
	if o, isList := el["options"].([]any); isList {
		opts = append(opts, o...)
	}
	if groups, isList := el["option_groups"].([]any); isList {
		for _, g := range groups {
			if gm, isObj := g.(map[string]any); isObj {
				if o, isList := gm["options"].([]any); isList {
					opts = append(opts, o...)
				}
			}
		}
	}
	for _, o := range opts {
		if om, isObj := o.(map[string]any); isObj && om["value"] == value {
			return om, true
		}
	}
	return nil, false
}

// SendViewSubmission sends userID submitting the modal viewID, which must
// be open, theirs, on top of its stack and have a submit button: an
// interactive envelope (accepting a response payload) with a
// "view_submission" payload carrying the view (id, hash, callback_id,
// private_metadata, …) with state.values built from values
// (block_id → action_id → value; see TextValue, SelectValue,
// ConversationValue, ChannelValue, NumberValue), a fresh trigger_id, user
// and team. Input blocks left out get their initial value or null; a
// required input without a value, a value for an element the view lacks,
// of another element type, or that the element would refuse (a select
// option it does not offer, a number out of range, text over max_length)
// is an error, as a Slack client would not send it.
//
// The app's ack decides what happens next, as on Slack: no payload or no
// response_action closes the modal (the views pushed on it too);
// "clear" closes its whole stack; "errors" keeps it open showing the
// errors (ViewErrors), if every key names an input block's block_id;
// "update" replaces it (same ID, new hash); "push" pushes the ack's view
// on its stack. An ack Slack would refuse (errors naming other blocks, an
// invalid view, a stack already 3 deep, an unknown response_action)
// changes nothing and is recorded in BadAcks.
func (s *Server) SendViewSubmission(userID, viewID string, values map[string]map[string]any) (envelopeID string, err error) {
	s.mu.Lock()
	v, err := s.openViewLocked(userID, viewID)
	if err == nil && v.typ != viewTypeModal {
		err = fmt.Errorf("fakeslack: view %s is a %s, not a modal", viewID, v.typ)
	}
	if err == nil && (v.submit == nil || v.submitDisabled) {
		err = fmt.Errorf("fakeslack: modal %s has no submit button", viewID)
	}
	var state map[string]map[string]any
	if err == nil {
		state, err = submissionStateLocked(v, values)
	}
	if err != nil {
		s.mu.Unlock()
		return "", err
	}
	v.state = state // what the user entered stays in the view
	v.errors = nil  // a new submission clears the errors shown
	envelopeID, trigger := newEnvelopeID(), newTriggerID()
	s.issueTriggerLocked(trigger, userID, envelopeID, v.id)
	s.submissions[envelopeID] = &submission{viewID: v.id}
	name := s.userNameLocked(userID)
	view := s.viewJSONLocked(v)
	s.notifyLocked()
	s.mu.Unlock()

	payload, err := json.Marshal(map[string]any{
		"type":                  "view_submission",
		"token":                 VerificationToken,
		"team":                  interactionTeam,
		"user":                  interactionUser(userID, name),
		"api_app_id":            AppID,
		"trigger_id":            trigger,
		"view":                  view,
		"response_urls":         []any{},
		"is_enterprise_install": false,
		"enterprise":            nil,
	})
	if err != nil {
		return "", err
	}
	return envelopeID, s.SendEnvelope(Envelope{EnvelopeID: envelopeID, Type: "interactive", Payload: payload, AcceptsResponsePayload: true})
}

// SendViewClosed is userID closing the modal viewID with its Close button
// (or the X): the modal closes (its whole stack when clear_on_close), and
// when the view asked for notify_on_close a "view_closed" interactive
// envelope is sent (view, is_cleared, user, team), whose ID is returned;
// otherwise envelopeID is "" as Slack tells the app nothing.
func (s *Server) SendViewClosed(userID, viewID string) (envelopeID string, err error) {
	s.mu.Lock()
	v, err := s.openViewLocked(userID, viewID)
	if err == nil && v.typ != viewTypeModal {
		err = fmt.Errorf("fakeslack: view %s is a %s, not a modal", viewID, v.typ)
	}
	if err != nil {
		s.mu.Unlock()
		return "", err
	}
	view := s.viewJSONLocked(v)
	if v.clearOnClose {
		s.closeStackLocked(v)
	} else {
		s.closeFromLocked(v)
	}
	notify, cleared := v.notifyOnClose, v.clearOnClose
	name := s.userNameLocked(userID)
	s.mu.Unlock()
	if !notify {
		return "", nil
	}
	payload, err := json.Marshal(map[string]any{
		"type":                  "view_closed",
		"token":                 VerificationToken,
		"team":                  interactionTeam,
		"user":                  interactionUser(userID, name),
		"api_app_id":            AppID,
		"view":                  view,
		"is_cleared":            cleared,
		"is_enterprise_install": false,
		"enterprise":            nil,
	})
	if err != nil {
		return "", err
	}
	envelopeID = newEnvelopeID()
	return envelopeID, s.SendEnvelope(Envelope{EnvelopeID: envelopeID, Type: "interactive", Payload: payload})
}

// viewAckLocked applies the first ack of a view_submission envelope, as
// Slack does with the response (see SendViewSubmission).
func (s *Server) viewAckLocked(envelopeID string, payload json.RawMessage) {
	sub := s.submissions[envelopeID]
	if sub == nil || sub.handled {
		return
	}
	sub.handled = true
	v := s.views[sub.viewID]
	if v == nil {
		return
	}
	bad := func(format string, args ...any) {
		s.badAcks = append(s.badAcks, BadAck{EnvelopeID: envelopeID, ViewID: v.id, Payload: slices.Clone(payload), Reason: fmt.Sprintf(format, args...)})
		s.notifyLocked()
	}
	if v.closed {
		bad("view %s was closed before the ack arrived", v.id)
		return
	}
	var resp struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
		View           json.RawMessage   `json:"view"`
	}
	if len(payload) > 0 && string(payload) != "null" {
		if err := json.Unmarshal(payload, &resp); err != nil {
			bad("payload is not a response_action object: %v", err)
			return
		}
	}
	switch resp.ResponseAction {
	case "":
		s.closeFromLocked(v)
	case "clear":
		s.closeStackLocked(v)
	case "errors":
		inputs := map[string]bool{}
		for _, e := range statefulElements(v.blocks) {
			if e.input {
				inputs[e.blockID] = true
			}
		}
		if len(resp.Errors) == 0 {
			bad("response_action errors without errors")
			return
		}
		for k := range resp.Errors {
			if !inputs[k] {
				bad("errors key %q is not the block_id of an input block in view %s", k, v.id)
				return
			}
		}
		v.errors = resp.Errors
		s.notifyLocked()
	case "update", "push":
		pv, code, msgs := parseViewJSON(resp.View, viewTypeModal)
		if code != "" {
			bad("response_action %s with a view Slack refuses: %s %s", resp.ResponseAction, code, strings.Join(msgs, "; "))
			return
		}
		if resp.ResponseAction == "update" {
			if s.externalIDTakenLocked(pv.externalID, v) {
				bad("response_action update: duplicate_external_id")
				return
			}
			s.applyLocked(v, pv)
			v.updated++
			return
		}
		st := s.stackLocked(v.root)
		if len(st) >= maxViewStack {
			bad("response_action push: push_limit_reached (stack of %d)", len(st))
			return
		}
		if s.externalIDTakenLocked(pv.externalID, nil) {
			bad("response_action push: duplicate_external_id")
			return
		}
		s.addViewLocked(pv, v.user, v.root, st[len(st)-1].id, "response_action")
	default:
		bad("unknown response_action %q", resp.ResponseAction)
	}
}
