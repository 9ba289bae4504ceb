package fakeaws

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// seedManaged adds n running managed instances.
func seedManaged(s *Server, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%017x", i+1)
		s.AddInstance(Instance{ID: ids[i], Tags: map[string]string{"computebot:managed": "true", "Name": fmt.Sprintf("box-%d", i)}})
	}
	return ids
}

var managedRunning = &ec2.DescribeInstancesInput{
	Filters: []ec2types.Filter{
		{Name: aws.String("tag:computebot:managed"), Values: []string{"true"}},
		{Name: aws.String("instance-state-name"), Values: []string{"running"}},
	},
	MaxResults: aws.Int32(1000),
}

// TestDescribeInstancesXMLMatchesEncodingXML holds the hand-written
// DescribeInstances encoder to what xml.Marshal makes of the same answer.
func TestDescribeInstancesXMLMatchesEncodingXML(t *testing.T) {
	s := newFake(t)
	s.SetPrivateSubnet("subnet-private")
	c := ec2Client(s)
	launch(t, c, "tok-1")
	s.AddInstance(Instance{ID: "i-00000000000000001", KeyName: "k", SubnetID: "subnet-private", SecurityGroupIDs: []string{"sg-1", "sg-2"},
		Tags: map[string]string{"Name": `a<b>&"c'` + "\t\n\r\x01\uFFFE é \xff", "empty": ""}})
	s.AddInstance(Instance{ID: "i-00000000000000002", State: stateStopped})
	s.AddInstance(Instance{ID: "i-00000000000000003", State: stateTerminated})
	s.AddInstance(Instance{ID: "i-00000000000000004", ReservationID: "r-shared"})
	s.AddInstance(Instance{ID: "i-00000000000000005", ReservationID: "r-shared", ClientToken: "ct"})
	s.AddInstance(Instance{ID: "i-00000000000000006", Type: "c5.xlarge", State: stateStopped, HibernationConfigured: true, Hibernated: true})
	s.AddInstance(Instance{ID: "i-00000000000000007", Type: "unknown.type", HibernationConfigured: true})

	s.mu.Lock()
	var all []xmlInstance
	for _, in := range s.order {
		all = append(all, s.xmlInstanceLocked(in, "eu-west-1"))
	}
	s.mu.Unlock()
	for name, r := range map[string]describeInstancesResponse{
		"nil":   {Xmlns: ec2Namespace, RequestID: "req"},
		"empty": {Xmlns: ec2Namespace, RequestID: "req", Reservations: []*xmlReservation{}},
		"full": {Xmlns: ec2Namespace, RequestID: "req<&>", NextToken: "tok", Reservations: []*xmlReservation{
			{ReservationID: "r-1", OwnerID: OwnerID, Instances: all[:3]},
			{ReservationID: "r-2", OwnerID: OwnerID, Groups: []xmlGroup{{"sg-9"}}, Instances: all[3:]},
			{ReservationID: "r-3", OwnerID: OwnerID, Groups: []xmlGroup{}, Instances: []xmlInstance{}},
		}},
	} {
		want, err := xml.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		want = append([]byte(xml.Header), want...)
		if got := r.appendXML(nil); string(got) != string(want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			from := max(0, i-60)
			t.Errorf("%s: differs at byte %d:\n got …%q\nwant …%q", name, i, got[from:min(len(got), i+60)], want[from:min(len(want), i+60)])
		}
	}
}

// TestDescribeInstancesPagesALargeFleet pages through 2,500 instances of
// which some are not managed or not running: every match exactly once, in
// launch order, 1,000 per page.
func TestDescribeInstancesPagesALargeFleet(t *testing.T) {
	s := newFake(t)
	var want []string
	for i := range 2500 {
		id := fmt.Sprintf("i-%017x", i+1)
		in := Instance{ID: id, Tags: map[string]string{"computebot:managed": "true"}}
		switch {
		case i%7 == 0:
			in.Tags = nil
		case i%11 == 0:
			in.State = stateStopped
		default:
			want = append(want, id)
		}
		s.AddInstance(in)
	}
	// Replacing an instance keeps its place.
	s.AddInstance(Instance{ID: want[0], Tags: map[string]string{"computebot:managed": "true", "Name": "again"}})

	p := ec2.NewDescribeInstancesPaginator(ec2Client(s), managedRunning)
	var got []string
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		n := 0
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				got = append(got, aws.ToString(in.InstanceId))
				n++
			}
		}
		if n > 1000 {
			t.Errorf("page of %d", n)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %d instances, want %d in launch order", len(got), len(want))
	}
	if wantPages := (len(want) + 999) / 1000; pages != wantPages {
		t.Errorf("%d pages, want %d", pages, wantPages)
	}
}

// seedMetrics gives every instance 12 five-minute periods of the three
// idle metrics, from cwBase.
func seedMetrics(s *Server, ids []string) {
	cpu := make([]float64, 12)
	net := make([]float64, 12)
	for i := range cpu {
		cpu[i], net[i] = float64(i), float64(1000*i)
	}
	for _, id := range ids {
		s.SetMetricSeries(id, "CPUUtilization", cwBase, 5*time.Minute, cpu)
		s.SetMetricSeries(id, "NetworkIn", cwBase, 5*time.Minute, net)
		s.SetMetricSeries(id, "NetworkOut", cwBase, 5*time.Minute, net)
	}
}

// readFleetMetrics asks for 3 metrics of every instance, 500 queries per
// call, 8 calls at a time, and returns the number of datapoints.
func readFleetMetrics(ctx context.Context, c *cloudwatch.Client, ids []string) (int, error) {
	var queries []cwtypes.MetricDataQuery
	for i, id := range ids {
		queries = append(queries,
			statQuery(fmt.Sprintf("c%d", i), id, "CPUUtilization", "Maximum", 300),
			statQuery(fmt.Sprintf("i%d", i), id, "NetworkIn", "Sum", 300),
			statQuery(fmt.Sprintf("o%d", i), id, "NetworkOut", "Sum", 300))
	}
	var (
		mu    sync.Mutex
		total int
		first error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, 8)
	for start := 0; start < len(queries); start += 500 {
		batch := queries[start:min(start+500, len(queries))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := c.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
				StartTime: aws.Time(cwBase), EndTime: aws.Time(cwBase.Add(time.Hour)),
				MetricDataQueries: batch, ScanBy: cwtypes.ScanByTimestampAscending,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				first = err
				return
			}
			for _, r := range out.MetricDataResults {
				total += len(r.Values)
			}
		}()
	}
	wg.Wait()
	return total, first
}

func TestGetMetricDataServesALargeFleet(t *testing.T) {
	n := 4000 // 24 calls; BenchmarkGetMetricData10k reads 10,000
	if testing.Short() {
		n = 1000
	}
	s := newFake(t)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%017x", i+1)
	}
	seedMetrics(s, ids)
	c := cloudwatchClient(s)
	total, err := readFleetMetrics(ctx(t), c, ids)
	if err != nil {
		t.Fatal(err)
	}
	if total != n*3*12 {
		t.Errorf("%d datapoints, want %d", total, n*3*12)
	}
	if calls, want := s.CallCount("GetMetricData"), (3*n+499)/500; calls != want {
		t.Errorf("%d calls, want %d", calls, want)
	}
}

func BenchmarkDescribeInstances10k(b *testing.B) {
	s := New()
	defer s.Close()
	seedManaged(s, 10000)
	c := ec2Client(s)
	for b.Loop() {
		start := time.Now()
		p := ec2.NewDescribeInstancesPaginator(c, managedRunning)
		n := 0
		for p.HasMorePages() {
			out, err := p.NextPage(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
		}
		if n != 10000 {
			b.Fatalf("got %d", n)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/scan")
	}
}

// BenchmarkGetMetricData10k reads 10,000 instances × 3 metrics × 12
// periods: 60 calls of 500 queries, 8 in flight.
func BenchmarkGetMetricData10k(b *testing.B) {
	s := New()
	defer s.Close()
	ids := seedManaged(s, 10000)
	seedMetrics(s, ids)
	c := cloudwatchClient(s)
	for b.Loop() {
		total, err := readFleetMetrics(b.Context(), c, ids)
		if err != nil {
			b.Fatal(err)
		}
		if total != 360000 {
			b.Fatalf("%d datapoints", total)
		}
	}
}
