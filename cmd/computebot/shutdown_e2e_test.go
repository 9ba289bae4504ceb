package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
	"github.com/computebot/computebot/internal/syncbuf"
)

// buildE2EBinary builds the computebot binary as TestBinary does, into dir.
func buildE2EBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "computebot")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// binaryEnv is the environment an operator gives the binary, pointed at
// the fakes.
func binaryEnv(dir string, slack *fakeslack.Server, aws *fakeaws.Server, extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"SLACK_BOT_TOKEN=xoxb-test-bot-token",
		"SLACK_APP_TOKEN=xapp-test-app-token",
		"SLACK_API_URL=" + slack.APIURL(),
		"AWS_ENDPOINT_URL=" + aws.URL(),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDTEST",
		"AWS_SECRET_ACCESS_KEY=SECRETTEST",
		"AWS_MAX_ATTEMPTS=1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-aws-credentials"),
	}, extra...)
}

// binaryProc is one run of the built binary.
type binaryProc struct {
	cmd    *exec.Cmd
	exited chan error
	err    error // once exited
	done   bool
}

func startBinary(t *testing.T, bin string, env []string, stderr *syncbuf.Buffer, args ...string) *binaryProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &binaryProc{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if !p.done {
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// wait waits up to d for the process to exit; false when it did not.
func (p *binaryProc) wait(d time.Duration) bool {
	if p.done {
		return true
	}
	select {
	case p.err = <-p.exited:
		p.done = true
		return true
	case <-time.After(d):
		return false
	}
}

// TestShutdownWithQueuedLaunchesResumesEachOnce sends 40 auto-approved
// /launch to the built binary while every AWS call takes 2 s, so that a few
// are under way and the rest queued, then SIGTERM: the process must exit
// within 10 s (Docker's stop timeout). Restarted on the same store with AWS
// fast again, it posts every request exactly once and launches each once.
func TestShutdownWithQueuedLaunchesResumesEachOnce(t *testing.T) {
	t.Parallel()
	const launches = 40
	started := time.Now()
	dir := t.TempDir()
	bin := buildE2EBinary(t, dir)

	slack, aws := fakeslack.New(), fakeaws.New()
	t.Cleanup(slack.Close)
	t.Cleanup(aws.Close)
	slack.SetRedelivery(fakeslack.DefaultAckTimeout, 0)
	slack.AddChannel(channel, "data-science")
	slack.AddUser(bo, "bo")
	users := make([]string, launches)
	for i := range users {
		users[i] = fmt.Sprintf("USHUT%02d", i)
		slack.AddUser(users[i], strings.ToLower(users[i]))
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(baseConfig, filepath.Join(dir, "computebot.db"))), 0o600); err != nil {
		t.Fatal(err)
	}
	env := binaryEnv(dir, slack, aws)
	stderr := &syncbuf.Buffer{}
	args := []string{"--config", cfg, "--listen", "", "--log-level", "debug"}
	b := &bed{t: t, slack: slack, aws: aws, stderr: stderr}

	p := startBinary(t, bin, env, stderr, args...)
	if err := slack.WaitConnected(b.ctx()); err != nil {
		t.Fatalf("the binary did not connect: %v\n%s", err, stderr)
	}
	aws.SetLatency("", 2*time.Second)
	var envs []string
	for _, u := range users {
		e, err := slack.SendSlashCommand(fakeslack.SlashCommand{Command: "/launch", Text: "t3.medium", UserID: u, ChannelID: channel})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	for i, e := range envs {
		ack, err := slack.WaitAck(b.ctx(), e)
		if err != nil {
			t.Fatalf("no ack for %s's /launch: %v\n%s", users[i], err, stderr)
		}
		if txt := chaosAckText(t, ack); txt != "" {
			t.Fatalf("%s's /launch answered in the ack: %q", users[i], txt)
		}
	}
	acked := time.Since(started)
	time.Sleep(500 * time.Millisecond) // the workers are inside their first AWS calls
	postedBefore := 0
	for _, u := range users {
		postedBefore += chaosCount(b, isRequestMessageOf(u))
	}

	sigAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.wait(10 * time.Second) {
		t.Fatalf("no exit within 10 s of SIGTERM\n%s", stderr)
	}
	exitIn := time.Since(sigAt)
	if p.err != nil {
		t.Errorf("exit after SIGTERM: %v", p.err)
	}
	postedAtStop := 0
	for _, u := range users {
		postedAtStop += chaosCount(b, isRequestMessageOf(u))
	}

	// The restart, with AWS answering at once.
	aws.SetLatency("", 0)
	fmt.Fprintf(stderr, "=== restart at %s ===\n", time.Now().Format("15:04:05.000"))
	before := slack.Hellos()
	p2 := startBinary(t, bin, env, stderr, args...)
	if err := slack.WaitConnections(b.ctx(), before+1); err != nil {
		t.Fatalf("the restarted binary did not connect: %v\n%s", err, stderr)
	}
	restarted := time.Now()
	allRunning := func() bool {
		for _, u := range users {
			m, ok := throttleFind(b, isRequestMessageOf(u))
			if !ok {
				return false
			}
			if _, ok := throttleFind(b, func(r fakeslack.Message) bool {
				return r.ThreadTS == m.TS && strings.Contains(visible(r), "is running")
			}); !ok {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !allRunning() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	resumedIn := time.Since(restarted)
	time.Sleep(time.Second) // room for a late duplicate

	posted, dupPosts, lost, running, dupRunning, refused := 0, 0, 0, 0, 0, 0
	instances := map[string]int{}
	for _, in := range aws.Instances() {
		instances[in.Tags["computebot:owner"]]++
	}
	dupInstances := 0
	for _, u := range users {
		msgs := 0
		var ts string
		for _, m := range slack.Messages(channel) {
			if isRequestMessageOf(u)(m) {
				msgs++
				ts = m.TS
			}
			if m.Ephemeral && m.EphemeralUser == u {
				refused++
				t.Errorf("%s was told privately: %s", u, visible(m))
			}
		}
		switch {
		case msgs == 0:
			lost++
			t.Errorf("%s's request was never posted", u)
			continue
		case msgs > 1:
			dupPosts++
			t.Errorf("%s's request was posted %d times", u, msgs)
		}
		posted++
		n := 0
		for _, r := range slack.Thread(channel, ts) {
			if r.ThreadTS == ts && strings.Contains(visible(r), "is running") {
				n++
			}
		}
		switch {
		case n == 0:
			t.Errorf("%s's request never ran", u)
		case n > 1:
			dupRunning++
			t.Errorf("%s's request: %d IP replies", u, n)
		default:
			running++
		}
		switch k := instances[u]; {
		case k > 1:
			dupInstances++
			t.Errorf("%s has %d instances, want 1", u, k)
		case k == 0:
			t.Errorf("%s has no instance", u)
		}
	}
	if t.Failed() {
		t.Logf("messages:%s", b.dump())
		t.Logf("log:\n%s", stderr)
	}

	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p2.wait(10 * time.Second) {
		t.Errorf("the restarted binary did not exit within 10 s of SIGTERM")
	} else if p2.err != nil {
		t.Errorf("the restarted binary's exit: %v", p2.err)
	}
	t.Logf("shutdown: %d /launch acked in %s; %d request messages posted before SIGTERM, %d by exit; exit %s after SIGTERM (limit 10 s);"+
		" after the restart, in %s: %d posted (%d more than once, %d never), %d running (%d IP replies twice), %d instances (%d users with more than one), %d private refusals; total %s",
		launches, acked.Round(time.Millisecond), postedBefore, postedAtStop, exitIn.Round(time.Millisecond),
		resumedIn.Round(time.Millisecond), posted, dupPosts, lost, running, dupRunning, len(aws.Instances()), dupInstances, refused,
		time.Since(started).Round(time.Millisecond))
}
