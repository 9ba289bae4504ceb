package main

import (
	"github.com/computebot/computebot/internal/syncbuf"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runDemoScript runs the demo with script as its (non-terminal) stdin.
func runDemoScript(t *testing.T, script string) string {
	t.Helper()
	var out syncbuf.Buffer
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "computebot-demo-*"))
	if code := runDemo(nil, strings.NewReader(script), &out); code != 0 {
		t.Fatalf("runDemo = %d\n%s", code, out.String())
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "computebot-demo-*"))
	if len(after) > len(before) {
		t.Errorf("the demo left its temporary directory behind: %v", after)
	}
	return out.String()
}

func TestDemoLaunchApprove(t *testing.T) {
	out := runDemoScript(t, "/help\n/launch t2.micro --hours 2\n/as carl\napprove\n/as bo\napprove\n/quit\n/launch t3.medium\n")
	t.Logf("transcript:\n%s", out)
	for _, want := range []string{
		"/as NAME", "/quit", "/launch TYPE", // /help: the demo's verbs and the bot's commands
		"@ana requests 1 × `t2.micro`",
		"[Approve] [Deny]",
		"(you are now @bo, an approver)",
		"computebot (only you):", // carl's refused click
		"Approved by @bo",
		"ec2-user@",
		"bye",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if !regexp.MustCompile(`ssh -i ~/\.ssh/demo\.pem ec2-user@\d+\.\d+\.\d+\.\d+`).MatchString(out) {
		t.Error("transcript has no SSH line")
	}
	if strings.Contains(out, "t3.medium") {
		t.Error("a line after /quit was run")
	}
	if strings.Contains(out, "<@U") || strings.Contains(out, `"type"`) {
		t.Error("raw Slack markup in the transcript")
	}
}

func TestDemoIdleKeepRunning(t *testing.T) {
	out := runDemoScript(t, "keep running\n")
	t.Logf("transcript:\n%s", out)
	for _, want := range []string{"looks idle", "[Keep running] [Stop now]", demoIdleID, "Kept running by @ana", "bye"} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if !strings.Contains(out, "(edited)") || !strings.Contains(out, "ept") {
		t.Error("the notice was not updated after Keep running")
	}
}

// TestDemoInteractive types into the demo as a person would: the channel is
// printed as it changes, without waiting for the next line.
func TestDemoInteractive(t *testing.T) {
	old := demoInteractive
	demoInteractive = func(io.Reader) bool { return true }
	defer func() { demoInteractive = old }()
	r, w := io.Pipe()
	var out syncbuf.Buffer
	done := make(chan int)
	go func() { done <- runDemo(nil, r, &out) }()
	waitOut := func(substr string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), substr) {
			if time.Now().After(deadline) {
				t.Fatalf("output never showed %q:\n%s", substr, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	type_ := func(line string) {
		if _, err := io.WriteString(w, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	waitOut("ana> ")
	type_("/launch t3.small")
	waitOut("[Approve] [Deny]")
	type_("/as bo")
	waitOut("bo> ")
	type_("deny")
	waitOut("Denied by @bo")
	_ = w.Close() // Ctrl-D
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("runDemo = %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the demo did not end on EOF")
	}
	waitOut("bye")
}
