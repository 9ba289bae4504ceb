package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
	"github.com/computebot/computebot/internal/syncbuf"
)

// tokenFatalCodes are Slack's answers that no retry changes: the token
// itself is wrong.
var tokenFatalCodes = []string{"invalid_auth", "token_revoked", "account_inactive", "not_allowed_token_type", "missing_scope"}

// tokenExitWithin is how soon the binary must give up on a refused token.
const tokenExitWithin = 5 * time.Second

// TestTokenErrorsStopTheBinary starts the built binary once per fatal Slack
// error code, answered for good to auth.test (the bot token, checked at
// start) or to apps.connections.open (the app-level token, at the socket
// connection): it must exit non-zero within a few seconds, its last line
// on stderr naming the token's variable, the code and what to do. Transient
// failures of the same calls (HTTP 500s, 429s, a non-fatal error code for a
// few calls) must not stop it: it connects once they pass.
func TestTokenErrorsStopTheBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := buildE2EBinary(t, dir)

	var (
		mu      sync.Mutex
		figures []string
	)
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		figures = append(figures, fmt.Sprintf(format, args...))
	}
	t.Cleanup(func() {
		sort.Strings(figures)
		t.Logf("tokens:\n  %s", strings.Join(figures, "\n  "))
	})

	for _, method := range []string{"auth.test", "apps.connections.open"} {
		token := "SLACK_BOT_TOKEN"
		if method == "apps.connections.open" {
			token = "SLACK_APP_TOKEN"
		}
		for _, code := range tokenFatalCodes {
			t.Run("fatal/"+method+"/"+code, func(t *testing.T) {
				t.Parallel()
				tb := newTokenBed(t, bin)
				tb.slack.SetError(method, fakeslack.Always, code)
				startedAt := time.Now()
				p := tb.start(t, tb.slack.APIURL())
				if !p.wait(tokenExitWithin) {
					t.Fatalf("still running %s after start with %s refused (%s)\n%s", tokenExitWithin, token, code, tb.stderr)
				}
				took := time.Since(startedAt)
				code1 := -1
				if p.cmd.ProcessState != nil {
					code1 = p.cmd.ProcessState.ExitCode()
				}
				if code1 <= 0 {
					t.Errorf("exit status %d (%v), want non-zero", code1, p.err)
				}
				last := tokenLastLine(tb.stderr.String())
				// What to do: a new token, or, for a missing scope, the
				// scope (a new token would lack it too).
				todo := "create a new"
				if code == "missing_scope" {
					todo = "needed:"
				}
				for _, want := range []string{token, code, todo} {
					if !strings.Contains(last, want) {
						t.Errorf("the last line on stderr lacks %q: %s", want, last)
					}
				}
				if strings.HasPrefix(last, "{") {
					t.Errorf("the last line on stderr is a log record, not a message for a person: %s", last)
				}
				for _, secret := range []string{"xoxb-test-bot-token", "xapp-test-app-token"} {
					if strings.Contains(tb.stderr.String(), secret) {
						t.Errorf("a token appears on stderr")
					}
				}
				calls := len(tb.slack.Calls(method))
				report("%-21s %-22s exit %d after %5.2f s (%d %s calls): %s", method, code, code1, took.Seconds(), calls, method, last)
				if t.Failed() {
					t.Logf("stderr:\n%s", tb.stderr)
				}
			})
		}
	}

	transient := []struct {
		name  string
		setup func(tb *tokenBed)
		// proxy500, when set, puts a proxy before the fake that answers
		// the first three calls of that method with HTTP 500.
		proxy500 string
	}{
		{name: "auth.test/http-500x3", proxy500: "auth.test"},
		{name: "apps.connections.open/http-500x3", proxy500: "apps.connections.open"},
		{name: "auth.test/429x2", setup: func(tb *tokenBed) { tb.slack.SetRateLimit("auth.test", 2, time.Second) }},
		{name: "apps.connections.open/429x2", setup: func(tb *tokenBed) { tb.slack.SetRateLimit("apps.connections.open", 2, time.Second) }},
		{name: "apps.connections.open/internal_error-x3", setup: func(tb *tokenBed) { tb.slack.SetError("apps.connections.open", 3, "internal_error") }},
	}
	for _, tc := range transient {
		t.Run("transient/"+tc.name, func(t *testing.T) {
			t.Parallel()
			tb := newTokenBed(t, bin)
			apiURL := tb.slack.APIURL()
			var failed atomic.Int32
			if tc.proxy500 != "" {
				apiURL = tokenProxy500(t, tb.slack, tc.proxy500, 3, &failed)
			}
			if tc.setup != nil {
				tc.setup(tb)
			}
			startedAt := time.Now()
			p := tb.start(t, apiURL)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			connected := make(chan error, 1)
			go func() { connected <- tb.slack.WaitConnected(ctx) }()
			select {
			case err := <-connected:
				if err != nil {
					t.Fatalf("never connected: %v\n%s", err, tb.stderr)
				}
			case <-p.exited:
				p.done = true
				t.Fatalf("exited on a transient failure: %s\n%s", tokenLastLine(tb.stderr.String()), tb.stderr)
			}
			took := time.Since(startedAt)
			// Still up a moment later, and serving.
			if p.wait(300 * time.Millisecond) {
				t.Fatalf("exited after connecting: %v\n%s", p.err, tb.stderr)
			}
			env, err := tb.slack.SendSlashCommand(fakeslack.SlashCommand{Command: "/computebot", Text: "help", UserID: ana, ChannelID: channel})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tb.slack.WaitAck(ctx, env); err != nil {
				t.Fatalf("connected but no ack: %v", err)
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if !p.wait(10 * time.Second) {
				t.Fatal("no exit within 10 s of SIGTERM")
			}
			if p.err != nil {
				t.Errorf("exit after SIGTERM: %v", p.err)
			}
			detail := ""
			if tc.proxy500 != "" {
				detail = fmt.Sprintf(" (%d HTTP 500s)", failed.Load())
			}
			report("%-40s connected after %5.2f s%s", "transient "+tc.name, took.Seconds(), detail)
		})
	}
}

// tokenBed is one run of the binary against its own fakes.
type tokenBed struct {
	bin    string
	dir    string
	cfg    string
	slack  *fakeslack.Server
	aws    *fakeaws.Server
	stderr *syncbuf.Buffer
}

func newTokenBed(t *testing.T, bin string) *tokenBed {
	t.Helper()
	tb := &tokenBed{bin: bin, dir: t.TempDir(), slack: fakeslack.New(), aws: fakeaws.New(), stderr: &syncbuf.Buffer{}}
	t.Cleanup(tb.slack.Close)
	t.Cleanup(tb.aws.Close)
	tb.slack.AddUser(ana, "ana")
	tb.slack.AddChannel(channel, "data-science")
	tb.cfg = filepath.Join(tb.dir, "config.yaml")
	if err := os.WriteFile(tb.cfg, []byte(fmt.Sprintf(baseConfig, filepath.Join(tb.dir, "computebot.db"))), 0o600); err != nil {
		t.Fatal(err)
	}
	return tb
}

func (tb *tokenBed) start(t *testing.T, apiURL string) *binaryProc {
	t.Helper()
	env := binaryEnv(tb.dir, tb.slack, tb.aws)
	for i, kv := range env {
		if strings.HasPrefix(kv, "SLACK_API_URL=") {
			env[i] = "SLACK_API_URL=" + apiURL
		}
	}
	return startBinary(t, tb.bin, env, tb.stderr, "--config", tb.cfg, "--listen", "")
}

// tokenProxy500 serves the fake's Web API through a proxy that answers the
// first n calls of method with HTTP 500, as a Slack outage would; it
// returns the proxy's API URL.
func tokenProxy500(t *testing.T, slack *fakeslack.Server, method string, n int32, failed *atomic.Int32) string {
	t.Helper()
	target, err := url.Parse(slack.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/"+method && failed.Load() < n {
			failed.Add(1)
			http.Error(w, "upstream unavailable", http.StatusInternalServerError)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/api/"
}

// tokenLastLine is the last non-empty line of s.
func tokenLastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// TestTokenRevokedAtRunTimeFailsHealthz: when Slack refuses the app-level
// token after the start (the bot token was fine), Main delivers the fatal
// error on Done and /healthz answers 503 from then on, naming it.
func TestTokenRevokedAtRunTimeFailsHealthz(t *testing.T) {
	b := &bed{t: t, slack: fakeslack.New(), aws: fakeaws.New(), dir: t.TempDir(), stderr: &syncbuf.Buffer{}}
	t.Cleanup(b.slack.Close)
	t.Cleanup(b.aws.Close)
	b.slack.SetError("apps.connections.open", fakeslack.Always, "token_revoked")
	for _, kv := range [][2]string{
		{"AWS_ENDPOINT_URL", b.aws.URL()}, {"AWS_REGION", "us-east-1"}, {"AWS_ACCESS_KEY_ID", "AKIDTEST"},
		{"AWS_SECRET_ACCESS_KEY", "SECRETTEST"}, {"AWS_MAX_ATTEMPTS", "1"}, {"AWS_EC2_METADATA_DISABLED", "true"},
		{"AWS_CONFIG_FILE", filepath.Join(b.dir, "no-aws-config")}, {"AWS_SHARED_CREDENTIALS_FILE", filepath.Join(b.dir, "no-aws-credentials")},
	} {
		t.Setenv(kv[0], kv[1])
	}
	cfg := filepath.Join(b.dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(baseConfig, filepath.Join(b.dir, "computebot.db"))), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMain()
	m.Getenv = b.env
	m.Stderr = b.stderr
	m.Listen = "127.0.0.1:0"
	if err := m.ParseFlags([]string{"--config", cfg}); err != nil {
		t.Fatal(err)
	}
	startedAt := time.Now()
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("Main.Run: %v (the bot token is fine: the start must succeed)", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	var runErr error
	select {
	case runErr = <-m.Done():
	case <-time.After(tokenExitWithin):
		t.Fatalf("Main still running %s after Slack refused the app token\n%s", tokenExitWithin, b.stderr)
	}
	took := time.Since(startedAt)
	if runErr == nil || !strings.Contains(runErr.Error(), "SLACK_APP_TOKEN") || !strings.Contains(runErr.Error(), "token_revoked") {
		t.Errorf("Done delivered %v, want the refused SLACK_APP_TOKEN", runErr)
	}
	code, body := get(t, "http://"+m.ListenAddr()+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "SLACK_APP_TOKEN") {
		t.Errorf("/healthz after the fatal error: %d %q, want 503 naming SLACK_APP_TOKEN", code, body)
	}
	t.Logf("tokens: Main: app token refused at run time → Done after %.2f s; /healthz %d", took.Seconds(), code)
}
