package reply

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/computebot/computebot"
)

// Action IDs of the request message's buttons. The value is the request ID.
const (
	ActionApprove = "approve"
	ActionDeny    = "deny"
)

// RequestBlockID is the block ID of a request's buttons.
func RequestBlockID(requestID string) string { return "request:" + requestID }

// RequestMessage is the channel message for a request waiting for approval
// (with Approve / Deny) or, once decided, with its outcome instead of buttons.
func RequestMessage(r *computebot.Request) Message {
	summary := fmt.Sprintf("<@%s> requests 1 × `%s`%s", r.Requester, r.InstanceType, specs(r))
	fields := requestFields(r)
	text := fmt.Sprintf("<@%s> requests 1 × %s (%s), request %s", r.Requester, r.InstanceType, Price(r), r.ID)
	if r.Kind == computebot.KindLambda {
		summary = fmt.Sprintf("<@%s> asks to invoke Lambda function `%s`", r.Requester, r.Function)
		fields = lambdaFields(r)
		text = fmt.Sprintf("<@%s> asks to invoke %s, request %s", r.Requester, r.Function, r.ID)
	}
	blocks := []Block{
		{Kind: Section, Text: summary},
		{Kind: Section, Fields: fields},
	}
	switch r.State {
	case computebot.RequestNew, computebot.RequestPending:
		blocks = append(blocks,
			Block{Kind: Actions, ID: RequestBlockID(r.ID), Buttons: []Button{
				{Text: "Approve", ActionID: ActionApprove, Value: r.ID, Style: Primary},
				{Text: "Deny", ActionID: ActionDeny, Value: r.ID, Style: Danger},
			}},
			Block{Kind: Context, Text: fmt.Sprintf("Waiting for an approver. The approval expires %s.", SlackDate(r.ApprovalExpiresAt))},
		)
	default:
		outcome := Outcome(r)
		blocks = append(blocks, Block{Kind: Context, Text: outcome})
		text += ": " + outcome
	}
	return Message{Text: text, Blocks: blocks}
}

// Outcome is the one-line decision shown where the buttons were.
func Outcome(r *computebot.Request) string {
	switch {
	case r.State == computebot.RequestDenied:
		return fmt.Sprintf(":no_entry: Denied by <@%s>", r.DecidedBy)
	case r.State == computebot.RequestExpired:
		return ":hourglass: Expired: no approver decided in time. Run `/launch` again if you still need it."
	case r.State == computebot.RequestRefused:
		return ":no_entry: Refused: " + r.Failure
	case r.AutoApproved:
		return ":robot_face: Auto-approved by policy" + launchSuffix(r)
	case r.DecidedBy != "":
		return fmt.Sprintf(":white_check_mark: Approved by <@%s>", r.DecidedBy) + launchSuffix(r)
	}
	return string(r.State)
}

func launchSuffix(r *computebot.Request) string {
	switch {
	case r.State == computebot.RequestFailed && r.Kind == computebot.KindLambda:
		return " — invocation failed (see thread)"
	case r.State == computebot.RequestFailed:
		return " — launch failed (see thread)"
	case r.State == computebot.RequestReady && r.Kind == computebot.KindLambda:
		return " — invoked (see thread)"
	case r.State == computebot.RequestReady:
		return fmt.Sprintf(" — `%s` running", r.InstanceID)
	}
	return ""
}

func lambdaFields(r *computebot.Request) []string {
	payload := r.Payload
	if payload == "" {
		payload = "(none)"
	}
	mode := "synchronous"
	if r.Async {
		mode = "asynchronous (Event)"
	}
	return []string{
		"*Payload*\n```" + clipText(payload, 500) + "```",
		"*Mode*\n" + mode,
		"*Request*\n`" + r.ID + "`",
	}
}

func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func specs(r *computebot.Request) string {
	if r.VCPUs == 0 && r.MemoryMiB == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d vCPU, %s)", r.VCPUs, GiB(r.MemoryMiB))
}

func requestFields(r *computebot.Request) []string {
	ami := "`" + r.ImageID + "`"
	if r.ImageID == "" {
		ami = "`" + r.ImageRef + "`"
	}
	if r.ImageName != "" {
		ami += " " + r.ImageName
	}
	fields := []string{
		"*AMI*\n" + ami,
		"*Lease*\n" + Hours(r.Lease),
		"*Price*\n" + Price(r),
		"*Request*\n`" + r.ID + "`",
	}
	if r.Name != "" {
		fields = append(fields, "*Name*\n"+r.Name)
	}
	if r.Reason != "" {
		fields = append(fields, "*Reason*\n"+r.Reason)
	}
	return fields
}

// Price renders the hourly and lease price, or "price unknown".
func Price(r *computebot.Request) string {
	if !r.PriceKnown {
		return "price unknown"
	}
	lease := r.PricePerHour * r.Lease.Hours()
	return fmt.Sprintf("≈ $%s/h, ≈ $%.2f for the lease", trimPrice(r.PricePerHour), math.Ceil(lease*100-1e-9)/100)
}

// trimPrice shows up to 4 decimals, dropping trailing zeros but keeping two.
func trimPrice(p float64) string {
	s := fmt.Sprintf("%.4f", p)
	for strings.HasSuffix(s, "0") && len(s)-strings.Index(s, ".") > 3 {
		s = strings.TrimSuffix(s, "0")
	}
	return s
}

// GiB renders a memory size in MiB as GiB ("1 GiB", "0.5 GiB").
func GiB(mib int64) string {
	g := float64(mib) / 1024
	if g == math.Trunc(g) {
		return fmt.Sprintf("%d GiB", int64(g))
	}
	return fmt.Sprintf("%.1f GiB", g)
}

// Hours renders a lease ("4 h", "90 min").
func Hours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d min", int(d/time.Minute))
}

// SlackDate renders t in each reader's own time zone, with a UTC fallback.
func SlackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} at {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// ApproversNote is the first thread reply: who can approve.
func ApproversNote(r *computebot.Request, approvers string, selfApproval bool) Message {
	text := fmt.Sprintf("Request `%s` needs approval. Approvers: %s.", r.ID, approvers)
	if !selfApproval {
		text += " Requesters can't approve their own requests."
	}
	return Plain(text)
}

// Launching is the progress reply once a launch starts.
func Launching(r *computebot.Request) Message {
	return Plain(fmt.Sprintf(":rocket: Launching `%s` for request `%s`…", r.InstanceType, r.ID))
}

// Pending is the progress reply once EC2 returned an instance ID.
func Pending(r *computebot.Request) Message {
	return Plain(fmt.Sprintf(":hourglass_flowing_sand: `%s` is pending; I'll post its address as soon as it runs.", r.InstanceID))
}

// SSHUser picks the login user: configured, or inferred from the AMI name.
func SSHUser(configured, imageName string) string {
	if configured != "" {
		return configured
	}
	name := strings.ToLower(imageName)
	switch {
	case strings.Contains(name, "ubuntu"):
		return "ubuntu"
	case strings.Contains(name, "debian"):
		return "admin"
	}
	return "ec2-user"
}

// Ready is the thread reply with everything needed to connect.
func Ready(r *computebot.Request, sshUser, keyName string) Message {
	var b strings.Builder
	fmt.Fprintf(&b, ":white_check_mark: <@%s>, `%s` is running (`%s`, request `%s`).\n", r.Requester, r.InstanceID, r.InstanceType, r.ID)
	if r.PublicIP != "" {
		fmt.Fprintf(&b, "*Public IP:* `%s`\n", r.PublicIP)
	}
	b.WriteString(SSHLine(r.InstanceID, r.PublicIP, r.PrivateIP, sshUser, keyName))
	text := strings.TrimRight(b.String(), "\n")
	ends := r.DecidedAt.Add(r.Lease)
	return Message{
		Text: fmt.Sprintf("%s is running: %s", r.InstanceID, firstNonEmpty(r.PublicIP, r.PrivateIP)),
		Blocks: []Block{
			{Kind: Section, Text: text},
			{Kind: Context, Text: fmt.Sprintf("Lease ends %s.", SlackDate(ends))},
		},
	}
}

// Failed is the thread reply when a launch fails.
func Failed(r *computebot.Request) Message {
	what := "launch"
	if r.Kind == computebot.KindLambda {
		what = "invocation"
	}
	return Plain(fmt.Sprintf(":x: <@%s>, the %s of request `%s` failed: %s", r.Requester, what, r.ID, r.Failure))
}

// Decision is the thread reply recording an approver's decision.
func Decision(r *computebot.Request) Message {
	if r.State == computebot.RequestDenied {
		return Plain(fmt.Sprintf("Denied by <@%s>. Nothing was launched.", r.DecidedBy))
	}
	return Plain(fmt.Sprintf("Approved by <@%s>.", r.DecidedBy))
}

// Expired is the thread reply when an approval window passes.
func Expired(r *computebot.Request) Message {
	return Plain(fmt.Sprintf("Request `%s` expired: no approver decided before %s. Nothing was launched.", r.ID, SlackDate(r.ApprovalExpiresAt)))
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// Status is the answer to "@computebot status" in a request's thread.
func Status(r *computebot.Request) Message {
	var state string
	switch r.State {
	case computebot.RequestNew:
		state = "being checked"
	case computebot.RequestPending:
		state = "waiting for an approver; the approval expires " + SlackDate(r.ApprovalExpiresAt)
	case computebot.RequestApproved:
		state = "approved, about to start"
	case computebot.RequestLaunching:
		state = "starting"
	case computebot.RequestLaunched:
		state = fmt.Sprintf("`%s` launched, waiting for it to run", r.InstanceID)
	case computebot.RequestReady:
		state = "done"
		if r.InstanceID != "" {
			state = fmt.Sprintf("done: `%s` was launched", r.InstanceID)
		}
	default:
		state = strings.TrimPrefix(Outcome(r), ":no_entry: ")
	}
	return Plain(fmt.Sprintf("Request `%s` (<@%s>): %s.", r.ID, r.Requester, state))
}
