package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/aws/dynamostore"
	"github.com/computebot/computebot/bot"
	"github.com/computebot/computebot/config"
)

// checkUsage is `computebot check --help`.
const checkUsage = `usage: computebot check --config FILE

Checks a deployment before the bot runs: the config file, the Slack tokens
(auth.test with SLACK_BOT_TOKEN, apps.connections.open with SLACK_APP_TOKEN;
no socket is opened), that each approver exists in the workspace
(users.info, usergroups.users.list), the AWS identity (STS
GetCallerIdentity), that the AMI, instance types, key pair, security groups
and subnet exist, with EC2 DryRun that the IAM policy allows the launch,
and, with store.dynamodb.table, the table (active, keys pk/sk, TTL on
expires_at, a conditional write that cannot apply to prove the bot may
write). Nothing is launched or changed. Prints one line per check
(✓ passed, ✗ failed, – skipped) and exits 1 when any check failed. Slack
checks are skipped when neither token is set, AWS checks when the SDK finds
no credentials.
`

// checkStatus is a check's outcome.
type checkStatus int

const (
	checkPassed checkStatus = iota
	checkFailed
	checkSkipped
)

var checkMarks = map[checkStatus]string{checkPassed: "✓", checkFailed: "✗", checkSkipped: "–"}

// checkReport prints check lines as they complete and counts them. Every
// detail passes through redact, so a token echoed in an error never
// reaches the terminal.
type checkReport struct {
	out     io.Writer
	secrets []string
	counts  map[checkStatus]int
}

func (r *checkReport) line(st checkStatus, name, detail string) {
	r.counts[st]++
	detail = r.redact(detail)
	first, rest, _ := strings.Cut(detail, "\n")
	fmt.Fprintf(r.out, "%s %s — %s\n", checkMarks[st], name, first)
	for l := range strings.SplitSeq(rest, "\n") {
		if l != "" {
			fmt.Fprintf(r.out, "    %s\n", l)
		}
	}
}

func (r *checkReport) pass(name, format string, args ...any) {
	r.line(checkPassed, name, fmt.Sprintf(format, args...))
}

func (r *checkReport) skip(name, format string, args ...any) {
	r.line(checkSkipped, name, fmt.Sprintf(format, args...))
}

// fail prints err's user-facing message (a *computebot.Error's Message and
// code, else the error text).
func (r *checkReport) fail(name string, err error) {
	r.line(checkFailed, name, errorDetail(err))
}

func (r *checkReport) failf(name, format string, args ...any) {
	r.line(checkFailed, name, fmt.Sprintf(format, args...))
}

func (r *checkReport) redact(s string) string {
	for _, secret := range r.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

func errorDetail(err error) string {
	var ce *computebot.Error
	if errors.As(err, &ce) && ce.Message != "" {
		if ce.Code != "" && !strings.Contains(ce.Message, ce.Code) {
			return fmt.Sprintf("%s (%s)", ce.Message, ce.Code)
		}
		return ce.Message
	}
	return err.Error()
}

// runCheck is `computebot check`: args are the arguments after "check".
// SLACK_API_URL is read through getenv as the bot reads it; AWS settings
// (AWS_REGION, AWS_ENDPOINT_URL, credentials…) come from the SDK's default
// chain, as for the bot. It returns the exit code: 0 when no check failed,
// 1 when one did, 2 for bad usage.
func runCheck(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("computebot check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", getenv("COMPUTEBOT_CONFIG"), "config file (YAML); env COMPUTEBOT_CONFIG")
	timeout := fs.Duration("timeout", 20*time.Second, "bound on each Slack and AWS call")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), checkUsage+"\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "computebot check: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "computebot check: no config: pass --config FILE or set COMPUTEBOT_CONFIG (see config/example.yaml)")
		return 2
	}

	botToken, appToken := getenv("SLACK_BOT_TOKEN"), getenv("SLACK_APP_TOKEN")
	r := &checkReport{out: stdout, secrets: []string{botToken, appToken}, counts: map[checkStatus]int{}}
	ctx := context.Background()

	cfg, err := config.Load(*path)
	if err != nil {
		r.fail("config", err)
		return r.finish()
	}
	r.pass("config", "%s is valid", *path)

	checkSlack(ctx, r, *timeout, botToken, appToken, getenv("SLACK_API_URL"), cfg.Approvers)
	if checkAWS(ctx, r, *timeout, cfg) {
		checkTable(ctx, r, *timeout, cfg)
	}
	return r.finish()
}

// checkTable verifies the shared store's table: it exists and is active,
// its keys and TTL are what the bot expects, and the bot may read and
// write it (a conditional write that can never apply proves the
// permission and changes nothing).
func checkTable(ctx context.Context, r *checkReport, timeout time.Duration, cfg *config.Config) {
	if !cfg.Store.Shared() {
		return
	}
	table := cfg.Store.DynamoDB.Table
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	problems := dynamostore.CheckTable(ctx, cfg.AWS.Region, table)
	if len(problems) == 0 {
		r.pass("dynamodb table", "%s is active, keyed pk/sk, TTL on %s, readable and writable", table, dynamostore.AttrExpires)
		return
	}
	r.fail("dynamodb table", errors.Join(problems...))
}

// finish prints the summary and returns the exit code.
func (r *checkReport) finish() int {
	passed, failed, skipped := r.counts[checkPassed], r.counts[checkFailed], r.counts[checkSkipped]
	summary := fmt.Sprintf("%d passed, %d failed, %d skipped", passed, failed, skipped)
	if failed > 0 {
		fmt.Fprintf(r.out, "\nFAIL: %s\n", summary)
		return 1
	}
	fmt.Fprintf(r.out, "\nOK: %s\n", summary)
	return 0
}

// checkSlack proves both tokens with one harmless call each, then that
// each approver exists in the workspace.
func checkSlack(ctx context.Context, r *checkReport, timeout time.Duration, botToken, appToken, apiURL string, approvers []string) {
	if botToken == "" && appToken == "" {
		r.skip("slack tokens", "SLACK_BOT_TOKEN and SLACK_APP_TOKEN are not set")
		return
	}
	if err := checkTokens(botToken, appToken); err != nil {
		r.fail("slack tokens", err)
		return
	}
	chat := bot.NewChat(bot.ChatOptions{APIURL: apiURL, BotToken: botToken, AppToken: appToken})

	bctx, cancel := context.WithTimeout(ctx, timeout)
	id, err := chat.CheckBotToken(bctx)
	cancel()
	if err != nil {
		r.failf("slack bot token", "auth.test refused SLACK_BOT_TOKEN: %s", tokenDetail(err))
	} else {
		r.pass("slack bot token", "auth.test: bot %s (%s) in workspace %s (%s)", id.User, id.UserID, id.Team, id.TeamID)
	}

	actx, cancel := context.WithTimeout(ctx, timeout)
	err = chat.CheckAppToken(actx)
	cancel()
	if err != nil {
		r.failf("slack app token", "apps.connections.open refused SLACK_APP_TOKEN: %s", tokenDetail(err))
	} else {
		r.pass("slack app token", "apps.connections.open accepted it (socket mode is enabled; no socket was opened)")
	}
	if id.UserID != "" {
		checkApprovers(ctx, r, timeout, chat, approvers, id.Team)
	}
}

// checkApprovers looks each approver ID up in the workspace, so that the
// example config's placeholders (U0APPROVER, S0PLATFORM), a mistyped ID or
// a departed colleague are caught before a request waits for nobody.
func checkApprovers(ctx context.Context, r *checkReport, timeout time.Duration, chat *bot.Chat, ids []string, team string) {
	var found []string
	failed := false
	for _, id := range ids {
		actx, cancel := context.WithTimeout(ctx, timeout)
		a, err := chat.LookupApprover(actx, id)
		cancel()
		var te *bot.TokenError
		switch {
		case errors.As(err, &te) && te.Code == "missing_scope":
			scope := te.Needed
			if scope == "" {
				scope = "users:read and usergroups:read"
			}
			r.skip("approvers", "not checked: the bot token lacks %s (slack/manifest.yaml has it; reinstall the app)", scope)
			return
		case errors.As(err, &te) && (te.Code == "user_not_found" || te.Code == "no_such_subteam"):
			failed = true
			what := "user"
			if strings.HasPrefix(id, "S") {
				what = "user group"
			}
			r.failf("approver "+id, "no such %s in workspace %s (%s): put your approvers' member IDs (U…) or user group IDs (S…) in approvers", what, team, te.Code)
		case err != nil:
			failed = true
			r.failf("approver "+id, "Slack could not look it up: %s", tokenDetail(err))
		case a.Deleted:
			failed = true
			r.failf("approver "+id, "@%s is deactivated: a deactivated account cannot approve", a.Name)
		case a.Bot:
			failed = true
			r.failf("approver "+id, "@%s is a bot: only people click Approve", a.Name)
		case a.Group && a.Members == 0:
			failed = true
			r.failf("approver "+id, "the user group has no members (or is disabled): nobody can approve through it")
		case a.Group:
			found = append(found, fmt.Sprintf("%s (user group, %d members)", id, a.Members))
		default:
			found = append(found, fmt.Sprintf("%s (@%s)", id, a.Name))
		}
	}
	if !failed {
		r.pass("approvers", "%s in workspace %s", strings.Join(found, ", "), team)
	}
}

// tokenDetail is Slack's error code and what it means, when Slack answered.
func tokenDetail(err error) string {
	var te *bot.TokenError
	if errors.As(err, &te) {
		return te.Error()
	}
	return err.Error()
}

// checkAWS checks identity, resources and launch permission, in the order
// an operator would fix them.
func checkAWS(ctx context.Context, r *checkReport, timeout time.Duration, cfg *config.Config) (credentials bool) {
	cloud, err := aws.New(ctx, aws.Options{Region: cfg.AWS.Region, CallTimeout: timeout})
	if err != nil {
		r.fail("aws identity", err)
		return false
	}
	id, err := cloud.CallerIdentity(ctx)
	switch {
	case computebot.ErrorCode(err) == aws.CodeNoCredentials:
		r.skip("aws", "no AWS credentials found (environment, shared config or instance role); AWS checks skipped")
		return false
	case err != nil:
		r.fail("aws identity", err)
		return true
	}
	r.pass("aws identity", "account %s, %s (region %s)", id.Account, id.ARN, cloud.Region())

	launch := cfg.Launch
	img, err := cloud.ResolveImage(ctx, launch.AMI)
	if err != nil {
		r.fail("ami", err)
	} else {
		name := img.Name
		if name == "" {
			name = "no name"
		}
		if launch.AMI == img.ID {
			r.pass("ami", "%s exists (%s)", img.ID, name)
		} else {
			r.pass("ami", "%s resolves to %s (%s)", launch.AMI, img.ID, name)
		}
	}

	var types []string
	for _, t := range launch.AllowedTypes {
		if _, err := cloud.InstanceType(ctx, t); err != nil {
			r.fail("instance type "+t, err)
			continue
		}
		types = append(types, t)
	}
	if len(types) == len(launch.AllowedTypes) {
		r.pass("instance types", "%s offered in %s", strings.Join(types, ", "), cloud.Region())
	}

	if launch.KeyName == "" {
		r.skip("key pair", "launch.key_name is empty: instances get no key pair")
	} else if err := cloud.KeyPairExists(ctx, launch.KeyName); err != nil {
		r.fail("key pair", err)
	} else {
		r.pass("key pair", "%q exists", launch.KeyName)
	}

	groupsVPC := ""
	groupsOK, subnetOK := true, true
	if len(launch.SecurityGroupIDs) == 0 {
		r.skip("security groups", "launch.security_group_ids is empty: instances get the VPC's default group")
	} else if groupsVPC, err = cloud.SecurityGroupsExist(ctx, launch.SecurityGroupIDs); err != nil {
		groupsOK = false
		r.fail("security groups", err)
	} else {
		r.pass("security groups", "%s exist (%s)", strings.Join(launch.SecurityGroupIDs, ", "), groupsVPC)
	}
	subnets := launch.Subnets() // launch.subnet_ids, else launch.subnet_id
	if len(subnets) == 1 && subnets[0] == "" {
		r.skip("subnet", "launch.subnet_id is empty: instances go to the default VPC's default subnet")
	}
	for _, subnet := range subnets {
		if subnet == "" {
			continue
		}
		vpc, err := cloud.SubnetExists(ctx, subnet)
		if err != nil {
			subnetOK = false
			r.fail("subnet", err)
			continue
		}
		r.pass("subnet", "%s exists (%s)", subnet, vpc)
		if groupsVPC != "" && groupsVPC != vpc {
			subnetOK = false
			r.failf("network", "security groups are in %s but subnet %s is in %s; they must share a VPC", groupsVPC, subnet, vpc)
		}
	}

	// RunInstances with DryRun evaluates the IAM policy (instance type and
	// tag conditions included) against the very request the bot would send.
	switch {
	case img.ID == "":
		r.skip("permission ec2:RunInstances", "not checked: the AMI did not resolve (see above)")
	case !groupsOK || !subnetOK:
		r.skip("permission ec2:RunInstances", "not checked: fix the network settings above first")
	default:
		for _, t := range types {
			spec := computebot.LaunchSpec{
				InstanceType:     t,
				ImageID:          img.ID,
				RootDeviceName:   img.RootDeviceName,
				KeyName:          launch.KeyName,
				SecurityGroupIDs: launch.SecurityGroupIDs,
				SubnetID:         subnets[0],
				Tags: map[string]string{
					computebot.TagName:    "computebot-check",
					computebot.TagManaged: "true",
					computebot.TagOwner:   "computebot-check",
				},
			}
			name := "permission ec2:RunInstances " + t
			if err := cloud.DryRunLaunch(ctx, spec); err != nil {
				r.fail(name, err)
			} else {
				r.pass(name, "DryRun launch allowed (with tags on create)")
			}
		}
	}
	r.skip("permission ec2:Stop/Start/TerminateInstances",
		"not checked: their DryRun needs an existing instance; deploy/iam-policy.json grants them on instances tagged computebot:managed=true")
	return true
}
