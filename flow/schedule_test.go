package flow_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
)

// TestSchedule: /schedule tags the instance with its office hours in their
// canonical text and says in the thread what happens next; off takes them
// away; someone else's instance is refused; each is audited.
func TestSchedule(t *testing.T) {
	e := newEnv(t)
	e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch.Add(-time.Hour), "R-BOX"))
	o := e.slashOrigin(ana)
	e.slash(o, "/schedule", "box mon-fri 8:00-19:00 Europe/Berlin")
	waitFor(t, "the schedule announced", func() bool { return len(e.chat.posts(channel, requestThread)) == 1 })
	in, _ := e.cloud.get(boxID)
	if got := in.Tags[computebot.TagSchedule]; got != "weekdays 08:00-19:00 Europe/Berlin" {
		t.Errorf("tag %q", got)
	}
	// epoch is Saturday 2026-11-28 09:00 UTC: next comes Monday's start.
	msg := words(e.chat.posts(channel, requestThread)[0].Msg)
	if !strings.Contains(msg, "gave `"+boxID+"` office hours: weekdays 08:00-19:00 Europe/Berlin") || !strings.Contains(msg, "next it starts 2026-11-30 07:00 UTC") {
		t.Errorf("announcement: %s", msg)
	}

	e.slash(o, "/schedule", boxID+" off")
	waitFor(t, "off announced", func() bool { return len(e.chat.posts(channel, requestThread)) == 2 })
	if in, _ := e.cloud.get(boxID); in.Tags[computebot.TagSchedule] != "off" {
		t.Errorf("tag after off: %q", in.Tags[computebot.TagSchedule])
	}

	other := e.slashOrigin(eve)
	e.slash(other, "/schedule", boxID+" daily 09:00-17:00 UTC")
	waitFor(t, "the refusal", func() bool { return len(e.chat.private(other)) == 1 })
	if got := words(e.chat.private(other)[0].Msg); !strings.Contains(got, "Only its owner or an approver") {
		t.Errorf("refusal: %s", got)
	}
	if got, want := e.auditActions(), []string{"UANA schedule " + boxID + " ok", "UANA schedule " + boxID + " ok"}; !slices.Equal(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}
}

// TestDefaultSchedule: launch.default_schedule tags every new instance at
// launch (as of the request).
func TestDefaultSchedule(t *testing.T) {
	e := newEnv(t, withConfig(func(c *config.Config) { c.Launch.DefaultSchedule = "mon-fri 09:00-17:00 America/New_York" }))
	r, _ := e.request(ana, "t2.micro")
	e.decide(r, bo, true)
	e.waitState(r.ID, sDone)
	if got := e.cloud.launchSpecs()[0].Tags[computebot.TagSchedule]; got != "weekdays 09:00-17:00 America/New_York" {
		t.Errorf("launch tag %q", got)
	}
}
