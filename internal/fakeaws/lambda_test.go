package fakeaws

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func lambdaClient(s *Server) *lambda.Client {
	return lambda.NewFromConfig(sdkConfig(), func(o *lambda.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

func TestListFunctionsPaginates(t *testing.T) {
	s := newFake(t)
	modified := time.Date(2024, 1, 2, 3, 4, 5, 678e6, time.UTC)
	const n = 120
	for i := range n {
		s.AddFunction(Function{Name: fmt.Sprintf("fn-%03d", i), LastModified: modified})
	}
	s.AddFunction(Function{Name: "aaa-first", Runtime: "nodejs20.x", MemoryMB: 512, Description: "the first"})

	c := lambdaClient(s)
	p := lambda.NewListFunctionsPaginator(c, &lambda.ListFunctionsInput{MaxItems: aws.Int32(50)})
	var names []string
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Functions) > 50 {
			t.Fatalf("page of %d", len(page.Functions))
		}
		for _, f := range page.Functions {
			names = append(names, aws.ToString(f.FunctionName))
		}
		if pages == 1 {
			f := page.Functions[0]
			if aws.ToString(f.FunctionName) != "aaa-first" || f.Runtime != lambdatypes.RuntimeNodejs20x ||
				aws.ToInt32(f.MemorySize) != 512 || aws.ToString(f.Description) != "the first" ||
				aws.ToString(f.FunctionArn) != "arn:aws:lambda:us-east-1:123456789012:function:aaa-first" ||
				aws.ToString(f.Handler) != "index.handler" || aws.ToInt32(f.Timeout) != 3 {
				t.Errorf("first function = %+v", f)
			}
			if got := aws.ToString(page.Functions[1].LastModified); got != "2024-01-02T03:04:05.678+0000" {
				t.Errorf("LastModified = %q, want Lambda's format", got)
			}
			if page.Functions[1].Runtime != "python3.12" || aws.ToInt32(page.Functions[1].MemorySize) != 128 {
				t.Errorf("defaults = %+v", page.Functions[1])
			}
		}
	}
	if pages != 3 || len(names) != n+1 {
		t.Errorf("%d pages, %d functions; want 3 pages, %d functions", pages, len(names), n+1)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("not in name order or repeated: %s then %s", names[i-1], names[i])
		}
	}
	calls := s.Calls("ListFunctions")
	if len(calls) != 3 || calls[0].Service != "lambda" || calls[0].Params.Get("MaxItems") != "50" ||
		calls[0].Params.Has("Marker") || calls[1].Params.Get("Marker") == "" {
		t.Errorf("calls = %+v", calls)
	}

	// Default page size, empty list, bad parameters.
	out, err := c.ListFunctions(ctx(t), &lambda.ListFunctionsInput{})
	if err != nil || len(out.Functions) != 50 || out.NextMarker == nil {
		t.Errorf("default page: %d functions, marker %v, %v", len(out.Functions), out.NextMarker, err)
	}
	_, err = c.ListFunctions(ctx(t), &lambda.ListFunctionsInput{Marker: aws.String("!!")})
	wantAPIError(t, err, "InvalidParameterValueException", http.StatusBadRequest)
	_, err = c.ListFunctions(ctx(t), &lambda.ListFunctionsInput{MaxItems: aws.Int32(10001)})
	wantAPIError(t, err, "InvalidParameterValueException", http.StatusBadRequest)

	empty := newFake(t)
	out, err = lambdaClient(empty).ListFunctions(ctx(t), &lambda.ListFunctionsInput{})
	if err != nil || len(out.Functions) != 0 || out.NextMarker != nil {
		t.Errorf("empty: %+v, %v", out, err)
	}
}

func TestGetFunction(t *testing.T) {
	s := newFake(t)
	s.AddFunction(Function{Name: "report", Runtime: "python3.13", MemoryMB: 256, Description: "nightly report"})
	c := lambdaClient(s)

	for _, ref := range []string{
		"report",
		"report:$LATEST",
		"arn:aws:lambda:us-east-1:123456789012:function:report",
		"123456789012:function:report",
	} {
		out, err := c.GetFunction(ctx(t), &lambda.GetFunctionInput{FunctionName: aws.String(ref)})
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		cfg := out.Configuration
		if aws.ToString(cfg.FunctionName) != "report" || cfg.Runtime != lambdatypes.RuntimePython313 ||
			aws.ToInt32(cfg.MemorySize) != 256 || aws.ToString(cfg.Description) != "nightly report" ||
			aws.ToString(cfg.Handler) != "lambda_function.lambda_handler" || aws.ToString(cfg.Version) != "$LATEST" {
			t.Errorf("%s: configuration = %+v", ref, cfg)
		}
		if out.Code == nil || aws.ToString(out.Code.RepositoryType) != "S3" {
			t.Errorf("%s: code = %+v", ref, out.Code)
		}
	}
	if p := s.Calls("GetFunction")[2].Params; p.Get("FunctionName") != "arn:aws:lambda:us-east-1:123456789012:function:report" {
		t.Errorf("recorded params = %v", p)
	}

	_, err := c.GetFunction(ctx(t), &lambda.GetFunctionInput{FunctionName: aws.String("nope")})
	wantAPIError(t, err, "ResourceNotFoundException", http.StatusNotFound)
	var rnf *lambdatypes.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("err = %T, want the typed ResourceNotFoundException", err)
	}
	if rnf.ErrorMessage() != "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope" || aws.ToString(rnf.Type) != "User" {
		t.Errorf("message %q, type %q", rnf.ErrorMessage(), aws.ToString(rnf.Type))
	}
	_, err = c.GetFunction(ctx(t), &lambda.GetFunctionInput{FunctionName: aws.String("report"), Qualifier: aws.String("7")})
	wantAPIError(t, err, "ResourceNotFoundException", http.StatusNotFound)
}

func TestInvokeSync(t *testing.T) {
	s := newFake(t)
	s.AddFunction(Function{Name: "echo"})
	s.AddFunction(Function{Name: "double", Handler: func(p []byte) ([]byte, string, string) {
		var in struct{ N int }
		_ = json.Unmarshal(p, &in)
		return fmt.Appendf(nil, `{"n":%d}`, 2*in.N), "doubling\n", ""
	}})
	s.AddFunction(Function{Name: "fails", Handler: func([]byte) ([]byte, string, string) {
		return nil, "about to fail", "boom"
	}})
	s.AddFunction(Function{Name: "chatty", Handler: func([]byte) ([]byte, string, string) {
		return []byte(`"ok"`), strings.Repeat("x", 10000) + "\nlast line", ""
	}})
	c := lambdaClient(s)

	out, err := c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("double"), Payload: []byte(`{"N":21}`), LogType: lambdatypes.LogTypeTail})
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != 200 || string(out.Payload) != `{"n":42}` || out.FunctionError != nil || aws.ToString(out.ExecutedVersion) != "$LATEST" {
		t.Errorf("out = %+v, payload %s", out, out.Payload)
	}
	reqID, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	logText, err := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	if err != nil {
		t.Fatal(err)
	}
	if reqID == "" || !strings.HasPrefix(string(logText), "START RequestId: "+reqID+" Version: $LATEST\ndoubling\nEND RequestId: "+reqID+"\nREPORT RequestId: "+reqID+"\tDuration: ") {
		t.Errorf("request ID %q, log %q", reqID, logText)
	}

	// The echo default; no log without LogType Tail.
	out, err = c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte(`{"a":[1,2]}`)})
	if err != nil || string(out.Payload) != `{"a":[1,2]}` || out.LogResult != nil {
		t.Errorf("echo: %+v %s %v", out, out.Payload, err)
	}
	out, err = c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("echo"), LogType: lambdatypes.LogTypeTail})
	if err != nil || string(out.Payload) != "null" {
		t.Errorf("echo without payload: %s %v", out.Payload, err)
	}
	if logText, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult)); !strings.HasPrefix(string(logText), "START RequestId: ") ||
		!strings.Contains(string(logText), "\nEND RequestId: ") {
		t.Errorf("echo log %q", logText)
	}

	// A function error is a 200 with X-Amz-Function-Error.
	out, err = c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("fails"), LogType: lambdatypes.LogTypeTail})
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != 200 || aws.ToString(out.FunctionError) != "Unhandled" || string(out.Payload) != `{"errorMessage":"boom","errorType":"Error"}` {
		t.Errorf("fails: %+v %s", out, out.Payload)
	}
	if logText, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult)); !strings.Contains(string(logText), "\nabout to fail\n") {
		t.Errorf("fails log %q", logText)
	}

	// The log result is the last 4 KB.
	out, err = c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("chatty"), LogType: lambdatypes.LogTypeTail})
	if err != nil {
		t.Fatal(err)
	}
	logText, _ = base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	if len(logText) != 4096 || !strings.Contains(string(logText), "last line\nEND RequestId") || strings.HasPrefix(string(logText), "START") {
		t.Errorf("chatty log: %d bytes, %q…", len(logText), logText[:40])
	}

	invs := s.Invocations("double")
	if len(invs) != 1 || string(invs[0].Payload) != `{"N":21}` || invs[0].Type != "RequestResponse" || invs[0].Time.IsZero() {
		t.Errorf("invocations = %+v", invs)
	}
	if got := len(s.Invocations("echo")); got != 2 {
		t.Errorf("echo invocations = %d", got)
	}
	if calls := s.Calls("Invoke"); len(calls) != 5 || calls[0].Service != "lambda" || string(calls[0].Body) != `{"N":21}` ||
		calls[0].Params.Get("FunctionName") != "double" {
		t.Errorf("calls = %+v", calls)
	}
}

func TestInvokeEventAndDryRun(t *testing.T) {
	s := newFake(t)
	ran := make(chan []byte, 1)
	s.AddFunction(Function{Name: "queue", Delay: time.Hour, Handler: func(p []byte) ([]byte, string, string) {
		ran <- p
		return nil, "", ""
	}})
	c := lambdaClient(s)

	start := time.Now()
	out, err := c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("queue"), InvocationType: lambdatypes.InvocationTypeEvent, Payload: []byte(`{"job":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Event took %v: Delay applies to synchronous invocations only", took)
	}
	reqID, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	if out.StatusCode != 202 || len(out.Payload) != 0 || reqID == "" || out.LogResult != nil {
		t.Errorf("event: %+v, request ID %q", out, reqID)
	}
	select {
	case p := <-ran:
		if string(p) != `{"job":1}` {
			t.Errorf("handler got %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Event handler never ran")
	}

	out, err = c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("queue"), InvocationType: lambdatypes.InvocationTypeDryRun})
	if err != nil || out.StatusCode != 204 {
		t.Errorf("dry run: %+v %v", out, err)
	}
	invs := s.Invocations("queue")
	if len(invs) != 2 || invs[0].Type != "Event" || invs[1].Type != "DryRun" {
		t.Errorf("invocations = %+v", invs)
	}
	select {
	case <-ran:
		t.Error("DryRun ran the handler")
	default:
	}
}

func TestInvokeErrors(t *testing.T) {
	s := newFake(t)
	s.AddFunction(Function{Name: "f"})
	c := lambdaClient(s)

	_, err := c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("missing")})
	wantAPIError(t, err, "ResourceNotFoundException", http.StatusNotFound)
	if !strings.Contains(err.Error(), "Function not found: arn:aws:lambda:us-east-1:123456789012:function:missing") {
		t.Errorf("err = %v", err)
	}

	_, err = c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("f"), Payload: []byte("not json")})
	wantAPIError(t, err, "InvalidRequestContentException", http.StatusBadRequest)

	big := []byte(`"` + strings.Repeat("a", 300<<10) + `"`)
	_, err = c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("f"), Payload: big, InvocationType: lambdatypes.InvocationTypeEvent})
	wantAPIError(t, err, "RequestTooLargeException", http.StatusRequestEntityTooLarge)
	out, err := c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("f"), Payload: big})
	if err != nil || len(out.Payload) != len(big) {
		t.Errorf("300 KB synchronous: %d bytes back, %v", len(out.Payload), err)
	}
	huge := []byte(`"` + strings.Repeat("a", 6<<20) + `"`)
	_, err = c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("f"), Payload: huge})
	wantAPIError(t, err, "RequestTooLargeException", http.StatusRequestEntityTooLarge)
	if n := len(s.Invocations("f")); n != 1 {
		t.Errorf("%d invocations recorded, want only the accepted one", n)
	}

	// Fault injection and latency work for Lambda actions, in REST-JSON.
	s.FailNext("Invoke", "TooManyRequestsException", "", 1)
	s.FailNext("ListFunctions", "ServiceException", "", 1)
	s.FailNext("GetFunction", "AccessDeniedException", "", 1)
	_, err = c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("f")})
	wantAPIError(t, err, "TooManyRequestsException", http.StatusTooManyRequests)
	var tmr *lambdatypes.TooManyRequestsException
	if !errors.As(err, &tmr) {
		t.Errorf("err = %T, want the typed TooManyRequestsException", err)
	}
	_, err = c.ListFunctions(ctx(t), &lambda.ListFunctionsInput{})
	wantAPIError(t, err, "ServiceException", http.StatusInternalServerError)
	_, err = c.GetFunction(ctx(t), &lambda.GetFunctionInput{FunctionName: aws.String("f")})
	wantAPIError(t, err, "AccessDeniedException", 0)
	if calls := s.Calls("Invoke"); calls[len(calls)-1].ErrorCode != "TooManyRequestsException" {
		t.Errorf("last Invoke recorded as %+v", calls[len(calls)-1])
	}

	const d = 100 * time.Millisecond
	s.SetLatency("GetFunction", d)
	start := time.Now()
	if _, err := c.GetFunction(ctx(t), &lambda.GetFunctionInput{FunctionName: aws.String("f")}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d {
		t.Errorf("GetFunction took %v under latency %v", took, d)
	}

	// An operation the fake does not serve answers in Lambda's encoding.
	_, err = c.ListAliases(ctx(t), &lambda.ListAliasesInput{FunctionName: aws.String("f")})
	wantAPIError(t, err, "UnknownOperationException", http.StatusBadRequest)
}

func TestInvokeDelayEndsWhenTheClientGivesUp(t *testing.T) {
	s := newFake(t)
	s.AddFunction(Function{Name: "slow", Delay: time.Hour})
	c := lambdaClient(s)

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Invoke(short, &lambda.InvokeInput{FunctionName: aws.String("slow")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	// The handler notices the disconnect and returns.
	deadline := time.Now().Add(5 * time.Second)
	for {
		calls := s.Calls("Invoke")
		if len(calls) == 1 && calls[0].ErrorCode == "ClientDisconnected" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler still waiting: %+v", calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(s.Invocations("slow")); n != 1 {
		t.Errorf("%d invocations, want 1 (it started)", n)
	}

	// A function with a Delay shorter than the client's patience answers.
	s.AddFunction(Function{Name: "slowish", Delay: 50 * time.Millisecond})
	start = time.Now()
	if _, err := c.Invoke(ctx(t), &lambda.InvokeInput{FunctionName: aws.String("slowish")}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("took %v, want ≥ the Delay", took)
	}
}

func TestCloseReleasesRunningFunctions(t *testing.T) {
	s := New()
	s.AddFunction(Function{Name: "forever", Delay: time.Hour})
	go func() {
		_, _ = lambdaClient(s).Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("forever")})
	}()
	for len(s.Invocations("forever")) == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a function's Delay")
	}
}
