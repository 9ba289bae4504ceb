package fakeaws

import (
	mrand "math/rand/v2"
	"net/http"
)

// injected is what every queued injection has: the action it applies to
// ("" = any action) and how many more calls it takes.
type injected struct {
	action    string
	remaining int
}

func (i *injected) slot() *injected { return i }

// injection is a queued fault or drop.
type injection interface{ slot() *injected }

// take consumes one use of the entry of queue that applies to action: the
// oldest registered for action itself, else the oldest for any action. It
// returns the entry (nil when none applies) and the queue without it once
// it is used up.
func take[T injection](queue []T, action string) (T, []T) {
	pick := -1
	for i, e := range queue {
		if a := e.slot().action; a == action {
			pick = i
			break
		} else if a == "" && pick < 0 {
			pick = i
		}
	}
	var none T
	if pick < 0 {
		return none, queue
	}
	e := queue[pick]
	if e.slot().remaining--; e.slot().remaining <= 0 {
		queue = append(queue[:pick], queue[pick+1:]...)
	}
	return e, queue
}

// drop loses the answer of a call that took effect.
type drop struct {
	injected
	hangUp bool // close the connection instead of answering 500
}

// SetDropResponse makes the next n calls of action ("" = any action) that
// succeed take effect and then answer the service's internal error (HTTP
// 500: InternalError for EC2, InternalFailure for STS, InternalServiceError
// for CloudWatch, ServiceException for Lambda and Service Quotas,
// InternalErrorException for Pricing, InternalServerError for SSM) instead
// of their answer: "the call succeeded but the answer was lost", which a
// caller must survive by retrying idempotently (a RunInstances retry with
// the same ClientToken gets the instance the lost call launched). Calls
// that fail anyway are answered as usual and do not use a drop up. The
// SDK's standard retryer retries a 500 by itself. Drops queue up like FailNext's faults, together with
// SetDropConnection's. n <= 0 does nothing.
func (s *Server) SetDropResponse(action string, n int) { s.addDrop(action, n, false) }

// SetDropConnection is SetDropResponse with the connection closed, without
// any HTTP answer, instead of the 500: the client sees an EOF (the SDK
// retries it as a connection error; Go's transport does not replay a POST).
// The call is recorded with ErrorCode "ConnectionClosed".
func (s *Server) SetDropConnection(action string, n int) { s.addDrop(action, n, true) }

func (s *Server) addDrop(action string, n int, hangUp bool) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops = append(s.drops, &drop{injected: injected{action: action, remaining: n}, hangUp: hangUp})
}

// takeDrop consumes one drop for action (see take), or returns nil.
func (s *Server) takeDrop(action string) *drop {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d *drop
	d, s.drops = take(s.drops, action)
	return d
}

// loseAnswer answers a call that took effect with the service's internal
// error, or closes the connection.
func (s *Server) loseAnswer(w http.ResponseWriter, proto protocol, req *request, idx int, hangUp bool) {
	if hangUp {
		s.setCallError(idx, "ConnectionClosed", true)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		// Not hijackable (HTTP/2): abort the response, which net/http
		// turns into a reset stream or a closed connection.
		panic(http.ErrAbortHandler)
	}
	e := faultsOf(req.service).internal
	s.setCallError(idx, e.code, true)
	proto.writeError(w, &e, req.requestID)
}

// throttle refuses a fraction of an action's calls, drawn from its own
// seeded generator.
type throttle struct {
	ratio float64
	rng   *mrand.Rand
}

// SetThrottleRatio throttles a fraction ratio of the calls of action ("" =
// every action without a ratio of its own) from now on, the way each
// service throttles: EC2 RequestLimitExceeded (HTTP 503), STS and
// CloudWatch Throttling (400), SSM ThrottlingException (400), Pricing
// ThrottlingException (429, as its model says), Lambda
// TooManyRequestsException (429, with Retry-After), Service Quotas
// TooManyRequestsException (429, as its model says). The SDK classifies all
// of them as throttling and its standard retryer retries them. A throttled
// call does nothing, as on AWS. Which calls are throttled is pseudo-random
// but fixed by seed: the same seed throttles the same calls of the same
// sequence, run after run (concurrent calls draw in arrival order). ratio
// >= 1 throttles every call; ratio <= 0 removes the action's ratio, except
// that for a named action it stays as an exemption from the "" one.
// FailNext faults are used up before a throttle is drawn.
func (s *Server) SetThrottleRatio(action string, ratio float64, seed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ratio <= 0 && action == "" {
		delete(s.throttles, action)
		return
	}
	s.throttles[action] = &throttle{ratio: max(ratio, 0), rng: mrand.New(mrand.NewPCG(uint64(seed), 0x7e57))}
}

// throttled draws whether this call of action is throttled.
func (s *Server) throttled(action string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.throttles[action]
	if !ok {
		t = s.throttles[""]
	}
	return t != nil && t.ratio > 0 && t.rng.Float64() < t.ratio
}

// serviceFaults are the errors a service answers when it throttles a call
// and when it fails internally.
type serviceFaults struct {
	throttle, internal apiError
}

var faultsByService = map[string]serviceFaults{
	"ec2":        {svcError("RequestLimitExceeded", http.StatusServiceUnavailable), svcError("InternalError", http.StatusInternalServerError)},
	"sts":        {svcError("Throttling", http.StatusBadRequest), svcError("InternalFailure", http.StatusInternalServerError)},
	"cloudwatch": {svcError("Throttling", http.StatusBadRequest), svcError("InternalServiceError", http.StatusInternalServerError)},
	"lambda":     {svcError("TooManyRequestsException", http.StatusTooManyRequests), svcError("ServiceException", http.StatusInternalServerError)},
	"pricing":    {svcError("ThrottlingException", http.StatusTooManyRequests), svcError("InternalErrorException", http.StatusInternalServerError)},
	"ssm":        {svcError("ThrottlingException", http.StatusBadRequest), svcError("InternalServerError", http.StatusInternalServerError)},
	// Service Quotas' model: TooManyRequestsException 429, ServiceException 500.
	"servicequotas": {svcError("TooManyRequestsException", http.StatusTooManyRequests),
		apiError{status: http.StatusInternalServerError, code: "ServiceException", message: "Something went wrong."}},
}

func svcError(code string, status int) apiError {
	return apiError{status: status, code: code, message: defaultMessage(code)}
}

func faultsOf(service string) serviceFaults {
	if f, ok := faultsByService[service]; ok {
		return f
	}
	return serviceFaults{svcError("ThrottlingException", http.StatusBadRequest), svcError("InternalFailure", http.StatusInternalServerError)}
}

func throttleError(service string) *apiError {
	e := faultsOf(service).throttle
	return &e
}
