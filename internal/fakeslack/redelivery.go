package fakeslack

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/gorilla/websocket"
)

// Slack's redelivery of unacknowledged envelopes, for SetRedelivery.
const (
	// DefaultAckTimeout is how long Slack waits for an ack (3 s).
	DefaultAckTimeout = 3 * time.Second
	// DefaultMaxRetries is how many times Slack redelivers an envelope.
	DefaultMaxRetries = 3
)

// The retry_reason values of automatic redeliveries. Slack documents
// retry_attempt and retry_reason on envelopes but not the reasons' values:
// "timeout" is what Slack sends for an envelope not acked in time;
// "connection_closed" is this fake's name for an envelope whose connection
// ended before its ack arrived.
const (
	RetryReasonTimeout          = "timeout"
	RetryReasonConnectionClosed = "connection_closed"
)

// SetRedelivery turns on automatic redelivery, as Slack does it: an
// envelope written to a connection and not acked within ackTimeout, or
// whose connection ends before its ack was read, is delivered again on the
// current connection (the newest up; or the next one, once the client has
// reconnected; with SetSpread on, another connection when one is up) with
// the same envelope_id, retry_attempt one more than the delivery it
// replaces and retry_reason RetryReasonTimeout or
// RetryReasonConnectionClosed, up to retry_attempt maxRetries (<= 0 means
// DefaultMaxRetries). Then the server gives up on it. An ack read on any
// connection counts; it answers the latest delivery written before it.
//
// ackTimeout <= 0 turns redelivery off, the default: then an envelope is
// delivered once per SendEnvelope, whatever happens to it. Timers already
// running when it is turned off redeliver nothing; the setting applies to
// deliveries written from now on.
func (s *Server) SetRedelivery(ackTimeout time.Duration, maxRetries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maxRetries <= 0 {
		maxRetries = DefaultMaxRetries
	}
	s.ackTimeout, s.maxRetries = max(ackTimeout, 0), maxRetries
}

// Delivery is one delivery of an envelope written to a socket-mode
// connection: one SendEnvelope, or one automatic redelivery.
type Delivery struct {
	EnvelopeID   string
	RetryAttempt int
	RetryReason  string
	// Conn is the connection it was written on: 1 for the first one the
	// server accepted, 2 for the next, and so on.
	Conn   int
	SentAt time.Time
	// Acked is true once an ack was read while this was the latest
	// delivery of the envelope written.
	Acked bool
}

// Deliveries returns the deliveries of envelopeID written so far (or being
// written), oldest first: len is how many times the client was sent the
// envelope.
func (s *Server) Deliveries(envelopeID string) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deliveriesLocked(envelopeID)
}

// WaitDeliveries waits until envelopeID has been written n times and
// returns the deliveries (Deliveries).
func (s *Server) WaitDeliveries(ctx context.Context, envelopeID string, n int) ([]Delivery, error) {
	var out []Delivery
	err := s.wait(ctx, func() bool {
		out = s.deliveriesLocked(envelopeID)
		return len(out) >= n
	})
	return out, err
}

func (s *Server) deliveriesLocked(id string) []Delivery {
	var out []Delivery
	for _, d := range s.deliveries[id] {
		if d.conn != 0 {
			out = append(out, Delivery{EnvelopeID: id, RetryAttempt: d.attempt, RetryReason: d.reason, Conn: d.conn, SentAt: d.sentAt, Acked: d.acked})
		}
	}
	return out
}

// writtenLocked notes that d was written and, with redelivery on, starts
// its ack timeout.
func (s *Server) writtenLocked(d *delivery) {
	if s.ackTimeout > 0 && !d.acked && s.latestLocked(d) {
		d.timer = time.AfterFunc(s.ackTimeout, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if f := s.redeliveryLocked(d, RetryReasonTimeout); f != nil {
				s.enqueueLocked(f)
				s.notifyLocked()
			}
		})
	}
}

// redeliveryLocked returns the frame of d's redelivery, or nil when d needs
// none: redelivery is off, d was acked or superseded by a later delivery,
// its retries are used up, or the server is closing.
func (s *Server) redeliveryLocked(d *delivery, reason string) *outFrame {
	if s.closed() || s.ackTimeout <= 0 || d.acked || d.attempt >= s.maxRetries || !s.latestLocked(d) {
		return nil
	}
	stopTimer(d)
	env := s.envelopes[d.id].env
	env.RetryAttempt, env.RetryReason = d.attempt+1, reason
	f := s.newDeliveryLocked(env)
	f.d.from = d.conn
	return f
}

// lostOnLocked returns the redeliveries of the envelopes last written on c
// and not acked, in the order they were written (none with redelivery off).
func (s *Server) lostOnLocked(c *wsConn) []*outFrame {
	if s.ackTimeout <= 0 {
		return nil
	}
	var lost []*delivery
	for _, ds := range s.deliveries {
		if d := ds[len(ds)-1]; d.conn == c.id {
			lost = append(lost, d)
		}
	}
	slices.SortFunc(lost, func(a, b *delivery) int { return cmp.Compare(a.seq, b.seq) })
	var out []*outFrame
	for _, d := range lost {
		if f := s.redeliveryLocked(d, RetryReasonConnectionClosed); f != nil {
			out = append(out, f)
		}
	}
	return out
}

// latestLocked reports whether d is the latest delivery of its envelope.
func (s *Server) latestLocked(d *delivery) bool {
	ds := s.deliveries[d.id]
	return ds[len(ds)-1] == d
}

func stopTimer(d *delivery) {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// stopTimersLocked stops every ack timeout, for Close.
func (s *Server) stopTimersLocked() {
	for _, ds := range s.deliveries {
		for _, d := range ds {
			stopTimer(d)
		}
	}
}

// ChaosKind is a way for a socket-mode connection to end, for Chaos.
type ChaosKind int

const (
	// ChaosDisconnect writes a disconnect envelope with reason
	// "refresh_requested" (SendDisconnect): the client closes the
	// connection and opens another.
	ChaosDisconnect ChaosKind = iota + 1
	// ChaosCloseFrame writes a websocket close frame (1001 going away)
	// after what is already queued, then closes the TCP connection once
	// the client has answered it (or DisconnectGrace later).
	ChaosCloseFrame
	// ChaosTCPClose closes the TCP connection at once, without a close
	// frame (a FIN): the client's next read fails with an EOF.
	ChaosTCPClose
	// ChaosTCPReset resets the TCP connection (an RST, SO_LINGER 0), without
	// a close frame: the client's next read fails with "connection reset".
	ChaosTCPReset
)

func (k ChaosKind) String() string {
	switch k {
	case ChaosDisconnect:
		return "disconnect"
	case ChaosCloseFrame:
		return "close-frame"
	case ChaosTCPClose:
		return "tcp-close"
	case ChaosTCPReset:
		return "tcp-reset"
	}
	return fmt.Sprintf("ChaosKind(%d)", int(k))
}

// Chaos ends the current socket-mode connection (the one new envelopes go
// to) the way kind says. From the call on, new envelopes wait for the next
// connection; slack-go reconnects by itself (apps.connections.open, a new
// hello) after each kind. Envelopes queued and not yet written move to the
// next connection; those written and not acked are redelivered there when
// SetRedelivery is on (lost with an abrupt close otherwise). It returns
// ErrNotConnected when no connection is up, and an error for an unknown
// kind.
func (s *Server) Chaos(kind ChaosKind) error {
	switch kind {
	case ChaosDisconnect:
		return s.SendDisconnect("refresh_requested")
	case ChaosCloseFrame:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed() {
			return ErrClosed
		}
		if s.current == nil {
			return ErrNotConnected
		}
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "")
		s.endCurrentLocked(&outFrame{data: msg, last: true, closeFrame: true})
		return nil
	case ChaosTCPClose, ChaosTCPReset:
		s.mu.Lock()
		c, closed := s.current, s.closed()
		s.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if c == nil {
			return ErrNotConnected
		}
		if tcp, isTCP := c.ws.NetConn().(*net.TCPConn); isTCP && kind == ChaosTCPReset {
			_ = tcp.SetLinger(0)
		}
		c.shutdown(false)
		return nil
	}
	return fmt.Errorf("fakeslack: unknown ChaosKind %d", int(kind))
}

// Redeliver sends the envelope again, now, with the next retry_attempt and
// reason "timeout", whether or not it was acked: Slack does that when the
// ack it got came too late or was lost on the way. With spread on it goes
// to another connection than its latest delivery when one is up.
func (s *Server) Redeliver(envelopeID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.envelopes[envelopeID]
	ds := s.deliveries[envelopeID]
	if !ok || len(ds) == 0 {
		return fmt.Errorf("fakeslack: redeliver %s: no such envelope sent", envelopeID)
	}
	last := ds[len(ds)-1]
	stopTimer(last)
	env := info.env
	env.RetryAttempt, env.RetryReason = last.attempt+1, RetryReasonTimeout
	f := s.newDeliveryLocked(env)
	f.d.from = last.conn
	s.enqueueLocked(f)
	s.notifyLocked()
	return nil
}
