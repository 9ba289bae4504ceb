package fakeslack

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

func mentionEvent(t *testing.T, evt socketmode.Event) (slackevents.EventsAPIEvent, *slackevents.AppMentionEvent) {
	t.Helper()
	if evt.Type != socketmode.EventTypeEventsAPI {
		t.Fatalf("event type %q, want events_api", evt.Type)
	}
	outer, isOuter := evt.Data.(slackevents.EventsAPIEvent)
	if !isOuter {
		t.Fatalf("data %T", evt.Data)
	}
	if outer.Type != slackevents.CallbackEvent || outer.InnerEvent.Type != "app_mention" {
		t.Fatalf("outer %q inner %q", outer.Type, outer.InnerEvent.Type)
	}
	am, isMention := outer.InnerEvent.Data.(*slackevents.AppMentionEvent)
	if !isMention {
		t.Fatalf("inner data %T", outer.InnerEvent.Data)
	}
	return outer, am
}

func TestAppMention(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	if err := h.s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	text := "<@" + BotUserID + "> launch t2.micro in <#C0DS|data-science> &lt;now&gt;"
	id, err := h.s.SendMention(Mention{UserID: "U0ANA", ChannelID: "C0DS", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := h.s.WaitAck(ctx, id)
	if err != nil || ack.Payload != nil {
		t.Fatalf("ack %+v, %v", ack, err)
	}
	evt := h.nextEvent(t)
	if evt.Request == nil || evt.Request.EnvelopeID != id || evt.Request.Type != "events_api" {
		t.Fatalf("request = %+v", evt.Request)
	}
	outer, am := mentionEvent(t, evt)
	if outer.TeamID != TeamID || outer.APIAppID != AppID {
		t.Errorf("outer = %+v", outer)
	}
	cb, isCB := outer.Data.(*slackevents.EventsAPICallbackEvent)
	if !isCB {
		t.Fatalf("outer data %T", outer.Data)
	}
	if !strings.HasPrefix(cb.EventID, "Ev") || cb.EventTime <= 0 || cb.TeamID != TeamID || cb.APIAppID != AppID {
		t.Errorf("callback = %+v", cb)
	}
	if len(cb.Authorizations) != 1 || cb.Authorizations[0].UserID != BotUserID || !cb.Authorizations[0].IsBot || cb.Authorizations[0].TeamID != TeamID {
		t.Errorf("authorizations = %+v", cb.Authorizations)
	}
	if am.User != "U0ANA" || am.Channel != "C0DS" || am.Text != text || am.TimeStamp == "" || am.EventTimeStamp != am.TimeStamp || am.ThreadTimeStamp != "" {
		t.Errorf("app_mention = %+v", am)
	}
	// The rich_text block slack-go parsed: user, text, channel, text.
	if len(am.Blocks.BlockSet) != 1 {
		t.Fatalf("blocks = %+v", am.Blocks)
	}
	rt, isRT := am.Blocks.BlockSet[0].(*slack.RichTextBlock)
	if !isRT || len(rt.Elements) != 1 {
		t.Fatalf("block %T %+v", am.Blocks.BlockSet[0], am.Blocks.BlockSet[0])
	}
	sec, isSec := rt.Elements[0].(*slack.RichTextSection)
	if !isSec || len(sec.Elements) != 4 {
		t.Fatalf("section %T %+v", rt.Elements[0], rt.Elements[0])
	}
	if u, isUser := sec.Elements[0].(*slack.RichTextSectionUserElement); !isUser || u.UserID != BotUserID {
		t.Errorf("first element %T %+v", sec.Elements[0], sec.Elements[0])
	}
	if tx, isText := sec.Elements[1].(*slack.RichTextSectionTextElement); !isText || tx.Text != " launch t2.micro in " {
		t.Errorf("second element %T %+v", sec.Elements[1], sec.Elements[1])
	}
	if c, isChan := sec.Elements[2].(*slack.RichTextSectionChannelElement); !isChan || c.ChannelID != "C0DS" {
		t.Errorf("third element %T %+v", sec.Elements[2], sec.Elements[2])
	}
	if tx, isText := sec.Elements[3].(*slack.RichTextSectionTextElement); !isText || tx.Text != " <now>" {
		t.Errorf("fourth element %T %+v", sec.Elements[3], sec.Elements[3])
	}

	// The user's message is in the channel, authored by the user.
	m, found := h.s.Message("C0DS", am.TimeStamp)
	if !found || m.User != "U0ANA" || m.Text != text || m.Via != "app_mention" || m.ThreadTS != "" {
		t.Errorf("recorded mention = %+v, %v", m, found)
	}

	// A mention in the thread of a bot message: thread_ts, parent_user_id,
	// and the reply recorded in the thread.
	_, parent, err := h.api.PostMessage("C0DS", slack.MsgOptionText("request #1", false))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := h.s.SendMention(Mention{UserID: "U0BO", ChannelID: "C0DS", Text: "<@" + BotUserID + "> status", ThreadTS: parent})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.WaitAck(ctx, id2); err != nil {
		t.Fatal(err)
	}
	_, am2 := mentionEvent(t, h.nextEvent(t))
	if am2.ThreadTimeStamp != parent || am2.User != "U0BO" || am2.Text != "<@"+BotUserID+"> status" {
		t.Errorf("threaded app_mention = %+v", am2)
	}
	th := h.s.Thread("C0DS", parent)
	if len(th) != 1 || th[0].TS != am2.TimeStamp || th[0].User != "U0BO" {
		t.Errorf("thread = %+v", th)
	}
	// Text without a leading mention is sent as given; a given TS is used
	// and nothing is recorded.
	before := len(h.s.Messages("C0DS"))
	id3, err := h.s.SendMention(Mention{UserID: "U0ANA", ChannelID: "C0DS", Text: "hey <@" + BotUserID + "> help", TS: "1700000000.000100", EnvelopeID: "env-3"})
	if err != nil || id3 != "env-3" {
		t.Fatal(id3, err)
	}
	_, am3 := mentionEvent(t, h.nextEvent(t))
	if am3.Text != "hey <@"+BotUserID+"> help" || am3.TimeStamp != "1700000000.000100" {
		t.Errorf("app_mention = %+v", am3)
	}
	if n := len(h.s.Messages("C0DS")); n != before {
		t.Errorf("messages %d -> %d with a given TS", before, n)
	}

	// The bot cannot update or delete a user's message.
	if _, _, _, err := h.api.UpdateMessage("C0DS", am.TimeStamp, slack.MsgOptionText("x", false)); err == nil || err.Error() != "cant_update_message" {
		t.Errorf("update of a user's message: %v", err)
	}
	if _, _, err := h.api.DeleteMessage("C0DS", am.TimeStamp); err == nil || err.Error() != "cant_delete_message" {
		t.Errorf("delete of a user's message: %v", err)
	}

	if _, err := h.s.SendMention(Mention{ChannelID: "C0DS"}); err == nil {
		t.Error("mention without a user accepted")
	}
}

func TestMentionPayloadParentUser(t *testing.T) {
	s := New()
	defer s.Close()
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))
	_, parent, err := api.PostMessage("C1", slack.MsgOptionText("parent", false))
	if err != nil {
		t.Fatal(err)
	}
	// Queued before any connection: read the payload from the envelope as
	// socketmode would, through slackevents.ParseEvent.
	if _, err := s.SendMention(Mention{UserID: "U0ANA", ChannelID: "C1", ThreadTS: parent}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	var env Envelope
	err = json.Unmarshal(s.pending[0].data, &env)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != "events_api" || env.AcceptsResponsePayload {
		t.Errorf("envelope = %+v", env)
	}
	var raw struct {
		Token string `json:"token"`
		Event struct {
			ParentUserID string `json:"parent_user_id"`
			Text         string `json:"text"`
			Team         string `json:"team"`
		} `json:"event"`
	}
	if err := json.Unmarshal(env.Payload, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Event.ParentUserID != BotUserID || raw.Event.Text != "<@"+BotUserID+">" || raw.Event.Team != TeamID || raw.Token != VerificationToken {
		t.Errorf("payload = %s", env.Payload)
	}
	ev, err := slackevents.ParseEvent(env.Payload, slackevents.OptionNoVerifyToken())
	if err != nil {
		t.Fatal(err)
	}
	if am, isMention := ev.InnerEvent.Data.(*slackevents.AppMentionEvent); !isMention || am.ThreadTimeStamp != parent {
		t.Errorf("parsed %T %+v", ev.InnerEvent.Data, ev.InnerEvent.Data)
	}
}
