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
)

// SetMetricsPageSize makes every GetMetricData page hold at most n
// datapoints (MaxDatapoints), so tests see NextToken pagination.
func (c *Client) SetMetricsPageSize(n int32) { c.metricsPageSize = n }

// SetNow replaces the clock that ages the price cache.
func (c *Client) SetNow(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}
