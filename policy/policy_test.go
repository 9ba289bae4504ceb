package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
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

func (u fixedUsage) ActiveLaunches(_ context.Context, owner string) (int, error) {
	return u[owner], nil
}

func newAuthz(t *testing.T, u fixedUsage) *policy.Authorizer {
	t.Helper()
	return policy.New(policy.Rules{
		Approvers:         []string{"UBO", "SPLATFORM"},
		AllowedTypes:      []string{"t2.micro", "t3.small"},
		AutoApproveTypes:  []string{"t2.micro"},
		MaxRunningPerUser: 2,
		MaxLease:          72 * time.Hour,
	}, policy.Options{Groups: groups{"SPLATFORM": {"UCARL", "UANA"}}, Usage: u})
}

func TestAuthorize(t *testing.T) {
	ctx := context.Background()
	req := func(typ string) *computebot.Request {
		return &computebot.Request{ID: "R-1", Requester: "UANA", InstanceType: typ, Lease: 4 * time.Hour}
	}
	cases := []struct {
		name    string
		usage   fixedUsage
		act     policy.Action
		verdict policy.Verdict
		reason  string
	}{
		{"auto-approved type", nil, policy.Action{Kind: policy.ActionLaunch, Actor: "UANA", Request: req("t2.micro")}, policy.Allow, ""},
		{"needs approval", nil, policy.Action{Kind: policy.ActionLaunch, Actor: "UANA", Request: req("t3.small")}, policy.NeedsApproval, ""},
		{"type not allowed", nil, policy.Action{Kind: policy.ActionLaunch, Actor: "UANA", Request: req("p5.48xlarge")}, policy.Deny, "Allowed types: `t2.micro`, `t3.small`"},
		{"quota reached", fixedUsage{"UANA": 2}, policy.Action{Kind: policy.ActionLaunch, Actor: "UANA", Request: req("t3.small")}, policy.Deny, "the limit is 2 per person"},
		{"direct approver", nil, policy.Action{Kind: policy.ActionApprove, Actor: "UBO", Request: req("t3.small")}, policy.Allow, ""},
		{"group approver", nil, policy.Action{Kind: policy.ActionApprove, Actor: "UCARL", Request: req("t3.small")}, policy.Allow, ""},
		{"stranger", nil, policy.Action{Kind: policy.ActionApprove, Actor: "UEVE", Request: req("t3.small")}, policy.Deny, "Only approvers can approve"},
		{"stranger deny", nil, policy.Action{Kind: policy.ActionDeny, Actor: "UEVE", Request: req("t3.small")}, policy.Deny, "Only approvers can deny"},
		{"self approval", nil, policy.Action{Kind: policy.ActionApprove, Actor: "UANA", Request: req("t3.small")}, policy.Deny, "can't approve your own request"},
		{"approval over quota", fixedUsage{"UANA": 2}, policy.Action{Kind: policy.ActionApprove, Actor: "UBO", Request: req("t3.small")}, policy.Deny, "<@UANA> already has 2"},
		{"deny ignores quota", fixedUsage{"UANA": 5}, policy.Action{Kind: policy.ActionDeny, Actor: "UBO", Request: req("t3.small")}, policy.Allow, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newAuthz(t, tc.usage).Authorize(ctx, tc.act)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict {
				t.Fatalf("verdict = %v (%q), want %v", d.Verdict, d.Reason, tc.verdict)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("reason = %q, want it to contain %q", d.Reason, tc.reason)
			}
		})
	}
}

func TestPrecheckLease(t *testing.T) {
	a := newAuthz(t, nil)
	d := a.Precheck(policy.Action{Kind: policy.ActionLaunch, Request: &computebot.Request{InstanceType: "t2.micro", Lease: 100 * time.Hour}})
	if d.Verdict != policy.Deny || !strings.Contains(d.Reason, "maximum of 72 h") {
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
	a := policy.New(policy.Rules{Approvers: []string{"SOPS"}}, policy.Options{Groups: g, GroupTTL: time.Minute, Now: func() time.Time { return now }})
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
	a := policy.New(policy.Rules{Approvers: []string{"SNOPE"}}, policy.Options{Groups: groups{}})
	d, err := a.Authorize(context.Background(), policy.Action{Kind: policy.ActionApprove, Actor: "UX", Request: &computebot.Request{ID: "R-1", Requester: "UY"}})
	if err == nil || d.Verdict != policy.Deny {
		t.Fatalf("got %+v, %v; want deny with error", d, err)
	}
}

func TestAuthorizeInstanceActions(t *testing.T) {
	launched := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	managed := &computebot.Instance{ID: "i-0123456789abcdef0", LaunchTime: launched,
		Tags: map[string]string{computebot.TagManaged: "true", computebot.TagOwner: "UDAN"}}
	foreign := &computebot.Instance{ID: "i-0fedcba9876543210", Tags: map[string]string{computebot.TagOwner: "UDAN"}}
	a := newAuthz(t, nil)
	cases := []struct {
		name    string
		act     policy.Action
		verdict policy.Verdict
		reason  string
	}{
		{"owner stops", policy.Action{Kind: policy.ActionStop, Actor: "UDAN", Instance: managed}, policy.Allow, ""},
		{"approver terminates", policy.Action{Kind: policy.ActionTerminate, Actor: "UBO", Instance: managed}, policy.Allow, ""},
		{"group approver starts", policy.Action{Kind: policy.ActionStart, Actor: "UCARL", Instance: managed}, policy.Allow, ""},
		{"stranger stops", policy.Action{Kind: policy.ActionStop, Actor: "UEVE", Instance: managed}, policy.Deny, "belongs to <@UDAN>"},
		{"not launched by computebot", policy.Action{Kind: policy.ActionStop, Actor: "UBO", Instance: foreign}, policy.Deny, "not launched by computebot"},
		{"owner extends within the cap", policy.Action{Kind: policy.ActionExtend, Actor: "UDAN", Instance: managed, ExtendTo: launched.Add(72 * time.Hour)}, policy.Allow, ""},
		{"owner extends past the cap", policy.Action{Kind: policy.ActionExtend, Actor: "UDAN", Instance: managed, ExtendTo: launched.Add(80 * time.Hour)}, policy.Deny, "the maximum is 72 h"},
		{"approver extends past the cap", policy.Action{Kind: policy.ActionExtend, Actor: "UBO", Instance: managed, ExtendTo: launched.Add(200 * time.Hour)}, policy.Allow, ""},
		{"list all as approver", policy.Action{Kind: policy.ActionListAll, Actor: "UBO"}, policy.Allow, ""},
		{"list all as stranger", policy.Action{Kind: policy.ActionListAll, Actor: "UEVE"}, policy.Deny, "Only approvers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := a.Authorize(context.Background(), tc.act)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("got %v %q, want %v containing %q", d.Verdict, d.Reason, tc.verdict, tc.reason)
			}
		})
	}
}

func TestAuthorizeInvoke(t *testing.T) {
	a := policy.New(policy.Rules{Approvers: []string{"UBO"}, AllowedFunctions: []string{"report-*", "etl"}, RequireApproval: []string{"etl"}}, policy.Options{})
	ctx := context.Background()
	for name, want := range map[string]policy.Verdict{"report-daily": policy.Allow, "etl": policy.NeedsApproval, "billing": policy.Deny} {
		d, err := a.Authorize(ctx, policy.Action{Kind: policy.ActionInvoke, Actor: "UANA", Function: name})
		if err != nil || d.Verdict != want {
			t.Errorf("%s: %v %q, %v; want %v", name, d.Verdict, d.Reason, err, want)
		}
		if want == policy.Deny && d.Reason != policy.FunctionNotFound(name) {
			t.Errorf("a disallowed function must look like a missing one: %q", d.Reason)
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
		{policy.Action{Kind: policy.ActionAutoStop, Actor: policy.SystemActor, Instance: managed}, policy.Allow},
		{policy.Action{Kind: policy.ActionAutoStop, Actor: policy.SystemActor, Instance: foreign}, policy.Deny},
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
			t.Errorf("%s by %s: %v %q %v, want %v", tc.act.Kind, tc.act.Actor, d.Verdict, d.Reason, err, tc.want)
		}
	}
}
