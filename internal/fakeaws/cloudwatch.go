package fakeaws

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// CloudWatch, as far as idle detection needs it: raw per-instance samples
// of the AWS/EC2 metrics, aggregated on request by Period and statistic,
// served by GetMetricData and GetMetricStatistics over Smithy RPC v2 CBOR.
//
// Samples live in one sorted slice per instance and metric, so a query
// costs a binary search plus the samples in its window, whatever the number
// of instances.

// CloudWatch limits, as the fake enforces them.
const (
	cwNamespaceEC2 = "AWS/EC2"
	// The CloudWatch agent's GPU metric, published with InstanceId as its
	// only dimension (SetMetricSeries with this name).
	cwNamespaceAgent        = "CWAgent"
	cwAgentGPUMetric        = "nvidia_smi_utilization_gpu"
	cwMaxQueries            = 500    // MetricDataQueries per GetMetricData
	cwDefaultMaxDatapoints  = 100800 // GetMetricData's default and largest page
	cwMaxStatisticsPoints   = 1440   // datapoints one GetMetricStatistics may ask for
	cwMaxStatisticsPerQuery = 5      // Statistics per GetMetricStatistics
)

// cwUnits are the units EC2 reports its metrics in; other metric names are
// "None".
var cwUnits = map[string]string{
	"CPUUtilization": "Percent",
	"NetworkIn":      "Bytes",
	"NetworkOut":     "Bytes",
}

func cwUnit(metric string) string {
	if u, ok := cwUnits[metric]; ok {
		return u
	}
	return "None"
}

// cwStatistics are the statistics the fake computes (no percentiles).
var cwStatistics = []string{"SampleCount", "Average", "Sum", "Minimum", "Maximum"}

var cwQueryIDPattern = regexp.MustCompile(`^[a-z][a-zA-Z0-9_]*$`)

// metricKey names one stored series: an instance's metric in AWS/EC2.
type metricKey struct{ instance, metric string }

// sample is one raw datapoint, t in Unix nanoseconds.
type sample struct {
	t int64
	v float64
}

// PutMetric stores one raw sample of an AWS/EC2 metric ("CPUUtilization",
// "NetworkIn", "NetworkOut"; any name works) for an instance with the
// InstanceId dimension. Queries aggregate the samples by Period and
// statistic, so put several per period to test Maximum against Average,
// or one per period for plain values. The instance need not exist in EC2.
func (s *Server) PutMetric(instanceID, metric string, t time.Time, value float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := metricKey{instanceID, metric}
	ss := s.metrics[k]
	tn := t.UnixNano()
	// After every sample at the same or an earlier time: append in the
	// usual case of samples arriving in order.
	i := sort.Search(len(ss), func(i int) bool { return ss[i].t > tn })
	s.metrics[k] = slices.Insert(ss, i, sample{tn, value})
}

// SetMetricSeries stores len(values) samples of metric for an instance, the
// first at start and then one every `every` (e.g. 5 minutes, one per basic
// monitoring period), in addition to those already stored.
func (s *Server) SetMetricSeries(instanceID, metric string, start time.Time, every time.Duration, values []float64) {
	if len(values) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := metricKey{instanceID, metric}
	ss := s.metrics[k]
	sorted := every >= 0 && (len(ss) == 0 || ss[len(ss)-1].t <= start.UnixNano())
	ss = slices.Grow(ss, len(values))
	for i, v := range values {
		ss = append(ss, sample{start.Add(time.Duration(i) * every).UnixNano(), v})
	}
	if !sorted {
		slices.SortStableFunc(ss, func(a, b sample) int { return cmpInt64(a.t, b.t) })
	}
	s.metrics[k] = ss
}

// ClearMetrics forgets every stored sample of an instance ("" = of all).
func (s *Server) ClearMetrics(instanceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if instanceID == "" {
		s.metrics = map[metricKey][]sample{}
		return
	}
	for k := range s.metrics {
		if k.instance == instanceID {
			delete(s.metrics, k)
		}
	}
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// bucket is one period's aggregate; start in Unix nanoseconds.
type bucket struct {
	start         int64
	n             int
	sum, min, max float64
}

func (b bucket) stat(name string) float64 {
	switch name {
	case "SampleCount":
		return float64(b.n)
	case "Average":
		return b.sum / float64(b.n)
	case "Sum":
		return b.sum
	case "Minimum":
		return b.min
	case "Maximum":
		return b.max
	}
	return math.NaN()
}

// aggregate groups the samples in [from, to) into periods aligned to the
// Unix epoch, oldest first; periods without samples are absent, as in
// CloudWatch. ss must be sorted.
func aggregate(ss []sample, from, to, period int64) []bucket {
	i := sort.Search(len(ss), func(i int) bool { return ss[i].t >= from })
	var out []bucket
	for ; i < len(ss) && ss[i].t < to; i++ {
		p := ss[i]
		start := p.t - ((p.t%period)+period)%period
		if n := len(out); n > 0 && out[n-1].start == start {
			b := &out[n-1]
			b.n++
			b.sum += p.v
			b.min = min(b.min, p.v)
			b.max = max(b.max, p.v)
			continue
		}
		out = append(out, bucket{start: start, n: 1, sum: p.v, min: p.v, max: p.v})
	}
	return out
}

// cwMetric is a metric as a request names it.
type cwMetric struct {
	namespace, name string
	dims            [][2]string // name, value
}

// seriesLocked returns the stored samples the metric names: AWS/EC2 with
// exactly the InstanceId dimension; any other metric has no data.
func (s *Server) seriesLocked(m cwMetric) []sample {
	ok := m.namespace == cwNamespaceEC2 || (m.namespace == cwNamespaceAgent && m.name == cwAgentGPUMetric)
	if !ok || len(m.dims) != 1 || m.dims[0][0] != "InstanceId" {
		return nil
	}
	return s.metrics[metricKey{m.dims[0][1], m.name}]
}

// validPeriod is CloudWatch's rule: 1, 5, 10, 20, 30, or a multiple of 60.
func validPeriod(p int64) bool {
	switch p {
	case 1, 5, 10, 20, 30:
		return true
	}
	return p >= 60 && p%60 == 0
}

// --- GetMetricData -----------------------------------------------------------

// cwQuery is one parsed MetricDataQuery.
type cwQuery struct {
	id, label  string
	metric     cwMetric
	period     int64 // seconds
	stat, unit string
	returnData bool
}

type cwPoint struct {
	q int   // index into the queries
	t int64 // period start, Unix nanoseconds
	v float64
}

func cwGetMetricData(s *Server, req *request) (*response, *apiError) {
	in, aerr := decodeCBORMap(req)
	if aerr != nil {
		return nil, aerr
	}
	rawQueries, aerr := cborList(in, "MetricDataQueries")
	if aerr != nil {
		return nil, aerr
	}
	if rawQueries == nil {
		return nil, errorf("MissingParameter", "The parameter MetricDataQueries is required.")
	}
	if len(rawQueries) > cwMaxQueries {
		return nil, errorf("ValidationError", "The collection MetricDataQueries must not have a size greater than %d.", cwMaxQueries)
	}
	start, end, aerr := cwWindow(in)
	if aerr != nil {
		return nil, aerr
	}
	maxDatapoints := int64(cwDefaultMaxDatapoints)
	if v, ok, aerr := cborInt(in, "MaxDatapoints"); aerr != nil {
		return nil, aerr
	} else if ok {
		if v < 1 {
			return nil, errorf("ValidationError", "The parameter MaxDatapoints must be greater than 0.")
		}
		maxDatapoints = min(v, cwDefaultMaxDatapoints)
	}
	scanBy, _, aerr := cborString(in, "ScanBy")
	if aerr != nil {
		return nil, aerr
	}
	switch scanBy {
	case "":
		scanBy = "TimestampDescending"
	case "TimestampDescending", "TimestampAscending":
	default:
		return nil, errorf("ValidationError", "1 validation error detected: Value '%s' at 'scanBy' failed to satisfy constraint: "+
			"Member must satisfy enum value set: [TimestampDescending, TimestampAscending]", scanBy)
	}
	queries := make([]cwQuery, 0, len(rawQueries))
	seen := make(map[string]bool, len(rawQueries))
	for i, raw := range rawQueries {
		q, aerr := parseMetricDataQuery(raw, i+1)
		if aerr != nil {
			return nil, aerr
		}
		if seen[q.id] {
			return nil, errorf("ValidationError", "The values for parameter id in MetricDataQueries are not unique.")
		}
		seen[q.id] = true
		queries = append(queries, q)
	}
	offset := 0
	if tok, ok, aerr := cborString(in, "NextToken"); aerr != nil {
		return nil, aerr
	} else if ok {
		n, good := decodeMetricToken(tok, cwFingerprint(queries, start, end, scanBy))
		if !good {
			return nil, errorf("InvalidNextToken", "The service couldn't process the NextToken.")
		}
		offset = n
	}

	// Every datapoint of every query, then ordered by time as ScanBy says
	// (query order within one timestamp); a page is a window of that order.
	var points []cwPoint
	s.mu.Lock()
	for qi, q := range queries {
		if !q.returnData || q.unit != "" && q.unit != cwUnit(q.metric.name) {
			continue
		}
		for _, b := range aggregate(s.seriesLocked(q.metric), start, end, q.period*int64(time.Second)) {
			points = append(points, cwPoint{qi, b.start, b.stat(q.stat)})
		}
	}
	s.mu.Unlock()
	desc := scanBy == "TimestampDescending"
	// (t, q) is unique: a query has one point per period.
	slices.SortFunc(points, func(a, b cwPoint) int {
		if c := cmpInt64(a.t, b.t); c != 0 {
			if desc {
				return -c
			}
			return c
		}
		return a.q - b.q
	})
	if offset > len(points) {
		return nil, errorf("InvalidNextToken", "The service couldn't process the NextToken.")
	}
	last := make([]int, len(queries)) // index of each query's last point, -1 for none
	for i := range last {
		last[i] = -1
	}
	for i, p := range points {
		last[p.q] = i
	}
	pageEnd := min(offset+int(maxDatapoints), len(points))

	type result struct {
		ts []int64
		vs []float64
	}
	results := make([]*result, len(queries))
	for _, p := range points[offset:pageEnd] {
		r := results[p.q]
		if r == nil {
			r = &result{}
			results[p.q] = r
		}
		r.ts = append(r.ts, p.t)
		r.vs = append(r.vs, p.v)
	}
	out := make(cbor.List, 0, len(queries))
	for qi, q := range queries {
		r := results[qi]
		if r == nil {
			// A query without any data is answered once, on the first page.
			if !q.returnData || last[qi] >= 0 || offset > 0 {
				continue
			}
			r = &result{}
		}
		status := "Complete"
		if last[qi] >= pageEnd {
			status = "PartialData"
		}
		label := q.label
		if label == "" {
			label = q.metric.name
		}
		out = append(out, cbor.Map{
			"Id":         cbor.String(q.id),
			"Label":      cbor.String(label),
			"Timestamps": cborTimeList(r.ts),
			"Values":     cborFloatList(r.vs),
			"StatusCode": cbor.String(status),
		})
	}
	answer := cbor.Map{"MetricDataResults": out, "Messages": cbor.List{}}
	if pageEnd < len(points) {
		answer["NextToken"] = cbor.String(encodeMetricToken(pageEnd, cwFingerprint(queries, start, end, scanBy)))
	}
	return cborResponse(answer)
}

func parseMetricDataQuery(v cbor.Value, n int) (cwQuery, *apiError) {
	m, ok := v.(cbor.Map)
	if !ok {
		return cwQuery{}, errorf("SerializationException", "MetricDataQueries[%d] is not a structure", n)
	}
	q := cwQuery{returnData: true}
	var aerr *apiError
	if q.id, _, aerr = cborString(m, "Id"); aerr != nil {
		return q, aerr
	}
	if q.id == "" {
		return q, errorf("MissingParameter", "The parameter MetricDataQueries.member.%d.Id is required.", n)
	}
	if len(q.id) > 255 || !cwQueryIDPattern.MatchString(q.id) {
		return q, errorf("ValidationError", "The value %s for parameter MetricDataQueries.member.%d.Id is not valid. "+
			"The first character must be a lower case letter; then letters, numbers and underscores.", q.id, n)
	}
	if q.label, _, aerr = cborString(m, "Label"); aerr != nil {
		return q, aerr
	}
	if rd, ok, aerr := cborBool(m, "ReturnData"); aerr != nil {
		return q, aerr
	} else if ok {
		q.returnData = rd
	}
	if _, ok := m["Expression"]; ok {
		return q, errorf("ValidationError", "fakeaws supports only MetricStat queries, not Expression (MetricDataQueries.member.%d).", n)
	}
	statV, ok := m["MetricStat"]
	if !ok {
		return q, errorf("ValidationError", "Exactly one of MetricStat and Expression must be set in MetricDataQueries.member.%d.", n)
	}
	stat, ok := statV.(cbor.Map)
	if !ok {
		return q, errorf("SerializationException", "MetricDataQueries[%d].MetricStat is not a structure", n)
	}
	if q.metric, aerr = parseMetric(stat["Metric"], fmt.Sprintf("MetricDataQueries.member.%d.MetricStat.Metric", n)); aerr != nil {
		return q, aerr
	}
	period, ok, aerr := cborInt(stat, "Period")
	if aerr != nil {
		return q, aerr
	}
	if !ok {
		return q, errorf("MissingParameter", "The parameter MetricDataQueries.member.%d.MetricStat.Period is required.", n)
	}
	if !validPeriod(period) {
		return q, errorf("InvalidParameterValue", "The parameter MetricDataQueries.member.%d.MetricStat.Period must be 1, 5, 10, 20, 30, 60, or any multiple of 60.", n)
	}
	q.period = period
	if q.stat, _, aerr = cborString(stat, "Stat"); aerr != nil {
		return q, aerr
	}
	if q.stat == "" {
		return q, errorf("MissingParameter", "The parameter MetricDataQueries.member.%d.MetricStat.Stat is required.", n)
	}
	if !slices.Contains(cwStatistics, q.stat) {
		return q, errorf("InvalidParameterValue", "fakeaws does not compute the statistic %q (only %s).", q.stat, strings.Join(cwStatistics, ", "))
	}
	if q.unit, _, aerr = cborString(stat, "Unit"); aerr != nil {
		return q, aerr
	}
	return q, nil
}

func parseMetric(v cbor.Value, where string) (cwMetric, *apiError) {
	m, ok := v.(cbor.Map)
	if !ok {
		return cwMetric{}, errorf("MissingParameter", "The parameter %s is required.", where)
	}
	var out cwMetric
	var aerr *apiError
	if out.namespace, _, aerr = cborString(m, "Namespace"); aerr != nil {
		return out, aerr
	}
	if out.name, _, aerr = cborString(m, "MetricName"); aerr != nil {
		return out, aerr
	}
	if out.name == "" {
		return out, errorf("MissingParameter", "The parameter %s.MetricName is required.", where)
	}
	if out.dims, aerr = parseDimensions(m); aerr != nil {
		return out, aerr
	}
	return out, nil
}

func parseDimensions(m cbor.Map) ([][2]string, *apiError) {
	list, aerr := cborList(m, "Dimensions")
	if aerr != nil {
		return nil, aerr
	}
	if len(list) > 30 {
		return nil, errorf("InvalidParameterValue", "The collection Dimensions must not have a size greater than 30.")
	}
	var dims [][2]string
	for _, d := range list {
		dm, ok := d.(cbor.Map)
		if !ok {
			return nil, errorf("SerializationException", "a Dimension is not a structure")
		}
		name, _, aerr := cborString(dm, "Name")
		if aerr != nil {
			return nil, aerr
		}
		value, _, aerr := cborString(dm, "Value")
		if aerr != nil {
			return nil, aerr
		}
		if name == "" || value == "" {
			return nil, errorf("MissingParameter", "A Dimension needs both Name and Value.")
		}
		dims = append(dims, [2]string{name, value})
	}
	return dims, nil
}

// cwWindow reads StartTime and EndTime (both required, start before end)
// as Unix nanoseconds.
func cwWindow(in cbor.Map) (start, end int64, aerr *apiError) {
	st, ok, aerr := cborTimeValue(in, "StartTime")
	if aerr != nil {
		return 0, 0, aerr
	}
	if !ok {
		return 0, 0, errorf("MissingParameter", "The parameter StartTime is required.")
	}
	et, ok, aerr := cborTimeValue(in, "EndTime")
	if aerr != nil {
		return 0, 0, aerr
	}
	if !ok {
		return 0, 0, errorf("MissingParameter", "The parameter EndTime is required.")
	}
	if !st.Before(et) {
		return 0, 0, errorf("InvalidParameterValue", "The parameter StartTime must be less than the parameter EndTime.")
	}
	return st.UnixNano(), et.UnixNano(), nil
}

// cwFingerprint ties a NextToken to the request that produced it.
func cwFingerprint(queries []cwQuery, start, end int64, scanBy string) uint64 {
	h := fnv.New64a()
	var buf []byte
	str := func(s string) {
		buf = append(buf, s...)
		buf = append(buf, 0)
	}
	num := func(n int64) { buf = binary.AppendVarint(buf, n) }
	num(start)
	num(end)
	str(scanBy)
	for _, q := range queries {
		str(q.id)
		str(q.label)
		str(q.metric.namespace)
		str(q.metric.name)
		for _, d := range q.metric.dims {
			str(d[0])
			str(d[1])
		}
		num(q.period)
		str(q.stat)
		str(q.unit)
		if q.returnData {
			str("1")
		}
		_, _ = h.Write(buf)
		buf = buf[:0]
	}
	_, _ = h.Write(buf)
	return h.Sum64()
}

func encodeMetricToken(offset int, fingerprint uint64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "fakecw:%d:%x", offset, fingerprint))
}

func decodeMetricToken(tok string, fingerprint uint64) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), "fakecw:")
	if !ok {
		return 0, false
	}
	off, fp, ok := strings.Cut(rest, ":")
	if !ok || fp != strconv.FormatUint(fingerprint, 16) {
		return 0, false
	}
	n, err := strconv.Atoi(off)
	return n, err == nil && n > 0
}

// --- GetMetricStatistics -----------------------------------------------------

func cwGetMetricStatistics(s *Server, req *request) (*response, *apiError) {
	in, aerr := decodeCBORMap(req)
	if aerr != nil {
		return nil, aerr
	}
	var m cwMetric
	if m.namespace, _, aerr = cborString(in, "Namespace"); aerr != nil {
		return nil, aerr
	}
	if m.namespace == "" {
		return nil, errorf("MissingParameter", "The parameter Namespace is required.")
	}
	if m.name, _, aerr = cborString(in, "MetricName"); aerr != nil {
		return nil, aerr
	}
	if m.name == "" {
		return nil, errorf("MissingParameter", "The parameter MetricName is required.")
	}
	if m.dims, aerr = parseDimensions(in); aerr != nil {
		return nil, aerr
	}
	start, end, aerr := cwWindow(in)
	if aerr != nil {
		return nil, aerr
	}
	period, ok, aerr := cborInt(in, "Period")
	if aerr != nil {
		return nil, aerr
	}
	if !ok {
		return nil, errorf("MissingParameter", "The parameter Period is required.")
	}
	if !validPeriod(period) {
		return nil, errorf("InvalidParameterValue", "The parameter Period must be 1, 5, 10, 20, 30, 60, or any multiple of 60.")
	}
	rawStats, aerr := cborList(in, "Statistics")
	if aerr != nil {
		return nil, aerr
	}
	extended, aerr := cborList(in, "ExtendedStatistics")
	if aerr != nil {
		return nil, aerr
	}
	if len(rawStats) == 0 && len(extended) == 0 {
		return nil, errorf("InvalidParameterCombination", "Must specify either Statistics or ExtendedStatistics")
	}
	if len(extended) > 0 {
		return nil, errorf("InvalidParameterValue", "fakeaws does not compute ExtendedStatistics.")
	}
	if len(rawStats) > cwMaxStatisticsPerQuery {
		return nil, errorf("InvalidParameterValue", "The collection Statistics must not have a size greater than %d.", cwMaxStatisticsPerQuery)
	}
	var stats []string
	for i, v := range rawStats {
		st, ok := v.(cbor.String)
		if !ok || !slices.Contains(cwStatistics, string(st)) {
			return nil, errorf("InvalidParameterValue", "The parameter Statistics.member.%d must be a value in the set [ Maximum, Minimum, Sum, SampleCount, Average ].", i+1)
		}
		stats = append(stats, string(st))
	}
	unit, _, aerr := cborString(in, "Unit")
	if aerr != nil {
		return nil, aerr
	}
	periodNanos := period * int64(time.Second)
	if n := (end - start + periodNanos - 1) / periodNanos; n > cwMaxStatisticsPoints {
		return nil, errorf("InvalidParameterCombination", "You have requested up to %d datapoints, which exceeds the limit of %d. "+
			"You may reduce the datapoints requested by increasing Period, or decreasing the time range.", n, cwMaxStatisticsPoints)
	}

	var buckets []bucket
	s.mu.Lock()
	if unit == "" || unit == cwUnit(m.name) {
		buckets = aggregate(s.seriesLocked(m), start, end, periodNanos)
	}
	s.mu.Unlock()
	points := make(cbor.List, 0, len(buckets))
	for _, b := range buckets {
		dp := cbor.Map{"Timestamp": cborTime(b.start), "Unit": cbor.String(cwUnit(m.name))}
		for _, st := range stats {
			dp[st] = cbor.Float64(b.stat(st))
		}
		points = append(points, dp)
	}
	return cborResponse(cbor.Map{"Label": cbor.String(m.name), "Datapoints": points})
}
