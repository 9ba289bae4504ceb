// Package config reads and validates computebot's YAML configuration.
//
// Everything wrong with a file is reported at start-up, all at once, each
// problem naming its key (and line): a bot that starts is a bot whose config
// makes sense. example.yaml in this directory documents every key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	// Approvers are Slack user IDs (U…, W…) and user-group IDs (S…) whose
	// click on Approve counts.
	Approvers         []string `yaml:"approvers"`
	AllowSelfApproval bool     `yaml:"allow_self_approval"`
	ApprovalTTL       Duration `yaml:"approval_ttl"`
	// NotifyChannel is an optional channel ID (C…, G…, D…) for the bot's
	// own notices.
	NotifyChannel string `yaml:"notify_channel"`
	Launch        Launch `yaml:"launch"`
	Idle          Idle   `yaml:"idle"`
	Lambda        Lambda `yaml:"lambda"`
	Store         Store  `yaml:"store"`
	AWS           AWS    `yaml:"aws"`
}

// Launch configures /launch.
type Launch struct {
	AllowedTypes     []string `yaml:"allowed_types"`
	AutoApproveTypes []string `yaml:"auto_approve_types"`
	// AMI is an AMI ID or "resolve:ssm:/parameter/name".
	AMI string `yaml:"ami"`
	// SSHUser is the login for the SSH line; "" infers it from the AMI name.
	SSHUser          string   `yaml:"ssh_user"`
	KeyName          string   `yaml:"key_name"`
	SecurityGroupIDs []string `yaml:"security_group_ids"`
	SubnetID         string   `yaml:"subnet_id"`
	// SubnetIDs, when set, take the place of SubnetID: subnets in several
	// Availability Zones, tried in order when one has no capacity.
	SubnetIDs []string `yaml:"subnet_ids"`
	// FallbackTypes maps a type to the types tried, in order, when no
	// subnet has capacity for it (each an allowed type).
	FallbackTypes map[string][]string `yaml:"fallback_types"`
	// Hibernate launches instances able to hibernate when their type and
	// image can (also /launch --hibernate); stops then keep the memory.
	Hibernate bool `yaml:"hibernate"`
	// DefaultSchedule gives every new instance office hours ("weekdays
	// 08:00-19:00 Europe/Berlin"; /schedule changes them); "" for none.
	DefaultSchedule   string   `yaml:"default_schedule"`
	MaxRunningPerUser int      `yaml:"max_running_per_user"`
	DefaultTTL        Duration `yaml:"default_ttl"`
	MaxLease          Duration `yaml:"max_lease"`
	// Prices maps instance types to USD per hour, overriding the Pricing API.
	Prices map[string]float64 `yaml:"prices"`
	// Images maps short names (for /launch --image NAME) to AMI IDs or
	// resolve:ssm: parameters, e.g. dlami: the Deep Learning AMI.
	Images map[string]string `yaml:"images"`
	// UserData is a cloud-init #cloud-config document every instance gets,
	// merged with the requester's SSH keys (ssh_authorized_keys).
	UserData string `yaml:"user_data"`
	// NotebookPort is Jupyter's port, forwarded by /connect's notebook line.
	NotebookPort int `yaml:"notebook_port"`
}

// Subnets are the subnets a launch tries, in order: SubnetIDs when set,
// else SubnetID; [""] (EC2's default subnet) when neither is.
func (l *Launch) Subnets() []string {
	if len(l.SubnetIDs) > 0 {
		return slices.Clone(l.SubnetIDs)
	}
	return []string{l.SubnetID}
}

// Types are the types a launch of t tries, in order: t, then its
// fallback_types.
func (l *Launch) Types(t string) []string {
	return append([]string{t}, l.FallbackTypes[t]...)
}

// Idle configures the idle-instance check.
type Idle struct {
	Schedule        string  `yaml:"schedule"` // cron, 5 fields or @every …
	CPUBelowPercent float64 `yaml:"cpu_below_percent"`
	// GPUBelowPercent: on types with GPUs, GPU utilization (the CloudWatch
	// agent's nvidia_smi_utilization_gpu) must stay below this too.
	GPUBelowPercent float64  `yaml:"gpu_below_percent"`
	For             Duration `yaml:"for"`
	Grace           Duration `yaml:"grace"`
	// NetworkBelowBytes: NetworkIn+NetworkOut per 5-minute period must stay
	// below this too, so a low-CPU download is not idle.
	NetworkBelowBytes float64  `yaml:"network_below_bytes"`
	Snooze            Duration `yaml:"snooze"`       // what Keep running buys
	LeaseAction       string   `yaml:"lease_action"` // "stop" or "terminate" when a lease expires
	// MetricsDelay: CloudWatch publishes a period minutes after it ends, so
	// the look-back window ends this long before now.
	MetricsDelay Duration `yaml:"metrics_delay"`
	// MaxKeep is the longest an owner may /keep an instance from idle
	// stops; approvers may keep longer.
	MaxKeep Duration `yaml:"max_keep"`
}

// Lambda configures /lambda.
type Lambda struct {
	AllowedFunctions []string `yaml:"allowed_functions"` // glob patterns
	RequireApproval  []string `yaml:"require_approval"`  // glob patterns
	Timeout          Duration `yaml:"timeout"`
}

// Store configures persistence: the embedded bbolt file (path, the
// default, for one replica) or a DynamoDB table shared by several
// replicas (dynamodb.table). Exactly one of them.
type Store struct {
	Path     string   `yaml:"path"`
	DynamoDB DynamoDB `yaml:"dynamodb"`
}

// DynamoDB names the shared store's table. Its endpoint and region come
// from the AWS SDK's default chain (AWS_ENDPOINT_URL_DYNAMODB overrides).
type DynamoDB struct {
	Table string `yaml:"table"`
	// LeaseTTL is how long the leader lease and each replica's heartbeat
	// stand without renewal: the leader renews every third of it, another
	// replica takes over about LeaseTTL after the leader died, and the
	// work of a replica is taken over 2×LeaseTTL after it died.
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// Shared reports whether the store is the shared DynamoDB table.
func (s Store) Shared() bool { return s.DynamoDB.Table != "" }

// AWS configures the AWS clients beyond the SDK's default chain.
type AWS struct {
	Region string `yaml:"region"` // "" uses the SDK's default (AWS_REGION, profile)
}

// Defaults.
const (
	DefaultApprovalTTL       = 24 * time.Hour
	DefaultLeaseTTL          = 8 * time.Hour
	DefaultMaxLease          = 72 * time.Hour
	DefaultMaxRunningPerUser = 3
	DefaultIdleSchedule      = "*/10 * * * *"
	DefaultIdleCPUPercent    = 5
	DefaultIdleGPUPercent    = 5
	DefaultIdleFor           = time.Hour
	DefaultIdleGrace         = 30 * time.Minute
	DefaultIdleNetworkBytes  = 5e6
	DefaultIdleSnooze        = 4 * time.Hour
	DefaultLeaseAction       = "stop"
	DefaultIdleMetricsDelay  = 10 * time.Minute
	DefaultIdleMaxKeep       = 72 * time.Hour
	DefaultLambdaTimeout     = 60 * time.Second
	DefaultStorePath         = "computebot.db"
	DefaultNotebookPort      = 8888
	DefaultStoreLeaseTTL     = 15 * time.Second
	// MinLeaseTTL keeps renewals (every third) well above a DynamoDB
	// call's latency.
	MinLeaseTTL = 3 * time.Second
)

// Default returns a Config with every default applied. It is not valid on
// its own: approvers, launch.allowed_types and launch.ami have no default.
func Default() *Config {
	return &Config{
		ApprovalTTL: Duration(DefaultApprovalTTL),
		Launch: Launch{
			MaxRunningPerUser: DefaultMaxRunningPerUser,
			DefaultTTL:        Duration(DefaultLeaseTTL),
			MaxLease:          Duration(DefaultMaxLease),
			NotebookPort:      DefaultNotebookPort,
		},
		Idle: Idle{
			Schedule:          DefaultIdleSchedule,
			CPUBelowPercent:   DefaultIdleCPUPercent,
			GPUBelowPercent:   DefaultIdleGPUPercent,
			For:               Duration(DefaultIdleFor),
			Grace:             Duration(DefaultIdleGrace),
			NetworkBelowBytes: DefaultIdleNetworkBytes,
			Snooze:            Duration(DefaultIdleSnooze),
			LeaseAction:       DefaultLeaseAction,
			MetricsDelay:      Duration(DefaultIdleMetricsDelay),
			MaxKeep:           Duration(DefaultIdleMaxKeep),
		},
		Lambda: Lambda{
			AllowedFunctions: []string{"*"},
			Timeout:          Duration(DefaultLambdaTimeout),
		},
		Store: Store{Path: DefaultStorePath, DynamoDB: DynamoDB{LeaseTTL: Duration(DefaultStoreLeaseTTL)}},
	}
}

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		if m, ok := err.(interface{ Unwrap() []error }); ok && len(m.Unwrap()) > 1 {
			return nil, fmt.Errorf("config %s has %d problems:\n%w", path, len(m.Unwrap()), err)
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a config file's contents. Keys left out keep
// their defaults; unknown keys are errors. When anything is wrong it returns
// every problem joined (errors.Join), each a *Problem naming its key.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(root.Content) == 1 {
		if doc := root.Content[0]; doc.Kind != yaml.MappingNode && doc.ShortTag() != "!!null" {
			return nil, joinProblems([]*Problem{{Line: doc.Line, Message: "the file must be a mapping of keys to values (approvers: …, launch: …); see config/example.yaml"}})
		}
	}
	ix := newIndex(&root)

	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var problems []*Problem
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("not valid YAML: %w", err)
		}
		problems = append(problems, ix.typeErrors(te.Errors)...)
	}
	c.normalize()
	if c.Store.Shared() && ix.line["store.path"] == 0 {
		// store.path's default is for the embedded store only.
		c.Store.Path = ""
	}
	// A value that failed to decode keeps its default, so validation would
	// only repeat the decoding problem ("approvers: expected a list" then
	// "approvers: required"); after a duplicate key yaml.v3 drops the whole
	// mapping, so validation would report keys that are in the file.
	decoded := map[string]bool{}
	for _, p := range problems {
		if p.Message == duplicateKey {
			return nil, joinProblems(problems)
		}
		decoded[p.Key] = true
	}
	for _, p := range c.problems() {
		if decoded[p.Key] {
			continue
		}
		if p.Line == 0 {
			p.Line = ix.lineOf(p.Key)
		}
		problems = append(problems, p)
	}
	if err := joinProblems(problems); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks a Config built in code (Parse has already done so for a
// file) and returns every problem joined, or nil.
func (c *Config) Validate() error {
	return joinProblems(c.problems())
}

// Problem is one thing wrong with a config.
type Problem struct {
	Key     string // the key's path: "approval_ttl", "launch.allowed_types[1]"
	Line    int    // line in the file; 0 when not known
	Message string // what is wrong and what is expected
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

func joinProblems(ps []*Problem) error {
	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b *Problem) int { return a.Line - b.Line })
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// normalize trims IDs and lower-cases instance type names, so that
// "T3.Micro" in the file matches what the parser hands over.
func (c *Config) normalize() {
	for i, a := range c.Approvers {
		c.Approvers[i] = strings.TrimSpace(a)
	}
	lower := func(s []string) {
		for i, t := range s {
			s[i] = strings.ToLower(strings.TrimSpace(t))
		}
	}
	lower(c.Launch.AllowedTypes)
	lower(c.Launch.AutoApproveTypes)
	if len(c.Launch.Prices) > 0 {
		prices := make(map[string]float64, len(c.Launch.Prices))
		for t, p := range c.Launch.Prices {
			prices[strings.ToLower(strings.TrimSpace(t))] = p
		}
		c.Launch.Prices = prices
	}
	c.Launch.AMI = strings.TrimSpace(c.Launch.AMI)
	c.Launch.SubnetID = strings.TrimSpace(c.Launch.SubnetID)
	for i, id := range c.Launch.SubnetIDs {
		c.Launch.SubnetIDs[i] = strings.TrimSpace(id)
	}
	if len(c.Launch.FallbackTypes) > 0 {
		fallbacks := make(map[string][]string, len(c.Launch.FallbackTypes))
		for t, list := range c.Launch.FallbackTypes {
			lower(list)
			fallbacks[strings.ToLower(strings.TrimSpace(t))] = list
		}
		c.Launch.FallbackTypes = fallbacks
	}
	for i, g := range c.Launch.SecurityGroupIDs {
		c.Launch.SecurityGroupIDs[i] = strings.TrimSpace(g)
	}
	c.NotifyChannel = strings.TrimSpace(c.NotifyChannel)
}
