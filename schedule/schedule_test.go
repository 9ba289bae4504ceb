package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParse(t *testing.T) {
	utc := time.UTC
	for _, tc := range []struct {
		in, canonical, err string
		zone               *time.Location // the default
	}{
		{in: "weekdays 08:00-19:00 Europe/Berlin", canonical: "weekdays 08:00-19:00 Europe/Berlin"},
		{in: "Daily 00:00-24:00 UTC", canonical: "daily 00:00-24:00 UTC"},
		{in: "mon-fri 8:30-17:00 America/New_York", canonical: "weekdays 08:30-17:00 America/New_York"},
		{in: "fri-mon 09:00-12:00 Asia/Tokyo", canonical: "mon,fri,sat,sun 09:00-12:00 Asia/Tokyo"},
		{in: "Monday,wed,FRI 22:00-06:00 Europe/London", canonical: "mon,wed,fri 22:00-06:00 Europe/London"},
		{in: "sat,sun 10:00-16:00 UTC", canonical: "weekends 10:00-16:00 UTC"},
		{in: "weekdays 08:00-19:00", zone: utc, canonical: "weekdays 08:00-19:00 UTC"},
		{in: "weekdays 08:00-19:00", err: "days, hours and a time zone"},
		{in: "workdays 08:00-19:00 UTC", err: `"workdays" is not a day`},
		{in: "mon-xyz 08:00-19:00 UTC", err: `"xyz" is not a day`},
		{in: "weekdays 8-19 UTC", err: `"8" is not a time of day`},
		{in: "weekdays 08:00 UTC", err: "hours are a range"},
		{in: "weekdays 25:00-26:00 UTC", err: `"25:00" is not a time of day`},
		{in: "weekdays 09:00-09:00 UTC", err: "start and end at the same time"},
		{in: "weekdays 08:00-19:00 CET", err: `"CET" is not an IANA time zone`},
		{in: "weekdays 08:00-19:00 Mars/Olympus", err: `"Mars/Olympus" is not a time zone I know`},
		{in: "weekdays 08:00-19:00 Local", err: "not an IANA time zone"},
	} {
		s, err := Parse(tc.in, tc.zone)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, want an error with %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("Parse(%q): %v", tc.in, err)
		case s.String() != tc.canonical:
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, s.String(), tc.canonical)
		default:
			back, err := Parse(s.String(), nil)
			if err != nil || back.String() != s.String() {
				t.Errorf("round trip of %q: %q, %v", s.String(), back.String(), err)
			}
		}
	}
}

func TestEventsWeek(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	s, err := Parse("weekdays 08:00-19:00 Europe/Berlin", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Monday 2026-06-01 00:00 Berlin to the next Monday.
	from := time.Date(2026, 6, 1, 0, 0, 0, 0, berlin)
	ev := s.Events(from, from.AddDate(0, 0, 7))
	if len(ev) != 10 {
		t.Fatalf("%d events in a week, want 10: %v", len(ev), ev)
	}
	if !ev[0].Start || !ev[0].At.Equal(time.Date(2026, 6, 1, 8, 0, 0, 0, berlin)) || ev[1].Start || !ev[1].At.Equal(time.Date(2026, 6, 1, 19, 0, 0, 0, berlin)) {
		t.Errorf("Monday: %v", ev[:2])
	}
	if !s.Within(time.Date(2026, 6, 3, 12, 0, 0, 0, berlin)) || s.Within(time.Date(2026, 6, 3, 20, 0, 0, 0, berlin)) || s.Within(time.Date(2026, 6, 6, 12, 0, 0, 0, berlin)) {
		t.Error("Within is wrong on Wednesday noon, Wednesday evening or Saturday noon")
	}
	// An event exactly at the window's end is in it; at its start is not.
	if got := s.Events(time.Date(2026, 6, 1, 8, 0, 0, 0, berlin), time.Date(2026, 6, 1, 19, 0, 0, 0, berlin)); len(got) != 1 || got[0].Start {
		t.Errorf("(08:00, 19:00] = %v, want the end alone", got)
	}
	if n := s.Next(time.Date(2026, 6, 5, 20, 0, 0, 0, berlin)); !n.Start || !n.At.Equal(time.Date(2026, 6, 8, 8, 0, 0, 0, berlin)) {
		t.Errorf("after Friday evening the next event is %v, want Monday's start", n)
	}
}

func TestOvernight(t *testing.T) {
	s, err := Parse("fri 22:00-06:00 UTC", nil)
	if err != nil {
		t.Fatal(err)
	}
	fri := time.Date(2026, 6, 5, 0, 0, 0, 0, time.UTC)
	ev := s.Events(fri, fri.AddDate(0, 0, 3))
	if len(ev) != 2 || !ev[0].At.Equal(fri.Add(22*time.Hour)) || !ev[1].At.Equal(fri.Add(30*time.Hour)) || ev[1].Start {
		t.Errorf("overnight events %v", ev)
	}
	if !s.Within(fri.Add(29*time.Hour)) || s.Within(fri.Add(31*time.Hour)) {
		t.Error("Within is wrong on Saturday 05:00 or 07:00")
	}
}

// TestDaylightSaving: across both changes of the year every day has one
// start and one end, none skipped and none doubled, also for hours that
// begin or end in the skipped or the repeated hour; ends stay after their
// starts.
func TestDaylightSaving(t *testing.T) {
	for _, tc := range []struct {
		zone string
		day  time.Time // a change day (local date)
	}{
		{"Europe/Berlin", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},    // 02:00 → 03:00
		{"Europe/Berlin", time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)},   // 03:00 → 02:00
		{"America/New_York", time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)},  // 02:00 → 03:00
		{"America/New_York", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}, // 02:00 → 01:00
	} {
		loc := mustZone(t, tc.zone)
		for _, hours := range []string{"08:00-19:00", "02:30-19:00", "01:30-02:30", "22:00-02:30"} {
			s, err := Parse("daily "+hours+" "+tc.zone, nil)
			if err != nil {
				t.Fatal(err)
			}
			from := time.Date(tc.day.Year(), tc.day.Month(), tc.day.Day()-3, 12, 0, 0, 0, loc)
			to := time.Date(tc.day.Year(), tc.day.Month(), tc.day.Day()+3, 12, 0, 0, 0, loc)
			ev := s.Events(from, to)
			starts, ends := 0, 0
			for i, e := range ev {
				if e.Start {
					starts++
				} else {
					ends++
				}
				if i > 0 && !ev[i-1].At.Before(e.At) {
					t.Errorf("%s %s: events out of order or doubled: %v then %v", tc.zone, hours, ev[i-1].At, e.At)
				}
				if i > 0 && e.Start == ev[i-1].Start {
					t.Errorf("%s %s: two %v in a row at %v", tc.zone, hours, e.Start, e.At)
				}
			}
			if starts != 6 || ends != 6 {
				t.Errorf("%s %s around %s: %d starts and %d ends over 6 days, want 6 each: %v", tc.zone, hours, tc.day.Format("2006-01-02"), starts, ends, ev)
			}
			// Walking minute by minute, as the scheduler does, sees each
			// event exactly once.
			seen := 0
			for t0 := from; t0.Before(to); t0 = t0.Add(time.Minute) {
				seen += len(s.Events(t0, t0.Add(time.Minute)))
			}
			if seen != len(ev) {
				t.Errorf("%s %s: minute steps saw %d events, want %d", tc.zone, hours, seen, len(ev))
			}
		}
	}
}

// TestMidnightChanges: where clocks change at midnight (the day begins at
// 01:00), days still step one by one and hours are found.
func TestMidnightChanges(t *testing.T) {
	for _, tc := range []struct {
		zone string
		day  time.Time
	}{
		{"America/Santiago", time.Date(2026, 9, 6, 0, 0, 0, 0, time.UTC)},
		{"America/Havana", time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)},
		{"Atlantic/Azores", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
	} {
		loc := mustZone(t, tc.zone)
		s, err := Parse("daily 08:00-19:00 "+tc.zone, nil)
		if err != nil {
			t.Fatal(err)
		}
		from := time.Date(tc.day.Year(), tc.day.Month(), tc.day.Day()-2, 12, 0, 0, 0, loc)
		done := make(chan []Event, 1)
		go func() { done <- s.Events(from, from.AddDate(0, 0, 4)) }()
		select {
		case ev := <-done:
			if len(ev) != 8 {
				t.Errorf("%s: %d events over 4 days, want 8: %v", tc.zone, len(ev), ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Events does not return", tc.zone)
		}
		noonThen := time.Date(tc.day.Year(), tc.day.Month(), tc.day.Day(), 10, 0, 0, 0, loc)
		if !s.Within(noonThen) {
			t.Errorf("%s: 10:00 on the change day is not within 08:00-19:00", tc.zone)
		}
	}
}

// TestSkippedHourKeepsTheDay: hours wholly inside the skipped hour still
// happen (moved forward, with their length).
func TestSkippedHourKeepsTheDay(t *testing.T) {
	loc := mustZone(t, "Europe/Berlin")
	s, err := Parse("daily 02:30-03:15 Europe/Berlin", nil)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 3, 29, 0, 0, 0, 0, loc)
	ev := s.Events(day, day.Add(24*time.Hour))
	if len(ev) != 2 || !ev[0].Start || !ev[1].At.After(ev[0].At) || ev[1].At.Sub(ev[0].At) != 45*time.Minute {
		t.Errorf("events on the spring change: %v", ev)
	}
}
