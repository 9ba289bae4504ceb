package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
)

// keyConfig is baseConfig without a shared key pair, with a base
// cloud-init document the requester's keys are merged into.
var keyConfig = strings.Replace(baseConfig, "  key_name: data-science\n", `  user_data: |
    #cloud-config
    packages: [htop]
`, 1)

func newKey(t *testing.T, comment string) (pub string, privPEM []byte) {
	t.Helper()
	p, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(p)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment, pem.EncodeToMemory(block)
}

// TestSSHKeysEndToEnd: people register their own public keys; a launch
// installs exactly the requester's through cloud-init user data, merged
// with launch.user_data; the SSH line needs no shared key file.
func TestSSHKeysEndToEnd(t *testing.T) {
	b := newBed(t, withConfig(keyConfig))
	anaKey, _ := newKey(t, "ana@laptop")
	boKey, _ := newKey(t, "bo@desk")

	b.slash(ana, "/sshkey", "add "+anaKey)
	added := b.waitPrivate(ana, "Added your ed25519 key")
	if !strings.Contains(visible(added), "ana@laptop") {
		t.Errorf("added: %s", visible(added))
	}
	b.slash(ana, "/sshkey", "add "+anaKey+" --label again")
	b.waitPrivate(ana, "registered already")
	b.slash(bo, "/sshkey", "add "+boKey)
	b.waitPrivate(bo, "Added your ed25519 key")
	b.slash(ana, "/sshkey", "list")
	list := b.waitPrivate(ana, "Your SSH keys")
	if !strings.Contains(visible(list), "ana@laptop") || strings.Contains(visible(list), "bo@desk") {
		t.Errorf("ana's list: %s", visible(list))
	}
	b.slash(ana, "/sshkey", "add ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDc nope")
	b.waitPrivate(ana, "not an OpenSSH public key")

	// A launch carries ana's key, only hers, in the configured document.
	b.slash(ana, "/launch", "t2.micro --reason keys")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	ready := b.waitThread(msg.TS, "is running")
	runs := b.aws.Calls("RunInstances")
	if len(runs) != 1 {
		t.Fatalf("%d RunInstances calls", len(runs))
	}
	raw, err := base64.StdEncoding.DecodeString(runs[0].Params.Get("UserData"))
	if err != nil {
		t.Fatalf("UserData: %v", err)
	}
	if !strings.HasPrefix(string(raw), "#cloud-config\n") {
		t.Fatalf("user data is not a cloud-config document:\n%s", raw)
	}
	var doc struct {
		Keys     []string `yaml:"ssh_authorized_keys"`
		Packages []string `yaml:"packages"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 1 || doc.Keys[0] != anaKey || len(doc.Packages) != 1 || doc.Packages[0] != "htop" {
		t.Errorf("user data keys %q, packages %q; want exactly ana's key, and launch.user_data's packages", doc.Keys, doc.Packages)
	}
	if runs[0].Params.Get("KeyName") != "" {
		t.Errorf("KeyName %q sent without launch.key_name", runs[0].Params.Get("KeyName"))
	}
	text := visible(ready)
	if !strings.Contains(text, "ssh ec2-user@") || strings.Contains(text, "-i ") || strings.Contains(text, "chmod") || strings.Contains(text, "none of your SSH keys") {
		t.Errorf("ready reply: %s", text)
	}

	// Without a key of one's own, the thread says how to add one.
	b.slash(eve, "/launch", "t3.medium --reason nokey") // auto-approved
	evemsg := b.requestMessage(eve)
	b.waitThread(evemsg.TS, "none of your SSH keys")

	// Removing.
	b.slash(ana, "/sshkey", "remove ana@laptop")
	b.waitPrivate(ana, "Removed")
	b.slash(ana, "/sshkey", "remove ana@laptop")
	b.waitPrivate(ana, "no key named")
}

// TestPrivateKeyNeverKept: a private key pasted (in /sshkey add or any
// other command) is refused privately, saying what to do, and appears in
// no log, no message the bot sent, and not in the store file.
func TestPrivateKeyNeverKept(t *testing.T) {
	b := newBed(t, withConfig(keyConfig))
	_, priv := newKey(t, "ana@laptop")
	body := strings.Split(string(priv), "\n")[1] // a line of the key's base64
	lines := strings.Split(strings.TrimSpace(string(priv)), "\n")
	headless := strings.Join(lines[1:len(lines)-1], "\n") // the body without its BEGIN/END lines
	for _, c := range []struct{ cmd, text string }{
		{"/sshkey", "add " + string(priv)},
		{"/sshkey", "add " + strings.ReplaceAll(string(priv), "\n", " ")},
		{"/sshkey", "add " + headless},
		{"/keep", "box 2d " + headless},
		{"/launch", string(priv)},
	} {
		ack := b.slash(ana, c.cmd, c.text)
		txt := ackText(t, ack)
		if !strings.Contains(txt, "private") || !strings.Contains(txt, "ssh-keygen -y") || strings.Contains(txt, body) {
			t.Errorf("%s: the answer %q, want the private-key warning without the key", c.cmd, txt)
		}
	}
	mention, err := b.slack.SendMention(fakeslack.Mention{UserID: ana, ChannelID: channel, Text: "<@" + fakeslack.BotUserID + "> sshkey add " + string(priv)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitAck(b.ctx(), mention); err != nil {
		t.Fatal(err)
	}
	b.waitPrivate(ana, "private")
	// Words about keys are no key.
	if txt := ackText(t, b.slash(ana, "/launch", `t2.micro --reason "rotate the private key on the build box"`)); txt != "" {
		t.Errorf("a reason that mentions a private key was refused: %q", txt)
	}
	time.Sleep(200 * time.Millisecond)
	for _, m := range b.slack.Messages(channel) {
		if m.User == fakeslack.BotUserID && strings.Contains(m.Text, body) {
			t.Errorf("a bot message repeats the private key: %s", m.Text)
		}
	}
	if strings.Contains(b.stderr.String(), body) {
		t.Error("the log holds the private key")
	}
	dbPath := filepath.Join(b.dir, "computebot.db")
	b.stop()
	data, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(body)) {
		t.Error("the store file holds the private key")
	}
}

// TestConnect: /connect tells the owner (or an approver) how to reach an
// instance, privately: SSH and the Jupyter port over SSH with a public
// IP, Session Manager for both without; a stranger is refused.
func TestConnect(t *testing.T) {
	b := newBed(t, withConfig(keyConfig))
	b.aws.SetPrivateSubnet("subnet-0private0000000001")
	for _, in := range []fakeaws.Instance{
		{ID: "i-0c0000000000000a1", Type: "t3.small", State: "running", LaunchTime: time.Now().Add(-time.Hour),
			Tags: map[string]string{computebot.TagManaged: "true", computebot.TagOwner: ana, computebot.TagName: "pub-box"}},
		{ID: "i-0c0000000000000a2", Type: "t3.small", State: "running", SubnetID: "subnet-0private0000000001", LaunchTime: time.Now().Add(-time.Hour),
			Tags: map[string]string{computebot.TagManaged: "true", computebot.TagOwner: ana, computebot.TagName: "priv-box"}},
	} {
		b.aws.AddInstance(in)
	}
	b.slash(ana, "/connect", "pub-box")
	pub := visible(b.waitPrivate(ana, "How to reach `i-0c0000000000000a1`"))
	pubIP := b.instanceIP(t, "i-0c0000000000000a1")
	for _, want := range []string{"ssh ec2-user@" + pubIP, "ssh -N -L 8888:localhost:8888 ec2-user@" + pubIP, "http://localhost:8888"} {
		if !strings.Contains(pub, want) {
			t.Errorf("/connect pub-box lacks %q:\n%s", want, pub)
		}
	}
	b.slash(bo, "/connect", "i-0c0000000000000a2") // an approver
	priv := visible(b.waitPrivate(bo, "How to reach `i-0c0000000000000a2`"))
	for _, want := range []string{"aws ssm start-session --target i-0c0000000000000a2",
		`--document-name AWS-StartPortForwardingSession --parameters '{"portNumber":["8888"],"localPortNumber":["8888"]}'`} {
		if !strings.Contains(priv, want) {
			t.Errorf("/connect of a private instance lacks %q:\n%s", want, priv)
		}
	}
	b.slash(eve, "/connect", "i-0c0000000000000a1")
	b.waitPrivate(eve, "Only its owner or an approver (")
	b.aws.AddInstance(fakeaws.Instance{ID: "i-0c0000000000000a3", Type: "t3.small", State: "stopped", LaunchTime: time.Now().Add(-time.Hour),
		Tags: map[string]string{computebot.TagManaged: "true", computebot.TagOwner: ana, computebot.TagName: "off-box"}})
	b.slash(ana, "/connect", "off-box")
	b.waitPrivate(ana, "is stopped: start it first (`/start i-0c0000000000000a3`)")
}

func (b *bed) instanceIP(t *testing.T, id string) string {
	in, ok := b.aws.Instance(id)
	if !ok || in.PublicIP == "" {
		t.Fatalf("instance %s has no public IP", id)
	}
	return in.PublicIP
}

// TestImagePresets: /launch --image NAME launches launch.images' AMI; an
// unknown name is refused at once, listing the presets, and help shows
// them.
func TestImagePresets(t *testing.T) {
	cfg := strings.Replace(baseConfig, "  default_ttl: 8h\n", "  default_ttl: 8h\n  images:\n    dlami: ami-0dee9000000000001\n", 1)
	b := newBed(t, withConfig(cfg))
	b.aws.AddImage(fakeaws.Image{ID: "ami-0dee9000000000001", Name: "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)"})
	if txt := ackText(t, b.slash(ana, "/launch", "t2.micro --image nope")); !strings.Contains(txt, "no image preset `nope`") || !strings.Contains(txt, "`dlami`") {
		t.Errorf("unknown preset answered %q", txt)
	}
	if txt := ackText(t, b.slash(ana, "/computebot", "help launch")); !strings.Contains(txt, "Image presets") || !strings.Contains(txt, "dlami") {
		t.Errorf("help launch: %q", txt)
	}
	b.slash(ana, "/launch", "t2.micro --image dlami --reason presets")
	msg := b.requestMessage(ana)
	b.click(bo, msg, "Approve")
	ready := b.waitThread(msg.TS, "is running")
	runs := b.aws.Calls("RunInstances")
	if len(runs) != 1 || runs[0].Params.Get("ImageId") != "ami-0dee9000000000001" {
		t.Fatalf("RunInstances ImageId %q, want the preset's AMI", runs[0].Params.Get("ImageId"))
	}
	if !strings.Contains(visible(ready), "ubuntu@") {
		t.Errorf("the SSH user is not inferred from the preset's image: %s", visible(ready))
	}
	if txt := ackText(t, b.slash(ana, "/launch", "t2.micro --image dlami --ami ami-0123456789abcdef0")); !strings.Contains(txt, "not both") {
		t.Errorf("--image with --ami answered %q", txt)
	}
}
