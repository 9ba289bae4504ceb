package reply

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/policy"
)

var (
	idleT0    = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	leaseEnd  = idleT0.Add(-10 * time.Minute)
	settledAt = idleT0.Add(31 * time.Minute)
	keptUntil = idleT0.Add(4*time.Hour + 5*time.Minute)
)

// slackText renders text as package bot does (a mention, a Slack date),
// so that tests can compare with the strings users saw before notices
// held facts.
func slackText(text string) string {
	var b strings.Builder
	for _, sp := range Spans(text) {
		switch sp.Kind {
		case SpanText:
			b.WriteString(sp.Text)
		case SpanUser:
			fmt.Fprintf(&b, "<@%s>", sp.ID)
		case SpanDate:
			b.WriteString(slackDate(sp.Time))
		}
	}
	return b.String()
}

// slackDate is what reply.SlackDate wrote into idle texts.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} at {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// rendered is a message as a reader sees it: every block's text (plain:
// users as @ID, dates in UTC) and the buttons, one per line.
func rendered(m Message) string {
	var lines []string
	for _, b := range m.Blocks {
		if b.Text != "" {
			lines = append(lines, PlainText(b.Text))
		}
		var buttons []string
		for _, btn := range b.Buttons {
			buttons = append(buttons, "["+btn.Text+"]")
		}
		if len(buttons) > 0 {
			lines = append(lines, strings.Join(buttons, " "))
		}
	}
	return strings.Join(lines, "\n")
}

func idleNotice() idle.Notice {
	return idle.Notice{
		InstanceID: "i-1", Name: "box", Owner: "UANA", Type: "t3.large", Reason: idle.ReasonIdle, Action: idle.ActionStop,
		MaxCPU: 1.23, NetworkBytes: 0.31e6, Window: time.Hour, CostPerHour: 0.0832, PriceKnown: true,
		NoticedAt: idleT0, StopAt: idleT0.Add(30 * time.Minute), State: idle.StateNoticed,
		RequestChannel: "C1", RequestThread: "1.1", Channel: "C1", TS: "2.2", Episode: "idle/i-1/1",
	}
}

func leaseNotice() idle.Notice {
	n := idleNotice()
	n.Reason, n.MaxCPU, n.NetworkBytes, n.Window, n.LeaseEnded = idle.ReasonLease, 0, 0, 0, leaseEnd
	return n
}

// with returns n changed by f.
func with(n idle.Notice, f func(*idle.Notice)) idle.Notice {
	f(&n)
	return n
}

func stopped(how idle.Settlement, by string) func(*idle.Notice) {
	return func(n *idle.Notice) {
		n.State, n.How, n.SettledBy, n.SettledAt = idle.StateStopped, how, by, settledAt
	}
}

func kept(n *idle.Notice) {
	n.State, n.How, n.SettledBy, n.SettledAt, n.KeptUntil = idle.StateKept, idle.SettledKept, "U9", idleT0.Add(5*time.Minute), keptUntil
}

func cancelled(c idle.Cancellation) func(*idle.Notice) {
	return func(n *idle.Notice) {
		n.State, n.How, n.SettledAt, n.Cancel = idle.StateCancelled, idle.SettledCancelled, settledAt, &c
	}
}

const idleHead = ":zzz: @UANA, *box* (`i-1`, `t3.large`) looks idle: max CPU 1.2 % and 0.3 MB network over the last 1 h."
const leaseHead = ":hourglass: @UANA, the lease of *box* (`i-1`, `t3.large`) ended 2026-03-02 09:50 UTC."

func TestIdleNotice(t *testing.T) {
	tests := []struct {
		name string
		n    idle.Notice
		want string // rendered
	}{
		{"idle, noticed", idleNotice(), idleHead + "\n" +
			"I will stop it 2026-03-02 10:30 UTC unless you keep it running. Its memory will not be kept (its disk is). Stopping it saves ≈ $0.0832/h.\n" +
			"[Keep running] [Stop now]"},
		{"idle, hibernates", with(idleNotice(), func(n *idle.Notice) { n.Hibernates = true }), idleHead + "\n" +
			"I will stop it 2026-03-02 10:30 UTC unless you keep it running. It will hibernate: its memory is kept, so your work is where you left it when you start it again. Stopping it saves ≈ $0.0832/h.\n" +
			"[Keep running] [Stop now]"},
		{"idle, price unknown, no name", with(idleNotice(), func(n *idle.Notice) { n.PriceKnown, n.Name = false, "" }),
			":zzz: @UANA, *i-1* (`i-1`, `t3.large`) looks idle: max CPU 1.2 % and 0.3 MB network over the last 1 h.\n" +
				"I will stop it 2026-03-02 10:30 UTC unless you keep it running. Its memory will not be kept (its disk is).\n[Keep running] [Stop now]"},
		{"lease, noticed", with(leaseNotice(), func(n *idle.Notice) { n.CostPerHour = 0.1 }), leaseHead + "\n" +
			"I will stop it 2026-03-02 10:30 UTC unless you keep it running. Its memory will not be kept (its disk is). Stopping it saves ≈ $0.10/h.\n[Keep running] [Stop now]"},
		{"lease, terminate", with(leaseNotice(), func(n *idle.Notice) { n.Action, n.PriceKnown = idle.ActionTerminate, false }), leaseHead + "\n" +
			"I will terminate it 2026-03-02 10:30 UTC unless you keep it running.\n[Keep running] [Stop now]"},
		{"lease, being extended", with(leaseNotice(), func(n *idle.Notice) { n.State, n.PriceKnown = idle.StateExtending, false }), leaseHead + "\n" +
			"I will stop it 2026-03-02 10:30 UTC unless you keep it running. Its memory will not be kept (its disk is).\n[Keep running] [Stop now]"},
		{"being stopped", with(idleNotice(), func(n *idle.Notice) {
			n.State, n.Claim = idle.StateStopping, &idle.Claim{Token: "t", At: settledAt, Prev: idle.StateNoticed}
		}), idleHead + "\nStopping it now…"},
		{"idle, kept", with(idleNotice(), kept), idleHead + "\nKept running by @U9 until 2026-03-02 14:05 UTC."},
		{"lease, kept", with(leaseNotice(), kept), leaseHead + "\nLease extended by @U9 until 2026-03-02 14:05 UTC."},
		{"idle, stopped", with(idleNotice(), stopped(idle.SettledStopped, "")), idleHead + "\nStopped 2026-03-02 10:31 UTC (idle)."},
		{"lease, stopped", with(leaseNotice(), stopped(idle.SettledStopped, "")), leaseHead + "\nStopped 2026-03-02 10:31 UTC (lease ended)."},
		{"lease, terminated", with(leaseNotice(), stopped(idle.SettledTerminated, "")), leaseHead + "\nTerminated 2026-03-02 10:31 UTC (lease ended)."},
		{"Stop now", with(idleNotice(), stopped(idle.SettledStopNow, "U9")), idleHead + "\nStopped by @U9 2026-03-02 10:31 UTC (Stop now)."},
		{"cancelled", with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelStopped})), idleHead + "\nCancelled: `i-1` was stopped meanwhile."},
		{"no owner", with(idleNotice(), func(n *idle.Notice) { n.Owner = ""; stopped(idle.SettledStopped, "")(n) }),
			":zzz: *box* (`i-1`, `t3.large`) looks idle: max CPU 1.2 % and 0.3 MB network over the last 1 h.\nStopped 2026-03-02 10:31 UTC (idle)."},
		// Records from before How and Cancel: a generic outcome line.
		{"old stopped", with(idleNotice(), func(n *idle.Notice) { n.State, n.SettledAt = idle.StateStopped, settledAt }), idleHead + "\nStopped 2026-03-02 10:31 UTC."},
		{"old cancelled", with(idleNotice(), func(n *idle.Notice) { n.State, n.SettledAt = idle.StateCancelled, settledAt }), idleHead + "\nCancelled 2026-03-02 10:31 UTC."},
		{"old cancelled, no time", with(idleNotice(), func(n *idle.Notice) { n.State = idle.StateCancelled }), idleHead + "\nCancelled."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := IdleNotice(tt.n)
			if got := rendered(m); got != tt.want {
				t.Errorf("rendered:\n%s\nwant:\n%s", got, tt.want)
			}
			head, _, _ := strings.Cut(tt.want, "\n")
			why := " (idle)"
			if tt.n.Reason == idle.ReasonLease {
				why = " (lease expired)"
			}
			wantText := head + why
			if tt.n.State != idle.StateNoticed && tt.n.State != idle.StateExtending {
				wantText += ": " + tt.want[strings.LastIndex(tt.want, "\n")+1:]
			}
			if got := PlainText(m.Text); got != wantText {
				t.Errorf("text %q, want %q", got, wantText)
			}
			noSlackSyntax(t, m)
		})
	}
}

// The buttons carry the instance.
func TestIdleNoticeButtons(t *testing.T) {
	m := IdleNotice(idleNotice())
	b := m.Blocks[2]
	if b.Kind != Actions || b.ID != "notice:i-1" || len(b.Buttons) != 2 ||
		b.Buttons[0].ActionID != ActionKeepRunning || b.Buttons[0].Value != "i-1" || b.Buttons[0].Style != Primary ||
		b.Buttons[1].ActionID != ActionStopNow || b.Buttons[1].Value != "i-1" || b.Buttons[1].Style != Danger {
		t.Errorf("buttons %+v", b)
	}
	// The owner is an element, not chat syntax.
	spans := Spans(m.Blocks[0].Text)
	if len(spans) < 2 || spans[1].Kind != SpanUser || spans[1].ID != "UANA" {
		t.Errorf("spans %+v", spans)
	}
}

func TestNoticeAnnouncement(t *testing.T) {
	tests := []struct {
		name string
		n    idle.Notice
		want string // plain
	}{
		{"idle, stopped", with(idleNotice(), stopped(idle.SettledStopped, "")), "stopped `i-1` (idle): max CPU 1.2 % and 0.3 MB network over the last 1 h."},
		{"lease, stopped", with(leaseNotice(), stopped(idle.SettledStopped, "")), "stopped `i-1` (lease ended 2026-03-02 09:50 UTC)."},
		{"lease, terminated", with(leaseNotice(), stopped(idle.SettledTerminated, "")), "terminated `i-1` (lease ended 2026-03-02 09:50 UTC)."},
		{"Stop now", with(idleNotice(), stopped(idle.SettledStopNow, "U9")), "stopped `i-1` (Stop now by @U9)."},
		{"stopped meanwhile", with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelStopped})), "cancelled: `i-1` was stopped meanwhile."},
		{"terminated meanwhile", with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelTerminated})), "cancelled: `i-1` was terminated meanwhile."},
		{"other state", with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelState, State: "pending"})), "cancelled: `i-1` is pending now."},
		{"no lease", with(leaseNotice(), cancelled(idle.Cancellation{Reason: idle.CancelNoLease})), "cancelled: `i-1` no longer has a lease."},
		{"lease extended", with(leaseNotice(), cancelled(idle.Cancellation{Reason: idle.CancelLeaseExtended, LeaseUntil: idleT0.Add(5 * time.Hour)})),
			"cancelled: the lease of `i-1` was extended until 2026-03-02 15:00 UTC."},
		{"activity resumed", with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelActive, MaxCPU: 43, NetworkBytes: 120.5e6, Window: time.Hour})),
			"cancelled: activity resumed: max CPU 43.0 % and 120.5 MB network over the last 1 h."},
		{"incomplete metrics", with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelIncomplete, Periods: 12, CPUPeriods: 12, NetPeriods: 11, Window: time.Hour})),
			"cancelled: its metrics are incomplete (12 of 12 periods with CPU data, 11 with network data, over the last 1 h), so it may be busy."},
		{"policy refused", with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelRefused, Refusal: policy.RefuseNotManaged})),
			"cancelled: not stopped: policy refused to stop i-1: not launched by computebot."},
		{"policy check failed", with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelRefused, Refusal: policy.RefuseInternal})),
			"cancelled: not stopped: policy refused to stop i-1: internal error (details are in the bot's log)."},
		{"stop failed", with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelStopFailed, ErrorCode: "UnauthorizedOperation", ErrorMessage: "computebot may not stop instances"})),
			"cancelled: could not stop `i-1`: computebot may not stop instances."},
		{"terminate failed", with(with(leaseNotice(), func(n *idle.Notice) { n.Action = idle.ActionTerminate }),
			cancelled(idle.Cancellation{Reason: idle.CancelStopFailed, ErrorMessage: "AWS refused TerminateInstances: UnauthorizedOperation."})),
			"cancelled: could not terminate `i-1`: AWS refused TerminateInstances: UnauthorizedOperation."},
		{"old stopped", with(idleNotice(), func(n *idle.Notice) { n.State = idle.StateStopped }), "stopped `i-1`."},
		{"old cancelled", with(idleNotice(), func(n *idle.Notice) { n.State = idle.StateCancelled }), "cancelled: `i-1` was not stopped."},
		{"noticed", idleNotice(), ""},
		{"kept", with(idleNotice(), kept), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NoticeAnnouncement(tt.n)
			if got := PlainText(m.Text); got != tt.want {
				t.Errorf("announcement %q, want %q", got, tt.want)
			}
			if tt.want == "" && len(m.Blocks) != 0 {
				t.Errorf("blocks for nothing to announce: %+v", m.Blocks)
			}
			if tt.want != "" {
				if len(m.Blocks) != 1 || m.Blocks[0].Text != m.Text {
					t.Errorf("blocks %+v", m.Blocks)
				}
				// The cancelled notice's outcome says the same.
				if tt.n.State == idle.StateCancelled && tt.n.Cancel != nil {
					if got, want := PlainText(noticeOutcome(tt.n)), "C"+strings.TrimPrefix(tt.want, "c"); got != want {
						t.Errorf("outcome %q, want %q", got, want)
					}
				}
			}
			noSlackSyntax(t, m)
		})
	}
}

// Rendered for Slack, the texts are the ones users saw before notices held
// facts, to the byte.
func TestIdleWordsUnchangedInSlack(t *testing.T) {
	stopNow := with(idleNotice(), stopped(idle.SettledStopNow, "U9"))
	keptIdle := with(idleNotice(), kept)
	for _, tt := range []struct{ got, want string }{
		{slackText(IdleNotice(idleNotice()).Blocks[0].Text),
			":zzz: <@UANA>, *box* (`i-1`, `t3.large`) looks idle: max CPU 1.2 % and 0.3 MB network over the last 1 h."},
		{slackText(IdleNotice(idleNotice()).Blocks[1].Text),
			"I will stop it " + slackDate(idleT0.Add(30*time.Minute)) + " unless you keep it running. Its memory will not be kept (its disk is). Stopping it saves ≈ $0.0832/h."},
		{slackText(IdleNotice(leaseNotice()).Blocks[0].Text),
			":hourglass: <@UANA>, the lease of *box* (`i-1`, `t3.large`) ended " + slackDate(leaseEnd) + "."},
		{slackText(noticeOutcome(keptIdle)), "Kept running by <@U9> until " + slackDate(keptUntil) + "."},
		{slackText(noticeOutcome(with(leaseNotice(), kept))), "Lease extended by <@U9> until " + slackDate(keptUntil) + "."},
		{slackText(noticeOutcome(stopNow)), "Stopped by <@U9> " + slackDate(settledAt) + " (Stop now)."},
		{slackText(noticeOutcome(with(idleNotice(), stopped(idle.SettledStopped, "")))), "Stopped " + slackDate(settledAt) + " (idle)."},
		{slackText(NoticeAnnouncement(stopNow).Text), "stopped `i-1` (Stop now by <@U9>)."},
		{slackText(NoticeAnnouncement(with(leaseNotice(), stopped(idle.SettledTerminated, ""))).Text), "terminated `i-1` (lease ended " + slackDate(leaseEnd) + ")."},
		{slackText(IdleNotice(keptIdle).Text), ":zzz: <@UANA>, *box* (`i-1`, `t3.large`) looks idle: max CPU 1.2 % and 0.3 MB network over the last 1 h. (idle): " +
			"Kept running by <@U9> until " + slackDate(keptUntil) + "."},
	} {
		if tt.got != tt.want {
			t.Errorf("got  %q\nwant %q", tt.got, tt.want)
		}
	}
}

// A record written before notices held facts (a prose "outcome", "kept_by",
// neither read) still renders, with a generic outcome line.
func TestIdleNoticeLegacyRecord(t *testing.T) {
	raw := `{"instance_id":"i-1","name":"box","owner":"UANA","type":"t3.large","reason":"idle","action":"stop",` +
		`"max_cpu":1.23,"network_bytes":310000,"window":3600000000000,"noticed_at":"2026-03-02T10:00:00Z","stop_at":"2026-03-02T10:30:00Z",` +
		`"state":"kept","outcome":"Kept running by <@U9> until <!date^1772460300^{date_short_pretty} at {time}|2026-03-02 14:05 UTC>.",` +
		`"kept_by":"U9","kept_until":"2026-03-02T14:05:00Z","settled_at":"2026-03-02T10:05:00Z","channel":"C1","ts":"2.2","episode":"idle/i-1/1"}`
	var n idle.Notice
	if err := json.Unmarshal([]byte(raw), &n); err != nil {
		t.Fatal(err)
	}
	if got, want := rendered(IdleNotice(n)), idleHead+"\nKept running until 2026-03-02 14:05 UTC."; got != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, want)
	}
	n.State = idle.StateStopped
	if got, want := PlainText(NoticeButtonFailed(&idle.SettledError{Notice: n}).Text),
		"That did not work: `i-1` was already stopped. Stopped 2026-03-02 10:05 UTC."; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNoticeButtonFailed(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"no notice", fmt.Errorf("flow: %w", &idle.NoNoticeError{InstanceID: "i-2"}), "That did not work: `i-2` has no idle or lease notice."},
		{"no notice, bare", idle.ErrNoNotice, "That did not work: that instance has no idle or lease notice."},
		{"already stopped", &idle.SettledError{Notice: with(idleNotice(), stopped(idle.SettledStopNow, "U9"))},
			"That did not work: `i-1` was already stopped. Stopped by @U9 2026-03-02 10:31 UTC (Stop now)."},
		{"over", &idle.SettledError{Notice: with(idleNotice(), cancelled(idle.Cancellation{Reason: idle.CancelStopped}))},
			"That did not work: That notice for `i-1` is over. Cancelled: `i-1` was stopped meanwhile."},
		{"being stopped", &idle.SettledError{Notice: with(idleNotice(), func(n *idle.Notice) { n.State = idle.StateStopping })},
			"That did not work: `i-1` is being stopped right now."},
		{"being terminated", &idle.SettledError{Notice: with(leaseNotice(), func(n *idle.Notice) {
			n.Action, n.State, n.Claim = idle.ActionTerminate, idle.StateStopping, &idle.Claim{Token: "t"}
		})}, "That did not work: `i-1` is being terminated right now."},
		{"being extended", &idle.SettledError{Notice: with(leaseNotice(), func(n *idle.Notice) { n.State = idle.StateExtending })},
			"That did not work: the lease of `i-1` is being extended right now."},
		{"AWS", fmt.Errorf("idle: stop i-1: %w", &computebot.Error{Code: "IncorrectInstanceState", Message: "it is not in a state from which it can be stopped"}),
			"That did not work: it is not in a state from which it can be stopped"},
		{"internal", errors.New("boom"), "That did not work: internal error (details are in the bot's log)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NoticeButtonFailed(tt.err)
			if got := PlainText(m.Text); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			noSlackSyntax(t, m)
		})
	}
}

func TestIdleReport(t *testing.T) {
	if got := IdleReport(idle.Report{}, idleT0).Text; got != "No instance is idle, snoozed or about to be stopped right now." {
		t.Errorf("empty report %q", got)
	}
	r := idle.Report{
		Noticed: []idle.Notice{idleNotice(), with(leaseNotice(), func(n *idle.Notice) { n.InstanceID, n.Name, n.Owner = "i-2", "lease-box", "UBO" })},
		Snoozed: []idle.Snooze{{InstanceID: "i-3", Name: "kept-box", Owner: "UCY", Reason: idle.ReasonIdle, KeptBy: "U9", Until: keptUntil}},
	}
	m := IdleReport(r, idleT0)
	want := "*Noticed, will be stopped:*\n" +
		"• `i-1` box (@UANA) — max CPU 1.2 % and 0.3 MB network over the last 1 h; stops 2026-03-02 10:30 UTC\n" +
		"• `i-2` lease-box (@UBO) — lease ended; stops 2026-03-02 10:30 UTC\n" +
		"*Kept running (snoozed):*\n" +
		"• `i-3` until 2026-03-02 14:05 UTC"
	if got := PlainText(m.Text); got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
	noSlackSyntax(t, m)
}

func TestEvidenceWords(t *testing.T) {
	if got, want := evidence(1.23, 0.31e6, time.Hour), "max CPU 1.2 % and 0.3 MB network over the last 1 h"; got != want {
		t.Errorf("evidence = %q, want %q", got, want)
	}
	if got := oneDecimal(math.NaN()); got != "?" {
		t.Errorf("oneDecimal(NaN) = %q", got)
	}
	for d, want := range map[time.Duration]string{
		time.Hour: "1 h", 90 * time.Minute: "1 h 30 min", 30 * time.Minute: "30 min", 4 * time.Hour: "4 h",
		48 * time.Hour: "2 days", 0: "0 min", 25 * time.Hour: "25 h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// noSlackSyntax fails when a text carries chat syntax instead of elements.
func noSlackSyntax(t *testing.T, m Message) {
	t.Helper()
	texts := []string{m.Text}
	for _, b := range m.Blocks {
		texts = append(texts, b.Text)
	}
	for _, s := range texts {
		if strings.Contains(s, "<@") || strings.Contains(s, "<!") {
			t.Errorf("Slack syntax in %q", s)
		}
	}
}
