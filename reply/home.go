package reply

import (
	"fmt"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/sshkeys"
)

// The App Home tab: a person's own instances, open requests and SSH keys,
// a Launch… button, and for approvers the pending requests of everyone and
// this month's running costs per person.

// Action IDs of the home tab's Approve and Deny (values: the request ID).
// They differ from the request message's: a click on the home tab has no
// message to check the request against, so the workflows check that the
// request is pending, and policy that the clicker approves.
const (
	ActionHomeApprove = "home_approve"
	ActionHomeDeny    = "home_deny"
)

// homeMaxInstances and homeMaxPending keep the tab within Slack's 100
// blocks (2 per instance, 2 per pending request, and the headings).
const (
	homeMaxInstances = 20
	homeMaxPending   = 15
	homeMaxSpenders  = 10
)

// Home is what the home tab shows.
type Home struct {
	User      string
	Instances []InstanceRow
	Requests  []*computebot.Request // the person's open requests
	Keys      []sshkeys.Key         // nil: the key store is unavailable
	Approver  bool
	Pending   []*computebot.Request // everyone's, for approvers
	Spend     []Spend               // for approvers, highest first
	Now       time.Time
}

// Spend is one person's running cost this month.
type Spend struct {
	User string
	USD  float64
}

// HomeTab renders a person's home tab.
func HomeTab(h Home) View {
	blocks := []Block{
		{Kind: Header, Text: "computebot"},
		{Kind: Section, Text: "Request an EC2 instance: pick a type, an image and a lease; an approver approves it in the channel's thread."},
		{Kind: Actions, ID: "home:launch", Buttons: []Button{{Text: "Launch…", ActionID: ActionOpenLaunchForm, Style: Primary}}},
		{Kind: Divider},
	}
	// Your instances.
	if len(h.Instances) == 0 {
		blocks = append(blocks, Block{Kind: Section, Text: "*Your instances*\nNone yet."})
	} else {
		blocks = append(blocks, Block{Kind: Section, Text: fmt.Sprintf("*Your instances* (%d)", len(h.Instances))})
		for _, row := range h.Instances[:min(len(h.Instances), homeMaxInstances)] {
			blocks = append(blocks, instanceBlocks(row, false, h.Now)...)
		}
		if n := len(h.Instances) - homeMaxInstances; n > 0 {
			blocks = append(blocks, Block{Kind: Context, Text: fmt.Sprintf("…and %d more: `/instances` lists them all.", n)})
		}
	}
	// Your open requests.
	if len(h.Requests) > 0 {
		var b strings.Builder
		for _, r := range h.Requests {
			fmt.Fprintf(&b, "• `%s` %s — %s\n", r.ID, requestWhat(r), strings.TrimPrefix(strings.TrimSuffix(statusWords(r), "."), "Request "))
		}
		blocks = append(blocks, Block{Kind: Section, Text: "*Your open requests*\n" + strings.TrimRight(b.String(), "\n")})
	}
	// Your SSH keys.
	switch {
	case h.Keys == nil:
	case len(h.Keys) == 0:
		blocks = append(blocks, Block{Kind: Section, Text: "*Your SSH keys*\nNone: add one with `/sshkey add ssh-ed25519 AAAA… you@laptop` to log in with your own key."})
	default:
		var b strings.Builder
		for _, k := range h.Keys {
			fmt.Fprintf(&b, "• %s `%s` %s\n", Literal(k.Label), k.Fingerprint, k.Type)
		}
		blocks = append(blocks, Block{Kind: Section, Text: "*Your SSH keys*\n" + strings.TrimRight(b.String(), "\n")})
	}
	if h.Approver {
		blocks = append(blocks, Block{Kind: Divider}, Block{Kind: Section, Text: fmt.Sprintf("*Waiting for an approver* (%d)", len(h.Pending))})
		for _, r := range h.Pending[:min(len(h.Pending), homeMaxPending)] {
			blocks = append(blocks,
				Block{Kind: Section, Text: fmt.Sprintf("%s: %s, request `%s`; expires %s", User(r.Requester), requestWhat(r), r.ID, Date(r.ApprovalExpiresAt))},
				Block{Kind: Actions, ID: "home:request:" + r.ID, Buttons: []Button{
					{Text: "Approve", ActionID: ActionHomeApprove, Value: r.ID, Style: Primary},
					{Text: "Deny", ActionID: ActionHomeDeny, Value: r.ID, Style: Danger},
				}})
		}
		if n := len(h.Pending) - homeMaxPending; n > 0 {
			blocks = append(blocks, Block{Kind: Context, Text: fmt.Sprintf("…and %d more, in their channels' threads.", n)})
		}
		if len(h.Spend) > 0 {
			var b strings.Builder
			for _, s := range h.Spend[:min(len(h.Spend), homeMaxSpenders)] {
				fmt.Fprintf(&b, "• %s ≈ $%.2f\n", User(s.User), s.USD)
			}
			blocks = append(blocks, Block{Kind: Section, Text: "*Spend this month*, by person (the hours their instances ran since the 1st, at on-demand prices)\n" + strings.TrimRight(b.String(), "\n")})
		}
	}
	return View{CallbackID: "home", Blocks: blocks}
}

// requestWhat is "1 × `t3.small`" or "invoke `fn`".
func requestWhat(r *computebot.Request) string {
	if r.Lambda != nil {
		return fmt.Sprintf("invoke `%s`", Literal(r.Lambda.Function))
	}
	return fmt.Sprintf("1 × `%s`", launchOf(r).InstanceType)
}

// statusWords is Status's text without the requester.
func statusWords(r *computebot.Request) string {
	text := Status(r).Text
	if i := strings.Index(text, "): "); i >= 0 {
		return text[i+3:]
	}
	return text
}

// HomeDecisionTooEarly answers an Approve or Deny on the home tab for a
// request whose message is not posted yet.
func HomeDecisionTooEarly(r *computebot.Request) Message {
	return Plain(fmt.Sprintf("Request `%s` is still being posted; decide it in a moment, from its thread or here.", r.ID))
}
