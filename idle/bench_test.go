package idle

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkScan10k scans 10,000 running managed instances against the
// in-memory fakes: "active" evaluates everyone's metrics and finds none
// idle; "noticed" has a pending notice for every instance (the KV listing
// dominates). Most of B/op is the fakes' copying (a memory profile shows
// the scheduler's own share at about 0.4 MB per scan); the scheduler keeps
// nothing per instance between scans.
func BenchmarkScan10k(b *testing.B) {
	const n = 10_000
	for _, mode := range []string{"active", "noticed"} {
		b.Run(mode, func(b *testing.B) {
			r := newRig(b, testConfig())
			for i := range n {
				id := fmt.Sprintf("i-%017x", i)
				r.cloud.add(id, t0.Add(-3*time.Hour), nil)
				r.cloud.flat(id, t0.Add(-2*time.Hour), t0.Add(time.Hour), 30, 1e3, 1e3)
				if mode == "noticed" {
					nt := r.newNotice(*r.cloud.insts[id], ReasonIdle, t0)
					nt.StopAt = t0.Add(24 * time.Hour)
					r.mem.put(b, nt)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				r.scan(b)
			}
		})
	}
}
