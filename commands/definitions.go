package commands

import (
	"fmt"
	"strings"
)

// Definition declares one command: its syntax (Args, Flags), its help
// (Summary, Who, Examples) and how its words become a typed Command. The
// parser and HelpText both read Definitions, so they cannot disagree.
type Definition struct {
	// Name is the command as typed after the slash or the mention:
	// "launch", "lambda invoke".
	Name string
	// Usage is the one-line syntax, generated from Args and Flags:
	// "/launch TYPE [--hours N] [--image PRESET] [--ami AMI] [--name NAME] [--reason TEXT] [--hibernate]".
	Usage   string
	Summary string
	// Who may use the command (documentation; policy enforces it).
	Who      string
	Args     []Arg
	Flags    []Flag
	Examples []string
	// Notes is optional further help shown with the command's own topic.
	Notes string

	// bare, when set, is what the command means typed with nothing after
	// it (/launch alone opens the form).
	bare        func() Command
	mentionOnly bool   // no slash command of its own: usage is "@computebot NAME"
	subOnly     bool   // no slash command of its own: usage is "/computebot NAME"
	extraHint   string // added to "unexpected argument" replies
	build       func(p *parsed) Result
}

// Arg is a positional argument.
type Arg struct {
	Name     string // placeholder in the usage line: TYPE, INSTANCE, HOURS
	Help     string
	Optional bool
	// Rest: the last argument takes every remaining word (a schedule is
	// "weekdays 08:00-19:00 Europe/Berlin"), joined by single spaces.
	Rest bool
}

// Flag is a --flag. Value is the placeholder of its value ("N", "AMI"); ""
// for a switch that takes none (--all).
type Flag struct {
	Name  string // without dashes: "hours"
	Value string
	Help  string
}

// Definitions returns every command, in the order help lists them. It
// builds a fresh table on each call; there is no global registry.
func Definitions() []Definition {
	target := Arg{Name: "INSTANCE", Help: "an instance ID (i-0123456789abcdef0) or the name of one of your instances"}
	quoteName := `quote a name that has spaces: "my box"`
	defs := []Definition{
		{
			Name:    "launch",
			Summary: "Request an EC2 instance. The request is posted in the channel; an approver approves it in the thread, then the bot launches the instance and posts its IP and an SSH command.",
			Who:     "anyone; an approver must approve the request unless the type is auto-approved by policy",
			Args:    []Arg{{Name: "TYPE", Help: "an instance type such as t3.micro (the allowed types are in the config)"}},
			Flags: []Flag{
				{Name: "hours", Value: "N", Help: "lease in hours, 1 to 720 (default: launch.default_ttl in the config)"},
				{Name: "image", Value: "PRESET", Help: "image to launch by its short name in launch.images, e.g. dlami (`/computebot help launch` lists them)"},
				{Name: "ami", Value: "AMI", Help: "image to launch: an AMI ID (ami-…) or resolve:ssm:/parameter/name (default: launch.ami in the config)"},
				{Name: "name", Value: "NAME", Help: "the instance's Name tag, up to 128 characters"},
				{Name: "reason", Value: "TEXT", Help: "why you need it, shown to approvers (up to 500 characters; quote it)"},
				{Name: "hibernate", Help: "launch it able to hibernate, so a stop keeps its memory (when its type and image can; launch.hibernate in the config makes it the default)"},
			},
			Examples: []string{
				`/launch t2.micro`,
				`/launch t3.small --hours 4 --reason "feature engineering"`,
				`/launch t3.small --image dlami --hibernate`,
				`/launch t3.small --hours 8 --name training-box --ami resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`,
			},
			Notes:     "`/launch` alone opens a form with the same fields.",
			extraHint: `put a reason in quotes: --reason "feature engineering"`,
			build:     buildLaunch,
			bare:      func() Command { return &OpenLaunchForm{} },
		},
		{
			Name:     "instances",
			Summary:  "List instances launched by computebot: name, ID, type, state, IP, uptime, cost so far and lease expiry, with buttons to act on them.",
			Who:      "anyone, for their own instances; --all: approvers only",
			Flags:    []Flag{{Name: "all", Help: "everyone's instances, not just yours (approvers only)"}},
			Examples: []string{`/instances`, `/instances --all`},
			build: func(p *parsed) Result {
				_, all := p.flags["all"]
				return run(&Instances{All: all})
			},
		},
		{
			Name:      "stop",
			extraHint: quoteName,
			Summary:   "Stop an instance (its disk is kept; launched with --hibernate or launch.hibernate, it hibernates and keeps its memory too; start it again later).",
			Who:       "the instance's owner or an approver",
			Args:      []Arg{target},
			Examples:  []string{`/stop i-0123456789abcdef0`, `/stop training-box`},
			build:     buildTarget(func(t string) Command { return &Stop{Target: t} }),
		},
		{
			Name:      "start",
			extraHint: quoteName,
			Summary:   "Start a stopped instance; the bot posts its new public IP and SSH command.",
			Who:       "the instance's owner or an approver",
			Args:      []Arg{target},
			Examples:  []string{`/start i-0123456789abcdef0`, `/start training-box`},
			build:     buildTarget(func(t string) Command { return &Start{Target: t} }),
		},
		{
			Name:      "terminate",
			extraHint: quoteName,
			Summary:   "Terminate an instance. This deletes it and its disk for good.",
			Who:       "the instance's owner or an approver",
			Args:      []Arg{target},
			Examples:  []string{`/terminate i-0123456789abcdef0`},
			build:     buildTarget(func(t string) Command { return &Terminate{Target: t} }),
		},
		{
			Name:      "extend",
			extraHint: quoteName,
			Summary:   "Extend an instance's lease by a number of hours.",
			Who:       "the instance's owner (up to launch.max_lease in total) or an approver (no cap)",
			Args:      []Arg{target, {Name: "HOURS", Help: "hours to add, 1 to 720"}},
			Examples:  []string{`/extend i-0123456789abcdef0 4`, `/extend training-box 24`},
			build:     buildExtend,
		},
		{
			Name:     "lambda list",
			Summary:  "List the Lambda functions you may invoke, with runtime, memory and last change.",
			Who:      "anyone; only functions matching lambda.allowed_functions are shown",
			Examples: []string{`/lambda list`},
			build:    func(*parsed) Result { return run(&LambdaList{}) },
		},
		{
			Name:    "sshkey add",
			Summary: "Register your SSH public key: it is installed on the instances you launch from then on, so you log in with your own key (no shared .pem). The answer is private.",
			Who:     "anyone, for themselves; up to 5 keys each",
			Args:    []Arg{{Name: "KEY", Help: "your public key, one line as in ~/.ssh/id_ed25519.pub (ssh-ed25519, ecdsa-sha2-…, or ssh-rsa of 3072 bits or more); never the private key"}},
			Flags:   []Flag{{Name: "label", Value: "NAME", Help: "a name for the key (default: its comment, else the start of its fingerprint)"}},
			Examples: []string{
				`/sshkey add ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMx… ana@laptop`,
				`/sshkey add ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMx… --label work-laptop`,
			},
			Notes: "Print your public key with `cat ~/.ssh/id_ed25519.pub`; make one with `ssh-keygen -t ed25519`.",
			build: nil, // parsed by parseSSHKeyAdd: the key has spaces
		},
		{
			Name:     "sshkey list",
			Summary:  "List your registered SSH keys: label, type and fingerprint. The answer is private.",
			Who:      "anyone, for themselves",
			Examples: []string{`/sshkey list`},
			build:    func(*parsed) Result { return run(&SSHKeyList{}) },
		},
		{
			Name:     "sshkey remove",
			Summary:  "Remove one of your SSH keys. Instances launched before keep it until they are replaced.",
			Who:      "anyone, for themselves",
			Args:     []Arg{{Name: "NAME", Help: "the key's label, or its fingerprint (SHA256:…)"}},
			Examples: []string{`/sshkey remove work-laptop`},
			build:    func(p *parsed) Result { return run(&SSHKeyRemove{Name: p.args[0]}) },
		},
		{
			Name:    "keep",
			Summary: "Keep an instance from being stopped as idle for a while (a long training run at low CPU): shown in /instances and as the tag computebot:keep-until. Its lease still ends when it ends.",
			Who:     "the instance's owner, within idle.max_keep (3 days by default); an approver, longer",
			Args:    []Arg{target, {Name: "DURATION", Help: "how long: 90m, 6h, 3d (up to 90 days)"}},
			Examples: []string{
				`/keep training-box 2d`,
				`/keep i-0123456789abcdef0 12h`,
			},
			extraHint: quoteName,
			build:     buildKeep,
		},
		{
			Name:    "schedule",
			Summary: "Give an instance office hours: it is started when they begin (the thread gets its new IP) and stopped when they end, after a notice with Keep running, as idle stops are. Stopped by hand during its hours, it stays stopped until the next start. Shown in /instances and as the tag computebot:schedule.",
			Who:     "the instance's owner, or an approver",
			Args: []Arg{target, {Name: "SCHEDULE", Rest: true,
				Help: "days, hours and an IANA time zone: weekdays 08:00-19:00 Europe/Berlin (days: weekdays, weekends, daily, mon…sun, mon-fri, mon,wed,fri); or off"}},
			Examples: []string{
				`/schedule training-box weekdays 08:00-19:00 Europe/Berlin`,
				`/schedule i-0123456789abcdef0 mon,wed,fri 09:00-17:30 America/New_York`,
				`/schedule training-box off`,
			},
			extraHint: quoteName,
			build:     buildSchedule,
		},
		{
			Name:      "connect",
			Summary:   "Show how to reach an instance: the SSH command, the SSM session when it has no public IP, and the line that forwards its Jupyter port to your machine.",
			Who:       "the instance's owner, or an approver",
			Args:      []Arg{target},
			Examples:  []string{`/connect i-0123456789abcdef0`, `/connect training-box`},
			extraHint: quoteName,
			build:     buildTarget(func(t string) Command { return &Connect{Target: t} }),
		},
		{
			Name:    "lambda invoke",
			Summary: "Invoke a Lambda function and post its result and the end of its log in the thread.",
			Who:     "anyone, for functions matching lambda.allowed_functions; those matching lambda.require_approval need an approver's approval first",
			Args: []Arg{
				{Name: "FUNCTION", Help: "the function's name or ARN"},
				{Name: "JSON", Help: "the payload: everything after the function name, as JSON of up to 256 KiB; no quotes needed around it", Optional: true},
			},
			Flags: []Flag{{Name: "async", Help: "invoke asynchronously (Event) and report the accepted request ID"}},
			Notes: "The payload is kept as typed, spaces and all; it may be wrapped in `code` formatting, and Slack's curly quotes are straightened when that makes it valid JSON.",
			Examples: []string{
				`/lambda invoke nightly-report`,
				`/lambda invoke resize-images {"bucket": "photos", "max": 100}`,
				`/lambda invoke --async rebuild-index {"full": true}`,
			},
			build: nil, // parsed by parseInvoke: the payload is raw text
		},
		{
			Name:        "status",
			Summary:     "In a request's thread: show where that request is (pending, approved, launched, …).",
			Who:         "anyone",
			Examples:    []string{`@computebot status`},
			mentionOnly: true,
			build:       func(*parsed) Result { return run(&Status{}) },
		},
		{
			Name:     "idle",
			Summary:  "Show which instances are idle, snoozed, or about to be stopped by the idle scheduler.",
			Who:      "approvers",
			Examples: []string{`/computebot idle`},
			subOnly:  true,
			build:    func(*parsed) Result { return run(&Idle{}) },
		},
		{
			Name:    "audit",
			Summary: "Read the audit log, newest first: who launched, approved, denied, stopped, started, terminated, extended or invoked what, and how it ended.",
			Who:     "approvers",
			Args: []Arg{{Name: "INSTANCE|@USER", Optional: true,
				Help: "only what happened to one instance (its ID, i-…), or only what one person did (pick them from Slack's list as you type @, or give their member ID, U…)"}},
			Flags: []Flag{{Name: "since", Value: "DURATION",
				Help: fmt.Sprintf("how far back to look: hours or days such as 36h or 30d (default %s, at most %s)", days(DefaultAuditSince), days(MaxAuditSince))}},
			Notes: "The answer is private and paged. A person's filter matches what they did themselves (the actor), not what was done to their requests or instances: filter by an instance ID for that. Operators can read the same log with `computebot audit --config FILE` on the bot's host while the bot is stopped.",
			Examples: []string{
				`/computebot audit`,
				`/computebot audit i-0123456789abcdef0`,
				`/computebot audit --since 30d`,
			},
			subOnly: true,
			build:   buildAudit,
		},
		{
			Name:     "help",
			Summary:  "Show this help, or the help of one command.",
			Who:      "anyone",
			Args:     []Arg{{Name: "COMMAND", Help: "a command name, e.g. launch or lambda invoke", Optional: true}},
			Examples: []string{`/computebot help`, `/computebot help launch`, `/launch help`},
			build:    nil, // parsed by parseHelp: the topic may be two words
		},
	}
	for i := range defs {
		defs[i].Usage = usageLine(&defs[i])
	}
	return defs
}

func usageLine(d *Definition) string {
	var b strings.Builder
	if d.mentionOnly {
		b.WriteString("@computebot ")
	} else if d.Name == "help" || d.subOnly {
		b.WriteString("/computebot ")
	} else {
		b.WriteString("/")
	}
	b.WriteString(d.Name)
	for _, a := range d.Args {
		b.WriteByte(' ')
		if a.Optional {
			b.WriteString("[" + a.Name + "]")
		} else {
			b.WriteString(a.Name)
		}
	}
	for _, f := range d.Flags {
		b.WriteString(" [" + f.usage() + "]")
	}
	return b.String()
}

func (f Flag) usage() string {
	if f.Value == "" {
		return "--" + f.Name
	}
	return "--" + f.Name + " " + f.Value
}

// slashName is how replies name a command: "/launch", "/lambda invoke",
// "/computebot idle".
func (d *Definition) slashName() string {
	if d.mentionOnly {
		return "@computebot " + d.Name
	}
	if d.subOnly {
		return "/computebot " + d.Name
	}
	return "/" + d.Name
}

func (d *Definition) flag(name string) (Flag, bool) {
	for _, f := range d.Flags {
		if f.Name == name {
			return f, true
		}
	}
	return Flag{}, false
}

// lookup returns the definition called name ("launch", "lambda invoke").
func lookup(defs []Definition, name string) (*Definition, bool) {
	for i := range defs {
		if defs[i].Name == name {
			return &defs[i], true
		}
	}
	return nil, false
}

// commandWords returns the first words of all commands ("launch", "lambda",
// …), without duplicates, in table order.
func commandWords(defs []Definition) []string {
	var words []string
	seen := map[string]bool{}
	for _, d := range defs {
		w, _, _ := strings.Cut(d.Name, " ")
		if !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	return words
}

// subcommands returns the second words of the commands starting with word.
func subcommands(defs []Definition, word string) []string {
	var subs []string
	for _, d := range defs {
		if w, sub, ok := strings.Cut(d.Name, " "); ok && w == word {
			subs = append(subs, sub)
		}
	}
	return subs
}
