package commands

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// want describes an expected Result: a command, an exact reply, reply
// substrings, or ignore.
type want struct {
	cmd    Command
	reply  string   // exact reply text
	has    []string // substrings of the reply
	ignore bool
}

func check(t *testing.T, got Result, w want) {
	t.Helper()
	switch {
	case w.ignore:
		if got.Outcome != Ignore {
			t.Fatalf("got %v %#v %q, want ignore", got.Outcome, got.Command, got.Reply)
		}
	case w.cmd != nil:
		if got.Outcome != Run {
			t.Fatalf("got %v %q, want run %#v", got.Outcome, got.Reply, w.cmd)
		}
		if !reflect.DeepEqual(got.Command, w.cmd) {
			t.Fatalf("command = %#v, want %#v", got.Command, w.cmd)
		}
	default:
		if got.Outcome != Reply {
			t.Fatalf("got %v %#v, want reply %q %q", got.Outcome, got.Command, w.reply, w.has)
		}
		if w.reply != "" && got.Reply != w.reply {
			t.Fatalf("reply =\n%s\nwant\n%s", got.Reply, w.reply)
		}
		for _, s := range w.has {
			if !strings.Contains(got.Reply, s) {
				t.Fatalf("reply =\n%s\nwant it to contain %q", got.Reply, s)
			}
		}
	}
}

const launchUsage = "\nUsage: `/launch TYPE [--hours N] [--image PRESET] [--ami AMI] [--name NAME] [--reason TEXT] [--hibernate]`"

func TestParseText(t *testing.T) {
	tests := []struct {
		in string
		want
	}{
		// launch
		{"launch t2.micro", want{cmd: &Launch{InstanceType: "t2.micro"}}},
		{"Launch T3.Small", want{cmd: &Launch{InstanceType: "t3.small"}}},
		{"/launch t2.micro", want{cmd: &Launch{InstanceType: "t2.micro"}}},
		{`launch t2.micro --hours 4 --reason "feature engineering"`, want{cmd: &Launch{InstanceType: "t2.micro", Hours: 4, HoursSet: true, Reason: "feature engineering"}}},
		{`launch g4dn.xlarge --hours=8 --name=training-box --ami ami-0123456789abcdef0`, want{cmd: &Launch{InstanceType: "g4dn.xlarge", Hours: 8, HoursSet: true, Name: "training-box", AMI: "ami-0123456789abcdef0"}}},
		{`launch t2.micro --ami AMI-0123ABCD`, want{cmd: &Launch{InstanceType: "t2.micro", AMI: "ami-0123abcd"}}},
		{`launch m7i-flex.large --ami resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`, want{cmd: &Launch{InstanceType: "m7i-flex.large", AMI: "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"}}},
		{`launch u-6tb1.112xlarge --hours 720`, want{cmd: &Launch{InstanceType: "u-6tb1.112xlarge", Hours: 720, HoursSet: true}}},
		{`launch t2.micro --hours 4h`, want{cmd: &Launch{InstanceType: "t2.micro", Hours: 4, HoursSet: true}}},
		{`launch --hours 2 t2.micro`, want{cmd: &Launch{InstanceType: "t2.micro", Hours: 2, HoursSet: true}}},
		{`launch t2.micro --HOURS 2`, want{cmd: &Launch{InstanceType: "t2.micro", Hours: 2, HoursSet: true}}},
		{`launch t2.micro --reason help`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: "help"}}},
		{`launch t2.micro --name "help"`, want{cmd: &Launch{InstanceType: "t2.micro", Name: "help"}}},
		{`launch t2.micro --reason "--help"`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: "--help"}}},
		{`launch t2.micro --reason "  padded  "`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: "padded"}}},
		{"launch t2.micro --reason \"two\nlines\"", want{cmd: &Launch{InstanceType: "t2.micro", Reason: "two\nlines"}}},

		// quoting: smart quotes, apostrophes, escapes, Slack's dashes and escaping
		{`launch t2.micro --reason “feature engineering”`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: "feature engineering"}}},
		{`launch t2.micro --reason „Merkmale bauen“`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: "Merkmale bauen"}}},
		{`launch t2.micro --reason ‘feature work’`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: "feature work"}}},
		{`launch t2.micro --reason 'it's urgent'`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: "it's urgent"}}},
		{`launch t2.micro --reason ‘it’s urgent’`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: "it’s urgent"}}},
		{`launch t2.micro --name it’s-mine`, want{cmd: &Launch{InstanceType: "t2.micro", Name: "it’s-mine"}}},
		{`launch t2.micro --name it's-mine`, want{cmd: &Launch{InstanceType: "t2.micro", Name: "it's-mine"}}},
		{`launch t2.micro --reason "say \"hi\" \\ bye"`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: `say "hi" \ bye`}}},
		{`launch t2.micro --reason "keep \n as is"`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: `keep \n as is`}}},
		{`launch t2.micro --name my\ box`, want{cmd: &Launch{InstanceType: "t2.micro", Name: "my box"}}},
		{`launch t2.micro --name="my box"`, want{cmd: &Launch{InstanceType: "t2.micro", Name: "my box"}}},
		{`launch t2.micro --name='my box'`, want{cmd: &Launch{InstanceType: "t2.micro", Name: "my box"}}},
		{`launch t2.micro —hours 4 –name x`, want{cmd: &Launch{InstanceType: "t2.micro", Hours: 4, HoursSet: true, Name: "x"}}},
		{`launch t2.micro --reason "a <b> &amp; c"`, want{cmd: &Launch{InstanceType: "t2.micro", Reason: "a <b> &amp; c"}}},
		{"launch\u00a0t2.micro\t--hours\u200b 3", want{cmd: &Launch{InstanceType: "t2.micro", Hours: 3, HoursSet: true}}},
		{"`launch t2.micro`", want{cmd: &Launch{InstanceType: "t2.micro"}}},
		{"```launch t2.micro```", want{cmd: &Launch{InstanceType: "t2.micro"}}},

		// launch errors: exact texts
		{"launch", want{cmd: &OpenLaunchForm{}}},
		{"launch --hours", want{has: []string{"--hours needs a value"}}},
		{"launch t2.micro --hourz 4", want{reply: "unknown flag --hourz for /launch; did you mean --hours?" + launchUsage}},
		{"launch t2.micro --hours", want{reply: "--hours needs a value: lease in hours, 1 to 720 (default: launch.default_ttl in the config)." + launchUsage}},
		{"launch t2.micro --hours 4 --hours 5", want{reply: "--hours is given twice; give it once." + launchUsage}},
		{"launch g5.xlarge --hibernate", want{cmd: &Launch{InstanceType: "g5.xlarge", Hibernate: true}}},
		{"schedule box off", want{cmd: &SetSchedule{Target: "box", Off: true}}},
		{"schedule box weekdays 08:00-19:00", want{has: []string{"That is not a schedule: a schedule is days, hours and a time zone"}}},
		{"schedule box", want{has: []string{"/schedule needs SCHEDULE"}}},
		{"launch g5.xlarge --hibernate --hours 2", want{cmd: &Launch{InstanceType: "g5.xlarge", Hibernate: true, Hours: 2, HoursSet: true}}},
		{"launch g5.xlarge --hibernate=yes", want{reply: "--hibernate takes no value (got `--hibernate=yes`)." + launchUsage}},
		{"launch t2.micro feature engineering", want{reply: "unexpected argument `feature` for /launch; put a reason in quotes: --reason \"feature engineering\"." + launchUsage}},
		{"launch t2micro", want{reply: "`t2micro` is not an EC2 instance type name (family.size, e.g. t3.micro or g4dn.xlarge)." + launchUsage}},
		{"launch t2.micro --hours 0", want{reply: "--hours must be a whole number of hours from 1 to 720, not `0`."}},
		{`launch t2.micro --reason "feature engineering`, want{reply: "unterminated quote in `\"feature engineering`: add the closing quote."}},
		// launch errors: substrings
		{"launch t2.micro --hours 721", want{has: []string{"from 1 to 720", "`721`"}}},
		{"launch t2.micro --hours -4", want{has: []string{"from 1 to 720", "`-4`"}}},
		{"launch t2.micro --hours 2.5", want{has: []string{"whole number"}}},
		{"launch t2.micro --hours 99999999999999999999", want{has: []string{"from 1 to 720"}}},
		{"launch t2.micro --hours --reason x", want{has: []string{"--hours needs a value"}}},
		{"launch t2.micro --name", want{has: []string{"--name needs a value"}}},
		{"launch t2.micro --name=", want{has: []string{"--name needs a value"}}},
		{`launch t2.micro --name ""`, want{has: []string{"--name needs a value"}}},
		{"launch t2.micro --foo", want{has: []string{"unknown flag --foo for /launch; its flags are --hours, --image, --ami, --name, --reason, --hibernate."}}},
		{"launch t2.micro —hourz 4", want{has: []string{"unknown flag —hourz for /launch; did you mean --hours?"}}},
		{"launch t2.micro --hourz=4", want{has: []string{"unknown flag --hourz for /launch; did you mean --hours?"}}},
		{"launch t2.micro --ami ami-123", want{has: []string{"--ami must be an AMI ID", "`ami-123`"}}},
		{"launch t2.micro --ami resolve:ssm:", want{has: []string{"--ami must be"}}},
		{"launch t2.micro --name " + strings.Repeat("n", 129), want{has: []string{"--name is 129 characters long; the limit is 128."}}},
		{"launch t2.micro --reason " + strings.Repeat("r", 501), want{has: []string{"--reason is 501 characters long; the limit is 500."}}},
		{"launch t2.micro --name \"a\x07b\"", want{has: []string{"--name contains control characters"}}},
		{"launch t2.micro --name \"a\nb\"", want{has: []string{"--name contains control characters"}}},
		{"launch T2..micro", want{has: []string{"is not an EC2 instance type name"}}},
		{"launch t2.micro t3.small", want{has: []string{"unexpected argument `t3.small` for /launch"}}},
		{`launch t2.micro --reason 'unterminated`, want{has: []string{"unterminated quote in `'unterminated`"}}},
		{`launch t2.micro --reason “smart`, want{has: []string{"unterminated quote in"}}},

		// help after a command, anywhere
		{"launch help", want{cmd: &Help{Topic: "launch"}}},
		{"launch --help", want{cmd: &Help{Topic: "launch"}}},
		{"launch t2.micro -h", want{cmd: &Help{Topic: "launch"}}},
		{"launch t2.micro --hourz 4 help", want{cmd: &Help{Topic: "launch"}}},
		{"launch t2.micro --hours help", want{cmd: &Help{Topic: "launch"}}},
		{"stop help", want{cmd: &Help{Topic: "stop"}}},
		{"extend --help", want{cmd: &Help{Topic: "extend"}}},
		{"instances help", want{cmd: &Help{Topic: "instances"}}},
		{"lambda help", want{cmd: &Help{Topic: "lambda"}}},
		{"lambda list --help", want{cmd: &Help{Topic: "lambda list"}}},
		{"lambda invoke help", want{cmd: &Help{Topic: "lambda invoke"}}},
		{"lambda invoke fn --help", want{cmd: &Help{Topic: "lambda invoke"}}},
		{"lambda invoke fn help", want{cmd: &Help{Topic: "lambda invoke"}}},
		{`stop "help"`, want{cmd: &Stop{Target: "help"}}},

		// help itself
		{"help", want{cmd: &Help{}}},
		{"--help", want{cmd: &Help{}}},
		{"HELP", want{cmd: &Help{}}},
		{"help launch", want{cmd: &Help{Topic: "launch"}}},
		{"help /launch", want{cmd: &Help{Topic: "launch"}}},
		{"help lambda", want{cmd: &Help{Topic: "lambda"}}},
		{"help lambda invoke", want{cmd: &Help{Topic: "lambda invoke"}}},
		{"help help", want{cmd: &Help{}}},
		{"help lanch", want{reply: "there is no command `lanch`; did you mean `launch`? Commands: launch, instances, stop, start, terminate, extend, lambda, sshkey, keep, schedule, connect, status, idle, audit, help."}},
		{"help foo", want{has: []string{"there is no command `foo`."}}},

		// instances
		{"instances", want{cmd: &Instances{}}},
		{"instances --all", want{cmd: &Instances{All: true}}},
		{"instances -all", want{cmd: &Instances{All: true}}},
		{"instances --all --all", want{has: []string{"--all is given twice"}}},
		{"instances --all=yes", want{reply: "--all takes no value (got `--all=yes`).\nUsage: `/instances [--all]`"}},
		{"instances --al", want{has: []string{"unknown flag --al for /instances; did you mean --all?"}}},
		{"instances mine", want{has: []string{"unexpected argument `mine` for /instances."}}},

		// stop / start / terminate / extend
		{"stop i-0123456789abcdef0", want{cmd: &Stop{Target: "i-0123456789abcdef0"}}},
		{"stop i-0123456789ABCDEF0", want{cmd: &Stop{Target: "i-0123456789abcdef0"}}},
		{"stop i-0123abcd", want{cmd: &Stop{Target: "i-0123abcd"}}},
		{"stop training-box", want{cmd: &Stop{Target: "training-box"}}},
		{`stop "my box"`, want{cmd: &Stop{Target: "my box"}}},
		{"start i-0123abcd", want{cmd: &Start{Target: "i-0123abcd"}}},
		{"terminate i-0123abcd", want{cmd: &Terminate{Target: "i-0123abcd"}}},
		{"extend i-0123abcd 4", want{cmd: &Extend{Target: "i-0123abcd", Hours: 4}}},
		{"extend box 24h", want{cmd: &Extend{Target: "box", Hours: 24}}},
		{"stop i-123", want{reply: "`i-123` is not an instance ID (i- followed by 8 or 17 hex digits) or name.\nUsage: `/stop INSTANCE`"}},
		{"start i-0123456789abcdefg", want{has: []string{"is not an instance ID (i- followed by 8 or 17 hex digits) or name"}}},
		{"terminate " + strings.Repeat("x", 257), want{has: []string{"is not an instance ID"}}},
		{"stop", want{reply: "/stop needs INSTANCE: an instance ID (i-0123456789abcdef0) or the name of one of your instances.\nUsage: `/stop INSTANCE`"}},
		{"stop my box", want{has: []string{"unexpected argument `box` for /stop; quote a name that has spaces"}}},
		{"stop i-0123abcd --force", want{has: []string{"unknown flag --force for /stop; it takes no flags."}}},
		{"extend i-0123abcd", want{has: []string{"/extend needs HOURS"}}},
		{"extend i-0123abcd 0", want{has: []string{"HOURS must be a whole number of hours from 1 to 720, not `0`."}}},
		{"extend i-0123abcd lots", want{has: []string{"HOURS must be a whole number", "`lots`"}}},
		{"extend i-12 4", want{has: []string{"is not an instance ID"}}},
		{"extend i-0123abcd 4 5", want{has: []string{"unexpected argument `5`"}}},

		// lambda
		{"lambda list", want{cmd: &LambdaList{}}},
		{"LAMBDA LIST", want{cmd: &LambdaList{}}},
		{"lambda invoke report", want{cmd: &LambdaInvoke{Function: "report"}}},
		{`lambda invoke report {"a": 1, "b": "two words"}`, want{cmd: &LambdaInvoke{Function: "report", Payload: `{"a": 1, "b": "two words"}`}}},
		{`lambda invoke report {"s": "it's “quoted”"}`, want{cmd: &LambdaInvoke{Function: "report", Payload: `{"s": "it's “quoted”"}`}}},
		{`lambda invoke report {“a”: “b”}`, want{cmd: &LambdaInvoke{Function: "report", Payload: `{"a": "b"}`}}},
		{`lambda invoke report '{"a":1}'`, want{cmd: &LambdaInvoke{Function: "report", Payload: `{"a":1}`}}},
		{"lambda invoke report `{\"a\":1}`", want{cmd: &LambdaInvoke{Function: "report", Payload: `{"a":1}`}}},
		{"lambda invoke report ```json\n{\"a\":1}\n```", want{cmd: &LambdaInvoke{Function: "report", Payload: `{"a":1}`}}},
		{`lambda invoke report {"html": "<b>"}`, want{cmd: &LambdaInvoke{Function: "report", Payload: `{"html": "<b>"}`}}},
		{`lambda invoke report [1, 2]`, want{cmd: &LambdaInvoke{Function: "report", Payload: `[1, 2]`}}},
		{`lambda invoke report -5`, want{cmd: &LambdaInvoke{Function: "report", Payload: `-5`}}},
		{`lambda invoke report "just a string"`, want{cmd: &LambdaInvoke{Function: "report", Payload: `"just a string"`}}},
		{`lambda invoke --async report {"a":1}`, want{cmd: &LambdaInvoke{Function: "report", Payload: `{"a":1}`, Async: true}}},
		{`lambda invoke report --async {"a":1}`, want{cmd: &LambdaInvoke{Function: "report", Payload: `{"a":1}`, Async: true}}},
		{`lambda invoke report {"a":1} --async`, want{cmd: &LambdaInvoke{Function: "report", Payload: `{"a":1}`, Async: true}}},
		{`lambda invoke report —async`, want{cmd: &LambdaInvoke{Function: "report", Async: true}}},
		{`lambda invoke report:prod`, want{cmd: &LambdaInvoke{Function: "report:prod"}}},
		{`lambda invoke arn:aws:lambda:eu-west-1:123456789012:function:report`, want{cmd: &LambdaInvoke{Function: "arn:aws:lambda:eu-west-1:123456789012:function:report"}}},
		{"lambda invoke", want{reply: "/lambda invoke needs FUNCTION: the function's name or ARN.\nUsage: `/lambda invoke FUNCTION [JSON] [--async]`"}},
		{"lambda invoke --async", want{has: []string{"/lambda invoke needs FUNCTION"}}},
		{`lambda invoke report {"a": x}`, want{reply: "invalid JSON payload at line 1, column 7: invalid character 'x' looking for beginning of value."}},
		{"lambda invoke report {\"a\": 1,\n  \"b\" 2}", want{has: []string{"invalid JSON payload at line 2, column 7:"}}},
		{`lambda invoke report {"a": 1`, want{has: []string{"invalid JSON payload at line 1, column 8: unexpected end of JSON input"}}},
		{`lambda invoke report {“a”: x}`, want{has: []string{"invalid JSON payload at line 1, column 7"}}},
		{`lambda invoke report not json`, want{has: []string{"invalid JSON payload at line 1, column 2"}}},
		{`lambda invoke "bad name"`, want{has: []string{"`bad name` is not a Lambda function name"}}},
		{`lambda invoke report --asnyc {}`, want{has: []string{"unknown flag --asnyc for /lambda invoke; did you mean --async?"}}},
		{`lambda invoke --async --async report`, want{has: []string{"--async is given twice"}}},
		{`lambda invoke --async=1 report`, want{has: []string{"--async takes no value"}}},
		{"lambda", want{reply: "/lambda needs a subcommand: `list` or `invoke`.\nUsage: `/lambda list` or `/lambda invoke FUNCTION [JSON] [--async]`"}},
		{"lambda lst", want{has: []string{"unknown subcommand `lst` for /lambda; did you mean `list`?"}}},
		{"lambda run x", want{has: []string{"unknown subcommand `run` for /lambda; use `list` or `invoke`."}}},
		{"lambda list extra", want{has: []string{"unexpected argument `extra` for /lambda list"}}},
		{"lambda list --all", want{has: []string{"unknown flag --all for /lambda list; it takes no flags."}}},

		// status
		{"status", want{cmd: &Status{}}},
		{"status please", want{has: []string{"unexpected argument `please` for @computebot status"}}},

		// audit
		{"audit", want{cmd: &Audit{Since: 7 * 24 * time.Hour}}},
		{"AUDIT", want{cmd: &Audit{Since: 7 * 24 * time.Hour}}},
		{"audit i-0123456789abcdef0", want{cmd: &Audit{Instance: "i-0123456789abcdef0", Since: 7 * 24 * time.Hour}}},
		{"audit I-0123ABCD", want{cmd: &Audit{Instance: "i-0123abcd", Since: 7 * 24 * time.Hour}}},
		{"audit @U0123ABC", want{cmd: &Audit{User: "U0123ABC", Since: 7 * 24 * time.Hour}}},
		{"audit @W0123ABC --since 30d", want{cmd: &Audit{User: "W0123ABC", Since: 30 * 24 * time.Hour}}},
		{"audit U0123ABC", want{cmd: &Audit{User: "U0123ABC", Since: 7 * 24 * time.Hour}}},
		{"audit --since 36h", want{cmd: &Audit{Since: 36 * time.Hour}}},
		{"audit --since=90d", want{cmd: &Audit{Since: 90 * 24 * time.Hour}}},
		{"audit --since 1h30m i-0123abcd", want{cmd: &Audit{Instance: "i-0123abcd", Since: 90 * time.Minute}}},
		{"audit —since 2D", want{cmd: &Audit{Since: 2 * 24 * time.Hour}}},
		{"audit help", want{cmd: &Help{Topic: "audit"}}},
		{"audit --since help", want{cmd: &Help{Topic: "audit"}}},
		{"audit @ana", want{reply: "`@ana` is a name, and I need to know who exactly: pick the person from Slack's list as you type @, or give their member ID (U…, in their profile under ⋮ → Copy member ID).\nUsage: `/computebot audit [INSTANCE|@USER] [--since DURATION]`"}},
		{"audit <@ana>", want{has: []string{"`<@ana>` is neither an instance ID"}}},
		{"audit i-123", want{has: []string{"`i-123` is not an instance ID"}}},
		{"audit training-box", want{has: []string{"`training-box` is neither an instance ID (i-…) nor a person"}}},
		{"audit <#C0123|general>", want{has: []string{"is neither an instance ID"}}},
		{"audit u0123abc", want{has: []string{"is neither an instance ID"}}},
		{"audit --since 91d", want{reply: "--since is how far back to look, from 1m to 90d, such as 36h or 30d; not `91d`.\nUsage: `/computebot audit [INSTANCE|@USER] [--since DURATION]`"}},
		{"audit --since 2161h", want{has: []string{"not `2161h`"}}},
		{"audit --since 30s", want{has: []string{"from 1m to 90d"}}},
		{"audit --since -7d", want{has: []string{"not `-7d`"}}},
		{"audit --since 0d", want{has: []string{"not `0d`"}}},
		{"audit --since week", want{has: []string{"not `week`"}}},
		{"audit --since 99999999999999999999d", want{has: []string{"--since is how far back to look"}}},
		{"audit --since", want{has: []string{"--since needs a value"}}},
		{"audit --snice 7d", want{has: []string{"unknown flag --snice for /computebot audit; did you mean --since?"}}},
		{"audit i-0123abcd @U0123ABC", want{has: []string{"unexpected argument `@U0123ABC` for /computebot audit"}}},
		{"audit @U0123ABC extra", want{has: []string{"unexpected argument `extra`"}}},

		// unknown commands, empty text, ignored text
		{"lanch t2.micro", want{reply: "unknown command `lanch`. Try `help` — did you mean `launch`?"}},
		{"termiante i-0123abcd", want{has: []string{"did you mean `terminate`?"}}},
		{"instance", want{has: []string{"did you mean `instances`?"}}},
		{"inst", want{has: []string{"did you mean `instances`?"}}},
		{"thanks!", want{reply: "unknown command `thanks!`. Try `help` for the list of commands."}},
		{"", want{has: []string{"Commands: `launch`, `instances`", "Try `help`"}}},
		{"   \n ", want{has: []string{"Try `help`"}}},
		{"> launch t2.micro", want{ignore: true}},
		{`"launch t2.micro`, want{has: []string{"unterminated quote"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			check(t, ParseText(tt.in), tt.want)
		})
	}
}

func TestParseSlash(t *testing.T) {
	tests := []struct {
		name, text string
		want
	}{
		{"/launch", "t2.micro --hours 4", want{cmd: &Launch{InstanceType: "t2.micro", Hours: 4, HoursSet: true}}},
		{"/LAUNCH", "t2.micro", want{cmd: &Launch{InstanceType: "t2.micro"}}},
		{"launch", "t2.micro", want{cmd: &Launch{InstanceType: "t2.micro"}}},
		{"/launch", "", want{cmd: &OpenLaunchForm{}}},
		{"/launch", "help", want{cmd: &Help{Topic: "launch"}}},
		{"/launch", "--help", want{cmd: &Help{Topic: "launch"}}},
		{"/launch", "launch t2.micro", want{cmd: &Launch{InstanceType: "t2.micro"}}},
		{"/launch", "launch", want{has: []string{"/launch needs TYPE"}}},
		{"/launch", "LAUNCH", want{has: []string{"/launch needs TYPE"}}},
		{"/instances", "", want{cmd: &Instances{}}},
		{"/instances", "--all", want{cmd: &Instances{All: true}}},
		{"/stop", "i-0123abcd", want{cmd: &Stop{Target: "i-0123abcd"}}},
		{"/start", "box", want{cmd: &Start{Target: "box"}}},
		{"/terminate", "i-0123456789abcdef0", want{cmd: &Terminate{Target: "i-0123456789abcdef0"}}},
		{"/extend", "box 4", want{cmd: &Extend{Target: "box", Hours: 4}}},
		{"/lambda", "list", want{cmd: &LambdaList{}}},
		{"/lambda", `invoke fn {"a": [1, 2]}`, want{cmd: &LambdaInvoke{Function: "fn", Payload: `{"a": [1, 2]}`}}},
		{"/lambda", "", want{has: []string{"/lambda needs a subcommand"}}},
		{"/lambda", "help", want{cmd: &Help{Topic: "lambda"}}},
		{"/computebot", "launch t2.micro", want{cmd: &Launch{InstanceType: "t2.micro"}}},
		{"/computebot", "help", want{cmd: &Help{}}},
		{"/computebot", "help launch", want{cmd: &Help{Topic: "launch"}}},
		{"/computebot", "lambda invoke fn", want{cmd: &LambdaInvoke{Function: "fn"}}},
		{"/computebot", "", want{has: []string{"Try `help`"}}},
		{"/computebot", "> launch t2.micro", want{has: []string{"unknown command `>`"}}}, // a slash command is never ignored
		{"/computebot", "lanch", want{has: []string{"did you mean `launch`?"}}},
		{"/computebot", "audit", want{cmd: &Audit{Since: 7 * 24 * time.Hour}}},
		{"/computebot", "audit @UANA --since 36h", want{cmd: &Audit{User: "UANA", Since: 36 * time.Hour}}},
		{"/computebot", "audit i-0123456789abcdef0 --since 7d", want{cmd: &Audit{Instance: "i-0123456789abcdef0", Since: 7 * 24 * time.Hour}}},
		{"/computebot", "audit @bo", want{has: []string{"`@bo` is a name", "pick the person from Slack's list"}}},
		{"/computebot", "audi", want{has: []string{"did you mean `audit`?"}}},
		{"/computebot", "help audit", want{cmd: &Help{Topic: "audit"}}},
		{"/deploy", "x", want{reply: "computebot does not handle `/deploy`. Try `/computebot help`."}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+tt.text, func(t *testing.T) {
			check(t, ParseSlash(tt.name, tt.text), tt.want)
		})
	}
}

func TestPayloadLimit(t *testing.T) {
	fits := `"` + strings.Repeat("a", MaxPayloadBytes-2) + `"`
	check(t, ParseSlash("/lambda", "invoke fn "+fits), want{cmd: &LambdaInvoke{Function: "fn", Payload: fits}})
	over := `"` + strings.Repeat("a", MaxPayloadBytes-1) + `"`
	check(t, ParseSlash("/lambda", "invoke fn "+over), want{has: []string{"the limit is 256 KiB (262144 bytes)"}})
}

func TestLexer(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`a b  c`, []string{"a", "b", "c"}},
		{`"a b" c`, []string{"a b", "c"}},
		{`x"a b"y`, []string{"xa by"}},
		{`"a \"b\" \\c \d"`, []string{`a "b" \c \d`}},
		{`'a "b" \c'`, []string{`a "b" \c`}},
		{`“a b” ‘c d’`, []string{"a b", "c d"}},
		{`“a b"`, []string{"a b"}},
		{`"a ” b"`, []string{"a ” b"}},
		{`it's it’s`, []string{"it's", "it’s"}},
		{`'it's a' b`, []string{"it's a", "b"}},
		{`'a'b`, []string{"ab"}},
		{`a\ b \"c`, []string{"a b", `"c`}},
		{`trailing\`, []string{`trailing\`}},
		{`""`, []string{""}},
	}
	for _, tt := range tests {
		lx := &lexer{src: tt.in}
		toks, problem := lx.all()
		if problem != "" {
			t.Errorf("%q: %s", tt.in, problem)
			continue
		}
		var got []string
		for _, tok := range toks {
			got = append(got, tok.val)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{`"a`, `'a`, `“a`, `a "b`, `"a\"`, `‘a`} {
		if _, problem := (&lexer{src: in}).all(); !strings.HasPrefix(problem, "unterminated quote in ") {
			t.Errorf("%q: problem = %q, want unterminated quote", in, problem)
		}
	}
}

func TestValidators(t *testing.T) {
	for s, want := range map[string]bool{
		"t2.micro": true, "g4dn.xlarge": true, "m7i-flex.large": true, "u-6tb1.112xlarge": true,
		"p5.48xlarge": true, "mac2-m2pro.metal": true,
		"T2.micro": false, "t2micro": false, "t2.": false, ".micro": false, "2t.micro": false,
		"t2.micro.x": false, "t2.mi_cro": false, "": false, " t2.micro": false,
	} {
		if got := IsInstanceTypeName(s); got != want {
			t.Errorf("IsInstanceTypeName(%q) = %v", s, got)
		}
	}
	for s, want := range map[string]bool{
		"i-0123abcd": true, "i-0123456789abcdef0": true,
		"i-0123abc": false, "i-0123456789abcdef": false, "i-0123ABCD": false, "i-0123abcg": false, "0123abcd": false,
	} {
		if got := IsInstanceID(s); got != want {
			t.Errorf("IsInstanceID(%q) = %v", s, got)
		}
	}
	for s, want := range map[string]bool{
		"ami-0123abcd": true, "ami-0123456789abcdef0": true,
		"resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64": true,
		"resolve:ssm:/my/ami:3": true, "resolve:ssm:golden-ami": true,
		"ami-123": false, "ami-0123ABCD": false, "resolve:ssm:": false, "resolve:ssm:/a b": false, "ssm:/x": false, "": false,
	} {
		if got := IsAMIRef(s); got != want {
			t.Errorf("IsAMIRef(%q) = %v", s, got)
		}
	}
}

func TestSuggest(t *testing.T) {
	words := []string{"launch", "instances", "stop", "start", "terminate", "extend", "lambda", "help"}
	for in, want := range map[string]string{
		"lanch": "launch", "luanch": "launch", "instance": "instances", "stpo": "stop", "strat": "start",
		"termiante": "terminate", "inst": "instances", "xyz": "", "st": "", "lambada": "lambda",
	} {
		if got := Suggest(in, words); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every example in the table parses to its own command, so help never
// shows something the parser rejects.
func TestDefinitionsExamplesParse(t *testing.T) {
	for _, d := range Definitions() {
		if d.Name == "" || d.Summary == "" || d.Who == "" || d.Usage == "" || len(d.Examples) == 0 {
			t.Errorf("%q: incomplete definition %+v", d.Name, d)
		}
		if d.build == nil && d.Name != "lambda invoke" && d.Name != "sshkey add" && d.Name != "help" {
			t.Errorf("%q: no builder", d.Name)
		}
		for _, ex := range d.Examples {
			var r Result
			if rest, ok := strings.CutPrefix(ex, "@computebot "); ok {
				r = ParseText(rest)
			} else {
				name, text, _ := strings.Cut(ex, " ")
				r = ParseSlash(name, text)
			}
			if r.Outcome != Run || r.Command.CommandName() != d.Name {
				t.Errorf("%q: example %q → %v %v %q", d.Name, ex, r.Outcome, r.Command, r.Reply)
			}
		}
		for _, f := range d.Flags {
			if f.Name == "" || f.Help == "" || strings.HasPrefix(f.Name, "-") {
				t.Errorf("%q: bad flag %+v", d.Name, f)
			}
		}
	}
}

func TestHelpText(t *testing.T) {
	all := HelpText("")
	for _, d := range Definitions() {
		if !strings.Contains(all, d.Usage) {
			t.Errorf("overview lacks %q", d.Usage)
		}
		one := HelpText(d.Name)
		for _, s := range append([]string{d.Usage, "Who: " + d.Who}, d.Examples...) {
			if !strings.Contains(one, s) {
				t.Errorf("HelpText(%q) lacks %q:\n%s", d.Name, s, one)
			}
		}
		if d.Notes != "" && !strings.Contains(one, d.Notes) {
			t.Errorf("HelpText(%q) lacks the notes", d.Name)
		}
		for _, f := range d.Flags {
			if !strings.Contains(one, "--"+f.Name) {
				t.Errorf("HelpText(%q) lacks --%s", d.Name, f.Name)
			}
		}
		// The topic /X help produces is one HelpText knows.
		r := ParseText(d.Name + " help")
		if r.Outcome != Run {
			t.Fatalf("%q help: %v %q", d.Name, r.Outcome, r.Reply)
		}
		if topic := r.Command.(*Help).Topic; strings.HasPrefix(HelpText(topic), "there is no command") {
			t.Errorf("HelpText(%q) does not know the topic", topic)
		}
	}
	lambda := HelpText("lambda")
	if !strings.Contains(lambda, "/lambda list") || !strings.Contains(lambda, "/lambda invoke FUNCTION") {
		t.Errorf("HelpText(lambda) =\n%s", lambda)
	}
	if HelpText("/launch") != HelpText("launch") || HelpText("computebot launch") != HelpText("launch") {
		t.Error("topic spellings differ")
	}
	if got := HelpText("nope"); !strings.HasPrefix(got, "there is no command `nope`.") {
		t.Errorf("HelpText(nope) = %q", got)
	}
}

func TestCommandNames(t *testing.T) {
	names := map[string]bool{}
	for _, d := range Definitions() {
		names[d.Name] = true
	}
	for _, c := range []Command{&Launch{}, &Instances{}, &Stop{}, &Start{}, &Terminate{}, &Extend{}, &LambdaList{}, &LambdaInvoke{}, &Status{}, &Idle{}, &Audit{}, &Help{}} {
		if !names[c.CommandName()] {
			t.Errorf("%T: CommandName %q has no definition", c, c.CommandName())
		}
	}
}

// TestSSHKeyAndConnect: the key is the rest of the text, its label a flag
// anywhere; a private key in any command is refused without being parsed
// or repeated.
func TestSSHKeyAndConnect(t *testing.T) {
	const pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJb7 ana@laptop"
	for _, tc := range []struct {
		cmd, text string
		want      Command
	}{
		{"/sshkey", "add " + pub, &SSHKeyAdd{Key: pub}},
		{"/sshkey", "add " + pub + " --label work", &SSHKeyAdd{Key: pub, Label: "work"}},
		{"/sshkey", "add --label=work " + pub, &SSHKeyAdd{Key: pub, Label: "work"}},
		{"/sshkey", "add " + pub + ` --label "work laptop"`, &SSHKeyAdd{Key: pub, Label: "work laptop"}},
		{"/sshkey", "list", &SSHKeyList{}},
		{"/sshkey", "remove work", &SSHKeyRemove{Name: "work"}},
		{"/connect", "i-0123456789abcdef0", &Connect{Target: "i-0123456789abcdef0"}},
		{"/computebot", "connect training-box", &Connect{Target: "training-box"}},
	} {
		r := ParseSlash(tc.cmd, tc.text)
		if r.Outcome != Run || !reflect.DeepEqual(r.Command, tc.want) {
			t.Errorf("%s %s = %+v, want %+v", tc.cmd, tc.text, r, tc.want)
		}
	}
	if r := ParseSlash("/sshkey", "add"); r.Outcome != Reply || !strings.Contains(r.Reply, "needs KEY") {
		t.Errorf("/sshkey add without a key: %+v", r)
	}
	const priv = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----"
	for _, r := range []Result{ParseSlash("/sshkey", "add "+priv), ParseSlash("/launch", priv), ParseText("sshkey add " + priv)} {
		if r.Outcome != Reply || !r.Secret || r.Command != nil || r.Reply != "" {
			t.Errorf("a private key: %+v; want a Secret outcome, no command, nothing repeated", r)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	r := ParseText(`/schedule "training box" mon-fri 8:00-19:00  Europe/Berlin`)
	c, ok := r.Command.(*SetSchedule)
	if !ok || c.Target != "training box" || c.Off || c.Hours.String() != "weekdays 08:00-19:00 Europe/Berlin" {
		t.Fatalf("got %+v (%+v)", r, r.Command)
	}
}
