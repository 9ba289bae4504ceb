package policy_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/policy"
)

type groups map[string][]string

func (g groups) UserGroupMembers(_ context.Context, id string) ([]string, error) {
	m, ok := g[id]
	if !ok {
		return nil, errors.New("no_such_subteam")
	}
	return m, nil
}

type fixedUsage map[string]int

func (u fixedUsage) ActiveLaunches(_ context.Context, owner, _ string) (int, error) {
	return u[owner], nil
}

// rules is a validated config with the given changes.
func rules(t *testing.T, change func(*config.Config)) *config.Config {
	t.Helper()
	c := config.Default()
	c.Approvers = []string{"UBO", "SPLATFORM"}
	c.Launch.AllowedTypes = []string{"t2.micro", "t3.small"}
	c.Launch.AutoApproveTypes = []string{"t2.micro"}
	c.Launch.AMI = "ami-0123456789abcdef0"
	c.Launch.MaxRunningPerUser = 2
	c.Launch.MaxLease = config.Duration(72 * time.Hour)
	if change != nil {
		change(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func newAuthz(t *testing.T, u fixedUsage) *policy.Authorizer {
	t.Helper()
	return policy.New(rules(t, nil), policy.Options{Groups: groups{"SPLATFORM": {"UCARL", "UANA"}}, Usage: u})
}

func TestAuthorize(t *testing.T) {
	ctx := context.Background()
	req := func(typ string) *computebot.Request {
		return &computebot.Request{ID: "R-1", Requester: "UANA", Launch: &computebot.LaunchRequest{InstanceType: typ, Lease: 4 * time.Hour}}
	}
	approvers := []string{"UBO", "SPLATFORM"}
	cases := []struct {
		name    string
		usage   fixedUsage
		act     policy.Action
		verdict policy.Verdict
		refusal policy.Refusal
	}{
		{"auto-approved type", nil, policy.Action{Kind: policy.ActionLaunch, Actor: "UANA", Request: req("t2.micro")}, policy.Allow, policy.Refusal{}},
		{"needs approval", nil, policy.Action{Kind: policy.ActionLaunch, Actor: "UANA", Request: req("t3.small")}, policy.NeedsApproval, policy.Refusal{}},
		{"type not allowed", nil, policy.Action{Kind: policy.ActionLaunch, Actor: "UANA", Request: req("p5.48xlarge")}, policy.Deny,
			policy.Refusal{Code: policy.RefuseTypeNotAllowed, Action: policy.ActionLaunch, Actor: "UANA", InstanceType: "p5.48xlarge", Allowed: []string{"t2.micro", "t3.small"}}},
		{"quota reached", fixedUsage{"UANA": 2}, policy.Action{Kind: policy.ActionLaunch, Actor: "UANA", Request: req("t3.small")}, policy.Deny,
			policy.Refusal{Code: policy.RefuseQuota, Action: policy.ActionLaunch, Actor: "UANA", RequestID: "R-1", Owner: "UANA", Count: 2, Limit: 2}},
		{"direct approver", nil, policy.Action{Kind: policy.ActionApprove, Actor: "UBO", Request: req("t3.small")}, policy.Allow, policy.Refusal{}},
		{"group approver", nil, policy.Action{Kind: policy.ActionApprove, Actor: "UCARL", Request: req("t3.small")}, policy.Allow, policy.Refusal{}},
		{"stranger", nil, policy.Action{Kind: policy.ActionApprove, Actor: "UEVE", Request: req("t3.small")}, policy.Deny,
			policy.Refusal{Code: policy.RefuseNotApprover, Action: policy.ActionApprove, Actor: "UEVE", RequestID: "R-1", Approvers: approvers}},
		{"stranger deny", nil, policy.Action{Kind: policy.ActionDeny, Actor: "UEVE", Request: req("t3.small")}, policy.Deny,
			policy.Refusal{Code: policy.RefuseNotApprover, Action: policy.ActionDeny, Actor: "UEVE", RequestID: "R-1", Approvers: approvers}},
		{"self approval", nil, policy.Action{Kind: policy.ActionApprove, Actor: "UANA", Request: req("t3.small")}, policy.Deny,
			policy.Refusal{Code: policy.RefuseSelfApproval, Action: policy.ActionApprove, Actor: "UANA", RequestID: "R-1", Approvers: approvers}},
		{"approval over quota", fixedUsage{"UANA": 2}, policy.Action{Kind: policy.ActionApprove, Actor: "UBO", Request: req("t3.small")}, policy.Deny,
			policy.Refusal{Code: policy.RefuseQuota, Action: policy.ActionApprove, Actor: "UBO", RequestID: "R-1", Owner: "UANA", Count: 2, Limit: 2}},
		{"deny ignores quota", fixedUsage{"UANA": 5}, policy.Action{Kind: policy.ActionDeny, Actor: "UBO", Request: req("t3.small")}, policy.Allow, policy.Refusal{}},
		{"start within quota", fixedUsage{"UANA": 1}, policy.Action{Kind: policy.ActionStartLaunch, Actor: "UBO", Request: req("t3.small")}, policy.Allow, policy.Refusal{}},
		{"start over quota (a raced approval)", fixedUsage{"UANA": 2}, policy.Action{Kind: policy.ActionStartLaunch, Actor: "UBO", Request: req("t3.small")}, policy.Deny,
			policy.Refusal{Code: policy.RefuseQuota, Action: policy.ActionStartLaunch, Actor: "UBO", RequestID: "R-1", Owner: "UANA", Count: 2, Limit: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newAuthz(t, tc.usage).Authorize(ctx, tc.act)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict {
				t.Fatalf("verdict = %v (%+v), want %v", d.Verdict, d.Refusal, tc.verdict)
			}
			if !reflect.DeepEqual(d.Refusal, tc.refusal) {
				t.Fatalf("refusal = %+v, want %+v", d.Refusal, tc.refusal)
			}
		})
	}
}

func TestPrecheckLease(t *testing.T) {
	a := newAuthz(t, nil)
	d := a.Precheck(policy.Action{Kind: policy.ActionLaunch, Request: &computebot.Request{Launch: &computebot.LaunchRequest{InstanceType: "t2.micro", Lease: 100 * time.Hour}}})
	if d.Verdict != policy.Deny || d.Refusal.Code != policy.RefuseLeaseTooLong || d.Refusal.MaxLease != 72*time.Hour || d.Refusal.Lease != 100*time.Hour {
		t.Fatalf("got %+v", d)
	}
}

type countingGroups struct {
	calls int
	fail  bool
}

func (c *countingGroups) UserGroupMembers(context.Context, string) ([]string, error) {
	c.calls++
	if c.fail {
		return nil, errors.New("slack down")
	}
	return []string{"UCARL"}, nil
}

func TestGroupMembersCachedAndStaleOnError(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	g := &countingGroups{}
	a := policy.New(rules(t, func(c *config.Config) { c.Approvers = []string{"SOPS"} }), policy.Options{Groups: g, GroupTTL: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	for range 3 {
		if ok, err := a.IsApprover(ctx, "UCARL"); !ok || err != nil {
			t.Fatalf("IsApprover = %v, %v", ok, err)
		}
	}
	if g.calls != 1 {
		t.Fatalf("usergroups.users.list calls = %d, want 1 (cached)", g.calls)
	}
	now = now.Add(2 * time.Minute)
	g.fail = true
	if ok, _ := a.IsApprover(ctx, "UCARL"); !ok {
		t.Fatal("a failed refresh should fall back to the cached members")
	}
	if g.calls != 2 {
		t.Fatalf("calls = %d, want a refresh attempt", g.calls)
	}
}

func TestUnresolvableGroupIsAnError(t *testing.T) {
	a := policy.New(rules(t, func(c *config.Config) { c.Approvers = []string{"SNOPE"} }), policy.Options{Groups: groups{}})
	d, err := a.Authorize(context.Background(), policy.Action{Kind: policy.ActionApprove, Actor: "UX", Request: &computebot.Request{ID: "R-1", Requester: "UY"}})
	if err == nil || d.Verdict != policy.Deny || d.Refusal.Code != policy.RefuseApproversUnknown {
		t.Fatalf("got %+v, %v; want deny with error", d, err)
	}
}

func TestAuthorizeInstanceActions(t *testing.T) {
	launched := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	managed := &computebot.Instance{ID: "i-0123456789abcdef0", LaunchTime: launched,
		Tags: map[string]string{computebot.TagManaged: "true", computebot.TagOwner: "UDAN"}}
	foreign := &computebot.Instance{ID: "i-0fedcba9876543210", Tags: map[string]string{computebot.TagOwner: "UDAN"}}
	a := newAuthz(t, nil)
	approvers := []string{"UBO", "SPLATFORM"}
	cases := []struct {
		name    string
		act     policy.Action
		verdict policy.Verdict
		refusal policy.Refusal
	}{
		{"owner stops", policy.Action{Kind: policy.ActionStop, Actor: "UDAN", Instance: managed}, policy.Allow, policy.Refusal{}},
		{"approver terminates", policy.Action{Kind: policy.ActionTerminate, Actor: "UBO", Instance: managed}, policy.Allow, policy.Refusal{}},
		{"group approver starts", policy.Action{Kind: policy.ActionStart, Actor: "UCARL", Instance: managed}, policy.Allow, policy.Refusal{}},
		{"stranger stops", policy.Action{Kind: policy.ActionStop, Actor: "UEVE", Instance: managed}, policy.Deny,
			policy.Refusal{Code: policy.RefuseNotOwner, Action: policy.ActionStop, Actor: "UEVE", InstanceID: managed.ID, Owner: "UDAN", Approvers: approvers}},
		{"not launched by computebot", policy.Action{Kind: policy.ActionStop, Actor: "UBO", Instance: foreign}, policy.Deny,
			policy.Refusal{Code: policy.RefuseNotManaged, Action: policy.ActionStop, Actor: "UBO", InstanceID: foreign.ID}},
		{"owner extends within the cap", policy.Action{Kind: policy.ActionExtend, Actor: "UDAN", Instance: managed, ExtendTo: launched.Add(72 * time.Hour)}, policy.Allow, policy.Refusal{}},
		{"owner extends past the cap", policy.Action{Kind: policy.ActionExtend, Actor: "UDAN", Instance: managed, ExtendTo: launched.Add(80 * time.Hour)}, policy.Deny,
			policy.Refusal{Code: policy.RefuseExtendTooFar, Action: policy.ActionExtend, Actor: "UDAN", InstanceID: managed.ID,
				Lease: 80 * time.Hour, MaxLease: 72 * time.Hour, Latest: launched.Add(72 * time.Hour), Approvers: approvers}},
		{"approver extends past the cap", policy.Action{Kind: policy.ActionExtend, Actor: "UBO", Instance: managed, ExtendTo: launched.Add(200 * time.Hour)}, policy.Allow, policy.Refusal{}},
		{"list all as approver", policy.Action{Kind: policy.ActionListAll, Actor: "UBO"}, policy.Allow, policy.Refusal{}},
		{"list all as stranger", policy.Action{Kind: policy.ActionListAll, Actor: "UEVE"}, policy.Deny,
			policy.Refusal{Code: policy.RefuseApproversOnly, Action: policy.ActionListAll, Actor: "UEVE", Approvers: approvers}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := a.Authorize(context.Background(), tc.act)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict || !reflect.DeepEqual(d.Refusal, tc.refusal) {
				t.Fatalf("got %v %+v, want %v %+v", d.Verdict, d.Refusal, tc.verdict, tc.refusal)
			}
		})
	}
}

func TestAuthorizeInvoke(t *testing.T) {
	a := policy.New(rules(t, func(c *config.Config) {
		c.Approvers = []string{"UBO"}
		c.Lambda.AllowedFunctions = []string{"report-*", "etl"}
		c.Lambda.RequireApproval = []string{"etl"}
	}), policy.Options{})
	ctx := context.Background()
	for name, want := range map[string]policy.Verdict{"report-daily": policy.Allow, "etl": policy.NeedsApproval, "billing": policy.Deny} {
		d, err := a.Authorize(ctx, policy.Action{Kind: policy.ActionInvoke, Actor: "UANA", Function: name})
		if err != nil || d.Verdict != want {
			t.Errorf("%s: %v %+v, %v; want %v", name, d.Verdict, d.Refusal, err, want)
		}
		if want == policy.Deny && (d.Refusal.Code != policy.RefuseFunctionNotFound || d.Refusal.Function != name) {
			t.Errorf("a disallowed function must look like a missing one: %+v", d.Refusal)
		}
	}
}

func TestAuthorizeSchedulerAndKeep(t *testing.T) {
	a := newAuthz(t, nil)
	ctx := context.Background()
	managed := &computebot.Instance{ID: "i-0123456789abcdef0", Tags: map[string]string{computebot.TagManaged: "true", computebot.TagOwner: "UDAN"}}
	foreign := &computebot.Instance{ID: "i-0fedcba9876543210"}
	cases := []struct {
		act  policy.Action
		want policy.Verdict
	}{
		{policy.Action{Kind: policy.ActionAutoStop, Actor: computebot.SystemActor, Instance: managed}, policy.Allow},
		{policy.Action{Kind: policy.ActionAutoStop, Actor: computebot.SystemActor, Instance: foreign}, policy.Deny},
		{policy.Action{Kind: policy.ActionAutoStop, Actor: "UBO", Instance: managed}, policy.Deny},
		{policy.Action{Kind: policy.ActionKeep, Actor: "UDAN", Instance: managed}, policy.Allow},
		{policy.Action{Kind: policy.ActionKeep, Actor: "UBO", Instance: managed}, policy.Allow},
		{policy.Action{Kind: policy.ActionKeep, Actor: "UEVE", Instance: managed}, policy.Deny},
		{policy.Action{Kind: policy.ActionIdleReport, Actor: "UBO"}, policy.Allow},
		{policy.Action{Kind: policy.ActionIdleReport, Actor: "UEVE"}, policy.Deny},
	}
	for _, tc := range cases {
		d, err := a.Authorize(ctx, tc.act)
		if err != nil || d.Verdict != tc.want {
			t.Errorf("%s by %s: %v %+v %v, want %v", tc.act.Kind, tc.act.Actor, d.Verdict, d.Refusal, err, tc.want)
		}
	}
}

// TestAuthorizeAuditLog: only approvers read the audit log, directly or
// through a group; a group that cannot be resolved refuses, with the error.
func TestAuthorizeAuditLog(t *testing.T) {
	ctx := context.Background()
	a := newAuthz(t, nil)
	for actor, want := range map[string]policy.Verdict{"UBO": policy.Allow, "UCARL": policy.Allow, "UEVE": policy.Deny, "": policy.Deny, computebot.SystemActor: policy.Deny} {
		d, err := a.Authorize(ctx, policy.Action{Kind: policy.ActionAuditLog, Actor: actor})
		if err != nil || d.Verdict != want {
			t.Errorf("%q: %v %+v %v, want %v", actor, d.Verdict, d.Refusal, err, want)
		}
		if want == policy.Deny {
			wantRefusal := policy.Refusal{Code: policy.RefuseApproversOnly, Action: policy.ActionAuditLog, Actor: actor, Approvers: []string{"UBO", "SPLATFORM"}}
			if !reflect.DeepEqual(d.Refusal, wantRefusal) {
				t.Errorf("%q: refusal %+v, want %+v", actor, d.Refusal, wantRefusal)
			}
		}
	}
	broken := policy.New(rules(t, nil), policy.Options{Groups: groups{}})
	d, err := broken.Authorize(ctx, policy.Action{Kind: policy.ActionAuditLog, Actor: "UCARL"})
	if err == nil || d.Verdict != policy.Deny || d.Refusal.Code != policy.RefuseApproversOnly {
		t.Errorf("unresolvable group: %v %+v %v, want a refusal and the error", d.Verdict, d.Refusal, err)
	}
	if d, err := broken.Authorize(ctx, policy.Action{Kind: policy.ActionAuditLog, Actor: "UBO"}); err != nil || d.Verdict != policy.Allow {
		t.Errorf("a direct approver needs no group: %v %v", d.Verdict, err)
	}
}
