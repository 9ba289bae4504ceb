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
	RunInstancesInput = func(spec computebot.LaunchSpec) *ec2.RunInstancesInput { return runInstancesInput(spec) }
)

// SetNow replaces the clock that ages the price cache.
func (c *Client) SetNow(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}
