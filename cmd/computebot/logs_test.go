package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// duplicateKeys returns the keys that appear twice in one object of the
// JSON value dec reads, with their paths ("component", "err.code").
func duplicateKeys(dec *json.Decoder, path string) []string {
	tok, err := dec.Token()
	if err != nil {
		return nil
	}
	var dups []string
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, _ := dec.Token()
			key, _ := k.(string)
			if seen[key] {
				dups = append(dups, path+key)
			}
			seen[key] = true
			dups = append(dups, duplicateKeys(dec, path+key+".")...)
		}
		_, _ = dec.Token()
	case json.Delim('['):
		for dec.More() {
			dups = append(dups, duplicateKeys(dec, path)...)
		}
		_, _ = dec.Token()
	}
	return dups
}

// TestListenLogLines runs a request's life and an idle stop and reads the
// bot's JSON log: each line has each key once (a logger's With and a call
// naming the same key would write it twice, which log systems read
// differently), and durations are Go durations, not nanoseconds.
func TestListenLogLines(t *testing.T) {
	b := newIdleBed(t)
	id := "i-0aaaa00000000003a"
	thread := b.seed(id, ana, 1.2, 150_000, nil)
	b.slash(ana, "/launch", "t2.micro --hours 2")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	b.waitThread(msg.TS, "is running")
	b.waitThread(thread, "looks idle")
	b.waitState(id, "stopped")
	b.stop()

	durations := 0
	for _, line := range strings.Split(strings.TrimSpace(b.stderr.String()), "\n") {
		if dups := duplicateKeys(json.NewDecoder(strings.NewReader(line)), ""); len(dups) > 0 {
			t.Errorf("keys %v twice in %s", dups, line)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		for _, k := range []string{"took", "grace", "for"} {
			v, ok := rec[k]
			if !ok {
				continue
			}
			durations++
			if s, isString := v.(string); !isString {
				t.Errorf("%s is %v, not a duration string: %s", k, v, line)
			} else if _, err := time.ParseDuration(s); err != nil {
				t.Errorf("%s = %q: %v", k, s, err)
			}
		}
	}
	if durations == 0 {
		t.Errorf("no line with a duration (took, grace, for) in the log:\n%s", b.stderr)
	}
}

func TestListenLoggerDurations(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf, slog.LevelInfo).Info("x", "grace", 30*time.Minute, "took", 1500*time.Microsecond, "n", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["grace"] != "30m0s" || rec["took"] != "1.5ms" || rec["n"] != float64(3) {
		t.Errorf("logged %s", buf.String())
	}
}
