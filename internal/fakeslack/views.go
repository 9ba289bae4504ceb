package fakeslack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Slack's limits on view objects (docs.slack.dev/reference/views/modal-views,
// the views.* method references).
const (
	maxViewBlocks       = 100       // "Max of 100 blocks"
	maxViewButtonText   = 24        // title, submit, close: "max length of 24 characters"
	maxCallbackID       = 255       // callback_id
	maxExternalID       = 255       // external_id
	maxPrivateMetadata  = 3000      // private_metadata
	maxBlockID          = 255       // block_id
	maxInputLabel       = 2000      // input block label
	maxViewBytes        = 250 << 10 // view_too_large: "greater than 250kb"
	maxViewStack        = 3         // push_limit_reached: "Currently the limit is 3"
	viewHashRandomBytes = 4         // hashes look like "156772938.1827394"
	viewIDRandomBytes   = 4         // IDs look like "VMHU10V25"
	viewTypeModal       = "modal"   // views.open, views.push, views.update
	viewTypeHome        = "home"    // views.publish
	viewPointer         = "/view"   // json-pointer prefix of view errors
	errInvalidArguments = "invalid_arguments"
)

// View is the fake's record of a view: a modal opened with views.open or
// views.push (or an ack's response_action push), or a user's home tab
// published with views.publish.
type View struct {
	ID              string
	Type            string // "modal" or "home"
	Hash            string // new on every change
	CallbackID      string
	PrivateMetadata string
	ExternalID      string
	// UserID is who sees it: the trigger's user for a modal, user_id for a
	// home tab.
	UserID string
	// Title, Submit and Close are the texts of those plain_text objects (""
	// when absent; home tabs have none).
	Title  string
	Submit string
	Close  string
	// Blocks holds each block's JSON as stored: as sent, plus the block_id
	// (and action_id) Slack assigns when one is missing.
	Blocks []json.RawMessage
	// Text is a readable rendering of the blocks' text, one line per text
	// object: header, section text and fields, context elements, button
	// labels, input labels and hints, rich text. mrkdwn goes through
	// Readable (users named with AddUser show as @name). Placeholders and
	// option lists are left out.
	Text string
	// State is the view's state.values object: what was last submitted
	// (SendViewSubmission), {} before.
	State json.RawMessage
	// RootViewID is the first view of the modal's stack (its own ID for a
	// root modal or a home tab); PreviousViewID the view it was pushed on.
	RootViewID     string
	PreviousViewID string
	// Closed is set once the modal was closed: an empty or "clear" ack of
	// a submission, SendViewClosed. Home tabs never close.
	Closed bool
	// Updated counts views.update calls, views.publish republishes and
	// response_action update acks applied.
	Updated int
	// Via names how the view was created: "views.open", "views.push",
	// "views.publish" or "response_action" (a push in a submission's ack).
	Via string
}

// viewRec is a stored view.
type viewRec struct {
	id, user string
	// parsedView is the view as last set (opened, updated, published);
	// title, submit and close are the raw text objects, nil when absent.
	parsedView
	hash           string
	root, previous string
	state          map[string]map[string]any // state.values
	errors         map[string]string         // from an errors ack
	closed         bool
	updated        int
	via            string
}

// parsedView is a view object from a request, validated.
type parsedView struct {
	typ                  string
	title, submit, close json.RawMessage
	blocks               []json.RawMessage
	privateMetadata      string
	callbackID           string
	externalID           string
	clearOnClose         bool
	notifyOnClose        bool
	submitDisabled       bool
}

// invalidArgs is Slack's answer to a view it refuses: invalid_arguments
// with one "[ERROR] … [json-pointer:…]" line per problem in
// response_metadata.messages (slack.SlackErrorResponse.ResponseMetadata).
func invalidArgs(messages ...string) apiResult {
	res := fail(errInvalidArguments)
	res.body["response_metadata"] = map[string]any{"messages": messages}
	return res
}

func viewError(pointer, format string, args ...any) string {
	return "[ERROR] " + fmt.Sprintf(format, args...) + " [json-pointer:" + pointer + "]"
}

// textObject is a plain_text or mrkdwn composition object.
type textObject struct {
	Type string  `json:"type"`
	Text *string `json:"text"`
}

// parseViewJSON validates a view object as Slack does in the main points:
// its type (want), the modal's title, submit and close (plain_text, at most
// 24 characters; submit needed with input blocks), at most 100 blocks,
// callback_id, external_id and private_metadata lengths, blocks with a
// type, unique block_ids of at most 255 characters, input blocks with a
// label and an element. Blocks without a block_id, and interactive elements
// without an action_id, get a random one, as on Slack. It returns the
// error code ("" when valid) and the messages for invalid_arguments.
func parseViewJSON(raw []byte, want string) (*parsedView, string, []string) {
	if len(raw) > maxViewBytes {
		return nil, "view_too_large", nil
	}
	var obj map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errInvalidArguments, []string{viewError("", "missing required field: view")}
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, errInvalidArguments, []string{viewError(viewPointer, "must be an object")}
	}
	var msgs []string
	str := func(key string, limit int) string {
		var v string
		if r, has := obj[key]; has && string(r) != "null" {
			if json.Unmarshal(r, &v) != nil {
				msgs = append(msgs, viewError(viewPointer+"/"+key, "must be a string"))
			} else if utf8.RuneCountInString(v) > limit {
				msgs = append(msgs, viewError(viewPointer+"/"+key, "must be less than %d characters", limit+1))
			}
		}
		return v
	}
	flag := func(key string) bool {
		var b bool
		if r, has := obj[key]; has {
			_ = json.Unmarshal(r, &b)
		}
		return b
	}
	v := &parsedView{}
	v.typ = str("type", 64)
	switch {
	case v.typ == "":
		msgs = append(msgs, viewError(viewPointer, "missing required field: type"))
	case v.typ != want:
		msgs = append(msgs, viewError(viewPointer+"/type", "must be `%s` for this method, not `%s`", want, v.typ))
	}
	v.callbackID = str("callback_id", maxCallbackID)
	v.externalID = str("external_id", maxExternalID)
	v.privateMetadata = str("private_metadata", maxPrivateMetadata)
	v.clearOnClose, v.notifyOnClose, v.submitDisabled = flag("clear_on_close"), flag("notify_on_close"), flag("submit_disabled")
	if want == viewTypeModal {
		v.title = plainTextField(obj, "title", true, &msgs)
		v.submit = plainTextField(obj, "submit", false, &msgs)
		v.close = plainTextField(obj, "close", false, &msgs)
	}

	var blocks []json.RawMessage
	if r, has := obj["blocks"]; has && string(r) != "null" {
		if json.Unmarshal(r, &blocks) != nil {
			msgs = append(msgs, viewError(viewPointer+"/blocks", "must be an array"))
		}
	}
	if len(blocks) > maxViewBlocks {
		msgs = append(msgs, viewError(viewPointer+"/blocks", "must be less than %d items", maxViewBlocks+1))
	}
	seen := map[string]bool{}
	for i, rb := range blocks {
		ptr := fmt.Sprintf("%s/blocks/%d", viewPointer, i)
		b, isObj := decodeObject(rb)
		if !isObj {
			msgs = append(msgs, viewError(ptr, "must be an object"))
			continue
		}
		typ, _ := b["type"].(string)
		if typ == "" {
			msgs = append(msgs, viewError(ptr, "missing required field: type"))
		}
		id, _ := b["block_id"].(string)
		switch {
		case id == "":
			b["block_id"] = randomHex(3)
		case utf8.RuneCountInString(id) > maxBlockID:
			msgs = append(msgs, viewError(ptr+"/block_id", "must be less than %d characters", maxBlockID+1))
		case seen[id]:
			msgs = append(msgs, viewError(ptr+"/block_id", "duplicate block_id `%s`", id))
		}
		seen[id] = true
		if typ == "input" {
			label, hasLabel := b["label"].(map[string]any)
			if !hasLabel {
				msgs = append(msgs, viewError(ptr, "missing required field: label"))
			} else if text, _ := label["text"].(string); utf8.RuneCountInString(text) > maxInputLabel {
				msgs = append(msgs, viewError(ptr+"/label/text", "must be less than %d characters", maxInputLabel+1))
			}
			el, hasElement := b["element"].(map[string]any)
			switch {
			case !hasElement:
				msgs = append(msgs, viewError(ptr, "missing required field: element"))
			case el["type"] == nil || el["type"] == "":
				msgs = append(msgs, viewError(ptr+"/element", "missing required field: type"))
			}
			if want == viewTypeModal && v.submit == nil {
				msgs = append(msgs, viewError(ptr+"/input", "must define `submit` to use an `input` block in modals"))
			}
		}
		for _, el := range interactiveElements(b) {
			if id, _ := el["action_id"].(string); id == "" {
				el["action_id"] = randomHex(3)
			}
		}
		out, err := json.Marshal(b)
		if err != nil {
			msgs = append(msgs, viewError(ptr, "must be valid JSON"))
			continue
		}
		v.blocks = append(v.blocks, out)
	}
	if len(msgs) > 0 {
		return nil, errInvalidArguments, msgs
	}
	return v, "", nil
}

// plainTextField validates obj[key] as a plain_text object of at most 24
// characters and returns it compacted (nil when absent).
func plainTextField(obj map[string]json.RawMessage, key string, required bool, msgs *[]string) json.RawMessage {
	ptr := viewPointer + "/" + key
	r, has := obj[key]
	if !has || string(r) == "null" {
		if required {
			*msgs = append(*msgs, viewError(viewPointer, "missing required field: %s", key))
		}
		return nil
	}
	var t textObject
	if json.Unmarshal(r, &t) != nil {
		*msgs = append(*msgs, viewError(ptr, "must be an object"))
		return nil
	}
	if t.Type != "plain_text" {
		*msgs = append(*msgs, viewError(ptr+"/type", "must be `plain_text`"))
	}
	switch {
	case t.Text == nil:
		*msgs = append(*msgs, viewError(ptr, "missing required field: text"))
	case *t.Text == "":
		*msgs = append(*msgs, viewError(ptr+"/text", "must be more than 0 characters"))
	case utf8.RuneCountInString(*t.Text) > maxViewButtonText:
		*msgs = append(*msgs, viewError(ptr+"/text", "must be less than %d characters", maxViewButtonText+1))
	}
	var buf bytes.Buffer
	if json.Compact(&buf, r) != nil {
		return nil
	}
	return buf.Bytes()
}

// decodeObject decodes a JSON object keeping numbers as json.Number, so
// that re-encoding it changes nothing but key order.
func decodeObject(raw []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

// interactiveElements returns a block's interactive elements: an input's
// element, a section's accessory, an actions block's elements.
func interactiveElements(b map[string]any) []map[string]any {
	var out []map[string]any
	add := func(v any) {
		if el, isObj := v.(map[string]any); isObj {
			if typ, _ := el["type"].(string); typ != "" && typ != "image" && typ != "plain_text" && typ != "mrkdwn" {
				out = append(out, el)
			}
		}
	}
	switch b["type"] {
	case "input":
		add(b["element"])
	case "section":
		add(b["accessory"])
	case "actions":
		if els, isList := b["elements"].([]any); isList {
			for _, e := range els {
				add(e)
			}
		}
	}
	return out
}

// parseViewParam reads and validates the view parameter of a views.*
// call; res is the answer when it is not valid.
func parseViewParam(p map[string]string, want string) (*parsedView, apiResult, bool) {
	raw, has := p["view"]
	if !has {
		return nil, invalidArgs(viewError("", "missing required field: view")), false
	}
	v, code, msgs := parseViewJSON([]byte(raw), want)
	if code == errInvalidArguments {
		return nil, invalidArgs(msgs...), false
	}
	if code != "" {
		return nil, fail(code), false
	}
	return v, apiResult{}, true
}

func newViewHash() string {
	return fmt.Sprintf("%d.%s", time.Now().Unix(), randomHex(viewHashRandomBytes))
}

// newViewIDLocked hands out an unused "V…" view ID.
func (s *Server) newViewIDLocked() string {
	for {
		id := "V" + strings.ToUpper(randomHex(viewIDRandomBytes))
		if s.views[id] == nil {
			return id
		}
	}
}

// applyLocked sets v's content from p and gives it a new hash. State
// values of elements no longer in the view are dropped; shown errors go.
func (s *Server) applyLocked(v *viewRec, p *parsedView) {
	ext := v.externalID
	v.parsedView = *p
	if p.externalID == "" {
		v.externalID = ext // an update without one keeps the view's
	}
	v.hash = newViewHash()
	v.errors = nil
	if v.state != nil {
		kept := map[string]map[string]any{}
		for _, e := range statefulElements(v.blocks) {
			if val, has := v.state[e.blockID][e.actionID]; has {
				if kept[e.blockID] == nil {
					kept[e.blockID] = map[string]any{}
				}
				kept[e.blockID][e.actionID] = val
			}
		}
		v.state = kept
	}
	s.notifyLocked()
}

// addViewLocked stores a new view made from p.
func (s *Server) addViewLocked(p *parsedView, user, root, previous, via string) *viewRec {
	v := &viewRec{id: s.newViewIDLocked(), user: user, root: root, previous: previous, via: via}
	if v.root == "" {
		v.root = v.id
	}
	s.applyLocked(v, p)
	s.views[v.id] = v
	s.viewOrder = append(s.viewOrder, v)
	return v
}

// externalIDTakenLocked reports whether an open view other than self uses
// the external_id (Slack: "must be unique for all views on a team").
func (s *Server) externalIDTakenLocked(ext string, self *viewRec) bool {
	if ext == "" {
		return false
	}
	for _, v := range s.viewOrder {
		if v != self && !v.closed && v.externalID == ext {
			return true
		}
	}
	return false
}

// stackLocked returns the open views of the stack rooted at root, bottom
// first.
func (s *Server) stackLocked(root string) []*viewRec {
	var out []*viewRec
	for _, v := range s.viewOrder {
		if v.typ == viewTypeModal && v.root == root && !v.closed {
			out = append(out, v)
		}
	}
	return out
}

// isTopLocked reports whether v is an open modal on top of its stack, the
// only one a user can act on; or a home tab.
func (s *Server) isTopLocked(v *viewRec) bool {
	if v.typ == viewTypeHome {
		return true
	}
	st := s.stackLocked(v.root)
	return len(st) > 0 && st[len(st)-1] == v
}

// closeFromLocked closes v and every view pushed on it.
func (s *Server) closeFromLocked(v *viewRec) {
	found := false
	for _, o := range s.stackLocked(v.root) {
		if o == v {
			found = true
		}
		if found {
			o.closed = true
		}
	}
	v.closed = true
	s.notifyLocked()
}

// closeStackLocked closes every view of v's stack.
func (s *Server) closeStackLocked(v *viewRec) {
	for _, o := range s.stackLocked(v.root) {
		o.closed = true
	}
	s.notifyLocked()
}

// viewJSONLocked renders a stored view as Slack does in views.* answers and
// payloads (slack.View decodes it), already marshalled so that it can be
// sent after s.mu is released.
func (s *Server) viewJSONLocked(v *viewRec) json.RawMessage {
	blocks := v.blocks
	if blocks == nil {
		blocks = []json.RawMessage{}
	}
	values := v.state
	if values == nil {
		values = map[string]map[string]any{}
	}
	var previous any
	if v.previous != "" {
		previous = v.previous
	}
	raw := func(r json.RawMessage) any {
		if r == nil {
			return nil
		}
		return r
	}
	b, err := json.Marshal(map[string]any{
		"id":                    v.id,
		"team_id":               TeamID,
		"type":                  v.typ,
		"title":                 raw(v.title),
		"submit":                raw(v.submit),
		"close":                 raw(v.close),
		"blocks":                blocks,
		"private_metadata":      v.privateMetadata,
		"callback_id":           v.callbackID,
		"external_id":           v.externalID,
		"state":                 map[string]any{"values": values},
		"hash":                  v.hash,
		"clear_on_close":        v.clearOnClose,
		"notify_on_close":       v.notifyOnClose,
		"submit_disabled":       v.submitDisabled,
		"root_view_id":          v.root,
		"previous_view_id":      previous,
		"app_id":                AppID,
		"app_installed_team_id": TeamID,
		"bot_id":                BotID,
	})
	if err != nil {
		// Everything in it was validated or built by the fake.
		return json.RawMessage(`{}`)
	}
	return b
}

// exportLocked is the View a test sees.
func (s *Server) exportLocked(v *viewRec) View {
	state, _ := json.Marshal(v.state)
	if v.state == nil {
		state = []byte(`{}`)
	}
	blocks := make([]json.RawMessage, len(v.blocks))
	for i, b := range v.blocks {
		blocks[i] = slices.Clone(b)
	}
	return View{
		ID: v.id, Type: v.typ, Hash: v.hash, CallbackID: v.callbackID, PrivateMetadata: v.privateMetadata,
		ExternalID: v.externalID, UserID: v.user,
		Title: textOf(v.title), Submit: textOf(v.submit), Close: textOf(v.close),
		Blocks: blocks, Text: viewText(v.blocks, s.userNamesLocked()), State: state,
		RootViewID: v.root, PreviousViewID: v.previous, Closed: v.closed, Updated: v.updated, Via: v.via,
	}
}

func textOf(raw json.RawMessage) string {
	var t textObject
	if raw == nil || json.Unmarshal(raw, &t) != nil || t.Text == nil {
		return ""
	}
	return *t.Text
}

func (s *Server) userNamesLocked() map[string]string {
	names := map[string]string{}
	for id, u := range s.users {
		if u.Name != "" {
			names[id] = u.Name
		}
	}
	return names
}

// viewText renders the text a user reads in blocks, one line per text
// object, in block order.
func viewText(blocks []json.RawMessage, names map[string]string) string {
	var lines []string
	for _, raw := range blocks {
		b, isObj := decodeObject(raw)
		if isObj {
			collectText(b, names, &lines)
		}
	}
	return strings.Join(lines, "\n")
}

// textKeys are the keys under which blocks and elements hold what is shown,
// in the order Slack shows them.
var textKeys = []string{"text", "label", "fields", "elements", "element", "accessory", "hint", "title", "description"}

func collectText(v any, names map[string]string, lines *[]string) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			collectText(e, names, lines)
		}
	case map[string]any:
		typ, _ := x["type"].(string)
		text, isStr := x["text"].(string)
		switch typ {
		case "plain_text":
			if isStr && text != "" {
				*lines = append(*lines, text)
			}
			return
		case "mrkdwn":
			if isStr && text != "" {
				*lines = append(*lines, Readable(text, names))
			}
			return
		case "rich_text_section", "rich_text_preformatted", "rich_text_quote":
			if line := richTextLine(x, names); line != "" {
				*lines = append(*lines, line)
			}
			return
		}
		for _, k := range textKeys {
			if sub, has := x[k]; has {
				collectText(sub, names, lines)
			}
		}
	}
}

// richTextLine renders one rich text section: its elements run together.
func richTextLine(sec map[string]any, names map[string]string) string {
	var sb strings.Builder
	els, _ := sec["elements"].([]any)
	for _, e := range els {
		el, isObj := e.(map[string]any)
		if !isObj {
			continue
		}
		switch el["type"] {
		case "text":
			t, _ := el["text"].(string)
			sb.WriteString(t)
		case "link":
			t, _ := el["text"].(string)
			u, _ := el["url"].(string)
			sb.WriteString(firstNonEmpty(t, u))
		case "user":
			id, _ := el["user_id"].(string)
			sb.WriteString(Readable(UserMention(id), names))
		case "channel":
			id, _ := el["channel_id"].(string)
			sb.WriteString("#" + id)
		case "emoji":
			n, _ := el["name"].(string)
			sb.WriteString(Readable(":"+n+":", names))
		}
	}
	return sb.String()
}

// blocksArray is the blocks as one JSON array, for findElement.
func blocksArray(blocks []json.RawMessage) json.RawMessage {
	b, _ := json.Marshal(blocks)
	return b
}

// viewTriggerLocked checks the trigger_id of a views.open or views.push.
func (s *Server) viewTriggerLocked(p map[string]string) (*Trigger, apiResult, bool) {
	tid := p["trigger_id"]
	if tid == "" {
		return nil, invalidArgs("invalid `trigger_id`"), false
	}
	t, code := s.usableTriggerLocked(tid)
	if code != "" {
		return nil, fail(code), false
	}
	return t, apiResult{}, true
}

func (s *Server) viewsOpen(p map[string]string) apiResult {
	pv, res, valid := parseViewParam(p, viewTypeModal)
	if !valid {
		return res
	}
	t, res, valid := s.viewTriggerLocked(p)
	if !valid {
		return res
	}
	if s.externalIDTakenLocked(pv.externalID, nil) {
		return fail("duplicate_external_id")
	}
	t.UsedBy, t.UsedAt = "views.open", time.Now()
	v := s.addViewLocked(pv, t.UserID, "", "", "views.open")
	return ok(map[string]any{"view": s.viewJSONLocked(v)})
}

func (s *Server) viewsPush(p map[string]string) apiResult {
	pv, res, valid := parseViewParam(p, viewTypeModal)
	if !valid {
		return res
	}
	t, res, valid := s.viewTriggerLocked(p)
	if !valid {
		return res
	}
	// The trigger must come from an interaction in an open modal: that
	// modal's stack is the one pushed onto.
	from := s.views[t.ViewID]
	switch {
	case from != nil && from.typ == viewTypeHome:
		return invalidArgs(viewError(viewPointer+"/type", "must match the `type` of the root view whose stack we're pushing onto"))
	case from == nil || from.closed:
		return fail("not_found")
	}
	st := s.stackLocked(from.root)
	if len(st) >= maxViewStack {
		return fail("push_limit_reached")
	}
	if s.externalIDTakenLocked(pv.externalID, nil) {
		return fail("duplicate_external_id")
	}
	t.UsedBy, t.UsedAt = "views.push", time.Now()
	v := s.addViewLocked(pv, from.user, from.root, st[len(st)-1].id, "views.push")
	return ok(map[string]any{"view": s.viewJSONLocked(v)})
}

func (s *Server) viewsUpdate(p map[string]string) apiResult {
	id, ext := p["view_id"], p["external_id"]
	if id == "" && ext == "" {
		return invalidArgs("either `view_id` or `external_id` is required")
	}
	var v *viewRec
	if id != "" {
		v = s.views[id]
	} else {
		for _, o := range s.viewOrder {
			if o.externalID == ext && !o.closed {
				v = o
			}
		}
	}
	if v == nil || v.closed {
		return fail("not_found")
	}
	pv, res, valid := parseViewParam(p, v.typ)
	if !valid {
		return res
	}
	if h := p["hash"]; h != "" && h != v.hash {
		return fail("hash_conflict")
	}
	if s.externalIDTakenLocked(pv.externalID, v) {
		return fail("duplicate_external_id")
	}
	s.applyLocked(v, pv)
	v.updated++
	return ok(map[string]any{"view": s.viewJSONLocked(v)})
}

func (s *Server) viewsPublish(p map[string]string) apiResult {
	user := p["user_id"]
	if user == "" {
		return invalidArgs("invalid `user_id`")
	}
	if _, known := s.users[user]; !known {
		return fail("user_not_found")
	}
	pv, res, valid := parseViewParam(p, viewTypeHome)
	if !valid {
		return res
	}
	v := s.homes[user]
	if h := p["hash"]; h != "" && (v == nil || h != v.hash) {
		return fail("hash_conflict")
	}
	if s.externalIDTakenLocked(pv.externalID, v) {
		return fail("duplicate_external_id")
	}
	if v == nil {
		v = s.addViewLocked(pv, user, "", "", "views.publish")
		s.homes[user] = v
	} else {
		s.applyLocked(v, pv)
		v.updated++
	}
	return ok(map[string]any{"view": s.viewJSONLocked(v)})
}

// HomeView returns the home tab published for userID.
func (s *Server) HomeView(userID string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.homes[userID]
	if v == nil {
		return View{}, false
	}
	return s.exportLocked(v), true
}

// Views returns the open modals, oldest first (newest last), pushed ones
// included; closed modals and home tabs are left out (see View, HomeView).
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []View
	for _, v := range s.viewOrder {
		if v.typ == viewTypeModal && !v.closed {
			out = append(out, s.exportLocked(v))
		}
	}
	return out
}

// View returns any view the fake holds, closed modals and home tabs too.
func (s *Server) View(viewID string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.views[viewID]
	if v == nil {
		return View{}, false
	}
	return s.exportLocked(v), true
}

// WaitView waits until a view (modal or home tab, open or closed, oldest
// first) satisfies pred (nil means any) and returns it as it is then.
// Views already there count.
func (s *Server) WaitView(ctx context.Context, pred func(View) bool) (View, error) {
	var found View
	err := s.wait(ctx, func() bool {
		for _, v := range s.viewOrder {
			if e := s.exportLocked(v); pred == nil || pred(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found, err
}

// ViewErrors returns the errors the modal shows, block_id → message: those
// of the last response_action "errors" ack Slack accepted, until the next
// submission or change of the view (nil when none).
func (s *Server) ViewErrors(viewID string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.views[viewID]; v != nil {
		return maps.Clone(v.errors)
	}
	return nil
}

// ViewButtons lists the labels of the buttons in a view (home tab or
// modal), in block order, as Buttons does for messages.
func (s *Server) ViewButtons(viewID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.views[viewID]
	if v == nil {
		return nil
	}
	var out []string
	_, _ = findElement(blocksArray(v.blocks), func(e element) bool {
		if e.typ == "button" {
			out = append(out, e.text)
		}
		return false
	})
	return out
}
