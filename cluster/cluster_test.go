package cluster_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/computebot/computebot/cluster"
)

// TestReplicaID: COMPUTEBOT_REPLICA names the replica; without it, two
// processes on one host (or one process started twice) get two IDs that
// both start with the host name.
func TestReplicaID(t *testing.T) {
	if got := cluster.ReplicaID(func(k string) string {
		if k == cluster.EnvReplica {
			return " computebot-7d9f-x2 "
		}
		return ""
	}); got != "computebot-7d9f-x2" {
		t.Errorf("ReplicaID with %s set = %q", cluster.EnvReplica, got)
	}
	none := func(string) string { return "" }
	a, b := cluster.ReplicaID(none), cluster.ReplicaID(none)
	host, _ := os.Hostname()
	if a == b || !strings.HasPrefix(a, host+"-") || !strings.HasPrefix(b, host+"-") {
		t.Errorf("ReplicaIDs %q and %q: want two, each starting with the host name %q", a, b, host)
	}
}

// TestSolo: one process alone leads, and every other claim is a previous
// process's.
func TestSolo(t *testing.T) {
	s := cluster.Solo{ID: "me"}
	if !s.Leading() || s.Gone(context.Background(), "me") || !s.Gone(context.Background(), "before") || !s.Gone(context.Background(), "") {
		t.Error("Solo: want leading, itself not gone, every other replica gone")
	}
	if tok, _, ok := s.Lease(); !ok || tok != 1 {
		t.Errorf("Solo lease = %d, %v; want token 1, held", tok, ok)
	}
}
