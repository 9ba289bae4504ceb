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

// TestBinary builds the real computebot binary and points it at the fakes
// with exactly the variables an operator uses: SLACK_API_URL and
// AWS_ENDPOINT_URL. A /launch goes all the way to an SSH line, and SIGTERM
// shuts the process down cleanly.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "computebot")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	slack, aws := fakeslack.New(), fakeaws.New()
	defer slack.Close()
	defer aws.Close()
	slack.AddUser(ana, "ana")
	slack.AddUser(bo, "bo")
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(baseConfig, filepath.Join(dir, "computebot.db"))), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"COMPUTEBOT_CONFIG=" + cfg,
		"COMPUTEBOT_LISTEN=127.0.0.1:0",
		"SLACK_BOT_TOKEN=xoxb-binary-secret",
		"SLACK_APP_TOKEN=xapp-binary-secret",
		"SLACK_API_URL=" + slack.APIURL(),
		"AWS_ENDPOINT_URL=" + aws.URL(),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDBINARY",
		"AWS_SECRET_ACCESS_KEY=binary-aws-secret",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()

	b := &bed{t: t, slack: slack, aws: aws, stderr: stderr}
	if err := slack.WaitConnected(b.ctx()); err != nil {
		t.Fatalf("binary did not connect: %v\n%s", err, stderr)
	}
	b.slash(ana, "/launch", "t2.micro --hours 2")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	inst := b.waitThread(msg.TS, "is running")
	if !strings.Contains(visible(inst), "ssh -i ~/.ssh/data-science.pem ec2-user@") {
		t.Errorf("reply: %s", visible(inst))
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30 s of SIGTERM")
	}
	for _, secret := range []string{"xoxb-binary-secret", "xapp-binary-secret", "binary-aws-secret"} {
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("secret %q appears in the logs", secret)
		}
	}
}
