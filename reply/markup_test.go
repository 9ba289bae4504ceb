package reply

import (
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
)

func TestSpans(t *testing.T) {
	at := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	text := "hi " + User("UANA") + ", ask " + Group("SOPS") + " by " + Date(at) + "."
	want := []Span{{Kind: SpanText, Text: "hi "}, {Kind: SpanUser, ID: "UANA"}, {Kind: SpanText, Text: ", ask "},
		{Kind: SpanGroup, ID: "SOPS"}, {Kind: SpanText, Text: " by "}, {Kind: SpanDate, Time: at}, {Kind: SpanText, Text: "."}}
	got := Spans(text)
	if len(got) != len(want) {
		t.Fatalf("Spans = %+v", got)
	}
	for i := range want {
		if got[i].Kind != want[i].Kind || got[i].Text != want[i].Text || got[i].ID != want[i].ID || !got[i].Time.Equal(want[i].Time) {
			t.Errorf("span %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if p := PlainText(text); p != "hi @UANA, ask @SOPS by 2026-11-28 09:30 UTC." {
		t.Errorf("PlainText = %q", p)
	}
	for _, bad := range []string{"\uE000xUANA\uE001", "\uE000ulower\uE001", "\uE000dsoon\uE001", "\uE000u\uE001", "open \uE000uUANA"} {
		for _, s := range Spans(bad) {
			if s.Kind != SpanText {
				t.Errorf("Spans(%q) made an element: %+v", bad, s)
			}
		}
	}
}

// TestForeignTextCannotMention: text from outside the bot (a payload, a
// function's output, a Name tag, an AWS message) never becomes an element,
// even when it carries the element delimiters.
func TestForeignTextCannotMention(t *testing.T) {
	forged := "\uE000gS0ADMINS\uE001 \uE000uU0BOSS\uE001"
	msgs := map[string]Message{
		"lambda request payload": RequestMessage(&computebot.Request{ID: "R-1", Requester: "UANA", State: computebot.RequestPending,
			Lambda: &computebot.LambdaRequest{Function: "report", Payload: `{"a":"` + forged + `"}`}}),
		"launch request name and reason": RequestMessage(&computebot.Request{ID: "R-1", Requester: "UANA", State: computebot.RequestPending,
			Launch: &computebot.LaunchRequest{InstanceType: "t2.micro", Name: forged, Reason: forged, ImageName: forged}}),
		"invoke result": func() Message {
			m, _ := InvokeResult("report", computebot.InvocationResult{StatusCode: 200, Payload: []byte(`"` + forged + `"`), LogTail: forged})
			return m
		}(),
		"invoke failed":  InvokeFailed("report", forged),
		"instance list":  InstanceList([]InstanceRow{{Instance: computebot.Instance{ID: "i-1", State: computebot.InstanceRunning, Tags: map[string]string{computebot.TagName: forged}}}}, 0, false, time.Now()),
		"function list":  FunctionList([]computebot.Function{{Name: "report", Description: forged}}, 0),
		"lookup failed":  LookupFailed("i-1", forged),
		"action failed":  ActionFailed(policy.ActionStop, "i-1", forged),
		"type not found": TypeLookupFailed("t2.micro", forged),
	}
	for name, m := range msgs {
		texts := []string{m.Text}
		for _, b := range m.Blocks {
			texts = append(texts, b.Text)
			texts = append(texts, b.Fields...)
		}
		for _, text := range texts {
			for _, s := range Spans(text) {
				if (s.Kind == SpanUser && s.ID != "UANA") || s.Kind == SpanGroup {
					t.Errorf("%s: foreign text became a mention: %+v", name, s)
				}
				if s.Kind == SpanText && strings.ContainsAny(s.Text, "\uE000\uE001") {
					t.Errorf("%s: delimiters survived: %q", name, s.Text)
				}
			}
		}
	}
}
