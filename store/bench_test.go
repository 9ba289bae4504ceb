package store

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/computebot/computebot"
)

// benchRequest is a realistic request as persisted on the ack path.
func benchRequest(id string) *computebot.Request {
	return &computebot.Request{
		ID:          id,
		Requester:   "U0ANA",
		ChannelID:   "C0DATASCI",
		ResponseURL: "https://hooks.slack.com/commands/T000/1234567890/abcdefghijklmnopqrstuvwx",
		State:       computebot.RequestNew,
		Launch: &computebot.LaunchRequest{
			InstanceType: "t2.micro",
			ImageRef:     "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
			Reason:       "feature engineering",
			Lease:        4 * time.Hour,
		},
	}
}

// latencies collects per-operation durations and reports p50 and p99, the
// figures the ack-latency target is stated in, and the maximum, which
// shows the disk's own stalls (an fsync now and then takes tens of
// milliseconds on a shared virtual disk, whatever bbolt does).
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	p := func(q float64) float64 { return float64(l.d[int(q*float64(len(l.d)-1))].Nanoseconds()) }
	b.ReportMetric(p(0.50), "p50-ns")
	b.ReportMetric(p(0.99), "p99-ns")
	b.ReportMetric(float64(l.d[len(l.d)-1].Nanoseconds()), "max-ns")
}

// BenchmarkCreateRequest is one writer creating requests back to back:
// every op is a lone durable commit (maxBatchDelay, then two fdatasyncs),
// the floor of what CreateRequest adds to an ack.
func BenchmarkCreateRequest(b *testing.B) {
	db := openAt(b, filepath.Join(b.TempDir(), "computebot.db"))
	ctx := b.Context()
	var lat latencies
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		if err := db.CreateRequest(ctx, benchRequest(fmt.Sprintf("R-%08d", i))); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))
	}
	lat.report(b)
}

// BenchmarkCreateRequestParallel is 8 concurrent writers (a burst of
// /launch commands, far beyond the ack target's 200/s): writes that meet
// within maxBatchDelay, or while a commit is in flight, share a commit, so
// throughput grows with the writers while each still waits for its fsync.
func BenchmarkCreateRequestParallel(b *testing.B) {
	const writers = 8
	db := openAt(b, filepath.Join(b.TempDir(), "computebot.db"))
	ctx := b.Context()
	var (
		lat latencies
		n   atomic.Int64
	)
	b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("R-%08d", n.Add(1))
			start := time.Now()
			if err := db.CreateRequest(ctx, benchRequest(id)); err != nil {
				b.Error(err)
				return
			}
			lat.add(time.Since(start))
		}
	})
	lat.report(b)
}

// BenchmarkCreateRequestAt200PerSecond is the ack-path load of the issue's
// latency target: requests arriving open-loop at 200/s, each in its own
// goroutine as envelopes would. ns/op is just the 5 ms pacing; the figures
// that matter are p50-ns and p99-ns, the time one CreateRequest adds to an
// ack, until the request is durably committed (it is readable at once:
// each goroutine reads it back, as the bot's worker does right after the
// ack, and fails should it be missing).
func BenchmarkCreateRequestAt200PerSecond(b *testing.B) {
	db := openAt(b, filepath.Join(b.TempDir(), "computebot.db"))
	ctx := b.Context()
	var (
		lat latencies
		wg  sync.WaitGroup
	)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	i := 0
	for b.Loop() {
		<-tick.C
		i++
		id := fmt.Sprintf("R-%08d", i)
		wg.Go(func() {
			start := time.Now()
			if err := db.CreateRequest(ctx, benchRequest(id)); err != nil {
				b.Error(err)
				return
			}
			lat.add(time.Since(start))
			if _, err := db.Request(ctx, id); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	lat.report(b)
}

// BenchmarkUpdateRequest is the approval compare-and-set: a read, fn, and
// a lone durable commit that checks the version.
func BenchmarkUpdateRequest(b *testing.B) {
	db := openAt(b, filepath.Join(b.TempDir(), "computebot.db"))
	ctx := b.Context()
	if err := db.CreateRequest(ctx, benchRequest("R-1")); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_, err := db.UpdateRequest(ctx, "R-1", func(r *computebot.Request) error {
			r.DecidedBy = "U0BO"
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKVUpdateParallel is 8 writers incrementing one counter with
// Update: every lost race costs a re-read and another commit.
func BenchmarkKVUpdateParallel(b *testing.B) {
	db := openAt(b, filepath.Join(b.TempDir(), "computebot.db"))
	ctx := b.Context()
	b.SetParallelism((8 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var n int
			if err := db.Update(ctx, "bench", "counter", &n, func(bool) error { n++; return nil }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRequest is a read: no commit, no fsync.
func BenchmarkRequest(b *testing.B) {
	db := openAt(b, filepath.Join(b.TempDir(), "computebot.db"))
	ctx := b.Context()
	if err := db.CreateRequest(ctx, benchRequest("R-1")); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := db.Request(ctx, "R-1"); err != nil {
			b.Fatal(err)
		}
	}
}
