// Package schedule reads office hours ("weekdays 08:00-19:00 Europe/Berlin")
// and finds when they begin and end. It knows nothing of EC2 or Slack: the
// idle scheduler acts on the starts and ends it reports, /schedule and the
// config parse with it, and the instance tag computebot:schedule holds a
// schedule's canonical text (String).
//
// Times are wall-clock times in the schedule's IANA zone. Each day of the
// schedule has exactly one start and one end, computed from its calendar
// date in that zone (never by adding 24 hours): on a daylight-saving change
// a start or end that falls in the skipped hour happens once, moved forward
// with the clocks (02:30 → 03:30), and one in the repeated hour happens once
// too. An end at or before the start is on the
// next day (overnight hours).
package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Off is the text that turns a schedule off (/schedule INSTANCE off); the
// tag keeps it so that the console shows the choice.
const Off = "off"

// Schedule is office hours: on the given weekdays, from Start to End (wall
// clock, in Zone). End ≤ Start means the hours run past midnight.
type Schedule struct {
	Days  [7]bool // indexed by time.Weekday
	Start Clock
	End   Clock
	Zone  *time.Location
}

// Clock is a time of day in minutes after midnight.
type Clock int

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// Event is a start or an end of hours.
type Event struct {
	At    time.Time
	Start bool // false: the end
	// Day is the calendar day (in the schedule's zone) whose hours these are.
	Day time.Time
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Parse reads "DAYS HH:MM-HH:MM ZONE". DAYS is weekdays, weekends, daily,
// a day (mon, Monday), a range (mon-fri, fri-mon) or a comma list of those
// (mon,wed,fri-sun). ZONE is an IANA name (Europe/Berlin, UTC); it may be
// left out when defaultZone is given. Errors are meant for the person who
// typed it.
func Parse(text string, defaultZone *time.Location) (Schedule, error) {
	fields := strings.Fields(text)
	switch {
	case len(fields) == 3:
	case len(fields) == 2 && defaultZone != nil:
		fields = append(fields, "")
	default:
		return Schedule{}, errors.New("a schedule is days, hours and a time zone, e.g. `weekdays 08:00-19:00 Europe/Berlin`")
	}
	var s Schedule
	var err error
	if s.Days, err = parseDays(fields[0]); err != nil {
		return Schedule{}, err
	}
	from, to, ok := strings.Cut(fields[1], "-")
	if !ok {
		return Schedule{}, fmt.Errorf("hours are a range like 08:00-19:00, not %q", fields[1])
	}
	if s.Start, err = parseClock(from); err != nil {
		return Schedule{}, err
	}
	if s.End, err = parseClock(to); err != nil {
		return Schedule{}, err
	}
	if s.Start == s.End {
		return Schedule{}, fmt.Errorf("the hours %s start and end at the same time", fields[1])
	}
	s.Zone = defaultZone
	if fields[2] != "" {
		if s.Zone, err = zone(fields[2]); err != nil {
			return Schedule{}, err
		}
	}
	return s, nil
}

// zone loads an IANA time zone; "Local" and abbreviations such as CET are
// refused (they are not what people mean, or mean different things).
func zone(name string) (*time.Location, error) {
	if name == "Local" || (!strings.Contains(name, "/") && name != "UTC") {
		return nil, fmt.Errorf("%q is not an IANA time zone; use a name like Europe/Berlin, America/New_York or UTC", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not a time zone I know; use a name like Europe/Berlin, America/New_York or UTC", name)
	}
	return loc, nil
}

func parseDays(s string) ([7]bool, error) {
	var days [7]bool
	switch strings.ToLower(s) {
	case "daily":
		return [7]bool{true, true, true, true, true, true, true}, nil
	case "weekdays":
		return [7]bool{false, true, true, true, true, true, false}, nil
	case "weekends":
		return [7]bool{true, false, false, false, false, false, true}, nil
	}
	for part := range strings.SplitSeq(strings.ToLower(s), ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, ok := dayIndex(from)
		if !ok {
			return days, fmt.Errorf("%q is not a day; days are weekdays, weekends, daily, mon…sun, a range like mon-fri, or a list like mon,wed,fri", part)
		}
		b := a
		if isRange {
			if b, ok = dayIndex(to); !ok {
				return days, fmt.Errorf("%q is not a day; days are weekdays, weekends, daily, mon…sun, a range like mon-fri, or a list like mon,wed,fri", to)
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			days[d] = true
			if d == b {
				break
			}
		}
	}
	return days, nil
}

// dayIndex reads mon, Monday, MON…
func dayIndex(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 3 {
		return 0, false
	}
	i := slices.Index(dayNames, s[:3])
	if i < 0 || !strings.HasPrefix(strings.ToLower(time.Weekday(i).String()), s) {
		return 0, false
	}
	return i, true
}

func parseClock(s string) (Clock, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not a time of day like 08:00 or 19:30", s)
	}
	return Clock(hh*60 + mm), nil
}

// String is the canonical text: "weekdays 08:00-19:00 Europe/Berlin",
// "mon,wed,fri 09:00-17:00 UTC". Parse(s.String()) gives s back.
func (s Schedule) String() string {
	return s.DaysString() + " " + s.Start.String() + "-" + s.End.String() + " " + s.Zone.String()
}

// DaysString is the days as Parse reads them.
func (s Schedule) DaysString() string {
	switch s.Days {
	case [7]bool{true, true, true, true, true, true, true}:
		return "daily"
	case [7]bool{false, true, true, true, true, true, false}:
		return "weekdays"
	case [7]bool{true, false, false, false, false, false, true}:
		return "weekends"
	}
	var out []string
	for _, d := range []int{1, 2, 3, 4, 5, 6, 0} { // Monday first
		if s.Days[d] {
			out = append(out, dayNames[d])
		}
	}
	return strings.Join(out, ",")
}

// overnight: the hours end on the day after they start.
func (s Schedule) overnight() bool { return s.End <= s.Start }

// at is the instant of a wall-clock time on a calendar day in the zone. A
// time that does not exist that day (in the hour skipped when clocks go
// forward) is moved forward by the skip, like the clocks: 02:30 becomes
// 03:30. time.Date alone may move it back instead, which could put an end
// before its start.
func (s Schedule) at(day time.Time, c Clock) time.Time {
	y, m, d := day.Date()
	t := time.Date(y, m, d, int(c)/60, int(c)%60, 0, 0, s.Zone)
	for i := 0; i < 8 && wall(t, day) < c; i++ {
		t = t.Add(15 * time.Minute)
	}
	return t
}

// wall is t's time of day in minutes, counting from the start of day (a
// time on the day after counts 24 h more).
func wall(t, day time.Time) Clock {
	c := Clock(t.Hour()*60 + t.Minute())
	if ty, tm, td := t.Date(); ty != day.Year() || tm != day.Month() || td != day.Day() {
		c += 24 * 60
	}
	return c
}

// hours are the start and end of one day's hours. The end stays after the
// start even when the start moved forward with the clocks (hours within
// the skipped hour keep their length).
func (s Schedule) hours(day time.Time) (start, end time.Time) {
	start = s.at(day, s.Start)
	endDay := day
	if s.overnight() {
		endDay = nextDay(day)
	}
	end = s.at(endDay, s.End)
	if !end.After(start) {
		length := s.End - s.Start
		if s.overnight() {
			length += 24 * 60
		}
		end = start.Add(time.Duration(length) * time.Minute)
	}
	return start, end
}

// noon is a calendar day as an instant: noon exists on every day in every
// zone (midnight does not where clocks change at 00:00), so stepping from
// one day to the next by date never stands still.
func noon(y int, m time.Month, d int, loc *time.Location) time.Time {
	return time.Date(y, m, d, 12, 0, 0, 0, loc)
}

func nextDay(day time.Time) time.Time {
	return noon(day.Year(), day.Month(), day.Day()+1, day.Location())
}

// Events are the starts and ends in (after, upTo], in order.
func (s Schedule) Events(after, upTo time.Time) []Event {
	var out []Event
	// From two days before (an overnight end belongs to the day before)
	// to the last day; days are stepped as calendar dates, never as 24 h.
	first := after.In(s.Zone)
	first = noon(first.Year(), first.Month(), first.Day()-2, s.Zone)
	last := upTo.In(s.Zone)
	last = noon(last.Year(), last.Month(), last.Day(), s.Zone)
	for day := first; !day.After(last); day = nextDay(day) {
		if !s.Days[day.Weekday()] {
			continue
		}
		start, end := s.hours(day)
		for _, e := range []Event{{At: start, Start: true, Day: day}, {At: end, Day: day}} {
			if e.At.After(after) && !e.At.After(upTo) {
				out = append(out, e)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.At.Compare(b.At) })
	return out
}

// Within reports whether t falls within the hours.
func (s Schedule) Within(t time.Time) bool {
	local := t.In(s.Zone)
	for _, back := range []int{0, 1} {
		day := noon(local.Year(), local.Month(), local.Day()-back, s.Zone)
		if !s.Days[day.Weekday()] {
			continue
		}
		start, end := s.hours(day)
		if !t.Before(start) && t.Before(end) {
			return true
		}
	}
	return false
}

// Next is the first start or end after t (the zero Event when the schedule
// has no days, which Parse never returns).
func (s Schedule) Next(t time.Time) Event {
	if ev := s.Events(t, t.AddDate(0, 0, 9)); len(ev) > 0 {
		return ev[0]
	}
	return Event{}
}
