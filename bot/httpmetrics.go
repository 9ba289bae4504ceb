package bot

import (
	"net/http"
	"path"
)

// countingTransport reports each Slack Web API request's method (the last
// path element, e.g. chat.postMessage) and HTTP status; never the URL's
// query or headers, which may carry tokens.
type countingTransport struct {
	next   http.RoundTripper
	report func(method string, status int)
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	t.report(path.Base(req.URL.Path), status)
	return resp, err
}
