package reply

import (
	"fmt"
	"strings"
	"time"

	"github.com/computebot/computebot/policy"
)

// Refusal words a policy refusal for the person who acted: what was wrong
// and what to do instead.
func Refusal(r policy.Refusal) Message { return Plain(RefusalText(r)) }

// RefusalText is Refusal's text, for a request's stored failure.
func RefusalText(r policy.Refusal) string {
	switch r.Code {
	case policy.RefuseTypeNotAllowed:
		try := "t2.micro"
		if len(r.Allowed) > 0 {
			try = r.Allowed[0]
		}
		return fmt.Sprintf("`%s` is not an allowed instance type. Allowed types: %s. Try `/launch %s`.", r.InstanceType, codeList(r.Allowed), try)
	case policy.RefuseLeaseTooLong:
		return fmt.Sprintf("A lease of %s is longer than the maximum of %s. Use `--hours %d` or less.",
			wholeHours(r.Lease), wholeHours(r.MaxLease), int(r.MaxLease/time.Hour))
	case policy.RefuseNotApprover:
		return fmt.Sprintf("Only approvers can %s requests (%s). Ask one of them to look at request %s.", r.Action, Mentions(r.Approvers), r.RequestID)
	case policy.RefuseSelfApproval:
		return fmt.Sprintf("You can't approve your own request %s. Ask another approver (%s).", r.RequestID, Mentions(r.Approvers))
	case policy.RefuseApproversUnknown:
		return "I could not check the approver list right now; please try again in a minute."
	case policy.RefuseQuota:
		counted := fmt.Sprintf("%d pending or running instances (counting approved requests not launched yet); the limit is %d per person.", r.Count, r.Limit)
		switch {
		case r.Action == policy.ActionStartLaunch:
			return fmt.Sprintf("%s already has %s so request `%s` was not launched.", User(r.Owner), counted, r.RequestID)
		case r.Actor == r.Owner:
			return "You already have " + counted + " Stop or terminate one, then try again."
		}
		return fmt.Sprintf("%s already has %s Approving would exceed it: ask them to stop one first.", User(r.Owner), counted)
	case policy.RefuseQuotaUnknown:
		return "I could not count running instances right now (AWS did not answer); please try again in a minute."
	case policy.RefuseNotManaged:
		if r.Action == policy.ActionAutoStop {
			return "not launched by computebot"
		}
		return fmt.Sprintf("`%s` was not launched by computebot, so I won't %s it. I only act on instances I launched.", r.InstanceID, r.Action)
	case policy.RefuseNotOwner:
		return fmt.Sprintf("`%s` belongs to %s. Only its owner or an approver (%s) can %s it.", r.InstanceID, User(r.Owner), Mentions(r.Approvers), verbOf(r.Action))
	case policy.RefuseKeepTooLong:
		return fmt.Sprintf("You can keep `%s` from idle stops for at most %s (idle.max_keep); you asked for %s. Ask an approver (%s) to keep it longer.",
			r.InstanceID, wholeHours(r.MaxLease), wholeHours(r.Lease), Mentions(r.Approvers))
	case policy.RefuseExtendTooFar:
		return fmt.Sprintf("That would make the lease of `%s` %s long; the maximum is %s, i.e. until %s. Ask an approver (%s) to extend it further.",
			r.InstanceID, wholeHours(r.Lease), wholeHours(r.MaxLease), UTC(r.Latest), Mentions(r.Approvers))
	case policy.RefuseApproversOnly:
		if r.Action == policy.ActionIdleReport {
			return fmt.Sprintf("Only approvers can see the idle report (%s).", Mentions(r.Approvers))
		}
		if r.Action == policy.ActionAuditLog {
			return fmt.Sprintf("Only approvers can read the audit log (%s).", Mentions(r.Approvers))
		}
		return fmt.Sprintf("Only approvers can list everyone's instances (%s). `/instances` without `--all` lists yours.", Mentions(r.Approvers))
	case policy.RefuseFunctionNotFound:
		return FunctionNotFound(r.Function).Text
	}
	return "Something went wrong on my side (internal error); the details are in the bot's log."
}

// NotLaunched answers an approval undone right before its launch (the
// quota counted again: another approval of the same person's came at the
// same moment, or the limit changed). waitsAgain: the request went back to
// its approvers; else (auto-approved) it is refused.
func NotLaunched(r policy.Refusal, waitsAgain bool) Message {
	text := RefusalText(r)
	if waitsAgain {
		text += " It waits for an approver again; approve it once they have room."
	}
	return Plain(text)
}

func wholeHours(d time.Duration) string { return fmt.Sprintf("%d h", int(d/time.Hour)) }

func codeList(items []string) string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = "`" + s + "`"
	}
	return strings.Join(out, ", ")
}

// verbOf is an action as a verb in a sentence ("can … it").
func verbOf(a policy.ActionKind) string {
	switch a {
	case policy.ActionKeepUntil:
		return "keep"
	case policy.ActionConnect:
		return "connect to"
	}
	return string(a)
}
