package aws_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/policy"
)

// The idle-scan benchmarks: N = 10,000 managed running instances, every
// AWS call answered after 20 ms. BenchmarkIdleScan runs the scheduler's
// real scan (DescribeInstances pages + batched GetMetricData) through the
// real SDK clients; BenchmarkIdleScanCustodianStyle reads the same metrics
// the way Cloud Custodian's metrics filter does (one GetMetricStatistics per
// instance and metric, 3 workers). Run:
//
//	go test -run '^$' -bench IdleScan -benchtime 1x -timeout 30m ./aws/
const (
	scanN       = 10_000
	scanLatency = 20 * time.Millisecond
)

// seedScanFake fills a fake with scanN busy managed instances and their
// metrics, all answering after scanLatency.
func seedScanFake(fake *fakeaws.Server) {
	launched := time.Now().Add(-3 * time.Hour)
	start := time.Now().Add(-2 * time.Hour).Truncate(5 * time.Minute)
	n := int(time.Since(start)/(5*time.Minute)) + 1
	series := func(v float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	cpu, net := series(40), series(1e6)
	for i := range scanN {
		id := fmt.Sprintf("i-%017x", 0x100000+i)
		fake.AddInstance(fakeaws.Instance{ID: id, Type: "t3.small", State: "running", LaunchTime: launched,
			Tags: map[string]string{computebot.TagManaged: "true", computebot.TagOwner: fmt.Sprintf("U%05d", i%500), computebot.TagName: "box"}})
		fake.SetMetricSeries(id, "CPUUtilization", start, 5*time.Minute, cpu)
		fake.SetMetricSeries(id, "NetworkIn", start, 5*time.Minute, net)
		fake.SetMetricSeries(id, "NetworkOut", start, 5*time.Minute, net)
	}
	fake.SetLatency("", scanLatency)
}

// TestScanFakeChild is not a test: BenchmarkIdleScan re-runs the test
// binary with COMPUTEBOT_SCAN_FAKE=1 to serve the seeded fake from a child
// process, so that the benchmark's own RSS is the bot side only.
func TestScanFakeChild(t *testing.T) {
	if os.Getenv("COMPUTEBOT_SCAN_FAKE") != "1" {
		t.Skip("only runs as the benchmark's child process")
	}
	fake := fakeaws.New()
	defer fake.Close()
	seedScanFake(fake)
	fmt.Printf("URL=%s\n", fake.URL())
	_, _ = io.Copy(io.Discard, os.Stdin) // serve until the parent closes stdin
}

// scanClient starts the child fake and returns a client for it and a way
// to read its call counts (the child prints nothing else, so counts come
// from the client side).
func scanClient(b *testing.B) *aws.Client {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestScanFakeChild$", "-test.timeout", "1h")
	cmd.Env = append(os.Environ(), "COMPUTEBOT_SCAN_FAKE=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "URL="); ok {
			url = u
			break
		}
	}
	if url == "" {
		b.Fatal("the fake child printed no URL")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	cfg := awssdk.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
		BaseEndpoint:     awssdk.String(url),
		HTTPClient:       counting,
	}
	return aws.NewFromConfig(cfg, aws.Options{CallTimeout: time.Minute})
}

// counting counts AWS calls by operation on the client side.
var counting = &countingClient{counts: map[string]int{}}

type countingClient struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	op := r.Header.Get("X-Amz-Target")
	if op == "" {
		if i := strings.LastIndex(r.URL.Path, "/operation/"); i >= 0 {
			op = r.URL.Path[i+len("/operation/"):]
		} else if r.Body != nil {
			body, _ := io.ReadAll(r.Body)
			_ = r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(body))
			if v, err := neturl.ParseQuery(string(body)); err == nil {
				op = v.Get("Action")
			}
		}
	}
	c.mu.Lock()
	c.counts[op]++
	c.mu.Unlock()
	return http.DefaultClient.Do(r)
}

func (c *countingClient) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = map[string]int{}
	return out
}

func BenchmarkIdleScan(b *testing.B) {
	client := scanClient(b)
	cfg := config.Default().Idle
	cfg.Schedule = "@every 1h"
	sched, err := idle.New(cfg, idle.Deps{
		Cloud: client, Notifier: nopNotifier{}, Authorizer: allowAll{}, KV: newMemKV(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	counting.take()
	b.ResetTimer()
	for range b.N {
		if err := sched.Scan(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	calls := counting.take()
	b.ReportMetric(float64(calls["DescribeInstances"])/float64(b.N), "DescribeInstances/scan")
	b.ReportMetric(float64(calls["GetMetricData"])/float64(b.N), "GetMetricData/scan")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/scan")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
	b.ReportMetric(rssMB(), "rss-MB")
}

func BenchmarkIdleScanCustodianStyle(b *testing.B) {
	client := scanClient(b)
	ctx := context.Background()
	end := time.Now().Truncate(5 * time.Minute)
	counting.take()
	b.ResetTimer()
	for range b.N {
		insts, err := client.ManagedInstances(ctx, computebot.InstanceFilter{States: []string{computebot.InstanceRunning}})
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]string, len(insts))
		for i, in := range insts {
			ids[i] = in.ID
		}
		q := computebot.MetricsQuery{InstanceIDs: ids, Start: end.Add(-time.Hour), End: end, Period: 5 * time.Minute}
		if _, err := client.InstanceMetricsOneByOne(ctx, q, 3); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	calls := counting.take()
	b.ReportMetric(float64(calls["DescribeInstances"])/float64(b.N), "DescribeInstances/scan")
	b.ReportMetric(float64(calls["GetMetricStatistics"])/float64(b.N), "GetMetricStatistics/scan")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/scan")
}

// rssMB is this process's resident set size: the bot side only, since the
// fake runs in a child process.
func rssMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

type nopNotifier struct{}

func (nopNotifier) PostNotice(_ context.Context, n idle.Notice) (string, string, error) {
	return "C0BENCH", "1.1", nil
}
func (nopNotifier) UpdateNotice(context.Context, idle.Notice) error                 { return nil }
func (nopNotifier) Announce(context.Context, idle.Notice) error                     { return nil }
func (nopNotifier) HoursStarted(context.Context, computebot.Instance, string) error { return nil }

type allowAll struct{}

func (allowAll) Authorize(context.Context, policy.Action) (policy.Decision, error) {
	return policy.Decision{Verdict: policy.Allow}, nil
}

// memKV is an in-memory idle.KV.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(_ context.Context, bucket, key string, v any) error {
	k.mu.Lock()
	raw, ok := k.m[bucket+"/"+key]
	k.mu.Unlock()
	if !ok {
		return computebot.ErrNotFound
	}
	return json.Unmarshal(raw, v)
}

// Update is the compare-and-set of idle.KV; the mutex makes it trivially
// one (this fake serves one benchmark process).
func (k *memKV) Update(_ context.Context, bucket, key string, v any, fn func(found bool) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	reflect.ValueOf(v).Elem().SetZero()
	raw, found := k.m[bucket+"/"+key]
	if found {
		if err := json.Unmarshal(raw, v); err != nil {
			return err
		}
	}
	switch err := fn(found); {
	case errors.Is(err, computebot.ErrDeleteKey):
		delete(k.m, bucket+"/"+key)
		return nil
	case err != nil:
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	k.m[bucket+"/"+key] = raw
	return nil
}

func (k *memKV) List(_ context.Context, bucket string, fn func(string, []byte) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for key, raw := range k.m {
		if name, ok := strings.CutPrefix(key, bucket+"/"); ok {
			if err := fn(name, raw); err != nil {
				return err
			}
		}
	}
	return nil
}
