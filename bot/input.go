package bot

import (
	"regexp"
	"strings"
)

// Slack delivers command and message text in its own format: &, < and >
// escaped, anything that looks like a URL or domain turned into a link, and
// a mention's text starting with the bot's mention. These undo that, so the
// command parser sees the text as it was typed.

var (
	leadingMentionRE = regexp.MustCompile(`^\s*<@[A-Z0-9]+(\|[^<>]*)?>[\s:,]*`)
	linkRE           = regexp.MustCompile(`<((?:https?://|mailto:)[^<>|]*)(?:\|([^<>]*))?>`)
	// Slack escapes these three in message and command text, and only these.
	unescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")
)

// typedText is a slash command's text as it was typed.
func typedText(s string) string { return unescaper.Replace(unlink(s)) }

// mentionText is an app mention's text as it was typed after the leading
// @-mentions (the bot's, and any others before the command).
func mentionText(s string) string {
	for {
		loc := leadingMentionRE.FindStringIndex(s)
		if loc == nil {
			break
		}
		s = s[loc[1]:]
	}
	return typedText(s)
}

// unlink turns the links Slack makes back into the text that was typed:
// "<http://foo.io|foo.io>" → "foo.io". It must run before unescaping.
func unlink(s string) string {
	if !strings.Contains(s, "<") {
		return s
	}
	return linkRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := linkRE.FindStringSubmatch(m)
		if sub[2] != "" {
			return sub[2]
		}
		return sub[1]
	})
}
