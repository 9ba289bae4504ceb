package computebot

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// RequestState is where a request is in its life. Launch and Lambda
// requests share every state but launched:
//
//	new → pending → approved → executing → [launched →] done
//	       ↘ denied / expired        ↘ failed (from approved, executing or launched)
//	new → refused (policy said no after the ack, e.g. quota)
//
// executing means the approved action is under way (RunInstances, or the
// invocation); launched (launch requests only) means EC2 returned the
// instance and the bot waits for it to run.
type RequestState string

const (
	RequestNew       RequestState = "new"       // persisted before the ack; not yet posted
	RequestPending   RequestState = "pending"   // posted, awaiting an approver
	RequestApproved  RequestState = "approved"  // approved (or auto-approved), not yet started
	RequestExecuting RequestState = "executing" // RunInstances or the invocation in flight
	RequestLaunched  RequestState = "launched"  // launch only: instance ID known, waiting for running
	RequestDone      RequestState = "done"      // instance running and its IP posted, or function invoked
	RequestDenied    RequestState = "denied"
	RequestExpired   RequestState = "expired"
	RequestFailed    RequestState = "failed"
	RequestRefused   RequestState = "refused"
)

// Terminal reports whether no further transition can happen.
func (s RequestState) Terminal() bool {
	switch s {
	case RequestDone, RequestDenied, RequestExpired, RequestFailed, RequestRefused:
		return true
	}
	return false
}

// RequestKind is what a request asks for; it follows from which payload a
// Request carries.
type RequestKind string

const (
	KindLaunch RequestKind = "launch" // an EC2 instance
	KindLambda RequestKind = "lambda" // an invocation of an approval-gated Lambda function
)

// Request is one request that goes through approval, and everything needed
// to resume it after a restart at any moment. Exactly one of Launch and
// Lambda is set.
type Request struct {
	ID          string
	Requester   string // Slack user ID
	ChannelID   string
	ResponseURL string
	MessageTS   string // the request message; also the thread's root

	State RequestState
	// Version counts the saved changes of the request: 1 when created,
	// one more with every update. Store.UpdateRequest saves only over the
	// version it read, which makes every transition a compare-and-set.
	Version      int64
	AutoApproved bool
	DecidedBy    string
	DecidedAt    time.Time
	// DecidedIn is the intent (the click) that decided the request, so a
	// run of that intent after a restart recognises its own decision.
	DecidedIn         string
	CreatedAt         time.Time
	ApprovalExpiresAt time.Time
	UpdatedAt         time.Time
	Failure           string // what went wrong, in plain words, when State is failed or refused
	// Claim is the replica that takes the request on from its decision:
	// it launches (or invokes) and waits for the instance. Another replica
	// takes a request over only when its claimer is gone (see flow's
	// Cluster), with the same ClientToken and the persisted parameters.
	Claim string

	Launch *LaunchRequest
	Lambda *LambdaRequest
}

// LaunchRequest is what a launch request asks for and what became of it.
type LaunchRequest struct {
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

	InstanceID string
	PublicIP   string
	PrivateIP  string

	// SSHKeys are the requester's public keys (authorized_keys lines) as
	// of the request, installed for the SSH user through user data.
	SSHKeys []string
	// UserData is the instance's user data (launch.user_data with the
	// keys), made at admission: every RunInstances attempt of the request,
	// also after a restart under a changed config, sends exactly this.
	UserData string

	// Quota is the vCPU quota the type counts against, as the admission
	// found it (nil when not looked up); QuotaUnknown says the lookup
	// failed, which does not block a request.
	Quota        *VCPUQuota
	QuotaUnknown bool

	// Hibernate was asked for (--hibernate, launch.hibernate);
	// NoHibernation says why the launch cannot be configured for it
	// ("" when it can, or was not asked for).
	Hibernate     bool
	NoHibernation string

	// Plan is every RunInstances the launch may make, in order (the type
	// in each subnet, then each fallback type in each subnet), made at
	// admission so that a restart under a changed config tries the same.
	// Try is the index of the attempt under way, or of the one that
	// launched: it moves on only after EC2 said it had no capacity for
	// the attempt before. Empty for a request from before fallbacks: one
	// try, the type in launch.subnet_id, with ClientToken().
	Plan []LaunchTry
	Try  int
	// MaxPricePerHour is the highest hourly price among the plan's types
	// (what the approval covers); MaxPriceKnown when all were known.
	MaxPricePerHour float64
	MaxPriceKnown   bool

	// Schedule is the office hours the instance is tagged with at launch
	// (launch.default_schedule as of the request, canonical text); "" for
	// none.
	Schedule string
}

// LaunchTry is one RunInstances a launch may make. It is stored with
// launch requests: the JSON names are the stored ones.
type LaunchTry struct {
	InstanceType string `json:"instance_type"`
	SubnetID     string `json:"subnet_id,omitempty"` // "" for EC2's default
	// Hibernate configures the instance for hibernation; RootVolumeGiB
	// sizes its root volume to hold the memory (0 keeps the image's).
	Hibernate     bool  `json:"hibernate,omitempty"`
	RootVolumeGiB int32 `json:"root_volume_gib,omitempty"`
}

// Current is the attempt under way (or that launched): Plan[Try], or for a
// request without a plan its type alone.
func (l *LaunchRequest) Current() LaunchTry {
	if l.Try >= 0 && l.Try < len(l.Plan) {
		return l.Plan[l.Try]
	}
	return LaunchTry{InstanceType: l.InstanceType}
}

// Fallbacks are the plan's types after the requested one, in order.
func (l *LaunchRequest) Fallbacks() []string {
	var out []string
	for _, t := range l.Plan {
		if t.InstanceType != l.InstanceType && !slices.Contains(out, t.InstanceType) {
			out = append(out, t.InstanceType)
		}
	}
	return out
}

// LambdaRequest is an invocation that needs an approver first.
type LambdaRequest struct {
	Function string
	Payload  string // raw JSON text as typed
	Async    bool
}

// Kind tells a launch request from a Lambda request.
func (r *Request) Kind() RequestKind {
	if r.Lambda != nil {
		return KindLambda
	}
	return KindLaunch
}

// ClientToken is the RunInstances idempotency token for this request: derived
// from the request ID so that every attempt, before or after a restart, is
// the same launch as far as EC2 is concerned.
func (r *Request) ClientToken() string { return "computebot-" + r.ID }

// TryToken is the ClientToken of the launch's attempt try: the first is
// ClientToken (as before fallbacks), each later one its own, so that a
// restart resends the attempt it was at and never launches a second
// instance, while a new attempt is a new launch for EC2.
func (r *Request) TryToken(try int) string {
	if try == 0 {
		return r.ClientToken()
	}
	return fmt.Sprintf("%s-%d", r.ClientToken(), try)
}

// DecidedByOrPolicy is who approved: the approver's user ID, or PolicyActor
// for an auto-approved request.
func (r *Request) DecidedByOrPolicy() string {
	if r.AutoApproved || r.DecidedBy == "" {
		return PolicyActor
	}
	return r.DecidedBy
}

// AuditEntry records one cloud-changing action (or attempt).
type AuditEntry struct {
	Time      time.Time
	Actor     string // Slack user ID, or SystemActor for the bot's own actions
	Action    string // e.g. "launch", "approve", "deny"
	RequestID string
	Target    string // instance ID or function name, when there is one
	Result    string // "ok", or the error code / reason (see AuditResult)
	Detail    string
}

// Actors that are not people, in policy checks and the audit log.
const (
	// SystemActor is the bot acting on its own (the idle scheduler's stops).
	SystemActor = "computebot"
	// PolicyActor approves the requests that policy auto-approves.
	PolicyActor = "policy"
)

// AuditResult is the audit Result of an action that ended with err: "ok"
// for nil, else the error's code, else "error".
func AuditResult(err error) string {
	if err == nil {
		return "ok"
	}
	if c := ErrorCode(err); c != "" {
		return c
	}
	return "error"
}

// Store persists requests, intents and the audit log. Implemented by
// package store (bbolt); a shared database can implement it too: nothing
// here relies on one process holding a lock.
type Store interface {
	Intents
	// CreateRequest stores r with Version 1; ErrExists when a request with
	// r.ID exists. It is durable when it returns.
	CreateRequest(ctx context.Context, r *Request) error
	// Request returns a copy of the request; ErrNotFound when absent.
	Request(ctx context.Context, id string) (*Request, error)
	// UpdateRequest is the compare-and-set every state transition goes
	// through: it reads the request, calls fn on a copy and saves the copy
	// with Version+1, only if the stored Version is still the one read. On a
	// lost race it reads again and calls fn again, so fn must decide from
	// the request it is given alone and do nothing but change it. An error
	// from fn aborts (nothing is saved) and is returned unchanged.
	UpdateRequest(ctx context.Context, id string, fn func(*Request) error) (*Request, error)
	// Requests lists requests in the given states (all when none given),
	// oldest first. Listing non-terminal states is what the bot does
	// (quotas, expiry, resume); a shared store may make listing terminal
	// ones (or all) slow.
	Requests(ctx context.Context, states ...RequestState) ([]*Request, error)
	// RequestByMessage returns the request whose message is ts in channel;
	// ErrNotFound when there is none.
	RequestByMessage(ctx context.Context, channel, ts string) (*Request, error)
	// Audit appends an entry to the audit log.
	Audit(ctx context.Context, e AuditEntry) error
	// AuditLog returns the audit log, oldest first.
	AuditLog(ctx context.Context) ([]AuditEntry, error)
	// AuditSince returns the entries recorded at or after since, oldest
	// first.
	AuditSince(ctx context.Context, since time.Time) ([]AuditEntry, error)
	Close() error
}
