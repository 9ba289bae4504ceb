// Package cluster is what a replica knows about the others when several
// share one store: its own identity, whether it holds the leader lease
// (one scheduler for the whole deployment), and whether another replica
// is gone (so that the work it claimed can be taken over).
//
// Both are leases on the store's key/value API, renewed by a
// compare-and-set (KV.Update): the leader lease (holder, version) and one
// heartbeat per replica (holder, version). Every renewal bumps the version.
//
// # Clocks
//
// No replica compares its clock with a timestamp another machine wrote:
// clocks of different machines may be apart by seconds. A lease is judged
// by its version and the judge's own elapsed time. The holder counts its
// lease from the moment before it sent the renewal, and stops acting
// Margin before TTL has passed; another replica counts from the moment it
// first read that version (after the renewal was written, so later), and
// takes the lease only when it has read the same version for a whole TTL.
// So the two intervals cannot overlap as long as the two clocks run at
// about the same rate (the margin covers drift and scheduling delay), not
// only when they show the same time.
//
// # Fencing
//
// The leader lease's version is a fencing token: it only grows, and a new
// leader's is larger than any its predecessor held. The idle scheduler
// writes the token into each notice it changes and refuses to change a
// notice that carries a newer one, so a deposed leader that has not
// noticed yet (paused, partitioned) cannot stop an instance or post a
// notice its successor is handling.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/computebot/computebot"
)

// KV is the store's key/value API (*store.DB, *dynamostore.Store).
type KV interface {
	Get(ctx context.Context, bucket, key string, v any) error
	Update(ctx context.Context, bucket, key string, v any, fn func(found bool) error) error
	List(ctx context.Context, bucket string, fn func(key string, raw []byte) error) error
}

// Bucket holds the leases: "leader", and "replica/<id>" per replica.
const Bucket = "cluster"

const leaderKey = "leader"

func replicaKey(id string) string { return "replica/" + id }

// Defaults of Options' zero values.
const (
	DefaultLeaseTTL = 15 * time.Second
)

// EnvReplica names the replica's identity, when set.
const EnvReplica = "COMPUTEBOT_REPLICA"

// ReplicaID is this process's identity: COMPUTEBOT_REPLICA when set, else
// the host (pod) name and the process ID (several replicas may share a
// host), then "#" and a random incarnation. The incarnation makes every
// process a replica of its own: a container restarted under the same pod
// name is not the process that claimed the work before it, so it takes
// that work over like anyone else's, with a compare-and-set, and never
// runs it beside the replica that may have taken it already; and two live
// processes given one name never share the leader lease.
func ReplicaID(getenv func(string) string) string {
	name := strings.TrimSpace(getenv(EnvReplica))
	if name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "computebot"
		}
		name = host + "-" + strconv.Itoa(os.Getpid())
	}
	return name + "#" + strings.ToLower(rand.Text()[:6])
}

// Name is the replica's name without its incarnation (COMPUTEBOT_REPLICA,
// or host and process).
func Name(id string) string {
	name, _, _ := strings.Cut(id, "#")
	return name
}

// lease is the stored form of both kinds of lease.
type lease struct {
	Holder  string `json:"holder"`  // "" once released
	Version int64  `json:"version"` // one more with every write: what others watch
	// Term (the leader lease only) is one more with every change of
	// holder: the fencing token. A leader's renewals keep it, so its own
	// runs agree; a successor's is always larger.
	Term int64 `json:"term,omitempty"`
}

// Options configure a Cluster.
type Options struct {
	Self string // this replica's ID (ReplicaID)
	// LeaseTTL is how long a lease stands without renewal (default 15s);
	// it is renewed every LeaseTTL/3, and a replica whose heartbeat stood
	// still for 2×LeaseTTL is gone.
	LeaseTTL time.Duration
	Logger   *slog.Logger     // slog.Default when nil
	Now      func() time.Time // time.Now when nil (its monotonic reading)
}

// Cluster keeps this replica's leases. Create it with New; Run renews
// them until its context ends, then releases them.
type Cluster struct {
	kv     KV
	self   string
	ttl    time.Duration
	margin time.Duration
	every  time.Duration
	gone   time.Duration
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	token   int64     // the leader lease's term this replica holds
	until   time.Time // it acts as leader until then (own clock)
	seen    lease     // the leader lease as last read, held by another
	seenAt  time.Time // when seen was first read
	beats   map[string]observed
	beatOK  time.Time // when this replica's last heartbeat was sent that succeeded
	watched time.Time // when the last watch that succeeded started
	running bool
}

// observed is another replica's heartbeat as this one watches it: every
// replica watches every heartbeat (Tick lists them), so a new leader has
// the history its predecessor had instead of starting to watch from zero.
type observed struct {
	version int64
	since   time.Time // when this version was first read
	gone    bool      // released, or found missing
}

// New returns the cluster view of replica opts.Self.
func New(kv KV, opts Options) (*Cluster, error) {
	if opts.Self == "" {
		return nil, errors.New("cluster: no replica ID")
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cluster{
		kv: kv, self: opts.Self, ttl: opts.LeaseTTL, margin: opts.LeaseTTL / 5, every: opts.LeaseTTL / 3,
		gone: 2 * opts.LeaseTTL, log: opts.Logger.With("component", "cluster", "replica", opts.Self), now: opts.Now,
		beats: map[string]observed{},
	}, nil
}

// Self is this replica's ID, written into its claims.
func (c *Cluster) Self() string { return c.self }

// Leading reports whether this replica holds the leader lease now.
func (c *Cluster) Leading() bool {
	_, _, ok := c.Lease()
	return ok
}

// Lease returns the fencing token (the term) of the leader lease this
// replica holds and until when it may act on it (its own clock; a renewal
// moves it on); ok is false when it does not hold it.
func (c *Cluster) Lease() (token int64, until time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == 0 || !c.now().Before(c.until) {
		return 0, time.Time{}, false
	}
	return c.token, c.until, true
}

// Run beats and renews (or tries to take) the leader lease every
// LeaseTTL/3, after Join, until ctx ends, then releases both leases, so that a replica
// stopped cleanly hands over at once instead of after a TTL.
func (c *Cluster) Run(ctx context.Context) {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return
	}
	c.running = true
	c.mu.Unlock()
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			c.Release(rctx)
			cancel()
			return
		case <-t.C:
			c.Tick(ctx) // the first one was Join's
		}
	}
}

// Join writes this replica's first heartbeat and tries for the leader
// lease once. Call it before the replica claims anything: a claim whose
// replica has no heartbeat is taken for a gone replica's.
func (c *Cluster) Join(ctx context.Context) error {
	if err := c.beat(ctx); err != nil {
		return fmt.Errorf("cluster: first heartbeat of %s: %w", c.self, err)
	}
	if err := c.lead(ctx); err != nil {
		c.log.Warn("cluster: leader lease", "err", err)
	}
	return nil
}

// Tick beats once and renews or tries to take the leader lease once (Run
// calls it; tests call it to step a cluster by hand).
func (c *Cluster) Tick(ctx context.Context) {
	if err := c.beat(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("cluster: heartbeat failed", "err", err)
	}
	if err := c.lead(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("cluster: leader lease", "err", err)
	}
	if err := c.watch(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("cluster: read the heartbeats", "err", err)
	}
}

func (c *Cluster) beat(ctx context.Context) error {
	start := c.now()
	var l lease
	err := c.kv.Update(ctx, Bucket, replicaKey(c.self), &l, func(bool) error {
		l.Holder = c.self
		l.Version++
		return nil
	})
	if err == nil {
		c.mu.Lock()
		c.beatOK = start
		c.mu.Unlock()
	}
	return err
}

// Healthy reports whether this replica's heartbeat is current: its last
// successful one was sent less than a lease TTL ago. A replica that cannot
// write its heartbeat is about to be judged gone by the others (and its
// work taken over), so it should not take new work (readiness).
func (c *Cluster) Healthy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.beatOK.IsZero() && c.now().Sub(c.beatOK) < c.ttl
}

// watch reads every heartbeat and notes which changed, with the time
// taken before the read (a version read later was written no earlier).
func (c *Cluster) watch(ctx context.Context) error {
	at := c.now()
	seen := map[string]lease{}
	err := c.kv.List(ctx, Bucket, func(key string, raw []byte) error {
		id, ok := strings.CutPrefix(key, "replica/")
		if !ok {
			return nil
		}
		var l lease
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil // not ours to judge
		}
		seen[id] = l
		return nil
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.watched = at
	for id, o := range c.beats {
		if _, ok := seen[id]; !ok {
			if o.gone && at.Sub(o.since) >= forgetAfter {
				delete(c.beats, id) // long gone and deleted: forget it here too
				continue
			}
			if !o.gone {
				o.gone, o.since = true, at
			}
			c.beats[id] = o
		}
	}
	var forget []string
	for id, l := range seen {
		c.observe(id, l, at)
		if o := c.beats[id]; id != c.self && (o.gone || at.Sub(o.since) >= forgetAfter) {
			forget = append(forget, id)
		}
	}
	leading := c.token != 0
	c.mu.Unlock()
	if leading {
		// Every process leaves a heartbeat behind (each is an incarnation
		// of its own): the leader deletes those of replicas gone for good,
		// each only if it has not changed since it was judged.
		for _, id := range forget {
			c.forget(ctx, id, seen[id])
		}
	}
	return nil
}

// forgetAfter is how long a heartbeat stands still before the leader
// deletes it (one released is deleted at once): far beyond any pause.
const forgetAfter = time.Hour

func (c *Cluster) forget(ctx context.Context, id string, judged lease) {
	var l lease
	err := c.kv.Update(ctx, Bucket, replicaKey(id), &l, func(found bool) error {
		if !found || l != judged {
			return errHeld // changed: judge it again later
		}
		return computebot.ErrDeleteKey
	})
	if err != nil && !errors.Is(err, errHeld) {
		c.log.Warn("cluster: delete a gone replica's heartbeat", "of", id, "err", err)
	}
}

// observe notes replica id's heartbeat as read at (c.mu held).
func (c *Cluster) observe(id string, l lease, at time.Time) {
	o, ok := c.beats[id]
	switch {
	case l.Holder == "":
		c.beats[id] = observed{version: l.Version, since: at, gone: true}
	case !ok || o.version != l.Version:
		c.beats[id] = observed{version: l.Version, since: at}
	}
}

// errHeld: another replica holds the leader lease, and it is not stale.
var errHeld = errors.New("cluster: held by another replica")

func (c *Cluster) lead(ctx context.Context) error {
	c.mu.Lock()
	seen, seenAt := c.seen, c.seenAt
	c.mu.Unlock()
	start := c.now() // before the write: the holder's count starts here
	var cur, read lease
	took := false
	err := c.kv.Update(ctx, Bucket, leaderKey, &cur, func(found bool) error {
		read, took = cur, false
		switch {
		case !found:
			cur = lease{Holder: c.self, Version: 1, Term: 1}
			took = true
		case cur.Holder == c.self:
			cur.Version++
		case cur.Holder == "" || (cur == seen && start.Sub(seenAt) >= c.ttl):
			// Released, or not renewed for a whole TTL of our own time.
			// The version only grows, so a term made from it is above
			// every earlier term, also of an item written before terms.
			cur = lease{Holder: c.self, Version: cur.Version + 1, Term: max(cur.Term, cur.Version) + 1}
			took = true
		default:
			return errHeld
		}
		return nil
	})
	after := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(err, errHeld):
		if read != c.seen {
			// A new version: count a whole TTL from now, after the read.
			c.seen, c.seenAt = read, after
		}
		if c.token != 0 {
			c.log.Warn("cluster: lost the leader lease", "holder", read.Holder, "version", read.Version)
		}
		c.token, c.until = 0, time.Time{}
		return nil
	case err != nil:
		// The lease stands until c.until; the next tick tries again.
		return fmt.Errorf("renew: %w", err)
	}
	if took {
		c.log.Info("cluster: took the leader lease", "term", cur.Term, "from", read.Holder)
	}
	c.token, c.until = cur.Term, start.Add(c.ttl-c.margin)
	c.seen = lease{}
	return nil
}

// Release gives up the leader lease (keeping its version, so fencing
// tokens keep growing) and marks this replica gone.
func (c *Cluster) Release(ctx context.Context) {
	c.mu.Lock()
	c.token, c.until = 0, time.Time{}
	c.mu.Unlock()
	var l lease
	err := c.kv.Update(ctx, Bucket, leaderKey, &l, func(found bool) error {
		if !found || l.Holder != c.self {
			return errHeld
		}
		l.Holder = ""
		return nil
	})
	if err != nil && !errors.Is(err, errHeld) {
		c.log.Warn("cluster: release the leader lease", "err", err)
	} else if err == nil {
		c.log.Info("cluster: released the leader lease")
	}
	err = c.kv.Update(ctx, Bucket, replicaKey(c.self), &l, func(bool) error {
		l.Holder = ""
		l.Version++
		return nil
	})
	if err != nil {
		c.log.Warn("cluster: mark this replica gone", "err", err)
	}
}

// Gone reports whether replica is known to have stopped: it released its
// heartbeat, has none, or its heartbeat has stood still for twice the
// lease TTL of this replica's own time. Every replica watches every
// heartbeat from its first Tick on (so a replica must have been watched
// that long before it is judged, and a new leader has its predecessor's
// span of watching, not zero); one this replica has not seen yet is read
// at once: a heartbeat written after the last Tick (a replica that just
// joined) is not gone. "" (no claim) is gone; this replica never is. A
// failed read says not gone: when in doubt, wait.
func (c *Cluster) Gone(ctx context.Context, replica string) bool {
	switch replica {
	case "":
		return true
	case c.self:
		return false
	}
	c.mu.Lock()
	o, known := c.beats[replica]
	c.mu.Unlock()
	if known && o.gone {
		return true
	}
	if !known {
		at := c.now() // before the read: see watch
		var l lease
		err := c.kv.Get(ctx, Bucket, replicaKey(replica), &l)
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case errors.Is(err, computebot.ErrNotFound):
			c.beats[replica] = observed{since: at, gone: true}
			return true
		case err != nil:
			c.log.Warn("cluster: read a heartbeat", "of", replica, "err", err)
			return false
		}
		c.observe(replica, l, at)
		o = c.beats[replica]
		return o.gone
	}
	// Judged by what the watching read, not by the time now: a version
	// read by the last successful watch stood still until then at least.
	// When the watching itself is failing (reads throttled), there is no
	// judging: the replica may be beating all along.
	c.mu.Lock()
	watched := c.watched
	c.mu.Unlock()
	if c.now().Sub(watched) > 2*c.every {
		return false
	}
	return watched.Sub(o.since) >= c.gone
}

// Solo is the cluster of one replica (the embedded store, which one
// process holds alone): it always leads, and every other replica is gone,
// so that a restart takes over whatever the previous process claimed.
type Solo struct{ ID string }

// Self is the replica's ID.
func (s Solo) Self() string { return s.ID }

// Leading is always true.
func (Solo) Leading() bool { return true }

// Lease is always held, with token 1 (there is never another leader).
func (Solo) Lease() (int64, time.Time, bool) { return 1, time.Now().Add(24 * time.Hour), true }

// Gone reports whether replica is another one: then it is gone.
func (s Solo) Gone(_ context.Context, replica string) bool { return replica != s.ID }
