package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/internal/syncbuf"
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
		"@ana requests 1 × t2.micro",
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
	// mrkdwn's formatting is shown, not its markers: "*AMI* `ami-…`" is
	// "AMI ami-…" in a script's output (bold and colour on a terminal).
	for _, raw := range []string{"`", "*AMI*", "*Lease*", "*Public IP:*"} {
		if strings.Contains(out, raw) {
			t.Errorf("transcript has mrkdwn's %q", raw)
		}
	}
	if !strings.Contains(out, "Public IP: 54.") {
		t.Error("transcript lacks the IP line")
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
	// The notice says how long there is to answer: idle.grace, 5 minutes,
	// enough to launch and approve first as the README has it.
	if !regexp.MustCompile(`I will stop it [^(]*\(in\x{a0}[45]\x{a0}min`).MatchString(out) {
		t.Error("the notice does not say how long there is before the stop")
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
	waitOut := func(substr string) { t.Helper(); waitDemoOutput(t, &out, substr) }
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

var ansiSeq = regexp.MustCompile("\033\\[[0-9;]*[A-Za-z]")

// stripANSI is s without terminal escape sequences.
func stripANSI(s string) string { return ansiSeq.ReplaceAllString(s, "") }

// TestDemoTerminateConfirmsAndChooses: with two instances listed, a bare
// "terminate" asks which; "terminate 2" or "terminate ID" picks one; the
// Terminate button's confirm dialog asks first, as Slack does, and
// anything but the confirm label cancels.
func TestDemoTerminateConfirmsAndChooses(t *testing.T) {
	out := runDemoScript(t, "/launch t3.small\n/as bo\napprove\n/as ana\n/instances\n"+
		"terminate\nterminate 2\nno\nterminate "+demoIdleID+"\nterminate\n")
	t.Logf("transcript:\n%s", out)
	for _, want := range []string{
		"[Terminate #1]", "[Terminate #2]", // both listed, numbered
		"2 [Terminate] buttons: type terminate 1 (", // a bare label asks which
		"┌ Terminate i-", "└ [Terminate] [Cancel]",  // the dialog
		"(Cancel: nothing was done)",
		"┌ Terminate " + demoIdleID + "?",
		demoIdleID + " terminated by @ana",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	// Only the instance confirmed was terminated, and only once confirmed.
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "terminated by") && !strings.Contains(l, demoIdleID) {
			t.Errorf("another instance was terminated: %q", l)
		}
	}
	if i, j := strings.Index(out, "(Cancel: nothing was done)"), strings.Index(out, "terminated by"); j < i {
		t.Error("an instance was terminated before its confirmation")
	}
}

// TestDemoWrapsLines: at $COLUMNS, every line is wrapped at a space; only
// a single word longer than the line is left whole.
func TestDemoWrapsLines(t *testing.T) {
	t.Setenv("COLUMNS", "56")
	out := runDemoScript(t, "/launch t2.micro --reason \"a long reason, so that the request message has to be wrapped over lines\"\n")
	t.Logf("transcript:\n%s", out)
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ana> ") {
			continue // the echo of what was typed: a terminal wraps it
		}
		if textWidth(l) > 56 && len(strings.Fields(strings.Trim(l, " │"))) > 1 {
			t.Errorf("line of %d columns: %q", textWidth(l), l)
		}
	}
	for _, want := range []string{"so that the request", "vCPU quota"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
}

// TestDemoKeepsHalfTypedLine types into the demo in raw mode, as at a
// terminal: bot output that arrives while a line is half typed goes above
// it, and the prompt and the half-typed line are drawn again below, with
// the keys typed later (and a Backspace) completing the same line.
func TestDemoKeepsHalfTypedLine(t *testing.T) {
	oldInteractive, oldRaw := demoInteractive, demoRawMode
	demoInteractive = func(io.Reader) bool { return true }
	restored := false
	demoRawMode = func(io.Reader) (func(), bool) { return func() { restored = true }, true }
	defer func() { demoInteractive, demoRawMode = oldInteractive, oldRaw }()
	r, w := io.Pipe()
	var out syncbuf.Buffer
	done := make(chan int)
	go func() { done <- runDemo(nil, r, &out) }()
	waitOut := func(substr string) { t.Helper(); waitDemoOutput(t, &out, substr) }
	type_ := func(keys string) {
		t.Helper()
		if _, err := io.WriteString(w, keys); err != nil {
			t.Fatal(err)
		}
	}
	waitOut("ana> ")
	type_("/lau")
	waitOut("ana> /lau")
	waitOut("[Keep running] [Stop now]") // the idle notice, on the scheduler's time
	time.Sleep(300 * time.Millisecond)
	screen := stripANSI(out.String())
	notice := strings.LastIndex(screen, "[Keep running] [Stop now]")
	if !strings.HasSuffix(screen, "ana> /lau") || notice < strings.Index(screen, "ana> /lau") {
		t.Errorf("the half-typed line was not drawn again after the notice:\n%q", screen[max(0, notice-200):])
	}
	if !strings.Contains(out.String(), "ana> /lau\r\033[J") {
		t.Errorf("the prompt line was not erased before the notice was printed:\n%q", out.String())
	}
	type_("nch t3.smal\x7fl\r")
	waitOut("@ana requests 1 × t3.small")
	type_("\x04") // Ctrl-D on an empty line
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("runDemo = %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the demo did not end on Ctrl-D")
	}
	waitOut("bye")
	if !restored {
		t.Error("the terminal's mode was not restored")
	}
}

func TestDemoLineEditor(t *testing.T) {
	var out strings.Builder
	e := &lineEditor{width: 20}
	e.setPrompt("ana> ", &out)
	lines, eof := e.feed([]byte("/as bx\x7fo\r\n/lau\x1b[Dnch\x15stop\x17/help\n"), &out)
	if want := []string{"/as bo", "/help"}; strings.Join(lines, "|") != strings.Join(want, "|") || eof {
		t.Errorf("lines %q eof %v, want %q", lines, eof, want)
	}
	if lines, eof = e.feed([]byte("ab\x04"), &out); len(lines) != 0 || eof {
		t.Errorf("Ctrl-D on a typed line: %q %v", lines, eof)
	}
	e.feed([]byte("\x15"), &out)
	if _, eof = e.feed([]byte("\x04"), &out); !eof {
		t.Error("Ctrl-D on an empty line does not end the input")
	}
	// A prompt and line over several rows are erased from their first.
	e = &lineEditor{width: 10, prompt: "ana> "}
	out.Reset()
	e.draw(&out)
	e.feed([]byte("0123456789ab"), &out)
	out.Reset()
	e.erase(&out)
	if got := out.String(); got != "\r\033[1A\033[J" {
		t.Errorf("erase = %q", got)
	}
	// UTF-8 split across reads.
	e = &lineEditor{width: 80}
	e.feed([]byte{0xc3}, &out)
	if l, _ := e.feed([]byte{0xa9, '\n'}, &out); len(l) != 1 || l[0] != "é" {
		t.Errorf("lines %q, want [é]", l)
	}
}

func TestDemoWrap(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  []string
	}{
		{"short", 20, []string{"short"}},
		{"one two three four five six seven", 20, []string{"one two three four", "five six seven"}},
		{"ssh -i ~/.ssh/a-very-long-key-name-for-sure.pem ec2-user@1.2.3.4", 20, []string{"ssh -i", "~/.ssh/a-very-long-key-name-for-sure.pem", "ec2-user@1.2.3.4"}},
		{"\033[1mbold\033[22m words that go over", 20, []string{"\033[1mbold\033[22m words that go", "over"}},
		{"💤 a notice with emoji 🟢 here", 20, []string{"💤 a notice with", "emoji 🟢 here"}},
	} {
		if got := wrap(tc.in, tc.width); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
	if got := untilText(4*time.Minute + 59*time.Second); got != "in\u00a04\u00a0min\u00a059\u00a0s" {
		t.Errorf("untilText = %q", got)
	}
	if got := untilText(-8 * time.Hour); got != "8\u00a0h\u00a0ago" {
		t.Errorf("untilText = %q", got)
	}
}

// TestDemoHelpExamplesWork: each /launch example of the help, typed into
// the demo as it stands, makes a request: its types are allowed and its
// image preset exists there.
func TestDemoHelpExamplesWork(t *testing.T) {
	var script strings.Builder
	var types []string
	for _, d := range commands.Definitions() {
		if d.Name != "launch" {
			continue
		}
		for _, ex := range d.Examples {
			if f := strings.Fields(ex); len(f) > 1 {
				script.WriteString(ex + "\n")
				types = append(types, f[1])
			}
		}
	}
	if len(types) == 0 {
		t.Fatal("no /launch examples in the help")
	}
	out := runDemoScript(t, script.String())
	t.Logf("transcript:\n%s", out)
	for _, typ := range types {
		if !strings.Contains(out, "@ana requests 1 × "+typ) {
			t.Errorf("the example with %s made no request", typ)
		}
	}
	for _, refusal := range []string{"not allowed", "no image preset"} {
		if strings.Contains(out, refusal) {
			t.Errorf("an example was refused (%q)", refusal)
		}
	}
}

// TestDemoForm: /launch alone asks the launch form's fields one by one,
// asks again for a field the bot refused, and the request is posted.
func TestDemoForm(t *testing.T) {
	out := strings.Join(strings.Fields(runDemoScript(t, "/launch\n2\n\nsix\n6\nbad\x07name\nfrom the form\nlab-box\n")), " ")
	for _, want := range []string{"Launch an instance", "2. t3.small · 2 vCPU, 2 GiB", "(a whole number)", "Name: The name contains control characters", "(sent)",
		"@ana requests 1 × t3.small", "from the form"} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
}

// TestDemoHome: /home shows the Home tab; home launch… opens the form.
func TestDemoHome(t *testing.T) {
	out := strings.Join(strings.Fields(runDemoScript(t, "/home\nhome launch…\ncancel\n")), " ")
	for _, want := range []string{"Home tab", "[Launch…]", "Your instances", "Launch an instance", "form closed"} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
}

// waitDemoOutput waits until the demo's output (colours aside) shows substr.
func waitDemoOutput(t *testing.T, out *syncbuf.Buffer, substr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(stripANSI(out.String()), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q:\n%q", substr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
