package aws_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/internal/fakeaws"
)

func TestListFunctions(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	modified := time.Date(2024, 1, 2, 3, 4, 5, 678e6, time.UTC)
	const n = 120 // three pages of 50
	for i := range n {
		fake.AddFunction(fakeaws.Function{Name: fmt.Sprintf("fn-%03d", i)})
	}
	fake.AddFunction(fakeaws.Function{Name: "aaa-report", Runtime: "nodejs20.x", MemoryMB: 512,
		Description: "nightly report", LastModified: modified})

	list, err := c.ListFunctions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n+1 {
		t.Fatalf("got %d functions, want %d", len(list), n+1)
	}
	want := computebot.Function{Name: "aaa-report", Runtime: "nodejs20.x", MemoryMB: 512, LastModified: modified, Description: "nightly report"}
	if list[0] != want {
		t.Errorf("first = %+v\n want %+v", list[0], want)
	}
	seen := map[string]bool{}
	for _, f := range list {
		if seen[f.Name] {
			t.Fatalf("duplicate %s", f.Name)
		}
		seen[f.Name] = true
		if f.LastModified.IsZero() || f.Runtime != "python3.12" && f.Name != "aaa-report" {
			t.Errorf("function %+v", f)
		}
	}
	calls := fake.Calls("ListFunctions")
	if len(calls) != 3 {
		t.Errorf("ListFunctions calls = %d, want 3 pages", len(calls))
	}
	for _, call := range calls {
		if call.Params.Get("MaxItems") != "50" {
			t.Errorf("MaxItems = %q", call.Params.Get("MaxItems"))
		}
	}

	empty := newFake(t)
	list, err = newClient(t, empty, aws.Options{}).ListFunctions(context.Background())
	if err != nil || len(list) != 0 {
		t.Errorf("empty region: %v, %v", list, err)
	}
}

func TestListFunctionsErrors(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{CallTimeout: 50 * time.Millisecond})
	for i := range 60 {
		fake.AddFunction(fakeaws.Function{Name: fmt.Sprintf("fn-%02d", i)})
	}
	fake.FailNext("ListFunctions", "AccessDeniedException", "", 1)
	_, err := c.ListFunctions(context.Background())
	if ce := wantCode(t, err, "AccessDeniedException"); !strings.Contains(ce.Message, "lambda:ListFunctions") {
		t.Errorf("Message = %q", ce.Message)
	}

	fake.FailNext("ListFunctions", "TooManyRequestsException", "", 1)
	_, err = c.ListFunctions(context.Background())
	ce := wantCode(t, err, "TooManyRequestsException")
	if ce.Message != "AWS is throttling requests right now; try again shortly." {
		t.Errorf("Message = %q", ce.Message)
	}

	fake.SetLatency("ListFunctions", time.Second)
	_, err = c.ListFunctions(context.Background())
	ce = wantCode(t, err, "Timeout")
	if ce.Message != "Lambda did not answer within 50ms." {
		t.Errorf("Message = %q", ce.Message)
	}
}

func TestGetFunction(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	modified := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	fake.AddFunction(fakeaws.Function{Name: "report", Runtime: "python3.13", MemoryMB: 256, Description: "d", LastModified: modified})

	f, err := c.GetFunction(context.Background(), "report")
	if err != nil {
		t.Fatal(err)
	}
	if want := (computebot.Function{Name: "report", Runtime: "python3.13", MemoryMB: 256, LastModified: modified, Description: "d"}); f != want {
		t.Errorf("got %+v, want %+v", f, want)
	}

	_, err = c.GetFunction(context.Background(), "nope")
	ce := wantCode(t, err, "ResourceNotFoundException")
	if !errors.Is(err, computebot.ErrNotFound) {
		t.Error("does not wrap ErrNotFound")
	}
	if ce.Message != "Lambda function nope does not exist in this region." {
		t.Errorf("Message = %q", ce.Message)
	}
}

func TestInvokeSync(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	fake.AddFunction(fakeaws.Function{Name: "greet", Handler: func(p []byte) ([]byte, string, string) {
		return []byte(`{"hello":"ana"}`), "INFO greeting ana\n", ""
	}})
	fake.AddFunction(fakeaws.Function{Name: "broken", Handler: func([]byte) ([]byte, string, string) {
		return nil, "Traceback (most recent call last):\nKeyError: 'x'", "KeyError: 'x'"
	}})
	fake.AddFunction(fakeaws.Function{Name: "echo"})
	ctx := context.Background()

	res, err := c.Invoke(ctx, computebot.Invocation{Function: "greet", Payload: []byte(`{"name":"ana"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || string(res.Payload) != `{"hello":"ana"}` || res.FunctionError != "" || res.ExecutedVersion != "$LATEST" {
		t.Errorf("result = %+v (payload %s)", res, res.Payload)
	}
	if res.RequestID == "" || !strings.HasPrefix(res.LogTail, "START RequestId: "+res.RequestID+" Version: $LATEST\nINFO greeting ana\nEND RequestId: "+res.RequestID+"\nREPORT ") {
		t.Errorf("request ID %q, log tail %q", res.RequestID, res.LogTail)
	}
	inv := fake.Invocations("greet")
	if len(inv) != 1 || inv[0].Type != "RequestResponse" || string(inv[0].Payload) != `{"name":"ana"}` {
		t.Errorf("invocations = %+v", inv)
	}

	res, err = c.Invoke(ctx, computebot.Invocation{Function: "broken", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatalf("a function error is not an Invoke error: %v", err)
	}
	if res.StatusCode != 200 || res.FunctionError != "Unhandled" || !strings.Contains(string(res.Payload), `"errorMessage":"KeyError: 'x'"`) ||
		!strings.Contains(res.LogTail, "KeyError: 'x'\nEND RequestId") {
		t.Errorf("result = %+v (payload %s)", res, res.Payload)
	}

	// No payload is sent as none.
	res, err = c.Invoke(ctx, computebot.Invocation{Function: "echo"})
	if err != nil || string(res.Payload) != "null" {
		t.Errorf("echo without payload: %s, %v", res.Payload, err)
	}
	if calls := fake.Calls("Invoke"); len(calls[len(calls)-1].Body) != 0 {
		t.Errorf("sent body %q", calls[len(calls)-1].Body)
	}
}

func TestInvokeAsync(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ran := make(chan []byte, 1)
	fake.AddFunction(fakeaws.Function{Name: "job", Delay: time.Hour, Handler: func(p []byte) ([]byte, string, string) {
		ran <- p
		return nil, "", ""
	}})
	res, err := c.Invoke(context.Background(), computebot.Invocation{Function: "job", Payload: []byte(`{"n":1}`), Async: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 202 || res.RequestID == "" || len(res.Payload) != 0 || res.LogTail != "" || res.FunctionError != "" {
		t.Errorf("result = %+v", res)
	}
	if inv := fake.Invocations("job"); len(inv) != 1 || inv[0].Type != "Event" {
		t.Errorf("invocations = %+v", inv)
	}
	select {
	case p := <-ran:
		if string(p) != `{"n":1}` {
			t.Errorf("handler got %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event never ran")
	}
}

func TestInvokeErrors(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	fake.AddFunction(fakeaws.Function{Name: "f"})
	ctx := context.Background()
	ok := []byte(`{}`)

	tests := []struct {
		name    string
		fault   string // injected code; "" = a real failure
		in      computebot.Invocation
		code    string
		message string
	}{
		{name: "not found", in: computebot.Invocation{Function: "nope", Payload: ok},
			code: "ResourceNotFoundException", message: "Lambda function nope does not exist in this region."},
		{name: "throttled", fault: "TooManyRequestsException", in: computebot.Invocation{Function: "f", Payload: ok},
			code:    "TooManyRequestsException",
			message: "Lambda is throttling f right now (too many concurrent runs or requests); try again shortly."},
		{name: "too large async", in: computebot.Invocation{Function: "f", Async: true, Payload: []byte(`"` + strings.Repeat("a", 257<<10) + `"`)},
			code: "RequestTooLargeException", message: "The payload is too large for Lambda (max 6 MB sync / 256 KB async)."},
		{name: "not JSON", in: computebot.Invocation{Function: "f", Payload: []byte("{oops")},
			code:    "InvalidRequestContentException",
			message: "Lambda could not read the payload for f as JSON (InvalidRequestContentException): Could not parse request body into json:", // + AWS's text
		},
		{name: "service", fault: "ServiceException", in: computebot.Invocation{Function: "f", Payload: ok},
			code: "ServiceException", message: "AWS had an internal error (ServiceException); try again shortly."},
		{name: "access denied", fault: "AccessDeniedException", in: computebot.Invocation{Function: "f", Payload: ok},
			code:    "AccessDeniedException",
			message: "The bot's AWS role is not allowed to call lambda:InvokeFunction (AccessDeniedException). Ask an admin to check the IAM policy."},
		{name: "not ready", fault: "ResourceConflictException", in: computebot.Invocation{Function: "f", Payload: ok},
			code: "ResourceConflictException", message: "Lambda function f is not ready to run right now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != "" {
				fake.FailNext("Invoke", tt.fault, "", 1)
			}
			_, err := c.Invoke(ctx, tt.in)
			ce := wantCode(t, err, tt.code)
			if !strings.HasPrefix(ce.Message, tt.message) {
				t.Errorf("Message = %q\n want %q", ce.Message, tt.message)
			}
			if got, want := errors.Is(err, computebot.ErrNotFound), tt.code == "ResourceNotFoundException"; got != want {
				t.Errorf("errors.Is(ErrNotFound) = %v", got)
			}
		})
	}
	if n := len(fake.Invocations("f")); n != 0 {
		t.Errorf("%d invocations ran despite the errors", n)
	}
}

// Invoke waits as long as the caller's ctx allows, not CallTimeout, and
// says how long that was when it runs out.
func TestInvokeTimeout(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{CallTimeout: 50 * time.Millisecond})
	fake.AddFunction(fakeaws.Function{Name: "slowish", Delay: 150 * time.Millisecond})
	fake.AddFunction(fakeaws.Function{Name: "stuck", Delay: time.Hour})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Invoke(ctx, computebot.Invocation{Function: "slowish", Payload: []byte(`{}`)}); err != nil {
		t.Fatalf("a function running longer than CallTimeout: %v", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Invoke(ctx, computebot.Invocation{Function: "stuck", Payload: []byte(`{}`)})
	took := time.Since(start)
	ce := wantCode(t, err, "Timeout")
	if want := "Lambda did not answer within 200ms; stuck may still be running."; ce.Message != want {
		t.Errorf("Message = %q\n want %q", ce.Message, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("does not wrap context.DeadlineExceeded")
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("took %v, want about the ctx deadline", took)
	}

	// Cancelled by the caller.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = c.Invoke(ctx, computebot.Invocation{Function: "slowish"})
	wantCode(t, err, "Canceled")
}

func TestParseLambdaTime(t *testing.T) {
	want := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2024-01-01T00:00:00.000+0000": want,
		"2024-01-01T02:00:00.000+0200": want,
		"2024-01-01T00:00:00+0000":     want,
		"2024-01-01T00:00:00Z":         want,
		"":                             {},
		"yesterday":                    {},
	} {
		if got := aws.ParseLambdaTime(in); !got.Equal(want) {
			t.Errorf("ParseLambdaTime(%q) = %v, want %v", in, got, want)
		}
	}
}
