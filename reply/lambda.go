package reply

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

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
		line := fmt.Sprintf("*%s* · %s · %d MB · modified %s", f.Name, f.Runtime, f.MemoryMB, f.LastModified.UTC().Format("2006-01-02 15:04 UTC"))
		if f.Description != "" {
			line += "\n" + f.Description
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
	return Plain(fmt.Sprintf(":zap: <@%s> %s `%s`.", user, how, function))
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
	result := prettyJSON(res.Payload)
	logTail := lastLines(res.LogTail, 15)
	body := "*Result*\n```" + orNone(result) + "```"
	if logTail != "" {
		body += "\n*Log (last lines)*\n```" + logTail + "```"
	}
	if len(body) <= maxInline {
		return Message{Text: head.String(), Blocks: []Block{{Kind: Section, Text: head.String()}, {Kind: Section, Text: body}}}, ""
	}
	full := "Result:\n" + orNone(result) + "\n\nLog:\n" + res.LogTail
	msg := head.String() + " The output is too long for a message, so it is attached as a file."
	return Plain(msg), full
}

// InvokeAccepted is the reply to an asynchronous invocation.
func InvokeAccepted(function string, res computebot.InvocationResult) Message {
	return Plain(fmt.Sprintf(":inbox_tray: Lambda accepted the asynchronous invocation of `%s` (status %d, request ID `%s`).", function, res.StatusCode, res.RequestID))
}

// InvokeFailed is the reply when the invocation itself failed.
func InvokeFailed(function, why string) Message {
	return Plain(fmt.Sprintf(":x: Invoking `%s` failed: %s", function, why))
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
