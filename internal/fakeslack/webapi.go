package fakeslack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds request bodies so odd input cannot exhaust memory.
const maxBody = 8 << 20

// maxResponseURLUses is how many times Slack accepts posts to one
// response_url; later posts are refused (HTTP 404, "used_url"), so a bot
// that leans on response_url for every progress line fails here as it would
// on Slack. (Slack also expires them after 30 minutes; the fake does not.)
const maxResponseURLUses = 5

// apiResult is what a handler answers: an HTTP status, an optional
// Retry-After header and a JSON body.
type apiResult struct {
	status     int
	retryAfter string
	body       map[string]any
}

func ok(fields map[string]any) apiResult {
	body := map[string]any{"ok": true}
	for k, v := range fields {
		body[k] = v
	}
	return apiResult{status: http.StatusOK, body: body}
}

func fail(code string) apiResult {
	return apiResult{status: http.StatusOK, body: map[string]any{"ok": false, "error": code}}
}

func (r apiResult) errorCode() string {
	if code, isStr := r.body["error"].(string); isStr {
		return code
	}
	return ""
}

// apiHandler serves one Web API method with s.mu held. params never
// contains the token. Methods not listed in apiHandlers answer
// unknown_method, as Slack does for a misspelt method.
type apiHandler func(s *Server, params map[string]string) apiResult

var apiHandlers = map[string]apiHandler{
	"apps.connections.open": (*Server).appsConnectionsOpen,
	"auth.test":             (*Server).authTest,
	"chat.postMessage":      (*Server).chatPostMessage,
	"chat.update":           (*Server).chatUpdate,
	"chat.postEphemeral":    (*Server).chatPostEphemeral,
	"chat.delete":           (*Server).chatDelete,
	"chat.getPermalink":     (*Server).chatGetPermalink,
	"users.info":            (*Server).usersInfo,
	"usergroups.users.list": (*Server).usergroupsUsersList,
	"conversations.open":    (*Server).conversationsOpen,
	"conversations.info":    (*Server).conversationsInfo,
	"conversations.history": (*Server).conversationsHistory,
	"conversations.replies": (*Server).conversationsReplies,

	"files.getUploadURLExternal":   (*Server).filesGetUploadURLExternal,
	"files.completeUploadExternal": (*Server).filesCompleteUploadExternal,

	"views.open":    (*Server).viewsOpen,
	"views.push":    (*Server).viewsPush,
	"views.update":  (*Server).viewsUpdate,
	"views.publish": (*Server).viewsPublish,
}

// handleAPI serves POST (or GET) /api/METHOD.
func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	params, token, perr := readParams(w, r)

	s.delay(r.Context(), method)

	s.mu.Lock()
	res := s.serveAPILocked(method, token, params, perr)
	s.recordCallLocked(Call{Method: method, Params: params, Time: start}, res)
	s.mu.Unlock()

	writeResult(w, res)
}

func (s *Server) serveAPILocked(method, token string, params map[string]string, perr error) apiResult {
	h, known := apiHandlers[method]
	if !known {
		return fail("unknown_method")
	}
	if token == "" {
		return fail("not_authed")
	}
	// App-level tokens open socket connections and nothing else; bot tokens
	// cannot open them. Checking this catches tokens wired the wrong way.
	isApp := strings.HasPrefix(token, "xapp-")
	if isApp != (method == "apps.connections.open") {
		return fail("not_allowed_token_type")
	}
	if res, injected := s.injectedLocked(method); injected {
		return res
	}
	if perr != nil {
		return fail("invalid_arguments")
	}
	return h(s, params)
}

// injectedLocked is the rate limit (429) or the error a test injected for
// method, if one is due: counted ones are used up, ratio ones draw their
// pseudo-random number.
func (s *Server) injectedLocked(method string) (apiResult, bool) {
	if rl := s.rateLimits[method]; rl != nil {
		rl.n--
		if rl.n <= 0 {
			delete(s.rateLimits, method)
		}
		return rateLimited(rl.retryAfter), true
	}
	if rr := s.rateRatios[method]; rr != nil && rr.rng.Float64() < rr.ratio {
		return rateLimited(rr.retryAfter), true
	}
	if e := s.errs[method]; e != nil {
		if e.n > 0 {
			e.n--
			if e.n == 0 {
				delete(s.errs, method)
			}
		}
		return failWithScopes(method, e.code), true
	}
	return apiResult{}, false
}

// rateLimited is Slack's 429: Retry-After in whole seconds, rounded up.
func rateLimited(retryAfter time.Duration) apiResult {
	secs := int64(math.Ceil(retryAfter.Seconds()))
	return apiResult{
		status:     http.StatusTooManyRequests,
		retryAfter: strconv.FormatInt(max(secs, 0), 10),
		body:       map[string]any{"ok": false, "error": "ratelimited"},
	}
}

// failWithScopes is fail(code), plus for missing_scope the needed and
// provided fields Slack adds (slack.SlackErrorResponse.Needed/Provided):
// the token's scopes without the one the method needs.
func failWithScopes(method, code string) apiResult {
	res := fail(code)
	if code == "missing_scope" {
		granted := botScopes
		if method == "apps.connections.open" {
			granted = appScopes
		}
		needed := methodScopes[method]
		res.body["needed"] = needed
		res.body["provided"] = strings.Join(slices.DeleteFunc(slices.Clone(granted), func(sc string) bool { return sc == needed }), ",")
	}
	return res
}

// methodScopes is the scope each method needs, as named in missing_scope
// answers ("" for none).
var methodScopes = map[string]string{
	"apps.connections.open":        "connections:write",
	"chat.postMessage":             "chat:write",
	"chat.update":                  "chat:write",
	"chat.postEphemeral":           "chat:write",
	"chat.delete":                  "chat:write",
	"users.info":                   "users:read",
	"usergroups.users.list":        "usergroups:read",
	"conversations.open":           "im:write",
	"conversations.info":           "channels:read",
	"conversations.history":        "channels:history",
	"conversations.replies":        "channels:history",
	"files.getUploadURLExternal":   "files:write",
	"files.completeUploadExternal": "files:write",
	"response_url":                 "commands",
	// The views.* methods need no scope ("No scopes required" in Slack's
	// method references): any bot token may call them.
	"views.open":    "",
	"views.push":    "",
	"views.update":  "",
	"views.publish": "",
}

// botScopes and appScopes are what the fake's bot and app-level tokens
// hold, as computebot's manifest (slack/manifest.yaml) asks for them.
var (
	botScopes = []string{"commands", "chat:write", "usergroups:read", "users:read", "app_mentions:read", "im:write",
		"files:write", "channels:history", "groups:history", "im:history", "mpim:history"}
	appScopes = []string{"connections:write"}
)

// delay sleeps for the latency configured for method, or until the request
// or the server ends.
func (s *Server) delay(ctx context.Context, method string) {
	s.mu.Lock()
	d, set := s.latency[method]
	if !set {
		d = s.latency["*"]
	}
	s.mu.Unlock()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.done:
	}
}

func writeResult(w http.ResponseWriter, res apiResult) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if res.retryAfter != "" {
		w.Header().Set("Retry-After", res.retryAfter)
	}
	b, err := json.Marshal(res.body)
	if err != nil {
		// Only values the fake built itself are marshalled; this cannot
		// happen, but answer something a client can parse anyway.
		b = []byte(`{"ok":false,"error":"internal_error"}`)
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(b)
}

// readParams flattens the request's parameters (query, form, multipart form
// or top-level JSON object keys) into strings and takes out the token, from
// the Authorization header or the token field. perr is set when the body
// could not be parsed; the token may still have been found in the header.
func readParams(w http.ResponseWriter, r *http.Request) (params map[string]string, token string, perr error) {
	params = map[string]string{}
	if auth := r.Header.Get("Authorization"); auth != "" {
		if t, found := strings.CutPrefix(auth, "Bearer "); found {
			token = strings.TrimSpace(t)
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ctype {
	case "application/json":
		for k, v := range r.URL.Query() {
			params[k] = v[0]
		}
		perr = readJSONParams(r.Body, params)
	case "multipart/form-data":
		perr = r.ParseMultipartForm(maxBody)
		for k, v := range r.Form {
			if len(v) > 0 {
				params[k] = v[0]
			}
		}
	default:
		perr = r.ParseForm()
		for k, v := range r.Form {
			if len(v) > 0 {
				params[k] = v[0]
			}
		}
	}
	if t, found := params["token"]; found {
		if token == "" {
			token = t
		}
		delete(params, "token")
	}
	return params, token, perr
}

// readJSONParams decodes a JSON object body into params: strings unquoted,
// null left out, every other value kept as its JSON text. An empty body is
// no parameters.
func readJSONParams(body io.Reader, params map[string]string) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	for k, raw := range obj {
		if string(raw) == "null" {
			continue // slack-go sends "blocks":null for "no blocks"
		}
		var str string
		if json.Unmarshal(raw, &str) == nil {
			params[k] = str
			continue
		}
		params[k] = string(raw)
	}
	return nil
}

func (s *Server) appsConnectionsOpen(map[string]string) apiResult {
	ticket := randomHex(16)
	s.tickets[ticket] = true
	wsURL := "ws" + strings.TrimPrefix(s.ts.URL, "http") + "/ws?ticket=" + ticket + "&app_id=" + AppID
	return ok(map[string]any{"url": wsURL})
}

func (s *Server) authTest(map[string]string) apiResult {
	return ok(map[string]any{
		"url":                   "https://" + TeamDomain + ".slack.com/",
		"team":                  "Fake Team",
		"user":                  BotName,
		"team_id":               TeamID,
		"user_id":               BotUserID,
		"bot_id":                BotID,
		"is_enterprise_install": false,
	})
}

// content holds a message's text, blocks and attachments as posted.
type content struct {
	text        string
	blocks      json.RawMessage
	attachments json.RawMessage
	hasText     bool
	hasBlocks   bool
	hasAttach   bool
}

// readContent validates the text, blocks and attachments parameters.
// blocks and attachments must be JSON arrays; "[]" means none.
func readContent(p map[string]string) (content, string) {
	var c content
	c.text, c.hasText = p["text"]
	if raw, found := p["blocks"]; found {
		arr, valid := jsonArray(raw)
		if !valid {
			return c, "invalid_blocks"
		}
		c.blocks, c.hasBlocks = arr, true
	}
	if raw, found := p["attachments"]; found {
		arr, valid := jsonArray(raw)
		if !valid {
			return c, "invalid_attachments"
		}
		c.attachments, c.hasAttach = arr, true
	}
	return c, ""
}

// empty reports whether the content would show nothing, which Slack refuses
// with no_text.
func (c content) empty() bool {
	return c.text == "" && c.blocks == nil && c.attachments == nil
}

// jsonArray checks that raw is a JSON array and returns it compacted, or nil
// for an empty array.
func jsonArray(raw string) (json.RawMessage, bool) {
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &arr); err != nil {
		return nil, false
	}
	if len(arr) == 0 {
		return nil, true
	}
	b, err := json.Marshal(arr)
	if err != nil {
		return nil, false
	}
	return b, true
}

// messageJSON renders a stored message as Slack does in API answers and
// payloads. s.mu must be held (file names are looked up).
func (s *Server) messageJSON(m *Message) map[string]any {
	out := map[string]any{
		"type": "message",
		"user": m.User,
		"team": TeamID,
		"text": m.Text,
		"ts":   m.TS,
	}
	if m.User == BotUserID {
		out["bot_id"], out["app_id"] = BotID, AppID
	}
	if len(m.Files) > 0 {
		files := make([]any, 0, len(m.Files))
		for _, id := range m.Files {
			f := map[string]any{"id": id}
			if r := s.files[id]; r != nil {
				f["name"], f["title"] = r.f.Name, r.f.Title
			}
			files = append(files, f)
		}
		out["files"] = files
		out["upload"] = true
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	// Cloned so that the map can be marshalled after s.mu is released.
	if m.Blocks != nil {
		out["blocks"] = slices.Clone(m.Blocks)
	}
	if m.Attachments != nil {
		out["attachments"] = slices.Clone(m.Attachments)
	}
	return out
}

// resolveChannel maps a user ID to its DM channel, as chat.postMessage does
// for bot tokens.
func resolveChannel(ch string) string {
	if strings.HasPrefix(ch, "U") || strings.HasPrefix(ch, "W") {
		return dmChannel(ch)
	}
	return ch
}

// recordCallLocked logs a Web API call with its result and wakes waiters.
func (s *Server) recordCallLocked(c Call, res apiResult) {
	c.Status, c.Error = res.status, res.errorCode()
	s.calls = append(s.calls, c)
	s.notifyLocked()
}

// postedMessage reads a message the bot posts (its channel, thread and
// content), or the error Slack would answer with.
func postedMessage(p map[string]string) (Message, string) {
	ch := resolveChannel(p["channel"])
	if ch == "" {
		return Message{}, "channel_not_found"
	}
	c, code := readContent(p)
	if code == "" && c.empty() {
		code = "no_text"
	}
	return Message{Channel: ch, ThreadTS: p["thread_ts"], User: BotUserID, Text: c.text, Blocks: c.blocks, Attachments: c.attachments}, code
}

func (s *Server) chatPostMessage(p map[string]string) apiResult {
	msg, code := postedMessage(p)
	if code != "" {
		return fail(code)
	}
	if msg.Metadata, _, code = readMetadata(p); code != "" {
		return fail(code)
	}
	msg.Via = "chat.postMessage"
	m := s.addMessageLocked(msg)
	return ok(map[string]any{"channel": m.Channel, "ts": m.TS, "message": withMetadata(s.messageJSON(m), m)})
}

func (s *Server) chatUpdate(p map[string]string) apiResult {
	ch := resolveChannel(p["channel"])
	if ch == "" {
		return fail("channel_not_found")
	}
	ts := p["ts"]
	m := s.findMessage(ch, ts)
	if ts == "" || m == nil || m.Ephemeral {
		return fail("message_not_found")
	}
	if m.User != BotUserID {
		return fail("cant_update_message")
	}
	c, code := readContent(p)
	if code != "" {
		return fail(code)
	}
	md, hasMetadata, code := readMetadata(p)
	if code != "" {
		return fail(code)
	}
	if !c.hasText && !c.hasBlocks && !c.hasAttach && !hasMetadata {
		return fail("no_text")
	}
	// Fields left out keep their previous value, as on Slack; "[]" clears.
	if c.hasText {
		m.Text = c.text
	}
	if c.hasBlocks {
		m.Blocks = c.blocks
	}
	if c.hasAttach {
		m.Attachments = c.attachments
	}
	if hasMetadata {
		m.Metadata = md
	}
	m.Updated++
	s.notifyLocked()
	return ok(map[string]any{"channel": ch, "ts": m.TS, "text": m.Text, "message": withMetadata(s.messageJSON(m), m)})
}

func (s *Server) chatPostEphemeral(p map[string]string) apiResult {
	user := p["user"]
	if resolveChannel(p["channel"]) != "" && user == "" {
		return fail("user_not_in_channel")
	}
	msg, code := postedMessage(p)
	if code != "" {
		return fail(code)
	}
	msg.Ephemeral, msg.EphemeralUser = true, user
	msg.Via = "chat.postEphemeral"
	m := s.addMessageLocked(msg)
	return ok(map[string]any{"message_ts": m.TS})
}

func (s *Server) chatDelete(p map[string]string) apiResult {
	ch := resolveChannel(p["channel"])
	ts := p["ts"]
	m := s.findMessage(ch, ts)
	if m == nil || m.Ephemeral {
		return fail("message_not_found")
	}
	if m.User != BotUserID {
		return fail("cant_delete_message")
	}
	s.deleteMessageLocked(ch, ts)
	return ok(map[string]any{"channel": ch, "ts": ts})
}

func (s *Server) chatGetPermalink(p map[string]string) apiResult {
	ch := p["channel"]
	ts := p["message_ts"]
	if ch == "" {
		return fail("channel_not_found")
	}
	if s.findMessage(ch, ts) == nil {
		return fail("message_not_found")
	}
	link := "https://" + TeamDomain + ".slack.com/archives/" + ch + "/p" + strings.ReplaceAll(ts, ".", "")
	return ok(map[string]any{"channel": ch, "permalink": link})
}

func userJSON(u User) map[string]any {
	tz := u.TZ
	if tz == "" {
		tz = "UTC"
	}
	return map[string]any{
		"id":        u.ID,
		"team_id":   TeamID,
		"name":      u.Name,
		"real_name": u.RealName,
		"deleted":   u.Deleted,
		"is_bot":    u.IsBot,
		"tz":        tz,
		"profile": map[string]any{
			"real_name":    u.RealName,
			"display_name": u.DisplayName,
			"team":         TeamID,
		},
	}
}

func (s *Server) usersInfo(p map[string]string) apiResult {
	// slack-go's GetUsersInfo sends a comma-separated "users" list.
	if list, found := p["users"]; found && p["user"] == "" {
		var users []map[string]any
		for id := range strings.SplitSeq(list, ",") {
			u, known := s.users[strings.TrimSpace(id)]
			if !known {
				return fail("user_not_found")
			}
			users = append(users, userJSON(u))
		}
		return ok(map[string]any{"users": users})
	}
	u, known := s.users[p["user"]]
	if !known {
		return fail("user_not_found")
	}
	return ok(map[string]any{"user": userJSON(u)})
}

func (s *Server) usergroupsUsersList(p map[string]string) apiResult {
	members, known := s.groups[p["usergroup"]]
	if !known {
		return fail("no_such_subteam")
	}
	users := slices.Clone(members)
	if users == nil {
		users = []string{}
	}
	return ok(map[string]any{"users": users})
}

func (s *Server) conversationsOpen(p map[string]string) apiResult {
	if ch := p["channel"]; ch != "" {
		return ok(map[string]any{"no_op": true, "already_open": true, "channel": map[string]any{"id": ch}})
	}
	var users []string
	for u := range strings.SplitSeq(p["users"], ",") {
		if u = strings.TrimSpace(u); u != "" {
			users = append(users, u)
		}
	}
	switch len(users) {
	case 0:
		return fail("users_list_not_supplied")
	case 1:
		id := dmChannel(users[0])
		already := s.openDMs[id]
		s.openDMs[id] = true
		return ok(map[string]any{
			"no_op":        already,
			"already_open": already,
			"channel":      map[string]any{"id": id, "is_im": true, "user": users[0]},
		})
	default:
		slices.Sort(users)
		id := "G" + strings.ToUpper(randomHexFor(strings.Join(users, ",")))
		return ok(map[string]any{"channel": map[string]any{"id": id, "is_mpim": true}})
	}
}

func (s *Server) conversationsInfo(p map[string]string) apiResult {
	ch := p["channel"]
	if ch == "" {
		return fail("channel_not_found")
	}
	return ok(map[string]any{"channel": map[string]any{
		"id":         ch,
		"name":       s.channelNameLocked(ch),
		"is_im":      strings.HasPrefix(ch, "D"),
		"is_private": strings.HasPrefix(ch, "G"),
	}})
}

// randomHexFor derives a stable short ID from key, so that opening the same
// group DM twice gives the same channel.
func randomHexFor(key string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return strconv.FormatUint(uint64(h), 16)
}

// handleResponseURL serves POST /response/<id>, the response_url of a slash
// command or interaction. Slack answers these with HTTP 200; a JSON
// {"ok":true} satisfies both slack.PostWebhook (status only) and chat
// MsgOptionResponseURL (parses ok).
func (s *Server) handleResponseURL(w http.ResponseWriter, r *http.Request) {
	const method = "response_url"
	start := time.Now()
	id := strings.TrimPrefix(r.URL.Path, "/response/")
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	params := map[string]string{}
	var perr error
	if r.Method != http.MethodPost {
		perr = errors.New("not a POST")
	} else {
		perr = readJSONParams(r.Body, params)
	}
	delete(params, "token")

	s.delay(r.Context(), method)

	s.mu.Lock()
	res := s.serveResponseURLLocked(id, params, perr)
	s.recordCallLocked(Call{Method: method, Params: params, Time: start, ResponseURL: s.ts.URL + r.URL.Path}, res)
	s.mu.Unlock()

	writeResult(w, res)
}

func (s *Server) serveResponseURLLocked(id string, p map[string]string, perr error) apiResult {
	if res, injected := s.injectedLocked("response_url"); injected {
		return res
	}
	t := s.responses[id]
	if t == nil {
		res := fail("expired_url")
		res.status = http.StatusNotFound
		return res
	}
	if perr != nil {
		res := fail("invalid_payload")
		res.status = http.StatusBadRequest
		return res
	}
	if t.uses >= maxResponseURLUses {
		res := fail("used_url")
		res.status = http.StatusNotFound
		return res
	}
	t.uses++

	if p["delete_original"] == "true" {
		if t.messageTS != "" {
			s.deleteMessageLocked(t.channel, t.messageTS)
		}
		return ok(nil)
	}
	c, code := readContent(p)
	if code != "" {
		res := fail(code)
		res.status = http.StatusBadRequest
		return res
	}
	if p["replace_original"] == "true" && t.messageTS != "" {
		if m := s.findMessage(t.channel, t.messageTS); m != nil {
			// A replacement is a whole new message body: what is not sent
			// is gone.
			m.Text, m.Blocks, m.Attachments = c.text, c.blocks, c.attachments
			m.Updated++
			s.notifyLocked()
			return ok(nil)
		}
	}
	if c.empty() {
		res := fail("no_text")
		res.status = http.StatusBadRequest
		return res
	}
	s.addReplyLocked(t.channel, t.user, firstNonEmpty(p["thread_ts"], t.threadTS), p["response_type"], c, "response_url")
	return ok(nil)
}

// addReplyLocked records a response_url or ack reply: in the channel for
// response_type "in_channel", otherwise ephemeral to user.
func (s *Server) addReplyLocked(channel, user, threadTS, responseType string, c content, via string) {
	m := Message{
		Channel:     channel,
		ThreadTS:    threadTS,
		User:        BotUserID,
		Text:        c.text,
		Blocks:      c.blocks,
		Attachments: c.attachments,
		Via:         via,
	}
	if responseType != "in_channel" {
		m.Ephemeral, m.EphemeralUser = true, user
	}
	s.addMessageLocked(m)
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
