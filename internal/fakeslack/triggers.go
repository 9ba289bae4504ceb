package fakeslack

import (
	"time"
)

// DefaultTriggerTTL is how long a trigger_id stays usable for views.open and
// views.push after its envelope was written to the socket: Slack's three
// seconds ("Triggers expire in three seconds").
const DefaultTriggerTTL = 3 * time.Second

// The errors views.open and views.push answer for a trigger_id they cannot
// exchange, as named in Slack's method references (the older interactivity
// guide calls the last two trigger_expired and trigger_exchanged; the view
// methods answer these).
const (
	ErrCodeInvalidTrigger   = "invalid_trigger_id"   // not a trigger the fake issued
	ErrCodeExpiredTrigger   = "expired_trigger_id"   // older than the trigger TTL
	ErrCodeExchangedTrigger = "exchanged_trigger_id" // already used by a views.open or views.push
)

// Trigger is a trigger_id the fake issued with an envelope: every slash
// command, block action, shortcut and view submission it sends carries a
// fresh one (or the one the test chose, e.g. SlashCommand.TriggerID).
type Trigger struct {
	ID         string
	UserID     string // the user whose interaction it came from
	EnvelopeID string
	// ViewID is the view the interaction happened in (a modal or a home
	// tab), "" for slash commands, shortcuts and message actions. views.push
	// pushes onto that view's stack.
	ViewID string
	// IssuedAt is when the envelope was queued; WrittenAt when it was first
	// written to a socket (zero until then). Slack's clock starts at the
	// write: views.open and views.push refuse the trigger once WrittenAt
	// is more than the trigger TTL ago.
	IssuedAt  time.Time
	WrittenAt time.Time
	// UsedBy is the method that exchanged it ("views.open", "views.push"),
	// "" while unused; UsedAt is when.
	UsedBy string
	UsedAt time.Time
}

// SetTriggerTTL changes how long trigger_ids stay usable after their
// envelope was written (d <= 0 restores DefaultTriggerTTL), e.g. to a few
// milliseconds for a test of a bot that opens its modal too late. It applies
// to every trigger from the next exchange on.
func (s *Server) SetTriggerTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		d = DefaultTriggerTTL
	}
	s.triggerTTL = d
}

// Trigger returns what the fake knows of a trigger_id it issued.
func (s *Server) Trigger(id string) (Trigger, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.triggers[id]
	if t == nil {
		return Trigger{}, false
	}
	out := *t
	out.WrittenAt = s.writtenAtLocked(t.EnvelopeID)
	return out, true
}

// issueTriggerLocked records a trigger_id about to be sent in envelopeID.
func (s *Server) issueTriggerLocked(id, user, envelopeID, viewID string) {
	s.triggers[id] = &Trigger{ID: id, UserID: user, EnvelopeID: envelopeID, ViewID: viewID, IssuedAt: time.Now()}
}

// issueTrigger is issueTriggerLocked taking the lock.
func (s *Server) issueTrigger(id, user, envelopeID, viewID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issueTriggerLocked(id, user, envelopeID, viewID)
}

// writtenAtLocked is when the first delivery of the envelope was taken for
// writing to a socket, or zero.
func (s *Server) writtenAtLocked(envelopeID string) time.Time {
	for _, d := range s.deliveries[envelopeID] {
		if d.seq != 0 {
			return d.sentAt
		}
	}
	return time.Time{}
}

// usableTriggerLocked returns the trigger if views.open or views.push may
// exchange it now, else the error Slack answers. An envelope not written
// yet has not started the clock.
func (s *Server) usableTriggerLocked(id string) (*Trigger, string) {
	t := s.triggers[id]
	switch {
	case t == nil:
		return nil, ErrCodeInvalidTrigger
	case t.UsedBy != "":
		return nil, ErrCodeExchangedTrigger
	}
	if w := s.writtenAtLocked(t.EnvelopeID); !w.IsZero() && time.Since(w) > s.triggerTTL {
		return nil, ErrCodeExpiredTrigger
	}
	return t, ""
}
