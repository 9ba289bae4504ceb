package aws

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/computebot/computebot"
)

// Hooks for the external tests (package aws_test).

type CallInfo = callInfo

var (
	MapError          = mapError
	ParsePriceList    = parsePriceList
	FormatDuration    = formatDuration
	ParseLambdaTime   = parseLambdaTime
	RoundBudget       = roundBudget
	MetricQueryIndex  = metricQueryIndex
	RunInstancesInput = func(spec computebot.LaunchSpec) *ec2.RunInstancesInput { return runInstancesInput(spec) }
	ReadBackoff       = readBackoff
)

// RetryClass is the retry class ("read", "write", "once") the policy table
// gives api, and whether the table names it at all.
func RetryClass(api string) (class string, listed bool) {
	k, ok := retryPolicy[api]
	return k.String(), ok
}

// RetryPolicy is the policy table: IAM action → retry class.
func RetryPolicy() map[string]string {
	out := make(map[string]string, len(retryPolicy))
	for api, k := range retryPolicy {
		out[api] = k.String()
	}
	return out
}

// SetMetricsPageSize makes every GetMetricData page hold at most n
// datapoints (MaxDatapoints), so tests see NextToken pagination.
func (c *Client) SetMetricsPageSize(n int32) { c.metricsPageSize = n }

// SetNow replaces the clock that ages the price cache.
func (c *Client) SetNow(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}
