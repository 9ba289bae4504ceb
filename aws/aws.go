// Package aws implements computebot.Cloud and computebot.Metrics with the
// AWS SDK for Go v2 (EC2, SSM, the Pricing API, Lambda and CloudWatch). It
// is the only package that imports the SDK: the rest of the bot sees
// computebot types, and every failure comes back as a *computebot.Error
// whose Message can be shown to a Slack user as is.
//
// Retries: reads retry harder than writes. Read-only calls (Describe*,
// SSM GetParameter, Pricing GetProducts, CloudWatch GetMetricData, Lambda
// ListFunctions and GetFunction, STS GetCallerIdentity) use the SDK's
// adaptive retry mode, which also slows the client down while AWS
// throttles it, with Options.ReadAttempts attempts (default 8) whatever
// AWS_MAX_ATTEMPTS says. Mutating calls (RunInstances, Start, Stop and
// TerminateInstances, CreateTags) keep the SDK's configured standard mode
// with AWS_MAX_ATTEMPTS attempts (default 3); RunInstances resends the same
// ClientToken on every attempt, so a retry never launches twice. Lambda
// Invoke is tried once. All attempts of a call, and the sleeps between
// them, are bounded by Options.CallTimeout; a read that runs out of time
// while AWS keeps throttling it fails with the throttle's code and message
// (Transient), not as a timeout. The policy is one table, retryPolicy in
// retry.go.
package aws

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"

	"github.com/computebot/computebot"
)

// Defaults for Options' zero values.
const (
	DefaultRegion        = "us-east-1"
	DefaultCallTimeout   = 20 * time.Second
	DefaultPriceCacheTTL = 24 * time.Hour
	// The Pricing API only answers in a few regions; us-east-1 is one of them.
	DefaultPricingRegion = "us-east-1"
)

// unknownPriceTTL bounds how long "no price for this type" is remembered:
// long enough that a type without a price does not cost a Pricing call per
// /launch, short enough that a newly listed price shows up the same day.
const unknownPriceTTL = time.Hour

// Options configures a Client. The zero value is usable.
type Options struct {
	Region        string        // optional; default from the SDK chain, fallback us-east-1
	CallTimeout   time.Duration // bounds each AWS call, retries included (default 20s); not Invoke, see there
	PriceCacheTTL time.Duration // how long a known price is reused (default 24h)
	PricingRegion string        // region of the Pricing API endpoint (default us-east-1)
	// ReadAttempts is how many times, in all, a read-only call (Describe*,
	// GetParameter, GetProducts, GetMetricData, ListFunctions, GetFunction,
	// GetCallerIdentity) is tried, in the SDK's adaptive retry mode
	// (default DefaultReadAttempts, 8). AWS_MAX_ATTEMPTS and the config's
	// RetryMaxAttempts do not change it: they bound the mutating calls
	// (default 3). Lambda Invoke is always tried once.
	ReadAttempts int
	// ReadBackoffMax caps the sleep before each retry of a read (default
	// DefaultReadBackoffMax, 2s). It is itself capped at
	// CallTimeout / (2 × (ReadAttempts − 1)), so that the sleeps of one read
	// take at most half of its CallTimeout. Tests set a few milliseconds.
	ReadBackoffMax time.Duration
	// ReadRetryMode is RetryModeAdaptive (the default; also for any other
	// value) or RetryModeStandard, for tests whose injected throttling,
	// unlike AWS's, does not ease when the client slows down.
	ReadRetryMode string
	// MetricCallsInFlight bounds InstanceMetrics' concurrent GetMetricData
	// calls (default DefaultMetricCallsInFlight).
	MetricCallsInFlight int
	Logger              *slog.Logger // debug lines per call; nil discards
	// OnCall, when set, is called after each AWS call with its operation
	// (the IAM action, e.g. "ec2:RunInstances"), its computebot error code
	// ("" on success) and how long it took (metrics).
	OnCall func(operation, errorCode string, d time.Duration)
}

// Client talks to EC2, SSM, the Pricing API, Lambda and CloudWatch. It is
// safe for concurrent use.
type Client struct {
	ec2        *ec2.Client
	ssm        *ssm.Client
	pricing    *pricing.Client
	lambda     *lambda.Client
	cloudwatch *cloudwatch.Client
	// servicequotas answers the vCPU quota a launch counts against.
	servicequotas *servicequotas.Client
	sts           *sts.Client  // only `computebot check` asks who it is
	reads         readRetryers // the reads' retryers, one per service (see retry.go)

	region        string
	callTimeout   time.Duration
	priceCacheTTL time.Duration
	log           *slog.Logger
	onCall        func(operation, errorCode string, d time.Duration)
	now           func() time.Time // replaced in tests to age the price cache

	metricCallsInFlight int
	metricsPageSize     int32 // GetMetricData MaxDatapoints; 0 = CloudWatch's default (100,800); set by tests

	mu      sync.Mutex
	prices  map[string]priceEntry   // instance type → cached answer
	flights map[string]*priceFlight // instance type → lookup in progress
	// quotaLimits and quotaUsage are VCPUQuota's brief caches.
	quotaLimits map[string]quotaLimit // by quota code
	quotaUsage  quotaUsage
}

var _ computebot.Cloud = (*Client)(nil)

// New loads the SDK's default configuration (environment, shared config,
// instance role; AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EC2,
// AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL_CLOUDWATCH,
// AWS_ENDPOINT_URL_SERVICE_QUOTAS…, AWS_MAX_ATTEMPTS
// are honoured) and returns a Client. AWS_MAX_ATTEMPTS and AWS_RETRY_MODE
// shape the retries of the mutating calls only; reads follow
// Options.ReadAttempts (see the package doc).
func New(ctx context.Context, opts Options) (*Client, error) {
	loadOpts := []func(*config.LoadOptions) error{config.WithLogger(SDKLogger(opts.Logger))}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, &computebot.Error{
			Code:    "AWSConfig",
			Message: "The bot could not load its AWS configuration. Ask an admin to check its AWS settings.",
			Err:     fmt.Errorf("load AWS config: %w", err),
		}
	}
	return NewFromConfig(cfg, opts), nil
}

// SDKLogger sends the SDK's own log lines to log (nil: nowhere), at debug
// level: by default the SDK writes them raw to stderr, and its one common
// line, ec2imds's "falling back to IMDSv1" off EC2, only alarms people.
func SDKLogger(log *slog.Logger) logging.Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		log.Debug("aws sdk: "+fmt.Sprintf(format, v...), "component", "aws-sdk", "class", string(c))
	})
}

// NewFromConfig returns a Client using cfg (tests point cfg.BaseEndpoint at a
// fake). opts.Region, when set, overrides cfg.Region. cfg's retry settings
// (RetryMaxAttempts, RetryMode, Retryer) apply to the mutating calls; reads
// use their own retryers (Options.ReadAttempts, ReadRetryMode).
func NewFromConfig(cfg awssdk.Config, opts Options) *Client {
	cfg = cfg.Copy()
	if opts.Region != "" {
		cfg.Region = opts.Region
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.PriceCacheTTL <= 0 {
		opts.PriceCacheTTL = DefaultPriceCacheTTL
	}
	if opts.PricingRegion == "" {
		opts.PricingRegion = DefaultPricingRegion
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MetricCallsInFlight <= 0 {
		opts.MetricCallsInFlight = DefaultMetricCallsInFlight
	}
	if opts.ReadAttempts <= 0 {
		opts.ReadAttempts = DefaultReadAttempts
	}
	if opts.ReadBackoffMax <= 0 {
		opts.ReadBackoffMax = DefaultReadBackoffMax
	}
	pricingRegion := opts.PricingRegion
	return &Client{
		ec2: ec2.NewFromConfig(cfg),
		ssm: ssm.NewFromConfig(cfg),
		pricing: pricing.NewFromConfig(cfg, func(o *pricing.Options) {
			o.Region = pricingRegion
		}),
		lambda:              lambda.NewFromConfig(cfg),
		cloudwatch:          cloudwatch.NewFromConfig(cfg),
		servicequotas:       servicequotas.NewFromConfig(cfg),
		sts:                 sts.NewFromConfig(cfg),
		reads:               newReadRetryers(opts.ReadRetryMode, opts.ReadAttempts, readBackoff(opts.ReadBackoffMax, opts.CallTimeout, opts.ReadAttempts)),
		metricCallsInFlight: opts.MetricCallsInFlight,
		region:              cfg.Region,
		callTimeout:         opts.CallTimeout,
		priceCacheTTL:       opts.PriceCacheTTL,
		log:                 opts.Logger.With("component", "aws"),
		onCall:              opts.OnCall,
		now:                 time.Now,
		prices:              map[string]priceEntry{},
		flights:             map[string]*priceFlight{},
		quotaLimits:         map[string]quotaLimit{},
	}
}

// Region is the EC2 region the client works in.
func (c *Client) Region() string { return c.region }

// call runs one AWS request under the per-call timeout and turns its error
// into a *computebot.Error (see mapError). fn passes the retry option of
// its operation (c.ec2Retry(info.API)…) to the SDK call; see retry.go.
func call[T any](ctx context.Context, c *Client, info callInfo, fn func(context.Context) (T, error)) (T, error) {
	return callWithin(ctx, c, info, c.callTimeout, fn)
}

// callWithin is call with its own bound: timeout > 0 caps the call (the
// caller's deadline still applies when sooner), 0 leaves it to ctx alone.
// A timeout is reported with the time the call actually had.
func callWithin[T any](ctx context.Context, c *Client, info callInfo, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	start := time.Now()
	budget := timeout
	if dl, ok := ctx.Deadline(); ok && (timeout <= 0 || dl.Sub(start) < timeout) {
		budget = roundBudget(dl.Sub(start))
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	attempts := &attemptLog{}
	ctx = context.WithValue(ctx, attemptLogKey{}, attempts)
	out, err := fn(ctx)
	n, last := attempts.result()
	if err != nil {
		mapped := mapError(info, budget, withLastAnswer(err, last))
		code := computebot.ErrorCode(mapped)
		c.log.Debug("aws call failed", "api", info.API, "took", time.Since(start), "attempts", n,
			"retry", retryClassOf(info.API).String(), "code", code, "err", err)
		if c.onCall != nil {
			c.onCall(info.API, code, time.Since(start))
		}
		return out, mapped
	}
	c.log.Debug("aws call", "api", info.API, "took", time.Since(start), "attempts", n)
	if c.onCall != nil {
		c.onCall(info.API, "", time.Since(start))
	}
	return out, nil
}
