package reply

import (
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/idle"
)

func TestCapacityWords(t *testing.T) {
	a, b := "subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"
	g5 := &computebot.LaunchRequest{InstanceType: "g5.xlarge", VCPUs: 4,
		Plan: []computebot.LaunchTry{{InstanceType: "g5.xlarge", SubnetID: a}, {InstanceType: "g5.xlarge", SubnetID: b},
			{InstanceType: "g6.xlarge", SubnetID: a}, {InstanceType: "g6.xlarge", SubnetID: b}},
		MaxPricePerHour: 1.212, MaxPriceKnown: true}
	for _, tt := range []struct{ name, got, want string }{
		{"next subnet", NoCapacityTrying(g5.Plan[0], g5.Plan[1]).Text,
			":arrows_counterclockwise: AWS has no `g5.xlarge` capacity in `subnet-0aaaaaaaaaaaaaaa1`; trying subnet `subnet-0bbbbbbbbbbbbbbb2`."},
		{"next type", NoCapacityTrying(g5.Plan[1], g5.Plan[2]).Text,
			":arrows_counterclockwise: AWS has no `g5.xlarge` capacity in any subnet; trying `g6.xlarge` in `subnet-0aaaaaaaaaaaaaaa1`."},
		{"next type, default subnet", NoCapacityTrying(computebot.LaunchTry{InstanceType: "g5.xlarge"}, computebot.LaunchTry{InstanceType: "g6.xlarge"}).Text,
			":arrows_counterclockwise: AWS has no `g5.xlarge` capacity in any subnet; trying `g6.xlarge`."},
		{"fallbacks", fallbackLine(g5), "If AWS has no `g5.xlarge` capacity: `g6.xlarge` (up to ≈ $1.212/h)"},
		{"no fallbacks", fallbackLine(&computebot.LaunchRequest{InstanceType: "t3.small"}), ""},
		{"nowhere", NoCapacityAnywhere(g5), "AWS has no capacity for `g5.xlarge`, `g6.xlarge` in any of its 2 subnets right now. Nothing was launched; try again later or with another type."},
		{"quota", QuotaLine(&computebot.LaunchRequest{VCPUs: 4, Quota: &computebot.VCPUQuota{Class: "G", Limit: 32, InUse: 12}}),
			"vCPU quota for G instances: 12 of 32 in use, this needs 4"},
		{"quota unknown", QuotaLine(&computebot.LaunchRequest{QuotaUnknown: true}), "vCPU quota unknown (it could not be read); the launch may still fail on it"},
		{"no quota", QuotaLine(&computebot.LaunchRequest{}), ""},
		{"hibernated", StopNote(computebot.Stopped{Hibernated: true}), "It hibernated: its memory is kept and comes back when it starts."},
		{"not hibernated", StopNote(computebot.Stopped{NotHibernated: "EC2 would not hibernate i-1 (UnsupportedHibernationConfiguration)"}),
			"It was not hibernated (EC2 would not hibernate i-1 (UnsupportedHibernationConfiguration)), so it was stopped plainly and its memory is lost."},
		{"idle stop, hibernated", NoticeAnnouncement(with(idleNotice(), func(n *idle.Notice) {
			stopped(idle.SettledStopped, "")(n)
			n.Hibernates, n.Hibernated = true, true
		})).Text, "stopped `i-1` (idle): max CPU 1.2 % and 0.3 MB network over the last 1 h. It hibernated: its memory is kept and comes back when it starts."},
	} {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestRequestFieldsWithinSlackLimit: Slack takes at most 10 fields in a
// section; a request with every optional field stays within it.
func TestRequestFieldsWithinSlackLimit(t *testing.T) {
	l := &computebot.LaunchRequest{InstanceType: "g5.xlarge", Name: "box", Reason: "why", VCPUs: 4,
		Quota: &computebot.VCPUQuota{Class: "G", Limit: 32}, Hibernate: true,
		Plan: []computebot.LaunchTry{{InstanceType: "g5.xlarge"}, {InstanceType: "g6.xlarge"}}}
	if n := len(requestFields("R-1", l)); n > 10 {
		t.Errorf("%d fields, Slack takes at most 10", n)
	}
}

// TestScheduleShown: /instances (and the Home tab, which shows the same
// rows) says an instance's office hours; "off" says nothing.
func TestScheduleShown(t *testing.T) {
	in := computebot.Instance{ID: "i-1", Type: "t3.small", State: computebot.InstanceRunning,
		Tags: map[string]string{computebot.TagSchedule: "weekdays 08:00-19:00 Europe/Berlin"}}
	if got := InstanceList([]InstanceRow{{Instance: in}}, 0, false, time.Now()).Blocks[1].Text; !strings.Contains(got, "office hours weekdays 08:00-19:00 Europe/Berlin") {
		t.Errorf("row %q", got)
	}
	in.Tags[computebot.TagSchedule] = "off"
	if got := InstanceList([]InstanceRow{{Instance: in}}, 0, false, time.Now()).Blocks[1].Text; strings.Contains(got, "office hours") {
		t.Errorf("row %q shows hours that are off", got)
	}
}

// TestLaunchFormChannel: opened from a channel the form posts there (no
// channel field); from the Home tab it asks, notify_channel first.
func TestLaunchFormChannel(t *testing.T) {
	spec := LaunchFormSpec{Types: []TypeChoice{{Name: "t3.small"}}, DefaultLease: "8 h", MaxHours: 72, Channel: "C1"}
	v := LaunchForm(spec)
	if v.Metadata != "C1" {
		t.Errorf("metadata %q", v.Metadata)
	}
	for _, b := range v.Blocks {
		if b.Field != nil && b.Field.ID == commands.FieldChannel {
			t.Error("a form opened from a channel asks for one")
		}
	}
	spec.Channel, spec.AskChannel, spec.NotifyIn = "", true, "COPS"
	var asked *Field
	for _, b := range LaunchForm(spec).Blocks {
		if b.Field != nil && b.Field.ID == commands.FieldChannel {
			asked = b.Field
		}
	}
	if asked == nil || asked.Kind != FieldChannel || asked.Initial != "COPS" {
		t.Errorf("channel field %+v, want one starting at notify_channel", asked)
	}
}
