package bot

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/reply"
)

var update = flag.Bool("update", false, "rewrite golden files")

func goldenRequest() *computebot.Request {
	created := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	return &computebot.Request{
		ID: "R-7K2F9QXM", Requester: "UANA", ChannelID: "CDATA", MessageTS: "1700000000.000100",
		State: computebot.RequestPending, CreatedAt: created, ApprovalExpiresAt: created.Add(24 * time.Hour),
		Launch: &computebot.LaunchRequest{
			InstanceType: "t2.micro", ImageRef: "ami-0123456789abcdef0", ImageID: "ami-0123456789abcdef0",
			ImageName: "al2023-ami-2023.6.20241010.0-kernel-6.1-x86_64", Name: "feature-eng",
			Reason: "feature engineering", Lease: 4 * time.Hour, VCPUs: 1, MemoryMiB: 1024,
			PricePerHour: 0.0116, PriceKnown: true,
		},
	}
}

// TestGoldenBlocks pins the Block Kit users see. Run with -update after an
// intended change and review the diff.
func TestGoldenBlocks(t *testing.T) {
	pending := goldenRequest()
	approved := goldenRequest()
	approved.State, approved.DecidedBy, approved.DecidedAt = computebot.RequestLaunched, "UBO", approved.CreatedAt.Add(time.Minute)
	denied := goldenRequest()
	denied.State, denied.DecidedBy = computebot.RequestDenied, "UBO"
	expired := goldenRequest()
	expired.State = computebot.RequestExpired
	auto := goldenRequest()
	auto.State, auto.AutoApproved, auto.Launch.PriceKnown = computebot.RequestApproved, true, false
	ready := goldenRequest()
	ready.State, ready.DecidedBy, ready.DecidedAt = computebot.RequestDone, "UBO", ready.CreatedAt.Add(time.Minute)
	ready.Launch.InstanceID, ready.Launch.PublicIP, ready.Launch.PrivateIP = "i-0123456789abcdef0", "54.12.34.56", "10.0.1.5"
	private := *ready
	privateLaunch := *ready.Launch
	privateLaunch.PublicIP = ""
	private.Launch = &privateLaunch

	cases := map[string]reply.Message{
		"request_pending":  reply.RequestMessage(pending),
		"request_approved": reply.RequestMessage(approved),
		"request_denied":   reply.RequestMessage(denied),
		"request_expired":  reply.RequestMessage(expired),
		"request_auto":     reply.RequestMessage(auto),
		"approvers_note":   reply.ApproversNote(pending, []string{"UBO", "SPLATFORM"}, false),
		"reason_escaped":   reply.Plain("Reason: " + "<!channel> & <@U0EVIL> typed by a person"),
		"ready_public":     reply.Ready(ready, "ec2-user", "data-science"),
		"ready_private":    reply.Ready(&private, "ubuntu", "data-science"),
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false) // keep <@U…> mentions readable in review
			enc.SetIndent("", "  ")
			if err := enc.Encode(map[string]any{"text": Text(msg.Text), "blocks": Blocks(msg)}); err != nil {
				t.Fatal(err)
			}
			got := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
			path := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./bot/ -run TestGoldenBlocks -update to create it)", err)
			}
			if string(want) != string(got)+"\n" {
				t.Errorf("%s differs from golden file:\n got: %s\nwant: %s", name, got, want)
			}
		})
	}
}

// TestText: people, groups and dates become Slack syntax; everything typed
// is escaped, so it can never become a mention or an @channel.
func TestText(t *testing.T) {
	at := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	cases := []struct{ in, want string }{
		{reply.User("UANA") + " asks", "<@UANA> asks"},
		{"approvers: " + reply.Mentions([]string{"UBO", "SPLATFORM"}), "approvers: <@UBO>, <!subteam^SPLATFORM>"},
		{"ends " + reply.Date(at), "ends <!date^" + fmt.Sprint(at.Unix()) + "^{date_short_pretty} at {time}|2026-11-28 09:30 UTC>"},
		{"<!channel> & <@U0EVIL>", "&lt;!channel&gt; &amp; &lt;@U0EVIL&gt;"},
		{"*bold* `code`", "*bold* `code`"},
		{"\uE000ubad id\uE001", "ubad id"},
	}
	for _, tc := range cases {
		if got := Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClipMrkdwn(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 5, "abcd…"},
		{"ab &amp; cd", 6, "ab …"},
		{"ab <@UANA> cd", 7, "ab …"},
		{"ab <@UANA> cd", 12, "ab <@UANA> …"},
		{"x &amp;", 7, "x &amp;"},
	}
	for _, tc := range cases {
		if got := clipMrkdwn(tc.in, tc.n); got != tc.want {
			t.Errorf("clipMrkdwn(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
