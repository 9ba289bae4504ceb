// Package policy is the one place where computebot decides who may do what.
// Every action that changes the cloud (or moves a request towards it) asks
// Authorize first; the workflows never re-implement a rule on their own.
//
// A refusal is a value: a code and the facts behind it (which type, which
// limit, whose instance). Package reply turns it into words; nothing here
// writes a sentence or chat syntax.
package policy

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
)

// Verdict is the outcome of an authorization.
type Verdict int

const (
	// Deny: the action is refused; Decision.Refusal says why.
	Deny Verdict = iota
	// Allow: go ahead.
	Allow
	// NeedsApproval: the action may happen once an approver approves it.
	NeedsApproval
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case NeedsApproval:
		return "needs-approval"
	default:
		return "deny"
	}
}

// Decision is a verdict with, for a Deny, the refusal.
type Decision struct {
	Verdict Verdict
	Refusal Refusal // set when Verdict is Deny
}

// RefusalCode names why an action was refused.
type RefusalCode string

const (
	RefuseTypeNotAllowed   RefusalCode = "type-not-allowed"   // InstanceType, Allowed
	RefuseLeaseTooLong     RefusalCode = "lease-too-long"     // Lease, MaxLease
	RefuseNotApprover      RefusalCode = "not-approver"       // Action (approve, deny), RequestID, Approvers
	RefuseSelfApproval     RefusalCode = "self-approval"      // RequestID, Approvers
	RefuseApproversOnly    RefusalCode = "approvers-only"     // Action (list-all, idle, audit-log), Approvers
	RefuseApproversUnknown RefusalCode = "approvers-unknown"  // the approver list could not be checked
	RefuseQuota            RefusalCode = "quota"              // Owner, Actor, Count, Limit, RequestID
	RefuseQuotaUnknown     RefusalCode = "quota-unknown"      // the running instances could not be counted
	RefuseNotManaged       RefusalCode = "not-managed"        // InstanceID, Action
	RefuseNotOwner         RefusalCode = "not-owner"          // InstanceID, Owner, Approvers, Action
	RefuseExtendTooFar     RefusalCode = "extend-too-far"     // InstanceID, Lease, MaxLease, Latest, Approvers
	RefuseKeepTooLong      RefusalCode = "keep-too-long"      // InstanceID, Lease (asked), MaxLease (idle.max_keep), Approvers
	RefuseFunctionNotFound RefusalCode = "function-not-found" // Function (also for functions outside the allowlist)
	RefuseInternal         RefusalCode = "internal"           // Detail: a bug, never the user's fault
)

// Refusal is why an action was refused: a code and the facts the words
// need. Only the fields the code lists are set.
type Refusal struct {
	Code   RefusalCode
	Action ActionKind
	Actor  string

	InstanceType string
	Allowed      []string // the allowed instance types
	Lease        time.Duration
	MaxLease     time.Duration
	Latest       time.Time // the latest lease end an owner may extend to

	RequestID  string
	InstanceID string
	Owner      string   // the Slack user the instance or request belongs to
	Approvers  []string // Slack user (U…, W…) and user-group (S…) IDs
	Count      int      // the owner's active launches
	Limit      int      // launch.max_running_per_user
	Function   string
	Detail     string
}

// ActionKind names what someone is trying to do.
type ActionKind string

const (
	ActionLaunch  ActionKind = "launch"  // ask for an instance
	ActionApprove ActionKind = "approve" // approve someone's request
	ActionDeny    ActionKind = "deny"    // deny someone's request
	// ActionStartLaunch is an approved launch about to call RunInstances:
	// its owner must still be within quota. Two approvals that raced each
	// other have both been written by then, so each sees the other: of two
	// launches that would exceed the quota together, at least one is
	// refused here, without any lock.
	ActionStartLaunch ActionKind = "start-launch"

	ActionStop      ActionKind = "stop" // act on an instance computebot launched
	ActionStart     ActionKind = "start"
	ActionTerminate ActionKind = "terminate"
	ActionExtend    ActionKind = "extend"
	ActionListAll   ActionKind = "list-all" // see everyone's instances
	// ActionConnect is asking how to reach an instance (/connect): its
	// owner's or an approver's.
	ActionConnect ActionKind = "connect"
	// ActionKeepUntil is /keep: no idle stops until Action.ExtendTo.
	ActionKeepUntil ActionKind = "keep-until"
	// ActionSchedule is /schedule: office hours (tag computebot:schedule).
	ActionSchedule ActionKind = "schedule"

	ActionInvoke ActionKind = "invoke" // run a Lambda function

	ActionKeep       ActionKind = "keep"      // Keep running: snooze an idle notice
	ActionIdleReport ActionKind = "idle"      // see the idle scheduler's report
	ActionAuditLog   ActionKind = "audit-log" // read the audit log
	ActionAutoStop   ActionKind = "auto-stop" // the scheduler stopping an idle or expired instance
	// ActionAutoStart is the scheduler starting an instance whose office
	// hours began.
	ActionAutoStart ActionKind = "auto-start"
)

// Action is one attempt by Actor (a Slack user ID, or
// computebot.SystemActor) to do Kind to Request, Instance or Function.
type Action struct {
	Kind     ActionKind
	Actor    string
	Request  *computebot.Request  // launch, approve, deny, start-launch
	Instance *computebot.Instance // stop, start, terminate, extend, keep, auto-stop
	Function string               // invoke
	// ExtendTo is the lease end an extend asks for.
	ExtendTo time.Time
}

// GroupMembers resolves a Slack user group to its members' user IDs
// (usergroups.users.list). Implemented by the Slack adapter.
type GroupMembers interface {
	UserGroupMembers(ctx context.Context, groupID string) ([]string, error)
}

// Usage counts what a user already has: pending or running instances plus
// approved requests that have no running instance yet, leaving out the
// request except (the one being decided). Implemented by the workflows
// (cloud + store).
type Usage interface {
	ActiveLaunches(ctx context.Context, owner, except string) (int, error)
}

// Authorizer applies the configuration's rules. Safe for concurrent use.
type Authorizer struct {
	cfg      *config.Config
	groups   GroupMembers
	usage    Usage
	groupTTL time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu    sync.Mutex
	cache map[string]groupEntry
}

type groupEntry struct {
	members []string
	fetched time.Time
}

// Options configure an Authorizer beyond the config.
type Options struct {
	Groups   GroupMembers
	Usage    Usage
	GroupTTL time.Duration // how long a resolved user group is trusted; default 5 min
	Now      func() time.Time
	Logger   *slog.Logger
}

// New returns an Authorizer for a validated config.
func New(cfg *config.Config, opts Options) *Authorizer {
	if opts.GroupTTL <= 0 {
		opts.GroupTTL = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Authorizer{
		cfg: cfg, groups: opts.Groups, usage: opts.Usage,
		groupTTL: opts.GroupTTL, now: opts.Now, log: opts.Logger,
		cache: map[string]groupEntry{},
	}
}

func deny(r Refusal) Decision { return Decision{Verdict: Deny, Refusal: r} }

var allow = Decision{Verdict: Allow}

// Precheck applies the rules that need no I/O, so that an obviously refused
// command is answered in the ack itself. A Deny here is final; anything else
// still has to pass Authorize.
func (a *Authorizer) Precheck(act Action) Decision {
	if act.Kind != ActionLaunch {
		return allow
	}
	if act.Request == nil || act.Request.Launch == nil {
		return deny(Refusal{Code: RefuseInternal, Action: act.Kind, Detail: "no launch request to check"})
	}
	l := act.Request.Launch
	launch := a.cfg.Launch
	if !slices.Contains(launch.AllowedTypes, l.InstanceType) {
		return deny(Refusal{Code: RefuseTypeNotAllowed, Action: act.Kind, Actor: act.Actor, InstanceType: l.InstanceType, Allowed: launch.AllowedTypes})
	}
	if maxLease := launch.MaxLease.Duration(); maxLease > 0 && l.Lease > maxLease {
		return deny(Refusal{Code: RefuseLeaseTooLong, Action: act.Kind, Actor: act.Actor, Lease: l.Lease, MaxLease: maxLease})
	}
	return allow
}

// Authorize decides act. An error means the decision could not be made (a
// Slack or AWS lookup failed); the decision is then a Deny too.
func (a *Authorizer) Authorize(ctx context.Context, act Action) (d Decision, err error) {
	defer func() {
		// A bug, never the user's doing: they hear "internal error", the
		// log has what went wrong.
		if d.Verdict == Deny && d.Refusal.Code == RefuseInternal {
			a.log.Error("policy: internal refusal", "action", act.Kind, "actor", act.Actor, "detail", d.Refusal.Detail)
		}
	}()
	if d := a.Precheck(act); d.Verdict == Deny {
		return d, nil
	}
	req := act.Request
	switch act.Kind {
	case ActionLaunch:
		if d, err := a.checkQuota(ctx, act, req.Requester); err != nil || d.Verdict == Deny {
			return d, err
		}
		if slices.Contains(a.cfg.Launch.AutoApproveTypes, req.Launch.InstanceType) {
			return allow, nil
		}
		return Decision{Verdict: NeedsApproval}, nil

	case ActionApprove, ActionDeny:
		if req == nil {
			return deny(Refusal{Code: RefuseInternal, Action: act.Kind, Detail: "no request to decide"}), nil
		}
		ok, err := a.IsApprover(ctx, act.Actor)
		if err != nil {
			return deny(Refusal{Code: RefuseApproversUnknown, Action: act.Kind, Actor: act.Actor}), err
		}
		if !ok {
			return deny(Refusal{Code: RefuseNotApprover, Action: act.Kind, Actor: act.Actor, RequestID: req.ID, Approvers: a.Approvers()}), nil
		}
		if act.Kind == ActionApprove && act.Actor == req.Requester && !a.cfg.AllowSelfApproval {
			return deny(Refusal{Code: RefuseSelfApproval, Action: act.Kind, Actor: act.Actor, RequestID: req.ID, Approvers: a.Approvers()}), nil
		}
		if act.Kind == ActionApprove && req.Launch != nil {
			// Quota is checked again at approval: pending requests do not
			// count, so several could otherwise be approved past the limit.
			return a.checkQuota(ctx, act, req.Requester)
		}
		return allow, nil

	case ActionStartLaunch:
		if req == nil || req.Launch == nil {
			return deny(Refusal{Code: RefuseInternal, Action: act.Kind, Detail: "no launch request to start"}), nil
		}
		return a.checkQuota(ctx, act, req.Requester)

	case ActionStop, ActionStart, ActionTerminate, ActionExtend, ActionKeep, ActionConnect, ActionKeepUntil, ActionSchedule:
		return a.authorizeInstance(ctx, act)

	case ActionAutoStop, ActionAutoStart:
		// Only the scheduler, and only on instances computebot launched.
		if act.Actor != computebot.SystemActor {
			return deny(Refusal{Code: RefuseInternal, Action: act.Kind, Actor: act.Actor, Detail: "only the scheduler stops instances on its own"}), nil
		}
		if act.Instance == nil || act.Instance.Tags[computebot.TagManaged] != "true" {
			id := ""
			if act.Instance != nil {
				id = act.Instance.ID
			}
			return deny(Refusal{Code: RefuseNotManaged, Action: act.Kind, Actor: act.Actor, InstanceID: id}), nil
		}
		return allow, nil

	case ActionListAll, ActionIdleReport, ActionAuditLog:
		ok, err := a.IsApprover(ctx, act.Actor)
		if err != nil || !ok {
			return deny(Refusal{Code: RefuseApproversOnly, Action: act.Kind, Actor: act.Actor, Approvers: a.Approvers()}), err
		}
		return allow, nil

	case ActionInvoke:
		if !a.FunctionAllowed(act.Function) {
			// Worded exactly like a missing function: the allowlist
			// leaks nothing.
			return deny(Refusal{Code: RefuseFunctionNotFound, Action: act.Kind, Actor: act.Actor, Function: act.Function}), nil
		}
		if matchAny(a.cfg.Lambda.RequireApproval, act.Function) {
			return Decision{Verdict: NeedsApproval}, nil
		}
		return allow, nil
	}
	return deny(Refusal{Code: RefuseInternal, Action: act.Kind, Detail: fmt.Sprintf("unknown action %q", act.Kind)}), nil
}

// authorizeInstance: only instances computebot launched, and only their
// owner or an approver; an owner's extension stays within the maximum lease.
func (a *Authorizer) authorizeInstance(ctx context.Context, act Action) (Decision, error) {
	inst := act.Instance
	if inst == nil {
		return deny(Refusal{Code: RefuseInternal, Action: act.Kind, Detail: "no instance to check"}), nil
	}
	if inst.Tags[computebot.TagManaged] != "true" {
		return deny(Refusal{Code: RefuseNotManaged, Action: act.Kind, Actor: act.Actor, InstanceID: inst.ID}), nil
	}
	owner := inst.Tags[computebot.TagOwner]
	approver, err := a.IsApprover(ctx, act.Actor)
	if err != nil && act.Actor != owner {
		return deny(Refusal{Code: RefuseApproversUnknown, Action: act.Kind, Actor: act.Actor}), err
	}
	if act.Actor != owner && !approver {
		return deny(Refusal{Code: RefuseNotOwner, Action: act.Kind, Actor: act.Actor, InstanceID: inst.ID, Owner: owner, Approvers: a.Approvers()}), nil
	}
	if maxKeep := a.cfg.Idle.MaxKeep.Duration(); act.Kind == ActionKeepUntil && !approver && maxKeep > 0 {
		if keep := act.ExtendTo.Sub(a.now()); keep > maxKeep+time.Minute {
			return deny(Refusal{Code: RefuseKeepTooLong, Action: act.Kind, Actor: act.Actor, InstanceID: inst.ID,
				Lease: keep.Round(time.Hour), MaxLease: maxKeep, Approvers: a.Approvers()}), nil
		}
	}
	maxLease := a.cfg.Launch.MaxLease.Duration()
	if act.Kind == ActionExtend && !approver && maxLease > 0 && !inst.LaunchTime.IsZero() {
		if lease := act.ExtendTo.Sub(inst.LaunchTime); lease > maxLease {
			return deny(Refusal{Code: RefuseExtendTooFar, Action: act.Kind, Actor: act.Actor, InstanceID: inst.ID,
				Lease: lease.Round(time.Hour), MaxLease: maxLease, Latest: inst.LaunchTime.Add(maxLease), Approvers: a.Approvers()}), nil
		}
	}
	return allow, nil
}

// FunctionAllowed reports whether a Lambda function may be listed and invoked.
func (a *Authorizer) FunctionAllowed(name string) bool {
	return matchAny(a.cfg.Lambda.AllowedFunctions, name)
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

// checkQuota refuses when owner is at the limit, counting everything they
// have but the request being decided.
func (a *Authorizer) checkQuota(ctx context.Context, act Action, owner string) (Decision, error) {
	limit := a.cfg.Launch.MaxRunningPerUser
	if limit <= 0 || a.usage == nil {
		return allow, nil
	}
	except := ""
	if act.Request != nil {
		except = act.Request.ID
	}
	n, err := a.usage.ActiveLaunches(ctx, owner, except)
	if err != nil {
		return deny(Refusal{Code: RefuseQuotaUnknown, Action: act.Kind, Actor: act.Actor, Owner: owner}),
			fmt.Errorf("policy: count active launches of %s: %w", owner, err)
	}
	if n < limit {
		return allow, nil
	}
	return deny(Refusal{Code: RefuseQuota, Action: act.Kind, Actor: act.Actor, RequestID: except, Owner: owner, Count: n, Limit: limit}), nil
}

// IsApprover reports whether user is listed directly or through a user group.
func (a *Authorizer) IsApprover(ctx context.Context, user string) (bool, error) {
	if user == "" {
		return false, nil
	}
	if slices.Contains(a.cfg.Approvers, user) {
		return true, nil
	}
	var firstErr error
	for _, id := range a.cfg.Approvers {
		if !strings.HasPrefix(id, "S") {
			continue
		}
		members, err := a.groupMembers(ctx, id)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if slices.Contains(members, user) {
			return true, nil
		}
	}
	return false, firstErr
}

func (a *Authorizer) groupMembers(ctx context.Context, group string) ([]string, error) {
	a.mu.Lock()
	e, ok := a.cache[group]
	a.mu.Unlock()
	if ok && a.now().Sub(e.fetched) < a.groupTTL {
		return e.members, nil
	}
	if a.groups == nil {
		return nil, fmt.Errorf("policy: user group %s: no resolver configured", group)
	}
	members, err := a.groups.UserGroupMembers(ctx, group)
	if err != nil {
		if ok {
			// A stale answer beats locking every approver out while Slack
			// hiccups; it is at most one refresh old.
			a.log.Warn("using stale user group members", "group", group, "err", err)
			return e.members, nil
		}
		return nil, fmt.Errorf("policy: resolve user group %s: %w", group, err)
	}
	a.mu.Lock()
	a.cache[group] = groupEntry{members: members, fetched: a.now()}
	a.mu.Unlock()
	return members, nil
}

// Approvers are the configured approvers: Slack user IDs and user-group IDs.
func (a *Authorizer) Approvers() []string { return slices.Clone(a.cfg.Approvers) }

// AllowsSelfApproval reports whether requesters may approve their own requests.
func (a *Authorizer) AllowsSelfApproval() bool { return a.cfg.AllowSelfApproval }
