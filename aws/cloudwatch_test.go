package aws_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/internal/fakeaws"
)

// metricsBase is a period boundary; the window is one hour of 5-minute
// periods from it.
var metricsBase = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

func hourQuery(ids ...string) computebot.MetricsQuery {
	return computebot.MetricsQuery{InstanceIDs: ids, Start: metricsBase, End: metricsBase.Add(time.Hour), Period: 5 * time.Minute}
}

// render prints datapoints as "HH:MM=value …".
func render(ps []computebot.Datapoint) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s=%g", p.Time.Format("15:04"), p.Value))
	}
	return strings.Join(parts, " ")
}

// seedFleet gives n instances a full hour of datapoints: instance k has CPU
// k+period, NetworkIn 1000·k+period and NetworkOut 10·that.
func seedFleet(fake *fakeaws.Server, n int) []string {
	ids := make([]string, n)
	for k := range ids {
		ids[k] = fmt.Sprintf("i-%017x", k+1)
		cpu, in, out := make([]float64, 12), make([]float64, 12), make([]float64, 12)
		for p := range 12 {
			cpu[p] = float64(k + p)
			in[p] = float64(1000*k + p)
			out[p] = 10 * in[p]
		}
		fake.SetMetricSeries(ids[k], "CPUUtilization", metricsBase, 5*time.Minute, cpu)
		fake.SetMetricSeries(ids[k], "NetworkIn", metricsBase, 5*time.Minute, in)
		fake.SetMetricSeries(ids[k], "NetworkOut", metricsBase, 5*time.Minute, out)
	}
	return ids
}

func checkFleet(t *testing.T, got map[string]computebot.InstanceMetrics, ids []string) {
	t.Helper()
	if len(got) != len(ids) {
		t.Fatalf("%d instances answered, want %d", len(got), len(ids))
	}
	for k, id := range ids {
		m := got[id]
		if len(m.CPUMax) != 12 || len(m.NetworkIn) != 12 || len(m.NetworkOut) != 12 {
			t.Fatalf("%s: %d/%d/%d datapoints, want 12 each", id, len(m.CPUMax), len(m.NetworkIn), len(m.NetworkOut))
		}
		for p := range 12 {
			at := metricsBase.Add(time.Duration(p) * 5 * time.Minute)
			if !m.CPUMax[p].Time.Equal(at) || m.CPUMax[p].Value != float64(k+p) ||
				m.NetworkIn[p].Value != float64(1000*k+p) || m.NetworkOut[p].Value != float64(10*(1000*k+p)) {
				t.Fatalf("%s period %d: cpu %+v in %+v out %+v", id, p, m.CPUMax[p], m.NetworkIn[p], m.NetworkOut[p])
			}
		}
	}
}

func TestInstanceMetrics(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	// i-busy: several samples per period (Maximum / Sum apply), a gap at
	// 09:10 and data outside the window; i-quiet: CPU only; i-new: nothing.
	for _, s := range []struct {
		metric string
		at     time.Duration
		v      float64
	}{
		{"CPUUtilization", 1 * time.Minute, 3}, {"CPUUtilization", 3 * time.Minute, 80}, {"CPUUtilization", 4 * time.Minute, 5},
		{"CPUUtilization", 6 * time.Minute, 1.5},
		{"CPUUtilization", 16 * time.Minute, 2},
		{"CPUUtilization", -1 * time.Minute, 99}, {"CPUUtilization", 60 * time.Minute, 99},
		{"NetworkIn", 0, 1e6}, {"NetworkIn", 2 * time.Minute, 2e6},
		{"NetworkOut", 7 * time.Minute, 4096},
	} {
		fake.PutMetric("i-busy", s.metric, metricsBase.Add(s.at), s.v)
	}
	fake.SetMetricSeries("i-quiet", "CPUUtilization", metricsBase, 5*time.Minute, []float64{0.1, 0.2, 0.3})

	got, err := c.InstanceMetrics(context.Background(), hourQuery("i-busy", "i-quiet", "i-new", "i-busy"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]string{
		"i-busy":  {"09:00=80 09:05=1.5 09:15=2", "09:00=3e+06", "09:05=4096"},
		"i-quiet": {"09:00=0.1 09:05=0.2 09:10=0.3", "", ""},
		"i-new":   {"", "", ""},
	}
	if len(got) != len(want) {
		t.Errorf("answered %d instances, want %d: %v", len(got), len(want), got)
	}
	for id, w := range want {
		m, ok := got[id]
		if !ok {
			t.Errorf("%s missing from the answer", id)
			continue
		}
		if g := [3]string{render(m.CPUMax), render(m.NetworkIn), render(m.NetworkOut)}; g != w {
			t.Errorf("%s: cpu/in/out\n %q\nwant\n %q", id, g, w)
		}
		for _, p := range m.CPUMax {
			if p.Time.Location() != time.UTC {
				t.Errorf("%s: time %v not in UTC", id, p.Time)
			}
		}
	}

	// One call, in the shape the brief prescribes.
	calls := fake.Calls("GetMetricData")
	if len(calls) != 1 {
		t.Fatalf("%d GetMetricData calls, want 1", len(calls))
	}
	p := calls[0].Params
	for k, v := range map[string]string{
		"ScanBy":                                                   "TimestampAscending",
		"StartTime":                                                "2026-11-28T09:00:00Z",
		"EndTime":                                                  "2026-11-28T10:00:00Z",
		"MetricDataQueries.1.Id":                                   "c0",
		"MetricDataQueries.1.MetricStat.Stat":                      "Maximum",
		"MetricDataQueries.1.MetricStat.Period":                    "300",
		"MetricDataQueries.2.Id":                                   "i0",
		"MetricDataQueries.2.MetricStat.Stat":                      "Sum",
		"MetricDataQueries.3.Id":                                   "o0",
		"MetricDataQueries.3.MetricStat.Stat":                      "Sum",
		"MetricDataQueries.3.MetricStat.Metric.MetricName":         "NetworkOut",
		"MetricDataQueries.3.MetricStat.Metric.Namespace":          "AWS/EC2",
		"MetricDataQueries.3.MetricStat.Metric.Dimensions.1.Name":  "InstanceId",
		"MetricDataQueries.3.MetricStat.Metric.Dimensions.1.Value": "i-busy",
		"MetricDataQueries.9.Id":                                   "o2",
		"MetricDataQueries.9.MetricStat.Metric.Dimensions.1.Value": "i-new",
		"MetricDataQueries.10.Id":                                  "", // the repeated i-busy is asked once
	} {
		if got := p.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestInstanceMetricsBatchesAt500Queries(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ids := seedFleet(fake, 501) // 1,503 queries
	got, err := c.InstanceMetrics(context.Background(), hourQuery(ids...))
	if err != nil {
		t.Fatal(err)
	}
	checkFleet(t, got, ids)
	calls := fake.Calls("GetMetricData")
	if want := (3*501 + 499) / 500; len(calls) != want {
		t.Fatalf("%d GetMetricData calls, want ceil(3N/500) = %d", len(calls), want)
	}
	total := 0
	for _, call := range calls {
		n := 0
		for call.Params.Get(fmt.Sprintf("MetricDataQueries.%d.Id", n+1)) != "" {
			n++
		}
		if n > 500 {
			t.Errorf("a call with %d queries", n)
		}
		total += n
	}
	if total != 1503 {
		t.Errorf("%d queries in all, want 1503", total)
	}
}

func TestInstanceMetricsBoundsCallsInFlight(t *testing.T) {
	fake := newFake(t)
	ids := seedFleet(fake, 1000) // 6 calls
	fake.SetLatency("GetMetricData", 100*time.Millisecond)

	c := newClient(t, fake, aws.Options{MetricCallsInFlight: 2})
	start := time.Now()
	if _, err := c.InstanceMetrics(context.Background(), hourQuery(ids...)); err != nil {
		t.Fatal(err)
	}
	// 6 calls, 2 at a time: at least 3 rounds of 100 ms.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("took %v: more than 2 calls ran at once", d)
	}

	c = newClient(t, fake, aws.Options{})
	start = time.Now()
	if _, err := c.InstanceMetrics(context.Background(), hourQuery(ids...)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v: the calls did not run concurrently", d)
	}
}

func TestInstanceMetricsFollowsNextToken(t *testing.T) {
	fake := newFake(t)
	ids := seedFleet(fake, 3)
	fake.SetMetricSeries("i-gappy", "CPUUtilization", metricsBase.Add(20*time.Minute), 10*time.Minute, []float64{7, 8, 9})
	ids = append(ids, "i-gappy")

	whole, err := newClient(t, fake, aws.Options{}).InstanceMetrics(context.Background(), hourQuery(ids...))
	if err != nil {
		t.Fatal(err)
	}
	fake.ResetCalls()
	c := newClient(t, fake, aws.Options{})
	c.SetMetricsPageSize(5)
	paged, err := c.InstanceMetrics(context.Background(), hourQuery(ids...))
	if err != nil {
		t.Fatal(err)
	}
	// 3 instances × 3 metrics × 12 periods + 3 = 111 datapoints, 5 a page.
	if n := fake.CallCount("GetMetricData"); n != 23 {
		t.Errorf("%d calls, want 23 pages", n)
	}
	if !reflect.DeepEqual(paged, whole) {
		t.Errorf("paged answer differs from the single page:\n%v\n%v", paged, whole)
	}
	checkFleet(t, map[string]computebot.InstanceMetrics{ids[0]: paged[ids[0]], ids[1]: paged[ids[1]], ids[2]: paged[ids[2]]}, ids[:3])
	if g := render(paged["i-gappy"].CPUMax); g != "09:20=7 09:30=8 09:40=9" {
		t.Errorf("i-gappy: %s", g)
	}
	if tok := fake.Calls("GetMetricData")[1].Params.Get("NextToken"); tok == "" {
		t.Error("the second page was asked for without NextToken")
	}
}

func TestInstanceMetricsFailsOnTheFirstFailedCall(t *testing.T) {
	fake := newFake(t)
	ids := seedFleet(fake, 2000) // 12 calls, 8 at a time
	fake.SetLatency("GetMetricData", 50*time.Millisecond)
	fake.FailNext("GetMetricData", "Throttling", "", 1)
	c := newClient(t, fake, aws.Options{})
	_, err := c.InstanceMetrics(context.Background(), hourQuery(ids...))
	ce := wantCode(t, err, "Throttling")
	if !strings.Contains(ce.Message, "CloudWatch is throttling") {
		t.Errorf("message %q", ce.Message)
	}
	// The failure stopped the calls not yet started.
	if n := fake.CallCount("GetMetricData"); n >= 12 {
		t.Errorf("%d calls after the first failed, want fewer than 12", n)
	}
}

func TestInstanceMetricsErrors(t *testing.T) {
	fake := newFake(t)
	ids := seedFleet(fake, 1000)
	c := newClient(t, fake, aws.Options{CallTimeout: 150 * time.Millisecond})
	ctx := context.Background()

	fake.FailNext("GetMetricData", "AccessDenied", "User: arn:aws:sts::123456789012:assumed-role/bot is not authorized to perform: cloudwatch:GetMetricData", 1)
	_, err := c.InstanceMetrics(ctx, hourQuery(ids[:5]...))
	ce := wantCode(t, err, "AccessDenied")
	if !strings.Contains(ce.Message, "not allowed to call cloudwatch:GetMetricData") {
		t.Errorf("message %q", ce.Message)
	}

	fake.SetLatency("GetMetricData", 400*time.Millisecond)
	_, err = c.InstanceMetrics(ctx, hourQuery(ids[:5]...))
	ce = wantCode(t, err, aws.CodeTimeout)
	if ce.Message != "CloudWatch did not answer within 150ms." || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("message %q, err %v", ce.Message, err)
	}
	fake.ClearFaults()

	// The caller's own deadline ends the read, calls still queued included.
	fake.SetLatency("GetMetricData", 100*time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = newClient(t, fake, aws.Options{MetricCallsInFlight: 1}).InstanceMetrics(short, hourQuery(ids...))
	wantCode(t, err, aws.CodeTimeout)
	fake.ClearFaults()

	// Questions CloudWatch cannot answer are refused without a call.
	before := fake.CallCount("")
	for name, q := range map[string]computebot.MetricsQuery{
		"empty window": {InstanceIDs: ids[:1], Start: metricsBase, End: metricsBase, Period: 5 * time.Minute},
		"no start":     {InstanceIDs: ids[:1], End: metricsBase, Period: 5 * time.Minute},
		"sub-second":   {InstanceIDs: ids[:1], Start: metricsBase, End: metricsBase.Add(time.Hour), Period: 1500 * time.Millisecond},
	} {
		_, err := c.InstanceMetrics(ctx, q)
		if computebot.ErrorCode(err) != "InvalidMetricsQuery" {
			t.Errorf("%s: %v", name, err)
		}
	}
	got, err := c.InstanceMetrics(ctx, hourQuery())
	if err != nil || len(got) != 0 {
		t.Errorf("no instances: %v %v", got, err)
	}
	if n := fake.CallCount(""); n != before {
		t.Errorf("%d calls for invalid or empty queries", n-before)
	}
	// Period 0 means 5 minutes.
	q := hourQuery(ids[:2]...)
	q.Period = 0
	got, err = c.InstanceMetrics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	checkFleet(t, got, ids[:2])
}

func TestInstanceMetricsOneByOneMatches(t *testing.T) {
	fake := newFake(t)
	ids := seedFleet(fake, 40)
	fake.PutMetric(ids[3], "CPUUtilization", metricsBase.Add(time.Minute), 250) // a second sample in a period
	ids = append(ids, "i-nodata")
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()

	batched, err := c.InstanceMetrics(ctx, hourQuery(ids...))
	if err != nil {
		t.Fatal(err)
	}
	oneByOne, err := c.InstanceMetricsOneByOne(ctx, hourQuery(ids...), 3)
	if err != nil {
		t.Fatal(err)
	}
	if n := fake.CallCount("GetMetricStatistics"); n != 3*len(ids) {
		t.Errorf("%d GetMetricStatistics calls, want 3N = %d", n, 3*len(ids))
	}
	if n := fake.CallCount("GetMetricData"); n != 1 {
		t.Errorf("%d GetMetricData calls, want 1", n)
	}
	if !reflect.DeepEqual(oneByOne, batched) {
		t.Errorf("one by one differs from batched")
	}
	if batched[ids[3]].CPUMax[0].Value != 250 {
		t.Errorf("Maximum not applied: %v", batched[ids[3]].CPUMax[0])
	}
	asked := map[string]string{} // metric of ids[0] → statistic
	for _, call := range fake.Calls("GetMetricStatistics") {
		p := call.Params
		if p.Get("Dimensions.1.Value") == ids[0] && p.Get("Period") == "300" && p.Get("Namespace") == "AWS/EC2" {
			asked[p.Get("MetricName")] = p.Get("Statistics.1")
		}
	}
	if want := map[string]string{"CPUUtilization": "Maximum", "NetworkIn": "Sum", "NetworkOut": "Sum"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("calls for %s asked %v, want %v", ids[0], asked, want)
	}

	fake.FailNext("GetMetricStatistics", "Throttling", "", 1)
	_, err = c.InstanceMetricsOneByOne(ctx, hourQuery(ids...), 3)
	wantCode(t, err, "Throttling")
}

func TestMetricQueryIndex(t *testing.T) {
	for id, want := range map[string]int{"c0": 0, "i0": 1, "o0": 2, "c12": 36, "o12": 38} {
		if got, ok := aws.MetricQueryIndex(id); !ok || got != want {
			t.Errorf("%s: %d %t, want %d", id, got, ok, want)
		}
	}
	for _, id := range []string{"", "c", "x1", "c-1", "cx"} {
		if _, ok := aws.MetricQueryIndex(id); ok {
			t.Errorf("%q accepted", id)
		}
	}
}

// BenchmarkInstanceMetrics reads the idle metrics of a fleet against the
// fake with 20 ms added per call: batched (GetMetricData, 500 queries a
// call, 8 in flight) for 10,000 instances, and the Cloud Custodian way (one
// GetMetricStatistics per instance and metric, 3 in flight) for 500,
// since 30,000 such calls take minutes.
func BenchmarkInstanceMetrics(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int
		read func(c *aws.Client, ctx context.Context, q computebot.MetricsQuery) (map[string]computebot.InstanceMetrics, error)
	}{
		{"batched/10000", 10000, (*aws.Client).InstanceMetrics},
		{"one-by-one/500", 500, func(c *aws.Client, ctx context.Context, q computebot.MetricsQuery) (map[string]computebot.InstanceMetrics, error) {
			return c.InstanceMetricsOneByOne(ctx, q, 3)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fake := fakeaws.New()
			defer fake.Close()
			ids := seedFleet(fake, bc.n)
			fake.SetLatency("", 20*time.Millisecond)
			c := aws.NewFromConfig(benchConfig(fake), aws.Options{})
			for b.Loop() {
				fake.ResetCalls()
				start := time.Now()
				got, err := bc.read(c, b.Context(), hourQuery(ids...))
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != bc.n {
					b.Fatalf("%d instances", len(got))
				}
				b.ReportMetric(float64(fake.CallCount("")), "calls/read")
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/read")
			}
		})
	}
}

func benchConfig(fake *fakeaws.Server) awssdk.Config {
	return awssdk.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
		BaseEndpoint:     awssdk.String(fake.URL()),
	}
}
