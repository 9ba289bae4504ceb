package commands

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of /computebot audit --since.
const (
	DefaultAuditSince = 7 * 24 * time.Hour
	MaxAuditSince     = 90 * 24 * time.Hour
)

// userIDRE is a Slack user ID: U… or W… (Enterprise Grid), upper-case
// letters and digits.
var userIDRE = regexp.MustCompile(`^[UW][A-Z0-9]{1,20}$`)

// IsUserID reports whether s is shaped like a Slack user ID (U… or W…).
func IsUserID(s string) bool { return userIDRE.MatchString(s) }

func buildAudit(p *parsed) Result {
	d := p.def
	a := &Audit{Since: DefaultAuditSince}
	if len(p.args) > 0 {
		arg := strings.TrimFunc(p.args[0], isSpace)
		switch id := normalizeAWSID(arg, IsInstanceID); {
		case IsInstanceID(id):
			a.Instance = id
		case IsUserID(strings.TrimPrefix(arg, "@")):
			// A person picked from Slack's list arrives as @ and their
			// member ID (the adapter turns Slack's mention syntax into it).
			a.User = strings.TrimPrefix(arg, "@")
		case strings.HasPrefix(arg, "@"):
			return replyf(withUsage(d, fmt.Sprintf("%s is a name, and I need to know who exactly: pick the person from Slack's list as you type @, or give their member ID (U…, in their profile under ⋮ → Copy member ID).", code(arg))))
		case strings.HasPrefix(strings.ToLower(arg), "i-"):
			return replyf(withUsage(d, fmt.Sprintf("%s is not an instance ID (i- followed by 8 or 17 hex digits).", code(arg))))
		default:
			return replyf(withUsage(d, fmt.Sprintf("%s is neither an instance ID (i-…) nor a person: give an instance ID, or pick a person from Slack's list as you type @.", code(arg))))
		}
	}
	if v, ok := p.flags["since"]; ok {
		since, ok := parseSince(v)
		if !ok {
			return replyf(withUsage(d, fmt.Sprintf("--since is how far back to look, from 1m to %s, such as 36h or 30d; not %s.", days(MaxAuditSince), code(v))))
		}
		a.Since = since
	}
	return run(a)
}

// parseSince parses how far back to look: a Go duration ("36h", "90m",
// "1h30m") or whole days ("7d"), from a minute to MaxAuditSince.
func parseSince(s string) (time.Duration, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || utf8.RuneCountInString(s) > 20 {
		return 0, false
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > int(MaxAuditSince/(24*time.Hour)) {
			return 0, false
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, false
		}
	}
	if d < time.Minute || d > MaxAuditSince {
		return 0, false
	}
	return d, true
}

// days renders a whole number of days ("7d"), else the duration.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
