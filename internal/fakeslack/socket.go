package fakeslack

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Envelope is a Socket Mode envelope exactly as Slack writes it on the
// websocket. SendEnvelope writes it as is, so redelivery tests can reuse an
// EnvelopeID with RetryAttempt > 0.
type Envelope struct {
	EnvelopeID             string          `json:"envelope_id"`
	Type                   string          `json:"type"`
	Payload                json.RawMessage `json:"payload,omitempty"`
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           int             `json:"retry_attempt"`
	RetryReason            string          `json:"retry_reason"`
}

// Ack is one acknowledgement frame received from a client.
type Ack struct {
	EnvelopeID string
	// Payload is the ack's payload bytes exactly as received, or nil when
	// the ack had none.
	Payload json.RawMessage
	// ReceivedAt is when the server read the ack frame.
	ReceivedAt time.Time
	// SentAt is when the server handed the latest delivery of this envelope
	// to the socket, as of ReceivedAt (zero for an unknown envelope ID).
	// ReceivedAt-SentAt is the round trip a client's ack latency adds to.
	SentAt time.Time
	// RetryAttempt is the retry_attempt of that delivery: 0 for an ack of
	// the first delivery, 1 or more for an ack of a redelivery. The wire
	// does not say which delivery an ack answers; like Slack, the server
	// takes it for the latest one written before the ack was read.
	RetryAttempt int
	// Conn is the connection the ack was read on (1 for the first opened;
	// see Delivery.Conn). slack-go writes an ack on the connection that is
	// up when it sends it, which after a reconnection is not the one that
	// carried the envelope.
	Conn int
}

type ackRecord struct {
	Ack
	seq uint64
}

// delivery is one delivery of an envelope ID: a SendEnvelope or an
// automatic redelivery. seq, sentAt and conn are set when the frame is
// taken for writing, before the write, so an ack can never be ordered
// before the delivery it answers (and reset if the write fails).
type delivery struct {
	id      string
	attempt int    // retry_attempt
	reason  string // retry_reason
	seq     uint64 // 0 until taken for writing
	sentAt  time.Time
	conn    int         // the connection it is written on; 0 until taken
	acked   bool        // an ack was read while this was the latest delivery written
	timer   *time.Timer // the ack timeout, with redelivery on
	// from is the connection of the delivery this one replaces (0 for a
	// SendEnvelope): with SetSpread on, a redelivery goes elsewhere.
	from int
}

// envelopeInfo is what the server remembers of an envelope to interpret its
// ack (a slash command's ack payload is shown to the user like a
// response_url reply) and to redeliver it.
type envelopeInfo struct {
	env     Envelope // as last sent
	channel string
	user    string
}

type outFrame struct {
	data []byte
	d    *delivery // nil for frames that are not envelopes
	// last marks a disconnect or close frame: the connection takes nothing
	// after it and closes DisconnectGrace after writing it (at once when
	// the client answers a close frame); it is never moved to another
	// connection.
	last       bool
	closeFrame bool // written as a websocket close control frame
}

// wsConn is one socket-mode connection. Only its writeLoop writes data
// frames, which serialises writes as gorilla/websocket requires; Close and
// WriteControl may be called from anywhere.
type wsConn struct {
	s    *Server
	ws   *websocket.Conn
	id   int
	wake chan struct{} // capacity 1: "the queue may have grown"
	dead chan struct{}
	once sync.Once

	// guarded by s.mu
	queue    []*outFrame
	ready    bool // hello written
	draining bool // disconnect frame queued: takes no new envelopes
	dropped  bool // removed from the server; queue moved to s.pending
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	valid := s.tickets[ticket]
	delete(s.tickets, ticket)
	s.mu.Unlock()
	if !valid {
		// Tickets from apps.connections.open are single-use, as on Slack:
		// a client must call it again for every (re)connection.
		http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered the client
	}
	ws.SetReadLimit(1 << 20)
	c := &wsConn{s: s, ws: ws, wake: make(chan struct{}, 1), dead: make(chan struct{})}

	s.mu.Lock()
	if s.closed() {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.opened++
	c.id = s.opened
	s.conns = append(s.conns, c)
	s.wg.Add(2)
	s.notifyLocked()
	s.mu.Unlock()

	go c.writeLoop()
	go c.readLoop()
}

func (c *wsConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// shutdown closes the connection once and hands its unwritten envelopes
// back to the server. graceful sends a close frame first.
func (c *wsConn) shutdown(graceful bool) {
	c.once.Do(func() {
		close(c.dead)
		if graceful {
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(100*time.Millisecond))
		}
		_ = c.ws.Close()
		c.s.mu.Lock()
		c.s.dropLocked(c)
		c.s.mu.Unlock()
	})
}

// dropLocked forgets c and requeues its unwritten envelopes ahead of those
// still pending, so nothing sent to a dying connection is lost.
func (s *Server) dropLocked(c *wsConn) {
	if c.dropped {
		return
	}
	c.dropped = true
	s.conns = slices.DeleteFunc(s.conns, func(o *wsConn) bool { return o == c })
	// Redeliveries of what c carried but nobody acked go first: they were
	// sent before anything still queued.
	requeue := s.lostOnLocked(c)
	for _, f := range c.queue {
		if !f.last {
			requeue = append(requeue, f)
		}
	}
	c.queue = nil
	if s.current == c {
		s.current = nil
		s.pickCurrentLocked()
	}
	s.requeueLocked(requeue...)
	s.notifyLocked()
}

// pickCurrentLocked makes the newest usable connection current, if any.
func (s *Server) pickCurrentLocked() {
	for i := len(s.conns) - 1; i >= 0; i-- {
		o := s.conns[i]
		if o.ready && !o.draining && !o.dropped {
			s.current = o
			return
		}
	}
}

func (c *wsConn) writeLoop() {
	s := c.s
	defer s.wg.Done()
	graceful := true
	defer func() { c.shutdown(graceful) }()

	s.mu.Lock()
	live := 0
	for _, o := range s.conns {
		if !o.dropped {
			live++
		}
	}
	s.mu.Unlock()
	hello, _ := json.Marshal(map[string]any{
		"type":            "hello",
		"num_connections": live,
		"debug_info": map[string]any{
			"host":                        "fakeslack",
			"build_number":                1,
			"approximate_connection_time": 18060,
		},
		"connection_info": map[string]any{"app_id": AppID},
	})
	if err := c.write(hello); err != nil {
		graceful = false
		return
	}
	s.mu.Lock()
	pingEvery := s.pingEvery
	if !c.dropped {
		c.ready = true
		s.hellos++
		// The newest connection takes new envelopes, and whatever waited
		// for a connection, in order (with SetSpread on, c is one more
		// to draw from).
		s.current = c
		s.handOutLocked()
		s.notifyLocked()
	}
	s.mu.Unlock()

	if err := c.ping(); err != nil {
		graceful = false
		return
	}
	ticker := time.NewTicker(pingEvery)
	defer ticker.Stop()
	var closeAfter <-chan time.Time
	for {
		if !c.flush(&closeAfter) {
			graceful = false
			return
		}
		select {
		case <-c.wake:
		case <-ticker.C:
			if err := c.ping(); err != nil {
				graceful = false
				return
			}
		case <-closeAfter:
			return
		case <-c.dead:
			return
		case <-s.done:
			return
		}
	}
}

func (c *wsConn) write(data []byte) error {
	if err := c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

func (c *wsConn) ping() error {
	return c.ws.WriteControl(websocket.PingMessage, []byte("fakeslack"), time.Now().Add(5*time.Second))
}

// flush writes queued frames until the queue is empty. It reports false
// when a write failed; the frame is then requeued for the next connection.
func (c *wsConn) flush(closeAfter *<-chan time.Time) bool {
	s := c.s
	for {
		s.mu.Lock()
		if len(c.queue) == 0 || c.dropped {
			s.mu.Unlock()
			return true
		}
		f := c.queue[0]
		c.queue = c.queue[1:]
		if f.d != nil {
			s.seq++
			f.d.seq, f.d.sentAt, f.d.conn = s.seq, time.Now(), c.id
		}
		s.mu.Unlock()

		if err := c.writeFrame(f); err != nil {
			s.mu.Lock()
			s.unwrittenLocked(c, f)
			s.mu.Unlock()
			return false
		}
		s.mu.Lock()
		if f.d != nil {
			s.writtenLocked(f.d)
		}
		s.notifyLocked()
		s.mu.Unlock()
		if f.last && *closeAfter == nil {
			*closeAfter = time.After(DisconnectGrace)
		}
	}
}

// unwrittenLocked takes back f, whose write on c failed: it goes first in
// line again, on c while c lives, else on the next connection; unless it is
// a last frame, or a delivery that lostOnLocked already redelivered (it
// stays recorded as written, so that WaitAck on it takes the redelivery's
// ack).
func (s *Server) unwrittenLocked(c *wsConn, f *outFrame) {
	if f.last || (f.d != nil && !s.latestLocked(f.d)) {
		return
	}
	if f.d != nil {
		f.d.seq, f.d.sentAt, f.d.conn = 0, time.Time{}, 0
	}
	if c.dropped {
		s.requeueLocked(f)
		return
	}
	c.queue = append([]*outFrame{f}, c.queue...)
}

// requeueLocked puts frames ahead of those waiting for a connection and
// hands them all out, if a connection is up.
func (s *Server) requeueLocked(frames ...*outFrame) {
	s.pending = append(frames, s.pending...)
	s.handOutLocked()
}

// handOutLocked moves the frames waiting for a connection, in order, to the
// current connection, or with SetSpread on each to its own draw. They keep
// waiting while no connection is up.
func (s *Server) handOutLocked() {
	for len(s.pending) > 0 {
		c := s.targetLocked(s.pending[0])
		if c == nil {
			return // then none is up for the others either
		}
		c.queue = append(c.queue, s.pending[0])
		s.pending = s.pending[1:]
		c.signal()
	}
	s.pending = nil
}

// writeFrame writes a queued frame: a close frame as a control frame, the
// rest as text.
func (c *wsConn) writeFrame(f *outFrame) error {
	if f.closeFrame {
		return c.ws.WriteControl(websocket.CloseMessage, f.data, time.Now().Add(5*time.Second))
	}
	return c.write(f.data)
}

func (c *wsConn) readLoop() {
	s := c.s
	defer s.wg.Done()
	defer c.shutdown(false)
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now()
		var frame struct {
			EnvelopeID *string         `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		s.mu.Lock()
		if typ != websocket.TextMessage || json.Unmarshal(data, &frame) != nil || frame.EnvelopeID == nil {
			s.badFrames++
		} else {
			s.recordAckLocked(*frame.EnvelopeID, frame.Payload, now, c.id)
		}
		s.notifyLocked()
		s.mu.Unlock()
	}
}

func (s *Server) recordAckLocked(id string, payload json.RawMessage, now time.Time, conn int) {
	s.seq++
	a := ackRecord{Ack: Ack{EnvelopeID: id, ReceivedAt: now, Conn: conn}, seq: s.seq}
	if len(payload) > 0 {
		a.Payload = slices.Clone(payload)
	}
	ds := s.deliveries[id]
	for i := len(ds) - 1; i >= 0; i-- {
		if d := ds[i]; d.seq != 0 {
			a.SentAt, a.RetryAttempt = d.sentAt, d.attempt
			d.acked = true
			stopTimer(d)
			break
		}
	}
	s.acks = append(s.acks, a)
	// A view_submission's ack payload is Slack's response_action.
	s.viewAckLocked(id, a.Payload)

	// Slack shows a slash command's ack payload to the user, like a
	// response_url reply; record it so tests see one channel state.
	info, known := s.envelopes[id]
	if !known || info.env.Type != "slash_commands" || a.Payload == nil {
		return
	}
	p := map[string]string{}
	if readJSONParams(bytes.NewReader(a.Payload), p) != nil {
		return
	}
	c, code := readContent(p)
	if code != "" || c.empty() {
		return
	}
	s.addReplyLocked(info.channel, info.user, "", p["response_type"], c, "ack")
}

// SendEnvelope queues env for the current socket-mode connection (with
// SetSpread on, for one drawn at random). It returns once queued, not once
// written. Envelopes sent while no connection is up (none yet, or between a
// disconnect and the client's reconnection) are kept and written, in order,
// right after the hello of the next connection; so are envelopes left
// unwritten on a connection that died.
// Each call is one delivery: sending the same EnvelopeID again is a
// redelivery (see WaitAck). With SetRedelivery on, the server also
// redelivers it by itself until it is acked.
func (s *Server) SendEnvelope(env Envelope) error {
	if _, err := json.Marshal(env); err != nil {
		return err // e.g. a Payload that is not valid JSON
	}
	info := envelopeInfo{env: env}
	if env.Type == "slash_commands" {
		var p struct {
			ChannelID string `json:"channel_id"`
			UserID    string `json:"user_id"`
		}
		_ = json.Unmarshal(env.Payload, &p) // odd payloads are sent anyway
		info.channel, info.user = p.ChannelID, p.UserID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return ErrClosed
	}
	s.envelopes[env.EnvelopeID] = info
	s.enqueueLocked(s.newDeliveryLocked(env))
	s.notifyLocked()
	return nil
}

// newDeliveryLocked records a delivery of env and returns its frame, for
// the caller to queue.
func (s *Server) newDeliveryLocked(env Envelope) *outFrame {
	data, _ := json.Marshal(env) // checked by SendEnvelope
	d := &delivery{id: env.EnvelopeID, attempt: env.RetryAttempt, reason: env.RetryReason}
	s.deliveries[env.EnvelopeID] = append(s.deliveries[env.EnvelopeID], d)
	return &outFrame{data: data, d: d}
}

// SendFrame writes raw as one text frame, for tests of odd input (bad JSON,
// unknown types). It is queued like an envelope but is not tracked as a
// delivery.
func (s *Server) SendFrame(raw []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return ErrClosed
	}
	s.enqueueLocked(&outFrame{data: slices.Clone(raw)})
	return nil
}

func (s *Server) enqueueLocked(f *outFrame) {
	if c := s.targetLocked(f); c != nil {
		c.queue = append(c.queue, f)
		c.signal()
		return
	}
	s.pending = append(s.pending, f)
}

// SendDisconnect writes {"type":"disconnect","reason":reason} on the current
// connection (after what is already queued on it) and closes that connection
// DisconnectGrace later if the client has not. From the call on, new
// envelopes wait for the next connection; the slack-go client reconnects by
// itself (a new apps.connections.open, a new hello). Reasons Slack uses:
// "warning", "refresh_requested", "link_disabled". It returns
// ErrNotConnected when no connection is up.
func (s *Server) SendDisconnect(reason string) error {
	data, err := json.Marshal(map[string]any{
		"type":       "disconnect",
		"reason":     reason,
		"debug_info": map[string]any{"host": "fakeslack"},
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return ErrClosed
	}
	c := s.current
	if c == nil {
		return ErrNotConnected
	}
	s.endCurrentLocked(&outFrame{data: data, last: true})
	return nil
}

// endCurrentLocked queues f, a last frame, on the current connection,
// which from now on takes no new envelopes.
func (s *Server) endCurrentLocked(f *outFrame) {
	c := s.current
	c.draining = true
	s.current = nil
	s.pickCurrentLocked()
	c.queue = append(c.queue, f)
	c.signal()
	s.notifyLocked()
}

// DropConnections closes every socket-mode connection at once, without a
// disconnect frame, like a network failure. Unwritten envelopes wait for the
// next connection.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := slices.Clone(s.conns)
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown(false)
	}
}

// WaitConnected waits until a socket-mode connection is up and has been
// sent its hello, i.e. until envelopes would be written at once. After
// SendDisconnect it waits for the reconnection.
func (s *Server) WaitConnected(ctx context.Context) error {
	return s.wait(ctx, func() bool { return s.current != nil })
}

// WaitConnections waits until n connections in total have been sent their
// hello, e.g. n=2 for "the client reconnected once".
func (s *Server) WaitConnections(ctx context.Context, n int) error {
	return s.wait(ctx, func() bool { return s.hellos >= n })
}

// Hellos is the number of connections sent their hello so far: the count
// WaitConnections waits for.
func (s *Server) Hellos() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hellos
}

// Connections is the number of socket-mode connections opened so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

// WaitAck waits for the ack that answers the latest delivery of envelopeID
// sent before the call: an ack of that ID read after that delivery was
// written. So after a redelivery WaitAck ignores the ack of the first
// delivery. When the ID was never sent it returns the first ack with that ID.
// With SetRedelivery on, the ack found may answer a later automatic
// redelivery: Ack.RetryAttempt says which (0 for the first delivery).
func (s *Server) WaitAck(ctx context.Context, envelopeID string) (Ack, error) {
	s.mu.Lock()
	var d *delivery
	if ds := s.deliveries[envelopeID]; len(ds) > 0 {
		d = ds[len(ds)-1]
	}
	s.mu.Unlock()
	var found Ack
	err := s.wait(ctx, func() bool {
		if d != nil && d.seq == 0 {
			return false // not written yet
		}
		for _, a := range s.acks {
			if a.EnvelopeID == envelopeID && (d == nil || a.seq > d.seq) {
				found = a.Ack
				found.Payload = slices.Clone(a.Payload)
				return true
			}
		}
		return false
	})
	return found, err
}

// Acks returns every ack received, in order.
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Ack, len(s.acks))
	for i, a := range s.acks {
		out[i] = a.Ack
		out[i].Payload = slices.Clone(a.Payload)
	}
	return out
}

// BadFrames counts frames from clients that were not a JSON object with an
// envelope_id (binary frames, bad JSON, missing ID).
func (s *Server) BadFrames() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.badFrames
}
