package fakeslack

import (
	mrand "math/rand/v2"
)

// SetSpread turns spread delivery on or off, for tests that run several
// replicas of a bot, each with its own socket-mode connection to the
// server. Slack delivers each envelope to one of an app's connections,
// which one is up to it, and redelivers an envelope not acked in time,
// possibly to another connection; a bot must cope with either.
//
// With spread on, every envelope queued from then on (SendEnvelope and
// everything built on it, and SendFrame) goes to one connection drawn at
// random among those that have been sent their hello and are not ending,
// rather than to the newest one. The draws come from a generator seeded
// with seed, so the same seed and the same connections give the same
// spread. An automatic redelivery (SetRedelivery) goes to another
// connection than the delivery it replaces when one is up, else to the same
// one; so do the envelopes of a connection that ended, redelivered or not
// yet written, and those queued while no connection was up, once one is.
//
// SendDisconnect, Chaos and WaitConnected still act on the newest
// connection. Off, the default, every envelope goes to the newest
// connection. Turning it on or off moves nothing already queued.
func (s *Server) SetSpread(on bool, seed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spread = nil
	if on {
		s.spread = mrand.New(mrand.NewPCG(uint64(seed), 0x5b5ead))
	}
}

// targetLocked returns the connection to queue f on, or nil when none is
// up and f must wait in s.pending.
func (s *Server) targetLocked(f *outFrame) *wsConn {
	if s.spread == nil {
		return s.current
	}
	avoid := 0
	if f.d != nil {
		avoid = f.d.from
	}
	// Candidates are collected in s.conns order (oldest first), so that
	// one seed gives one spread whatever the scheduling.
	var usable, others []*wsConn
	for _, c := range s.conns {
		if c.ready && !c.draining && !c.dropped {
			usable = append(usable, c)
			if c.id != avoid {
				others = append(others, c)
			}
		}
	}
	if len(others) > 0 {
		usable = others
	}
	if len(usable) == 0 {
		return nil
	}
	return usable[s.spread.IntN(len(usable))]
}
