package bot

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/reply"
)

// recordingObserver keeps the Slack calls it sees.
type recordingObserver struct {
	nopObserver
	mu      sync.Mutex
	methods []string
}

func (r *recordingObserver) SlackCall(method string, _ int) {
	r.mu.Lock()
	r.methods = append(r.methods, method)
	r.mu.Unlock()
}

// TestResponseURLSecretStaysOutOfMetrics: a response URL ends in a secret
// that lets anyone post into the channel; the metrics count its calls under
// a fixed name, never the URL's last element.
func TestResponseURLSecretStaysOutOfMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	obs := &recordingObserver{}
	chat := NewChat(ChatOptions{APIURL: srv.URL + "/api/", BotToken: "xoxb-test", AppToken: "xapp-test", Observer: obs})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const secret = "SeCrEtToKeN"
	if err := chat.Respond(ctx, srv.URL+"/commands/T0001/1234567890/"+secret, reply.Plain("hi")); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.methods) != 1 || obs.methods[0] != responseURLMethod {
		t.Fatalf("observed methods %q, want one %q", obs.methods, responseURLMethod)
	}
	for _, m := range obs.methods {
		if strings.Contains(m, secret) {
			t.Fatalf("a metric label carries the response URL's secret: %q", m)
		}
	}
}

// TestSlackErrorsAreTyped: Slack's answers the workflows act on come back
// wrapped in flow's errors: not_in_channel and a rate limit that outlasted
// the retries.
func TestSlackErrorsAreTyped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		want   error
	}{
		{"not in channel", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"ok":false,"error":"not_in_channel"}`)) }, flow.ErrNotInChannel},
		{"rate limited", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		}, flow.ErrRateLimited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { tc.answer(w) }))
			defer srv.Close()
			chat := NewChat(ChatOptions{APIURL: srv.URL + "/api/", BotToken: "xoxb-test", AppToken: "xapp-test"})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := chat.Update(ctx, "C1", "1.2", reply.Plain("hi"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Update: %v, want it to wrap %v", err, tc.want)
			}
		})
	}
}
