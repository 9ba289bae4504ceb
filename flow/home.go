package flow

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// The App Home tab: published when a person opens it, and again when
// something of theirs changes (a request, an instance action, a key), for
// the people who have opened it. Approvers also see everyone's pending
// requests, so those changes refresh the approvers' tabs too.

// HomeBucket remembers who has opened the home tab (and whether they
// approve), so changes refresh only their tabs.
const HomeBucket = "home-tabs"

type homeRecord struct {
	Approver bool      `json:"approver,omitempty"`
	OpenedAt time.Time `json:"opened_at"`
}

// HomeJob is the job that publishes user's home tab (the tab was opened).
// It changes nothing, so it is not stored: a lost one is the next opening.
func HomeJob(user string) Job { return Job{kind: jobHome, origin: Origin{User: user}} }

// publishHome gathers what the person's tab shows and publishes it;
// opened: they opened it (remembered, so that changes refresh it).
func (f *Flow) publishHome(ctx context.Context, user string, opened bool) {
	// One publish per person at a time: a slow one must not land after a
	// newer one and leave the older state showing.
	defer f.locks.lock("home:" + user)()
	h := reply.Home{User: user, Now: f.now()}
	d, err := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionListAll, Actor: user})
	h.Approver = err == nil && d.Verdict == policy.Allow
	if f.kv != nil && opened {
		var rec homeRecord
		err := f.kv.Update(ctx, HomeBucket, user, &rec, func(bool) error {
			rec.Approver, rec.OpenedAt = h.Approver, f.now()
			return nil
		})
		if err != nil {
			f.log.Warn("home tab: remember the opening", "user", user, "err", err)
		}
	}
	filter := computebot.InstanceFilter{States: liveStates}
	if !h.Approver {
		filter.Owner = user
	}
	insts, err := f.cloud.ManagedInstances(ctx, filter)
	if err != nil {
		f.log.Warn("home tab: list instances", "user", user, "err", err)
	}
	slices.SortFunc(insts, func(x, y computebot.Instance) int {
		return cmp.Or(y.LaunchTime.Compare(x.LaunchTime), strings.Compare(x.ID, y.ID))
	})
	for _, in := range insts {
		if in.Tags[computebot.TagOwner] == user {
			usd, known := f.prices.Price(ctx, in.Type)
			h.Instances = append(h.Instances, reply.InstanceRow{Instance: in, PricePerHour: usd, PriceKnown: known})
		}
	}
	if h.Approver {
		h.Spend = f.monthSpend(ctx, insts, h.Now)
	}

	open, err := f.store.Requests(ctx, computebot.RequestNew, computebot.RequestPending, computebot.RequestApproved,
		computebot.RequestExecuting, computebot.RequestLaunched)
	if err != nil {
		f.log.Warn("home tab: list requests", "user", user, "err", err)
	}
	for _, r := range open {
		if r.Requester == user {
			h.Requests = append(h.Requests, r)
		}
		if h.Approver && r.State == computebot.RequestPending && r.MessageTS != "" {
			h.Pending = append(h.Pending, r)
		}
	}
	if f.kv != nil {
		keys, err := f.keysOf(ctx, user)
		if err != nil {
			f.log.Warn("home tab: read ssh keys", "user", user, "err", err)
		}
		h.Keys = keys
	}
	if err := f.chat.PublishHome(ctx, user, reply.HomeTab(h)); err != nil {
		f.log.Warn("publish the home tab", "user", user, "err", err)
	}
}

// HomeChanged republishes the home tab of an instance's owner (who has
// opened theirs) after someone else changed it: the idle scheduler's
// stops and starts.
func (f *Flow) HomeChanged(owner string) { f.refreshHomes([]string{owner}, false) }

// homeSettle is how long a tab's refresh waits for more changes, so that
// a burst (a launch's several steps, a retried update) publishes once.
const homeSettle = time.Second

// homeQueue is the tabs waiting to be republished.
type homeQueue struct {
	mu      sync.Mutex
	pending map[string]bool
}

// refreshHomes republishes, once the changes settle, the tabs of the
// people named who have opened theirs, and with approvers also every
// approver's who has (pending requests changed). A tab already waiting is
// not queued again; one publisher per person, so the last state wins.
func (f *Flow) refreshHomes(users []string, approvers bool) {
	if f.kv == nil {
		return
	}
	f.background(func(ctx context.Context) {
		want := map[string]bool{}
		err := f.kv.List(ctx, HomeBucket, func(user string, raw []byte) error {
			var rec homeRecord
			if err := json.Unmarshal(raw, &rec); err != nil {
				return nil // a damaged record: that tab waits for its next opening
			}
			if slices.Contains(users, user) || (approvers && rec.Approver) {
				want[user] = true
			}
			return nil
		})
		if err != nil && !errors.Is(err, computebot.ErrNotFound) {
			f.log.Warn("home tabs to refresh", "err", err)
			return
		}
		q := &f.homes
		q.mu.Lock()
		var mine []string
		for _, user := range slices.Sorted(maps.Keys(want)) {
			if !q.pending[user] {
				if q.pending == nil {
					q.pending = map[string]bool{}
				}
				q.pending[user] = true
				mine = append(mine, user)
			}
		}
		q.mu.Unlock()
		if len(mine) == 0 {
			return
		}
		select {
		case <-time.After(homeSettle):
		case <-ctx.Done():
			return
		}
		for _, user := range mine {
			q.mu.Lock()
			delete(q.pending, user) // changes from now on queue a new refresh
			q.mu.Unlock()
			f.publishHome(ctx, user, false)
		}
	})
}
