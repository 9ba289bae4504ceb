package fakeslack

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Page sizes of the read methods, as Slack documents them.
const (
	historyLimitDefault = 100
	historyLimitMax     = 999
	repliesLimitDefault = 1000
	repliesLimitMax     = 1000
)

// readMetadata validates the metadata parameter of chat.postMessage and
// chat.update: a JSON object with a non-empty event_type string and an
// event_payload object. found is false when the parameter is absent.
func readMetadata(p map[string]string) (md Metadata, found bool, code string) {
	raw, found := p["metadata"]
	if !found {
		return Metadata{}, false, ""
	}
	var obj struct {
		EventType    json.RawMessage `json:"event_type"`
		EventPayload json.RawMessage `json:"event_payload"`
	}
	if json.Unmarshal([]byte(raw), &obj) != nil || !strings.HasPrefix(strings.TrimSpace(raw), "{") {
		return Metadata{}, true, "invalid_metadata_format"
	}
	var payload bytes.Buffer
	if json.Unmarshal(obj.EventType, &md.EventType) != nil || md.EventType == "" ||
		!bytes.HasPrefix(bytes.TrimSpace(obj.EventPayload), []byte("{")) || json.Compact(&payload, obj.EventPayload) != nil {
		return Metadata{}, true, "invalid_metadata_schema"
	}
	md.EventPayload = payload.Bytes()
	return md, true, ""
}

// json renders the metadata as Slack does in message objects.
func (md Metadata) json() map[string]any {
	return map[string]any{"event_type": md.EventType, "event_payload": json.RawMessage(bytes.Clone(md.EventPayload))}
}

// withMetadata adds m's metadata, if any, to its rendering out.
func withMetadata(out map[string]any, m *Message) map[string]any {
	if !m.Metadata.IsZero() {
		out["metadata"] = m.Metadata.json()
	}
	return out
}

// readQuery is a parsed conversations.history or conversations.replies
// request: a time window in microseconds, a page size and a position.
type readQuery struct {
	oldest, latest int64
	limit          int
	cursor         int64 // the ts the page starts at; -1 for the first page
	metadata       bool  // include_all_metadata
}

// readQueryParams parses the parameters both read methods share, or
// returns the error code Slack answers.
func readQueryParams(p map[string]string, defLimit, maxLimit int) (readQuery, string) {
	q := readQuery{oldest: math.MinInt64, latest: math.MaxInt64, limit: defLimit, cursor: -1, metadata: truthy(p["include_all_metadata"])}
	inclusive := truthy(p["inclusive"])
	if v := p["oldest"]; v != "" {
		ts, valid := parseTS(v)
		if !valid {
			return q, "invalid_ts_oldest"
		}
		q.oldest = ts + 1
		if inclusive {
			q.oldest = ts
		}
	}
	if v := p["latest"]; v != "" {
		ts, valid := parseTS(v)
		if !valid {
			return q, "invalid_ts_latest"
		}
		q.latest = ts - 1
		if inclusive {
			q.latest = ts
		}
	}
	if v := p["limit"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return q, "invalid_limit"
		}
		if n > 0 {
			q.limit = min(n, maxLimit)
		}
	}
	if v := p["cursor"]; v != "" {
		ts, valid := decodeCursor(v)
		if !valid {
			return q, "invalid_cursor"
		}
		q.cursor = ts
	}
	return q, ""
}

func (q readQuery) inWindow(ts int64) bool { return ts >= q.oldest && ts <= q.latest }

func truthy(v string) bool { return v == "1" || v == "true" }

// parseTS reads a Slack timestamp ("1712345678.000100", "1712345678" or
// "0") as microseconds.
func parseTS(v string) (int64, bool) {
	secs, frac, _ := strings.Cut(v, ".")
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || s < 0 || len(frac) > 6 || s > math.MaxInt64/1_000_000-1 {
		return 0, false
	}
	var us int64
	if frac != "" {
		us, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		if err != nil || us < 0 {
			return 0, false
		}
	}
	return s*1e6 + us, true
}

// encodeCursor and decodeCursor make Slack-shaped cursors: base64 of
// "next_ts:" and the microseconds of the first message of the next page.
func encodeCursor(ts int64) string {
	return base64.StdEncoding.EncodeToString([]byte("next_ts:" + strconv.FormatInt(ts, 10)))
}

func decodeCursor(c string) (int64, bool) {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	digits, found := strings.CutPrefix(string(b), "next_ts:")
	ts, err := strconv.ParseInt(digits, 10, 64)
	return ts, found && err == nil && ts >= 0
}

// tsMicros is a stored message's ts in microseconds (stored ones are
// always well formed).
func tsMicros(m *Message) int64 {
	ts, _ := parseTS(m.TS)
	return ts
}

// page cuts one page out of msgs, which are in the order the method answers
// in (from tells whether a message with ts is at or past the cursor in that
// order), after the head messages, and renders it.
func (s *Server) page(msgs []*Message, q readQuery, from func(ts, cursor int64) bool, head ...*Message) apiResult {
	var rest []*Message
	for _, m := range msgs {
		if ts := tsMicros(m); q.inWindow(ts) && (q.cursor < 0 || from(ts, q.cursor)) {
			rest = append(rest, m)
		}
	}
	out := make([]any, 0, q.limit)
	for _, m := range head {
		out = append(out, s.listedMessageJSON(m, q.metadata))
	}
	n := min(len(rest), max(q.limit-len(head), 0))
	for _, m := range rest[:n] {
		out = append(out, s.listedMessageJSON(m, q.metadata))
	}
	next := ""
	if n < len(rest) {
		next = encodeCursor(tsMicros(rest[n]))
	}
	return ok(map[string]any{
		"messages":          out,
		"has_more":          next != "",
		"response_metadata": map[string]any{"next_cursor": next},
	})
}

// conversationsHistory answers the channel's top-level messages (and thread
// parents), newest first, never ephemeral ones or thread replies.
// oldest/latest bound the window (exclusive unless inclusive); the page is
// the newest limit messages of it, then next_cursor goes on to older ones.
// Any channel ID is taken to exist (one the fake holds nothing for answers
// no messages).
func (s *Server) conversationsHistory(p map[string]string) apiResult {
	ch := p["channel"] // a conversation ID: unlike chat.postMessage, no user IDs
	if ch == "" {
		return fail("channel_not_found")
	}
	q, code := readQueryParams(p, historyLimitDefault, historyLimitMax)
	if code != "" {
		return fail(code)
	}
	all := s.channels[ch]
	var msgs []*Message
	for i := len(all) - 1; i >= 0; i-- {
		if m := all[i]; !m.Ephemeral && (m.ThreadTS == "" || m.ThreadTS == m.TS) {
			msgs = append(msgs, m)
		}
	}
	res := s.page(msgs, q, func(ts, cursor int64) bool { return ts <= cursor })
	res.body["pin_count"] = 0
	if v := p["latest"]; v != "" {
		res.body["latest"] = v
	}
	return res
}

// conversationsReplies answers a thread: its parent first (on the first
// page, whatever the window says, as Slack does), then the replies in the
// window, oldest first. ts may name the parent or any reply; a message
// without replies is answered alone.
func (s *Server) conversationsReplies(p map[string]string) apiResult {
	ch := p["channel"]
	if ch == "" {
		return fail("channel_not_found")
	}
	parent := s.findMessage(ch, p["ts"])
	if parent != nil && parent.ThreadTS != "" {
		parent = s.findMessage(ch, parent.ThreadTS)
	}
	if p["ts"] == "" || parent == nil || parent.Ephemeral {
		return fail("thread_not_found")
	}
	q, code := readQueryParams(p, repliesLimitDefault, repliesLimitMax)
	if code != "" {
		return fail(code)
	}
	var head []*Message
	if q.cursor < 0 {
		head = []*Message{parent}
	}
	return s.page(s.repliesLocked(parent), q, func(ts, cursor int64) bool { return ts >= cursor }, head...)
}

// repliesLocked lists the visible replies to parent, oldest first.
func (s *Server) repliesLocked(parent *Message) []*Message {
	var out []*Message
	for _, m := range s.channels[parent.Channel] {
		if m.ThreadTS == parent.TS && m.TS != parent.TS && !m.Ephemeral {
			out = append(out, m)
		}
	}
	return out
}

// listedMessageJSON renders a message as the read methods list it: with
// its metadata when asked for, a thread parent with its reply summary, a
// reply with its parent's author.
func (s *Server) listedMessageJSON(m *Message, metadata bool) map[string]any {
	out := s.messageJSON(m)
	if metadata {
		withMetadata(out, m)
	}
	if m.ThreadTS != "" && m.ThreadTS != m.TS {
		if parent := s.findMessage(m.Channel, m.ThreadTS); parent != nil {
			out["parent_user_id"] = parent.User
		}
		return out
	}
	replies := s.repliesLocked(m)
	if len(replies) == 0 {
		return out
	}
	var users []string
	seen := map[string]bool{}
	for _, r := range replies {
		if !seen[r.User] {
			seen[r.User] = true
			users = append(users, r.User)
		}
	}
	out["thread_ts"] = m.TS
	out["reply_count"] = len(replies)
	out["reply_users_count"] = len(users)
	out["reply_users"] = users
	out["latest_reply"] = replies[len(replies)-1].TS
	return out
}
