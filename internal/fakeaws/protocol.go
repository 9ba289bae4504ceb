package fakeaws

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// jsonTargets maps an X-Amz-Target prefix to our service name (JSON 1.1).
var jsonTargets = map[string]string{
	"AWSPriceListService":    "pricing",
	"AmazonSSM":              "ssm",
	"ServiceQuotasV20190624": "servicequotas",
}

// jsonProtocol is AWS JSON 1.1: POST /, X-Amz-Target: Prefix.Operation.
type jsonProtocol struct{}

func (jsonProtocol) match(r *http.Request, _ []byte) (string, string, url.Values, bool) {
	target := r.Header.Get("X-Amz-Target")
	prefix, op, ok := strings.Cut(target, ".")
	if !ok {
		return "", "", nil, false
	}
	svc, ok := jsonTargets[prefix]
	if !ok {
		return "", "", nil, false
	}
	return svc, op, nil, true
}

func (jsonProtocol) writeError(w http.ResponseWriter, e *apiError, requestID string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.WriteHeader(e.status)
	b, _ := json.Marshal(map[string]string{"__type": e.code, "message": e.message})
	_, _ = w.Write(b)
}

func jsonResponse(v any) (*response, *apiError) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, errorf("InternalFailure", "fakeaws: %v", err)
	}
	return &response{contentType: "application/x-amz-json-1.1", body: b}, nil
}

// decodeJSON decodes a JSON request body; an empty body is an empty object.
func decodeJSON(req *request, v any) *apiError {
	if len(strings.TrimSpace(string(req.body))) == 0 {
		return nil
	}
	if err := json.Unmarshal(req.body, v); err != nil {
		return errorf("SerializationException", "could not parse request body: %v", err)
	}
	return nil
}

// restJSONProtocol is AWS REST-JSON (Lambda): the operation is in the
// method and path, its parameters in path labels, query and headers.
// A path under a known prefix that matches no route is still the
// service's (and answered UnknownOperationException in its encoding).
type restJSONProtocol struct{}

// restPrefixes maps a path prefix to the service it belongs to.
var restPrefixes = map[string]string{
	"/2015-03-31/": "lambda",
}

// restRoute is one operation; {Label} segments capture path labels.
type restRoute struct {
	method, path, action string
}

var restRoutes = map[string][]restRoute{
	"lambda": {
		{http.MethodGet, "/2015-03-31/functions", "ListFunctions"},
		{http.MethodGet, "/2015-03-31/functions/{FunctionName}", "GetFunction"},
		{http.MethodPost, "/2015-03-31/functions/{FunctionName}/invocations", "Invoke"},
	},
}

func (restJSONProtocol) match(r *http.Request, _ []byte) (string, string, url.Values, bool) {
	path := r.URL.EscapedPath()
	svc := ""
	for prefix, name := range restPrefixes {
		if strings.HasPrefix(path, prefix) {
			svc = name
			break
		}
	}
	if svc == "" {
		return "", "", nil, false
	}
	segs := strings.Split(strings.TrimSuffix(path, "/"), "/")
	for _, rt := range restRoutes[svc] {
		if rt.method != r.Method {
			continue
		}
		if params, ok := matchRoute(rt.path, segs); ok {
			for k, vs := range r.URL.Query() {
				if _, label := params[k]; !label {
					params[k] = vs
				}
			}
			return svc, rt.action, params, true
		}
	}
	return svc, r.Method + " " + r.URL.Path, r.URL.Query(), true
}

// matchRoute matches the escaped path segments against a route pattern and
// returns the decoded labels.
func matchRoute(pattern string, segs []string) (url.Values, bool) {
	want := strings.Split(pattern, "/")
	if len(want) != len(segs) {
		return nil, false
	}
	params := url.Values{}
	for i, w := range want {
		if label, ok := strings.CutPrefix(w, "{"); ok {
			v, err := url.PathUnescape(segs[i])
			if err != nil || v == "" {
				return nil, false
			}
			params.Set(strings.TrimSuffix(label, "}"), v)
			continue
		}
		if w != segs[i] {
			return nil, false
		}
	}
	return params, true
}

// writeError answers like Lambda: the code in X-Amzn-ErrorType, the
// message in the body's Message, Type "User" or "Service".
func (restJSONProtocol) writeError(w http.ResponseWriter, e *apiError, requestID string) {
	typ := "User"
	if e.status >= 500 {
		typ = "Service"
	}
	body := map[string]string{"Type": typ, "Message": e.message}
	if e.code == "TooManyRequestsException" {
		// Its model spells the member "message" and adds a Reason and a
		// Retry-After header (the SDK's RetryAfterSeconds).
		body = map[string]string{"Type": typ, "message": e.message, "Reason": "CallerRateLimitExceeded"}
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.Header().Set("X-Amzn-ErrorType", e.code)
	w.WriteHeader(e.status)
	b, _ := json.Marshal(body)
	_, _ = w.Write(b)
}

// queryProtocol is the EC2 Query protocol: a form with Action= (in the body,
// or in the URL of a GET). Other AWS Query services (STS, …) share the
// shape; they are told apart by the SigV4 signing name when they arrive.
type queryProtocol struct{}

func (queryProtocol) match(r *http.Request, body []byte) (string, string, url.Values, bool) {
	params := url.Values{}
	if ct := r.Header.Get("Content-Type"); ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		if v, err := url.ParseQuery(string(body)); err == nil {
			params = v
		}
	}
	for k, vs := range r.URL.Query() {
		if _, ok := params[k]; !ok {
			params[k] = vs
		}
	}
	action := params.Get("Action")
	if action == "" {
		return "", "", nil, false
	}
	svc := signingService(r)
	if svc == "" {
		svc = "ec2"
	}
	return svc, action, params, true
}

func (queryProtocol) writeError(w http.ResponseWriter, e *apiError, requestID string) {
	type xmlError struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type xmlResponse struct {
		XMLName   xml.Name   `xml:"Response"`
		Errors    []xmlError `xml:"Errors>Error"`
		RequestID string     `xml:"RequestID"`
	}
	b, _ := xml.Marshal(xmlResponse{Errors: []xmlError{{e.code, e.message}}, RequestID: requestID})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

// xmlResponse marshals an EC2 answer. v's XMLName sets the root element;
// the namespace is EC2's, as the real service sends it.
func xmlResponse(v any) (*response, *apiError) {
	b, err := xml.Marshal(v)
	if err != nil {
		return nil, errorf("InternalError", "fakeaws: %v", err)
	}
	return &response{contentType: "text/xml;charset=UTF-8", body: append([]byte(xml.Header), b...)}, nil
}

// member is one element of a flattened Query list, e.g. the "1" of
// Filter.1.Name / Filter.1.Value.1.
type member struct {
	index  int
	value  string     // for scalar lists: InstanceId.1=value
	fields url.Values // for structure lists, keys relative to the member
}

// queryList collects the members of a flattened list (prefix.N or
// prefix.N.field…) ordered by N. The SDK numbers from 1 without gaps, but
// ordering by the number keeps hand-written requests working too.
func queryList(v url.Values, prefix string) []member {
	byIndex := map[int]*member{}
	for k, vs := range v {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		num, field, nested := strings.Cut(rest, ".")
		i, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		m := byIndex[i]
		if m == nil {
			m = &member{index: i, fields: url.Values{}}
			byIndex[i] = m
		}
		if nested {
			m.fields[field] = vs
		} else if len(vs) > 0 {
			m.value = vs[0]
		}
	}
	out := make([]member, 0, len(byIndex))
	for _, m := range byIndex {
		out = append(out, *m)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].index < out[b].index })
	return out
}

// queryStrings returns the scalar list prefix.1, prefix.2, … in order.
func queryStrings(v url.Values, prefix string) []string {
	var out []string
	for _, m := range queryList(v, prefix) {
		out = append(out, m.value)
	}
	return out
}

// rpcV2CBORProtocol is Smithy RPC v2 CBOR (CloudWatch since SDK v1.75):
// POST /service/{ServiceShape}/operation/{Operation}, a CBOR map in and out,
// timestamps as CBOR tag 1 (epoch seconds). Errors carry the shape ID in
// "__type" plus the HTTP status; CloudWatch is @awsQueryCompatible, so the
// old Query code rides along in X-Amzn-Query-Error ("Code;Sender"), and
// that, not __type, is the code the SDK reports.
type rpcV2CBORProtocol struct{}

// cborServices maps a Smithy service shape name to our service name.
var cborServices = map[string]string{
	"GraniteServiceVersion20100801": "cloudwatch",
}

func (rpcV2CBORProtocol) match(r *http.Request, _ []byte) (string, string, url.Values, bool) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/service/")
	if !ok {
		return "", "", nil, false
	}
	shape, op, ok := strings.Cut(rest, "/operation/")
	if !ok || shape == "" || op == "" || strings.Contains(op, "/") {
		return "", "", nil, false
	}
	svc, ok := cborServices[shape]
	if !ok {
		svc = shape
	}
	if r.Method != http.MethodPost {
		op = r.Method + " " + op // no such operation: UnknownOperationException
	}
	return svc, op, nil, true
}

// cborErrorShape is a modeled CloudWatch error: its shape and the member
// holding the message ("message" or "Message", as the model spells it).
type cborErrorShape struct{ shape, member string }

// cborErrorShapes maps the Query error codes the fake answers to
// CloudWatch's modeled errors (and Throttling to the shape AWS throttles
// with). Other codes (AccessDenied…) are sent with the bare code as __type.
var cborErrorShapes = map[string]cborErrorShape{
	"InvalidParameterValue":       {"com.amazonaws.cloudwatch#InvalidParameterValueException", "message"},
	"InvalidParameterCombination": {"com.amazonaws.cloudwatch#InvalidParameterCombinationException", "message"},
	"MissingParameter":            {"com.amazonaws.cloudwatch#MissingRequiredParameterException", "message"},
	"ValidationError":             {"com.amazonaws.cloudwatch#ValidationException", "message"},
	"InvalidNextToken":            {"com.amazonaws.cloudwatch#InvalidNextToken", "message"},
	"InternalServiceError":        {"com.amazonaws.cloudwatch#InternalServiceFault", "Message"},
	"LimitExceeded":               {"com.amazonaws.cloudwatch#LimitExceededFault", "message"},
	"ResourceNotFound":            {"com.amazonaws.cloudwatch#ResourceNotFound", "message"},
	// Not in CloudWatch's model: the shape AWS's frontends throttle with.
	"Throttling": {"com.amazon.coral.availability#ThrottlingException", "message"},
}

func (rpcV2CBORProtocol) writeError(w http.ResponseWriter, e *apiError, requestID string) {
	typ, member := e.code, "message"
	if s, ok := cborErrorShapes[e.code]; ok {
		typ, member = s.shape, s.member
	}
	fault := "Sender"
	if e.status >= 500 {
		fault = "Receiver"
	}
	body := cbor.Map{"__type": cbor.String(typ), member: cbor.String(e.message)}
	if member != "message" {
		// What the SDK reads for errors it has no type for.
		body["message"] = cbor.String(e.message)
	}
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.Header().Set("X-Amzn-Query-Error", e.code+";"+fault)
	w.WriteHeader(e.status)
	_, _ = w.Write(cbor.Encode(body))
}

func cborResponse(v cbor.Value) (*response, *apiError) {
	return &response{
		contentType: "application/cbor",
		header:      http.Header{"Smithy-Protocol": {"rpc-v2-cbor"}},
		body:        cbor.Encode(v),
	}, nil
}

// decodeCBORMap checks an RPC v2 CBOR request's headers and decodes its
// body, which must be a map (an empty body is an empty map).
func decodeCBORMap(req *request) (cbor.Map, *apiError) {
	h := req.http.Header
	if h.Get("Smithy-Protocol") != "rpc-v2-cbor" {
		return nil, errorf("SerializationException", "the Smithy-Protocol header must be rpc-v2-cbor, not %q", h.Get("Smithy-Protocol"))
	}
	body := req.body
	if len(body) == 0 {
		return cbor.Map{}, nil
	}
	if ct := h.Get("Content-Type"); ct != "application/cbor" {
		return nil, errorf("UnsupportedMediaTypeException", "Content-Type must be application/cbor, not %q", ct)
	}
	if h.Get("Content-Encoding") == "gzip" {
		b, err := gunzip(body)
		if err != nil {
			return nil, errorf("SerializationException", "could not gunzip the request body: %v", err)
		}
		body = b
	}
	v, err := cbor.Decode(body)
	if err != nil {
		return nil, errorf("SerializationException", "could not decode the CBOR body: %v", err)
	}
	m, ok := v.(cbor.Map)
	if !ok {
		return nil, errorf("SerializationException", "the CBOR body is a %T, not a map", v)
	}
	return m, nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return io.ReadAll(zr)
}

// present is m[key] unless absent or CBOR null.
func present(m cbor.Map, key string) (cbor.Value, bool) {
	v, ok := m[key]
	if !ok {
		return nil, false
	}
	if _, null := v.(*cbor.Nil); null {
		return nil, false
	}
	return v, true
}

func cborTypeError(key string, want string, v cbor.Value) *apiError {
	return errorf("SerializationException", "expected %s for member %s, got %T", want, key, v)
}

func cborString(m cbor.Map, key string) (string, bool, *apiError) {
	v, ok := present(m, key)
	if !ok {
		return "", false, nil
	}
	s, ok := v.(cbor.String)
	if !ok {
		return "", false, cborTypeError(key, "a string", v)
	}
	return string(s), true, nil
}

func cborInt(m cbor.Map, key string) (int64, bool, *apiError) {
	v, ok := present(m, key)
	if !ok {
		return 0, false, nil
	}
	n, err := cbor.AsInt64(v)
	if err != nil {
		return 0, false, cborTypeError(key, "an integer", v)
	}
	return n, true, nil
}

func cborBool(m cbor.Map, key string) (bool, bool, *apiError) {
	v, ok := present(m, key)
	if !ok {
		return false, false, nil
	}
	b, ok := v.(cbor.Bool)
	if !ok {
		return false, false, cborTypeError(key, "a boolean", v)
	}
	return bool(b), true, nil
}

func cborList(m cbor.Map, key string) (cbor.List, *apiError) {
	v, ok := present(m, key)
	if !ok {
		return nil, nil
	}
	l, ok := v.(cbor.List)
	if !ok {
		return nil, cborTypeError(key, "a list", v)
	}
	return l, nil
}

// cborTimeValue reads a timestamp: tag 1 around integral or floating-point
// epoch seconds (the SDK sends float64 with millisecond precision).
func cborTimeValue(m cbor.Map, key string) (time.Time, bool, *apiError) {
	v, ok := present(m, key)
	if !ok {
		return time.Time{}, false, nil
	}
	t, ok := cborEpoch(v)
	if !ok {
		return time.Time{}, false, cborTypeError(key, "a timestamp (tag 1)", v)
	}
	return t, true, nil
}

func cborEpoch(v cbor.Value) (time.Time, bool) {
	tag, ok := v.(*cbor.Tag)
	if !ok || tag.ID != 1 {
		return time.Time{}, false
	}
	switch f := tag.Value.(type) {
	case cbor.Float64:
		return time.UnixMilli(int64(math.Round(float64(f) * 1e3))).UTC(), true
	case cbor.Float32:
		return time.UnixMilli(int64(math.Round(float64(f) * 1e3))).UTC(), true
	}
	secs, err := cbor.AsInt64(tag.Value)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(secs, 0).UTC(), true
}

// cborTime encodes a Unix-nanosecond time the way the SDK does: tag 1
// around float64 epoch seconds, millisecond precision.
func cborTime(nanos int64) cbor.Value {
	return &cbor.Tag{ID: 1, Value: cbor.Float64(float64(time.Unix(0, nanos).UnixMilli()) / 1e3)}
}

// cborTimeList and cborFloatList encode a list of timestamps (Unix
// nanoseconds, sent as tag 1 around float64 seconds like cborTime) or of
// doubles directly to bytes: GetMetricData answers hold thousands, and a
// cbor.Value per element is most of the cost of encoding them.
func cborTimeList(ts []int64) cbor.EncodeRaw {
	b := appendCBORHead(make([]byte, 0, 9+10*len(ts)), 4, len(ts))
	for _, t := range ts {
		b = append(b, 0xc1, 0xfb) // tag 1, float64
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(float64(time.Unix(0, t).UnixMilli())/1e3))
	}
	return b
}

func cborFloatList(vs []float64) cbor.EncodeRaw {
	b := appendCBORHead(make([]byte, 0, 9+9*len(vs)), 4, len(vs))
	for _, v := range vs {
		b = append(b, 0xfb)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// appendCBORHead appends the head of a data item of the major type with
// argument n (for a list, its length).
func appendCBORHead(b []byte, major byte, n int) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), uint64(n))
}

// flattenCBOR turns a decoded CBOR request into Query-style parameters
// (Map keys joined with ".", list members numbered from 1, timestamps as
// RFC 3339), for Call.Params.
func flattenCBOR(v cbor.Value, prefix string, out url.Values) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case cbor.Map:
		for k, vv := range x {
			flattenCBOR(vv, join(k), out)
		}
	case cbor.List:
		for i, vv := range x {
			flattenCBOR(vv, join(strconv.Itoa(i+1)), out)
		}
	case *cbor.Tag:
		if t, ok := cborEpoch(x); ok {
			out.Set(prefix, t.Format(time.RFC3339Nano))
		}
	case cbor.String:
		out.Set(prefix, string(x))
	case cbor.Bool:
		out.Set(prefix, strconv.FormatBool(bool(x)))
	case cbor.Float64:
		out.Set(prefix, strconv.FormatFloat(float64(x), 'g', -1, 64))
	case cbor.Float32:
		out.Set(prefix, strconv.FormatFloat(float64(x), 'g', -1, 32))
	case cbor.Slice:
		out.Set(prefix, base64.StdEncoding.EncodeToString(x))
	case cbor.Uint, cbor.NegInt:
		if n, err := cbor.AsInt64(x); err == nil {
			out.Set(prefix, strconv.FormatInt(n, 10))
		}
	}
}

// cborParams decodes a recorded RPC v2 CBOR body (gzipped or not) into
// Query-style parameters; nil when it is not CBOR.
func cborParams(body []byte) url.Values {
	if len(body) >= 2 && body[0] == 0x1f && body[1] == 0x8b {
		b, err := gunzip(body)
		if err != nil {
			return nil
		}
		body = b
	}
	v, err := cbor.Decode(body)
	if err != nil {
		return nil
	}
	out := url.Values{}
	flattenCBOR(v, "", out)
	return out
}
