package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// minimal is the smallest valid config.
const minimal = `
approvers: [U0APPROVER]
launch:
  allowed_types: [t3.micro]
  ami: ami-0123456789abcdef0
`

func TestExampleLoads(t *testing.T) {
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Approvers, []string{"U0APPROVER", "S0PLATFORM"}) || c.NotifyChannel != "C0OPS" {
		t.Errorf("approvers %v, notify_channel %q", c.Approvers, c.NotifyChannel)
	}
	if !slices.Contains(c.Launch.AllowedTypes, "t3.small") || slices.Contains(c.Launch.AutoApproveTypes, "t3.small") || c.Launch.KeyName != "data-science" {
		t.Errorf("launch = %+v", c.Launch)
	}
}

// example.yaml is the reference: it must show every key there is.
func TestExampleHasEveryKey(t *testing.T) {
	data, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	ix := newIndex(&root)
	var want []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			key := prefix + name
			want = append(want, key)
			if f.Type.Kind() == reflect.Struct {
				walk(key+".", f.Type)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
	for _, k := range want {
		if _, ok := ix.line[k]; !ok {
			t.Errorf("example.yaml does not show %s", k)
		}
	}
}

// The example's values are the defaults (where there is one), so it can
// say "Default: …" truthfully.
func TestExampleShowsDefaults(t *testing.T) {
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	d.Approvers, d.NotifyChannel = c.Approvers, c.NotifyChannel
	d.Launch.AllowedTypes, d.Launch.AMI, d.Launch.KeyName = c.Launch.AllowedTypes, c.Launch.AMI, c.Launch.KeyName
	// Empty lists and maps in the file decode as empty, not nil.
	d.Launch.AutoApproveTypes, d.Launch.SecurityGroupIDs, d.Launch.Prices, d.Launch.Images = []string{}, []string{}, map[string]float64{}, map[string]string{}
	d.Launch.SubnetIDs, d.Launch.FallbackTypes = []string{}, map[string][]string{}
	d.Lambda.RequireApproval = []string{}
	if !reflect.DeepEqual(c, d) {
		t.Errorf("example differs from defaults:\n got %+v\nwant %+v", c, d)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"approval_ttl", c.ApprovalTTL.Duration(), 24 * time.Hour},
		{"allow_self_approval", c.AllowSelfApproval, false},
		{"notify_channel", c.NotifyChannel, ""},
		{"launch.default_ttl", c.Launch.DefaultTTL.Duration(), 8 * time.Hour},
		{"launch.max_lease", c.Launch.MaxLease.Duration(), 72 * time.Hour},
		{"launch.max_running_per_user", c.Launch.MaxRunningPerUser, 3},
		{"launch.ssh_user", c.Launch.SSHUser, ""},
		{"launch.auto_approve_types", len(c.Launch.AutoApproveTypes), 0},
		{"idle.schedule", c.Idle.Schedule, "*/10 * * * *"},
		{"idle.cpu_below_percent", c.Idle.CPUBelowPercent, 5.0},
		{"idle.for", c.Idle.For.Duration(), time.Hour},
		{"idle.grace", c.Idle.Grace.Duration(), 30 * time.Minute},
		{"lambda.allowed_functions", c.Lambda.AllowedFunctions, []string{"*"}},
		{"lambda.timeout", c.Lambda.Timeout.Duration(), time.Minute},
		{"store.path", c.Store.Path, "computebot.db"},
		{"aws.region", c.AWS.Region, ""},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// A section given in part keeps the defaults of the rest.
	c, err = Parse([]byte(minimal + "idle:\n  for: 2h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Idle.For.Duration() != 2*time.Hour || c.Idle.Grace.Duration() != 30*time.Minute || c.Idle.Schedule != "*/10 * * * *" {
		t.Errorf("idle = %+v", c.Idle)
	}
	// Default() hands out fresh slices.
	Default().Lambda.AllowedFunctions[0] = "changed"
	if Default().Lambda.AllowedFunctions[0] != "*" {
		t.Error("Default shares state")
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"24h": 24 * time.Hour, "30m": 30 * time.Minute, "1h30m": 90 * time.Minute, "90s": 90 * time.Second,
		"3d": 72 * time.Hour, "1.5d": 36 * time.Hour, "1d12h": 36 * time.Hour, ".5d": 12 * time.Hour, " 2d ": 48 * time.Hour,
		"0": 0, "-1d": -24 * time.Hour,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "24x", "3", "d", "3dd", "1e3d", "3 days", "abc", "99999999999d", "1.2.3d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		} else if !strings.Contains(err.Error(), "invalid duration") {
			t.Errorf("ParseDuration(%q): %v", in, err)
		}
	}
	for d, want := range map[time.Duration]string{
		72 * time.Hour: "3d", 8 * time.Hour: "8h", 30 * time.Minute: "30m", 90 * time.Second: "1m30s", 0: "0s", 36 * time.Hour: "36h",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
	}
	c, err := Parse([]byte("approvers: [U0APPROVER]\napproval_ttl: 3d\nlaunch:\n  allowed_types: [t3.micro]\n  ami: ami-0123abcd\n  max_lease: 7d\n  default_ttl: 1d12h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ApprovalTTL.Duration() != 72*time.Hour || c.Launch.MaxLease.Duration() != 7*24*time.Hour || c.Launch.DefaultTTL.Duration() != 36*time.Hour {
		t.Errorf("durations: %v %v %v", c.ApprovalTTL, c.Launch.MaxLease, c.Launch.DefaultTTL)
	}
	out, err := yaml.Marshal(c.Launch)
	if err != nil || !strings.Contains(string(out), "max_lease: 7d") {
		t.Errorf("marshal: %v\n%s", err, out)
	}
}

// Each problem names its key; the exact texts of a few are pinned.
func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		key  string   // the key each problem must name
		has  []string // substrings of the error
	}{
		{"no approvers", "launch: {allowed_types: [t3.micro], ami: ami-0123abcd}",
			"approvers", []string{"approvers: at least one approver (Slack user ID U… or user-group ID S…) is required"}},
		{"empty approvers", "approvers: []\nlaunch: {allowed_types: [t3.micro], ami: ami-0123abcd}",
			"approvers", []string{"line 1: approvers: at least one approver"}},
		{"bad approver", "approvers: [U0APPROVER, ana]\nlaunch: {allowed_types: [t3.micro], ami: ami-0123abcd}",
			"approvers[1]", []string{`approvers[1]: "ana" is not a Slack user ID`}},
		{"bad approval_ttl", minimal + "approval_ttl: 24x\n",
			"approval_ttl", []string{`line 6: approval_ttl: invalid duration "24x"`}},
		{"approval_ttl list", minimal + "approval_ttl: [1h]\n",
			"approval_ttl", []string{"approval_ttl: invalid duration: expected a value such as 24h"}},
		{"zero approval_ttl", minimal + "approval_ttl: 0s\n",
			"approval_ttl", []string{"approval_ttl: must be a positive duration"}},
		{"bad notify_channel", minimal + "notify_channel: '#ops'\n",
			"notify_channel", []string{`notify_channel: "#ops" is not a Slack channel ID`}},
		{"no allowed types", "approvers: [U0APPROVER]\nlaunch:\n  ami: ami-0123abcd\n",
			"launch.allowed_types", []string{"launch.allowed_types: list at least one instance type"}},
		{"bad allowed type", "approvers: [U0APPROVER]\nlaunch:\n  allowed_types: [t3.micro, t3micro]\n  ami: ami-0123abcd\n",
			"launch.allowed_types[1]", []string{`line 3: launch.allowed_types[1]: "t3micro" is not an EC2 instance type name`}},
		{"bad allowed type block list", "approvers: [U0APPROVER]\nlaunch:\n  allowed_types:\n    - t3.micro\n    - large\n  ami: ami-0123abcd\n",
			"launch.allowed_types[1]", []string{`line 5: launch.allowed_types[1]: "large" is not`}},
		{"bad auto type", minimal + "  auto_approve_types: [x]\n",
			"launch.auto_approve_types[0]", []string{"is not an EC2 instance type name"}},
		{"auto not allowed", minimal + "  auto_approve_types: [t3.large]\n",
			"launch.auto_approve_types[0]", []string{`"t3.large" is not in launch.allowed_types`}},
		{"no ami", "approvers: [U0APPROVER]\nlaunch:\n  allowed_types: [t3.micro]\n",
			"launch.ami", []string{"launch.ami: required"}},
		{"bad ami", "approvers: [U0APPROVER]\nlaunch:\n  allowed_types: [t3.micro]\n  ami: ubuntu\n",
			"launch.ami", []string{`launch.ami: "ubuntu" is not an AMI ID`}},
		{"bad ssh_user", minimal + "  ssh_user: Ubuntu User\n",
			"launch.ssh_user", []string{"is not a Linux user name"}},
		{"bad key_name", minimal + "  key_name: \"k\\u00e9y\"\n",
			"launch.key_name", []string{"is not an EC2 key pair name"}},
		{"bad security group", minimal + "  security_group_ids: [sg-12, sg-0123abcd]\n",
			"launch.security_group_ids[0]", []string{`"sg-12" is not a security group ID`}},
		{"bad subnet", minimal + "  subnet_id: subnet-xyz\n",
			"launch.subnet_id", []string{`"subnet-xyz" is not a subnet ID`}},
		{"bad subnet_ids", minimal + "  subnet_ids: [subnet-0123abcd, subnet-x]\n",
			"launch.subnet_ids[1]", []string{`"subnet-x" is not a subnet ID`}},
		{"subnet listed twice", minimal + "  subnet_ids: [subnet-0123abcd, subnet-0123abcd]\n",
			"launch.subnet_ids[1]", []string{"subnet-0123abcd is listed twice"}},
		{"fallback of a type not allowed", minimal + "  fallback_types: {g5.xlarge: [t3.micro]}\n",
			"launch.fallback_types.g5.xlarge", []string{`"g5.xlarge" is not in launch.allowed_types`}},
		{"fallback not allowed", minimal + "  fallback_types: {t3.micro: [g6.xlarge]}\n",
			"launch.fallback_types.t3.micro[0]", []string{`"g6.xlarge" is not in launch.allowed_types; a fallback must be a type people may launch`}},
		{"fallback to itself", "approvers: [U0APPROVER]\nlaunch:\n  allowed_types: [g5.xlarge, g6.xlarge]\n  ami: ami-0123abcd\n  fallback_types: {g5.xlarge: [g6.xlarge, G5.xlarge]}\n",
			"launch.fallback_types.g5.xlarge[1]", []string{`"g5.xlarge" is already tried before`}},
		{"fallback of an auto-approved type", "approvers: [U0APPROVER]\nlaunch:\n  allowed_types: [t3.medium, g6.xlarge]\n  auto_approve_types: [t3.medium]\n  ami: ami-0123abcd\n  fallback_types: {t3.medium: [g6.xlarge]}\n",
			"launch.fallback_types.t3.medium[0]", []string{`"g6.xlarge" is not in launch.auto_approve_types but "t3.medium" is`}},
		{"bad default_schedule", minimal + "  default_schedule: weekdays 8-19 Europe/Berlin\n",
			"launch.default_schedule", []string{`"8" is not a time of day`}},
		{"max_running zero", minimal + "  max_running_per_user: 0\n",
			"launch.max_running_per_user", []string{"must be at least 1, not 0"}},
		{"max_running not a number", minimal + "  max_running_per_user: lots\n",
			"launch.max_running_per_user", []string{`launch.max_running_per_user: expected a whole number, got "lots"`}},
		{"bad default_ttl", minimal + "  default_ttl: 8 hours\n",
			"launch.default_ttl", []string{`invalid duration "8 hours"`}},
		{"negative max_lease", minimal + "  max_lease: -1h\n",
			"launch.max_lease", []string{"must be a positive duration"}},
		{"ttl over lease", minimal + "  default_ttl: 4d\n  max_lease: 3d\n",
			"launch.default_ttl", []string{"launch.default_ttl: 4d is longer than launch.max_lease (3d)"}},
		{"negative price", minimal + "  prices: {t3.micro: -0.01}\n",
			"launch.prices.t3.micro", []string{"the price must be a number of USD per hour ≥ 0"}},
		{"bad price type", minimal + "  prices: {micro: 0.01}\n",
			"launch.prices.micro", []string{`"micro" is not an EC2 instance type name`}},
		{"price not a number", minimal + "  prices:\n    t3.micro: cheap\n",
			"launch.prices.t3.micro", []string{"expected a number, got \"cheap\""}},
		{"bad schedule", minimal + "idle:\n  schedule: every 10 minutes\n",
			"idle.schedule", []string{`idle.schedule: invalid cron schedule "every 10 minutes"`}},
		{"cpu zero", minimal + "idle:\n  cpu_below_percent: 0\n",
			"idle.cpu_below_percent", []string{"more than 0 and at most 100, not 0"}},
		{"cpu over 100", minimal + "idle:\n  cpu_below_percent: 101\n",
			"idle.cpu_below_percent", []string{"not 101"}},
		{"bad idle for", minimal + "idle:\n  for: soon\n",
			"idle.for", []string{`idle.for: invalid duration "soon"`}},
		{"idle for off the metrics period", minimal + "idle:\n  for: 7m\n",
			"idle.for", []string{"7m is not a multiple of 5m"}},
		{"negative grace", minimal + "idle:\n  grace: -5m\n",
			"idle.grace", []string{"must not be negative"}},
		{"bad function pattern", minimal + "lambda:\n  allowed_functions: ['report-[']\n",
			"lambda.allowed_functions[0]", []string{"is not a function name pattern"}},
		{"bad approval pattern", minimal + "lambda:\n  require_approval: ['has space']\n",
			"lambda.require_approval[0]", []string{"is not a function name pattern"}},
		{"lambda timeout too long", minimal + "lambda:\n  timeout: 1h\n",
			"lambda.timeout", []string{"1h is longer than Lambda's limit of 15m"}},
		{"empty store path", minimal + "store:\n  path: ''\n",
			"store.path", []string{"store.path: required"}},
		{"store path and table", minimal + "store:\n  path: computebot.db\n  dynamodb:\n    table: computebot\n",
			"store.dynamodb.table", []string{"set either store.path", "not both"}},
		{"bad table name", minimal + "store:\n  dynamodb:\n    table: 'my table'\n",
			"store.dynamodb.table", []string{`"my table" is not a DynamoDB table name`}},
		{"bad region", minimal + "aws:\n  region: Frankfurt\n",
			"aws.region", []string{`"Frankfurt" is not an AWS region name`}},
		{"wrong type for section", minimal + "idle: yes\n",
			"idle", []string{"idle: expected a mapping of keys"}},
		{"bool for list", minimal + "  security_group_ids: true\n",
			"launch.security_group_ids", []string{"expected a list"}},
		{"unknown top-level key", minimal + "aprovers: [U1]\n",
			"aprovers", []string{"line 6: aprovers: unknown key `aprovers`; did you mean `approvers`? (top-level keys: approvers, allow_self_approval,"}},
		{"unknown nested key", "approvers: [U0APPROVER]\nlaunch:\n  allowed_types: [t3.micro]\n  ami: ami-0123abcd\n  foo: 1\n",
			"launch.foo", []string{"line 5: launch.foo: unknown key `foo` under `launch` (keys under launch: allowed_types,"}},
		{"unknown nested key typo", minimal + "  max_running: 2\n",
			"launch.max_running", []string{"unknown key `max_running` under `launch`", "did you mean"}},
		{"unknown deeper key", minimal + "idle:\n  schedul: '@hourly'\n",
			"idle.schedul", []string{"unknown key `schedul` under `idle`; did you mean `schedule`?"}},
		{"duplicate key", minimal + "approval_ttl: 1h\napproval_ttl: 2h\n",
			"approval_ttl", []string{"line 7: approval_ttl: the key is given twice"}},
		{"duplicate section", minimal + "launch:\n  ami: ami-0123abcd\n",
			"launch", []string{"line 6: launch: the key is given twice"}},
		{"wrong type", "approvers: U0APPROVER\nlaunch: {allowed_types: [t3.micro], ami: ami-0123abcd}\n",
			"approvers", []string{"approvers: expected a list, got \"U0APPROVER\""}},
		{"not a mapping", "- a\n- b\n",
			"", []string{"the file must be a mapping of keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			for _, s := range tt.has {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error:\n%v\nwant it to contain %q", err, s)
				}
			}
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("no *Problem in %v", err)
			}
			found := false
			for _, e := range unwrapAll(err) {
				if errors.As(e, &p) && p.Key == tt.key && (tt.key == "" || strings.Contains(e.Error(), tt.key+":")) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem names key %q:\n%v", tt.key, err)
			}
		})
	}
}

// A value that fails to decode is reported once, not again by validation.
func TestDecodeProblemNotRepeated(t *testing.T) {
	_, err := Parse([]byte("approvers: U0APPROVER\nlaunch: {allowed_types: [t3.micro], ami: ami-0123abcd}\n"))
	if errs := unwrapAll(err); len(errs) != 1 {
		t.Errorf("%d problems:\n%v", len(errs), err)
	}
}

func unwrapAll(err error) []error {
	if m, ok := err.(interface{ Unwrap() []error }); ok {
		return m.Unwrap()
	}
	return []error{err}
}

// All problems come at once, in file order.
func TestAllProblemsAtOnce(t *testing.T) {
	bad := `approvers: []
approval_ttl: 24x
launch:
  allowed_types: [t3.micro, nope]
  ami: ubuntu
  foo: bar
idle:
  cpu_below_percent: 0
`
	_, err := Parse([]byte(bad))
	if err == nil {
		t.Fatal("accepted")
	}
	errs := unwrapAll(err)
	want := []string{"line 1: approvers:", "line 2: approval_ttl:", "line 4: launch.allowed_types[1]:", "line 5: launch.ami:", "line 6: launch.foo:", "line 8: idle.cpu_below_percent:"}
	if len(errs) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("problem %d = %q, want prefix %q", i, errs[i], w)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("approvers: []\napproval_ttl: 24x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), "config "+path+" has 4 problems:\n") {
		t.Errorf("Load: %v", err)
	}
	var p *Problem
	if !errors.As(err, &p) {
		t.Errorf("Load error does not wrap problems: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load missing: %v", err)
	}
	if err := os.WriteFile(path, []byte("approvers: [U1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "not valid YAML") {
		t.Errorf("Load bad YAML: %v", err)
	}
}

func TestEmptyFile(t *testing.T) {
	_, err := Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "approvers: at least one approver") {
		t.Errorf("Parse(nil): %v", err)
	}
}

func TestTypesAndPricesAreNormalized(t *testing.T) {
	c, err := Parse([]byte(`approvers: [U0APPROVER, W0ENTERPRISE, S0GROUP]
launch:
  allowed_types: [t3.micro, T3.Small]
  auto_approve_types: [t3.micro]
  ami: resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64
  prices: {T3.Micro: 0.01}
`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Launch.AllowedTypes, []string{"t3.micro", "t3.small"}) || !reflect.DeepEqual(c.Launch.AutoApproveTypes, []string{"t3.micro"}) {
		t.Errorf("types are not normalized: %v, %v", c.Launch.AllowedTypes, c.Launch.AutoApproveTypes)
	}
	if p, ok := c.Launch.Prices["t3.micro"]; !ok || p != 0.01 || len(c.Launch.Prices) != 1 {
		t.Errorf("prices are not normalized: %v", c.Launch.Prices)
	}
}

func TestValidateInCode(t *testing.T) {
	c := Default()
	c.Approvers = []string{"U0APPROVER"}
	c.Launch.AllowedTypes = []string{"t3.micro"}
	c.Launch.AMI = "ami-0123abcd"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Launch.MaxRunningPerUser = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "launch.max_running_per_user") {
		t.Errorf("Validate: %v", err)
	}
}

// TestDynamoDBStore: a table alone selects the shared store; store.path's
// default does not count as setting both.
func TestDynamoDBStore(t *testing.T) {
	c, err := Parse([]byte(minimal + "store:\n  dynamodb:\n    table: computebot\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Store.Shared() || c.Store.DynamoDB.Table != "computebot" || c.Store.Path != "" {
		t.Fatalf("store = %+v, want the table computebot and no path", c.Store)
	}
	c, err = Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.Shared() || c.Store.Path != DefaultStorePath {
		t.Fatalf("store = %+v, want the default file", c.Store)
	}
}
