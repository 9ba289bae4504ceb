// Package commands parses what people type to computebot — a slash command
// or the text of an @-mention — into typed commands.
//
// Parsing has three outcomes (the shape of Atlantis' comment parser): a
// command to run, a reply to give now (a syntax error with what to do, a
// usage line, "did you mean"), or nothing at all. It checks syntax only:
// whether a type is allowed, who may act and whether an instance exists are
// decided later, by policy and the cloud.
//
// The package depends on the standard library only; it knows nothing of
// Slack's API or of AWS: the adapter hands it text as it was typed. Its
// usage lines, help and parse errors are the one set of user-facing words
// outside package reply, on purpose: they are generated from the command
// table (Definitions), so they cannot drift from what the parser accepts. Every command is declared once, in Definitions,
// and both the parser and the help text are driven by that table, so help
// can never drift from what is actually accepted.
package commands

import (
	"time"

	"github.com/computebot/computebot/schedule"
)

// Outcome is what the caller should do with a parse.
type Outcome int

const (
	// Ignore: the text was not meant for the bot (for example a quoted
	// message that mentions it). Say nothing.
	Ignore Outcome = iota
	// Run: Result.Command is a well-formed command to authorize and run.
	Run
	// Reply: Result.Reply is text for the person who typed the command
	// (privately): what was wrong and what to do instead.
	Reply
)

func (o Outcome) String() string {
	switch o {
	case Ignore:
		return "ignore"
	case Run:
		return "run"
	case Reply:
		return "reply"
	}
	return "outcome(?)"
}

// Result is the outcome of parsing one message or slash command.
type Result struct {
	Outcome Outcome
	// Command is set when Outcome is Run: one of *Launch, *Instances,
	// *Stop, *Start, *Terminate, *Extend, *LambdaList, *LambdaInvoke,
	// *Status, *Idle, *Audit or *Help.
	Command Command
	// Reply is set when Outcome is Reply: text for the person who typed
	// the command, in package reply's light markup (*bold*, `code`).
	Reply string
	// Secret: the text held a private key. It must not be stored, logged
	// or repeated, and nothing runs; Reply is empty (the caller says so).
	Secret bool
}

func run(c Command) Result        { return Result{Outcome: Run, Command: c} }
func replyf(s string) Result      { return Result{Outcome: Reply, Reply: s} }
func ignore() Result              { return Result{Outcome: Ignore} }
func helpFor(topic string) Result { return run(&Help{Topic: topic}) }

// Command is a parsed command. CommandName is the name it is declared under
// in Definitions ("launch", "lambda invoke", …), handy for logs and audit.
type Command interface {
	CommandName() string
}

// Launch requests a new EC2 instance: /launch TYPE [--hours N] [--image PRESET] [--ami AMI]
// [--name NAME] [--reason TEXT] [--hibernate].
type Launch struct {
	InstanceType string // lower case, e.g. "t3.micro"
	Hours        int    // lease in hours; 0 when not given (use the configured default)
	HoursSet     bool   // --hours was given
	AMI          string // "" (use the configured AMI), an ami-… ID or resolve:ssm:…
	Image        string // "" or the name of an image preset (launch.images), checked later
	Name         string // "" when not given
	Reason       string // "" when not given
	Hibernate    bool   // --hibernate: launch able to hibernate (also launch.hibernate)
}

// Instances lists managed instances: the caller's, or everyone's with --all.
type Instances struct {
	All bool
}

// Stop stops an instance. Target is an instance ID (lower case, see
// IsInstanceID) or an instance name.
type Stop struct{ Target string }

// Start starts a stopped instance. Target is as for Stop.
type Start struct{ Target string }

// Terminate terminates an instance. Target is as for Stop.
type Terminate struct{ Target string }

// Extend moves an instance's lease expiry Hours hours further.
type Extend struct {
	Target string
	Hours  int
}

// LambdaList lists the Lambda functions the bot may invoke.
type LambdaList struct{}

// LambdaInvoke invokes a Lambda function.
type LambdaInvoke struct {
	Function string
	// Payload is the JSON payload exactly as typed (already checked to be
	// valid JSON of at most MaxPayloadBytes); "" when none was given.
	Payload string
	// Async asks for an Event (fire-and-forget) invocation.
	Async bool
}

// Status asks about the request whose thread the message is in (meaningful
// as a mention in a request thread: "@computebot status").
type Status struct{}

// Idle asks which instances are idle, snoozed or about to be stopped
// ("/computebot idle", approvers).
type Idle struct{}

// Audit asks for the audit log ("/computebot audit", approvers): the
// entries of the last Since, newest first, only those about Instance or
// only those by User when one is set (at most one is).
type Audit struct {
	Instance string        // an instance ID (lower case, see IsInstanceID); "" for any
	User     string        // a Slack user ID (see IsUserID): entries whose actor it is; "" for anyone
	Since    time.Duration // how far back; DefaultAuditSince unless --since was given, at most MaxAuditSince
}

// Help asks for help. Topic is a definition name ("launch", "lambda",
// "lambda invoke"); "" means all commands. HelpText renders it.
type Help struct{ Topic string }

// SSHKeyAdd registers a public key: /sshkey add KEY [--label NAME]. Key is
// the text as typed (checked by package sshkeys when it runs).
type SSHKeyAdd struct{ Key, Label string }

// SSHKeyList lists the person's keys: /sshkey list.
type SSHKeyList struct{}

// SSHKeyRemove removes a key by its label (or fingerprint): /sshkey remove NAME.
type SSHKeyRemove struct{ Name string }

// Connect says how to reach an instance: SSH, SSM, the notebook.
type Connect struct{ Target string }

// Keep exempts an instance from idle stops for a while: /keep INSTANCE 3d.
type Keep struct {
	Target string
	For    time.Duration
}

// SetSchedule gives an instance office hours (/schedule INSTANCE DAYS
// HOURS ZONE), or takes them away (/schedule INSTANCE off: Off).
type SetSchedule struct {
	Target string
	Off    bool
	Hours  schedule.Schedule // when not Off
}

func (*Launch) CommandName() string       { return "launch" }
func (*Instances) CommandName() string    { return "instances" }
func (*Stop) CommandName() string         { return "stop" }
func (*Start) CommandName() string        { return "start" }
func (*Terminate) CommandName() string    { return "terminate" }
func (*Extend) CommandName() string       { return "extend" }
func (*LambdaList) CommandName() string   { return "lambda list" }
func (*LambdaInvoke) CommandName() string { return "lambda invoke" }
func (*Status) CommandName() string       { return "status" }
func (*Idle) CommandName() string         { return "idle" }
func (*Audit) CommandName() string        { return "audit" }
func (*Help) CommandName() string         { return "help" }
func (*SSHKeyAdd) CommandName() string    { return "sshkey add" }
func (*SSHKeyList) CommandName() string   { return "sshkey list" }
func (*SSHKeyRemove) CommandName() string { return "sshkey remove" }
func (*Connect) CommandName() string      { return "connect" }
func (*Keep) CommandName() string         { return "keep" }
func (*SetSchedule) CommandName() string  { return "schedule" }
