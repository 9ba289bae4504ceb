package bot

import (
	"regexp"
	"strings"
)

// Slack delivers command and message text in its own format: &, < and >
// escaped, anything that looks like a URL or domain turned into a link, and
// a person picked as one types @ written as <@U…|name>, and a mention's text
// starting with the bot's mention. These undo that, so the command parser
// sees the text as it was typed, and no Slack syntax.

var (
	leadingMentionRE = regexp.MustCompile(`^\s*<@[A-Z0-9]+(\|[^<>]*)?>[\s:,]*`)
	linkRE           = regexp.MustCompile(`<((?:https?://|mailto:)[^<>|]*)(?:\|([^<>]*))?>`)
	// userMentionRE is a person picked from Slack's list as one types @:
	// <@U0123ABC>, or with its label <@U0123ABC|Ana López> (a display
	// name, which may have spaces).
	userMentionRE = regexp.MustCompile(`<@([UW][A-Z0-9]{1,20})(?:\|[^<>]*)?>`)
	// Slack escapes these three in message and command text, and only these.
	unescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")
)

// typedText is a slash command's text as it was typed, but for the people
// picked from Slack's list, which become @ and their member ID
// ("<@U0123ABC|ana>" → "@U0123ABC"): one word, whatever their name.
func typedText(s string) string { return unescaper.Replace(unmention(unlink(s))) }

// unmention turns user mentions into @ and the member ID. It must run
// before unescaping, like unlink.
func unmention(s string) string {
	if !strings.Contains(s, "<@") {
		return s
	}
	return userMentionRE.ReplaceAllString(s, "@$1")
}

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
