// Package policy is the one place where computebot decides who may do what.
// Every action that changes the cloud (or moves a request towards it) asks
// Authorize first; the bot never re-implements a rule on its own.
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
)

// Verdict is the outcome of an authorization.
type Verdict int

const (
	// Deny: the action is refused; Decision.Reason says why, in words for
	// the person who acted.
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

// Decision is a verdict with the reason to show when it is a refusal.
type Decision struct {
	Verdict Verdict
	Reason  string
}

// ActionKind names what someone is trying to do.
type ActionKind string

const (
	ActionLaunch  ActionKind = "launch"  // ask for an instance
	ActionApprove ActionKind = "approve" // approve someone's request
	ActionDeny    ActionKind = "deny"    // deny someone's request

	ActionStop      ActionKind = "stop" // act on an instance computebot launched
	ActionStart     ActionKind = "start"
	ActionTerminate ActionKind = "terminate"
	ActionExtend    ActionKind = "extend"
	ActionListAll   ActionKind = "list-all" // see everyone's instances

	ActionInvoke ActionKind = "invoke" // run a Lambda function

	ActionKeep       ActionKind = "keep"      // Keep running: snooze an idle notice
	ActionIdleReport ActionKind = "idle"      // see the idle scheduler's report
	ActionAutoStop   ActionKind = "auto-stop" // the scheduler stopping an idle or expired instance
)

// SystemActor is the actor of the bot's own actions (the idle scheduler).
const SystemActor = "computebot"

// Action is one attempt by Actor (a Slack user ID) to do Kind to Request,
// Instance or Function.
type Action struct {
	Kind     ActionKind
	Actor    string
	Request  *computebot.Request  // launch, approve, deny
	Instance *computebot.Instance // stop, start, terminate, extend
	Function string               // invoke
	// ExtendTo is the lease end an extend asks for.
	ExtendTo time.Time
}

// Rules is the part of the configuration policy applies.
type Rules struct {
	Approvers         []string // Slack user IDs (U…/W…) and user-group IDs (S…)
	AllowSelfApproval bool
	AllowedTypes      []string
	AutoApproveTypes  []string
	MaxRunningPerUser int
	MaxLease          time.Duration // longest lease a request may ask for; 0 = no limit

	AllowedFunctions []string // glob patterns of invocable Lambda functions
	RequireApproval  []string // glob patterns of functions that need an approver first
}

// GroupMembers resolves a Slack user group to its members' user IDs
// (usergroups.users.list). Implemented by the bot.
type GroupMembers interface {
	UserGroupMembers(ctx context.Context, groupID string) ([]string, error)
}

// Usage counts what a user already has: pending or running instances plus
// approved requests not launched yet. Implemented by the bot (cloud + store).
type Usage interface {
	ActiveLaunches(ctx context.Context, owner string) (int, error)
}

// Authorizer applies Rules. Safe for concurrent use.
type Authorizer struct {
	rules    Rules
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

// Options configure an Authorizer beyond its Rules.
type Options struct {
	Groups   GroupMembers
	Usage    Usage
	GroupTTL time.Duration // how long a resolved user group is trusted; default 5 min
	Now      func() time.Time
	Logger   *slog.Logger
}

// New returns an Authorizer for rules.
func New(rules Rules, opts Options) *Authorizer {
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
		rules: rules, groups: opts.Groups, usage: opts.Usage,
		groupTTL: opts.GroupTTL, now: opts.Now, log: opts.Logger,
		cache: map[string]groupEntry{},
	}
}

// Precheck applies the rules that need no I/O, so that an obviously refused
// command is answered in the ack itself. A Deny here is final; anything else
// still has to pass Authorize.
func (a *Authorizer) Precheck(act Action) Decision {
	switch act.Kind {
	case ActionLaunch:
		if act.Request == nil {
			return Decision{Deny, "internal error: no request to check"}
		}
		if !slices.Contains(a.rules.AllowedTypes, act.Request.InstanceType) {
			return Decision{Deny, fmt.Sprintf("`%s` is not an allowed instance type. Allowed types: %s. Try `/launch %s`.",
				act.Request.InstanceType, codeList(a.rules.AllowedTypes), firstOr(a.rules.AllowedTypes, "t2.micro"))}
		}
		if a.rules.MaxLease > 0 && act.Request.Lease > a.rules.MaxLease {
			return Decision{Deny, fmt.Sprintf("A lease of %s is longer than the maximum of %s. Use `--hours %d` or less.",
				fmtHours(act.Request.Lease), fmtHours(a.rules.MaxLease), int(a.rules.MaxLease/time.Hour))}
		}
	}
	return Decision{Verdict: Allow}
}

// Authorize decides act. An error means the decision could not be made (a
// Slack or AWS lookup failed); callers refuse in that case too.
func (a *Authorizer) Authorize(ctx context.Context, act Action) (Decision, error) {
	if d := a.Precheck(act); d.Verdict == Deny {
		return d, nil
	}
	req := act.Request
	switch act.Kind {
	case ActionLaunch:
		if d, err := a.checkQuota(ctx, req.Requester, true); err != nil || d.Verdict == Deny {
			return d, err
		}
		if slices.Contains(a.rules.AutoApproveTypes, req.InstanceType) {
			return Decision{Verdict: Allow}, nil
		}
		return Decision{Verdict: NeedsApproval}, nil

	case ActionApprove, ActionDeny:
		if req == nil {
			return Decision{Deny, "internal error: no request to decide"}, nil
		}
		ok, err := a.IsApprover(ctx, act.Actor)
		if err != nil {
			return Decision{Deny, "I could not check the approver list right now; please try again in a minute."}, err
		}
		if !ok {
			return Decision{Deny, fmt.Sprintf("Only approvers can %s requests (%s). Ask one of them to look at request %s.",
				act.Kind, a.ApproverMentions(), req.ID)}, nil
		}
		if act.Kind == ActionApprove && act.Actor == req.Requester && !a.rules.AllowSelfApproval {
			return Decision{Deny, fmt.Sprintf("You can't approve your own request %s. Ask another approver (%s).",
				req.ID, a.ApproverMentions())}, nil
		}
		if act.Kind == ActionApprove && req.Kind == computebot.KindLaunch {
			// Quota is checked again at approval: pending requests do not
			// count, so several could otherwise be approved past the limit.
			return a.checkQuota(ctx, req.Requester, false)
		}
		return Decision{Verdict: Allow}, nil

	case ActionStop, ActionStart, ActionTerminate, ActionExtend, ActionKeep:
		return a.authorizeInstance(ctx, act)

	case ActionAutoStop:
		// Only the scheduler, and only on instances computebot launched.
		if act.Actor != SystemActor {
			return Decision{Deny, "internal error: only the scheduler stops instances on its own"}, nil
		}
		if act.Instance == nil || act.Instance.Tags[computebot.TagManaged] != "true" {
			return Decision{Deny, "not launched by computebot"}, nil
		}
		return Decision{Verdict: Allow}, nil

	case ActionListAll, ActionIdleReport:
		ok, err := a.IsApprover(ctx, act.Actor)
		if err != nil || !ok {
			if act.Kind == ActionIdleReport {
				return Decision{Deny, fmt.Sprintf("Only approvers can see the idle report (%s).", a.ApproverMentions())}, err
			}
			return Decision{Deny, fmt.Sprintf("Only approvers can list everyone's instances (%s). `/instances` without `--all` lists yours.", a.ApproverMentions())}, err
		}
		return Decision{Verdict: Allow}, nil

	case ActionInvoke:
		if !a.FunctionAllowed(act.Function) {
			return Decision{Deny, FunctionNotFound(act.Function)}, nil
		}
		if matchAny(a.rules.RequireApproval, act.Function) {
			return Decision{Verdict: NeedsApproval}, nil
		}
		return Decision{Verdict: Allow}, nil
	}
	return Decision{Deny, fmt.Sprintf("internal error: unknown action %q", act.Kind)}, nil
}

// authorizeInstance: only instances computebot launched, and only their
// owner or an approver; an owner's extension stays within MaxLease.
func (a *Authorizer) authorizeInstance(ctx context.Context, act Action) (Decision, error) {
	inst := act.Instance
	if inst == nil {
		return Decision{Deny, "internal error: no instance to check"}, nil
	}
	if inst.Tags[computebot.TagManaged] != "true" {
		return Decision{Deny, fmt.Sprintf("`%s` was not launched by computebot, so I won't %s it. I only act on instances I launched.", inst.ID, act.Kind)}, nil
	}
	owner := inst.Tags[computebot.TagOwner]
	approver, err := a.IsApprover(ctx, act.Actor)
	if err != nil && act.Actor != owner {
		return Decision{Deny, "I could not check the approver list right now; please try again in a minute."}, err
	}
	if act.Actor != owner && !approver {
		return Decision{Deny, fmt.Sprintf("`%s` belongs to <@%s>. Only its owner or an approver (%s) can %s it.", inst.ID, owner, a.ApproverMentions(), act.Kind)}, nil
	}
	if act.Kind == ActionExtend && !approver && a.rules.MaxLease > 0 && !inst.LaunchTime.IsZero() {
		if lease := act.ExtendTo.Sub(inst.LaunchTime); lease > a.rules.MaxLease {
			latest := inst.LaunchTime.Add(a.rules.MaxLease)
			return Decision{Deny, fmt.Sprintf("That would make the lease of `%s` %s long; the maximum is %s, i.e. until %s. Ask an approver (%s) to extend it further.",
				inst.ID, fmtHours(lease.Round(time.Hour)), fmtHours(a.rules.MaxLease), latest.UTC().Format("2006-01-02 15:04 UTC"), a.ApproverMentions())}, nil
		}
	}
	return Decision{Verdict: Allow}, nil
}

// FunctionAllowed reports whether a Lambda function may be listed and invoked.
func (a *Authorizer) FunctionAllowed(name string) bool {
	return matchAny(a.rules.AllowedFunctions, name)
}

// FunctionNotFound is the refusal for a function outside the allowlist:
// worded exactly like a missing function, so the allowlist leaks nothing.
func FunctionNotFound(name string) string {
	return fmt.Sprintf("Lambda function `%s` does not exist (or is not available through computebot). `/lambda list` shows the ones you can invoke.", name)
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

// checkQuota refuses when owner is at the limit. self tells whether the
// owner is the one acting (a /launch) or an approver is acting for them.
func (a *Authorizer) checkQuota(ctx context.Context, owner string, self bool) (Decision, error) {
	if a.rules.MaxRunningPerUser <= 0 || a.usage == nil {
		return Decision{Verdict: Allow}, nil
	}
	n, err := a.usage.ActiveLaunches(ctx, owner)
	if err != nil {
		return Decision{Deny, "I could not count running instances right now (AWS did not answer); please try again in a minute."},
			fmt.Errorf("policy: count active launches of %s: %w", owner, err)
	}
	if n < a.rules.MaxRunningPerUser {
		return Decision{Verdict: Allow}, nil
	}
	if self {
		return Decision{Deny, fmt.Sprintf("You already have %d pending or running instances (counting approved requests not launched yet); the limit is %d per person. Stop or terminate one, then try again.",
			n, a.rules.MaxRunningPerUser)}, nil
	}
	return Decision{Deny, fmt.Sprintf("<@%s> already has %d pending or running instances (counting approved requests not launched yet); the limit is %d per person. Approving would exceed it: ask them to stop one first.",
		owner, n, a.rules.MaxRunningPerUser)}, nil
}

// IsApprover reports whether user is listed directly or through a user group.
func (a *Authorizer) IsApprover(ctx context.Context, user string) (bool, error) {
	if user == "" {
		return false, nil
	}
	var firstErr error
	for _, id := range a.rules.Approvers {
		if id == user {
			return true, nil
		}
	}
	for _, id := range a.rules.Approvers {
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

// ApproverMentions renders the approver list as Slack mentions.
func (a *Authorizer) ApproverMentions() string {
	parts := make([]string, 0, len(a.rules.Approvers))
	for _, id := range a.rules.Approvers {
		if strings.HasPrefix(id, "S") {
			parts = append(parts, fmt.Sprintf("<!subteam^%s>", id))
		} else {
			parts = append(parts, fmt.Sprintf("<@%s>", id))
		}
	}
	return strings.Join(parts, ", ")
}

// AutoApproves reports whether instanceType launches without a click.
func (a *Authorizer) AutoApproves(instanceType string) bool {
	return slices.Contains(a.rules.AutoApproveTypes, instanceType)
}

func codeList(items []string) string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = "`" + s + "`"
	}
	return strings.Join(out, ", ")
}

func firstOr(items []string, def string) string {
	if len(items) > 0 {
		return items[0]
	}
	return def
}

func fmtHours(d time.Duration) string {
	return fmt.Sprintf("%d h", int(d/time.Hour))
}
