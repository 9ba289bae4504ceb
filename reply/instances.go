package reply

import (
	"fmt"
	"strings"
	"time"

	"github.com/computebot/computebot"
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
	name := in.Tags[computebot.TagName]
	if name == "" {
		name = in.ID
	}
	line1 := fmt.Sprintf("*%s* `%s` · `%s` · %s", name, in.ID, in.Type, stateWord(in.State))
	var facts []string
	if all {
		facts = append(facts, fmt.Sprintf("owner <@%s>", in.Tags[computebot.TagOwner]))
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
		facts = append(facts, "lease ends "+SlackDate(exp))
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
func Stopped(in computebot.Instance, by string) Message {
	return Plain(fmt.Sprintf(":white_circle: `%s` stopped by <@%s>. Its disk is kept; `/start %s` brings it back with a new public IP.", in.ID, by, in.ID))
}

func Started(in computebot.Instance, by, sshUser, keyName string) Message {
	head := fmt.Sprintf(":large_green_circle: `%s` started by <@%s>", in.ID, by)
	if in.PublicIP != "" {
		head += fmt.Sprintf(": new public IP `%s`", in.PublicIP)
	}
	return Plain(head + "\n" + SSHLine(in.ID, in.PublicIP, in.PrivateIP, sshUser, keyName))
}

func Terminated(in computebot.Instance, by string) Message {
	return Plain(fmt.Sprintf(":wastebasket: `%s` terminated by <@%s>.", in.ID, by))
}

func Extended(in computebot.Instance, by string, until time.Time, hours int) Message {
	return Plain(fmt.Sprintf(":hourglass: Lease of `%s` extended by %d h by <@%s>: it now ends %s.", in.ID, hours, by, SlackDate(until)))
}
