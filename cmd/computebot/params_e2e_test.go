package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/internal/syncbuf"
)

func TestPrivateSubnetGetsPrivateIPAndSSMHint(t *testing.T) {
	cfg := strings.Replace(baseConfig, "  key_name: data-science\n", "  key_name: data-science\n  subnet_id: subnet-0aaaabbbbccccdddd\n  security_group_ids: [sg-0123456789abcdef0]\n", 1)
	b := newBed(t, withConfig(cfg))
	b.aws.SetPrivateSubnet("subnet-0aaaabbbbccccdddd")
	b.slash(ana, "/launch", "t2.micro")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	ready := b.waitThread(msg.TS, "is running")
	inst := b.aws.Instances()[0]
	if inst.PublicIP != "" || inst.SubnetID != "subnet-0aaaabbbbccccdddd" || strings.Join(inst.SecurityGroupIDs, ",") != "sg-0123456789abcdef0" {
		t.Fatalf("instance = %+v", inst)
	}
	text := visible(ready)
	for _, want := range []string{"Private IP:* `" + inst.PrivateIP + "`", "aws ssm start-session --target " + inst.ID} {
		if !strings.Contains(text, want) {
			t.Errorf("reply lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "ssh -i") {
		t.Errorf("no SSH line without a public IP:\n%s", text)
	}
}

func TestSSHUserFromAMIName(t *testing.T) {
	cases := []struct{ ami, user string }{
		{"ami-0aaaaaaaaaaaaaaa1", "ubuntu"}, // ubuntu/images/…
		{"ami-0bbbbbbbbbbbbbbb2", "admin"},  // debian-12-…
		{"ami-0123456789abcdef0", "ec2-user"},
	}
	b := newBed(t, withConfig(strings.Replace(baseConfig, "max_running_per_user: 3", "max_running_per_user: 10", 1)))
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			b.slash(ana, "/launch", "t3.medium --ami "+tc.ami) // auto-approved
			r := b.waitRequest(func(r *computebot.Request) bool {
				return r.Launch.ImageID == tc.ami && r.State == computebot.RequestDone
			})
			ready := b.waitThread(r.MessageTS, "is running")
			if want := tc.user + "@" + r.Launch.PublicIP; !strings.Contains(visible(ready), want) {
				t.Errorf("reply lacks %q:\n%s", want, visible(ready))
			}
		})
	}
}

func TestConfiguredSSHUserWins(t *testing.T) {
	b := newBed(t, withConfig(strings.Replace(baseConfig, "  key_name: data-science\n", "  key_name: data-science\n  ssh_user: scientist\n", 1)))
	b.slash(ana, "/launch", "t3.medium --ami ami-0aaaaaaaaaaaaaaa1")
	r := b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestDone })
	b.waitThread(r.MessageTS, "scientist@"+r.Launch.PublicIP)
}

func TestPrices(t *testing.T) {
	cfg := strings.Replace(baseConfig, "  default_ttl: 8h\n", "  default_ttl: 8h\n  prices: {t3.small: 0.015}\n", 1)
	cfg = strings.Replace(cfg, "allowed_types: [t2.micro, t3.small, t3.medium]", "allowed_types: [t2.micro, t3.small, t3.medium, c5.xlarge]", 1)
	b := newBed(t, withConfig(cfg))

	b.slash(ana, "/launch", "t3.small --hours 10") // negotiated rate from config
	m := b.requestMessage(ana)
	if !strings.Contains(visible(m), "≈ $0.015/h, ≈ $0.15 for the lease") {
		t.Errorf("config price not used: %s", visible(m))
	}
	if n := b.aws.CallCount("GetProducts"); n != 0 {
		t.Errorf("GetProducts called %d times although the config has the price", n)
	}

	b.slash(bo, "/launch", "c5.xlarge") // the fake Pricing API has no price for it
	m = b.requestMessage(bo)
	if !strings.Contains(visible(m), "price unknown") {
		t.Errorf("want price unknown: %s", visible(m))
	}

	b.slash(carl, "/launch", "t2.micro")
	b.slash(eve, "/launch", "t2.micro")
	b.requestMessage(eve)
	if n := b.aws.CallCount("GetProducts"); n > 3 { // c5.xlarge (location, then regionCode), t2.micro once
		t.Errorf("GetProducts calls = %d: prices are not cached", n)
	}
}

func TestAMIFromSSMParameter(t *testing.T) {
	cfg := strings.Replace(baseConfig, "ami: ami-0123456789abcdef0", "ami: resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", 1)
	b := newBed(t, withConfig(cfg))
	b.slash(ana, "/launch", "t3.medium")
	r := b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestDone })
	if r.Launch.ImageID != "ami-0123456789abcdef0" {
		t.Errorf("ImageID = %q", r.Launch.ImageID)
	}
	if inst := b.aws.Instances()[0]; inst.ImageID != "ami-0123456789abcdef0" {
		t.Errorf("launched image = %q", inst.ImageID)
	}
}

func TestUnknownAMIIsRefusedPrivately(t *testing.T) {
	b := newBed(t)
	b.slash(ana, "/launch", "t2.micro --ami ami-0fffffffffffffff9")
	b.waitPrivate(ana, "ami-0fffffffffffffff9 does not exist")
	b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestRefused })
	b.assertNothingChanged()
	b.assertNoPublicMessage()
}

func TestBotNotInChannel(t *testing.T) {
	b := newBed(t)
	b.slack.SetError("chat.postMessage", 1, "not_in_channel")
	b.slash(ana, "/launch", "t2.micro")
	b.waitPrivate(ana, "invite me first")
	b.waitRequest(func(r *computebot.Request) bool { return r.State == computebot.RequestRefused })
	b.assertNothingChanged()
}

func TestBadConfigRefusesToStartAndNamesTheKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"approvers: []\nlaunch: {allowed_types: [t2.micro], ami: ami-0123456789abcdef0}\n", "approvers"},
		{"approvers: [UBO]\napproval_ttl: 24x\nlaunch: {allowed_types: [t2.micro], ami: ami-0123456789abcdef0}\n", "approval_ttl"},
		{"approvers: [UBO]\nlaunch: {allowed_types: [t2.micro], ami: ami-0123456789abcdef0, colour: blue}\n", "colour"},
		{"approvers: [UBO]\nlaunch: {allowed_types: [t2.micro, huge], ami: ami-0123456789abcdef0}\n", "launch.allowed_types"},
		{"approvers: [UBO]\nlaunch: {allowed_types: [t2.micro], ami: ami-0123456789abcdef0, default_ttl: 1q}\n", "launch.default_ttl"},
		{"approvers: [UBO]\nlaunch: {allowed_types: [t2.micro], ami: ami-0123456789abcdef0}\nidle: {schedule: \"every ten minutes\"}\n", "idle.schedule"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			m := NewMain()
			m.Getenv = func(k string) string {
				return map[string]string{"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_APP_TOKEN": "xapp-x"}[k]
			}
			m.Stderr = &syncbuf.Buffer{}
			if err := m.ParseFlags([]string{"--config", path}); err != nil {
				t.Fatal(err)
			}
			err := m.Run(context.Background())
			if err == nil {
				m.Close()
				t.Fatal("a bad config must refuse to start")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestMissingTokensRefuseToStart(t *testing.T) {
	m := NewMain()
	m.Getenv = func(string) string { return "" }
	m.Stderr = &syncbuf.Buffer{}
	if err := m.ParseFlags([]string{"--config", "../../config/example.yaml"}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "SLACK_BOT_TOKEN") {
		t.Fatalf("err = %v", err)
	}
	if err := NewMain().ParseFlags(nil); err == nil {
		t.Error("no --config and no COMPUTEBOT_CONFIG must be an error")
	}
}
