package cluster_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/computebot/computebot/cluster"
)

// TestReplicaID: COMPUTEBOT_REPLICA names the replica; without it, the
// host name and process do. Either way every process is an incarnation of
// its own: two IDs for one name, never equal.
func TestReplicaID(t *testing.T) {
	named := func(k string) string {
		if k == cluster.EnvReplica {
			return " computebot-7d9f-x2 "
		}
		return ""
	}
	a, b := cluster.ReplicaID(named), cluster.ReplicaID(named)
	if a == b || cluster.Name(a) != "computebot-7d9f-x2" || cluster.Name(b) != "computebot-7d9f-x2" {
		t.Errorf("ReplicaIDs with %s set: %q and %q; want two incarnations of computebot-7d9f-x2", cluster.EnvReplica, a, b)
	}
	none := func(string) string { return "" }
	a, b = cluster.ReplicaID(none), cluster.ReplicaID(none)
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
