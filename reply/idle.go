package reply

import (
	"fmt"
	"strings"
	"time"

	"github.com/computebot/computebot/idle"
)

// Action IDs of an idle notice's buttons; the value is the instance ID.
const (
	ActionKeepRunning = "idle_keep"
	ActionStopNow     = "idle_stop"
)

// IdleNotice is the message warning an owner that their instance will be
// stopped: the evidence, when, what it costs, and the two buttons. Once
// the notice is settled (kept, stopped, cancelled) the buttons give way to
// the outcome.
func IdleNotice(n idle.Notice) Message {
	name := n.Name
	if name == "" {
		name = n.InstanceID
	}
	var head, why string
	if n.Reason == idle.ReasonLease {
		head = fmt.Sprintf(":hourglass: <@%s>, the lease of *%s* (`%s`, `%s`) ended %s.", n.Owner, name, n.InstanceID, n.Type, SlackDate(n.LeaseEnded))
		why = "lease expired"
	} else {
		head = fmt.Sprintf(":zzz: <@%s>, *%s* (`%s`, `%s`) looks idle: %s.", n.Owner, name, n.InstanceID, n.Type, n.Evidence())
		why = "idle"
	}
	cost := ""
	if n.PriceKnown {
		cost = fmt.Sprintf(" Stopping it saves ≈ $%s/h.", trimPrice(n.CostPerHour))
	}
	text := fmt.Sprintf("%s (%s)", head, why)
	blocks := []Block{{Kind: Section, Text: head}}
	switch n.State {
	case idle.StateNoticed:
		blocks = append(blocks,
			Block{Kind: Section, Text: fmt.Sprintf("I will %s it %s unless you keep it running.%s", actionWord(n), SlackDate(n.StopAt), cost)},
			Block{Kind: Actions, ID: "notice:" + n.InstanceID, Buttons: []Button{
				{Text: "Keep running", ActionID: ActionKeepRunning, Value: n.InstanceID, Style: Primary},
				{Text: "Stop now", ActionID: ActionStopNow, Value: n.InstanceID, Style: Danger},
			}},
		)
	default:
		blocks = append(blocks, Block{Kind: Context, Text: n.Outcome})
		text += ": " + n.Outcome
	}
	return Message{Text: text, Blocks: blocks}
}

func actionWord(n idle.Notice) string {
	if n.Reason == idle.ReasonLease && n.Action == "terminate" {
		return "terminate"
	}
	return "stop"
}

// IdleReport answers /computebot idle.
func IdleReport(r idle.Report, now time.Time) Message {
	if len(r.Noticed) == 0 && len(r.Snoozed) == 0 {
		return Plain("No instance is idle, snoozed or about to be stopped right now.")
	}
	var b strings.Builder
	if len(r.Noticed) > 0 {
		b.WriteString("*Noticed, will be stopped:*\n")
		for _, n := range r.Noticed {
			fmt.Fprintf(&b, "• `%s` %s (<@%s>) — %s; stops %s\n", n.InstanceID, n.Name, n.Owner, reasonText(n), SlackDate(n.StopAt))
		}
	}
	if len(r.Snoozed) > 0 {
		b.WriteString("*Kept running (snoozed):*\n")
		for _, s := range r.Snoozed {
			fmt.Fprintf(&b, "• `%s` until %s\n", s.InstanceID, SlackDate(s.Until))
		}
	}
	return Plain(strings.TrimRight(b.String(), "\n"))
}

func reasonText(n idle.Notice) string {
	if n.Reason == idle.ReasonLease {
		return "lease ended"
	}
	return n.Evidence()
}
