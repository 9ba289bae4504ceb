package config

import (
	"fmt"
	"maps"
	"math"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/schedule"
	"github.com/robfig/cron/v3"
)

var (
	approverRE      = regexp.MustCompile(`^[UWS][A-Z0-9]{2,}$`)
	channelRE       = regexp.MustCompile(`^[CGD][A-Z0-9]+$`)
	securityGroupRE = regexp.MustCompile(`^sg-([0-9a-f]{8}|[0-9a-f]{17})$`)
	subnetRE        = regexp.MustCompile(`^subnet-([0-9a-f]{8}|[0-9a-f]{17})$`)
	sshUserRE       = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	keyNameRE       = regexp.MustCompile(`^[\x20-\x7e]{1,255}$`)
	regionRE        = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	tableRE         = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)
	functionGlobRE  = regexp.MustCompile(`^[A-Za-z0-9_\-:.$*?\[\]^!]+$`)
)

// MaxLambdaTimeout is Lambda's own limit on a synchronous invocation.
const MaxLambdaTimeout = 15 * time.Minute

// IdleMetricsPeriod is the period of the CloudWatch metrics the idle check
// reads (basic monitoring publishes one datapoint per 5 minutes).
const IdleMetricsPeriod = 5 * time.Minute

// problems returns everything wrong with c, each naming its key.
func (c *Config) problems() []*Problem {
	var ps []*Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, &Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	positive := func(key string, d Duration) {
		if d <= 0 {
			add(key, "must be a positive duration such as 30m, 24h or 3d, not %s", d)
		}
	}

	// Approval.
	if len(c.Approvers) == 0 {
		add("approvers", "at least one approver (Slack user ID U… or user-group ID S…) is required")
	}
	for i, a := range c.Approvers {
		if !approverRE.MatchString(a) {
			add(fmt.Sprintf("approvers[%d]", i), "%q is not a Slack user ID (U… or W…: in Slack, open the profile, ⋮ → Copy member ID) or user-group ID (S…)", a)
		}
	}
	positive("approval_ttl", c.ApprovalTTL)
	if c.NotifyChannel != "" && !channelRE.MatchString(c.NotifyChannel) {
		add("notify_channel", "%q is not a Slack channel ID (C…, G… or D…: in Slack, open the channel's details; the ID is at the bottom); leave it empty for none", c.NotifyChannel)
	}

	// Launch.
	l := &c.Launch
	if len(l.AllowedTypes) == 0 {
		add("launch.allowed_types", "list at least one instance type, e.g. [t3.micro, t3.small]")
	}
	typeList := func(key string, types []string) {
		for i, t := range types {
			if !commands.IsInstanceTypeName(t) {
				add(fmt.Sprintf("%s[%d]", key, i), "%q is not an EC2 instance type name (family.size, e.g. t3.micro or g4dn.xlarge)", t)
			}
		}
	}
	typeList("launch.allowed_types", l.AllowedTypes)
	typeList("launch.auto_approve_types", l.AutoApproveTypes)
	for i, t := range l.AutoApproveTypes {
		if commands.IsInstanceTypeName(t) && len(l.AllowedTypes) > 0 && !slices.Contains(l.AllowedTypes, t) {
			add(fmt.Sprintf("launch.auto_approve_types[%d]", i), "%q is not in launch.allowed_types; a type must be allowed before it can be auto-approved", t)
		}
	}
	switch {
	case l.AMI == "":
		add("launch.ami", "required: an AMI ID (ami-…) or an SSM parameter such as resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
	case !commands.IsAMIRef(l.AMI):
		add("launch.ami", "%q is not an AMI ID (ami- followed by 8 or 17 hex digits) or an SSM parameter reference (resolve:ssm:/…)", l.AMI)
	}
	if l.SSHUser != "" && !sshUserRE.MatchString(l.SSHUser) {
		add("launch.ssh_user", "%q is not a Linux user name; leave it empty to infer it from the AMI name", l.SSHUser)
	}
	if l.KeyName != "" && !keyNameRE.MatchString(l.KeyName) {
		add("launch.key_name", "%q is not an EC2 key pair name (up to 255 printable ASCII characters)", l.KeyName)
	}
	for i, g := range l.SecurityGroupIDs {
		if !securityGroupRE.MatchString(g) {
			add(fmt.Sprintf("launch.security_group_ids[%d]", i), "%q is not a security group ID (sg- followed by 8 or 17 hex digits)", g)
		}
	}
	if l.SubnetID != "" && !subnetRE.MatchString(l.SubnetID) {
		add("launch.subnet_id", "%q is not a subnet ID (subnet- followed by 8 or 17 hex digits); leave it empty for the default VPC", l.SubnetID)
	}
	seenSubnet := map[string]bool{}
	for i, id := range l.SubnetIDs {
		key := fmt.Sprintf("launch.subnet_ids[%d]", i)
		switch {
		case !subnetRE.MatchString(id):
			add(key, "%q is not a subnet ID (subnet- followed by 8 or 17 hex digits)", id)
		case seenSubnet[id]:
			add(key, "%s is listed twice", id)
		}
		seenSubnet[id] = true
	}
	for _, t := range slices.Sorted(maps.Keys(l.FallbackTypes)) {
		key := "launch.fallback_types." + t
		if !slices.Contains(l.AllowedTypes, t) {
			add(key, "%q is not in launch.allowed_types; only an allowed type can fall back to others", t)
		}
		seen := map[string]bool{t: true}
		for i, f := range l.FallbackTypes[t] {
			k := fmt.Sprintf("%s[%d]", key, i)
			switch {
			case !commands.IsInstanceTypeName(f):
				add(k, "%q is not an EC2 instance type name (family.size, e.g. g6.xlarge)", f)
			case !slices.Contains(l.AllowedTypes, f):
				add(k, "%q is not in launch.allowed_types; a fallback must be a type people may launch", f)
			case seen[f]:
				add(k, "%q is already tried before", f)
			case slices.Contains(l.AutoApproveTypes, t) && !slices.Contains(l.AutoApproveTypes, f):
				// An auto-approved request launches its fallbacks too, with
				// nobody's click: only as far as auto-approval goes.
				add(k, "%q is not in launch.auto_approve_types but %q is: a request for %s would launch it without an approval", f, t, t)
			}
			seen[f] = true
		}
	}
	if l.DefaultSchedule != "" {
		if _, err := schedule.Parse(l.DefaultSchedule, nil); err != nil {
			add("launch.default_schedule", "%v", err)
		}
	}
	if l.MaxRunningPerUser < 1 {
		add("launch.max_running_per_user", "must be at least 1, not %d", l.MaxRunningPerUser)
	}
	for _, name := range slices.Sorted(maps.Keys(l.Images)) {
		key := "launch.images." + name
		switch ref := l.Images[name]; {
		case !commands.IsPresetName(name):
			add(key, "%q is not a preset name (lower-case letters, digits, - and _, starting with a letter)", name)
		case !commands.IsAMIRef(ref):
			add(key, "%q is not an AMI ID (ami-…) or an SSM parameter (resolve:ssm:/…)", ref)
		}
	}
	if l.NotebookPort < 1 || l.NotebookPort > 65535 {
		add("launch.notebook_port", "must be a TCP port, 1 to 65535, not %d", l.NotebookPort)
	}
	if l.UserData != "" {
		if _, err := CloudConfig(l.UserData); err != nil {
			add("launch.user_data", "%v", err)
		}
	}
	if k := c.Idle.MaxKeep.Duration(); k <= 0 || k > 90*24*time.Hour {
		add("idle.max_keep", "must be more than 0 and at most 90 days (/keep's own limit), not %s", c.Idle.MaxKeep)
	}
	positive("launch.default_ttl", l.DefaultTTL)
	positive("launch.max_lease", l.MaxLease)
	if l.DefaultTTL > 0 && l.MaxLease > 0 && l.DefaultTTL > l.MaxLease {
		add("launch.default_ttl", "%s is longer than launch.max_lease (%s)", l.DefaultTTL, l.MaxLease)
	}
	types := make([]string, 0, len(l.Prices))
	for t := range l.Prices {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		key := "launch.prices." + t
		if !commands.IsInstanceTypeName(t) {
			add(key, "%q is not an EC2 instance type name (family.size, e.g. t3.micro)", t)
		}
		if p := l.Prices[t]; p < 0 || math.IsNaN(p) || math.IsInf(p, 0) {
			add(key, "the price must be a number of USD per hour ≥ 0, not %v", p)
		}
	}

	// Idle check.
	if _, err := cron.ParseStandard(c.Idle.Schedule); err != nil {
		add("idle.schedule", "invalid cron schedule %q (%v): use 5 fields such as \"*/10 * * * *\", or \"@every 10m\"", c.Idle.Schedule, err)
	}
	if p := c.Idle.CPUBelowPercent; !(p > 0 && p <= 100) {
		add("idle.cpu_below_percent", "must be more than 0 and at most 100, not %v", p)
	}
	if p := c.Idle.GPUBelowPercent; !(p > 0 && p <= 100) {
		add("idle.gpu_below_percent", "must be more than 0 and at most 100, not %v", p)
	}
	positive("idle.for", c.Idle.For)
	if c.Idle.For > 0 && c.Idle.For.Duration()%IdleMetricsPeriod != 0 {
		add("idle.for", "%s is not a multiple of %s, the period of the CloudWatch metrics it looks back over", c.Idle.For, Duration(IdleMetricsPeriod))
	}
	if c.Idle.NetworkBelowBytes <= 0 {
		add("idle.network_below_bytes", "must be more than 0, not %v", c.Idle.NetworkBelowBytes)
	}
	positive("idle.snooze", c.Idle.Snooze)
	if c.Idle.MetricsDelay < 0 {
		add("idle.metrics_delay", "must not be negative, not %s", c.Idle.MetricsDelay)
	}
	if a := c.Idle.LeaseAction; a != "stop" && a != "terminate" {
		add("idle.lease_action", "must be \"stop\" or \"terminate\", not %q", a)
	}
	if c.Idle.Grace < 0 {
		add("idle.grace", "must not be negative, not %s", c.Idle.Grace)
	}

	// Lambda.
	globs := func(key string, patterns []string) {
		for i, p := range patterns {
			if _, err := path.Match(p, ""); err != nil || !functionGlobRE.MatchString(p) {
				add(fmt.Sprintf("%s[%d]", key, i), "%q is not a function name pattern (letters, digits, - _ : and the wildcards * ? [ ])", p)
			}
		}
	}
	globs("lambda.allowed_functions", c.Lambda.AllowedFunctions)
	globs("lambda.require_approval", c.Lambda.RequireApproval)
	positive("lambda.timeout", c.Lambda.Timeout)
	if c.Lambda.Timeout.Duration() > MaxLambdaTimeout {
		add("lambda.timeout", "%s is longer than Lambda's limit of 15m", c.Lambda.Timeout)
	}

	// Store and AWS.
	switch table := c.Store.DynamoDB.Table; {
	case table != "" && strings.TrimSpace(c.Store.Path) != "":
		add("store.dynamodb.table", "set either store.path (the embedded file, one replica) or store.dynamodb.table (several replicas), not both")
	case table != "" && !tableRE.MatchString(table):
		add("store.dynamodb.table", "%q is not a DynamoDB table name (3 to 255 letters, digits, _ . -)", table)
	case table != "" && c.Store.DynamoDB.LeaseTTL.Duration() < MinLeaseTTL:
		add("store.dynamodb.lease_ttl", "%s is shorter than %s: renewals (every third of it) would race DynamoDB's latency", c.Store.DynamoDB.LeaseTTL, Duration(MinLeaseTTL))
	case table == "" && strings.TrimSpace(c.Store.Path) == "":
		add("store.path", "required: the file the bot keeps its state in, e.g. %s (or store.dynamodb.table for several replicas)", DefaultStorePath)
	}
	if c.AWS.Region != "" && !regionRE.MatchString(c.AWS.Region) {
		add("aws.region", "%q is not an AWS region name such as us-east-1; leave it empty to use AWS_REGION", c.AWS.Region)
	}
	return ps
}
