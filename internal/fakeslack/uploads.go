package fakeslack

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxUpload bounds the body of a post to an upload URL.
const maxUpload = 32 << 20

// File is a file uploaded the way slack-go's UploadFileContext does it:
// files.getUploadURLExternal, a POST of the content to the upload URL, then
// files.completeUploadExternal. Only completed uploads are kept, as on Slack.
type File struct {
	ID          string // "F…"
	Name        string // the filename given to files.getUploadURLExternal
	Title       string // from files.completeUploadExternal; Name when none was given
	SnippetType string // snippet_type given to files.getUploadURLExternal, if any
	AltText     string // alt_txt given to files.getUploadURLExternal, if any
	// Channel is where the file was shared ("" when it was left private;
	// the first channel when shared to several); ThreadTS the thread.
	Channel  string
	ThreadTS string
	Content  []byte
	Time     time.Time // when files.completeUploadExternal completed it
}

type fileRec struct {
	f         File
	length    int
	uploaded  bool
	completed bool
}

// Files returns the files whose upload was completed, in completion order.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.shared))
	for _, r := range s.shared {
		out = append(out, cloneFile(r.f))
	}
	return out
}

// File returns the completed upload with the given ID.
func (s *Server) File(id string) (File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.files[id]
	if r == nil || !r.completed {
		return File{}, false
	}
	return cloneFile(r.f), true
}

func cloneFile(f File) File {
	f.Content = slices.Clone(f.Content)
	return f
}

// newFileID returns an ID shaped like Slack's file IDs.
func newFileID() string {
	return "F" + strings.ToUpper(randomHex(5))
}

// filesGetUploadURLExternal reserves a file ID and an upload URL on this
// server. filename and a positive length are required.
func (s *Server) filesGetUploadURLExternal(p map[string]string) apiResult {
	name := p["filename"]
	n, err := strconv.Atoi(p["length"])
	if name == "" || err != nil || n <= 0 {
		return fail("invalid_arguments")
	}
	id := newFileID()
	for s.files[id] != nil {
		id = newFileID()
	}
	s.files[id] = &fileRec{
		f:      File{ID: id, Name: name, SnippetType: p["snippet_type"], AltText: p["alt_txt"]},
		length: n,
	}
	return ok(map[string]any{"upload_url": s.ts.URL + "/upload/" + id, "file_id": id})
}

// handleUpload serves POST /upload/<file_id>, the upload_url handed out by
// files.getUploadURLExternal. The content may come as a multipart form (its
// first file part, which is what slack-go sends) or as the raw body. It is
// recorded as a Call with Method "upload_url" and Params file_id, length
// (bytes received) and filename (multipart only). SetRateLimit, SetError
// and SetLatency work for "upload_url" too; an injected error is answered
// with HTTP 500.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	const method = "upload_url"
	start := time.Now()
	id := strings.TrimPrefix(r.URL.Path, "/upload/")
	var content []byte
	var filename string
	var rerr error
	if r.Method != http.MethodPost {
		rerr = errors.New("not a POST")
	} else {
		content, filename, rerr = readUpload(w, r)
	}

	s.delay(r.Context(), method)

	s.mu.Lock()
	res := s.serveUploadLocked(id, r.Method, content, rerr)
	params := map[string]string{"file_id": id, "length": strconv.Itoa(len(content))}
	if filename != "" {
		params["filename"] = filename
	}
	s.recordCallLocked(Call{Method: method, Params: params, Time: start}, res)
	s.mu.Unlock()

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if res.retryAfter != "" {
		w.Header().Set("Retry-After", res.retryAfter)
	}
	w.WriteHeader(res.status)
	if code := res.errorCode(); code != "" {
		_, _ = io.WriteString(w, code)
		return
	}
	_, _ = io.WriteString(w, "OK - "+strconv.Itoa(len(content)))
}

// serveUploadLocked stores an upload. The answer's body only carries the
// error code; the HTTP status is what clients look at.
func (s *Server) serveUploadLocked(id, httpMethod string, content []byte, rerr error) apiResult {
	failWith := func(status int, code string) apiResult {
		res := fail(code)
		res.status = status
		return res
	}
	if res, injected := s.injectedLocked("upload_url"); injected {
		if res.status != http.StatusTooManyRequests {
			res.status = http.StatusInternalServerError
		}
		return res
	}
	if httpMethod != http.MethodPost {
		return failWith(http.StatusMethodNotAllowed, "method_not_allowed")
	}
	f := s.files[id]
	if f == nil || f.completed {
		return failWith(http.StatusNotFound, "file_not_found")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(rerr, &tooLarge):
		return failWith(http.StatusRequestEntityTooLarge, "file_too_large")
	case rerr != nil:
		return failWith(http.StatusBadRequest, "invalid_upload")
	case len(content) != f.length:
		// A length that does not match the bytes sent (e.g. counted in
		// runes) is a bug in the caller; refuse it rather than guess.
		return failWith(http.StatusBadRequest, "length_mismatch")
	}
	f.f.Content = slices.Clone(content)
	f.uploaded = true
	return ok(nil)
}

// readUpload reads an upload's content: the first file part of a multipart
// form, or else the whole body.
func readUpload(w http.ResponseWriter, r *http.Request) (content []byte, filename string, err error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ctype != "multipart/form-data" {
		content, err = io.ReadAll(r.Body)
		return content, "", err
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", err
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, "", errors.New("multipart form without a file")
		}
		if err != nil {
			return nil, "", err
		}
		if part.FileName() == "" {
			continue
		}
		content, err = io.ReadAll(part)
		if err != nil {
			return nil, "", err
		}
		// Drain the rest so the client's writer is not left blocked.
		_, _ = io.Copy(io.Discard, r.Body)
		return content, part.FileName(), nil
	}
}

// filesCompleteUploadExternal completes uploads and shares them: files is a
// JSON array of {"id","title"}; channel_id and/or channels (comma-separated)
// say where, thread_ts in which thread (one channel only), initial_comment
// the message text (blocks are used only without it). Every file must have
// been uploaded and not completed yet, else file_not_found. One message per
// channel carries all the files.
func (s *Server) filesCompleteUploadExternal(p map[string]string) apiResult {
	var list []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(p["files"]), &list); err != nil || len(list) == 0 {
		return fail("invalid_arguments")
	}
	seen := map[string]bool{}
	for _, f := range list {
		if seen[f.ID] {
			return fail("invalid_arguments")
		}
		seen[f.ID] = true
		rec := s.files[f.ID]
		if rec == nil || !rec.uploaded || rec.completed {
			return fail("file_not_found")
		}
	}
	var channels []string
	if c := strings.TrimSpace(p["channel_id"]); c != "" {
		channels = append(channels, c)
	}
	for c := range strings.SplitSeq(p["channels"], ",") {
		if c = strings.TrimSpace(c); c != "" && !slices.Contains(channels, c) {
			channels = append(channels, c)
		}
	}
	threadTS := p["thread_ts"]
	if threadTS != "" && len(channels) != 1 {
		return fail("invalid_arguments")
	}
	comment := p["initial_comment"]
	var blocks json.RawMessage
	if raw, found := p["blocks"]; found && comment == "" {
		arr, valid := jsonArray(raw)
		if !valid {
			return fail("invalid_blocks")
		}
		blocks = arr
	}

	now := time.Now()
	ids := make([]string, 0, len(list))
	summaries := make([]map[string]any, 0, len(list))
	for _, f := range list {
		rec := s.files[f.ID]
		rec.completed = true
		rec.f.Title = firstNonEmpty(f.Title, rec.f.Name)
		rec.f.Time = now
		if len(channels) > 0 {
			rec.f.Channel, rec.f.ThreadTS = channels[0], threadTS
		}
		s.shared = append(s.shared, rec)
		ids = append(ids, f.ID)
		summaries = append(summaries, map[string]any{"id": f.ID, "title": rec.f.Title})
	}
	for _, ch := range channels {
		s.addMessageLocked(Message{
			Channel:  ch,
			ThreadTS: threadTS,
			User:     BotUserID,
			Text:     comment,
			Blocks:   slices.Clone(blocks),
			Files:    slices.Clone(ids),
			Via:      "files.completeUploadExternal",
		})
	}
	s.notifyLocked()
	return ok(map[string]any{"files": summaries})
}
