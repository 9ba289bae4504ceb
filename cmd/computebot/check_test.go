package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
)

const (
	checkBotToken = "xoxb-check-secret-bot-token"
	checkAppToken = "xapp-check-secret-app-token"
	checkGroup    = "sg-0123456789abcdef0"
	checkSubnet   = "subnet-0123456789abcdef0"
)

const checkConfig = `
approvers: [UBO]
launch:
  allowed_types: [t2.micro, t3.small]
  ami: AMI
  key_name: data-science
  security_group_ids: [` + checkGroup + `]
  subnet_id: ` + checkSubnet + `
store:
  path: STORE
`

// checkBed is a fake Slack and a fake AWS that know everything checkConfig
// names, the AWS environment pointing at the fake, and a config file.
type checkBed struct {
	t     *testing.T
	slack *fakeslack.Server
	aws   *fakeaws.Server
	dir   string
	env   map[string]string
}

func newCheckBed(t *testing.T) *checkBed {
	t.Helper()
	b := &checkBed{t: t, slack: fakeslack.New(), aws: fakeaws.New(), dir: t.TempDir()}
	t.Cleanup(b.slack.Close)
	t.Cleanup(b.aws.Close)
	b.slack.AddUser("UBO", "bo")
	b.aws.AddKeyPair("data-science")
	b.aws.AddSecurityGroup(checkGroup, "data-science-ssh")
	b.aws.AddSubnet(checkSubnet)

	t.Setenv("AWS_ENDPOINT_URL", b.aws.URL())
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCHECKSECRET")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRETCHECKSECRET")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(b.dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(b.dir, "no-aws-credentials"))

	b.env = map[string]string{
		"SLACK_BOT_TOKEN":   checkBotToken,
		"SLACK_APP_TOKEN":   checkAppToken,
		"SLACK_API_URL":     b.slack.APIURL(),
		"COMPUTEBOT_CONFIG": b.config("ami-0123456789abcdef0"),
	}
	return b
}

// config writes checkConfig with ami and returns its path.
func (b *checkBed) config(ami string) string {
	b.t.Helper()
	yaml := strings.NewReplacer("AMI", ami, "STORE", filepath.Join(b.dir, "computebot.db")).Replace(checkConfig)
	path := filepath.Join(b.dir, "computebot.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// run runs `computebot check` and returns its exit code and output, after
// making sure no secret reached the output.
func (b *checkBed) run(args ...string) (int, string) {
	b.t.Helper()
	var stdout, stderr bytes.Buffer
	code := runCheck(args, &stdout, &stderr, func(k string) string { return b.env[k] })
	out := stdout.String() + stderr.String()
	for _, secret := range []string{checkBotToken, checkAppToken, "check-secret", "AKIDCHECKSECRET", "SECRETCHECKSECRET"} {
		if strings.Contains(out, secret) {
			b.t.Errorf("output contains the secret %q:\n%s", secret, out)
		}
	}
	return code, out
}

// wantLine fails unless out has a line starting with mark and name whose
// detail contains every substring.
func wantLine(t *testing.T, out, mark, name string, substrs ...string) {
	t.Helper()
	for l := range strings.SplitSeq(out, "\n") {
		rest, ok := strings.CutPrefix(l, mark+" "+name+" — ")
		if !ok {
			continue
		}
		for _, s := range substrs {
			if !strings.Contains(rest, s) {
				t.Errorf("line %q lacks %q", l, s)
			}
		}
		return
	}
	t.Errorf("no line %q in the output:\n%s", mark+" "+name+" — …", out)
}

func TestCheckAllPass(t *testing.T) {
	b := newCheckBed(t)
	code, out := b.run()
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	wantLine(t, out, "✓", "config", "computebot.yaml is valid")
	wantLine(t, out, "✓", "slack bot token", fakeslack.BotUserID, fakeslack.TeamID)
	wantLine(t, out, "✓", "slack app token", "apps.connections.open")
	wantLine(t, out, "✓", "approvers", "UBO (@bo)")
	wantLine(t, out, "✓", "aws identity", fakeaws.OwnerID, fakeaws.DefaultCallerARN)
	wantLine(t, out, "✓", "ami", "ami-0123456789abcdef0")
	wantLine(t, out, "✓", "instance types", "t2.micro, t3.small")
	wantLine(t, out, "✓", "key pair", "data-science")
	wantLine(t, out, "✓", "security groups", checkGroup)
	wantLine(t, out, "✓", "subnet", checkSubnet)
	wantLine(t, out, "✓", "permission ec2:RunInstances t2.micro", "DryRun")
	wantLine(t, out, "✓", "permission ec2:RunInstances t3.small", "DryRun")
	wantLine(t, out, "–", "permission ec2:Stop/Start/TerminateInstances", "needs an existing instance")
	if strings.Contains(out, "✗") {
		t.Errorf("a check failed:\n%s", out)
	}

	// Nothing was launched, and the DryRun launch is the bot's own request.
	if n := len(b.aws.Instances()); n != 0 {
		t.Errorf("%d instances launched, want none", n)
	}
	runs := b.aws.Calls("RunInstances")
	if len(runs) != 2 {
		t.Fatalf("%d RunInstances calls, want 2 (one per allowed type)", len(runs))
	}
	p := runs[0].Params
	for k, want := range map[string]string{
		"DryRun": "true", "KeyName": "data-science", "SubnetId": checkSubnet,
		"SecurityGroupId.1": checkGroup, "MetadataOptions.HttpTokens": "required",
	} {
		if got := p.Get(k); got != want {
			t.Errorf("RunInstances %s = %q, want %q", k, got, want)
		}
	}
	// No socket was opened: apps.connections.open only.
	if n := len(b.slack.Calls("apps.connections.open")); n != 1 {
		t.Errorf("%d apps.connections.open calls, want 1", n)
	}
}

func TestCheckFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(b *checkBed)
		want  [][]string // mark, name, substrings
	}{
		{
			name:  "bad bot token",
			setup: func(b *checkBed) { b.slack.SetError("auth.test", 1, "invalid_auth") },
			want:  [][]string{{"✗", "slack bot token", "invalid_auth", "not valid"}, {"✓", "slack app token"}},
		},
		{
			name:  "bad app token",
			setup: func(b *checkBed) { b.slack.SetError("apps.connections.open", 1, "invalid_auth") },
			want:  [][]string{{"✓", "slack bot token"}, {"✗", "slack app token", "invalid_auth"}},
		},
		{
			name:  "tokens swapped",
			setup: func(b *checkBed) { b.env["SLACK_BOT_TOKEN"], b.env["SLACK_APP_TOKEN"] = checkAppToken, checkBotToken },
			want:  [][]string{{"✗", "slack tokens", "SLACK_APP_TOKEN"}},
		},
		{
			name:  "missing AMI",
			setup: func(b *checkBed) { b.env["COMPUTEBOT_CONFIG"] = b.config("ami-0fffffffffffffff9") },
			want: [][]string{
				{"✗", "ami", "ami-0fffffffffffffff9", "does not exist"},
				{"–", "permission ec2:RunInstances", "AMI did not resolve"},
			},
		},
		{
			name: "launch not allowed by IAM",
			setup: func(b *checkBed) {
				b.aws.FailNext("RunInstances", "UnauthorizedOperation", "", 1)
			},
			want: [][]string{
				{"✗", "permission ec2:RunInstances t2.micro", "not allowed", "ec2:RunInstances", "UnauthorizedOperation"},
				{"✓", "permission ec2:RunInstances t3.small"},
			},
		},
		{
			name: "missing key pair, group and subnet",
			setup: func(b *checkBed) {
				b.aws = fakeaws.New()
				b.t.Cleanup(b.aws.Close)
				b.t.Setenv("AWS_ENDPOINT_URL", b.aws.URL())
			},
			want: [][]string{
				{"✗", "key pair", "data-science", "does not exist"},
				{"✗", "security groups", checkGroup, "does not exist"},
				{"✗", "subnet", checkSubnet, "does not exist"},
				{"–", "permission ec2:RunInstances", "network"},
			},
		},
		{
			name:  "AWS credentials rejected",
			setup: func(b *checkBed) { b.aws.FailNext("GetCallerIdentity", "InvalidClientTokenId", "", 1) },
			want:  [][]string{{"✗", "aws identity", "rejected"}},
		},
		{
			name:  "invalid config",
			setup: func(b *checkBed) { b.env["COMPUTEBOT_CONFIG"] = b.config("not-an-ami") },
			want:  [][]string{{"✗", "config", "launch.ami"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newCheckBed(t)
			tc.setup(b)
			code, out := b.run()
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for _, w := range tc.want {
				wantLine(t, out, w[0], w[1], w[2:]...)
			}
			if !strings.Contains(out, "FAIL:") {
				t.Errorf("no FAIL summary:\n%s", out)
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

func TestCheckSkipsSlackWithoutTokens(t *testing.T) {
	b := newCheckBed(t)
	delete(b.env, "SLACK_BOT_TOKEN")
	delete(b.env, "SLACK_APP_TOKEN")
	code, out := b.run("--config", b.env["COMPUTEBOT_CONFIG"])
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	wantLine(t, out, "–", "slack tokens", "not set")
	wantLine(t, out, "✓", "aws identity")
	if n := len(b.slack.AllCalls()); n != 0 {
		t.Errorf("%d Slack calls without tokens, want 0", n)
	}
}

func TestCheckUsage(t *testing.T) {
	b := newCheckBed(t)
	delete(b.env, "COMPUTEBOT_CONFIG")
	if code, out := b.run(); code != 2 || !strings.Contains(out, "--config") {
		t.Errorf("no config: exit %d, want 2 and a hint:\n%s", code, out)
	}
	if code, _ := b.run("--help"); code != 0 {
		t.Errorf("--help: exit %d, want 0", code)
	}
	if code, _ := b.run("--config", "x.yaml", "extra"); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}

// TestCheckSubnetList: with launch.subnet_ids, each subnet is checked; one
// that does not exist fails and the dry run waits for it.
func TestCheckSubnetList(t *testing.T) {
	b := newCheckBed(t)
	const missing = "subnet-0ffffffffffffff99"
	yaml := strings.Replace(checkConfig, "  subnet_id: "+checkSubnet+"\n", "  subnet_ids: ["+checkSubnet+", "+missing+"]\n", 1)
	yaml = strings.NewReplacer("AMI", "ami-0123456789abcdef0", "STORE", filepath.Join(b.dir, "computebot.db")).Replace(yaml)
	if err := os.WriteFile(b.env["COMPUTEBOT_CONFIG"], []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := b.run()
	if code == 0 {
		t.Fatalf("exit 0 with a missing subnet:\n%s", out)
	}
	wantLine(t, out, "✓", "subnet", checkSubnet, "exists")
	wantLine(t, out, "✗", "subnet", missing, "does not exist")
	wantLine(t, out, "–", "permission ec2:RunInstances", "fix the network settings")
}

// TestCheckApproversExist: the example config's placeholder approvers
// (U0APPROVER, S0PLATFORM) are flagged, not passed, as are a deactivated
// user, a bot and an empty group; real ones pass with their names.
func TestCheckApproversExist(t *testing.T) {
	b := newCheckBed(t)
	b.slack.AddUserGroup("SPLATFORM", "UBO", "UANA")
	yaml := strings.Replace(checkConfig, "approvers: [UBO]", "approvers: [UBO, SPLATFORM]", 1)
	yaml = strings.NewReplacer("AMI", "ami-0123456789abcdef0", "STORE", filepath.Join(b.dir, "computebot.db")).Replace(yaml)
	if err := os.WriteFile(b.env["COMPUTEBOT_CONFIG"], []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := b.run()
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	wantLine(t, out, "✓", "approvers", "UBO (@bo)", "SPLATFORM (user group, 2 members)")

	// The example config, as a newcomer runs it before editing it.
	example, err := os.ReadFile("../../config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(b.dir, "example.yaml")
	if err := os.WriteFile(path, example, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = b.run("--config", path)
	if code != 1 {
		t.Errorf("example config: exit %d, want 1", code)
	}
	wantLine(t, out, "✗", "approver U0APPROVER", "no such user", "user_not_found")
	wantLine(t, out, "✗", "approver S0PLATFORM", "no such user group", "no_such_subteam")
	if strings.Contains(out, "✓ approvers") {
		t.Errorf("placeholder approvers passed:\n%s", out)
	}

	b.slack.PutUser(fakeslack.User{ID: "UGONE", Name: "gone", Deleted: true})
	b.slack.PutUser(fakeslack.User{ID: "UBOT", Name: "somebot", IsBot: true})
	b.slack.AddUserGroup("SEMPTY")
	yaml = strings.Replace(checkConfig, "approvers: [UBO]", "approvers: [UBO, UGONE, UBOT, SEMPTY]", 1)
	yaml = strings.NewReplacer("AMI", "ami-0123456789abcdef0", "STORE", filepath.Join(b.dir, "computebot.db")).Replace(yaml)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = b.run("--config", path)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	wantLine(t, out, "✗", "approver UGONE", "deactivated")
	wantLine(t, out, "✗", "approver UBOT", "is a bot")
	wantLine(t, out, "✗", "approver SEMPTY", "no members")
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// A token without users:read cannot tell: skipped, saying why.
	b.slack.SetError("users.info", fakeslack.Always, "missing_scope")
	if code, out = b.run(); code != 0 {
		t.Errorf("without users:read: exit %d, want 0:\n%s", code, out)
	}
	wantLine(t, out, "–", "approvers", "users:read")
}

// TestCheckSDKWarningsStayOff: off EC2, the SDK's credential chain asks
// the instance metadata service, and its ec2imds client logs "WARN falling
// back to IMDSv1" to the process's stderr when the token request is
// refused. check's terminal shows its own lines only.
func TestCheckSDKWarningsStayOff(t *testing.T) {
	b := newCheckBed(t)
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden) // the token (PUT) and the role (GET) alike
	}))
	defer imds.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	code, out := b.run()
	os.Stderr = saved
	_ = w.Close()
	leaked, _ := io.ReadAll(r)
	if len(leaked) > 0 {
		t.Errorf("the process's stderr got %q", leaked)
	}
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	wantLine(t, out, "–", "aws", "no AWS credentials")
	if strings.Contains(out, "IMDS") {
		t.Errorf("the report shows the SDK's warning:\n%s", out)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
