package fakeslack

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack/socketmode"
)

// startReplicas connects n socket-mode clients to s, one after the other,
// so that replica i holds connection i+1.
func startReplicas(t *testing.T, s *Server, n int) []*harness {
	t.Helper()
	ctx := longCtx(t)
	var hs []*harness
	for i := range n {
		hs = append(hs, startClient(t, s))
		if err := s.WaitConnections(ctx, i+1); err != nil {
			t.Fatal(err)
		}
	}
	return hs
}

// seenBy reads from each replica the events of the deliveries written on
// its connection and checks that they are those: Delivery.Conn names the
// client that really got the envelope.
func seenBy(t *testing.T, hs []*harness, ds []Delivery) {
	t.Helper()
	for i, h := range hs {
		var want, got []string
		for _, d := range ds {
			if d.Conn == i+1 {
				want = append(want, fmt.Sprintf("%s/%d", d.EnvelopeID, d.RetryAttempt))
			}
		}
		for range want {
			r := h.nextEvent(t).Request
			got = append(got, fmt.Sprintf("%s/%d", r.EnvelopeID, r.RetryAttempt))
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("replica %d got %v, want %v", i+1, got, want)
		}
		select {
		case evt := <-h.events:
			t.Errorf("replica %d got %+v besides", i+1, evt.Request)
		default:
		}
	}
}

// spreadOnce sends 60 envelopes of every kind to 3 replicas with spread on
// and returns the connection each was delivered on, once all are acked.
func spreadOnce(t *testing.T, seed int64) []int {
	t.Helper()
	s := New()
	t.Cleanup(s.Close)
	s.SetSpread(true, seed)
	hs := startReplicas(t, s, 3)
	ctx := longCtx(t)
	var ids []string
	for i := range 60 {
		var id string
		var err error
		switch i % 3 {
		case 0:
			id, err = s.SendSlashCommand(SlashCommand{Command: "/launch", Text: fmt.Sprint(i), UserID: "U1", ChannelID: "C1"})
		case 1:
			id, err = s.SendBlockAction(BlockAction{UserID: "U1", ChannelID: "C1", ActionID: "approve", Value: fmt.Sprint(i)})
		default:
			id, err = s.SendMention(Mention{UserID: "U1", ChannelID: "C1", Text: fmt.Sprintf("<@%s> %d", BotUserID, i)})
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var conns []int
	var all []Delivery
	perConn := map[int]int{}
	for _, id := range ids {
		ack, err := s.WaitAck(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		ds := s.Deliveries(id)
		if len(ds) != 1 || !ds[0].Acked || ack.Conn != ds[0].Conn {
			t.Fatalf("%s: deliveries %+v, ack %+v", id, ds, ack)
		}
		conns = append(conns, ds[0].Conn)
		all = append(all, ds...)
		perConn[ds[0].Conn]++
	}
	for c := 1; c <= 3; c++ {
		if perConn[c] == 0 {
			t.Errorf("connection %d got none of 60 envelopes: %v", c, perConn)
		}
	}
	seenBy(t, hs, all)
	return conns
}

func TestSpreadOverConnections(t *testing.T) {
	t.Parallel()
	a, b, c := spreadOnce(t, 1), spreadOnce(t, 1), spreadOnce(t, 2)
	if !slices.Equal(a, b) {
		t.Errorf("the same seed spread differently:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2 spread the same: %v", a)
	}
}

// TestSpreadRedeliversElsewhere leaves the first delivery of each victim
// unacked, whichever replica gets it: the redelivery goes to another one,
// which acks it.
func TestSpreadRedeliversElsewhere(t *testing.T) {
	t.Parallel()
	s := New()
	t.Cleanup(s.Close)
	// Long enough that the redelivery is acked before it times out too.
	s.SetRedelivery(500*time.Millisecond, 3)
	s.SetSpread(true, 7)
	hs := startReplicas(t, s, 3)
	for _, h := range hs {
		h.holdAcks(func(r *socketmode.Request) bool {
			return strings.HasPrefix(r.EnvelopeID, "victim") && r.RetryAttempt == 0
		})
	}
	ctx := longCtx(t)
	var ids []string
	for i := range 12 {
		id, err := s.SendSlashCommand(SlashCommand{Command: "/launch", UserID: "U1", ChannelID: "C1", EnvelopeID: fmt.Sprint("victim-", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var all []Delivery
	for _, id := range ids {
		ack, err := s.WaitAck(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		ds := s.Deliveries(id)
		if len(ds) != 2 || ds[0].Acked || ds[1].RetryAttempt != 1 || ds[1].RetryReason != RetryReasonTimeout || !ds[1].Acked {
			t.Fatalf("%s: deliveries %+v", id, ds)
		}
		if ds[1].Conn == ds[0].Conn {
			t.Errorf("%s: redelivered on connection %d, the one that left it unacked", id, ds[0].Conn)
		}
		if ack.RetryAttempt != 1 || ack.Conn != ds[1].Conn {
			t.Errorf("%s: ack %+v, want one of retry_attempt 1 on connection %d", id, ack, ds[1].Conn)
		}
		all = append(all, ds...)
	}
	seenBy(t, hs, all)
}

// TestSpreadDroppedConnection ends one replica's connection while it holds
// envelopes unacked: they are redelivered to other connections, spread (the
// dropped replica may have reconnected by then; its new connection is
// another one, as on Slack).
func TestSpreadDroppedConnection(t *testing.T) {
	t.Parallel()
	s := New()
	t.Cleanup(s.Close)
	// A long ack timeout: only the connection's end redelivers.
	s.SetRedelivery(time.Minute, 3)
	s.SetSpread(true, 3)
	hs := startReplicas(t, s, 3)
	// Replica 3 leaves its first deliveries unacked; a redelivery that
	// reaches it on its next connection it acks.
	hs[2].holdAcks(func(r *socketmode.Request) bool { return r.RetryAttempt == 0 })
	ctx := longCtx(t)
	var victims []string
	for i := range 30 {
		id, err := s.SendSlashCommand(SlashCommand{Command: "/launch", Text: fmt.Sprint(i), UserID: "U1", ChannelID: "C1"})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := s.WaitDeliveries(ctx, id, 1)
		if err != nil {
			t.Fatal(err)
		}
		if ds[0].Conn == 3 {
			victims = append(victims, id)
			continue
		}
		if _, err := s.WaitAck(ctx, id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if len(victims) < 4 {
		t.Fatalf("%d of 30 envelopes on connection 3: pick another seed", len(victims))
	}
	for range victims {
		hs[2].nextEvent(t) // read, not acked
	}

	// Connection 3 is the newest: Chaos ends it.
	if err := s.Chaos(ChaosTCPClose); err != nil {
		t.Fatal(err)
	}
	perConn := map[int]int{}
	for _, id := range victims {
		ack, err := s.WaitAck(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v (deliveries %+v)", id, err, s.Deliveries(id))
		}
		ds := s.Deliveries(id)
		if len(ds) != 2 || ds[1].RetryAttempt != 1 || ds[1].RetryReason != RetryReasonConnectionClosed || ds[1].Conn == 3 || ack.Conn != ds[1].Conn {
			t.Errorf("%s: deliveries %+v, ack %+v", id, ds, ack)
		}
		perConn[ds[1].Conn]++
	}
	if len(perConn) < 2 {
		t.Errorf("redeliveries of connection 3's %d envelopes not spread: %v", len(victims), perConn)
	}
}
