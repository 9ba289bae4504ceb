package fakeslack

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

func TestFileUploadRoundTrip(t *testing.T) {
	s := New()
	defer s.Close()
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))
	ctx := testCtx(t)

	_, parent, err := api.PostMessage("C1", slack.MsgOptionText("invoke my-fn", false))
	if err != nil {
		t.Fatal(err)
	}
	long := `{"result":"` + strings.Repeat("é", 3000) + `"}`
	sum, err := api.UploadFileContext(ctx, slack.UploadFileParameters{
		Content:         long,
		FileSize:        len(long),
		Filename:        "my-fn-output.json",
		Title:           "my-fn output",
		SnippetType:     "json",
		Channel:         "C1",
		ThreadTimestamp: parent,
		InitialComment:  "Output too long for a message",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sum.ID, "F") || sum.Title != "my-fn output" {
		t.Errorf("summary = %+v", sum)
	}

	files := s.Files()
	if len(files) != 1 {
		t.Fatalf("files = %+v", files)
	}
	f := files[0]
	if f.ID != sum.ID || f.Name != "my-fn-output.json" || f.Title != "my-fn output" || f.SnippetType != "json" ||
		f.Channel != "C1" || f.ThreadTS != parent || string(f.Content) != long || f.Time.IsZero() {
		t.Errorf("file = %+v", f)
	}
	if g, found := s.File(sum.ID); !found || !bytes.Equal(g.Content, f.Content) {
		t.Errorf("File(%s) = %+v, %v", sum.ID, g, found)
	}
	// Files returns copies.
	files[0].Content[0] = 'X'
	if g, _ := s.File(sum.ID); g.Content[0] != '{' {
		t.Error("Files shares its Content")
	}

	m, err := s.WaitMessage(ctx, "C1", func(m Message) bool { return len(m.Files) > 0 })
	if err != nil {
		t.Fatal(err)
	}
	if m.ThreadTS != parent || m.Text != "Output too long for a message" || m.Via != "files.completeUploadExternal" ||
		len(m.Files) != 1 || m.Files[0] != sum.ID || m.User != BotUserID {
		t.Errorf("file message = %+v", m)
	}
	if th := s.Thread("C1", parent); len(th) != 1 || th[0].TS != m.TS {
		t.Errorf("thread = %+v", th)
	}

	// The calls, with the parameter names slack-go sends.
	get := s.Calls("files.getUploadURLExternal")
	if len(get) != 1 || get[0].Params["filename"] != "my-fn-output.json" || get[0].Params["length"] != strconv.Itoa(len(long)) || get[0].Params["snippet_type"] != "json" {
		t.Errorf("getUploadURLExternal calls = %+v", get)
	}
	up := s.Calls("upload_url")
	if len(up) != 1 || !up[0].OK() || up[0].Params["file_id"] != sum.ID || up[0].Params["length"] != strconv.Itoa(len(long)) || up[0].Params["filename"] != "my-fn-output.json" {
		t.Errorf("upload calls = %+v", up)
	}
	done := s.Calls("files.completeUploadExternal")
	if len(done) != 1 || done[0].Params["channel_id"] != "C1" || done[0].Params["thread_ts"] != parent ||
		done[0].Params["files"] != `[{"id":"`+sum.ID+`","title":"my-fn output"}]` || done[0].Params["initial_comment"] != "Output too long for a message" {
		t.Errorf("completeUploadExternal calls = %+v", done)
	}

	// A Reader, no title (the filename is used), shared to two channels.
	sum2, err := api.UploadFileContext(ctx, slack.UploadFileParameters{
		Reader:   strings.NewReader("line 1\nline 2\n"),
		FileSize: 14,
		Filename: "log.txt",
		Channels: []string{"C2", "C3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum2.Title != "log.txt" {
		t.Errorf("summary = %+v", sum2)
	}
	for _, ch := range []string{"C2", "C3"} {
		if msgs := s.Messages(ch); len(msgs) != 1 || len(msgs[0].Files) != 1 || msgs[0].Files[0] != sum2.ID || msgs[0].Text != "" {
			t.Errorf("%s messages = %+v", ch, msgs)
		}
	}
	if f2, _ := s.File(sum2.ID); f2.Channel != "C2" || string(f2.Content) != "line 1\nline 2\n" {
		t.Errorf("file = %+v", f2)
	}
	if fs := s.Files(); len(fs) != 2 || fs[1].ID != sum2.ID {
		t.Errorf("files = %+v", fs)
	}
}

func TestFileUploadRefusals(t *testing.T) {
	s := New()
	defer s.Close()
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))
	ctx := testCtx(t)

	// A length counted in runes instead of bytes is refused at upload.
	text := strings.Repeat("é", 10)
	_, err := api.UploadFileContext(ctx, slack.UploadFileParameters{Content: text, FileSize: len([]rune(text)), Filename: "a.txt", Channel: "C1"})
	var sce slack.StatusCodeError
	if !errors.As(err, &sce) || sce.Code != http.StatusBadRequest {
		t.Errorf("length mismatch: %v", err)
	}
	if up := s.Calls("upload_url"); len(up) != 1 || up[0].Error != "length_mismatch" {
		t.Errorf("upload calls = %+v", up)
	}
	if len(s.Files()) != 0 || len(s.Messages("C1")) != 0 {
		t.Errorf("refused upload recorded: %+v %+v", s.Files(), s.Messages("C1"))
	}

	// Missing parameters.
	if _, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "a", FileSize: -1}); err == nil || err.Error() != "invalid_arguments" {
		t.Errorf("negative length: %v", err)
	}

	// Completing a file that was never uploaded, or twice.
	u, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "b.txt", FileSize: 3})
	if err != nil || !strings.HasPrefix(u.UploadURL, s.URL()+"/upload/") || u.UploadURL != s.URL()+"/upload/"+u.FileID {
		t.Fatal(u, err)
	}
	complete := func() error {
		_, err := api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u.FileID}}, Channel: "C1"})
		return err
	}
	if err := complete(); err == nil || err.Error() != "file_not_found" {
		t.Errorf("complete before upload: %v", err)
	}
	// A raw (non-multipart) POST is accepted too.
	resp, err := http.Post(u.UploadURL, "application/octet-stream", strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "OK - 3" {
		t.Errorf("raw upload: %d %q", resp.StatusCode, body)
	}
	if err := complete(); err != nil {
		t.Fatal(err)
	}
	if err := complete(); err == nil || err.Error() != "file_not_found" {
		t.Errorf("second completion: %v", err)
	}
	// Uploading to a completed or unknown file ID is a 404.
	for _, target := range []string{u.UploadURL, s.URL() + "/upload/FNOPE"} {
		resp, err := http.Post(target, "text/plain", strings.NewReader("abc"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("upload to %s: %d", target, resp.StatusCode)
		}
	}

	// Without a channel the file stays private: completed, no message.
	u2, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "c.txt", FileSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: u2.UploadURL, Content: "x", Filename: "c.txt"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u2.FileID, Title: "private"}}}); err != nil {
		t.Fatal(err)
	}
	if f, found := s.File(u2.FileID); !found || f.Channel != "" || f.Title != "private" {
		t.Errorf("private file = %+v, %v", f, found)
	}
	if msgs := s.Messages("C1"); len(msgs) != 1 {
		t.Errorf("messages = %+v", msgs)
	}

	// Injected failures and rate limits on the upload URL.
	s.SetError("upload_url", 1, "internal_error")
	_, err = api.UploadFileContext(ctx, slack.UploadFileParameters{Content: "y", FileSize: 1, Filename: "d.txt", Channel: "C1"})
	if !errors.As(err, &sce) || sce.Code != http.StatusInternalServerError {
		t.Errorf("injected error: %v", err)
	}
	s.SetRateLimit("upload_url", 1, 0)
	_, err = api.UploadFileContext(ctx, slack.UploadFileParameters{Content: "y", FileSize: 1, Filename: "d.txt", Channel: "C1"})
	var rle *slack.RateLimitedError
	if !errors.As(err, &rle) {
		t.Errorf("rate limit: %v", err)
	}
	if _, err := api.UploadFileContext(ctx, slack.UploadFileParameters{Content: "y", FileSize: 1, Filename: "d.txt", Channel: "C1"}); err != nil {
		t.Errorf("after the limit: %v", err)
	}
}

func TestDirectMessagesAndThreadedEphemeral(t *testing.T) {
	s := New()
	defer s.Close()
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))
	ctx := testCtx(t)

	dm, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U0OWNER"}})
	if err != nil || dm.ID != "D0OWNER" {
		t.Fatal(dm, err)
	}
	if calls := s.Calls("conversations.open"); len(calls) != 1 || calls[0].Params["users"] != "U0OWNER" {
		t.Errorf("conversations.open calls = %+v", calls)
	}
	ch, ts, err := api.PostMessageContext(ctx, dm.ID, slack.MsgOptionText("your instance expires in 1 h", false))
	if err != nil || ch != dm.ID {
		t.Fatal(ch, err)
	}
	m, err := s.WaitMessage(ctx, dm.ID, func(m Message) bool { return strings.Contains(m.Text, "expires") })
	if err != nil || m.TS != ts || m.Via != "chat.postMessage" || m.User != BotUserID || m.Ephemeral {
		t.Errorf("DM = %+v, %v", m, err)
	}
	// Opening it again is a no-op on the same channel.
	dm2, noOp, already, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U0OWNER"}})
	if err != nil || dm2.ID != dm.ID || !noOp || !already {
		t.Errorf("reopen = %+v %v %v %v", dm2, noOp, already, err)
	}

	// An ephemeral reply in a thread keeps its thread_ts.
	_, parent, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("request", false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.PostEphemeralContext(ctx, "C1", "U0ANA", slack.MsgOptionText("only you", false), slack.MsgOptionTS(parent)); err != nil {
		t.Fatal(err)
	}
	e, err := s.WaitMessage(ctx, "C1", func(m Message) bool { return m.Ephemeral })
	if err != nil || e.ThreadTS != parent || e.EphemeralUser != "U0ANA" || e.Text != "only you" || e.Via != "chat.postEphemeral" {
		t.Errorf("ephemeral = %+v, %v", e, err)
	}
	if th := s.Thread("C1", parent); len(th) != 1 || !th[0].Ephemeral {
		t.Errorf("thread = %+v", th)
	}
}
