package idle

import (
	"fmt"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
)

// Notice is one warning that an instance will be stopped, and what became
// of it. It is persisted as JSON (small: a few hundred bytes) under its
// instance ID in NoticesBucket; only the latest notice of an instance is
// kept. It holds facts only (IDs, numbers, times, codes): package reply
// words them, so the wording can change without touching stored records.
type Notice struct {
	InstanceID string `json:"instance_id"`
	Name       string `json:"name,omitempty"`
	Owner      string `json:"owner,omitempty"` // Slack user ID (tag computebot:owner)
	Type       string `json:"type,omitempty"`
	Reason     string `json:"reason"` // ReasonIdle or ReasonLease
	// Action is what happens when the grace ends: ActionStop, or
	// ActionTerminate for a lease with lease_action terminate.
	Action string `json:"action"`

	// Evidence of an idle notice.
	MaxCPU       float64       `json:"max_cpu,omitempty"`       // max CPU % over the window
	GPU          bool          `json:"gpu,omitempty"`           // a GPU instance: MaxGPU counts
	MaxGPU       float64       `json:"max_gpu,omitempty"`       // max GPU utilization % over the window
	NetworkBytes float64       `json:"network_bytes,omitempty"` // max per-period NetworkIn+NetworkOut bytes
	Window       time.Duration `json:"window,omitempty"`
	// LeaseEnded is the expires-at of a lease notice.
	LeaseEnded time.Time `json:"lease_ended,omitzero"`
	// Hours (the schedule's text) and HoursEnded (when they ended) are an
	// office-hours notice's facts.
	Hours      string    `json:"hours,omitempty"`
	HoursEnded time.Time `json:"hours_ended,omitzero"`

	CostPerHour float64 `json:"cost_per_hour,omitempty"`
	PriceKnown  bool    `json:"price_known,omitempty"`

	// Hibernates: the instance was launched able to hibernate, so a stop
	// keeps its memory. Once stopped, Hibernated says whether it did and
	// NotHibernated why not (EC2 refused; it was stopped plainly).
	Hibernates    bool   `json:"hibernates,omitempty"`
	Hibernated    bool   `json:"hibernated,omitempty"`
	NotHibernated string `json:"not_hibernated,omitempty"`

	// NoticedAt is when the notice was persisted, right before its post;
	// StopAt is NoticedAt + grace.
	NoticedAt time.Time `json:"noticed_at"`
	StopAt    time.Time `json:"stop_at"`

	// State is StateNoticed, StateStopping, StateExtending, StateKept,
	// StateStopped or StateCancelled (see the package doc).
	State string `json:"state"`
	// How says how a settled notice was settled; "" in records written
	// before it existed (they are worded generically).
	How Settlement `json:"how,omitempty"`
	// SettledBy is the user who clicked Keep running or Stop now; "" when
	// the scheduler settled the notice (and in records written before it
	// existed: their "kept_by" and prose "outcome" are not read).
	SettledBy string    `json:"settled_by,omitempty"`
	SettledAt time.Time `json:"settled_at,omitzero"`
	// KeptUntil is the end of the snooze (idle) or the new expires-at
	// (lease) of a kept notice; a kept notice stops new notices until then.
	KeptUntil time.Time `json:"kept_until,omitzero"`
	// Cancel is why a cancelled notice was cancelled.
	Cancel *Cancellation `json:"cancel,omitempty"`
	// Attempts counts the scheduler's failed stop calls (the notice is
	// cancelled after maxAttempts).
	Attempts int `json:"attempts,omitempty"`
	// Claim is the AWS call in flight while State is StateStopping or
	// StateExtending.
	Claim *Claim `json:"claim,omitempty"`
	// Fence is the leader lease's version (package cluster) of the last
	// scheduler run that changed the notice: a run holding an older one
	// (a deposed leader) may not change it any more. 0 when one process
	// runs the scheduler alone.
	Fence int64 `json:"fence,omitempty"`

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

// Settlement is how a notice was settled.
type Settlement string

const (
	SettledKept       Settlement = "kept"       // Keep running: snoozed, or lease extended (SettledBy, KeptUntil)
	SettledStopped    Settlement = "stopped"    // the scheduler stopped it when the grace ended
	SettledTerminated Settlement = "terminated" // the scheduler terminated it (a lease, lease_action terminate)
	SettledStopNow    Settlement = "stop-now"   // Stop now (SettledBy)
	SettledCancelled  Settlement = "cancelled"  // not stopped after all (Cancel)
)

// CancelReason names why a notice was cancelled.
type CancelReason string

const (
	CancelTerminated    CancelReason = "terminated"         // the instance was terminated (or is gone) meanwhile
	CancelStopped       CancelReason = "stopped"            // the instance was stopped meanwhile
	CancelState         CancelReason = "state"              // the instance is in another state: State
	CancelNoLease       CancelReason = "no-lease"           // a lease notice's instance has no expires-at any more
	CancelLeaseExtended CancelReason = "lease-extended"     // the lease now ends at LeaseUntil
	CancelActive        CancelReason = "active"             // activity resumed: MaxCPU, NetworkBytes over Window
	CancelKept          CancelReason = "kept"               // someone used /keep: no idle stop until LeaseUntil
	CancelIncomplete    CancelReason = "incomplete-metrics" // Periods, CPUPeriods, NetPeriods over Window
	CancelRefused       CancelReason = "refused"            // the policy refused the stop: Refusal
	CancelStopFailed    CancelReason = "stop-failed"        // the stop call failed maxAttempts times: ErrorCode, ErrorMessage
	CancelHoursBegan    CancelReason = "hours-began"        // an office-hours notice's instance is within its hours again
	CancelUnscheduled   CancelReason = "unscheduled"        // an office-hours notice's instance has other hours now, or none
)

// Cancellation is why a notice was cancelled: a reason and the facts the
// words need. Only the fields the reason lists are set.
type Cancellation struct {
	Reason CancelReason `json:"reason"`

	State      string    `json:"state,omitempty"`      // CancelState: the instance's state
	LeaseUntil time.Time `json:"lease_until,omitzero"` // CancelLeaseExtended

	// CancelActive and CancelIncomplete: the fresh metrics at the end of
	// the grace.
	MaxCPU       float64       `json:"max_cpu,omitempty"`
	NetworkBytes float64       `json:"network_bytes,omitempty"`
	Window       time.Duration `json:"window,omitempty"`
	Periods      int           `json:"periods,omitempty"`     // periods in the window
	CPUPeriods   int           `json:"cpu_periods,omitempty"` // … with a CPU datapoint
	NetPeriods   int           `json:"net_periods,omitempty"` // … with both network datapoints
	GPU          bool          `json:"gpu,omitempty"`         // a GPU instance: MaxGPU, GPUPeriods count
	MaxGPU       float64       `json:"max_gpu,omitempty"`
	GPUPeriods   int           `json:"gpu_periods,omitempty"` // … with a GPU datapoint

	Refusal policy.RefusalCode `json:"refusal,omitempty"` // CancelRefused

	// CancelStopFailed: the last error's code, and its message for users
	// (computebot.UserMessage: already plain words from the aws error table).
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
}

// Claim marks an AWS call in flight on a notice: the Stop or Terminate of
// a stopping notice, the Tag of an extending one. Whoever wrote the claim
// (compare-and-set from a state that allows it) makes the call and then
// records its result with another compare-and-set conditioned on Token, so
// that no one else acts on the notice meanwhile. A claim older than
// claimTTL cannot be in flight any more (the call is bounded by
// callTimeout): its claimant crashed, and the next check takes it over.
type Claim struct {
	Token string    `json:"token"` // random, one per claim
	At    time.Time `json:"at"`
	// By is the user who clicked (Stop now, Keep running); "" for the
	// scheduler's own stop.
	By string `json:"by,omitempty"`
	// Prev is the state before the claim, restored when the call fails
	// (Stop now, Keep running) or a crashed Keep's claim is taken over.
	Prev string `json:"prev"`
}

// ThreadTS is the thread to announce in: the request thread when the
// notice went there, else the notice itself (a DM or notify_channel post).
func (n Notice) ThreadTS() string {
	if n.RequestThread != "" && n.Channel == n.RequestChannel {
		return n.RequestThread
	}
	return n.TS
}

// Terminates reports whether the grace's end terminates the instance
// instead of stopping it.
func (n Notice) Terminates() bool {
	return n.Reason == ReasonLease && n.Action == ActionTerminate
}

// Settled reports whether nothing more happens to the notice but a new
// Keep running (kept) or Stop now (kept, cancelled).
func (n Notice) Settled() bool {
	switch n.State {
	case StateKept, StateStopped, StateCancelled:
		return true
	}
	return false
}

// posted reports whether the post of the notice returned (and was recorded).
func (n Notice) posted() bool { return n.Channel != "" && n.TS != "" }

// claimed reports whether an AWS call may be in flight on the notice.
func (n Notice) claimed() bool {
	return n.State == StateStopping || n.State == StateExtending
}

// staleClaim reports whether the notice is claimed by a call that cannot
// be in flight any more at now.
func (n Notice) staleClaim(now time.Time) bool {
	if !n.claimed() {
		return false
	}
	return n.Claim == nil || !now.Before(n.Claim.At.Add(claimTTL))
}

// pending reports whether the notice waits for its grace to end (or is
// being stopped or kept right now, from there).
func (n Notice) pending() bool {
	if n.claimed() {
		return n.Claim == nil || n.Claim.Prev == StateNoticed
	}
	return n.State == StateNoticed
}

// blocks reports whether n stops a new notice for its instance at now: it
// is pending or claimed, or kept (snoozed, lease extended) until after now.
func (n Notice) blocks(now time.Time) bool {
	return n.State == StateNoticed || n.claimed() || (n.State == StateKept && now.Before(n.KeptUntil))
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

// ErrNoNotice is why Keep and StopNow fail on an instance without a
// notice; they return it inside a *NoNoticeError naming the instance.
var ErrNoNotice = fmt.Errorf("idle: no idle or lease notice: %w", computebot.ErrNotFound)

// NoNoticeError is ErrNoNotice for one instance.
type NoNoticeError struct{ InstanceID string }

func (e *NoNoticeError) Error() string {
	return "idle: " + e.InstanceID + " has no idle or lease notice"
}

func (e *NoNoticeError) Unwrap() error { return ErrNoNotice }

// SettledError is why Keep or StopNow cannot act on a notice: it is
// stopped, cancelled (Keep), or being stopped or kept right now (a claim).
// Notice is the notice as stored.
type SettledError struct{ Notice Notice }

func (e *SettledError) Error() string {
	return fmt.Sprintf("idle: the notice of %s is %s", e.Notice.InstanceID, e.Notice.State)
}
