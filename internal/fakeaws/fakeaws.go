// Package fakeaws is an in-process fake of the AWS services computebot uses,
// speaking the real wire protocols so tests can drive the real SDK clients
// (via BaseEndpoint or AWS_ENDPOINT_URL) instead of mocking our own adapter.
// Testing through the SDK catches what a mock cannot: wrong parameter names,
// list encodings, error codes and pagination handling.
//
// One HTTP server serves every service on one URL. Requests are routed by
// protocol: an X-Amz-Target header selects a JSON 1.1 service (Pricing,
// SSM, Service Quotas: ServiceQuotasV20190624.GetServiceQuota); a
// REST-JSON path prefix selects Lambda (/2015-03-31/…); a Smithy RPC v2
// CBOR path (/service/GraniteServiceVersion20100801/operation/…) selects
// CloudWatch; a form body with Action= is the EC2 Query protocol. Through
// the SDK's default chain, AWS_ENDPOINT_URL reaches every service, or one
// service's own variable does: AWS_ENDPOINT_URL_EC2, …_SSM, …_PRICING,
// …_LAMBDA, …_CLOUDWATCH, and for Service Quotas (service ID "Service
// Quotas", signing name servicequotas) AWS_ENDPOINT_URL_SERVICE_QUOTAS.
// Signatures are never verified. State is in memory and guarded by one
// mutex.
//
// Faults, each in the failing service's own encoding and HTTP status:
// FailNext/FailNextStatus fail the next calls before they act;
// SetThrottleRatio throttles a seeded pseudo-random fraction of calls
// (nothing done, as on AWS); SetDropResponse and SetDropConnection let a
// call act and then lose its answer (a 500, or a closed connection), the
// case idempotent retries (RunInstances ClientToken) exist for; SetLatency
// delays answers. Conditions of EC2 itself: SetNoCapacity (a type has no
// capacity in a subnet), RefuseHibernation (an instance will not
// hibernate), DeleteServiceQuota (a quota lookup fails).
package fakeaws

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// OwnerID is the account ID the fake reports as owner of every reservation.
const OwnerID = "123456789012"

// Image is an AMI known to the fake.
type Image struct {
	ID             string
	Name           string
	RootDeviceName string // default /dev/xvda
	Architecture   string // default x86_64
	// RootVolumeGiB is the size of the root device's snapshot, what a launch
	// gets without a BlockDeviceMapping Ebs.VolumeSize (default 8).
	RootVolumeGiB int32
}

// InstanceType is an EC2 instance type known to the fake.
type InstanceType struct {
	Name      string
	VCPUs     int32
	MemoryMiB int64
	GPUs      int32 // NVIDIA GPUs (GpuInfo); 0 for none
	// Hibernation is DescribeInstanceTypes' hibernationSupported: whether
	// RunInstances accepts HibernationOptions.Configured for the type.
	Hibernation bool
}

// Instance is a snapshot of one fake EC2 instance.
type Instance struct {
	ID               string
	Type             string
	State            string // pending, running, stopping, stopped, shutting-down, terminated
	ImageID          string
	KeyName          string
	SubnetID         string
	SecurityGroupIDs []string
	PublicIP         string // empty in a private subnet and while stopped
	PrivateIP        string
	LaunchTime       time.Time
	Tags             map[string]string
	VolumeTags       map[string]string
	ClientToken      string
	HttpTokens       string // "required" or "optional"
	RootEncrypted    bool
	// RootVolumeGiB is the root volume's size: the launch's BlockDeviceMapping
	// Ebs.VolumeSize for the image's root device, else the image's
	// RootVolumeGiB.
	RootVolumeGiB int32
	// HibernationConfigured is true for an instance launched with
	// HibernationOptions.Configured (DescribeInstances hibernationOptions).
	HibernationConfigured bool
	// Hibernated is true while an instance stopped by StopInstances with
	// Hibernate=true is stopping or stopped; a start clears it.
	Hibernated bool
	// Spot marks a Spot instance (DescribeInstances instanceLifecycle
	// "spot"); the fake only reports it (AddInstance).
	Spot bool

	// ReservationID groups instances launched by one RunInstances call.
	ReservationID string
	// RootVolumeID is the ID of the root EBS volume (CreateTags accepts it).
	RootVolumeID string
	// StateChangedAt is when the instance logically entered State. For a
	// lazily evaluated transition it is the moment the running delay
	// elapsed, not the moment a Describe noticed it, so benchmarks can
	// measure the bot's reaction time from it.
	StateChangedAt time.Time
}

// Call is one request the fake received.
type Call struct {
	Service string // "ec2", "pricing", "ssm", "servicequotas", "lambda", "cloudwatch" (or "unknown")
	Action  string // operation name, e.g. "RunInstances", "GetProducts", "GetServiceQuota", "Invoke", "GetMetricData"
	// Params are the EC2 Query form parameters; for REST-JSON (Lambda) the
	// query string plus the path labels (FunctionName); for RPC v2 CBOR
	// (CloudWatch) the body flattened the Query way (ScanBy,
	// MetricDataQueries.1.Id, MetricDataQueries.1.MetricStat.Metric.Dimensions.1.Value,
	// timestamps in RFC 3339), decoded when Calls is called; nil for JSON 1.1.
	Params url.Values
	Body   []byte    // raw request body (for Invoke, the payload)
	Time   time.Time // when the request arrived
	// ErrorCode is the error code answered, empty on success;
	// "ClientDisconnected" for an Invoke whose client gave up during the
	// function's Delay; "ConnectionClosed" for a call SetDropConnection
	// answered by closing the connection.
	ErrorCode string
	// AnswerLost is true for a call that took effect but whose answer was
	// replaced by an error or a closed connection (SetDropResponse,
	// SetDropConnection).
	AnswerLost bool
}

// Server is a running fake AWS endpoint. All methods are safe for
// concurrent use.
type Server struct {
	srv   *httptest.Server
	done  chan struct{} // closed by Close to release handlers sleeping on latency
	once  sync.Once
	async sync.WaitGroup // Lambda Event invocations still running

	mu            sync.Mutex
	images        map[string]Image
	types         map[string]InstanceType
	prices        map[string]float64
	params        map[string]ssmParam
	quotas        map[quotaKey]serviceQuota
	noCapacity    map[capacityKey]bool
	hibRefusals   map[string]*apiError // by instance ID: RefuseHibernation
	privateSubnet map[string]bool
	instances     map[string]*instance
	order         []*instance            // instances by seq (launch order), the DescribeInstances scan order
	metrics       map[metricKey][]sample // CloudWatch samples, each slice sorted by time
	volumes       map[string]string      // volume ID → instance ID
	tokens        map[string]*launchRecord
	functions     map[string]Function     // Lambda functions by name
	invocations   map[string][]Invocation // by function name
	runningDelay  time.Duration
	latency       map[string]time.Duration
	faults        []*fault
	drops         []*drop
	throttles     map[string]*throttle // by action; "" for every action
	calls         []Call
	callsDropped  int   // calls forgotten by ResetCalls
	seq           int64 // launch order; also the DescribeInstances page cursor
	nextPublic    int
	nextPrivate   int
}

type fault struct {
	injected
	code, message string
	status        int
}

// New starts a fake on 127.0.0.1 preloaded with the default instance
// types, images, prices and the public AL2023 SSM parameter.
func New() *Server {
	s := &Server{
		done:          make(chan struct{}),
		images:        map[string]Image{},
		types:         map[string]InstanceType{},
		prices:        map[string]float64{},
		params:        map[string]ssmParam{},
		quotas:        map[quotaKey]serviceQuota{},
		noCapacity:    map[capacityKey]bool{},
		hibRefusals:   map[string]*apiError{},
		privateSubnet: map[string]bool{},
		instances:     map[string]*instance{},
		metrics:       map[metricKey][]sample{},
		volumes:       map[string]string{},
		tokens:        map[string]*launchRecord{},
		functions:     map[string]Function{},
		invocations:   map[string][]Invocation{},
		latency:       map[string]time.Duration{},
		throttles:     map[string]*throttle{},
	}
	for _, t := range []InstanceType{
		{Name: "t2.micro", VCPUs: 1, MemoryMiB: 1024, Hibernation: true},
		{Name: "t3.small", VCPUs: 2, MemoryMiB: 2048, Hibernation: true},
		{Name: "t3.medium", VCPUs: 2, MemoryMiB: 4096, Hibernation: true},
		{Name: "t3.large", VCPUs: 2, MemoryMiB: 8192, Hibernation: true},
		{Name: "m5.large", VCPUs: 2, MemoryMiB: 8192, Hibernation: true},
		{Name: "c5.xlarge", VCPUs: 4, MemoryMiB: 8192, Hibernation: true},
		{Name: "g4dn.xlarge", VCPUs: 4, MemoryMiB: 16384, GPUs: 1, Hibernation: true},
		{Name: "g5.xlarge", VCPUs: 4, MemoryMiB: 16384, GPUs: 1},
		{Name: "g6.xlarge", VCPUs: 4, MemoryMiB: 16384, GPUs: 1},
		{Name: "p3.2xlarge", VCPUs: 8, MemoryMiB: 62464, GPUs: 1},
	} {
		s.AddInstanceType(t)
	}
	for _, img := range []Image{
		{ID: "ami-0123456789abcdef0", Name: "al2023-ami-2023.6.20241010.0-kernel-6.1-x86_64", RootDeviceName: "/dev/xvda"},
		{ID: "ami-0aaaaaaaaaaaaaaa1", Name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20241001", RootDeviceName: "/dev/sda1"},
		{ID: "ami-0bbbbbbbbbbbbbbb2", Name: "debian-12-amd64-20241004-1890", RootDeviceName: "/dev/xvda"},
	} {
		s.AddImage(img)
	}
	for _, q := range ec2VCPUQuotas {
		s.quotas[quotaKey{"ec2", q.code}] = serviceQuota{name: q.name, value: q.value}
	}
	s.SetPrice("t2.micro", 0.0116)
	s.SetPrice("t3.small", 0.0208)
	// The public parameter behind `resolve:ssm:` AMI configs.
	s.SetSSMParameter("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", "ami-0123456789abcdef0")
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the endpoint for every service, e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server. Handlers still sleeping on injected latency or a
// function's Delay are released first, because httptest.Server.Close waits
// for them; then it waits for Lambda Event invocations still running.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.async.Wait()
	})
}

// SetRunningDelay sets how long every transitional state lasts (pending →
// running, stopping → stopped, shutting-down → terminated). Transitions are
// evaluated lazily on each EC2 call and snapshot. With 0 (the default) the
// RunInstances answer says pending and the next DescribeInstances running.
func (s *Server) SetRunningDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runningDelay = d
}

// SetLatency delays the answer to every call of action by d; action ""
// applies to every call that has no latency of its own (so
// SetLatency("DescribeInstances", 0) exempts one action from a global one).
// The request still takes effect after the delay even if the client gave up,
// as on real AWS, where a timed-out call may well have succeeded.
func (s *Server) SetLatency(action string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency[action] = d
}

// FailNext makes the next n calls of action fail with the given error code
// (action "" = any action). Calls queue up: FailNext twice for one action
// fails the first n1 calls with the first code, then n2 with the second.
// The HTTP status is AWS's for that code: 412 for DryRunOperation, 503 for
// RequestLimitExceeded and ServiceUnavailable/Unavailable, 500 for the
// server-side codes (InternalError, InsufficientInstanceCapacity, …), else
// 400. Mind that the SDK's standard retryer retries 5xx and throttling
// codes on its own: with default retries a single injected 500/503 is
// invisible to the caller. An empty message gets AWS-like default text.
func (s *Server) FailNext(action, code, message string, n int) {
	s.FailNextStatus(action, code, message, statusFor(code), n)
}

// FailNextStatus is FailNext with an explicit HTTP status.
func (s *Server) FailNextStatus(action, code, message string, status, n int) {
	if n <= 0 {
		return
	}
	if message == "" {
		message = defaultMessage(code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{injected: injected{action: action, remaining: n}, code: code, message: message, status: status})
}

// ClearFaults drops every pending injected failure (FailNext,
// SetDropResponse, SetDropConnection), every throttle ratio and every
// latency.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.drops = nil, nil
	s.throttles = map[string]*throttle{}
	s.latency = map[string]time.Duration{}
}

// AddImage adds or replaces an AMI.
func (s *Server) AddImage(img Image) {
	if img.RootDeviceName == "" {
		img.RootDeviceName = "/dev/xvda"
	}
	if img.RootVolumeGiB <= 0 {
		img.RootVolumeGiB = defaultRootVolumeGiB
	}
	if img.Architecture == "" {
		img.Architecture = "x86_64"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.images[img.ID] = img
}

// AddInstanceType adds or replaces an instance type.
func (s *Server) AddInstanceType(t InstanceType) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.types[t.Name] = t
}

// SetPrice sets the on-demand Linux price GetProducts answers for a type.
// A negative price removes it.
func (s *Server) SetPrice(instanceType string, usdPerHour float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if usdPerHour < 0 {
		delete(s.prices, instanceType)
		return
	}
	s.prices[instanceType] = usdPerHour
}

// SetPrivateSubnet marks a subnet as private: instances launched (or
// started) in it get no public IP.
func (s *Server) SetPrivateSubnet(subnetID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.privateSubnet[subnetID] = true
}

// Instances returns a snapshot of every instance, in launch order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	out := make([]Instance, 0, len(s.instances))
	for _, in := range s.sortedLocked() {
		out = append(out, in.snapshot())
	}
	return out
}

// Instance returns a snapshot of one instance.
func (s *Server) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	in, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.snapshot(), true
}

// SetInstanceState forces an instance into state, as if something outside
// the bot (the console, an auto-stop) changed it. Entering running assigns a
// public IP when it has none (outside private subnets); entering stopped,
// stopping, shutting-down or terminated releases it. Unknown IDs are ignored.
func (s *Server) SetInstanceState(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return
	}
	s.enterLocked(in, state, time.Now())
}

// AddInstance seeds an instance, e.g. one of another user's. Empty fields
// get defaults: a fresh ID, type t2.micro, state running, launch time now,
// a private IP, a public IP (when running outside a private subnet), a
// reservation of its own and a root volume of its image's size.
func (s *Server) AddInstance(inst Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if inst.ID == "" {
		inst.ID = "i-" + randomHex(17)
	}
	if inst.Type == "" {
		inst.Type = "t2.micro"
	}
	if inst.State == "" {
		inst.State = stateRunning
	}
	if inst.LaunchTime.IsZero() {
		inst.LaunchTime = now
	}
	if inst.StateChangedAt.IsZero() {
		inst.StateChangedAt = inst.LaunchTime
	}
	if inst.PrivateIP == "" {
		inst.PrivateIP = s.privateIPLocked()
	}
	if inst.PublicIP == "" && inst.State == stateRunning && !s.privateSubnet[inst.SubnetID] {
		inst.PublicIP = s.publicIPLocked()
	}
	if inst.ReservationID == "" {
		inst.ReservationID = "r-" + randomHex(17)
	}
	if inst.RootVolumeID == "" {
		inst.RootVolumeID = "vol-" + randomHex(17)
	}
	if inst.HttpTokens == "" {
		inst.HttpTokens = "optional"
	}
	if inst.RootVolumeGiB <= 0 {
		inst.RootVolumeGiB = defaultRootVolumeGiB
		if img, ok := s.images[inst.ImageID]; ok {
			inst.RootVolumeGiB = img.RootVolumeGiB
		}
	}
	s.seq++
	in := &instance{Instance: inst.clone(), seq: s.seq}
	if old, ok := s.instances[inst.ID]; ok {
		in.seq = old.seq
		delete(s.volumes, old.RootVolumeID)
		s.order[s.orderIndexLocked(old.seq)] = in
	} else {
		s.order = append(s.order, in)
	}
	s.instances[in.ID] = in
	s.volumes[in.RootVolumeID] = in.ID
}

// Calls returns the recorded calls of action ("" = all), oldest first.
func (s *Server) Calls(action string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if action == "" || c.Action == action {
			c.Params = cloneValues(c.Params)
			if c.Params == nil && c.Service == "cloudwatch" {
				c.Params = cborParams(c.Body)
			}
			c.Body = bytes.Clone(c.Body)
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls, e.g. between the scans of a
// benchmark that counts calls per scan (and keeps memory flat).
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callsDropped += len(s.calls)
	s.calls = nil
}

// CallCount is len(Calls(action)) without the copies.
func (s *Server) CallCount(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if action == "" {
		return len(s.calls)
	}
	n := 0
	for _, c := range s.calls {
		if c.Action == action {
			n++
		}
	}
	return n
}

// --- routing ---------------------------------------------------------------

// request is one decoded call, whatever its protocol.
type request struct {
	http      *http.Request
	service   string
	action    string
	params    url.Values // Query protocols
	body      []byte
	region    string
	requestID string
}

// response is what a handler answers on success.
type response struct {
	status      int // 0 = 200
	contentType string
	header      http.Header
	body        []byte
}

// apiError is an AWS error; each protocol encodes it its own way.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(code, format string, args ...any) *apiError {
	return &apiError{status: statusFor(code), code: code, message: fmt.Sprintf(format, args...)}
}

// protocol recognises its own requests and encodes errors its own way.
// Each protocol (AWS JSON 1.1, REST-JSON for Lambda, RPC v2 CBOR for
// CloudWatch, EC2 Query) is one entry in protocols, checked in order.
type protocol interface {
	// match reports the service and action of r, or ok=false.
	match(r *http.Request, body []byte) (service, action string, params url.Values, ok bool)
	writeError(w http.ResponseWriter, e *apiError, requestID string)
}

type handlerFunc func(s *Server, req *request) (*response, *apiError)

// handlers maps "service.Action" to its implementation: one table, so
// what the fake serves is visible in one place.
var handlers = map[string]handlerFunc{
	"ec2.RunInstances":               ec2RunInstances,
	"ec2.DescribeInstances":          ec2DescribeInstances,
	"ec2.DescribeInstanceTypes":      ec2DescribeInstanceTypes,
	"ec2.DescribeImages":             ec2DescribeImages,
	"ec2.CreateTags":                 ec2CreateTags,
	"ec2.StopInstances":              ec2StopInstances,
	"ec2.StartInstances":             ec2StartInstances,
	"ec2.TerminateInstances":         ec2TerminateInstances,
	"ec2.DescribeKeyPairs":           ec2DescribeKeyPairs,
	"ec2.DescribeSecurityGroups":     ec2DescribeSecurityGroups,
	"ec2.DescribeSubnets":            ec2DescribeSubnets,
	"sts.GetCallerIdentity":          stsGetCallerIdentity,
	"pricing.GetProducts":            pricingGetProducts,
	"ssm.GetParameter":               ssmGetParameter,
	"ssm.GetParameters":              ssmGetParameters,
	"servicequotas.GetServiceQuota":  sqGetServiceQuota,
	"lambda.ListFunctions":           lambdaListFunctions,
	"lambda.GetFunction":             lambdaGetFunction,
	"lambda.Invoke":                  lambdaInvoke,
	"cloudwatch.GetMetricData":       cwGetMetricData,
	"cloudwatch.GetMetricStatistics": cwGetMetricStatistics,
}

// protocols in matching order: the JSON target header and the REST and
// RPC v2 path prefixes are unambiguous, so they go before the catch-all
// form check.
var protocols = []protocol{jsonProtocol{}, restJSONProtocol{}, rpcV2CBORProtocol{}, queryProtocol{}}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := &request{http: r, body: body, region: signingRegion(r), requestID: newRequestID()}
	var proto protocol
	for _, p := range protocols {
		if svc, action, params, ok := p.match(r, body); ok {
			proto, req.service, req.action, req.params = p, svc, action, params
			break
		}
	}
	if proto == nil {
		// Record it anyway: an unrouted call is usually a test calling a
		// service this fake does not implement yet, and the recording says so.
		s.record(Call{Service: "unknown", Action: r.Method + " " + r.URL.Path, Body: body, Time: arrived, ErrorCode: "UnknownOperationException"})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"__type":"UnknownOperationException","message":"fakeaws: no route for %s %s"}`, r.Method, r.URL.Path)
		return
	}
	idx := s.record(Call{Service: req.service, Action: req.action, Params: req.params, Body: body, Time: arrived})

	if d := s.latencyFor(req.action); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop()
			return
		}
	}

	resp, apiErr := s.dispatch(req)
	if apiErr != nil {
		s.setCallError(idx, apiErr.code, false)
		proto.writeError(w, apiErr, req.requestID)
		return
	}
	if d := s.takeDrop(req.action); d != nil {
		s.loseAnswer(w, proto, req, idx, d.hangUp)
		return
	}
	w.Header().Set("X-Amzn-Requestid", req.requestID)
	if resp.contentType != "" {
		w.Header().Set("Content-Type", resp.contentType)
	}
	for k, vs := range resp.header {
		w.Header()[k] = vs
	}
	body = resp.body
	if len(body) > 1024 && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		body = gzipped(body)
		w.Header().Set("Content-Encoding", "gzip")
	}
	if len(body) > safeResponseSize {
		// See safeResponseSize: give the client's write loop time to
		// finish with the request before it sees the answer.
		time.Sleep(5 * time.Millisecond)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if resp.status != 0 {
		w.WriteHeader(resp.status)
	}
	_, _ = w.Write(body)
}

// safeResponseSize works around a race between the SDK and net/http that
// only a very fast server (like this one, on loopback) triggers: the SDK
// closes the request body as soon as the response headers arrive, and if
// the transport's write loop has not yet finished its final read of that
// body it gets an error and closes the connection, cutting off any part of
// the response body not already buffered (the client buffers 4 KiB). Small
// answers always fit; larger ones are gzipped (the transport asks for gzip
// and decodes it transparently) and, if still large, held back briefly.
const safeResponseSize = 3000

var gzipPool = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return zw
}}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzipPool.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	gzipPool.Put(zw)
	return buf.Bytes()
}

func (s *Server) dispatch(req *request) (*response, *apiError) {
	if f := s.takeFault(req.action); f != nil {
		return nil, f
	}
	if s.throttled(req.action) {
		return nil, throttleError(req.service)
	}
	h, ok := handlers[req.service+"."+req.action]
	if !ok {
		if req.service == "ec2" {
			return nil, errorf("InvalidAction", "The action %s is not valid for this web service.", req.action)
		}
		return nil, errorf("UnknownOperationException", "fakeaws does not implement %s.%s", req.service, req.action)
	}
	return h(s, req)
}

// record appends a call and returns its number (counting calls that
// ResetCalls dropped, so a late setCallError never hits another call).
func (s *Server) record(c Call) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	return s.callsDropped + len(s.calls) - 1
}

func (s *Server) setCallError(n int, code string, lost bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := n - s.callsDropped; i >= 0 && i < len(s.calls) {
		s.calls[i].ErrorCode, s.calls[i].AnswerLost = code, lost
	}
}

func (s *Server) latencyFor(action string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.latency[action]; ok {
		return d
	}
	return s.latency[""]
}

// takeFault consumes one injected failure for action (see take).
func (s *Server) takeFault(action string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f *fault
	if f, s.faults = take(s.faults, action); f == nil {
		return nil
	}
	return &apiError{status: f.status, code: f.code, message: f.message}
}

// statusFor is the HTTP status AWS uses for an error code. The EC2 API
// reference splits codes into client errors (4xx) and server errors (5xx);
// throttling is 503. Lambda's and Service Quotas' codes have their own
// statuses (their models' httpError: NoSuchResourceException is 404).
func statusFor(code string) int {
	switch code {
	case "ResourceNotFoundException", "NoSuchResourceException":
		return http.StatusNotFound
	case "TooManyRequestsException":
		return http.StatusTooManyRequests
	case "RequestTooLargeException":
		return http.StatusRequestEntityTooLarge
	case "ResourceConflictException":
		return http.StatusConflict
	case "UnsupportedMediaTypeException":
		return http.StatusUnsupportedMediaType
	case "ServiceException":
		return http.StatusInternalServerError
	case "ResourceNotReadyException", "EC2ThrottledException", "ENILimitReachedException":
		return http.StatusBadGateway
	case "DryRunOperation":
		return http.StatusPreconditionFailed
	case "RequestLimitExceeded", "ServiceUnavailable", "Unavailable":
		return http.StatusServiceUnavailable
	case "InternalError", "InternalFailure", "InternalServerError", "InternalServerException", "InternalServiceError", "InternalErrorException",
		"InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientAddressCapacity",
		"InsufficientHostCapacity", "InsufficientReservedInstanceCapacity":
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func defaultMessage(code string) string {
	switch code {
	case "RequestLimitExceeded":
		return "Request limit exceeded."
	case "InsufficientInstanceCapacity":
		return "We currently do not have sufficient capacity in the Availability Zone you requested. Our system will be working on provisioning additional capacity."
	case "UnauthorizedOperation":
		return "You are not authorized to perform this operation."
	case "VcpuLimitExceeded":
		return "You have requested more vCPU capacity than your current vCPU limit allows for the instance bucket that the specified instance type belongs to."
	case "ServiceUnavailable", "Unavailable":
		return "The service is unavailable. Try again later."
	case "InternalError", "InternalFailure", "InternalServiceError", "InternalErrorException", "InternalServerError":
		return "An internal error has occurred."
	case "Throttling", "ThrottlingException", "TooManyRequestsException":
		return "Rate exceeded"
	case "ServiceException":
		return "An internal error occurred in the Lambda service."
	case "AccessDeniedException":
		return "User is not authorized to perform this action."
	}
	return "Injected failure: " + code
}

// credentialScope matches the scope in a SigV4 Authorization header:
// Credential=AKID/20261128/us-east-1/ec2/aws4_request.
var credentialScope = regexp.MustCompile(`Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request`)

// signingRegion is the region the client signed for; the fake is
// region-agnostic but echoes it in availability zones and ARNs.
func signingRegion(r *http.Request) string {
	if m := credentialScope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	return "us-east-1"
}

// signingService is the service name the client signed for, or "".
func signingService(r *http.Request) string {
	if m := credentialScope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[2]
	}
	return ""
}

// --- helpers ---------------------------------------------------------------

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

func newRequestID() string {
	h := randomHex(32)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// globMatch matches AWS filter wildcards: * (any run) and ? (one
// character); a backslash escapes the next character.
func globMatch(pattern, s string) bool {
	if !strings.ContainsAny(pattern, `*?\`) {
		return pattern == s
	}
	p, str := []rune(pattern), []rune(s)
	var match func(i, j int) bool
	match = func(i, j int) bool {
		for i < len(p) {
			switch p[i] {
			case '*':
				for k := j; k <= len(str); k++ {
					if match(i+1, k) {
						return true
					}
				}
				return false
			case '?':
				if j >= len(str) {
					return false
				}
			case '\\':
				if i+1 < len(p) {
					i++
				}
				if j >= len(str) || str[j] != p[i] {
					return false
				}
			default:
				if j >= len(str) || str[j] != p[i] {
					return false
				}
			}
			i++
			j++
		}
		return j == len(str)
	}
	return match(0, 0)
}
