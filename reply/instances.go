package reply

import (
	"fmt"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/schedule"
)

// Action IDs of the instance buttons. The value is the instance ID (for
// extend "ID|HOURS"), so a click carries the whole command.
const (
	ActionStop      = "instance_stop"
	ActionStart     = "instance_start"
	ActionTerminate = "instance_terminate"
	ActionExtend    = "instance_extend"
	ActionPage      = "page" // value: "instances|all|OFFSET" or "lambda||OFFSET"
)

// ExtendHours is what the Extend button adds.
const ExtendHours = 4

// PageSize keeps a list message within Slack's 50 blocks: a header block,
// two blocks per item, a footer and the next-page button.
const PageSize = 20

// InstanceRow is one instance in a list, with its cost inputs.
type InstanceRow struct {
	Instance     computebot.Instance
	PricePerHour float64
	PriceKnown   bool
}

// InstanceList renders one page of instances. all marks the approvers'
// everyone view (it shows owners). offset is the index of the first row of
// this page in rows; the next-page button carries the next offset.
func InstanceList(rows []InstanceRow, offset int, all bool, now time.Time) Message {
	if len(rows) == 0 {
		text := "You have no instances. Launch one with `/launch t2.micro` (`/computebot help launch` for options)."
		if all {
			text = "No computebot instances are running or stopped right now."
		}
		return Plain(text)
	}
	end := min(offset+PageSize, len(rows))
	title := "Your instances"
	if all {
		title = "All computebot instances"
	}
	blocks := []Block{{Kind: Section, Text: fmt.Sprintf("*%s* (%d–%d of %d)", title, offset+1, end, len(rows))}}
	for _, row := range rows[offset:end] {
		blocks = append(blocks, instanceBlocks(row, all, now)...)
	}
	if end < len(rows) {
		scope := "mine"
		if all {
			scope = "all"
		}
		blocks = append(blocks, Block{Kind: Actions, ID: "page:instances", Buttons: []Button{{
			Text: fmt.Sprintf("Next page (%d–%d)", end+1, min(end+PageSize, len(rows))), ActionID: ActionPage,
			Value: fmt.Sprintf("instances|%s|%d", scope, end),
		}}})
	}
	return Message{Text: fmt.Sprintf("%s: %d–%d of %d", title, offset+1, end, len(rows)), Blocks: blocks}
}

func instanceBlocks(row InstanceRow, all bool, now time.Time) []Block {
	in := row.Instance
	name := Literal(in.Tags[computebot.TagName])
	if name == "" {
		name = in.ID
	}
	line1 := fmt.Sprintf("*%s* `%s` · `%s` · %s", name, in.ID, in.Type, stateWord(in.State))
	var facts []string
	if all {
		facts = append(facts, "owner "+User(in.Tags[computebot.TagOwner]))
	}
	if in.PublicIP != "" {
		facts = append(facts, fmt.Sprintf("IP `%s`", in.PublicIP))
	} else if in.PrivateIP != "" && in.State == computebot.InstanceRunning {
		facts = append(facts, fmt.Sprintf("private IP `%s`", in.PrivateIP))
	}
	if in.State == computebot.InstanceRunning && !in.LaunchTime.IsZero() {
		up := now.Sub(in.LaunchTime)
		facts = append(facts, "up "+Duration(up))
		if row.PriceKnown {
			facts = append(facts, fmt.Sprintf("≈ $%.2f since it started", row.PricePerHour*up.Hours()))
		}
	}
	if exp, err := time.Parse(time.RFC3339, in.Tags[computebot.TagExpiresAt]); err == nil {
		facts = append(facts, "lease ends "+Date(exp))
	}
	if hours := in.Tags[computebot.TagSchedule]; hours != "" && hours != schedule.Off {
		facts = append(facts, "office hours "+Literal(hours))
	}
	if keep, err := time.Parse(time.RFC3339, in.Tags[computebot.TagKeepUntil]); err == nil && keep.After(now) {
		facts = append(facts, "kept from idle stops until "+Date(keep))
	}
	blocks := []Block{{Kind: Section, Text: line1 + "\n" + strings.Join(facts, " · ")}}
	if buttons := InstanceButtons(in); len(buttons) > 0 {
		blocks = append(blocks, Block{Kind: Actions, ID: "instance:" + in.ID, Buttons: buttons})
	}
	return blocks
}

// InstanceButtons are the actions that fit the instance's state.
func InstanceButtons(in computebot.Instance) []Button {
	stop := Button{Text: "Stop", ActionID: ActionStop, Value: in.ID}
	start := Button{Text: "Start", ActionID: ActionStart, Value: in.ID, Style: Primary}
	extend := Button{Text: fmt.Sprintf("Extend %d h", ExtendHours), ActionID: ActionExtend, Value: fmt.Sprintf("%s|%d", in.ID, ExtendHours)}
	terminate := Button{Text: "Terminate", ActionID: ActionTerminate, Value: in.ID, Style: Danger, Confirm: &Confirm{
		Title: "Terminate " + in.ID + "?",
		Text:  fmt.Sprintf("`%s` and its root volume will be deleted. This cannot be undone.", in.ID),
		Yes:   "Terminate", No: "Cancel",
	}}
	switch in.State {
	case computebot.InstanceRunning:
		return []Button{stop, extend, terminate}
	case computebot.InstanceStopped:
		return []Button{start, extend, terminate}
	case computebot.InstancePending:
		return []Button{terminate}
	}
	return nil
}

func stateWord(s string) string {
	switch s {
	case computebot.InstanceRunning:
		return ":large_green_circle: running"
	case computebot.InstanceStopped:
		return ":white_circle: stopped"
	}
	return ":hourglass_flowing_sand: " + s
}

// Duration renders an uptime ("3 h 20 min", "45 min", "2 d 4 h").
func Duration(d time.Duration) string {
	d = d.Round(time.Minute)
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case days > 0:
		return fmt.Sprintf("%d d %d h", days, hours)
	case hours > 0:
		return fmt.Sprintf("%d h %d min", hours, mins)
	}
	return fmt.Sprintf("%d min", mins)
}

// SSHLine is the ready-to-paste connection hint for an instance.
func SSHLine(instanceID, publicIP, privateIP, sshUser, keyName string) string {
	if publicIP == "" {
		return fmt.Sprintf("*Private IP:* `%s` (no public IP: the subnet is private).\nConnect with Session Manager: ```aws ssm start-session --target %s```", privateIP, instanceID)
	}
	if keyName == "" {
		return fmt.Sprintf("```ssh %s@%s```", sshUser, publicIP)
	}
	key := "~/.ssh/" + keyName + ".pem"
	return fmt.Sprintf("First make the key private: `chmod 0400 %s`\n```ssh -i %s %s@%s```", key, key, sshUser, publicIP)
}

// Stopped, Started, Terminated and Extended are the thread replies of the
// lifecycle commands.
// how says whether the stop hibernated the instance (or why not).
func Stopped(in computebot.Instance, by string, how computebot.Stopped) Message {
	if how.Hibernated {
		return Plain(fmt.Sprintf(":white_circle: `%s` hibernated by %s. Its memory and disk are kept; `/start %s` brings it back where it left off, with a new public IP.", in.ID, User(by), in.ID))
	}
	text := fmt.Sprintf(":white_circle: `%s` stopped by %s. Its disk is kept; `/start %s` brings it back with a new public IP.", in.ID, User(by), in.ID)
	if note := StopNote(how); note != "" {
		text += " " + note
	}
	return Plain(text)
}

func Started(in computebot.Instance, by, sshUser, keyName string) Message {
	head := fmt.Sprintf(":large_green_circle: `%s` started by %s", in.ID, User(by))
	if in.PublicIP != "" {
		head += fmt.Sprintf(": new public IP `%s`", in.PublicIP)
	}
	return Plain(head + "\n" + SSHLine(in.ID, in.PublicIP, in.PrivateIP, sshUser, keyName))
}

func Terminated(in computebot.Instance, by string) Message {
	return Plain(fmt.Sprintf(":wastebasket: `%s` terminated by %s.", in.ID, User(by)))
}

// Scheduled is the thread reply of /schedule: the hours and what happens
// next.
func Scheduled(in computebot.Instance, by string, hours schedule.Schedule, next schedule.Event) Message {
	what := "stops"
	if next.Start {
		what = "starts"
	}
	return Plain(fmt.Sprintf(":calendar: %s gave `%s` office hours: %s. It is started when they begin and stopped when they end (after a notice with Keep running); next it %s %s.",
		User(by), in.ID, Literal(hours.String()), what, Date(next.At)))
}

// Unscheduled is the thread reply of /schedule INSTANCE off.
func Unscheduled(in computebot.Instance, by string) Message {
	return Plain(fmt.Sprintf(":calendar: %s took the office hours of `%s` away: it is no longer started or stopped by the clock.", User(by), in.ID))
}

// KeptUntil is the thread reply of /keep.
func KeptUntil(in computebot.Instance, by string, until time.Time) Message {
	return Plain(fmt.Sprintf(":pushpin: %s keeps `%s` from idle stops until %s; its lease still ends when it ends.", User(by), in.ID, Date(until)))
}

func Extended(in computebot.Instance, by string, until time.Time, hours int) Message {
	return Plain(fmt.Sprintf(":hourglass: Lease of `%s` extended by %d h by %s: it now ends %s.", in.ID, hours, User(by), Date(until)))
}

// lifecycle is one instance action in the words its messages need.
type lifecycle struct {
	verb  string // "stop"
	doing string // "Stopping"
	done  string // the state that means done ("stopped"); "" for extend
}

var lifecycles = map[policy.ActionKind]lifecycle{
	policy.ActionStop:      {"stop", "Stopping", computebot.InstanceStopped},
	policy.ActionStart:     {"start", "Starting", computebot.InstanceRunning},
	policy.ActionTerminate: {"terminate", "Terminating", computebot.InstanceTerminated},
	policy.ActionExtend:    {"extend", "Extending", ""},
	policy.ActionKeepUntil: {"keep", "Keeping", ""},
	policy.ActionSchedule:  {"schedule", "Scheduling", ""},
}

// ListFailed answers /instances when EC2 could not list (why is the cloud's
// explanation).
func ListFailed(why string) Message { return Plain("I could not list instances: " + Literal(why)) }

// ActionFailed answers an instance action EC2 refused.
func ActionFailed(kind policy.ActionKind, instanceID, why string) Message {
	return Plain(fmt.Sprintf("I could not %s `%s`: %s", lifecycles[kind].verb, instanceID, Literal(why)))
}

// ActionUnderWay is the private answer while an instance changes state.
func ActionUnderWay(kind policy.ActionKind, instanceID string) Message {
	l := lifecycles[kind]
	return Plain(fmt.Sprintf("%s `%s`… I'll post in its request thread when it is %s.", l.doing, instanceID, l.done))
}

// ActionSlow says an instance did not reach the state in time.
func ActionSlow(kind policy.ActionKind, instanceID string, wait time.Duration) Message {
	return Plain(fmt.Sprintf("`%s` has not reached %s after %s; check it with `/instances`.", instanceID, lifecycles[kind].done, wait))
}

// NoSuchInstance answers a command naming an instance ID EC2 does not know.
func NoSuchInstance(id string) Message {
	return Plain(fmt.Sprintf("I can't find instance `%s` in this region. `/instances` lists yours.", id))
}

// LookupFailed answers a command whose target (an instance, a function)
// could not be looked up.
func LookupFailed(target, why string) Message {
	return Plain(fmt.Sprintf("I could not look up `%s`: %s", Literal(target), Literal(why)))
}

// OwnListFailed answers a command naming an instance by name when the
// caller's instances could not be listed.
func OwnListFailed(why string) Message {
	return Plain("I could not list your instances: " + Literal(why))
}

// NoInstanceNamed answers a command naming none of the caller's instances.
func NoInstanceNamed(name string) Message {
	return Plain(fmt.Sprintf("You have no instance named `%s`. `/instances` lists yours; you can also use an instance ID.", Literal(name)))
}

// AmbiguousName answers a command whose name fits several instances.
func AmbiguousName(name string, ids []string) Message {
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = "`" + id + "`"
	}
	return Plain(fmt.Sprintf("You have %d instances named `%s` (%s); use the instance ID.", len(ids), Literal(name), strings.Join(quoted, ", ")))
}

// WrongState explains why an instance's state does not allow an action, or
// returns false when it does.
func WrongState(kind policy.ActionKind, in computebot.Instance) (Message, bool) {
	l := lifecycles[kind]
	gone := in.State == computebot.InstanceTerminated || in.State == computebot.InstanceShuttingDown
	say := func(format string, args ...any) (Message, bool) { return Plain(fmt.Sprintf(format, args...)), true }
	switch {
	case gone && kind == policy.ActionTerminate:
		return say("`%s` is already terminated.", in.ID)
	case gone:
		return say("`%s` has been terminated; there is nothing to %s.", in.ID, l.verb)
	}
	switch kind {
	case policy.ActionStop:
		switch in.State {
		case computebot.InstanceRunning:
			return Message{}, false
		case computebot.InstancePending:
			return say("`%s` is still starting; stop it once it runs (or terminate it).", in.ID)
		}
		return say("`%s` is already %s.", in.ID, in.State)
	case policy.ActionStart:
		switch in.State {
		case computebot.InstanceStopped:
			return Message{}, false
		case computebot.InstanceStopping:
			return say("`%s` is still stopping; start it once it has stopped.", in.ID)
		case computebot.InstancePending:
			return say("`%s` is already starting.", in.ID)
		}
		return say("`%s` is already %s.", in.ID, in.State)
	}
	return Message{}, false
}
