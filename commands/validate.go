package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits checked by the parser.
const (
	MinHours        = 1         // shortest lease / extension, in hours
	MaxHours        = 720       // longest lease / extension the syntax allows (30 days)
	MaxNameLen      = 128       // --name, in characters
	MaxReasonLen    = 500       // --reason, in characters
	MaxTargetLen    = 256       // an instance name given as a target (EC2's tag value limit)
	MaxPayloadBytes = 256 << 10 // a Lambda payload: 256 KiB
)

var (
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	instanceIDRE   = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	amiIDRE        = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	// An SSM parameter name (optionally with :version or :label), as EC2
	// accepts after "resolve:ssm:".
	ssmParamRE = regexp.MustCompile(`^/?[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*(:[A-Za-z0-9_.\-]+)?$`)
	// Lambda's FunctionName pattern: a name, a partial ARN or a full ARN,
	// optionally with a version or alias.
	functionRE = regexp.MustCompile(`^(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?$`)
)

// IsInstanceTypeName reports whether s is shaped like an EC2 instance type
// name, family.size in lower case: t2.micro, g4dn.xlarge, m7i-flex.large,
// u-6tb1.112xlarge. It does not check that the type exists.
func IsInstanceTypeName(s string) bool {
	return len(s) <= 64 && instanceTypeRE.MatchString(s)
}

// IsInstanceID reports whether s is an EC2 instance ID: "i-" followed by 8
// or 17 lower-case hex digits.
func IsInstanceID(s string) bool { return instanceIDRE.MatchString(s) }

// IsAMIRef reports whether s names an image the way a launch accepts it: an
// AMI ID ("ami-" followed by 8 or 17 lower-case hex digits) or an SSM
// parameter reference ("resolve:ssm:/aws/service/…").
func IsAMIRef(s string) bool {
	if amiIDRE.MatchString(s) {
		return true
	}
	p, ok := strings.CutPrefix(s, "resolve:ssm:")
	return ok && len(p) <= 2048 && ssmParamRE.MatchString(p)
}

// IsPresetName reports whether s can name an image preset (launch.images):
// 1 to 32 lower-case letters, digits, - and _, starting with a letter.
func IsPresetName(s string) bool { return presetRE.MatchString(s) }

var presetRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// normalizeAWSID lower-cases s when it is an AWS ID typed in upper case
// ("I-0ABC…" → "i-0abc…"); names are left alone.
func normalizeAWSID(s string, valid func(string) bool) string {
	if l := strings.ToLower(s); valid(l) {
		return l
	}
	return s
}

// parseHours parses a whole number of hours in [MinHours, MaxHours]; a
// trailing "h" is accepted ("4h").
func parseHours(s string) (int, bool) {
	t := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "h")
	if t == "" || len(t) > 6 {
		return 0, false
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < MinHours || n > MaxHours {
		return 0, false
	}
	return n, true
}

// printable reports whether every rune of s is printable; when allowNewlines
// is set, newlines and tabs are allowed too.
func printable(s string, allowNewlines bool) bool {
	for _, r := range s {
		if r == utf8.RuneError {
			return false
		}
		if allowNewlines && (r == '\n' || r == '\t') {
			continue
		}
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// checkTarget validates an instance target (an ID or a name) and returns it
// normalised, or a reply.
func checkTarget(s string) (string, string) {
	id := normalizeAWSID(s, IsInstanceID)
	if IsInstanceID(id) {
		return id, ""
	}
	bad := strings.HasPrefix(strings.ToLower(s), "i-") ||
		strings.TrimSpace(s) == "" ||
		utf8.RuneCountInString(s) > MaxTargetLen ||
		!printable(s, false)
	if bad {
		return "", fmt.Sprintf("%s is not an instance ID (i- followed by 8 or 17 hex digits) or name.", code(s))
	}
	return s, ""
}

// checkPayload checks a Lambda payload and returns the text to send, or a
// reply naming the problem. Slack's smart quotes are turned into straight
// ones when that is what makes the payload valid JSON.
func checkPayload(raw string) (string, string) {
	if raw == "" {
		return "", ""
	}
	if len(raw) > MaxPayloadBytes {
		return "", fmt.Sprintf("The JSON payload is %s; the limit is 256 KiB (%d bytes).", sizeString(len(raw)), MaxPayloadBytes)
	}
	candidates := []string{raw}
	straight := straightenQuotes(raw)
	if straight != raw {
		candidates = append(candidates, straight)
	}
	// A payload wrapped whole in quotes ('{"a":1}') is the JSON inside.
	if inner, ok := unwrapQuotes(straight); ok {
		candidates = append(candidates, inner)
	}
	for _, c := range candidates {
		if json.Valid([]byte(c)) {
			return c, ""
		}
	}
	// Report on the text the user will recognise: with smart quotes
	// straightened (one rune for one rune, so columns still match).
	return "", "invalid JSON payload " + jsonErrorWhere(straight) + "."
}

func jsonErrorWhere(s string) string {
	var v json.RawMessage
	err := json.Unmarshal([]byte(s), &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := int(se.Offset)
		if off > len(s) {
			off = len(s)
		}
		if off < 0 {
			off = 0
		}
		before := s[:off]
		line := strings.Count(before, "\n") + 1
		col := utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:])
		if off == len(s) && strings.HasSuffix(se.Error(), "end of JSON input") {
			col++ // the value stops short: point just after the text
		}
		if col < 1 {
			col = 1
		}
		return fmt.Sprintf("at line %d, column %d: %s", line, col, se.Error())
	}
	if err != nil {
		return ": " + err.Error()
	}
	return ""
}

func sizeString(n int) string {
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}

var straightener = strings.NewReplacer("“", `"`, "”", `"`, "„", `"`, "‘", "'", "’", "'")

func straightenQuotes(s string) string { return straightener.Replace(s) }

func unwrapQuotes(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return s[1 : len(s)-1], true
	}
	return "", false
}

// code formats s as inline code for a reply, shortened when long and with
// backticks that would break the formatting replaced.
func code(s string) string {
	const limit = 60
	if utf8.RuneCountInString(s) > limit {
		r := []rune(s)
		s = string(r[:limit]) + "…"
	}
	s = strings.ReplaceAll(s, "`", "'")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
	if strings.TrimSpace(s) == "" {
		return fmt.Sprintf("%q", s)
	}
	return "`" + s + "`"
}
