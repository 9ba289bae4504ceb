package reply

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/computebot/computebot"
)

// FunctionList renders one page of Lambda functions.
func FunctionList(fns []computebot.Function, offset int) Message {
	if len(fns) == 0 {
		return Plain("No Lambda functions are available through computebot in this region.")
	}
	end := min(offset+PageSize*2, len(fns)) // one block per function
	blocks := []Block{{Kind: Section, Text: fmt.Sprintf("*Lambda functions* (%d–%d of %d). Run one with `/lambda invoke NAME {\"json\": \"payload\"}`.", offset+1, end, len(fns))}}
	for _, f := range fns[offset:end] {
		line := fmt.Sprintf("*%s* · %s · %d MB · modified %s", Literal(f.Name), Literal(f.Runtime), f.MemoryMB, UTC(f.LastModified))
		if f.Description != "" {
			line += "\n" + Literal(f.Description)
		}
		blocks = append(blocks, Block{Kind: Section, Text: line})
	}
	if end < len(fns) {
		blocks = append(blocks, Block{Kind: Actions, ID: "page:lambda", Buttons: []Button{{
			Text: fmt.Sprintf("Next page (%d–%d)", end+1, min(end+PageSize*2, len(fns))), ActionID: ActionPage,
			Value: fmt.Sprintf("lambda||%d", end),
		}}})
	}
	return Message{Text: fmt.Sprintf("Lambda functions %d–%d of %d", offset+1, end, len(fns)), Blocks: blocks}
}

// Invoked is the channel message that opens an invocation's thread.
func Invoked(user, function string, async bool) Message {
	how := "invoked"
	if async {
		how = "invoked asynchronously"
	}
	return Plain(fmt.Sprintf(":zap: %s %s `%s`.", User(user), how, function))
}

// maxInline is how much result text goes into a message; more is uploaded
// as a file so nothing is cut.
const maxInline = 2800

// InvokeResult renders a synchronous invocation's outcome. The second value
// is the full text to upload as a file when it is too long for a message
// ("" when it fits).
func InvokeResult(function string, res computebot.InvocationResult) (Message, string) {
	var head strings.Builder
	if res.FunctionError != "" {
		fmt.Fprintf(&head, ":x: `%s` returned status %d with FunctionError `%s`.", function, res.StatusCode, res.FunctionError)
	} else {
		fmt.Fprintf(&head, ":white_check_mark: `%s` returned status %d.", function, res.StatusCode)
	}
	result := Literal(prettyJSON(res.Payload))
	logTail := Literal(lastLines(res.LogTail, 15))
	body := "*Result*\n```" + orNone(result) + "```"
	if logTail != "" {
		body += "\n*Log (last lines)*\n```" + logTail + "```"
	}
	if len(body) <= maxInline {
		return Message{Text: head.String(), Blocks: []Block{{Kind: Section, Text: head.String()}, {Kind: Section, Text: body}}}, ""
	}
	full := "Result:\n" + orNone(result) + "\n\nLog:\n" + Literal(res.LogTail)
	msg := head.String() + " The output is too long for a message, so it is attached as a file."
	return Plain(msg), full
}

// InvokeAccepted is the reply to an asynchronous invocation.
func InvokeAccepted(function string, res computebot.InvocationResult) Message {
	return Plain(fmt.Sprintf(":inbox_tray: Lambda accepted the asynchronous invocation of `%s` (status %d, request ID `%s`).", function, res.StatusCode, Literal(res.RequestID)))
}

// InvokeFailed is the reply when the invocation itself failed.
func InvokeFailed(function, why string) Message {
	return Plain(fmt.Sprintf(":x: Invoking `%s` failed: %s", function, Literal(why)))
}

func prettyJSON(b []byte) string {
	if len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

func orNone(s string) string {
	if s == "" {
		return "(no result)"
	}
	return s
}

// FunctionsListFailed answers /lambda list when Lambda could not list.
func FunctionsListFailed(why string) Message {
	return Plain("I could not list Lambda functions: " + Literal(why))
}

// FunctionNotFound is the answer for a function that does not exist, and
// for one outside the allowlist: the same words, so the allowlist leaks
// nothing.
func FunctionNotFound(name string) Message {
	return Plain(fmt.Sprintf("Lambda function `%s` does not exist (or is not available through computebot). `/lambda list` shows the ones you can invoke.", name))
}

// InvokeNeedsApproval answers an invocation that turned out to need an
// approver after it was accepted (the rules changed in between).
func InvokeNeedsApproval(function string) Message {
	return Plain(fmt.Sprintf("`%s` needs an approver; run `/lambda invoke %s …` to request it.", function, function))
}

// InvokeTimedOut is why a synchronous invocation failed when it outlived
// lambda.timeout.
func InvokeTimedOut(limit time.Duration) string {
	return fmt.Sprintf("it did not finish within %s (lambda.timeout). It may still be running: check its logs before invoking it again.", limit)
}

// InvokeInterrupted is why an approved invocation that was in flight when
// the bot stopped is not run again.
func InvokeInterrupted() string {
	return "the bot restarted while this invocation was running, so its result is unknown. Check the function's logs before invoking it again."
}

// UploadFailed follows a result whose full output could not be attached.
func UploadFailed() Message {
	return Plain("I could not attach the full output (file upload failed); it is in the function's CloudWatch logs.")
}

// OutputFileName names the file a long result is uploaded as.
func OutputFileName(function string, at time.Time) string {
	return fmt.Sprintf("%s-%s.txt", function, at.UTC().Format("20060102T150405Z"))
}

// OutputFileTitle is the title of that file.
func OutputFileTitle(function string) string { return "Output of " + function }
