package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// run runs the command line args as main would, without exiting.
func runMain(t *testing.T, args ...string) (code int, handled bool, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code, handled = subcommand(args, strings.NewReader(""), &out, &errOut, func(string) string { return "" })
	return code, handled, out.String(), errOut.String()
}

// TestHelpOnStdout: help is asked for, so it goes to stdout with exit 0,
// however it is asked (--help, -h, help), and names every subcommand.
func TestHelpOnStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}, {"--config", "x.yaml", "--help"}} {
		code, handled, out, errOut := runMain(t, args...)
		if !handled || code != 0 || errOut != "" {
			t.Errorf("%q: handled %v, exit %d, stderr %q", args, handled, code, errOut)
		}
		for _, want := range []string{"usage: computebot", "computebot demo", "computebot check", "computebot health",
			"computebot audit", "computebot store init", "computebot store migrate", "computebot version", "computebot help",
			"-config", "-listen", "-log-level", "SLACK_BOT_TOKEN"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: help lacks %q:\n%s", args, want, out)
			}
		}
	}
	// Each subcommand's own help, also as `computebot help NAME`.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--help"}, "usage: computebot check"},
		{[]string{"help", "check"}, "usage: computebot check"},
		{[]string{"audit", "-h"}, "usage: computebot audit"},
		{[]string{"health", "--help"}, "usage: computebot health"},
		{[]string{"help", "health"}, "usage: computebot health"},
		{[]string{"store", "--help"}, "usage: computebot store init"},
		{[]string{"store", "init", "--help"}, "-config"},
		{[]string{"store", "migrate", "--help"}, "-from"},
		{[]string{"demo", "--help"}, "usage: computebot demo"},
	} {
		code, _, out, errOut := runMain(t, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) || errOut != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 0 and %q on stdout", tc.args, code, out, errOut, tc.want)
		}
	}
	// A bad flag is an error: stderr, exit 2.
	if code, _, out, errOut := runMain(t, "check", "--nope"); code != 2 || out != "" || !strings.Contains(errOut, "nope") {
		t.Errorf("check --nope: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The bot's own flags are not a subcommand; an unknown word says where
	// the list is.
	if _, handled, _, _ := runMain(t, "--config", "x.yaml"); handled {
		t.Error("--config was taken for a subcommand")
	}
	m := NewMain()
	m.Stderr = &bytes.Buffer{}
	if err := m.ParseFlags([]string{"lauch"}); err == nil || !strings.Contains(err.Error(), "computebot help") {
		t.Errorf("unknown command: %v", err)
	}
}

// TestVersionOnce: `version` and `--version` say the version and the
// commit once each, however the binary was built.
func TestVersionOnce(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, handled, out, _ := runMain(t, args...)
		if !handled || code != 0 || !strings.HasPrefix(out, "computebot ") || strings.Count(out, "\n") != 1 {
			t.Errorf("%q: exit %d, %q", args, code, out)
		}
	}
	vcs := func(rev string, modified bool) *debug.BuildInfo {
		info := &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}}}
		if modified {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: "vcs.modified", Value: "true"})
		}
		return info
	}
	const rev = "df7c8604fd5babed6227647eda74b20e9b758187"
	stamped := vcs(rev, false)
	stamped.Main.Version = "v0.0.0-20261201150121-df7c8604fd5b" // Go 1.24+ in a checkout
	dirty := vcs(rev, true)
	dirty.Main.Version = "v0.0.0-20261201150121-df7c8604fd5b+dirty"
	devel := vcs(rev, true)
	devel.Main.Version = "(devel)"
	for _, tc := range []struct {
		set  string
		info *debug.BuildInfo
		want string
	}{
		{"", stamped, "v0.0.0-20261201150121-df7c8604fd5b"},
		{"", dirty, "v0.0.0-20261201150121-df7c8604fd5b+dirty"},
		{"", devel, "(devel) df7c8604fd5b-dirty"},
		{"", &debug.BuildInfo{}, "(devel)"},
		{"", nil, "(devel)"},
		{"v1.2.3", &debug.BuildInfo{}, "v1.2.3"}, // the Docker image: -X, no .git
		{"v1.2.3", stamped, "v1.2.3 df7c8604fd5b"},
		{"df7c860-dirty", dirty, "df7c860-dirty"}, // --build-arg VERSION=$(git describe --always --dirty)
	} {
		if got := versionOf(tc.set, tc.info); got != tc.want {
			t.Errorf("versionOf(%q, …) = %q, want %q", tc.set, got, tc.want)
		}
	}
}

// TestBinaryVersionBuildArg builds the binary as the Dockerfile does
// (-tags nodemo, the version from -ldflags -X main.version) and checks
// what it says: its version, not (devel); help on stdout; no demo.
func TestBinaryVersionBuildArg(t *testing.T) {
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ARG VERSION", "-X main.version=${VERSION}", "-tags nodemo"} {
		if !bytes.Contains(dockerfile, []byte(want)) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	bin := filepath.Join(t.TempDir(), "computebot")
	build := exec.Command("go", "build", "-tags", "nodemo", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || !strings.HasPrefix(string(out), "computebot v9.9.9-test go") || strings.Count(string(out), "v9.9.9-test") != 1 {
			t.Errorf("%q: %v, %q", args, err, out)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--help")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), "usage: computebot") || stderr.Len() != 0 {
		t.Errorf("--help: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	out, err := exec.Command(bin, "demo").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "no demo") {
		t.Errorf("demo in a nodemo build: %v, %q", err, out)
	}
}
