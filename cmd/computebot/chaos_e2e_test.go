package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot/internal/fakeslack"
)

// TestChaosSocketEveryAnswerOnce streams slash commands at the bot while the
// socket-mode connection is ended over and over, in each of the four ways
// (a disconnect envelope, a close frame, a TCP FIN, a TCP RST), with Slack's
// redelivery on. Whatever the connection went through, each envelope's
// answer reaches its person exactly once:
//
//   - an answer that travels in the ack (help, a usage error, a refusal) is
//     in the ack of the delivery acked last, and every ack that carries text
//     carries that same text (a lost answer is an envelope whose acks are all
//     bare);
//   - /instances, answered through the response_url after a bare ack, is
//     answered once per envelope (each from its own user, so that answers
//     can be told apart);
//   - /launch posts exactly one request message per envelope.
func TestChaosSocketEveryAnswerOnce(t *testing.T) {
	const (
		commands   = 300
		drops      = 20
		ackTimeout = 500 * time.Millisecond
		maxRetries = 10
		pace       = 4 * time.Millisecond
	)
	started := time.Now()
	b := newBed(t)

	// The answers the ack must carry, taken from a calm connection first.
	want := map[string]string{}
	for _, c := range []struct{ kind, cmd, text string }{
		{"help", "/computebot", "help"},
		{"usage", "/stop", ""},
		{"refusal", "/launch", "p5.48xlarge"},
	} {
		txt := ackText(t, b.slash(ana, c.cmd, c.text))
		if txt == "" {
			t.Fatalf("%s %q: bare ack on a calm connection; the test needs an answer in the ack", c.cmd, c.text)
		}
		want[c.kind] = txt
	}

	b.slack.SetRedelivery(ackTimeout, maxRetries)

	type sent struct {
		env, user, kind string
	}
	var all []sent
	kinds := []fakeslack.ChaosKind{fakeslack.ChaosDisconnect, fakeslack.ChaosCloseFrame, fakeslack.ChaosTCPClose, fakeslack.ChaosTCPReset}
	dropped := map[fakeslack.ChaosKind]int{}
	every := commands / drops
	for i := range commands {
		// Every command from its own user: an answer sent through a
		// response_url, or a request message, names whose envelope it
		// belongs to.
		user := fmt.Sprintf("UCHAOS%03d", i)
		b.slack.AddUser(user, strings.ToLower(user))
		var kind, cmd, text string
		switch {
		case i%50 == 25:
			kind, cmd, text = "launch", "/launch", "t2.micro --reason chaos"
		case i%4 == 0:
			kind, cmd, text = "help", "/computebot", "help"
		case i%4 == 1:
			kind, cmd, text = "usage", "/stop", ""
		case i%4 == 2:
			kind, cmd, text = "refusal", "/launch", "p5.48xlarge"
		default:
			kind, cmd, text = "instances", "/instances", ""
		}
		env, err := b.slack.SendSlashCommand(fakeslack.SlashCommand{Command: cmd, Text: text, UserID: user, ChannelID: channel})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sent{env: env, user: user, kind: kind})

		// Bursts of five, the connection ended right after a burst: some
		// envelopes are on the wire, or read and not yet acked.
		if i%5 == 4 {
			time.Sleep(5 * pace)
		}
		if i%every == every-3 {
			k := kinds[(i/every)%len(kinds)]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := b.slack.WaitConnected(ctx)
			cancel()
			if err != nil {
				t.Fatalf("the bot did not reconnect before drop %d: %v\n%s", i/every+1, err, b.stderr)
			}
			if err := b.slack.Chaos(k); err != nil {
				t.Fatalf("chaos %s: %v", k, err)
			}
			dropped[k]++
		}
	}
	streamed := time.Since(started)

	// Wait until every envelope's latest delivery is acked and every answer
	// sent after the ack is there, then a little longer (twice the ack
	// timeout) for a late redelivery or a second answer to show.
	settled := func() bool {
		for _, s := range all {
			ds := b.slack.Deliveries(s.env)
			if len(ds) == 0 || !ds[len(ds)-1].Acked {
				return false
			}
		}
		for _, s := range all {
			switch s.kind {
			case "instances":
				if chaosCount(b, func(m fakeslack.Message) bool { return m.Via == "response_url" && m.EphemeralUser == s.user }) == 0 {
					return false
				}
			case "launch":
				if chaosCount(b, isRequestMessageOf(s.user)) == 0 {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !settled() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * ackTimeout)

	acks := map[string][]fakeslack.Ack{}
	for _, a := range b.slack.Acks() {
		acks[a.EnvelopeID] = append(acks[a.EnvelopeID], a)
	}
	var (
		lost, duplicated       []string
		redelivered, reacked   int
		deliveries, ackedTwice int
		byKind                 = map[string]int{}
	)
	for _, s := range all {
		byKind[s.kind]++
		ds := b.slack.Deliveries(s.env)
		deliveries += len(ds)
		if len(ds) > 1 {
			redelivered++
		}
		as := acks[s.env]
		if len(as) > 1 {
			ackedTwice++
		}
		texts := map[string]int{}
		for _, a := range as {
			if txt := chaosAckText(t, a); txt != "" {
				texts[txt]++
			}
		}
		if len(ds) > 0 && !ds[len(ds)-1].Acked {
			lost = append(lost, fmt.Sprintf("%s %s: latest of %d deliveries never acked", s.kind, s.env, len(ds)))
			continue
		}
		switch s.kind {
		case "help", "usage", "refusal":
			if len(as) == 0 || len(texts) == 0 {
				lost = append(lost, fmt.Sprintf("%s %s: %d acks, none with the answer", s.kind, s.env, len(as)))
				continue
			}
			if last := chaosAckText(t, as[len(as)-1]); last != want[s.kind] {
				lost = append(lost, fmt.Sprintf("%s %s: the last ack (of %d) carries %q, want %q", s.kind, s.env, len(as), last, want[s.kind]))
			}
			if len(texts) > 1 || texts[want[s.kind]] == 0 {
				duplicated = append(duplicated, fmt.Sprintf("%s %s: acks carry different answers %v", s.kind, s.env, texts))
			}
			if texts[want[s.kind]] > 1 {
				reacked++
			}
		case "instances":
			if len(texts) > 0 {
				duplicated = append(duplicated, fmt.Sprintf("instances %s: an ack carries text %v", s.env, texts))
			}
			n := chaosCount(b, func(m fakeslack.Message) bool { return m.Via == "response_url" && m.EphemeralUser == s.user })
			switch {
			case n == 0:
				lost = append(lost, fmt.Sprintf("instances %s: no answer through the response_url", s.env))
			case n > 1:
				duplicated = append(duplicated, fmt.Sprintf("instances %s: %d answers through the response_url", s.env, n))
			}
		case "launch":
			switch n := chaosCount(b, isRequestMessageOf(s.user)); {
			case n == 0:
				lost = append(lost, fmt.Sprintf("launch %s: no request message", s.env))
			case n > 1:
				duplicated = append(duplicated, fmt.Sprintf("launch %s: %d request messages", s.env, n))
			}
		}
	}
	// Every /instances answer the fake saw belongs to one envelope.
	rurl := b.slack.Calls("response_url")
	seenURL := map[string]int{}
	for _, c := range rurl {
		if c.OK() {
			seenURL[c.ResponseURL]++
		}
	}
	for u, n := range seenURL {
		if n > 1 {
			duplicated = append(duplicated, fmt.Sprintf("one response_url posted to %d times (%s…)", n, u[:min(len(u), 40)]))
		}
	}
	if got, want := len(seenURL), byKind["instances"]; got != want {
		t.Errorf("response_url posts went to %d distinct URLs, want %d (one per /instances)", got, want)
	}

	var kindsLine []string
	for _, k := range kinds {
		kindsLine = append(kindsLine, fmt.Sprintf("%s %d", k, dropped[k]))
	}
	t.Logf("chaos: %d commands (%d help, %d usage, %d refusal, %d instances, %d launch) streamed in %s; %d drops (%s); %d reconnections;"+
		" %d deliveries, %d envelopes redelivered, %d acked more than once (%d re-sent the same answer); lost %d, duplicated %d; total %s",
		len(all), byKind["help"], byKind["usage"], byKind["refusal"], byKind["instances"], byKind["launch"], streamed.Round(time.Millisecond),
		drops, strings.Join(kindsLine, ", "), b.slack.Hellos()-1, deliveries, redelivered, ackedTwice, reacked,
		len(lost), len(duplicated), time.Since(started).Round(time.Millisecond))
	for _, l := range lost {
		t.Errorf("lost: %s", l)
	}
	for _, d := range duplicated {
		t.Errorf("duplicated: %s", d)
	}
	if t.Failed() {
		t.Logf("log:\n%s", b.stderr)
	}
}

// chaosAckText is the text an ack carries ("" for a bare ack), without
// failing on odd payloads.
func chaosAckText(t *testing.T, a fakeslack.Ack) string {
	t.Helper()
	if len(a.Payload) == 0 || string(a.Payload) == "null" {
		return ""
	}
	var p struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		t.Errorf("ack payload %s: %v", a.Payload, err)
	}
	return p.Text
}

func chaosCount(b *bed, pred func(fakeslack.Message) bool) int {
	return len(channelMessages(b.slack, pred))
}

// isRequestMessageOf matches the request message of user's /launch.
func isRequestMessageOf(user string) func(fakeslack.Message) bool {
	return func(m fakeslack.Message) bool {
		return m.ThreadTS == "" && !m.Ephemeral && m.Via == "chat.postMessage" && strings.Contains(m.Text, "<@"+user+"> requests")
	}
}

// TestUnreadableEnvelopeAcked: an envelope slack-go cannot parse (here a
// slash command whose payload is not an object) is acked once, bare, so
// that Slack does not redeliver it to fail the same way; the bot goes on
// answering the next command.
func TestUnreadableEnvelopeAcked(t *testing.T) {
	b := newBed(t)
	b.slack.SetRedelivery(300*time.Millisecond, 3)
	const env = "env-unreadable"
	if err := b.slack.SendEnvelope(fakeslack.Envelope{
		EnvelopeID: env, Type: "slash_commands", Payload: json.RawMessage(`"not a slash command"`), AcceptsResponsePayload: true,
	}); err != nil {
		t.Fatal(err)
	}
	ack, err := b.slack.WaitAck(b.ctx(), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(ack.Payload) != 0 && string(ack.Payload) != "null" {
		t.Errorf("ack payload %s, want a bare ack", ack.Payload)
	}
	if txt := ackText(t, b.slash(ana, "/computebot", "help")); txt == "" {
		t.Error("help after the unreadable envelope: bare ack")
	}
	time.Sleep(400 * time.Millisecond) // past the redelivery timeout
	if ds := b.slack.Deliveries(env); len(ds) != 1 || !ds[0].Acked {
		t.Errorf("deliveries %+v, want one, acked", ds)
	}
}
