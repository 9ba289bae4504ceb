// Package fakeslack is an in-process fake of the parts of Slack that
// computebot talks to: the Web API (chat.*, users.info, usergroups.users.list,
// conversations.open, conversations.info, conversations.history,
// conversations.replies, auth.test, apps.connections.open,
// files.getUploadURLExternal, files.completeUploadExternal, views.open,
// views.push, views.update, views.publish), response_url and upload_url
// endpoints, and the Socket Mode websocket (slash commands, block actions
// on messages and in views, global shortcuts, view_submission and
// view_closed, app_mention and app_home_opened events).
//
// It exists so that end-to-end tests can drive the real slack-go socketmode
// and Web API clients over real HTTP and WebSocket connections, and assert on
// what Slack would have seen (every Web API call, every ack, the resulting
// channel state) without a workspace. It speaks the wire formats slack-go
// v0.35.0 expects; see /work/shared/protocols.md for the facts it relies on.
//
// Typical use:
//
//	s := fakeslack.New()
//	defer s.Close()
//	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken("xapp-test"))
//	client := socketmode.New(api)
//	go client.RunContext(ctx)
//	_ = s.WaitConnected(ctx)
//	id, _ := s.SendSlashCommand(fakeslack.SlashCommand{Command: "/launch", Text: "t2.micro", UserID: "U1", ChannelID: "C1"})
//	ack, _ := s.WaitAck(ctx, id)
//
// Semantics worth knowing:
//
//   - Send* methods queue and return at once. Envelopes go to the newest
//     connection that has had its hello; with none up (before the first
//     connection, or between SendDisconnect and the reconnection) they wait
//     and are written in order right after the next hello. Envelopes still
//     unwritten on a connection that dies move to the next one; one already
//     written to a dead peer is lost unless SetRedelivery is on, which
//     redelivers unacked envelopes as Slack does (retry_attempt,
//     retry_reason). Redelivery is off by default; SendEnvelope with
//     RetryAttempt > 0 redelivers by hand.
//   - Faults: SetError (n calls or Always), SetRateLimit (n calls),
//     SetRateLimitRatio (a seeded fraction of calls), SetLatency, and for
//     the socket Chaos (disconnect envelope, close frame, TCP close or
//     reset), SendDisconnect and DropConnections.
//   - Every Web API and response_url call is recorded, including refused
//     ones (Call.Status, Call.Error), before its answer is written: once a
//     client call has returned, Calls and Messages already show it.
//   - Messages holds ephemeral messages and thread replies next to channel
//     messages; filter on Message.Ephemeral and Message.ThreadTS.
//     conversations.history and conversations.replies answer what Slack
//     would (never ephemeral messages; metadata only with
//     include_all_metadata). Messages also holds the users' messages
//     SendMention records (User is not BotUserID) and file shares
//     (Message.Files; the content is in Files).
//   - Tokens: any non-empty token is accepted, but an xapp- token only for
//     apps.connections.open and a non-xapp- token for everything else
//     (not_allowed_token_type), which catches tokens wired the wrong way.
//     Token values are never stored.
//   - Every socket-mode connection is pinged right after hello and then every
//     DefaultPingInterval (see SetPingInterval).
//   - Trigger IDs: every slash command, block action, shortcut and view
//     submission carries a fresh trigger_id, recorded with its user and
//     envelope (Trigger). views.open and views.push take only a trigger the
//     fake issued (invalid_trigger_id), once (exchanged_trigger_id), within
//     DefaultTriggerTTL (3 s, SetTriggerTTL) of its envelope's first write
//     to a socket (expired_trigger_id); an envelope not written yet has not
//     started the clock. The view is validated before the trigger, so a
//     refused view does not use the trigger up. views.push needs a trigger
//     from an interaction in an open modal (not_found otherwise) and stacks
//     at most 3 views (push_limit_reached).
//   - Views: views.open/push/update take modals, views.publish home tabs
//     (user_id must be a user added with AddUser: user_not_found). Views
//     are validated as Slack does in the main points (title, submit and
//     close plain_text of at most 24 characters, submit required with input
//     blocks, at most 100 blocks, callback_id and external_id at most 255
//     characters, private_metadata at most 3000, block_ids unique, input
//     blocks with label and element, view_too_large over 250 KB), answering
//     invalid_arguments with one "[ERROR] … [json-pointer:/view/…]" line per
//     problem in response_metadata.messages. Every change gives a new hash;
//     a stale hash answers hash_conflict. Views, View, HomeView, WaitView,
//     ViewButtons and ViewErrors show them; ClickInView, SendViewSubmission
//     and SendViewClosed act on them. A view_submission's ack payload is
//     applied as Slack does (close, clear, errors, update, push); acks Slack
//     would refuse change nothing and are listed in BadAcks.
//
// Everything is safe for concurrent use.
package fakeslack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Identities the fake answers with. Tests can compare against them, e.g. to
// recognise messages posted by the bot (User == BotUserID).
const (
	TeamID     = "T0FAKE"
	TeamDomain = "fake"
	AppID      = "A0FAKE"
	BotID      = "B0FAKE"
	BotUserID  = "U0FAKEBOT"
	BotName    = "computebot"
)

// DefaultPingInterval is how often the server sends a WebSocket PING on
// every socket-mode connection unless SetPingInterval says otherwise.
// slack-go drops a connection that has not been pinged for 30 s
// (socketmode.OptionPingInterval); pinging every second keeps tests that
// lower that option to a few seconds working too. A ping is also sent right
// after hello.
const DefaultPingInterval = time.Second

// DisconnectGrace is how long the server keeps a connection open after writing
// a disconnect frame on it, so that acks already in flight still arrive. The
// slack-go client closes the connection itself as soon as it reads the frame.
const DisconnectGrace = time.Second

// ErrClosed is returned by Send* and Wait* methods once Close was called.
var ErrClosed = errors.New("fakeslack: server closed")

// ErrNotConnected is returned by SendDisconnect when no socket-mode
// connection is up.
var ErrNotConnected = errors.New("fakeslack: no socket-mode connection")

// Call is one recorded HTTP call: a Web API method or a response_url post.
//
// Params holds the request's parameters flattened to strings: form and query
// fields by their first value; for JSON bodies each top-level key, strings
// unquoted and every other value (numbers, booleans, arrays, objects such as
// blocks and attachments) as its raw JSON text. The token is never recorded.
//
// Every call is recorded, including those answered with an error, a 429 or
// unknown_method; Status and Error tell them apart.
type Call struct {
	Method string
	Params map[string]string
	Time   time.Time // when the request arrived
	// Status is the HTTP status answered (200, or 429 when rate limited).
	Status int
	// Error is the Slack error code answered ("" when ok was true).
	Error string
	// ResponseURL is the full URL posted to, for Method "response_url" only.
	ResponseURL string
}

// OK reports whether the call was answered with ok:true.
func (c Call) OK() bool { return c.Status == http.StatusOK && c.Error == "" }

// Message is the fake's view of one message in a channel.
type Message struct {
	TS       string
	Channel  string
	ThreadTS string // "" for a top-level message
	// User is the author: BotUserID for everything posted through the API,
	// the mentioning user for a message recorded by SendMention.
	User string
	Text string
	// Blocks and Attachments are the raw JSON arrays as last set, or nil.
	Blocks      json.RawMessage
	Attachments json.RawMessage
	// Ephemeral messages are seen only by EphemeralUser.
	Ephemeral     bool
	EphemeralUser string
	// Files lists the IDs of the files shared with the message (see File).
	Files []string
	// Metadata is the message metadata set by chat.postMessage or
	// chat.update (their metadata parameter); zero when there is none.
	Metadata Metadata
	// Updated counts chat.update calls and replace_original responses applied.
	Updated int
	// Via names how the message got there: "chat.postMessage",
	// "chat.postEphemeral", "response_url", "ack" (a slash command's ack
	// payload, which Slack shows like a response_url reply),
	// "files.completeUploadExternal" (a file share; Text is the
	// initial_comment) or "app_mention" (a user's message sent with
	// SendMention).
	Via string
}

func (m *Message) clone() Message {
	c := *m
	c.Blocks = slices.Clone(m.Blocks)
	c.Attachments = slices.Clone(m.Attachments)
	c.Files = slices.Clone(m.Files)
	c.Metadata.EventPayload = slices.Clone(m.Metadata.EventPayload)
	return c
}

// Metadata is Slack message metadata, as slack.MsgOptionMetadata sends it:
// {"event_type": "…", "event_payload": {…}}.
type Metadata struct {
	EventType string // never empty on a message that has metadata
	// EventPayload is the event_payload JSON object as posted, compacted.
	// Decode it with json.Unmarshal (e.g. into a map[string]any, which is
	// what slack.SlackMetadata.EventPayload holds).
	EventPayload json.RawMessage
}

// IsZero reports whether there is no metadata.
func (md Metadata) IsZero() bool { return md.EventType == "" }

// User is a workspace member known to users.info.
type User struct {
	ID          string
	Name        string // the handle, e.g. "ana"
	RealName    string
	DisplayName string
	IsBot       bool
	Deleted     bool
	TZ          string // IANA name; "UTC" when empty
}

// Server is the fake Slack. Create it with New and stop it with Close.
type Server struct {
	ts   *httptest.Server
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup // socket goroutines and timers

	upgrader websocket.Upgrader

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change

	users    map[string]User
	groups   map[string][]string
	chanName map[string]string
	openDMs  map[string]bool

	calls      []Call
	channels   map[string][]*Message
	lastTS     int64 // microseconds of the last ts handed out
	responses  map[string]*responseTarget
	rateLimits map[string]*rateLimit
	rateRatios map[string]*rateRatio
	errs       map[string]*injectedError
	latency    map[string]time.Duration
	pingEvery  time.Duration
	files      map[string]*fileRec // by ID, from files.getUploadURLExternal on
	shared     []*fileRec          // completed uploads, in completion order

	// socket mode
	tickets    map[string]bool // apps.connections.open tickets not yet used
	conns      []*wsConn       // live connections, oldest first
	current    *wsConn         // where new envelopes go; nil queues them
	opened     int             // connections upgraded in total
	hellos     int             // hello frames written in total
	pending    []*outFrame     // envelopes waiting for a connection
	seq        uint64          // orders writes and acks
	deliveries map[string][]*delivery
	envelopes  map[string]envelopeInfo
	acks       []ackRecord
	badFrames  int
	ackTimeout time.Duration // > 0: redeliver unacked envelopes (SetRedelivery)
	maxRetries int
	spread     *mrand.Rand // non-nil: SetSpread on; draws a connection per envelope

	// views and triggers (views.go, triggers.go, viewevents.go)
	views       map[string]*viewRec // by ID: modals and home tabs
	viewOrder   []*viewRec          // in creation order
	homes       map[string]*viewRec // home tabs by user ID
	triggers    map[string]*Trigger
	triggerTTL  time.Duration
	submissions map[string]*submission // view_submission envelopes by ID
	badAcks     []BadAck
}

type responseTarget struct {
	channel   string
	user      string
	messageTS string // the message the action was on, if any
	threadTS  string
	uses      int
}

type rateLimit struct {
	n          int
	retryAfter time.Duration
}

type injectedError struct {
	n    int // calls left; < 0 for Always
	code string
}

// rateRatio answers 429 to a fraction of a method's calls, drawn from its
// own seeded generator so that a test sees the same sequence every run.
type rateRatio struct {
	ratio      float64
	retryAfter time.Duration
	rng        *mrand.Rand
}

// New starts a fake Slack on a random 127.0.0.1 port.
func New() *Server {
	s := &Server{
		done:       make(chan struct{}),
		changed:    make(chan struct{}),
		users:      map[string]User{},
		groups:     map[string][]string{},
		chanName:   map[string]string{},
		openDMs:    map[string]bool{},
		channels:   map[string][]*Message{},
		responses:  map[string]*responseTarget{},
		rateLimits: map[string]*rateLimit{},
		rateRatios: map[string]*rateRatio{},
		errs:       map[string]*injectedError{},
		latency:    map[string]time.Duration{},
		tickets:    map[string]bool{},
		deliveries: map[string][]*delivery{},
		envelopes:  map[string]envelopeInfo{},
		pingEvery:  DefaultPingInterval,
		files:      map[string]*fileRec{},

		views:       map[string]*viewRec{},
		homes:       map[string]*viewRec{},
		triggers:    map[string]*Trigger{},
		triggerTTL:  DefaultTriggerTTL,
		submissions: map[string]*submission{},
	}
	s.upgrader = websocket.Upgrader{
		// slack-go always sends Origin: https://api.slack.com.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.handleAPI)
	mux.HandleFunc("/response/", s.handleResponseURL)
	mux.HandleFunc("/upload/", s.handleUpload)
	mux.HandleFunc("/ws", s.handleWS)
	s.ts = httptest.NewServer(mux)
	return s
}

// Close stops the server: open websockets are closed, pending waits return
// ErrClosed, and all goroutines the server started have ended when it returns.
// It is safe to call more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		conns := slices.Clone(s.conns)
		s.mu.Unlock()
		for _, c := range conns {
			c.shutdown(true)
		}
		s.ts.Close()
		s.wg.Wait()
		s.mu.Lock()
		s.stopTimersLocked()
		s.mu.Unlock()
	})
}

// URL is the server's base URL, e.g. "http://127.0.0.1:PORT".
func (s *Server) URL() string { return s.ts.URL }

// APIURL is the Web API base URL with its trailing slash, for
// slack.OptionAPIURL or SLACK_API_URL.
func (s *Server) APIURL() string { return s.ts.URL + "/api/" }

// AddUser registers (or replaces) a user for users.info and for the
// user_name fields of the payloads the server builds.
func (s *Server) AddUser(id, name string) {
	s.PutUser(User{ID: id, Name: name, RealName: name, DisplayName: name})
}

// PutUser registers (or replaces) a user with all its fields.
func (s *Server) PutUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
}

// AddUserGroup registers (or replaces) a user group (an "S…" ID) and its
// members for usergroups.users.list.
func (s *Server) AddUserGroup(id string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = slices.Clone(members)
}

// AddChannel names a channel; the name is used for channel_name in slash
// command payloads and channel.name in interactive ones.
func (s *Server) AddChannel(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chanName[id] = name
}

// SetPingInterval changes how often connections opened from now on are
// pinged (d <= 0 restores DefaultPingInterval). Tests that shorten the
// client's socketmode.OptionPingInterval to detect dead connections quickly
// need pings at least that often.
func (s *Server) SetPingInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		d = DefaultPingInterval
	}
	s.pingEvery = d
}

// SetRateLimit makes the next n calls to method (a Web API method name, or
// "response_url") answer HTTP 429 with a Retry-After header, which slack-go
// turns into *slack.RateLimitedError. Retry-After is in whole seconds as on
// the wire, so retryAfter is rounded up; 0 sends "Retry-After: 0".
// n <= 0 clears the limit.
func (s *Server) SetRateLimit(method string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.rateLimits, method)
		return
	}
	s.rateLimits[method] = &rateLimit{n: n, retryAfter: retryAfter}
}

// SetRateLimitRatio answers HTTP 429 with Retry-After (as SetRateLimit
// does) to a fraction ratio of the calls to method (a Web API method name,
// chat.update included, or "response_url"), from now on. Which calls are
// limited is pseudo-random but fixed by seed: the same seed limits the same
// calls of the same sequence, run after run. ratio <= 0 turns it off; ratio
// >= 1 limits every call. A pending SetRateLimit count is used up first.
func (s *Server) SetRateLimitRatio(method string, ratio float64, retryAfter time.Duration, seed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ratio <= 0 {
		delete(s.rateRatios, method)
		return
	}
	s.rateRatios[method] = &rateRatio{ratio: ratio, retryAfter: retryAfter, rng: mrand.New(mrand.NewPCG(uint64(seed), 0x5eed))}
}

// Always, as SetError's n, injects the error into every call until it is
// cleared with SetError(method, 0, "").
const Always = -1

// SetError makes the next n calls to method answer {"ok":false,"error":code}
// with HTTP 200, e.g. SetError("chat.update", 1, "message_not_found"), or
// every call when n is Always (any n < 0): e.g. SetError("auth.test",
// Always, "token_revoked") for a token that stays revoked. n == 0 clears
// it. For missing_scope the answer also names the needed and provided
// scopes, as Slack's does. The error takes effect after the token checks
// (not_authed, not_allowed_token_type) and before the method's own.
func (s *Server) SetError(method string, n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == 0 {
		delete(s.errs, method)
		return
	}
	s.errs[method] = &injectedError{n: n, code: code}
}

// SetLatency delays every answer to method (or to every method without its
// own setting, when method is "*") by d. d <= 0 removes the delay.
func (s *Server) SetLatency(method string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.latency, method)
		return
	}
	s.latency[method] = d
}

// Calls returns the recorded calls to method, oldest first.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if c.Method == method {
			out = append(out, cloneCall(c))
		}
	}
	return out
}

// AllCalls returns every recorded call, oldest first.
func (s *Server) AllCalls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = cloneCall(c)
	}
	return out
}

// WaitCall returns the first recorded call to method for which pred (nil
// means any) is true, waiting until one arrives or ctx ends. Calls recorded
// before WaitCall was called count too. A call is recorded before its answer
// is written, so once a client call returned, WaitCall finds it at once.
func (s *Server) WaitCall(ctx context.Context, method string, pred func(Call) bool) (Call, error) {
	var found Call
	err := s.wait(ctx, func() bool {
		for _, c := range s.calls {
			if c.Method == method {
				cc := cloneCall(c)
				if pred == nil || pred(cc) {
					found = cc
					return true
				}
			}
		}
		return false
	})
	return found, err
}

// Messages returns the channel's messages as they are now, in the order they
// were posted: top-level messages, thread replies and ephemeral messages
// alike (see Message.ThreadTS and Message.Ephemeral). Deleted messages are
// gone; updated ones show their latest content.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.channels[channel] {
		out = append(out, m.clone())
	}
	return out
}

// Thread returns the replies in the thread whose parent has ts threadTS,
// oldest first, without the parent itself (use Message for that).
func (s *Server) Thread(channel, threadTS string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.channels[channel] {
		if m.ThreadTS == threadTS && m.TS != threadTS {
			out = append(out, m.clone())
		}
	}
	return out
}

// Message returns the message with the given ts in channel.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMessage(channel, ts)
	if m == nil {
		return Message{}, false
	}
	return m.clone(), true
}

// WaitMessage waits until channel holds a message for which pred is true
// (checking the current state first) and returns it.
func (s *Server) WaitMessage(ctx context.Context, channel string, pred func(Message) bool) (Message, error) {
	var found Message
	err := s.wait(ctx, func() bool {
		for _, m := range s.channels[channel] {
			mc := m.clone()
			if pred == nil || pred(mc) {
				found = mc
				return true
			}
		}
		return false
	})
	return found, err
}

// wait calls cond with s.mu held until it returns true, ctx ends or the
// server closes. cond must not block.
func (s *Server) wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		}
	}
}

// notifyLocked wakes every waiter. s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func cloneCall(c Call) Call {
	c.Params = maps.Clone(c.Params)
	return c
}

// findMessage returns the stored message or nil. s.mu must be held.
func (s *Server) findMessage(channel, ts string) *Message {
	for _, m := range s.channels[channel] {
		if m.TS == ts {
			return m
		}
	}
	return nil
}

// nextTSLocked hands out a message timestamp: the wall clock in
// microseconds, bumped when needed so that every ts is unique and greater
// than the previous one. s.mu must be held.
func (s *Server) nextTSLocked() string {
	now := time.Now().UnixMicro()
	if now <= s.lastTS {
		now = s.lastTS + 1
	}
	s.lastTS = now
	return fmt.Sprintf("%d.%06d", now/1e6, now%1e6)
}

// addMessageLocked stores m (assigning its ts) and returns the stored copy.
func (s *Server) addMessageLocked(m Message) *Message {
	m.TS = s.nextTSLocked()
	p := &m
	s.channels[m.Channel] = append(s.channels[m.Channel], p)
	s.notifyLocked()
	return p
}

func (s *Server) deleteMessageLocked(channel, ts string) bool {
	msgs := s.channels[channel]
	for i, m := range msgs {
		if m.TS == ts {
			s.channels[channel] = slices.Delete(msgs, i, i+1)
			s.notifyLocked()
			return true
		}
	}
	return false
}

func (s *Server) userNameLocked(id string) string {
	if u, ok := s.users[id]; ok && u.Name != "" {
		return u.Name
	}
	return strings.ToLower(id)
}

func (s *Server) channelNameLocked(id string) string {
	if n, ok := s.chanName[id]; ok {
		return n
	}
	if strings.HasPrefix(id, "D") {
		return "directmessage"
	}
	return strings.ToLower(id)
}

// dmChannel is the DM channel ID the fake uses for a user: stable, so that
// conversations.open and chat.postMessage to a user ID agree.
func dmChannel(user string) string {
	if len(user) > 1 && (user[0] == 'U' || user[0] == 'W') {
		return "D" + user[1:]
	}
	return "D" + user
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// newEnvelopeID returns a UUID-shaped ID, like Slack's envelope IDs.
func newEnvelopeID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newTriggerID returns a random ID shaped like Slack's trigger IDs.
func newTriggerID() string {
	b := randomHex(8)
	return fmt.Sprintf("%d.%d.%s", time.Now().UnixNano()%1e11, time.Now().UnixMicro()%1e9, b)
}
