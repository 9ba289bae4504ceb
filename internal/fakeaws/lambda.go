package fakeaws

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Function is a Lambda function known to the fake.
type Function struct {
	Name        string
	Runtime     string // default python3.12
	Description string
	MemoryMB    int32 // default 128
	// Handler is the function's code. It gets the invocation's payload
	// (nil for none) and returns the response, its own log lines (the fake
	// wraps them in Lambda's START / END / REPORT lines) and, for a failed
	// run, an error message: then the answer carries X-Amz-Function-Error:
	// Unhandled and, when result is nil, Lambda's error object
	// {"errorMessage":…,"errorType":"Error"} as payload. A nil result of a
	// successful run is answered as JSON null. A nil Handler echoes the
	// payload with an empty log ("START…\nEND…\nREPORT…").
	//
	// Event invocations run the handler on a goroutine of its own after the
	// 202; Close waits for those, so a handler must return.
	Handler func(payload []byte) (result []byte, log string, functionError string)
	// LastModified defaults to the time AddFunction was called.
	LastModified time.Time
	// Delay is how long a synchronous invocation runs before the handler's
	// answer is sent. It ends early, without an answer, when the client
	// disconnects (gives up) or the server closes. Event invocations are
	// answered at once, whatever Delay says.
	Delay time.Duration
}

// Invocation is one accepted Invoke of a function.
type Invocation struct {
	Payload []byte
	Type    string // RequestResponse, Event or DryRun (which runs nothing)
	Time    time.Time
}

// Lambda's limits, as the fake enforces them.
const (
	syncPayloadLimit = 6 << 20 // 6 MB for RequestResponse
	// asyncPayloadLimit is 256 KB for Event, the limit the bot documents.
	// (AWS raised it to 1 MB in 2025; the fake keeps the stricter one.)
	asyncPayloadLimit = 256 << 10
	logTailLimit      = 4 << 10 // X-Amz-Log-Result carries the last 4 KB
	listFunctionsMax  = 10000   // largest MaxItems
	listFunctionsDef  = 50      // MaxItems when none is given
	lambdaTimeLayout  = "2006-01-02T15:04:05.000-0700"
	latestVersion     = "$LATEST"
)

// AddFunction adds or replaces a Lambda function.
func (s *Server) AddFunction(f Function) {
	if f.Runtime == "" {
		f.Runtime = "python3.12"
	}
	if f.MemoryMB == 0 {
		f.MemoryMB = 128
	}
	if f.LastModified.IsZero() {
		f.LastModified = time.Now()
	}
	// Lambda keeps milliseconds, in UTC.
	f.LastModified = f.LastModified.UTC().Truncate(time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.functions[f.Name] = f
}

// Invocations returns the accepted invocations of the function name,
// oldest first.
func (s *Server) Invocations(name string) []Invocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Invocation, 0, len(s.invocations[name]))
	for _, in := range s.invocations[name] {
		in.Payload = bytes.Clone(in.Payload)
		out = append(out, in)
	}
	return out
}

// functionConfigurationJSON is Lambda's FunctionConfiguration, the fields
// a caller may look at.
type functionConfigurationJSON struct {
	FunctionName     string   `json:"FunctionName"`
	FunctionArn      string   `json:"FunctionArn"`
	Runtime          string   `json:"Runtime"`
	Role             string   `json:"Role"`
	Handler          string   `json:"Handler"`
	CodeSize         int64    `json:"CodeSize"`
	CodeSha256       string   `json:"CodeSha256"`
	Description      string   `json:"Description"`
	Timeout          int32    `json:"Timeout"`
	MemorySize       int32    `json:"MemorySize"`
	LastModified     string   `json:"LastModified"`
	Version          string   `json:"Version"`
	State            string   `json:"State"`
	LastUpdateStatus string   `json:"LastUpdateStatus"`
	PackageType      string   `json:"PackageType"`
	Architectures    []string `json:"Architectures"`
}

func functionARN(region, name string) string {
	return "arn:aws:lambda:" + region + ":" + OwnerID + ":function:" + name
}

func (f Function) configuration(region string) functionConfigurationJSON {
	handler := "index.handler"
	if strings.HasPrefix(f.Runtime, "python") {
		handler = "lambda_function.lambda_handler"
	}
	return functionConfigurationJSON{
		FunctionName:     f.Name,
		FunctionArn:      functionARN(region, f.Name),
		Runtime:          f.Runtime,
		Role:             "arn:aws:iam::" + OwnerID + ":role/" + f.Name + "-role",
		Handler:          handler,
		CodeSize:         1024,
		CodeSha256:       base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%-32s", f.Name))[:32]),
		Description:      f.Description,
		Timeout:          3,
		MemorySize:       f.MemoryMB,
		LastModified:     f.LastModified.Format(lambdaTimeLayout),
		Version:          latestVersion,
		State:            "Active",
		LastUpdateStatus: "Successful",
		PackageType:      "Zip",
		Architectures:    []string{"x86_64"},
	}
}

// functionRef splits what the FunctionName label may hold (a name, a
// partial ARN 123456789012:function:NAME or a full ARN, each optionally
// with :QUALIFIER) into the name and qualifier; a Qualifier query parameter
// wins.
func functionRef(req *request) (name, qualifier string) {
	ref := req.params.Get("FunctionName")
	parts := strings.Split(ref, ":")
	switch {
	case len(parts) >= 7 && parts[0] == "arn":
		name = parts[6]
		if len(parts) > 7 {
			qualifier = parts[7]
		}
	case len(parts) >= 3 && parts[1] == "function":
		name = parts[2]
		if len(parts) > 3 {
			qualifier = parts[3]
		}
	default:
		name = parts[0]
		if len(parts) > 1 {
			qualifier = parts[1]
		}
	}
	if q := req.params.Get("Qualifier"); q != "" {
		qualifier = q
	}
	return name, qualifier
}

// functionLocked finds the function a request names. Only $LATEST exists.
func (s *Server) functionLocked(req *request) (Function, *apiError) {
	name, qualifier := functionRef(req)
	f, ok := s.functions[name]
	if !ok || (qualifier != "" && qualifier != latestVersion) {
		arn := functionARN(req.region, name)
		if qualifier != "" {
			arn += ":" + qualifier
		}
		return Function{}, errorf("ResourceNotFoundException", "Function not found: %s", arn)
	}
	return f, nil
}

func lambdaJSON(v any) (*response, *apiError) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, errorf("ServiceException", "fakeaws: %v", err)
	}
	return &response{contentType: "application/json", body: b}, nil
}

// --- ListFunctions ---------------------------------------------------------------

func encodeMarker(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("fakeaws:" + name))
}

func decodeMarker(m string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(m)
	if err != nil {
		return "", false
	}
	return strings.CutPrefix(string(b), "fakeaws:")
}

// lambdaListFunctions answers GET /2015-03-31/functions/ in name order,
// MaxItems per page (default 50), continued by an opaque Marker.
func lambdaListFunctions(s *Server, req *request) (*response, *apiError) {
	limit := listFunctionsDef
	if v := req.params.Get("MaxItems"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > listFunctionsMax {
			return nil, errorf("InvalidParameterValueException",
				"1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and %d", v, listFunctionsMax)
		}
		limit = n
	}
	after := ""
	if m := req.params.Get("Marker"); m != "" {
		name, ok := decodeMarker(m)
		if !ok {
			return nil, errorf("InvalidParameterValueException", "Invalid marker: %s", m)
		}
		after = name
	}
	s.mu.Lock()
	names := sortedKeys(s.functions)
	start := sort.Search(len(names), func(i int) bool { return names[i] > after })
	out := struct {
		Functions  []functionConfigurationJSON `json:"Functions"`
		NextMarker string                      `json:"NextMarker,omitempty"`
	}{Functions: []functionConfigurationJSON{}}
	for _, name := range names[start:] {
		if len(out.Functions) == limit {
			out.NextMarker = encodeMarker(out.Functions[len(out.Functions)-1].FunctionName)
			break
		}
		out.Functions = append(out.Functions, s.functions[name].configuration(req.region))
	}
	s.mu.Unlock()
	return lambdaJSON(out)
}

// --- GetFunction -----------------------------------------------------------------

func lambdaGetFunction(s *Server, req *request) (*response, *apiError) {
	s.mu.Lock()
	f, aerr := s.functionLocked(req)
	s.mu.Unlock()
	if aerr != nil {
		return nil, aerr
	}
	type codeLocation struct {
		RepositoryType string `json:"RepositoryType"`
		Location       string `json:"Location"`
	}
	return lambdaJSON(struct {
		Configuration functionConfigurationJSON `json:"Configuration"`
		Code          codeLocation              `json:"Code"`
		Tags          map[string]string         `json:"Tags"`
	}{
		Configuration: f.configuration(req.region),
		Code: codeLocation{RepositoryType: "S3",
			Location: "https://awslambda-" + req.region + "-tasks.s3." + req.region + ".amazonaws.com/snapshots/" + OwnerID + "/" + f.Name},
		Tags: map[string]string{},
	})
}

// --- Invoke ----------------------------------------------------------------------

// lambdaInvoke answers POST /2015-03-31/functions/NAME/invocations: the raw
// payload in, the function's raw response out, the rest in headers.
func lambdaInvoke(s *Server, req *request) (*response, *apiError) {
	typ := req.http.Header.Get("X-Amz-Invocation-Type")
	if typ == "" {
		typ = "RequestResponse"
	}
	limit := syncPayloadLimit
	switch typ {
	case "RequestResponse", "DryRun":
	case "Event":
		limit = asyncPayloadLimit
	default:
		return nil, errorf("InvalidParameterValueException", "Unsupported invocation type: %s", typ)
	}
	logType := req.http.Header.Get("X-Amz-Log-Type")
	if logType != "" && logType != "None" && logType != "Tail" {
		return nil, errorf("InvalidParameterValueException", "Unsupported log type: %s", logType)
	}
	payload := req.body
	if len(payload) == 0 {
		payload = nil
	}

	s.mu.Lock()
	f, aerr := s.functionLocked(req)
	if aerr == nil && len(payload) > limit {
		aerr = errorf("RequestTooLargeException", "Request must be smaller than %d bytes for the Invoke operation", limit)
	}
	if aerr == nil && payload != nil && !json.Valid(payload) {
		aerr = errorf("InvalidRequestContentException", "Could not parse request body into json: Could not parse payload into json: Unexpected character")
	}
	if aerr != nil {
		s.mu.Unlock()
		return nil, aerr
	}
	s.invocations[f.Name] = append(s.invocations[f.Name], Invocation{Payload: bytes.Clone(payload), Type: typ, Time: time.Now()})
	if typ == "Event" {
		// Queued, as Lambda does; the run happens after the answer.
		s.async.Add(1)
	}
	s.mu.Unlock()

	switch typ {
	case "DryRun":
		return &response{status: http.StatusNoContent}, nil
	case "Event":
		go func() {
			defer s.async.Done()
			_, _, _ = runHandler(f, payload)
		}()
		return &response{status: http.StatusAccepted}, nil
	}

	start := time.Now()
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-req.http.Context().Done():
			return nil, &apiError{status: statusClientClosed, code: codeClientDisconnected, message: "the client went away while the function ran"}
		case <-s.done:
			return nil, &apiError{status: statusClientClosed, code: codeClientDisconnected, message: "the fake is closing"}
		}
	}
	result, log, ferr := runHandler(f, payload)
	took := time.Since(start)

	header := http.Header{}
	header.Set("X-Amz-Executed-Version", latestVersion)
	if ferr != "" {
		header.Set("X-Amz-Function-Error", "Unhandled")
		if result == nil {
			result, _ = json.Marshal(map[string]string{"errorMessage": ferr, "errorType": "Error"})
		}
	}
	if result == nil {
		result = []byte("null")
	}
	if logType == "Tail" {
		full := lambdaLog(req.requestID, log, took, f.MemoryMB)
		if len(full) > logTailLimit {
			full = full[len(full)-logTailLimit:]
		}
		header.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString([]byte(full)))
	}
	return &response{contentType: "application/json", header: header, body: result}, nil
}

// statusClientClosed and codeClientDisconnected mark, in Calls, an
// invocation whose client gave up before the function finished; nobody
// reads the answer.
const (
	statusClientClosed     = 499
	codeClientDisconnected = "ClientDisconnected"
)

func runHandler(f Function, payload []byte) (result []byte, log, functionError string) {
	if f.Handler == nil {
		return bytes.Clone(payload), "", ""
	}
	return f.Handler(payload)
}

// lambdaLog frames a function's own log lines the way Lambda does.
func lambdaLog(requestID, log string, took time.Duration, memoryMB int32) string {
	var b strings.Builder
	fmt.Fprintf(&b, "START RequestId: %s Version: %s\n", requestID, latestVersion)
	if log != "" {
		b.WriteString(log)
		if !strings.HasSuffix(log, "\n") {
			b.WriteByte('\n')
		}
	}
	ms := float64(took.Microseconds()) / 1000
	fmt.Fprintf(&b, "END RequestId: %s\n", requestID)
	fmt.Fprintf(&b, "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t\n",
		requestID, ms, int64(ms)+1, memoryMB, min(memoryMB, 64))
	return b.String()
}
