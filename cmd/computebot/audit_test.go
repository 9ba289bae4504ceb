package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/store"
)

// auditDir is a config and a store holding entries, none open.
type auditDir struct {
	config, db string
	now        time.Time
}

func newAuditDir(t *testing.T, entries ...computebot.AuditEntry) auditDir {
	t.Helper()
	dir := t.TempDir()
	d := auditDir{config: filepath.Join(dir, "config.yaml"), db: filepath.Join(dir, "data", "computebot.db"), now: time.Now()}
	if err := os.WriteFile(d.config, []byte(fmt.Sprintf(baseConfig, d.db)), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(d.db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := db.Audit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d auditDir) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runAudit(append([]string{"--config", d.config}, args...), &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

// sampleAudit is a launch, its approval, a refused stop and an old entry.
func sampleAudit(now time.Time) []computebot.AuditEntry {
	return []computebot.AuditEntry{
		{Time: now.Add(-10 * 24 * time.Hour), Actor: ana, Action: "stop", Target: "i-0000000000000000a", Result: "ok"},
		{Time: now.Add(-2 * time.Hour), Actor: bo, Action: "approve", RequestID: "R-AAAA2222", Result: "ok"},
		{Time: now.Add(-2*time.Hour + time.Second), Actor: bo, Action: "launch", RequestID: "R-AAAA2222", Target: "i-0123456789abcdef0", Result: "ok", Detail: "t3.small\nami-0123456789abcdef0"},
		{Time: now.Add(-time.Hour), Actor: computebot.SystemActor, Action: "idle-stop", Target: "i-0123456789abcdef0", Result: "IncorrectInstanceState", Detail: "The instance is not in a state\tfrom which it can be stopped \x1b[31m"},
	}
}

func TestAuditCLITable(t *testing.T) {
	now := time.Now()
	d := newAuditDir(t, sampleAudit(now)...)
	code, out, errOut := d.run(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines (header and the 3 entries of the last 7 days):\n%s", len(lines), out)
	}
	for _, col := range []string{"TIME (UTC)", "ACTOR", "ACTION", "TARGET", "REQUEST", "RESULT", "DETAIL"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %s: %q", col, lines[0])
		}
	}
	// Oldest first, times in UTC, empty cells as "-", one line each.
	approve := sampleAudit(now)[1]
	for i, want := range [][]string{
		{approve.Time.UTC().Format("2006-01-02 15:04:05"), "UBO", "approve", "-", "R-AAAA2222", "ok", "-"},
		{"UBO", "launch", "i-0123456789abcdef0", "R-AAAA2222", "ok", "t3.small ami-0123456789abcdef0"},
		{"computebot", "idle-stop", "i-0123456789abcdef0", "-", "IncorrectInstanceState", "The instance is not in a state from which it can be stopped [31m"},
	} {
		line := lines[i+1]
		at := 0
		for _, w := range want {
			j := strings.Index(line[at:], w)
			if j < 0 {
				t.Errorf("line %d lacks %q (in order): %q", i+1, w, line)
				break
			}
			at += j + len(w)
		}
		if strings.ContainsAny(line, "\x1b\t") {
			t.Errorf("line %d has control characters: %q", i+1, line)
		}
	}
	if strings.Contains(out, "i-0000000000000000a") {
		t.Error("an entry older than --since 7d is shown")
	}
}

func TestAuditCLIJSON(t *testing.T) {
	now := time.Now()
	entries := sampleAudit(now)
	d := newAuditDir(t, entries...)
	code, out, errOut := d.run(t, "--json", "--since", "30d")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(entries) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(entries), out)
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, line)
		}
		e := entries[i]
		want := map[string]any{"time": e.Time.UTC().Format(time.RFC3339Nano), "actor": e.Actor, "action": e.Action,
			"request_id": e.RequestID, "target": e.Target, "result": e.Result, "detail": e.Detail}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("line %d =\n%v\nwant\n%v", i, got, want)
		}
		if ts, err := time.Parse(time.RFC3339Nano, got["time"].(string)); err != nil || !ts.Equal(e.Time) {
			t.Errorf("line %d: time %v, %v; want %s to the nanosecond", i, got["time"], err, e.Time)
		}
	}
}

func TestAuditCLIFilters(t *testing.T) {
	now := time.Now()
	d := newAuditDir(t, sampleAudit(now)...)
	actions := func(args ...string) []string {
		t.Helper()
		code, out, errOut := d.run(t, append([]string{"--json"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		var got []string
		for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			var r auditRecord
			if line != "" && json.Unmarshal([]byte(line), &r) == nil {
				got = append(got, r.Action)
			}
		}
		return got
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"approve", "launch", "idle-stop"}},
		{[]string{"--since", "90m"}, []string{"idle-stop"}},
		{[]string{"--since", "1d12h"}, []string{"approve", "launch", "idle-stop"}},
		{[]string{"--since", "all"}, []string{"stop", "approve", "launch", "idle-stop"}},
		{[]string{"--since", "30m"}, nil},
		{[]string{"--instance", "I-0123456789ABCDEF0"}, []string{"approve", "launch", "idle-stop"}}, // the approval of its request too
		{[]string{"--user", bo}, []string{"approve", "launch"}},
		{[]string{"--user", ana, "--since", "all"}, []string{"stop"}},
		{[]string{"--user", bo, "--instance", "i-0123456789abcdef0"}, []string{"approve", "launch"}},
	} {
		if got := actions(tc.args...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.args, got, tc.want)
		}
	}
	code, out, _ := d.run(t, "--since", "30m")
	if code != 0 || !strings.HasPrefix(out, "The audit log has no entries since ") {
		t.Errorf("empty table: exit %d, %q", code, out)
	}
}

func TestAuditCLIUsageAndErrors(t *testing.T) {
	d := newAuditDir(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--since", "week"}, 2, `--since "week"`},
		{[]string{"--since", "-1h"}, 2, `--since "-1h"`},
		{[]string{"--instance", "box"}, 2, `--instance "box" is not an instance ID`},
		{[]string{"--user", "@ana"}, 2, `--user "@ana" is not a Slack user ID`},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--nope"}, 2, "flag provided but not defined"},
		{[]string{"--help"}, 0, "usage: computebot audit --config FILE"},
	} {
		code, out, errOut := d.run(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, out+errOut, tc.code, tc.want)
		}
	}
	var errOut bytes.Buffer
	if code := runAudit(nil, &bytes.Buffer{}, &errOut, func(string) string { return "" }); code != 2 || !strings.Contains(errOut.String(), "no config") {
		t.Errorf("no config: exit %d, %q", code, errOut.String())
	}

	// A store path that does not exist is an error, not an empty log (and
	// no file is created).
	if err := os.WriteFile(d.config, []byte(fmt.Sprintf(baseConfig, d.db+".missing")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, msg := d.run(t)
	if code != 1 || !strings.Contains(msg, "there is no store at "+d.db+".missing") {
		t.Errorf("missing store: exit %d, %q", code, msg)
	}
	if _, err := os.Stat(d.db + ".missing"); err == nil {
		t.Error("audit created a store file")
	}
	if err := os.WriteFile(d.config, []byte("approvers: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, msg := d.run(t); code != 1 || msg == "" {
		t.Errorf("invalid config: exit %d, %q", code, msg)
	}
}

// While the bot holds the store, audit says so, and what to do instead,
// within the short lock timeout.
func TestAuditCLILocked(t *testing.T) {
	d := newAuditDir(t, sampleAudit(time.Now())...)
	db, err := store.Open(d.db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	code, out, errOut := d.run(t)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"is in use: the bot is running", "Stop it, or read the log lines with audit=true from your log system"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q: %s", want, errOut)
		}
	}
	if took := time.Since(start); took > auditLockTimeout+2*time.Second {
		t.Errorf("took %s", took)
	}
}
