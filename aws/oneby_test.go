package aws

// This file is compiled only into tests: the bot never reads metrics one by
// one, so its IAM policy does not grant cloudwatch:GetMetricStatistics.

import (
	"context"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/computebot/computebot"
)

const apiGetMetricStatistics = "cloudwatch:GetMetricStatistics"

// InstanceMetricsOneByOne answers the same question as InstanceMetrics the
// way Cloud Custodian's metrics filter (c7n/filters/metrics.py) does: one
// GetMetricStatistics call per instance and metric, 3N calls for N
// instances, with `concurrency` calls in flight (Custodian uses a pool of 3
// workers). It exists only so the idle-shutdown benchmark can show what
// batching with GetMetricData saves, in calls and in wall time against
// CloudWatch's rate limits; the bot itself never uses it. Results are the
// same as InstanceMetrics'.
func (c *Client) InstanceMetricsOneByOne(ctx context.Context, q computebot.MetricsQuery, concurrency int) (map[string]computebot.InstanceMetrics, error) {
	ids, period, err := checkMetricsQuery(q)
	if err != nil {
		return nil, err
	}
	series := make([][]computebot.Datapoint, len(ids)*len(instanceMetricQueries))
	info := callInfo{API: apiGetMetricStatistics}
	err = runBounded(ctx, len(series), concurrency, func(ctx context.Context, n int) error {
		id, m := ids[n/len(instanceMetricQueries)], instanceMetricQueries[n%len(instanceMetricQueries)]
		out, err := call(ctx, c, info, func(ctx context.Context) (*cloudwatch.GetMetricStatisticsOutput, error) {
			return c.cloudwatch.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
				Namespace:  awssdk.String(ec2MetricsNamespace),
				MetricName: awssdk.String(m.name),
				Dimensions: []types.Dimension{{Name: awssdk.String("InstanceId"), Value: awssdk.String(id)}},
				StartTime:  awssdk.Time(q.Start),
				EndTime:    awssdk.Time(q.End),
				Period:     awssdk.Int32(period),
				Statistics: []types.Statistic{m.stat},
			}, c.cloudwatchRetry(info.API))
		})
		if err != nil {
			return err
		}
		ps := make([]computebot.Datapoint, 0, len(out.Datapoints))
		for _, d := range out.Datapoints {
			v := d.Maximum
			if m.stat == types.StatisticSum {
				v = d.Sum
			}
			if d.Timestamp == nil || v == nil {
				continue
			}
			ps = append(ps, computebot.Datapoint{Time: d.Timestamp.UTC(), Value: *v})
		}
		series[n] = ps
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]computebot.InstanceMetrics, len(ids))
	for i, id := range ids {
		out[id] = computebot.InstanceMetrics{
			CPUMax:     sortedPoints(series[3*i]),
			NetworkIn:  sortedPoints(series[3*i+1]),
			NetworkOut: sortedPoints(series[3*i+2]),
		}
	}
	return out, nil
}
