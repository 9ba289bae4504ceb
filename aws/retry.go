package aws

// The retry policy: how hard each AWS call is retried, decided here and
// nowhere else. Reads retry harder than writes.
//
//   - Reads (retryRead: Describe*, GetParameter, GetProducts,
//     GetMetricData, ListFunctions, GetFunction, GetCallerIdentity) change
//     nothing, so another attempt is always safe. They use the SDK's
//     adaptive retry mode (retry.NewAdaptiveMode: standard retries plus a
//     client-side send rate that drops when AWS throttles and recovers as
//     calls succeed), Options.ReadAttempts attempts (default 8) and a backoff
//     capped by Options.ReadBackoffMax. AWS_MAX_ATTEMPTS does not lower
//     them. Each service client has its own read retryer, so a throttled
//     EC2 slows EC2 reads only.
//   - Writes (retryWrite: RunInstances, Start/Stop/TerminateInstances,
//     CreateTags) keep the retryer the SDK configuration gives the client:
//     standard mode, AWS_MAX_ATTEMPTS attempts (default 3). RunInstances is
//     safe to retry because of its ClientToken: every attempt resends the
//     same input, token included, and EC2 answers a repeated token with the
//     instance it already launched.
//   - Invoke (retryOnce) is tried exactly once: a retried invocation could
//     run the function twice, and invocations carry no token.
//
// Every attempt and any sleep in between are inside one call's
// CallTimeout.

import (
	"context"
	"errors"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithy "github.com/aws/smithy-go"
)

// Defaults of the read retry policy (Options.ReadAttempts, ReadBackoffMax).
const (
	DefaultReadAttempts   = 8
	DefaultReadBackoffMax = 2 * time.Second
)

// Retry modes of the reads (Options.ReadRetryMode), named as AWS_RETRY_MODE
// names them.
const (
	// RetryModeAdaptive is the SDK's standard retries plus a client-side
	// send rate: after a throttle the service client's reads are paced (at
	// worst one every 2 s, the SDK's floor), and the pace recovers as calls
	// succeed. It
	// spares an account whose EC2 rate limit is shared with others, at the
	// cost of latency while AWS throttles.
	RetryModeAdaptive = "adaptive"
	// RetryModeStandard retries with the same attempts and backoff but
	// never paces the client.
	RetryModeStandard = "standard"
)

// retryClass is how one AWS operation is retried.
type retryClass int

const (
	// retryWrite: the client's configured retryer (standard mode,
	// AWS_MAX_ATTEMPTS attempts, default 3).
	retryWrite retryClass = iota
	// retryRead: the service's adaptive read retryer, ReadAttempts attempts.
	retryRead
	// retryOnce: a single attempt.
	retryOnce
)

func (k retryClass) String() string {
	switch k {
	case retryRead:
		return "read"
	case retryOnce:
		return "once"
	}
	return "write"
}

// retryPolicy is the retry class of every operation the client calls, by
// IAM action (callInfo.API). An operation missing here is retried as a
// write, the cautious choice; TestRetryPolicyCoversEveryCall fails on one.
var retryPolicy = map[string]retryClass{
	"ec2:DescribeInstances":          retryRead,
	"ec2:DescribeInstanceTypes":      retryRead,
	"ec2:DescribeImages":             retryRead,
	"ec2:DescribeKeyPairs":           retryRead,
	"ec2:DescribeSecurityGroups":     retryRead,
	"ec2:DescribeSubnets":            retryRead,
	"ssm:GetParameter":               retryRead,
	"pricing:GetProducts":            retryRead,
	"cloudwatch:GetMetricData":       retryRead,
	"cloudwatch:GetMetricStatistics": retryRead, // the benchmark's one-by-one reader only
	"lambda:ListFunctions":           retryRead,
	"lambda:GetFunction":             retryRead,
	"sts:GetCallerIdentity":          retryRead,
	"servicequotas:GetServiceQuota":  retryRead,

	"ec2:RunInstances":       retryWrite, // also its DryRun (computebot check)
	"ec2:StartInstances":     retryWrite,
	"ec2:StopInstances":      retryWrite,
	"ec2:TerminateInstances": retryWrite,
	"ec2:CreateTags":         retryWrite,

	"lambda:InvokeFunction": retryOnce,
}

func retryClassOf(api string) retryClass {
	if k, ok := retryPolicy[api]; ok {
		return k
	}
	return retryWrite
}

// readRetryers are the adaptive retryers of the reads, one per service
// client: each keeps the client-side send rate and the retry quota of its
// service, shared by all that service's reads (a retryer per call would
// forget both).
type readRetryers struct {
	ec2, ssm, pricing, lambda, cloudwatch, sts, servicequotas awssdk.Retryer
}

func newReadRetryers(mode string, attempts int, maxBackoff time.Duration) readRetryers {
	r := func() awssdk.Retryer { return newReadRetryer(mode, attempts, maxBackoff) }
	return readRetryers{ec2: r(), ssm: r(), pricing: r(), lambda: r(), cloudwatch: r(), sts: r(), servicequotas: r()}
}

// newReadRetryer is the SDK's adaptive mode (or, for RetryModeStandard,
// its standard mode) with attempts attempts and sleeps of at most
// maxBackoff. The SDK's backoff is full jitter,
// rand × min(base × 2^retry, maxBackoff), base 1s for a throttle and 50ms
// otherwise.
func newReadRetryer(mode string, attempts int, maxBackoff time.Duration) awssdk.Retryer {
	standard := func(so *retry.StandardOptions) {
		so.MaxAttempts = attempts
		so.MaxBackoff = maxBackoff
	}
	if mode == RetryModeStandard {
		return retry.NewStandard(standard)
	}
	return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
		o.StandardOptions = append(o.StandardOptions, standard)
	})
}

// readBackoff is ReadBackoffMax capped so that the sleeps between the
// attempts of one read take at most half of its CallTimeout, leaving the
// other half to the attempts themselves.
func readBackoff(maxBackoff, callTimeout time.Duration, attempts int) time.Duration {
	if attempts > 1 {
		maxBackoff = min(maxBackoff, callTimeout/time.Duration(2*(attempts-1)))
	}
	return maxBackoff
}

// retryFor returns what the policy of api sets in one call's service
// options (their Retryer and RetryMaxAttempts); read is the service's read
// retryer.
func retryFor(api string, read awssdk.Retryer) func(r *awssdk.Retryer, maxAttempts *int) {
	class := retryClassOf(api)
	return func(r *awssdk.Retryer, maxAttempts *int) {
		switch class {
		case retryRead:
			*r = read
		case retryOnce:
			*r = retry.AddWithMaxAttempts(*r, 1)
		}
		// The retryer alone decides: a per-call RetryMaxAttempts other than
		// the client's would make the SDK wrap it with that number again.
		*maxAttempts = 0
		*r = observe(*r)
	}
}

// The per-call option functions, one per service client (their Options
// types differ); every SDK call passes the one of its service.

func (c *Client) ec2Retry(api string) func(*ec2.Options) {
	set := retryFor(api, c.reads.ec2)
	return func(o *ec2.Options) { set(&o.Retryer, &o.RetryMaxAttempts) }
}

func (c *Client) ssmRetry(api string) func(*ssm.Options) {
	set := retryFor(api, c.reads.ssm)
	return func(o *ssm.Options) { set(&o.Retryer, &o.RetryMaxAttempts) }
}

func (c *Client) pricingRetry(api string) func(*pricing.Options) {
	set := retryFor(api, c.reads.pricing)
	return func(o *pricing.Options) { set(&o.Retryer, &o.RetryMaxAttempts) }
}

func (c *Client) lambdaRetry(api string) func(*lambda.Options) {
	set := retryFor(api, c.reads.lambda)
	return func(o *lambda.Options) { set(&o.Retryer, &o.RetryMaxAttempts) }
}

func (c *Client) cloudwatchRetry(api string) func(*cloudwatch.Options) {
	set := retryFor(api, c.reads.cloudwatch)
	return func(o *cloudwatch.Options) { set(&o.Retryer, &o.RetryMaxAttempts) }
}

func (c *Client) servicequotasRetry(api string) func(*servicequotas.Options) {
	set := retryFor(api, c.reads.servicequotas)
	return func(o *servicequotas.Options) { set(&o.Retryer, &o.RetryMaxAttempts) }
}

func (c *Client) stsRetry(api string) func(*sts.Options) {
	set := retryFor(api, c.reads.sts)
	return func(o *sts.Options) { set(&o.Retryer, &o.RetryMaxAttempts) }
}

// attemptLog is what the SDK's retry loop did during one call: how many
// attempts it sent and how the last one ended. callWithin puts one in the
// call's context; observed fills it in.
type attemptLog struct {
	mu       sync.Mutex
	attempts int
	last     error
}

type attemptLogKey struct{}

func (l *attemptLog) result() (attempts int, last error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts, l.last
}

// observed is a retryer that tells the call's attemptLog about each attempt
// (the SDK keeps its attempt results only on success).
type observed struct{ awssdk.RetryerV2 }

func observe(r awssdk.Retryer) awssdk.Retryer {
	v2, ok := r.(awssdk.RetryerV2)
	if !ok {
		v2 = retryerV1{r}
	}
	return observed{v2}
}

// GetAttemptToken is called before each attempt (after the adaptive mode's
// wait for its send rate); its release function after it, with its error.
func (r observed) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	release, err := r.RetryerV2.GetAttemptToken(ctx)
	if err != nil {
		return nil, err
	}
	log, _ := ctx.Value(attemptLogKey{}).(*attemptLog)
	if log == nil {
		return release, nil
	}
	log.mu.Lock()
	log.attempts++
	log.mu.Unlock()
	return func(opErr error) error {
		log.mu.Lock()
		log.last = opErr
		log.mu.Unlock()
		return release(opErr)
	}, nil
}

// retryerV1 lifts a retryer without GetAttemptToken, as the SDK does.
type retryerV1 struct{ awssdk.Retryer }

func (r retryerV1) GetAttemptToken(context.Context) (func(error) error, error) {
	return r.GetInitialToken(), nil
}

// withLastAnswer keeps AWS's answer when time ran out between attempts:
// the SDK then returns only the deadline (its sleep, or the adaptive mode's
// wait, was cut short), but the call failed because AWS kept throttling
// (or failing), and that is what the user should read. The chain still
// matches context.DeadlineExceeded. A caller's cancellation stays one.
func withLastAnswer(err, last error) error {
	var apiErr smithy.APIError
	if last == nil || errors.As(err, &apiErr) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(last, &apiErr) {
		return err
	}
	return &outOfTimeError{err: err, last: last}
}

// outOfTimeError is a call that ran out of time retrying after AWS
// answered last.
type outOfTimeError struct{ err, last error }

func (e *outOfTimeError) Error() string {
	return e.err.Error() + " (retrying after: " + e.last.Error() + ")"
}

func (e *outOfTimeError) Unwrap() []error { return []error{e.err, e.last} }
