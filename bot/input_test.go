package bot

import (
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

func TestTypedText(t *testing.T) {
	cases := []struct{ in, mention, slash string }{
		{"<@U0BOT> launch t2.micro", "launch t2.micro", "@U0BOT launch t2.micro"},
		{"<@U0BOT|computebot>: launch t2.micro", "launch t2.micro", "@U0BOT: launch t2.micro"},
		{"<@U0BOT> <@U0OTHER> help", "help", "@U0BOT @U0OTHER help"},
		{"audit <@U0123ABC|Ana María López> --since 30d", "audit @U0123ABC --since 30d", "audit @U0123ABC --since 30d"},
		{"<@U0BOT> audit <@W0123ABC>", "audit @W0123ABC", "@U0BOT audit @W0123ABC"},
		{"audit <@ana>", "audit <@ana>", "audit <@ana>"},                      // not a member ID: left as typed
		{"audit &lt;@U0123ABC&gt;", "audit <@U0123ABC>", "audit <@U0123ABC>"}, // typed literally, escaped by Slack
		{"audit <#C0123|general>", "audit <#C0123|general>", "audit <#C0123|general>"},
		{`launch t2.micro --reason "a &lt;b&gt; &amp;amp; c"`, `launch t2.micro --reason "a <b> &amp; c"`, `launch t2.micro --reason "a <b> &amp; c"`},
		{"launch t2.micro --name <http://model.ai|model.ai>", "launch t2.micro --name model.ai", "launch t2.micro --name model.ai"},
		{"see <https://example.com/x>", "see https://example.com/x", "see https://example.com/x"},
		{`lambda invoke report {"html": "&lt;b&gt;"}`, `lambda invoke report {"html": "<b>"}`, `lambda invoke report {"html": "<b>"}`},
		{"&gt; launch t2.micro", "> launch t2.micro", "> launch t2.micro"},
		{"<@U0BOT>", "", "@U0BOT"},
	}
	for _, tc := range cases {
		if got := mentionText(tc.in); got != tc.mention {
			t.Errorf("mentionText(%q) = %q, want %q", tc.in, got, tc.mention)
		}
		if got := typedText(tc.in); got != tc.slash {
			t.Errorf("typedText(%q) = %q, want %q", tc.in, got, tc.slash)
		}
	}
}

// TestFatalTokenMessages: each names the token, the code and what to do;
// a missing scope asks for the scope, not a new token.
func TestFatalTokenMessages(t *testing.T) {
	cases := []struct {
		token string
		err   error
		has   []string
		not   []string
	}{
		{"SLACK_BOT_TOKEN", slack.SlackErrorResponse{Err: "invalid_auth"}, []string{"SLACK_BOT_TOKEN", "invalid_auth", "create a new bot token"}, nil},
		{"SLACK_APP_TOKEN", slack.SlackErrorResponse{Err: "token_revoked"}, []string{"SLACK_APP_TOKEN", "token_revoked", "connections:write"}, nil},
		{"SLACK_BOT_TOKEN", slack.SlackErrorResponse{Err: "missing_scope", Needed: "channels:history"},
			[]string{"SLACK_BOT_TOKEN", "missing_scope", "channels:history", "reinstall"}, []string{"app token", "create a new bot token"}},
		{"SLACK_APP_TOKEN", slack.SlackErrorResponse{Err: "missing_scope"}, []string{"SLACK_APP_TOKEN", "connections:write"}, nil},
	}
	for _, tc := range cases {
		f := fatal(tc.token, tc.err)
		if f == nil {
			t.Fatalf("fatal(%s, %v) = nil", tc.token, tc.err)
		}
		msg := f.Error()
		for _, h := range tc.has {
			if !strings.Contains(msg, h) {
				t.Errorf("%q lacks %q", msg, h)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(msg, n) {
				t.Errorf("%q says %q", msg, n)
			}
		}
	}
	if f := fatal("SLACK_BOT_TOKEN", slack.SlackErrorResponse{Err: "internal_error"}); f != nil {
		t.Errorf("internal_error is not fatal: %v", f)
	}
}
