package dynamostore_test

import (
	"context"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws/dynamostore"
	"github.com/computebot/computebot/internal/dynamotest"
)

// TestOpenMarkers: a marker whose record closed without it (a crash
// between the record's terminal write and the marker's delete) is removed
// by the next listing; a marker without a record is removed once it is
// old, not while its record may be on its way.
func TestOpenMarkers(t *testing.T) {
	srv := dynamotest.Dynalite(t)
	ctx := context.Background()
	s, err := dynamostore.Open(ctx, dynamotest.Client(srv), dynamostore.Options{Table: dynamotest.NewTable(t, srv)})
	if err != nil {
		t.Fatal(err)
	}
	markers := func() map[string]bool {
		m, err := s.RequestMarkers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	r := &computebot.Request{ID: "R-1", State: computebot.RequestPending, Launch: &computebot.LaunchRequest{InstanceType: "t3.small"}}
	if err := s.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.State, r.Version = computebot.RequestDone, 2
	if err := s.PutRequestBehindMarkers(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRequest(ctx, "R-young", time.Now()); err != nil { // its record is on its way
		t.Fatal(err)
	}
	if err := s.MarkRequest(ctx, "R-old", time.Now().Add(-time.Hour)); err != nil { // it never came
		t.Fatal(err)
	}
	if got := markers(); !got["R-1"] || !got["R-young"] || !got["R-old"] {
		t.Fatalf("markers before the listing: %v", got)
	}
	open, err := s.Requests(ctx, computebot.RequestPending)
	if err != nil || len(open) != 0 {
		t.Fatalf("open requests: %v, %v; want none", open, err)
	}
	if got := markers(); got["R-1"] || got["R-old"] || !got["R-young"] {
		t.Fatalf("markers after the listing: %v; want only R-young's", got)
	}
}
