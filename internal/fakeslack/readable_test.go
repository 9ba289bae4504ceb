package fakeslack

import (
	"testing"
	"time"
)

func TestReadable(t *testing.T) {
	names := map[string]string{"UANA": "ana"}
	for in, want := range map[string]string{
		"<@UANA> requests 1 × `t2.micro`":                        "@ana requests 1 × `t2.micro`",
		"<@UBO|bo> and <!subteam^SPLAT|platform>":                "@bo and @platform",
		"ends <!date^1796166042^{date_short_pretty}|2026-12-01>": "ends 2026-12-01",
		"<https://example.com|docs> in <#C1|general> :rocket:":   "docs (https://example.com) in #general 🚀",
		"```a &lt;b&gt; &amp; c```":                              "a <b> & c",
	} {
		if got := Readable(in, names); got != want {
			t.Errorf("Readable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRender(t *testing.T) {
	names := map[string]string{"UANA": "ana"}
	plain := Style{}
	tags := Style{Bold: [2]string{"<b>", "</b>"}, Italic: [2]string{"<i>", "</i>"}, Strike: [2]string{"<s>", "</s>"}, Code: [2]string{"<c>", "</c>"}}
	for _, tc := range []struct {
		in, plain, tags string
	}{
		{"*AMI* `ami-0123` · *Lease* 8 h", "AMI ami-0123 · Lease 8 h", "<b>AMI</b> <c>ami-0123</c> · <b>Lease</b> 8 h"},
		{"<@UANA>, *ana-notebook* (`i-0de`) looks idle", "@ana, ana-notebook (i-0de) looks idle", "@ana, <b>ana-notebook</b> (<c>i-0de</c>) looks idle"},
		{"_italic_ and ~gone~ :zzz:", "italic and gone 💤", "<i>italic</i> and <s>gone</s> 💤"},
		// Markers inside words, alone, or unclosed on their line stay text.
		{"snake_case_name 2*3*4 a * b", "snake_case_name 2*3*4 a * b", "snake_case_name 2*3*4 a * b"},
		{"*open\nclose*", "*open\nclose*", "*open\nclose*"},
		// Nothing is formatted inside code; escapes are undone everywhere.
		{"`*not bold* &lt;x&gt;` &amp; *b*", "*not bold* <x> & b", "<c>*not bold* <x></c> & <b>b</b>"},
		{"run:\n```ssh -i k.pem ec2-user@1.2.3.4\nexit```\ndone", "run:\nssh -i k.pem ec2-user@1.2.3.4\nexit\ndone", "run:\n<c>ssh -i k.pem ec2-user@1.2.3.4</c>\n<c>exit</c>\ndone"},
		{"*Public IP:* `54.12.34.56`", "Public IP: 54.12.34.56", "<b>Public IP:</b> <c>54.12.34.56</c>"},
		{"at 15:01:00 UTC", "at 15:01:00 UTC", "at 15:01:00 UTC"},
	} {
		if got := Render(tc.in, names, plain); got != tc.plain {
			t.Errorf("Render(%q, plain) = %q, want %q", tc.in, got, tc.plain)
		}
		if got := Render(tc.in, names, tags); got != tc.tags {
			t.Errorf("Render(%q, tags) = %q, want %q", tc.in, got, tc.tags)
		}
	}

	at := time.Unix(1796166042, 0)
	dated := Style{Date: func(d time.Time, fallback string) string {
		if !d.Equal(at) {
			t.Errorf("date %v, want %v", d, at)
		}
		return fallback + " (soon)"
	}}
	if got := Render("stops <!date^1796166042^{time}|15:01 UTC>", nil, dated); got != "stops 15:01 UTC (soon)" {
		t.Errorf("Render with Date = %q", got)
	}
}
