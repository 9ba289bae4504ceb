package bot

import "testing"

func TestTypedText(t *testing.T) {
	cases := []struct{ in, mention, slash string }{
		{"<@U0BOT> launch t2.micro", "launch t2.micro", "<@U0BOT> launch t2.micro"},
		{"<@U0BOT|computebot>: launch t2.micro", "launch t2.micro", "<@U0BOT|computebot>: launch t2.micro"},
		{"<@U0BOT> <@U0OTHER> help", "help", "<@U0BOT> <@U0OTHER> help"},
		{`launch t2.micro --reason "a &lt;b&gt; &amp;amp; c"`, `launch t2.micro --reason "a <b> &amp; c"`, `launch t2.micro --reason "a <b> &amp; c"`},
		{"launch t2.micro --name <http://model.ai|model.ai>", "launch t2.micro --name model.ai", "launch t2.micro --name model.ai"},
		{"see <https://example.com/x>", "see https://example.com/x", "see https://example.com/x"},
		{`lambda invoke report {"html": "&lt;b&gt;"}`, `lambda invoke report {"html": "<b>"}`, `lambda invoke report {"html": "<b>"}`},
		{"&gt; launch t2.micro", "> launch t2.micro", "> launch t2.micro"},
		{"<@U0BOT>", "", "<@U0BOT>"},
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
