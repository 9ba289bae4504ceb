package commands

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse feeds arbitrary text to every entry point. The seed corpus is
// in testdata/fuzz/FuzzParse; run with: go test -fuzz=FuzzParse ./commands/
func FuzzParse(f *testing.F) {
	slashes := []string{"/launch", "/instances", "/stop", "/start", "/terminate", "/extend", "/lambda", "/computebot", "/nope"}
	f.Fuzz(func(t *testing.T, text string) {
		checkInvariants(t, "ParseText", ParseText(text))
		for _, name := range slashes {
			checkInvariants(t, "ParseSlash "+name, ParseSlash(name, text))
		}
		if HelpText(text) == "" {
			t.Fatal("HelpText returned nothing")
		}
	})
}

func checkInvariants(t *testing.T, entry string, r Result) {
	t.Helper()
	switch r.Outcome {
	case Run:
		if r.Command == nil {
			t.Fatalf("%s: Run without a command", entry)
		}
		if r.Reply != "" {
			t.Fatalf("%s: Run with a reply %q", entry, r.Reply)
		}
		checkCommand(t, entry, r.Command)
	case Reply:
		if strings.TrimSpace(r.Reply) == "" {
			t.Fatalf("%s: empty reply", entry)
		}
		if r.Command != nil {
			t.Fatalf("%s: Reply with a command %#v", entry, r.Command)
		}
		if !utf8.ValidString(r.Reply) {
			t.Fatalf("%s: reply is not UTF-8: %q", entry, r.Reply)
		}
	case Ignore:
		if r.Command != nil || r.Reply != "" {
			t.Fatalf("%s: Ignore with content %#v %q", entry, r.Command, r.Reply)
		}
		if strings.HasPrefix(entry, "ParseSlash") {
			t.Fatalf("%s: a slash command was ignored", entry)
		}
	default:
		t.Fatalf("%s: outcome %d", entry, r.Outcome)
	}
}

// checkCommand asserts that what the parser lets through is valid.
func checkCommand(t *testing.T, entry string, c Command) {
	t.Helper()
	target := func(s string) {
		if s == "" || (strings.HasPrefix(strings.ToLower(s), "i-") && !IsInstanceID(s)) || utf8.RuneCountInString(s) > MaxTargetLen {
			t.Fatalf("%s: bad target %q", entry, s)
		}
	}
	hours := func(h int) {
		if h < MinHours || h > MaxHours {
			t.Fatalf("%s: hours %d out of range", entry, h)
		}
	}
	switch c := c.(type) {
	case *Launch:
		if !IsInstanceTypeName(c.InstanceType) {
			t.Fatalf("%s: bad type %q", entry, c.InstanceType)
		}
		if c.HoursSet {
			hours(c.Hours)
		} else if c.Hours != 0 {
			t.Fatalf("%s: hours %d without HoursSet", entry, c.Hours)
		}
		if c.AMI != "" && !IsAMIRef(c.AMI) {
			t.Fatalf("%s: bad AMI %q", entry, c.AMI)
		}
		if utf8.RuneCountInString(c.Name) > MaxNameLen || utf8.RuneCountInString(c.Reason) > MaxReasonLen {
			t.Fatalf("%s: name or reason too long", entry)
		}
	case *Stop:
		target(c.Target)
	case *Start:
		target(c.Target)
	case *Terminate:
		target(c.Target)
	case *Extend:
		target(c.Target)
		hours(c.Hours)
	case *LambdaInvoke:
		if c.Function == "" {
			t.Fatalf("%s: invoke without a function", entry)
		}
		if c.Payload != "" && (!json.Valid([]byte(c.Payload)) || len(c.Payload) > MaxPayloadBytes) {
			t.Fatalf("%s: bad payload %q", entry, c.Payload)
		}
	case *Help:
		if strings.HasPrefix(HelpText(c.Topic), "there is no command") {
			t.Fatalf("%s: help topic %q unknown to HelpText", entry, c.Topic)
		}
	case *Audit:
		if c.Since < time.Minute || c.Since > MaxAuditSince {
			t.Fatalf("%s: audit since %s out of range", entry, c.Since)
		}
		if (c.Instance != "" && !IsInstanceID(c.Instance)) || (c.User != "" && !IsUserID(c.User)) || (c.Instance != "" && c.User != "") {
			t.Fatalf("%s: bad audit filter %+v", entry, c)
		}
	case *SetSchedule:
		target(c.Target)
		if !c.Off && c.Hours.Zone == nil {
			t.Fatalf("%s: a schedule without a zone %+v", entry, c)
		}
	case *Keep:
		target(c.Target)
	case *Connect:
		target(c.Target)
	case *Instances, *LambdaList, *Status, *Idle, *OpenLaunchForm, *SSHKeyAdd, *SSHKeyList, *SSHKeyRemove:
	default:
		t.Fatalf("%s: unexpected command %T", entry, c)
	}
}
