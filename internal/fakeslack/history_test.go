package fakeslack

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

func newAPI(t *testing.T) (*Server, *slack.Client) {
	t.Helper()
	s := New()
	t.Cleanup(s.Close)
	return s, slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))
}

func postText(t *testing.T, api *slack.Client, channel, text string, opts ...slack.MsgOption) string {
	t.Helper()
	_, ts, err := api.PostMessage(channel, append([]slack.MsgOption{slack.MsgOptionText(text, false)}, opts...)...)
	if err != nil {
		t.Fatalf("post %q: %v", text, err)
	}
	return ts
}

func texts(msgs []slack.Message) string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Text)
	}
	return strings.Join(out, ",")
}

func TestMessageMetadata(t *testing.T) {
	s, api := newAPI(t)
	md := slack.SlackMetadata{EventType: "launch_request", EventPayload: map[string]any{"request_id": "r-1", "hours": 4}}
	ts := postText(t, api, "C1", "request", slack.MsgOptionMetadata(md))
	postText(t, api, "C1", "plain")

	m, _ := s.Message("C1", ts)
	if m.Metadata.EventType != "launch_request" || string(m.Metadata.EventPayload) != `{"hours":4,"request_id":"r-1"}` {
		t.Errorf("stored metadata = %+v (%s)", m.Metadata, m.Metadata.EventPayload)
	}
	if c := s.Calls("chat.postMessage")[0]; !strings.Contains(c.Params["metadata"], `"event_type":"launch_request"`) {
		t.Errorf("metadata param = %q", c.Params["metadata"])
	}

	// Read back only with include_all_metadata, as Slack does.
	hist, err := api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: "C1", IncludeAllMetadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.Messages) != 2 || hist.Messages[1].Metadata.EventType != "launch_request" ||
		hist.Messages[1].Metadata.EventPayload["request_id"] != "r-1" || hist.Messages[1].Metadata.EventPayload["hours"] != float64(4) ||
		hist.Messages[0].Metadata.EventType != "" {
		t.Errorf("history with metadata = %+v", hist.Messages)
	}
	hist, err = api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: "C1"})
	if err != nil || len(hist.Messages) != 2 || hist.Messages[1].Metadata.EventType != "" {
		t.Errorf("history without include_all_metadata = %+v, %v", hist, err)
	}

	// chat.update replaces metadata when given and keeps it when not.
	md.EventPayload["state"] = "approved"
	if _, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionText("approved", false), slack.MsgOptionMetadata(md)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionText("approved!", false)); err != nil {
		t.Fatal(err)
	}
	m, _ = s.Message("C1", ts)
	var payload map[string]any
	if err := json.Unmarshal(m.Metadata.EventPayload, &payload); err != nil || payload["state"] != "approved" || m.Text != "approved!" {
		t.Errorf("updated metadata = %s, %v; text %q", m.Metadata.EventPayload, err, m.Text)
	}

	for raw, code := range map[string]string{
		`not json`:                             "invalid_metadata_format",
		`["a"]`:                                "invalid_metadata_format",
		`{"event_payload":{}}`:                 "invalid_metadata_schema",
		`{"event_type":"x"}`:                   "invalid_metadata_schema",
		`{"event_type":"x","event_payload":1}`: "invalid_metadata_schema",
	} {
		_, out := post(t, s.APIURL()+"chat.postMessage", "application/x-www-form-urlencoded", "xoxb-1",
			url.Values{"channel": {"C1"}, "text": {"x"}, "metadata": {raw}}.Encode())
		if out["error"] != code {
			t.Errorf("metadata %s: %v, want %s", raw, out, code)
		}
	}
	if n := len(s.Messages("C1")); n != 2 {
		t.Errorf("refused posts stored messages: %d", n)
	}
}

func TestConversationsHistory(t *testing.T) {
	s, api := newAPI(t)
	var ts []string
	for _, text := range []string{"m1", "m2", "m3", "m4", "m5"} {
		ts = append(ts, postText(t, api, "C1", text))
	}
	postText(t, api, "C1", "reply", slack.MsgOptionTS(ts[1]))
	if _, err := api.PostEphemeral("C1", "U1", slack.MsgOptionText("secret", false)); err != nil {
		t.Fatal(err)
	}
	postText(t, api, "C2", "elsewhere")

	// Through slack-go's pager: newest first, pages of 2, no replies or
	// ephemeral messages.
	var all []slack.Message
	cursor := ""
	pages := 0
	for {
		resp, err := api.GetConversationHistoryContext(context.Background(), &slack.GetConversationHistoryParameters{ChannelID: "C1", Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, resp.Messages...)
		if resp.HasMore != (resp.ResponseMetaData.NextCursor != "") {
			t.Errorf("has_more %v, next_cursor %q", resp.HasMore, resp.ResponseMetaData.NextCursor)
		}
		if !resp.HasMore {
			break
		}
		cursor = resp.ResponseMetaData.NextCursor
	}
	if got := texts(all); got != "m5,m4,m3,m2,m1" || pages != 3 {
		t.Errorf("history = %s in %d pages", got, pages)
	}
	if p := all[3]; p.Timestamp != ts[1] || p.ReplyCount != 1 || p.ThreadTimestamp != ts[1] || p.LatestReply == "" || !slices.Equal(p.ReplyUsers, []string{BotUserID}) {
		t.Errorf("thread parent = %+v", p.Msg)
	}
	if all[0].User != BotUserID || all[0].BotID != BotID || all[0].Type != "message" {
		t.Errorf("message = %+v", all[0].Msg)
	}

	// A time window: exclusive by default, inclusive on request.
	resp, err := api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: "C1", Oldest: ts[1], Latest: ts[3]})
	if err != nil || texts(resp.Messages) != "m3" {
		t.Errorf("exclusive window = %s, %v", texts(resp.Messages), err)
	}
	resp, err = api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: "C1", Oldest: ts[1], Latest: ts[3], Inclusive: true})
	if err != nil || texts(resp.Messages) != "m4,m3,m2" {
		t.Errorf("inclusive window = %s, %v", texts(resp.Messages), err)
	}
	resp, err = api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: "C1", Oldest: ts[2], Limit: 1})
	if err != nil || texts(resp.Messages) != "m5" || !resp.HasMore {
		t.Errorf("oldest with limit = %s (has_more %v), %v", texts(resp.Messages), resp.HasMore, err)
	}
	if resp, err := api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: "C9"}); err != nil || len(resp.Messages) != 0 || resp.HasMore {
		t.Errorf("empty channel = %+v, %v", resp, err)
	}

	for params, code := range map[*slack.GetConversationHistoryParameters]string{
		{ChannelID: "C1", Cursor: "bm9wZQ=="}:  "invalid_cursor",
		{ChannelID: "C1", Oldest: "yesterday"}: "invalid_ts_oldest",
		{ChannelID: "C1", Latest: "1.2.3"}:     "invalid_ts_latest",
		{}:                                     "channel_not_found",
	} {
		if _, err := api.GetConversationHistory(params); err == nil || err.Error() != code {
			t.Errorf("%+v: %v, want %s", params, err, code)
		}
	}
	if len(s.Calls("conversations.history")) == 0 {
		t.Error("calls not recorded")
	}
}

func TestConversationsReplies(t *testing.T) {
	s, api := newAPI(t)
	parent := postText(t, api, "C1", "parent")
	var replies []string
	for _, text := range []string{"r1", "r2", "r3"} {
		replies = append(replies, postText(t, api, "C1", text, slack.MsgOptionTS(parent)))
	}
	if _, err := api.PostEphemeral("C1", "U1", slack.MsgOptionText("secret", false), slack.MsgOptionTS(parent)); err != nil {
		t.Fatal(err)
	}
	lone := postText(t, api, "C1", "lone")
	if _, err := s.SendMention(Mention{UserID: "U0ANA", ChannelID: "C1", ThreadTS: parent, Text: "<@U0FAKEBOT> thanks"}); err != nil {
		t.Fatal(err)
	}

	// Parent first, then replies oldest first, paged through slack-go.
	var all []slack.Message
	cursor := ""
	for {
		msgs, more, next, err := api.GetConversationRepliesContext(context.Background(), &slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: parent, Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, msgs...)
		if !more {
			break
		}
		cursor = next
	}
	if got := texts(all); got != "parent,r1,r2,r3,<@U0FAKEBOT> thanks" {
		t.Errorf("thread = %s", got)
	}
	if p := all[0]; p.ReplyCount != 4 || !slices.Equal(p.ReplyUsers, []string{BotUserID, "U0ANA"}) || p.ThreadTimestamp != parent {
		t.Errorf("parent = %+v", p.Msg)
	}
	if r := all[1]; r.ThreadTimestamp != parent || r.ParentUserId != BotUserID || r.Timestamp != replies[0] {
		t.Errorf("reply = %+v", r.Msg)
	}

	// ts may name a reply; oldest filters the replies, not the parent.
	msgs, more, _, err := api.GetConversationReplies(&slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: replies[2], Oldest: replies[0]})
	if err != nil || more || texts(msgs) != "parent,r2,r3,<@U0FAKEBOT> thanks" {
		t.Errorf("replies after r1 = %s (more %v), %v", texts(msgs), more, err)
	}
	// A message without replies comes alone.
	msgs, _, _, err = api.GetConversationReplies(&slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: lone})
	if err != nil || texts(msgs) != "lone" || msgs[0].ReplyCount != 0 {
		t.Errorf("lone message = %+v, %v", msgs, err)
	}
	if _, _, _, err := api.GetConversationReplies(&slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: "1.000001"}); err == nil || err.Error() != "thread_not_found" {
		t.Errorf("unknown thread: %v", err)
	}
}
