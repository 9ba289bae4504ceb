package aws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	smithy "github.com/aws/smithy-go"

	"github.com/computebot/computebot"
)

// IAM actions of the CloudWatch calls, as error messages name them.
const (
	apiGetMetricData = "cloudwatch:GetMetricData"
)

const (
	// maxMetricQueries is GetMetricData's limit of MetricDataQueries per call.
	maxMetricQueries = 500
	// DefaultMetricCallsInFlight bounds the concurrent GetMetricData calls
	// of one InstanceMetrics. CloudWatch allows GetMetricData 50
	// transactions per second per account and region (shared with every
	// other caller); 8 calls of ~100 ms each stay well below it while a
	// 10,000-instance fleet (60 calls) takes under a second.
	DefaultMetricCallsInFlight = 8
	// DefaultPeriod is the period of EC2 basic monitoring.
	DefaultPeriod = 5 * time.Minute

	ec2MetricsNamespace = "AWS/EC2"
	// The CloudWatch agent's GPU metric, with InstanceId as its only
	// dimension (the README shows the agent config that publishes it so).
	agentNamespace = "CWAgent"
	gpuMetric      = "nvidia_smi_utilization_gpu"
)

// The metrics of one instance, in the order of their queries: the query
// IDs are the letter plus the instance's index ("c0", "i0", "o0", "c1"…).
var instanceMetricQueries = [...]struct {
	letter byte
	name   string
	stat   types.Statistic
}{
	{'c', "CPUUtilization", types.StatisticMaximum},
	{'i', "NetworkIn", types.StatisticSum},
	{'o', "NetworkOut", types.StatisticSum},
}

var _ computebot.Metrics = (*Client)(nil)

// InstanceMetrics reads CPUUtilization (Maximum) and NetworkIn and
// NetworkOut (Sum) of every instance in q.InstanceIDs over [q.Start, q.End)
// in q.Period periods (default 5 minutes), with GetMetricData: three
// queries per instance, at most 500 queries per call, so N instances take
// ceil(3N/500) calls (plus a call per further NextToken page). The calls run
// concurrently, at most Options.MetricCallsInFlight at a time; each page is
// one call bounded by CallTimeout. Datapoints come back oldest first, one
// per period that has data.
//
// The map has an entry for every requested instance, empty when CloudWatch
// has no data for it. The first failing call fails the whole read (and
// cancels the calls still running): a partial answer would look like
// missing data, which idle detection already treats as "not idle", but the
// error says why.
func (c *Client) InstanceMetrics(ctx context.Context, q computebot.MetricsQuery) (map[string]computebot.InstanceMetrics, error) {
	ids, period, err := checkMetricsQuery(q)
	if err != nil {
		return nil, err
	}
	out := make(map[string]computebot.InstanceMetrics, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	queries := make([]types.MetricDataQuery, 0, len(ids)*len(instanceMetricQueries))
	for i, id := range ids {
		for _, m := range instanceMetricQueries {
			queries = append(queries, types.MetricDataQuery{
				Id: awssdk.String(string(m.letter) + strconv.Itoa(i)),
				MetricStat: &types.MetricStat{
					Metric: &types.Metric{
						Namespace:  awssdk.String(ec2MetricsNamespace),
						MetricName: awssdk.String(m.name),
						Dimensions: []types.Dimension{{Name: awssdk.String("InstanceId"), Value: awssdk.String(id)}},
					},
					Period: awssdk.Int32(period),
					Stat:   awssdk.String(string(m.stat)),
				},
				ReturnData: awssdk.Bool(true),
			})
		}
	}

	// A GPU instance's fourth query goes after all the others, ID "g<i>"
	// (i its index in ids): gpuAt maps i to that query's position.
	gpuAt := map[int]int{}
	isGPU := map[string]bool{}
	for _, id := range q.GPUInstanceIDs {
		isGPU[id] = true
	}
	for i, id := range ids {
		if !isGPU[id] {
			continue
		}
		gpuAt[i] = len(queries)
		queries = append(queries, types.MetricDataQuery{
			Id: awssdk.String("g" + strconv.Itoa(i)),
			MetricStat: &types.MetricStat{
				Metric: &types.Metric{
					Namespace:  awssdk.String(agentNamespace),
					MetricName: awssdk.String(gpuMetric),
					Dimensions: []types.Dimension{{Name: awssdk.String("InstanceId"), Value: awssdk.String(id)}},
				},
				Period: awssdk.Int32(period),
				Stat:   awssdk.String(string(types.StatisticMaximum)),
			},
			ReturnData: awssdk.Bool(true),
		})
	}
	index := func(id string) (int, bool) {
		if n, err := strconv.Atoi(strings.TrimPrefix(id, "g")); strings.HasPrefix(id, "g") && err == nil {
			at, ok := gpuAt[n]
			return at, ok
		}
		return metricQueryIndex(id)
	}

	// series[i*3+k] collects metric k of instance i across calls and pages
	// (then the GPU series, at gpuAt).
	series := make([][]computebot.Datapoint, len(queries))
	var batches [][]types.MetricDataQuery
	for b := range slices.Chunk(queries, maxMetricQueries) {
		batches = append(batches, b)
	}
	err = runBounded(ctx, len(batches), c.metricCallsInFlight, func(ctx context.Context, b int) error {
		return c.metricDataBatch(ctx, q, batches[b], series[b*maxMetricQueries:][:len(batches[b])], b*maxMetricQueries, index)
	})
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		m := computebot.InstanceMetrics{
			CPUMax:     sortedPoints(series[3*i]),
			NetworkIn:  sortedPoints(series[3*i+1]),
			NetworkOut: sortedPoints(series[3*i+2]),
		}
		if at, ok := gpuAt[i]; ok {
			m.GPUMax = sortedPoints(series[at])
		}
		out[id] = m
	}
	return out, nil
}

// metricDataBatch runs one GetMetricData call (of at most 500 queries)
// through all its pages and files the datapoints into series, the part of
// the series of its queries, which start at index first of the query list.
// Each batch has its own part, so concurrent batches never share one.
func (c *Client) metricDataBatch(ctx context.Context, q computebot.MetricsQuery, batch []types.MetricDataQuery, series [][]computebot.Datapoint, first int,
	index func(id string) (int, bool)) error {
	info := callInfo{API: apiGetMetricData}
	in := &cloudwatch.GetMetricDataInput{
		MetricDataQueries: batch,
		StartTime:         awssdk.Time(q.Start),
		EndTime:           awssdk.Time(q.End),
		ScanBy:            types.ScanByTimestampAscending,
	}
	if c.metricsPageSize > 0 {
		in.MaxDatapoints = awssdk.Int32(c.metricsPageSize)
	}
	p := cloudwatch.NewGetMetricDataPaginator(c.cloudwatch, in, func(o *cloudwatch.GetMetricDataPaginatorOptions) {
		// A broken service repeating its token must not loop forever.
		o.StopOnDuplicateToken = true
	})
	retryOpt := c.cloudwatchRetry(info.API)
	for p.HasMorePages() {
		// Each page is its own call with its own timeout and retries.
		page, err := call(ctx, c, info, func(ctx context.Context) (*cloudwatch.GetMetricDataOutput, error) {
			return p.NextPage(ctx, retryOpt)
		})
		if err != nil {
			return err
		}
		for _, r := range page.MetricDataResults {
			switch r.StatusCode {
			case types.StatusCodeForbidden:
				return mapError(info, 0, &smithy.GenericAPIError{Code: "AccessDenied",
					Message: "GetMetricData answered StatusCode Forbidden for " + awssdk.ToString(r.Id), Fault: smithy.FaultClient})
			case types.StatusCodeInternalError:
				return mapError(info, 0, &smithy.GenericAPIError{Code: "InternalError",
					Message: "GetMetricData answered StatusCode InternalError for " + awssdk.ToString(r.Id), Fault: smithy.FaultServer})
			}
			idx, ok := index(awssdk.ToString(r.Id))
			idx -= first
			if !ok || idx < 0 || idx >= len(series) {
				c.log.Debug("GetMetricData answered a query ID it was not asked", "id", awssdk.ToString(r.Id))
				continue
			}
			n := min(len(r.Timestamps), len(r.Values))
			if series[idx] == nil && n > 0 {
				// Sized for the whole window at once: with 30,000 series
				// appends from nil would allocate five times each.
				series[idx] = make([]computebot.Datapoint, 0, max(n, periodsIn(q)))
			}
			for k := range n {
				series[idx] = append(series[idx], computebot.Datapoint{Time: r.Timestamps[k].UTC(), Value: r.Values[k]})
			}
		}
	}
	return nil
}

// periodsIn is the number of periods in q's window (at most 1,440, for
// sizing buffers).
func periodsIn(q computebot.MetricsQuery) int {
	period := q.Period
	if period <= 0 {
		period = DefaultPeriod
	}
	return int(min((q.End.Sub(q.Start)+period-1)/period, 1440))
}

// metricQueryIndex turns a query ID ("c12", "i12", "o12") back into its
// index in the query list (36, 37, 38).
func metricQueryIndex(id string) (int, bool) {
	if len(id) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(id[1:])
	if err != nil || n < 0 {
		return 0, false
	}
	for k, m := range instanceMetricQueries {
		if id[0] == m.letter {
			return n*len(instanceMetricQueries) + k, true
		}
	}
	return 0, false
}

// sortedPoints orders datapoints oldest first and drops a repeated
// timestamp (pages never overlap, but a service could repeat one). No
// datapoints is nil, however they were collected.
func sortedPoints(ps []computebot.Datapoint) []computebot.Datapoint {
	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b computebot.Datapoint) int { return a.Time.Compare(b.Time) })
	return slices.CompactFunc(ps, func(a, b computebot.Datapoint) bool { return a.Time.Equal(b.Time) })
}

// checkMetricsQuery validates q and returns its instance IDs without
// duplicates (first occurrence kept) and its period in seconds.
func checkMetricsQuery(q computebot.MetricsQuery) ([]string, int32, error) {
	period := q.Period
	if period == 0 {
		period = DefaultPeriod
	}
	bad := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		return &computebot.Error{Code: "InvalidMetricsQuery", Message: "Invalid CloudWatch metrics query: " + msg + ".",
			Err: errors.New(msg)}
	}
	if period < time.Second || period%time.Second != 0 || period > 366*24*time.Hour {
		return nil, 0, bad("period %v is not a whole number of seconds", q.Period)
	}
	if q.Start.IsZero() || q.End.IsZero() || !q.Start.Before(q.End) {
		return nil, 0, bad("the window %s – %s is empty", q.Start.Format(time.RFC3339), q.End.Format(time.RFC3339))
	}
	seen := make(map[string]bool, len(q.InstanceIDs))
	ids := make([]string, 0, len(q.InstanceIDs))
	for _, id := range q.InstanceIDs {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, int32(period / time.Second), nil
}

// runBounded runs fn(ctx, 0…n-1) with at most limit running at a time.
// The first error cancels the context of the others and is returned (a
// cancellation it caused is not).
func runBounded(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	if limit < 1 {
		limit = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, limit)
loop:
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		if ctx.Err() != nil { // both were ready; select picked the slot
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		// The caller's context ended before every call started.
		return mapError(callInfo{API: apiGetMetricData}, 0, err)
	}
	return nil
}
