package reply

import (
	"fmt"
	"maps"
	"math"
	"slices"
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
	var summary, text string
	var fields []string
	if l := r.Lambda; l != nil {
		summary = fmt.Sprintf("%s asks to invoke Lambda function `%s`", User(r.Requester), Literal(l.Function))
		fields = lambdaFields(r.ID, l)
		text = fmt.Sprintf("%s asks to invoke %s, request %s", User(r.Requester), Literal(l.Function), r.ID)
	} else {
		l := launchOf(r)
		summary = fmt.Sprintf("%s requests 1 × `%s`%s", User(r.Requester), l.InstanceType, specs(l))
		fields = requestFields(r.ID, l)
		text = fmt.Sprintf("%s requests 1 × %s (%s), request %s", User(r.Requester), l.InstanceType, Price(l), r.ID)
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
			Block{Kind: Context, Text: fmt.Sprintf("Waiting for an approver. The approval expires %s.", Date(r.ApprovalExpiresAt))},
		)
	default:
		outcome := Outcome(r)
		blocks = append(blocks, Block{Kind: Context, Text: outcome})
		text += ": " + outcome
	}
	return Message{Text: text, Blocks: blocks, Key: RequestKey(r.ID)}
}

// launchOf is a launch request's payload, empty for a request without one,
// so that rendering never fails on a damaged record.
func launchOf(r *computebot.Request) *computebot.LaunchRequest {
	if r.Launch == nil {
		return &computebot.LaunchRequest{}
	}
	return r.Launch
}

// Outcome is the one-line decision shown where the buttons were.
func Outcome(r *computebot.Request) string {
	switch {
	case r.State == computebot.RequestDenied:
		return fmt.Sprintf(":no_entry: Denied by %s", User(r.DecidedBy))
	case r.State == computebot.RequestExpired:
		return ":hourglass: Expired: no approver decided in time. Run `/launch` again if you still need it."
	case r.State == computebot.RequestRefused:
		return ":no_entry: Refused: " + r.Failure
	case r.AutoApproved:
		return ":robot_face: Auto-approved by policy" + resultSuffix(r)
	case r.DecidedBy != "":
		return fmt.Sprintf(":white_check_mark: Approved by %s", User(r.DecidedBy)) + resultSuffix(r)
	}
	return string(r.State)
}

func resultSuffix(r *computebot.Request) string {
	lambda := r.Kind() == computebot.KindLambda
	switch {
	case r.State == computebot.RequestFailed && lambda:
		return " — invocation failed (see thread)"
	case r.State == computebot.RequestFailed:
		return " — launch failed (see thread)"
	case r.State == computebot.RequestDone && lambda:
		return " — invoked (see thread)"
	case r.State == computebot.RequestDone:
		return fmt.Sprintf(" — `%s` running", launchOf(r).InstanceID)
	}
	return ""
}

func lambdaFields(id string, l *computebot.LambdaRequest) []string {
	payload := l.Payload
	if payload == "" {
		payload = "(none)"
	}
	mode := "synchronous"
	if l.Async {
		mode = "asynchronous (Event)"
	}
	return []string{
		"*Payload*\n```" + Clip(Literal(payload), 500) + "```",
		"*Mode*\n" + mode,
		"*Request*\n`" + id + "`",
	}
}

func specs(l *computebot.LaunchRequest) string {
	if l.VCPUs == 0 && l.MemoryMiB == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d vCPU, %s)", l.VCPUs, GiB(l.MemoryMiB))
}

func requestFields(id string, l *computebot.LaunchRequest) []string {
	ami := "`" + l.ImageID + "`"
	if l.ImageID == "" {
		ami = "`" + Literal(l.ImageRef) + "`"
	}
	if l.ImageName != "" {
		ami += " " + Literal(l.ImageName)
	}
	fields := []string{
		"*AMI*\n" + ami,
		"*Lease*\n" + Hours(l.Lease),
		"*Price*\n" + Price(l),
		"*Request*\n`" + id + "`",
	}
	if l.Name != "" {
		fields = append(fields, "*Name*\n"+Literal(l.Name))
	}
	if l.Reason != "" {
		fields = append(fields, "*Reason*\n"+Literal(l.Reason))
	}
	if line := QuotaLine(l); line != "" {
		fields = append(fields, "*Quota*\n"+line)
	}
	if line := fallbackLine(l); line != "" {
		fields = append(fields, "*Fallbacks*\n"+line)
	}
	if line := hibernationLine(l); line != "" {
		fields = append(fields, "*Hibernation*\n"+line)
	}
	return fields
}

// Price renders the hourly and lease price, or "price unknown".
func Price(l *computebot.LaunchRequest) string {
	if !l.PriceKnown {
		return "price unknown"
	}
	lease := l.PricePerHour * l.Lease.Hours()
	return fmt.Sprintf("≈ $%s/h, ≈ $%.2f for the lease", trimPrice(l.PricePerHour), math.Ceil(lease*100-1e-9)/100)
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

// ApproversNote is the first thread reply: who can approve.
func ApproversNote(r *computebot.Request, approvers []string, selfApproval bool) Message {
	text := fmt.Sprintf("Request `%s` needs approval. Approvers: %s.", r.ID, Mentions(approvers))
	if !selfApproval {
		text += " Requesters can't approve their own requests."
	}
	m := Plain(text)
	m.Key = NoteKey(r.ID)
	return m
}

// Launching is the progress reply once a launch starts.
func Launching(r *computebot.Request) Message {
	return Plain(fmt.Sprintf(":rocket: Launching `%s` for request `%s`…", launchOf(r).InstanceType, r.ID))
}

// Pending is the progress reply once EC2 returned an instance ID.
func Pending(r *computebot.Request) Message {
	return Plain(fmt.Sprintf(":hourglass_flowing_sand: `%s` is pending; I'll post its address as soon as it runs.", launchOf(r).InstanceID))
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
	l := launchOf(r)
	var b strings.Builder
	launched := l.Current()
	fmt.Fprintf(&b, ":white_check_mark: %s, `%s` is running (`%s`, request `%s`).\n", User(r.Requester), l.InstanceID, launched.InstanceType, r.ID)
	if launched.InstanceType != l.InstanceType {
		fmt.Fprintf(&b, "AWS had no `%s` capacity, so it is a `%s`, one of the approved fallbacks.\n", l.InstanceType, launched.InstanceType)
	}
	if launched.Hibernate {
		b.WriteString("It can hibernate: a stop keeps its memory.\n")
	}
	if l.PublicIP != "" {
		fmt.Fprintf(&b, "*Public IP:* `%s`\n", l.PublicIP)
	}
	b.WriteString(SSHLine(l.InstanceID, l.PublicIP, l.PrivateIP, sshUser, keyName))
	if keyName == "" && len(l.SSHKeys) == 0 {
		b.WriteString("\n" + NoSSHKeyHint(r.Requester))
	}
	text := strings.TrimRight(b.String(), "\n")
	ends := r.DecidedAt.Add(l.Lease)
	return Message{
		Text: fmt.Sprintf("%s is running: %s", l.InstanceID, firstNonEmpty(l.PublicIP, l.PrivateIP)),
		Blocks: []Block{
			{Kind: Section, Text: text},
			{Kind: Context, Text: fmt.Sprintf("Lease ends %s.", Date(ends))},
		},
		Key: ReadyKey(r.ID),
	}
}

// Failed is the thread reply when a launch or an approved invocation fails.
func Failed(r *computebot.Request) Message {
	what := "launch"
	if r.Kind() == computebot.KindLambda {
		what = "invocation"
	}
	return Plain(fmt.Sprintf(":x: %s, the %s of request `%s` failed: %s", User(r.Requester), what, r.ID, r.Failure))
}

// Decision is the thread reply recording an approver's decision.
func Decision(r *computebot.Request) Message {
	if r.State == computebot.RequestDenied {
		return Plain(fmt.Sprintf("Denied by %s. Nothing was launched.", User(r.DecidedBy)))
	}
	return Plain(fmt.Sprintf("Approved by %s.", User(r.DecidedBy)))
}

// Expired is the thread reply when an approval window passes.
func Expired(r *computebot.Request) Message {
	return Plain(fmt.Sprintf("Request `%s` expired: no approver decided before %s. Nothing was launched.", r.ID, Date(r.ApprovalExpiresAt)))
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
		state = "waiting for an approver; the approval expires " + Date(r.ApprovalExpiresAt)
	case computebot.RequestApproved:
		state = "approved, about to start"
	case computebot.RequestExecuting:
		state = "starting"
	case computebot.RequestLaunched:
		state = fmt.Sprintf("`%s` launched, waiting for it to run", launchOf(r).InstanceID)
	case computebot.RequestDone:
		state = "done"
		if id := launchOf(r).InstanceID; id != "" {
			state = fmt.Sprintf("done: `%s` was launched", id)
		}
	default:
		state = strings.TrimPrefix(Outcome(r), ":no_entry: ")
	}
	return Plain(fmt.Sprintf("Request `%s` (%s): %s.", r.ID, User(r.Requester), state))
}

// StatusNotHere answers "@computebot status" outside a request's thread.
func StatusNotHere() Message {
	return Plain("Ask `@computebot status` in a request's thread to hear where that request stands. `/instances` lists your instances.")
}

// StatusNotARequest answers "@computebot status" in a thread that is not a
// request's.
func StatusNotARequest() Message {
	return Plain("This thread is not one of my requests. Ask `@computebot status` in a request's thread.")
}

// CannotPost explains why a request (or an invocation's thread) could not
// be posted: the bot is not in the channel (notInChannel), or Slack failed.
func CannotPost(kind computebot.RequestKind, notInChannel bool) Message {
	nothing, what := "nothing was launched", "your request"
	if kind == computebot.KindLambda {
		nothing, what = "nothing was invoked", "the invocation"
	}
	if notInChannel {
		return Plain("I can't post in this channel: invite me first (`/invite @computebot`), then run the command again. " +
			strings.ToUpper(nothing[:1]) + nothing[1:] + ".")
	}
	return Plain(fmt.Sprintf("I could not post %s in this channel, so %s. Please try again.", what, nothing))
}

// TypeLookupFailed refuses a request whose instance type EC2 did not
// describe (why is the cloud's own explanation).
func TypeLookupFailed(instanceType, why string) Message {
	return Plain(fmt.Sprintf("I could not look up `%s`: %s Nothing was launched.", instanceType, Literal(why)))
}

// ImageLookupFailed refuses a request whose AMI did not resolve.
func ImageLookupFailed(imageRef, why string) Message {
	return Plain(fmt.Sprintf("I could not use AMI `%s`: %s Nothing was launched.", Literal(imageRef), Literal(why)))
}

// SaveFailed answers a command whose request could not be stored.
func SaveFailed() Message {
	return Plain("I could not save your request (internal error). Nothing changed; please try again.")
}

// UnknownRequest answers a click on a request this store has never seen.
func UnknownRequest(id string) Message {
	return Plain(fmt.Sprintf("I don't know request `%s`; it may come from another computebot installation.", id))
}

// ClickNotOnItsMessage answers a click whose button names a request other
// than the one its message shows (a crafted or garbled click).
func ClickNotOnItsMessage() Message {
	return Plain("That button does not belong to the message it was clicked on, so nothing was done. Use the buttons on the request's or notice's own message.")
}

// ClickFailed answers a click the bot could not look up (its store failed).
func ClickFailed() Message {
	return Plain("Something went wrong on my side (internal error); please click again in a minute.")
}

// LookupBroke answers a question the bot's store could not answer.
func LookupBroke() Message {
	return Plain("I could not look that up (internal error); please try again.")
}

// DecisionNotSaved answers a click whose decision could not be stored.
func DecisionNotSaved() Message {
	return Plain("I could not record your decision (internal error); please click again.")
}

// AlreadyDecided answers a click on a request that is no longer pending.
func AlreadyDecided(r *computebot.Request) Message {
	switch r.State {
	case computebot.RequestDenied:
		return Plain(fmt.Sprintf("Request `%s` was already denied by %s.", r.ID, User(r.DecidedBy)))
	case computebot.RequestExpired:
		return Plain(fmt.Sprintf("Request `%s` has expired; %s can run `/launch` again.", r.ID, User(r.Requester)))
	case computebot.RequestRefused, computebot.RequestNew:
		return Plain(fmt.Sprintf("Request `%s` is not waiting for approval.", r.ID))
	}
	if r.AutoApproved {
		return Plain(fmt.Sprintf("Request `%s` was auto-approved by policy.", r.ID))
	}
	return Plain(fmt.Sprintf("Request `%s` was already approved by %s.", r.ID, User(r.DecidedBy)))
}

// ClickedTooLate answers an Approve or Deny after the approval window.
func ClickedTooLate(r *computebot.Request, approve bool) Message {
	done := "denied"
	if approve {
		done = "approved"
	}
	return Plain(fmt.Sprintf("Request `%s` expired at %s, so it can't be %s. Nothing was done; %s can ask again.",
		r.ID, Date(r.ApprovalExpiresAt), done, User(r.Requester)))
}

// TerminatedBeforeRunning is the failure of a launch whose instance ended
// before it ran.
func TerminatedBeforeRunning(instanceID, state string) string {
	return fmt.Sprintf("`%s` was terminated before it started running (state %s). Nothing is running; try again or pick another type.", instanceID, state)
}

// NotRunningInTime is the failure of a launch whose instance did not run
// within the wait.
func NotRunningInTime(instanceID string, wait time.Duration) string {
	return fmt.Sprintf("`%s` did not reach running within %s. It may still start; check it in the EC2 console.", instanceID, wait)
}

// ImagePresets is the line help adds to /launch's: the --image names.
func ImagePresets(images map[string]string) string {
	names := slices.Sorted(maps.Keys(images))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("`%s` (%s)", n, Literal(images[n]))
	}
	return "*Image presets* for `--image`: " + strings.Join(parts, ", ") + "."
}

// UnknownImagePreset refuses --image NAME that the config does not have.
func UnknownImagePreset(name string, images map[string]string) Message {
	if len(images) == 0 {
		return Plain(fmt.Sprintf("There is no image preset `%s`: this bot has none (launch.images in its config). Use `--ami` with an AMI ID.", name))
	}
	return Plain(fmt.Sprintf("There is no image preset `%s`. %s", name, ImagePresets(images)))
}
