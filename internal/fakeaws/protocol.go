package fakeaws

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// jsonTargets maps an X-Amz-Target prefix to our service name (JSON 1.1).
var jsonTargets = map[string]string{
	"AWSPriceListService": "pricing",
	"AmazonSSM":           "ssm",
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
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.Header().Set("X-Amzn-ErrorType", e.code)
	w.WriteHeader(e.status)
	b, _ := json.Marshal(map[string]string{"Type": typ, "Message": e.message})
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
