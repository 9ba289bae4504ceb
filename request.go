package computebot

import (
	"context"
	"time"
)

// RequestState is where a launch request is in its life.
//
//	new → pending → approved → launching → launched → ready
//	       ↘ denied / expired        ↘ failed (from approved, launching or launched)
//	new → refused (policy said no after the ack, e.g. quota)
type RequestState string

const (
	RequestNew       RequestState = "new"       // persisted before the ack; not yet posted
	RequestPending   RequestState = "pending"   // posted, awaiting an approver
	RequestApproved  RequestState = "approved"  // approved (or auto-approved), not yet launched
	RequestLaunching RequestState = "launching" // RunInstances in flight
	RequestLaunched  RequestState = "launched"  // instance ID known, waiting for running
	RequestReady     RequestState = "ready"     // running; IP reply posted
	RequestDenied    RequestState = "denied"
	RequestExpired   RequestState = "expired"
	RequestFailed    RequestState = "failed"
	RequestRefused   RequestState = "refused"
)

// Terminal reports whether no further transition can happen.
func (s RequestState) Terminal() bool {
	switch s {
	case RequestReady, RequestDenied, RequestExpired, RequestFailed, RequestRefused:
		return true
	}
	return false
}

// RequestKind is what a request asks for.
type RequestKind string

const (
	KindLaunch RequestKind = ""       // an EC2 instance (the zero value, as in schema 1)
	KindLambda RequestKind = "lambda" // an invocation of an approval-gated Lambda function
)

// Request is one request (an instance launch, or a Lambda invocation that
// needs approval) and everything needed to resume it after a restart at any
// moment.
type Request struct {
	ID          string
	Kind        RequestKind
	Requester   string // Slack user ID
	ChannelID   string
	ResponseURL string
	MessageTS   string // the request message; also the thread's root

	InstanceType string
	ImageRef     string // as configured or given with --ami (may be resolve:ssm:…)
	ImageID      string // resolved
	ImageName    string
	ImageRoot    string // root device name, so the launch can encrypt the root volume
	Name         string
	Reason       string
	Lease        time.Duration

	VCPUs        int32
	MemoryMiB    int64
	PricePerHour float64
	PriceKnown   bool

	State             RequestState
	AutoApproved      bool
	DecidedBy         string
	DecidedAt         time.Time
	CreatedAt         time.Time
	ApprovalExpiresAt time.Time
	UpdatedAt         time.Time

	InstanceID string
	PublicIP   string
	PrivateIP  string
	Failure    string // plain-words reason when State is failed or refused

	// Lambda requests.
	Function string
	Payload  string // raw JSON text as typed
	Async    bool
}

// ClientToken is the RunInstances idempotency token for this request: derived
// from the request ID so that every attempt, before or after a restart, is
// the same launch as far as EC2 is concerned.
func (r *Request) ClientToken() string { return "computebot-" + r.ID }

// AuditEntry records one cloud-changing action (or attempt).
type AuditEntry struct {
	Time      time.Time
	Actor     string // Slack user ID, or "computebot" for the bot's own actions
	Action    string // e.g. "launch", "approve", "deny"
	RequestID string
	Target    string // instance ID, when there is one
	Result    string // "ok", or the error code / reason
	Detail    string
}

// Store persists requests, envelope de-duplication and the audit log.
// Implemented by package store (bbolt).
type Store interface {
	// CreateRequest stores r; ErrExists when a request with r.ID exists.
	CreateRequest(ctx context.Context, r *Request) error
	// Request returns a copy of the request; ErrNotFound when absent.
	Request(ctx context.Context, id string) (*Request, error)
	// UpdateRequest runs fn on the stored request inside one transaction and
	// saves the result; an error from fn aborts and is returned unchanged.
	// This is the compare-and-set every state transition goes through.
	UpdateRequest(ctx context.Context, id string, fn func(*Request) error) (*Request, error)
	// Requests lists requests in the given states (all when none given),
	// oldest first.
	Requests(ctx context.Context, states ...RequestState) ([]*Request, error)
	// Audit appends an entry to the audit log.
	Audit(ctx context.Context, e AuditEntry) error
	// AuditLog returns the audit log, oldest first.
	AuditLog(ctx context.Context) ([]AuditEntry, error)
	Close() error
}

// DecidedByOrPolicy is who approved: the approver's user ID, or "policy"
// for an auto-approved request.
func (r *Request) DecidedByOrPolicy() string {
	if r.AutoApproved || r.DecidedBy == "" {
		return "policy"
	}
	return r.DecidedBy
}
