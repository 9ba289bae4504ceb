//go:build crashpoints

package crash

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	mu     sync.Mutex
	name   string
	nth    = 1
	hits   int
	parsed bool
)

func target() (string, int) {
	if !parsed {
		parsed = true
		spec := os.Getenv(EnvVar)
		name = spec
		if n, k, ok := strings.Cut(spec, "#"); ok {
			if v, err := strconv.Atoi(k); err == nil && v > 0 {
				name, nth = n, v
			}
		}
	}
	return name, nth
}

// Point exits the process (ExitCode) when it is the point COMPUTEBOT_CRASH_AT
// names, at its N-th hit. The exit waits a moment first, so that what the
// point follows (an ack handed to the socket's writer) is on the wire, as
// it would be when a machine dies a few milliseconds later.
func Point(p string) {
	mu.Lock()
	want, n := target()
	if want == "" || p != want {
		mu.Unlock()
		return
	}
	hits++
	hit := hits
	mu.Unlock()
	if hit != n {
		return
	}
	fmt.Fprintf(os.Stderr, "crash point %s (hit %d): exiting\n", p, hit)
	time.Sleep(20 * time.Millisecond)
	os.Exit(ExitCode)
}
