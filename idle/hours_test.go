package idle

import (
	"context"
	"testing"
	"time"

	"github.com/computebot/computebot"
)

func (r *rig) hours(t testing.TB) {
	t.Helper()
	if err := r.Hours(context.Background()); err != nil {
		t.Fatalf("Hours: %v", err)
	}
}

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// scheduled adds a stopped instance with office hours.
func (r *rig) scheduled(id, hours string) {
	r.cloud.add(id, t0.Add(-24*time.Hour), map[string]string{computebot.TagSchedule: hours, computebot.TagRequest: "R-" + id})
	r.cloud.setState(id, computebot.InstanceStopped)
}

// TestOfficeHours: the instance is started when its hours begin (its
// address posted once it runs), gets a notice when they end and is stopped
// after the grace; stopped by hand during its hours it stays stopped until
// the next start.
func TestOfficeHours(t *testing.T) {
	loc := berlin(t)
	r := newRig(t, testConfig())
	r.clock.Set(time.Date(2026, 6, 1, 7, 58, 0, 0, loc)) // Monday
	r.scheduled("i-1", "weekdays 08:00-19:00 Europe/Berlin")
	r.hours(t)
	if n := r.cloud.count("start"); n != 0 {
		t.Fatalf("started before the hours: %v", r.cloud.Calls())
	}

	r.clock.Set(time.Date(2026, 6, 1, 8, 1, 0, 0, loc))
	r.hours(t)
	if n := r.cloud.count("start i-1"); n != 1 {
		t.Fatalf("start calls %d at 08:01, want 1: %v", n, r.cloud.Calls())
	}
	if a := r.audits.entries(); len(a) != 1 || a[0].Action != AuditHoursStart || a[0].Actor != computebot.SystemActor || a[0].Result != "ok" {
		t.Errorf("audit %+v", a)
	}
	r.clock.Advance(time.Minute)
	r.hours(t)
	r.hours(t)
	if got := r.notes.Started(); len(got) != 1 || got[0] != "i-1 weekdays 08:00-19:00 Europe/Berlin" {
		t.Errorf("addresses posted %q, want one", got)
	}

	// 19:00: a notice, then the stop after the grace.
	r.clock.Set(time.Date(2026, 6, 1, 19, 0, 30, 0, loc))
	r.hours(t)
	posts := r.notes.Posts()
	if len(posts) != 1 || posts[0].Reason != ReasonHours || posts[0].Hours != "weekdays 08:00-19:00 Europe/Berlin" || !posts[0].HoursEnded.Equal(time.Date(2026, 6, 1, 19, 0, 0, 0, loc)) {
		t.Fatalf("notices %+v, want one office-hours notice", posts)
	}
	r.hours(t) // no second notice
	if n := len(r.notes.Posts()); n != 1 {
		t.Fatalf("%d notices, want 1", n)
	}
	r.clock.Advance(31 * time.Minute)
	r.checkDue(t)
	if n := r.cloud.count("stop i-1"); n != 1 {
		t.Fatalf("stop calls %d after the grace, want 1: %v", n, r.cloud.Calls())
	}
	// The owner heard of both: the start and the stop (their Home tab).
	if got := r.changed.all(); len(got) != 2 || got[0] != "Ui-1" || got[1] != "Ui-1" {
		t.Errorf("changes told %q, want the owner twice", got)
	}
	if n := r.mem.notice(t, "i-1"); n.State != StateStopped || n.How != SettledStopped {
		t.Errorf("notice %+v, want stopped", n)
	}
	r.hours(t)
	if n := len(r.notes.Posts()); n != 1 {
		t.Errorf("%d notices after the stop, want 1", n)
	}

	// Tuesday: started at 08:00, stopped by hand at 10:00: it stays stopped.
	r.clock.Set(time.Date(2026, 6, 2, 8, 0, 10, 0, loc))
	r.hours(t)
	if n := r.cloud.count("start i-1"); n != 2 {
		t.Fatalf("start calls %d on Tuesday, want 2 in all", n)
	}
	r.clock.Set(time.Date(2026, 6, 2, 10, 0, 0, 0, loc))
	r.cloud.setState("i-1", computebot.InstanceStopped)
	for _, hm := range [][2]int{{10, 1}, {12, 0}, {18, 59}, {19, 1}, {23, 0}} {
		r.clock.Set(time.Date(2026, 6, 2, hm[0], hm[1], 0, 0, loc))
		r.hours(t)
	}
	if n := r.cloud.count("start i-1"); n != 2 {
		t.Errorf("start calls %d after a stop by hand, want still 2", n)
	}
	if n := len(r.notes.Posts()); n != 1 {
		t.Errorf("%d notices for a stopped instance, want still 1", n)
	}
	// The clock jumps to Saturday (the bot was down): Wednesday's to
	// Friday's starts are no longer current, and Saturday has no hours.
	r.clock.Set(time.Date(2026, 6, 6, 8, 1, 0, 0, loc))
	r.hours(t)
	if n := r.cloud.count("start i-1"); n != 2 {
		t.Errorf("start calls %d after the jump, want still 2", n)
	}
}

// TestOfficeHoursKeepRunning: Keep running on the end-of-hours notice
// snoozes it; when the snooze is over, the still-running instance gets a
// new notice.
func TestOfficeHoursKeepRunning(t *testing.T) {
	loc := berlin(t)
	r := newRig(t, testConfig())
	r.clock.Set(time.Date(2026, 6, 1, 18, 50, 0, 0, loc))
	r.scheduled("i-1", "daily 08:00-19:00 Europe/Berlin")
	r.cloud.setState("i-1", computebot.InstanceRunning)
	r.hours(t)
	r.clock.Set(time.Date(2026, 6, 1, 19, 1, 0, 0, loc))
	r.hours(t)
	if _, err := r.Keep(t.Context(), "i-1", "UOWNER"); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	r.hours(t)
	if n := len(r.notes.Posts()); n != 1 {
		t.Fatalf("%d notices during the snooze, want 1", n)
	}
	r.clock.Advance(4 * time.Hour) // the snooze (4 h) is over
	r.hours(t)
	if posts := r.notes.Posts(); len(posts) != 2 || posts[1].Reason != ReasonHours || posts[1].Episode == posts[0].Episode {
		t.Errorf("notices %+v, want a second office-hours notice", posts)
	}
}

// TestOfficeHoursDaylightSaving walks the clock minute by minute over both
// daylight-saving changes of 2026 in Berlin, with hours that begin in the
// hour the change skips (02:30 becomes 03:30) or repeats: one start and one notice a day, none
// skipped or doubled.
func TestOfficeHoursDaylightSaving(t *testing.T) {
	loc := berlin(t)
	for _, day := range []time.Time{time.Date(2026, 3, 29, 0, 0, 0, 0, loc), time.Date(2026, 10, 25, 0, 0, 0, 0, loc)} {
		t.Run(day.Format("2006-01-02"), func(t *testing.T) {
			r := newRig(t, testConfig())
			from := day.Add(-12 * time.Hour)
			r.clock.Set(from)
			r.scheduled("i-1", "daily 02:30-06:00 Europe/Berlin")
			for now := from; now.Before(day.Add(60 * time.Hour)); now = now.Add(time.Minute) {
				r.clock.Set(now)
				r.hours(t)
				r.checkDue(t) // the grace (30 min) ends in a stop
			}
			// Three days: the change day and the two after it.
			if n := r.cloud.count("start i-1"); n != 3 {
				t.Errorf("%d starts over three days, want 3: %v", n, r.cloud.Calls())
			}
			if n := len(r.notes.Posts()); n != 3 {
				t.Errorf("%d end-of-hours notices over three days, want 3", n)
			}
		})
	}
}

// TestOfficeHoursLeaseEnded: an instance whose lease has ended is not
// started for its hours (it would only be stopped for its lease).
func TestOfficeHoursLeaseEnded(t *testing.T) {
	loc := berlin(t)
	r := newRig(t, testConfig())
	r.clock.Set(time.Date(2026, 6, 1, 7, 59, 0, 0, loc))
	r.scheduled("i-1", "weekdays 08:00-19:00 Europe/Berlin")
	r.cloud.setTag("i-1", computebot.TagExpiresAt, time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC).Format(time.RFC3339))
	r.hours(t)
	r.clock.Set(time.Date(2026, 6, 1, 8, 1, 0, 0, loc))
	r.hours(t)
	if n := r.cloud.count("start"); n != 0 {
		t.Errorf("started an instance whose lease ended: %v", r.cloud.Calls())
	}
}
