package main

import (
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/testclock"
)

// TestOfficeHoursEndToEnd drives office hours through the real binary's
// wiring with an injected clock, over the spring daylight-saving change in
// Berlin (2026-03-29, 02:00 → 03:00): hours from 02:30 start once that day
// (at 03:30, when the clocks jump), the new address is posted in the
// instance's thread; stopped by hand during its hours, it stays stopped;
// the next day it starts again, once.
func TestOfficeHoursEndToEnd(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	clock := testclock.New(time.Date(2026, 3, 28, 12, 0, 0, 0, loc))
	b := newBedWith(t, func(m *Main) { m.IdleCheckEvery = 100 * time.Millisecond; m.Now = clock.Now },
		withConfig(idleConfig), withTimings(func(o *flow.Options) { o.NoticeInterval = 5 * time.Millisecond }))
	id := "i-0aaaa0000000000f1"
	thread := b.seed(id, ana, 1, 1000, map[string]string{"computebot:schedule": "daily 02:30-06:00 Europe/Berlin"},
		func(in *fakeaws.Instance) { in.State = "stopped" })
	starts := func() int { return len(b.aws.Calls("StartInstances")) }
	settle := func() { time.Sleep(600 * time.Millisecond) } // several passes at 100 ms

	settle() // the first pass records where the hours stand
	clock.Set(time.Date(2026, 3, 29, 3, 20, 0, 0, loc))
	settle()
	if n := starts(); n != 0 {
		t.Fatalf("%d starts before 03:30 on the change day (02:30 does not exist: it is 03:30)", n)
	}
	clock.Set(time.Date(2026, 3, 29, 3, 31, 0, 0, loc))
	b.waitState(id, "running")
	started := b.waitThread(thread, "Office hours")
	if text := visible(started); !strings.Contains(text, "began: I started `"+id+"`") || !strings.Contains(text, "IP `") {
		t.Errorf("start message: %s", text)
	}

	// Stopped by hand during its hours: it stays stopped.
	b.slash(ana, "/stop", id)
	b.waitState(id, "stopped")
	for _, hm := range [][2]int{{4, 0}, {5, 59}, {6, 1}, {12, 0}} {
		clock.Set(time.Date(2026, 3, 29, hm[0], hm[1], 0, 0, loc))
		settle()
	}
	if n := starts(); n != 1 {
		t.Fatalf("%d starts after a stop by hand, want still 1", n)
	}
	if n := len(b.notices(id)); n != 0 {
		t.Errorf("%d notices for an instance stopped by hand", n)
	}

	// Monday (summer time now): started again at 02:30, once.
	clock.Set(time.Date(2026, 3, 30, 2, 31, 0, 0, loc))
	b.waitState(id, "running")
	settle()
	if n := starts(); n != 2 {
		t.Errorf("%d starts by Monday, want 2", n)
	}
	// 06:00: the end of hours, a notice, and the stop after the grace.
	clock.Set(time.Date(2026, 3, 30, 6, 0, 30, 0, loc))
	notice := b.waitThread(thread, "office hours")
	if text := visible(notice); !strings.Contains(text, "ended") || strings.Join(b.slack.Buttons(channel, notice.TS), ",") != "Keep running,Stop now" {
		t.Errorf("end-of-hours notice: %s (buttons %v)", text, b.slack.Buttons(channel, notice.TS))
	}
	clock.Set(time.Date(2026, 3, 30, 6, 40, 0, 0, loc)) // past the grace
	b.waitState(id, "stopped")
}
