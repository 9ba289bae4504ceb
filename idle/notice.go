package idle

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Notice is one warning that an instance will be stopped, and what became
// of it. It is persisted as JSON (small: a few hundred bytes) under its
// instance ID in NoticesBucket; only the latest notice of an instance is
// kept.
type Notice struct {
	InstanceID string `json:"instance_id"`
	Name       string `json:"name,omitempty"`
	Owner      string `json:"owner,omitempty"` // Slack user ID (tag computebot:owner)
	Type       string `json:"type,omitempty"`
	Reason     string `json:"reason"` // ReasonIdle or ReasonLease
	// Action is what happens when the grace ends: ActionStop, or
	// ActionTerminate for a lease with lease_action terminate.
	Action string `json:"action"`

	// Evidence of an idle notice (see Evidence).
	MaxCPU       float64       `json:"max_cpu,omitempty"`       // max CPU % over the window
	NetworkBytes float64       `json:"network_bytes,omitempty"` // max per-period NetworkIn+NetworkOut bytes
	Window       time.Duration `json:"window,omitempty"`
	// LeaseEnded is the expires-at of a lease notice.
	LeaseEnded time.Time `json:"lease_ended,omitzero"`

	CostPerHour float64 `json:"cost_per_hour,omitempty"`
	PriceKnown  bool    `json:"price_known,omitempty"`

	NoticedAt time.Time `json:"noticed_at"`
	StopAt    time.Time `json:"stop_at"`

	State   string `json:"state"`             // StateNoticed, StateKept, StateStopped, StateCancelled
	Outcome string `json:"outcome,omitempty"` // plain words for kept/stopped/cancelled
	// KeptBy and KeptUntil record Keep running: the snooze (idle) or the
	// new expires-at (lease). A kept notice stops new notices until then.
	KeptBy    string    `json:"kept_by,omitempty"`
	KeptUntil time.Time `json:"kept_until,omitzero"`
	SettledAt time.Time `json:"settled_at,omitzero"`
	// Attempts counts failed stop calls (the notice is cancelled after
	// maxAttempts).
	Attempts int `json:"attempts,omitempty"`

	// RequestChannel and RequestThread are the instance's request thread
	// (tags computebot:channel and computebot:thread), where PostNotice
	// should post first; empty when the instance has no such tags.
	RequestChannel string `json:"request_channel,omitempty"`
	RequestThread  string `json:"request_thread,omitempty"`
	// Channel and TS are where the notice was posted (empty until the post
	// returned).
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	// Episode identifies one idle (or lease) episode: the same episode
	// never gets a second notice.
	Episode string `json:"episode"`
}

// Evidence is the idle evidence in words: "max CPU 1.2 % and 0.3 MB
// network over the last 1 h".
func (n Notice) Evidence() string {
	return evidence(n.MaxCPU, n.NetworkBytes, n.Window)
}

// ThreadTS is the thread to announce in: the request thread when the
// notice went there, else the notice itself (a DM or notify_channel post).
func (n Notice) ThreadTS() string {
	if n.RequestThread != "" && n.Channel == n.RequestChannel {
		return n.RequestThread
	}
	return n.TS
}

// Pending reports whether the notice still waits for its grace to end.
func (n Notice) Pending() bool { return n.State == StateNoticed }

// blocks reports whether n stops a new notice for its instance at now: it
// is pending, or kept (snoozed, lease extended) until after now.
func (n Notice) blocks(now time.Time) bool {
	return n.State == StateNoticed || (n.State == StateKept && now.Before(n.KeptUntil))
}

// prunable reports whether a settled notice can be forgotten.
func (n Notice) prunable(now time.Time) bool {
	switch n.State {
	case StateStopped, StateCancelled:
		return now.Sub(n.SettledAt) > keepSettled
	case StateKept:
		return now.Sub(n.KeptUntil) > keepSettled
	}
	return false
}

// Report is the answer to /computebot idle.
type Report struct {
	// Noticed are the pending notices (idle or lease), soonest StopAt first.
	Noticed []Notice
	// AboutToStop are the pending notices whose StopAt comes before the
	// next scan (a subset of Noticed).
	AboutToStop []Notice
	// Snoozed are the kept instances whose snooze (or extended lease) has
	// not ended, soonest end first.
	Snoozed []Snooze
	// NextScan is when the next scan runs.
	NextScan time.Time
}

// Snooze is one kept instance.
type Snooze struct {
	InstanceID string
	Name       string
	Owner      string
	Reason     string // ReasonIdle (snoozed) or ReasonLease (lease extended)
	KeptBy     string
	Until      time.Time
}

func evidence(cpu, net float64, window time.Duration) string {
	return fmt.Sprintf("max CPU %s %% and %s network over the last %s", oneDecimal(cpu), megabytes(net), humanDuration(window))
}

func oneDecimal(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "?"
	}
	return fmt.Sprintf("%.1f", v)
}

func megabytes(b float64) string {
	return oneDecimal(b/1e6) + " MB"
}

// humanDuration writes 1h as "1 h", 90m as "1 h 30 min", 30m as "30 min",
// 4h as "4 h".
func humanDuration(d time.Duration) string {
	if d <= 0 {
		return "0 min"
	}
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int((d%time.Hour)/time.Minute)
	var parts []string
	if h >= 48 && h%24 == 0 {
		return fmt.Sprintf("%d days", h/24)
	}
	if h > 0 {
		parts = append(parts, fmt.Sprintf("%d h", h))
	}
	if m > 0 || h == 0 {
		parts = append(parts, fmt.Sprintf("%d min", m))
	}
	return strings.Join(parts, " ")
}
