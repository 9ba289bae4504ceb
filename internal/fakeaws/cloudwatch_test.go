package fakeaws

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go/encoding/cbor"
)

func cloudwatchClient(s *Server) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(sdkConfig(), func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

// cwBase is a period boundary (5-minute and hourly aligned).
var cwBase = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func ec2Metric(instance, name string) *cwtypes.Metric {
	return &cwtypes.Metric{
		Namespace:  aws.String("AWS/EC2"),
		MetricName: aws.String(name),
		Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(instance)}},
	}
}

func statQuery(id, instance, metric, stat string, period int32) cwtypes.MetricDataQuery {
	return cwtypes.MetricDataQuery{
		Id:         aws.String(id),
		MetricStat: &cwtypes.MetricStat{Metric: ec2Metric(instance, metric), Period: aws.Int32(period), Stat: aws.String(stat)},
	}
}

func resultByID(t *testing.T, out *cloudwatch.GetMetricDataOutput) map[string]cwtypes.MetricDataResult {
	t.Helper()
	m := map[string]cwtypes.MetricDataResult{}
	for _, r := range out.MetricDataResults {
		id := aws.ToString(r.Id)
		if _, dup := m[id]; dup {
			t.Fatalf("result %s twice on one page", id)
		}
		m[id] = r
	}
	return m
}

// points renders a result as "HH:MM=value …" for compact comparisons.
func points(ts []time.Time, vs []float64) string {
	var parts []string
	for i := range ts {
		parts = append(parts, fmt.Sprintf("%s=%g", ts[i].UTC().Format("15:04"), vs[i]))
	}
	return strings.Join(parts, " ")
}

func TestGetMetricDataAggregatesByPeriodAndStat(t *testing.T) {
	s := newFake(t)
	c := cloudwatchClient(s)
	// Two samples in 12:00-12:05, none in 12:05-12:10, one in 12:10-12:15,
	// one at 12:15 (the end, excluded) and one before the start.
	s.PutMetric("i-a", "CPUUtilization", cwBase.Add(1*time.Minute), 10)
	s.PutMetric("i-a", "CPUUtilization", cwBase.Add(4*time.Minute), 30)
	s.PutMetric("i-a", "CPUUtilization", cwBase.Add(12*time.Minute), 7)
	s.PutMetric("i-a", "CPUUtilization", cwBase.Add(15*time.Minute), 99)
	s.PutMetric("i-a", "CPUUtilization", cwBase.Add(-time.Minute), 98)
	s.PutMetric("i-b", "CPUUtilization", cwBase.Add(2*time.Minute), 55)
	s.PutMetric("i-a", "NetworkIn", cwBase.Add(1*time.Minute), 1000)
	s.PutMetric("i-a", "NetworkIn", cwBase.Add(2*time.Minute), 500)

	out, err := c.GetMetricData(ctx(t), &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(cwBase),
		EndTime:   aws.Time(cwBase.Add(15 * time.Minute)),
		ScanBy:    cwtypes.ScanByTimestampAscending,
		MetricDataQueries: []cwtypes.MetricDataQuery{
			statQuery("max", "i-a", "CPUUtilization", "Maximum", 300),
			statQuery("min", "i-a", "CPUUtilization", "Minimum", 300),
			statQuery("avg", "i-a", "CPUUtilization", "Average", 300),
			statQuery("sum", "i-a", "CPUUtilization", "Sum", 300),
			statQuery("n", "i-a", "CPUUtilization", "SampleCount", 300),
			statQuery("hour", "i-a", "CPUUtilization", "Maximum", 3600),
			statQuery("other", "i-b", "CPUUtilization", "Maximum", 300),
			statQuery("net", "i-a", "NetworkIn", "Sum", 300),
			statQuery("none", "i-nodata", "CPUUtilization", "Maximum", 300),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.NextToken != nil {
		t.Errorf("NextToken %q on a complete answer", aws.ToString(out.NextToken))
	}
	got := resultByID(t, out)
	want := map[string]string{
		"max":   "12:00=30 12:10=7",
		"min":   "12:00=10 12:10=7",
		"avg":   "12:00=20 12:10=7",
		"sum":   "12:00=40 12:10=7",
		"n":     "12:00=2 12:10=1",
		"hour":  "12:00=30",
		"other": "12:00=55",
		"net":   "12:00=1500",
		"none":  "",
	}
	for id, w := range want {
		r, ok := got[id]
		if !ok {
			t.Errorf("no result for %s", id)
			continue
		}
		if p := points(r.Timestamps, r.Values); p != w {
			t.Errorf("%s: %s, want %s", id, p, w)
		}
		if r.StatusCode != cwtypes.StatusCodeComplete {
			t.Errorf("%s: status %s", id, r.StatusCode)
		}
	}
	if l := aws.ToString(got["max"].Label); l != "CPUUtilization" {
		t.Errorf("label %q, want the metric name", l)
	}
	// Timestamps are exact period starts (tag 1, epoch seconds).
	if ts := got["max"].Timestamps; !ts[0].Equal(cwBase) || !ts[1].Equal(cwBase.Add(10*time.Minute)) {
		t.Errorf("timestamps %v", ts)
	}
}

func TestGetMetricDataScanByDescendingIsTheDefault(t *testing.T) {
	s := newFake(t)
	s.SetMetricSeries("i-a", "CPUUtilization", cwBase, 5*time.Minute, []float64{1, 2, 3})
	out, err := cloudwatchClient(s).GetMetricData(ctx(t), &cloudwatch.GetMetricDataInput{
		StartTime:         aws.Time(cwBase),
		EndTime:           aws.Time(cwBase.Add(time.Hour)),
		MetricDataQueries: []cwtypes.MetricDataQuery{statQuery("c0", "i-a", "CPUUtilization", "Maximum", 300)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := points(out.MetricDataResults[0].Timestamps, out.MetricDataResults[0].Values); p != "12:10=3 12:05=2 12:00=1" {
		t.Errorf("descending: %s", p)
	}
}

func TestGetMetricDataIgnoresOtherNamespacesDimensionsAndUnits(t *testing.T) {
	s := newFake(t)
	s.PutMetric("i-a", "CPUUtilization", cwBase, 50)
	q := func(id string, mutate func(*cwtypes.MetricDataQuery)) cwtypes.MetricDataQuery {
		mq := statQuery(id, "i-a", "CPUUtilization", "Maximum", 300)
		mutate(&mq)
		return mq
	}
	out, err := cloudwatchClient(s).GetMetricData(ctx(t), &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(cwBase),
		EndTime:   aws.Time(cwBase.Add(5 * time.Minute)),
		MetricDataQueries: []cwtypes.MetricDataQuery{
			q("ok", func(*cwtypes.MetricDataQuery) {}),
			q("percent", func(m *cwtypes.MetricDataQuery) { m.MetricStat.Unit = cwtypes.StandardUnitPercent }),
			q("bytes", func(m *cwtypes.MetricDataQuery) { m.MetricStat.Unit = cwtypes.StandardUnitBytes }),
			q("ns", func(m *cwtypes.MetricDataQuery) { m.MetricStat.Metric.Namespace = aws.String("AWS/EBS") }),
			q("dims", func(m *cwtypes.MetricDataQuery) {
				m.MetricStat.Metric.Dimensions = append(m.MetricStat.Metric.Dimensions, cwtypes.Dimension{Name: aws.String("X"), Value: aws.String("y")})
			}),
			q("hidden", func(m *cwtypes.MetricDataQuery) { m.ReturnData = aws.Bool(false) }),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := resultByID(t, out)
	for id, n := range map[string]int{"ok": 1, "percent": 1, "bytes": 0, "ns": 0, "dims": 0} {
		if len(got[id].Values) != n {
			t.Errorf("%s: %d values, want %d", id, len(got[id].Values), n)
		}
	}
	if _, ok := got["hidden"]; ok {
		t.Error("ReturnData=false answered")
	}
}

func TestGetMetricDataRejectsMoreThan500Queries(t *testing.T) {
	s := newFake(t)
	c := cloudwatchClient(s)
	queries := func(n int) []cwtypes.MetricDataQuery {
		var qs []cwtypes.MetricDataQuery
		for i := range n {
			qs = append(qs, statQuery(fmt.Sprintf("q%d", i), fmt.Sprintf("i-%d", i), "CPUUtilization", "Maximum", 300))
		}
		return qs
	}
	in := &cloudwatch.GetMetricDataInput{StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(time.Hour)), MetricDataQueries: queries(501)}
	_, err := c.GetMetricData(ctx(t), in)
	wantAPIError(t, err, "ValidationError", http.StatusBadRequest)
	var ve *cwtypes.ValidationException
	if !errors.As(err, &ve) || !strings.Contains(ve.ErrorMessage(), "greater than 500") {
		t.Errorf("want the modeled ValidationException with AWS's message, got %T %v", err, err)
	}

	in.MetricDataQueries = queries(500)
	out, err := c.GetMetricData(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.MetricDataResults) != 500 {
		t.Errorf("%d results, want 500", len(out.MetricDataResults))
	}
}

func TestGetMetricDataValidatesQueries(t *testing.T) {
	s := newFake(t)
	c := cloudwatchClient(s)
	window := func(qs ...cwtypes.MetricDataQuery) *cloudwatch.GetMetricDataInput {
		return &cloudwatch.GetMetricDataInput{StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(time.Hour)), MetricDataQueries: qs}
	}
	for name, tc := range map[string]struct {
		in   *cloudwatch.GetMetricDataInput
		code string
	}{
		"duplicate ids":   {window(statQuery("a", "i-1", "CPUUtilization", "Maximum", 300), statQuery("a", "i-2", "CPUUtilization", "Maximum", 300)), "ValidationError"},
		"upper-case id":   {window(statQuery("A1", "i-1", "CPUUtilization", "Maximum", 300)), "ValidationError"},
		"bad period":      {window(statQuery("a", "i-1", "CPUUtilization", "Maximum", 90)), "InvalidParameterValue"},
		"percentile":      {window(statQuery("a", "i-1", "CPUUtilization", "p99", 300)), "InvalidParameterValue"},
		"start after end": {&cloudwatch.GetMetricDataInput{StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase), MetricDataQueries: []cwtypes.MetricDataQuery{statQuery("a", "i-1", "CPUUtilization", "Maximum", 300)}}, "InvalidParameterValue"},
		"bad token": {func() *cloudwatch.GetMetricDataInput {
			in := window(statQuery("a", "i-1", "CPUUtilization", "Maximum", 300))
			in.NextToken = aws.String("nope")
			return in
		}(), "InvalidNextToken"},
	} {
		_, err := c.GetMetricData(ctx(t), tc.in)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		wantAPIError(t, err, tc.code, http.StatusBadRequest)
	}
}

func TestGetMetricDataPaginatesByMaxDatapoints(t *testing.T) {
	s := newFake(t)
	c := cloudwatchClient(s)
	// 4 instances × 12 periods, instance i has 12-i datapoints (i-3 misses
	// 3 periods), and i-none has none.
	var qs []cwtypes.MetricDataQuery
	want := map[string][]float64{}
	for i := range 4 {
		id := fmt.Sprintf("i-%d", i)
		var vs []float64
		for p := range 12 - i {
			vs = append(vs, float64(100*i+p))
		}
		s.SetMetricSeries(id, "CPUUtilization", cwBase.Add(time.Duration(i)*5*time.Minute), 5*time.Minute, vs)
		qs = append(qs, statQuery(fmt.Sprintf("c%d", i), id, "CPUUtilization", "Maximum", 300))
		want[fmt.Sprintf("c%d", i)] = vs
	}
	qs = append(qs, statQuery("cnone", "i-none", "CPUUtilization", "Maximum", 300))
	want["cnone"] = nil

	for _, scan := range []cwtypes.ScanBy{cwtypes.ScanByTimestampAscending, cwtypes.ScanByTimestampDescending} {
		s.ResetCalls()
		p := cloudwatch.NewGetMetricDataPaginator(c, &cloudwatch.GetMetricDataInput{
			StartTime:         aws.Time(cwBase),
			EndTime:           aws.Time(cwBase.Add(time.Hour)),
			MetricDataQueries: qs,
			ScanBy:            scan,
			MaxDatapoints:     aws.Int32(7),
		})
		got := map[string][]float64{}
		seen := map[string]bool{}
		pages, partial := 0, 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			pages++
			n := 0
			for id, r := range resultByID(t, out) {
				seen[id] = true
				n += len(r.Values)
				got[id] = append(got[id], r.Values...)
				more := out.NextToken != nil
				if r.StatusCode == cwtypes.StatusCodePartialData {
					partial++
					if !more {
						t.Errorf("%s: PartialData on the last page", id)
					}
				}
			}
			if n > 7 {
				t.Errorf("page %d holds %d datapoints, MaxDatapoints is 7", pages, n)
			}
		}
		if partial == 0 {
			t.Error("no result said PartialData although every series spans pages")
		}
		// 12+11+10+9 = 42 datapoints at 7 per page.
		if pages != 6 || s.CallCount("GetMetricData") != 6 {
			t.Errorf("%s: %d pages, %d calls; want 6", scan, pages, s.CallCount("GetMetricData"))
		}
		for id, w := range want {
			g := slices.Clone(got[id])
			slices.Sort(g)
			if !slices.Equal(g, w) || !seen[id] {
				t.Errorf("%s: %s = %v (seen %t), want %v", scan, id, got[id], seen[id], w)
			}
		}
		if scan == cwtypes.ScanByTimestampAscending && !slices.IsSorted(got["c1"]) {
			t.Errorf("ascending pages out of order: %v", got["c1"])
		}
		// The token is tied to its request.
		tok := cborParamsOf(t, s, 2).Get("NextToken")
		if tok == "" {
			t.Fatal("second call carried no NextToken")
		}
		_, err := c.GetMetricData(ctx(t), &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(2 * time.Hour)), MetricDataQueries: qs, NextToken: aws.String(tok),
		})
		wantAPIError(t, err, "InvalidNextToken", http.StatusBadRequest)
	}
}

// cborParamsOf returns the flattened parameters of the n-th (1-based)
// GetMetricData call.
func cborParamsOf(t *testing.T, s *Server, n int) url.Values {
	t.Helper()
	calls := s.Calls("GetMetricData")
	if len(calls) < n {
		t.Fatalf("%d GetMetricData calls, want at least %d", len(calls), n)
	}
	return calls[n-1].Params
}

func TestCallsFlattenCBORRequests(t *testing.T) {
	s := newFake(t)
	_, err := cloudwatchClient(s).GetMetricData(ctx(t), &cloudwatch.GetMetricDataInput{
		StartTime:         aws.Time(cwBase),
		EndTime:           aws.Time(cwBase.Add(time.Hour)),
		ScanBy:            cwtypes.ScanByTimestampAscending,
		MetricDataQueries: []cwtypes.MetricDataQuery{statQuery("c0", "i-0abc", "CPUUtilization", "Maximum", 300)},
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := s.Calls("GetMetricData")
	if len(calls) != 1 || calls[0].Service != "cloudwatch" {
		t.Fatalf("calls %+v", calls)
	}
	p := calls[0].Params
	for k, v := range map[string]string{
		"ScanBy":                                "TimestampAscending",
		"StartTime":                             "2026-11-28T12:00:00Z",
		"EndTime":                               "2026-11-28T13:00:00Z",
		"MetricDataQueries.1.Id":                "c0",
		"MetricDataQueries.1.MetricStat.Period": "300",
		"MetricDataQueries.1.MetricStat.Stat":   "Maximum",
		"MetricDataQueries.1.MetricStat.Metric.Namespace":          "AWS/EC2",
		"MetricDataQueries.1.MetricStat.Metric.Dimensions.1.Name":  "InstanceId",
		"MetricDataQueries.1.MetricStat.Metric.Dimensions.1.Value": "i-0abc",
		"MetricDataQueries.1.MetricStat.Metric.MetricName":         "CPUUtilization",
	} {
		if got := p.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestGetMetricStatistics(t *testing.T) {
	s := newFake(t)
	c := cloudwatchClient(s)
	s.SetMetricSeries("i-a", "NetworkOut", cwBase, time.Minute, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	out, err := c.GetMetricStatistics(ctx(t), &cloudwatch.GetMetricStatisticsInput{
		Namespace:  aws.String("AWS/EC2"),
		MetricName: aws.String("NetworkOut"),
		Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String("i-a")}},
		StartTime:  aws.Time(cwBase),
		EndTime:    aws.Time(cwBase.Add(15 * time.Minute)),
		Period:     aws.Int32(300),
		Statistics: []cwtypes.Statistic{cwtypes.StatisticSum, cwtypes.StatisticMaximum, cwtypes.StatisticAverage, cwtypes.StatisticSampleCount},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Label) != "NetworkOut" || len(out.Datapoints) != 2 {
		t.Fatalf("label %q, %d datapoints: %+v", aws.ToString(out.Label), len(out.Datapoints), out.Datapoints)
	}
	var got []string
	for _, d := range out.Datapoints {
		if d.Minimum != nil {
			t.Error("Minimum answered without being asked")
		}
		got = append(got, fmt.Sprintf("%s sum=%g max=%g avg=%g n=%g %s", d.Timestamp.UTC().Format("15:04"),
			aws.ToFloat64(d.Sum), aws.ToFloat64(d.Maximum), aws.ToFloat64(d.Average), aws.ToFloat64(d.SampleCount), d.Unit))
	}
	if w := "12:00 sum=15 max=5 avg=3 n=5 Bytes|12:05 sum=40 max=10 avg=8 n=5 Bytes"; strings.Join(got, "|") != w {
		t.Errorf("datapoints\n %s\nwant\n %s", strings.Join(got, "|"), w)
	}
}

func TestGetMetricStatisticsLimits(t *testing.T) {
	s := newFake(t)
	c := cloudwatchClient(s)
	in := func(period int32, span time.Duration, stats ...cwtypes.Statistic) *cloudwatch.GetMetricStatisticsInput {
		return &cloudwatch.GetMetricStatisticsInput{
			Namespace: aws.String("AWS/EC2"), MetricName: aws.String("CPUUtilization"),
			Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String("i-a")}},
			StartTime:  aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(span)), Period: aws.Int32(period), Statistics: stats,
		}
	}
	// 1,440 one-minute periods (a day) is the most one call may ask for.
	if _, err := c.GetMetricStatistics(ctx(t), in(60, 24*time.Hour, cwtypes.StatisticMaximum)); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetMetricStatistics(ctx(t), in(60, 24*time.Hour+time.Minute, cwtypes.StatisticMaximum))
	wantAPIError(t, err, "InvalidParameterCombination", http.StatusBadRequest)
	var ipc *cwtypes.InvalidParameterCombinationException
	if !errors.As(err, &ipc) || !strings.Contains(ipc.ErrorMessage(), "1441 datapoints") {
		t.Errorf("want the modeled exception naming 1441 datapoints, got %v", err)
	}
	_, err = c.GetMetricStatistics(ctx(t), in(60, time.Hour))
	wantAPIError(t, err, "InvalidParameterCombination", http.StatusBadRequest)
	_, err = c.GetMetricStatistics(ctx(t), in(61, time.Hour, cwtypes.StatisticMaximum))
	wantAPIError(t, err, "InvalidParameterValue", http.StatusBadRequest)
}

func TestCloudWatchFaultsAndLatency(t *testing.T) {
	s := newFake(t)
	c := cloudwatchClient(s)
	in := &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(time.Hour)),
		MetricDataQueries: []cwtypes.MetricDataQuery{statQuery("c0", "i-a", "CPUUtilization", "Maximum", 300)},
	}
	s.FailNext("GetMetricData", "Throttling", "", 1)
	s.FailNext("GetMetricData", "AccessDenied", "not authorized to perform: cloudwatch:GetMetricData", 1)
	s.FailNext("GetMetricStatistics", "InternalServiceError", "", 1)

	_, err := c.GetMetricData(ctx(t), in)
	wantAPIError(t, err, "Throttling", http.StatusBadRequest)
	if !strings.Contains(err.Error(), "Rate exceeded") {
		t.Errorf("message lost: %v", err)
	}
	_, err = c.GetMetricData(ctx(t), in)
	wantAPIError(t, err, "AccessDenied", http.StatusBadRequest)
	_, err = c.GetMetricStatistics(ctx(t), &cloudwatch.GetMetricStatisticsInput{
		Namespace: aws.String("AWS/EC2"), MetricName: aws.String("CPUUtilization"),
		StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(time.Hour)), Period: aws.Int32(300),
		Statistics: []cwtypes.Statistic{cwtypes.StatisticMaximum},
	})
	wantAPIError(t, err, "InternalServiceError", http.StatusInternalServerError)
	var fault *cwtypes.InternalServiceFault
	if !errors.As(err, &fault) || fault.ErrorMessage() == "" {
		t.Errorf("want the modeled InternalServiceFault with its Message, got %T %v", err, err)
	}
	if _, err := c.GetMetricData(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	codes := []string{}
	for _, call := range s.Calls("GetMetricData") {
		codes = append(codes, call.ErrorCode)
	}
	if strings.Join(codes, ",") != "Throttling,AccessDenied," {
		t.Errorf("recorded codes %q", codes)
	}

	s.SetLatency("GetMetricData", 150*time.Millisecond)
	start := time.Now()
	if _, err := c.GetMetricData(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("answered in %v despite 150ms latency", d)
	}
	if n := s.CallCount("GetMetricData"); n != 4 {
		t.Errorf("CallCount = %d, want 4", n)
	}
}

// TestRPCv2CBORWire checks what the SDK does not: response headers, and
// refusals of requests that are not RPC v2 CBOR.
func TestRPCv2CBORWire(t *testing.T) {
	s := newFake(t)
	post := func(op string, header map[string]string, body []byte) (*http.Response, cbor.Map) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/service/GraniteServiceVersion20100801/operation/"+op, bytes.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		v, err := cbor.Decode(b)
		if err != nil {
			t.Fatalf("%s: answer is not CBOR: %v (%q)", op, err, b)
		}
		return resp, v.(cbor.Map)
	}
	good := map[string]string{"Smithy-Protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"}
	body := cbor.Encode(cbor.Map{
		"StartTime": &cbor.Tag{ID: 1, Value: cbor.Uint(cwBase.Unix())}, // integral seconds are valid too
		"EndTime":   &cbor.Tag{ID: 1, Value: cbor.Float64(float64(cwBase.Add(time.Hour).Unix()))},
		"MetricDataQueries": cbor.List{cbor.Map{"Id": cbor.String("c0"), "MetricStat": cbor.Map{
			"Metric": cbor.Map{"Namespace": cbor.String("AWS/EC2"), "MetricName": cbor.String("CPUUtilization")},
			"Period": cbor.Uint(300), "Stat": cbor.String("Maximum"),
		}}},
	})
	resp, m := post("GetMetricData", good, body)
	if resp.StatusCode != 200 || resp.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" || resp.Header.Get("Content-Type") != "application/cbor" {
		t.Errorf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	if _, ok := m["MetricDataResults"].(cbor.List); !ok {
		t.Errorf("answer %v", m)
	}

	resp, m = post("GetMetricData", map[string]string{"Content-Type": "application/cbor"}, body)
	if resp.StatusCode != 400 || m["__type"] != cbor.String("SerializationException") {
		t.Errorf("without Smithy-Protocol: %d %v", resp.StatusCode, m)
	}
	resp, m = post("GetMetricData", map[string]string{"Smithy-Protocol": "rpc-v2-cbor", "Content-Type": "application/json"}, []byte("{}"))
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("JSON body: %d %v", resp.StatusCode, m)
	}
	resp, m = post("PutDashboard", good, cbor.Encode(cbor.Map{}))
	if resp.StatusCode != 400 || m["__type"] != cbor.String("UnknownOperationException") {
		t.Errorf("unknown operation: %d %v", resp.StatusCode, m)
	}
	// A modeled error: the shape ID in __type, AWS Query's code in the header.
	resp, m = post("GetMetricStatistics", good, cbor.Encode(cbor.Map{}))
	if resp.StatusCode != 400 || m["__type"] != cbor.String("com.amazonaws.cloudwatch#MissingRequiredParameterException") ||
		resp.Header.Get("X-Amzn-Query-Error") != "MissingParameter;Sender" {
		t.Errorf("missing parameter: %d %v %v", resp.StatusCode, m, resp.Header)
	}
	if _, ok := m["message"].(cbor.String); !ok {
		t.Errorf("no message in %v", m)
	}
}

func TestPutMetricKeepsSamplesInTimeOrder(t *testing.T) {
	s := newFake(t)
	s.SetMetricSeries("i-a", "CPUUtilization", cwBase.Add(10*time.Minute), 5*time.Minute, []float64{3, 4})
	s.PutMetric("i-a", "CPUUtilization", cwBase, 1)                                                // before all
	s.SetMetricSeries("i-a", "CPUUtilization", cwBase.Add(5*time.Minute), time.Hour, []float64{2}) // in between
	out, err := cloudwatchClient(s).GetMetricData(ctx(t), &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(time.Hour)), ScanBy: cwtypes.ScanByTimestampAscending,
		MetricDataQueries: []cwtypes.MetricDataQuery{statQuery("c0", "i-a", "CPUUtilization", "Maximum", 300)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := points(out.MetricDataResults[0].Timestamps, out.MetricDataResults[0].Values); p != "12:00=1 12:05=2 12:10=3 12:15=4" {
		t.Errorf("got %s", p)
	}
	s.ClearMetrics("i-a")
	out, err = cloudwatchClient(s).GetMetricData(ctx(t), &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(time.Hour)),
		MetricDataQueries: []cwtypes.MetricDataQuery{statQuery("c0", "i-a", "CPUUtilization", "Maximum", 300)},
	})
	if err != nil || len(out.MetricDataResults[0].Values) != 0 {
		t.Errorf("after ClearMetrics: %v %+v", err, out)
	}
}

func TestResetCallsWhileACallIsInFlight(t *testing.T) {
	s := newFake(t)
	c := cloudwatchClient(s)
	in := &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(time.Hour)),
		MetricDataQueries: []cwtypes.MetricDataQuery{statQuery("c0", "i-a", "CPUUtilization", "Maximum", 300)},
	}
	if _, err := c.GetMetricData(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	s.SetLatency("GetMetricData", 100*time.Millisecond)
	s.FailNext("GetMetricData", "Throttling", "", 1)
	done := make(chan error)
	go func() {
		_, err := c.GetMetricData(ctx(t), in)
		done <- err
	}()
	for s.CallCount("GetMetricData") < 2 {
		time.Sleep(time.Millisecond)
	}
	s.ResetCalls() // while the call sleeps on its latency; its fault comes after
	wantAPIError(t, <-done, "Throttling", http.StatusBadRequest)
	// The failed call was forgotten; its error code lands nowhere else.
	if _, err := c.GetMetricData(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	calls := s.Calls("")
	if len(calls) != 1 || calls[0].ErrorCode != "" {
		t.Errorf("calls after reset: %+v", calls)
	}
}
