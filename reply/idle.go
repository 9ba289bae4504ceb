package reply

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/policy"
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
	name := Literal(n.Name)
	if name == "" {
		name = n.InstanceID
	}
	owner := ""
	if n.Owner != "" {
		owner = " " + User(n.Owner) + ","
	}
	var head, why string
	switch n.Reason {
	case idle.ReasonLease:
		head = fmt.Sprintf(":hourglass:%s the lease of *%s* (`%s`, `%s`) ended %s.", owner, name, n.InstanceID, n.Type, Date(n.LeaseEnded))
		why = "lease expired"
	case idle.ReasonHours:
		head = fmt.Sprintf(":crescent_moon:%s the office hours of *%s* (`%s`, `%s`: %s) ended %s.", owner, name, n.InstanceID, n.Type, Literal(n.Hours), Date(n.HoursEnded))
		why = "office hours"
	default:
		head = fmt.Sprintf(":zzz:%s *%s* (`%s`, `%s`) looks idle: %s.", owner, name, n.InstanceID, n.Type, idleEvidence(n))
		why = "idle"
	}
	text := fmt.Sprintf("%s (%s)", head, why)
	blocks := []Block{{Kind: Section, Text: head}}
	switch n.State {
	case idle.StateNoticed, idle.StateExtending:
		cost := ""
		if n.PriceKnown {
			cost = fmt.Sprintf(" Stopping it saves ≈ $%s/h.", trimPrice(n.CostPerHour))
		}
		blocks = append(blocks,
			Block{Kind: Section, Text: fmt.Sprintf("I will %s it %s unless you keep it running.%s%s", actionWord(n), Date(n.StopAt), memoryWords(n), cost)},
			Block{Kind: Actions, ID: "notice:" + n.InstanceID, Buttons: []Button{
				{Text: "Keep running", ActionID: ActionKeepRunning, Value: n.InstanceID, Style: Primary},
				{Text: "Stop now", ActionID: ActionStopNow, Value: n.InstanceID, Style: Danger},
			}},
		)
	default:
		outcome := noticeOutcome(n)
		blocks = append(blocks, Block{Kind: Context, Text: outcome})
		text += ": " + outcome
	}
	return Message{Text: text, Blocks: blocks, Key: NoticeKey(n.InstanceID, n.Episode)}
}

// noticeOutcome is the line shown where a settled notice's buttons were.
func noticeOutcome(n idle.Notice) string {
	by := func(format string, args ...any) string {
		if n.SettledBy == "" {
			return fmt.Sprintf(format, append([]any{""}, args...)...)
		}
		return fmt.Sprintf(format, append([]any{" by " + User(n.SettledBy)}, args...)...)
	}
	switch n.State {
	case idle.StateKept:
		if n.Reason == idle.ReasonLease {
			return by("Lease extended%s until %s.", Date(n.KeptUntil))
		}
		return by("Kept running%s until %s.", Date(n.KeptUntil))
	case idle.StateStopping:
		return fmt.Sprintf("%s it now…", capitalize(stoppingWord(n)))
	case idle.StateStopped:
		switch n.How {
		case idle.SettledStopNow:
			return by("Stopped%s %s (Stop now).", Date(n.SettledAt))
		case idle.SettledTerminated:
			return fmt.Sprintf("Terminated %s (lease ended).", Date(n.SettledAt))
		case idle.SettledStopped:
			switch n.Reason {
			case idle.ReasonLease:
				return fmt.Sprintf("Stopped %s (lease ended).", Date(n.SettledAt))
			case idle.ReasonHours:
				return fmt.Sprintf("Stopped %s (office hours ended).", Date(n.SettledAt))
			}
			return fmt.Sprintf("Stopped %s (idle).", Date(n.SettledAt))
		}
		return "Stopped" + at(n.SettledAt) + "." // a record from before How
	case idle.StateCancelled:
		if n.Cancel == nil { // a record from before Cancel
			return "Cancelled" + at(n.SettledAt) + "."
		}
		return "Cancelled: " + cancelWords(n) + "."
	}
	return n.State
}

// HoursStarted is the line posted when the scheduler started an instance
// because its office hours began.
func HoursStarted(in computebot.Instance, hours string) Message {
	where := ""
	switch {
	case in.PublicIP != "":
		where = fmt.Sprintf(": public IP `%s`", in.PublicIP)
	case in.PrivateIP != "":
		where = fmt.Sprintf(": private IP `%s`", in.PrivateIP)
	}
	return Plain(fmt.Sprintf(":sunrise: Office hours (%s) began: I started `%s`%s. `/connect %s` shows how to log in.",
		Literal(hours), in.ID, where, in.ID))
}

// memoryWords says whether a stop will keep the instance's memory: it does
// for an instance launched able to hibernate.
func memoryWords(n idle.Notice) string {
	switch {
	case n.Terminates():
		return ""
	case n.Hibernates:
		return " It will hibernate: its memory is kept, so your work is where you left it when you start it again."
	}
	return " Its memory will not be kept (its disk is)."
}

// NoticeAnnouncement is the line posted in a notice's thread once it is
// stopped or cancelled; the zero Message for a notice in any other state.
func NoticeAnnouncement(n idle.Notice) Message {
	id := n.InstanceID
	var text string
	switch n.State {
	case idle.StateStopped:
		switch n.How {
		case idle.SettledStopNow:
			text = fmt.Sprintf("stopped `%s` (Stop now by %s).", id, User(n.SettledBy))
		case idle.SettledTerminated:
			text = fmt.Sprintf("terminated `%s` (lease ended %s).", id, Date(n.LeaseEnded))
		case idle.SettledStopped:
			switch n.Reason {
			case idle.ReasonLease:
				text = fmt.Sprintf("stopped `%s` (lease ended %s).", id, Date(n.LeaseEnded))
			case idle.ReasonHours:
				text = fmt.Sprintf("stopped `%s` (office hours %s ended %s); it starts again when they begin.", id, Literal(n.Hours), Date(n.HoursEnded))
			default:
				text = fmt.Sprintf("stopped `%s` (idle): %s.", id, idleEvidence(n))
			}
		default:
			text = fmt.Sprintf("stopped `%s`.", id)
		}
		if note := StopNote(computebot.Stopped{Hibernated: n.Hibernated, NotHibernated: n.NotHibernated}); note != "" {
			text += " " + note
		}
	case idle.StateCancelled:
		if n.Cancel == nil {
			text = fmt.Sprintf("cancelled: `%s` was not stopped.", id)
		} else {
			text = "cancelled: " + cancelWords(n) + "."
		}
	default:
		return Message{}
	}
	return Plain(text)
}

// cancelWords says why a notice was cancelled (n.Cancel is set).
func cancelWords(n idle.Notice) string {
	c, id := n.Cancel, n.InstanceID
	switch c.Reason {
	case idle.CancelTerminated:
		return fmt.Sprintf("`%s` was terminated meanwhile", id)
	case idle.CancelStopped:
		return fmt.Sprintf("`%s` was stopped meanwhile", id)
	case idle.CancelState:
		return fmt.Sprintf("`%s` is %s now", id, c.State)
	case idle.CancelNoLease:
		return fmt.Sprintf("`%s` no longer has a lease", id)
	case idle.CancelLeaseExtended:
		return fmt.Sprintf("the lease of `%s` was extended until %s", id, Date(c.LeaseUntil))
	case idle.CancelActive:
		if c.GPU {
			return "activity resumed: " + gpuEvidence(c.MaxCPU, c.MaxGPU, c.NetworkBytes, c.Window)
		}
		return "activity resumed: " + evidence(c.MaxCPU, c.NetworkBytes, c.Window)
	case idle.CancelKept:
		return fmt.Sprintf("`%s` is kept from idle stops until %s (/keep)", id, Date(c.LeaseUntil))
	case idle.CancelHoursBegan:
		return fmt.Sprintf("the office hours of `%s` began again", id)
	case idle.CancelUnscheduled:
		return fmt.Sprintf("`%s` has other office hours now, or none", id)
	case idle.CancelIncomplete:
		return fmt.Sprintf("its metrics are incomplete (%d of %d periods with CPU data, %d with network data, over the last %s), so it may be busy",
			c.CPUPeriods, c.Periods, c.NetPeriods, humanDuration(c.Window))
	case idle.CancelRefused:
		why := "internal error (details are in the bot's log)"
		if c.Refusal != policy.RefuseInternal && c.Refusal != "" {
			why = RefusalText(policy.Refusal{Code: c.Refusal, Action: policy.ActionAutoStop, Actor: computebot.SystemActor, InstanceID: id})
		}
		return fmt.Sprintf("not stopped: policy refused to stop %s: %s", id, strings.TrimSuffix(why, "."))
	case idle.CancelStopFailed:
		return fmt.Sprintf("could not %s `%s`: %s", actionWord(n), id, strings.TrimSuffix(Literal(c.ErrorMessage), "."))
	}
	return fmt.Sprintf("`%s` was not stopped", id)
}

// NoticeButtonFailed answers a Keep running or Stop now click that did
// not work: no notice, a notice already settled (or being stopped), or a
// failed AWS call.
func NoticeButtonFailed(err error) Message {
	var noNotice *idle.NoNoticeError
	var settled *idle.SettledError
	why := Literal(computebot.UserMessage(err))
	switch {
	case errors.As(err, &noNotice):
		why = fmt.Sprintf("`%s` has no idle or lease notice.", noNotice.InstanceID)
	case errors.Is(err, idle.ErrNoNotice):
		why = "that instance has no idle or lease notice."
	case errors.As(err, &settled):
		n := settled.Notice
		switch n.State {
		case idle.StateStopped:
			why = fmt.Sprintf("`%s` was already stopped. %s", n.InstanceID, noticeOutcome(n))
		case idle.StateStopping:
			why = fmt.Sprintf("`%s` is being %s right now.", n.InstanceID, pastParticiple(n))
		case idle.StateExtending:
			why = fmt.Sprintf("the lease of `%s` is being extended right now.", n.InstanceID)
		default:
			why = fmt.Sprintf("That notice for `%s` is over. %s", n.InstanceID, noticeOutcome(n))
		}
	}
	return Plain("That did not work: " + why)
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
			fmt.Fprintf(&b, "• `%s` %s (%s) — %s; stops %s\n", n.InstanceID, Literal(n.Name), User(n.Owner), reasonText(n), Date(n.StopAt))
		}
	}
	if len(r.Snoozed) > 0 {
		b.WriteString("*Kept running (snoozed):*\n")
		for _, s := range r.Snoozed {
			fmt.Fprintf(&b, "• `%s` until %s\n", s.InstanceID, Date(s.Until))
		}
	}
	return Plain(strings.TrimRight(b.String(), "\n"))
}

func reasonText(n idle.Notice) string {
	switch n.Reason {
	case idle.ReasonLease:
		return "lease ended"
	case idle.ReasonHours:
		return "office hours ended"
	}
	return idleEvidence(n)
}

// actionWord is what the end of the grace does: "stop" or "terminate".
func actionWord(n idle.Notice) string {
	if n.Terminates() {
		return "terminate"
	}
	return "stop"
}

// stoppingWord is what a stopping notice is doing; Stop now always stops.
func stoppingWord(n idle.Notice) string {
	if n.Claim == nil || n.Claim.By == "" {
		if n.Terminates() {
			return "terminating"
		}
	}
	return "stopping"
}

func pastParticiple(n idle.Notice) string {
	if stoppingWord(n) == "terminating" {
		return "terminated"
	}
	return "stopped"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// at is " " and the moment, or nothing when it is unknown.
func at(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " " + Date(t)
}

// idleEvidence is an idle notice's evidence in words.
func idleEvidence(n idle.Notice) string {
	if n.GPU {
		return gpuEvidence(n.MaxCPU, n.MaxGPU, n.NetworkBytes, n.Window)
	}
	return evidence(n.MaxCPU, n.NetworkBytes, n.Window)
}

// gpuEvidence is evidence with the GPU figure: "max CPU 1.2 %, GPU 0.0 %
// and 0.3 MB network over the last 1 h".
func gpuEvidence(cpu, gpu, net float64, window time.Duration) string {
	return fmt.Sprintf("max CPU %s %%, GPU %s %% and %s network over the last %s", oneDecimal(cpu), oneDecimal(gpu), megabytes(net), humanDuration(window))
}

// evidence is "max CPU 1.2 % and 0.3 MB network over the last 1 h".
func evidence(cpu, net float64, window time.Duration) string {
	return fmt.Sprintf("max CPU %s %% and %s network over the last %s", oneDecimal(cpu), megabytes(net), humanDuration(window))
}

func oneDecimal(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "?"
	}
	return fmt.Sprintf("%.1f", v)
}

func megabytes(b float64) string {
	return oneDecimal(b/1e6) + " MB"
}

// humanDuration writes 1h as "1 h", 90m as "1 h 30 min", 30m as "30 min",
// 4h as "4 h", 48h as "2 days".
func humanDuration(d time.Duration) string {
	if d <= 0 {
		return "0 min"
	}
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int((d%time.Hour)/time.Minute)
	if h >= 48 && h%24 == 0 {
		return fmt.Sprintf("%d days", h/24)
	}
	var parts []string
	if h > 0 {
		parts = append(parts, fmt.Sprintf("%d h", h))
	}
	if m > 0 || h == 0 {
		parts = append(parts, fmt.Sprintf("%d min", m))
	}
	return strings.Join(parts, " ")
}
