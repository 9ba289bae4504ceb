package flow_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// The request thread of the instances these tests act on (managed()).
const requestThread = "1600000000.000001"

var (
	lcStop      = policy.ActionStop
	lcStart     = policy.ActionStart
	lcTerminate = policy.ActionTerminate
	lcExtend    = policy.ActionExtend
)

const (
	boxID  = "i-00000000000000b01"
	boxID2 = "i-00000000000000b02"
)

// TestListInstances: /instances and /instances --all, newest first, with
// prices, and who may see everyone's.
func TestListInstances(t *testing.T) {
	seed := func(e *env) {
		e.cloud.add(managed("i-00000000000000a01", ana, "old", computebot.InstanceRunning, epoch.Add(-3*time.Hour), "R-1"))
		small := managed("i-00000000000000a02", ana, "new", computebot.InstanceStopped, epoch.Add(-time.Hour), "R-2")
		small.Type = "t3.small"
		e.cloud.add(small)
		e.cloud.add(managed("i-00000000000000a03", ana, "gone", computebot.InstanceTerminated, epoch.Add(-time.Hour), "R-3"))
		e.cloud.add(managed("i-00000000000000a04", ana, "twin", computebot.InstancePending, epoch.Add(-3*time.Hour), "R-4"))
		e.cloud.add(managed("i-00000000000000b05", bo, "bos", computebot.InstanceRunning, epoch.Add(-2*time.Hour), "R-5"))
		e.cloud.add(withTags(managed("i-00000000000000c06", ana, "hand-made", computebot.InstanceRunning, epoch, ""), computebot.TagManaged, ""))
	}
	row := func(e *env, id string) reply.InstanceRow {
		in, _ := e.cloud.get(id)
		if in.Type == "t3.small" {
			return reply.InstanceRow{Instance: in, PricePerHour: 0.5, PriceKnown: true}
		}
		return reply.InstanceRow{Instance: in, PricePerHour: 0.0116, PriceKnown: true}
	}
	for _, tc := range []struct {
		name  string
		user  string
		args  string
		setup func(e *env)
		want  func(e *env) reply.Message
		price int // HourlyPrice calls
	}{
		{
			name: "mine", user: ana, setup: seed, price: 1,
			want: func(e *env) reply.Message {
				return reply.InstanceList([]reply.InstanceRow{row(e, "i-00000000000000a02"), row(e, "i-00000000000000a01"), row(e, "i-00000000000000a04")}, 0, false, epoch)
			},
		},
		{
			name: "everyone's, by an approver", user: bo, args: "--all", setup: seed, price: 1,
			want: func(e *env) reply.Message {
				return reply.InstanceList([]reply.InstanceRow{row(e, "i-00000000000000a02"), row(e, "i-00000000000000b05"), row(e, "i-00000000000000a01"), row(e, "i-00000000000000a04")}, 0, true, epoch)
			},
		},
		{
			name: "everyone's, by a stranger", user: eve, args: "--all", setup: seed,
			want: func(e *env) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseApproversOnly, Action: policy.ActionListAll, Actor: eve, Approvers: e.cfg.Approvers})
			},
		},
		{
			name: "none", user: eve,
			want: func(*env) reply.Message { return reply.InstanceList(nil, 0, false, epoch) },
		},
		{
			name: "EC2 fails", user: ana, setup: func(e *env) { e.cloud.failAlways(cManagedInstances, awsErr("Unavailable", "EC2 is down.", true)) },
			want: func(*env) reply.Message { return reply.ListFailed("EC2 is down.") },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			o := e.slashOrigin(tc.user)
			ans := e.slash(o, "/instances", tc.args)
			if ans.Reply != nil || ans.Outcome != "accepted" {
				t.Errorf("Accept = %+v", ans)
			}
			e.told(o, tc.want(e))
			if n := e.cloud.callCount(cHourlyPrice); n != tc.price {
				t.Errorf("HourlyPrice calls %d, want %d (once per type, none for configured prices)", n, tc.price)
			}
			if posts := e.chat.allPosts(); len(posts) != 0 {
				t.Errorf("posted %q; a list is private", texts(posts))
			}
		})
	}
}

// nextPage returns the value of a message's next-page button, or "".
func nextPage(m reply.Message) string {
	for _, b := range m.Blocks {
		for _, btn := range b.Buttons {
			if btn.ActionID == reply.ActionPage {
				return btn.Value
			}
		}
	}
	return ""
}

// TestInstancePages: a long list comes a page at a time; the button
// brings the next one.
func TestInstancePages(t *testing.T) {
	e := newEnv(t)
	var rows []reply.InstanceRow
	for i := range 25 {
		in := managed(fmt.Sprintf("i-00000000000000%03d", i), ana, fmt.Sprintf("box-%d", i), computebot.InstanceRunning, epoch.Add(-time.Duration(i)*time.Minute), "R")
		e.cloud.add(in)
		rows = append(rows, reply.InstanceRow{Instance: in, PricePerHour: 0.0116, PriceKnown: true})
	}
	o := e.slashOrigin(ana)
	e.slash(o, "/instances", "")
	e.told(o, reply.InstanceList(rows, 0, false, epoch))
	value := nextPage(e.chat.private(o)[0].Msg)
	if value != "instances|mine|20" {
		t.Fatalf("next-page value %q", value)
	}

	for _, tc := range []struct {
		name, user, value string
		want              reply.Message
	}{
		{"the next page", ana, value, reply.InstanceList(rows, 20, false, epoch)},
		{"past the end starts over", ana, "instances|mine|99", reply.InstanceList(rows, 0, false, epoch)},
		{"everyone's page by a stranger", eve, "instances|all|20",
			reply.Refusal(policy.Refusal{Code: policy.RefuseApproversOnly, Action: policy.ActionListAll, Actor: eve, Approvers: e.cfg.Approvers})},
	} {
		click := e.clickOrigin(tc.user, channel, "")
		e.click(click, reply.ActionPage, tc.value, "1700000000.000001")
		got := e.chat.private(click)
		if len(got) != 1 {
			t.Fatalf("%s: got %q", tc.name, texts(got))
		}
		sameMessage(t, tc.name, got[0].Msg, tc.want)
	}
	if got := nextPage(reply.InstanceList(rows, 20, false, epoch)); got != "" {
		t.Errorf("the last page has a next button %q", got)
	}
}

// TestInstanceActions: stop, start, terminate and extend, typed or
// clicked, by whom, and where the news goes.
func TestInstanceActions(t *testing.T) {
	owned := func(state string) computebot.Instance {
		return managed(boxID, ana, "box", state, epoch.Add(-time.Hour), "R-BOX")
	}
	stopped := owned(computebot.InstanceStopped)
	until := epoch.Add(11 * time.Hour) // expires-at (launch + 8 h) + 4 h
	for _, tc := range []struct {
		name     string
		inst     computebot.Instance
		setup    func(e *env)
		user     string
		inThread bool   // clicked in the request thread; else typed in channel
		slash    string // "/stop"…, with arg
		arg      string
		click    string // action ID, value arg
		private  func(e *env, in computebot.Instance) []reply.Message
		thread   func(e *env, in computebot.Instance) []reply.Message // the request thread
		state    string                                               // the instance's state afterwards
		audit    []string
	}{
		{
			name: "owner stops, typed in the channel", inst: owned(computebot.InstanceRunning), user: ana, slash: "/stop", arg: boxID,
			private: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.ActionUnderWay(lcStop, boxID), reply.Stopped(in, ana, computebot.Stopped{})}
			},
			thread: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Stopped(in, ana, computebot.Stopped{})}
			},
			state: computebot.InstanceStopped, audit: []string{"UANA stop " + boxID + " ok"},
		},
		{
			name: "owner stops by name", inst: owned(computebot.InstanceRunning), user: ana, slash: "/stop", arg: "box",
			private: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.ActionUnderWay(lcStop, boxID), reply.Stopped(in, ana, computebot.Stopped{})}
			},
			thread: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Stopped(in, ana, computebot.Stopped{})}
			},
			state: computebot.InstanceStopped, audit: []string{"UANA stop " + boxID + " ok"},
		},
		{
			name: "approver stops, clicked in the request thread", inst: owned(computebot.InstanceRunning), user: bo, inThread: true, click: reply.ActionStop, arg: boxID,
			private: func(*env, computebot.Instance) []reply.Message {
				return []reply.Message{reply.ActionUnderWay(lcStop, boxID)}
			},
			thread: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Stopped(in, bo, computebot.Stopped{})}
			},
			state: computebot.InstanceStopped, audit: []string{"UBO stop " + boxID + " ok"},
		},
		{
			name: "owner starts", inst: stopped, user: ana, click: reply.ActionStart, arg: boxID,
			private: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.ActionUnderWay(lcStart, boxID), reply.Started(in, ana, "ubuntu", "data-science")}
			},
			thread: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Started(in, ana, "ubuntu", "data-science")}
			},
			state: computebot.InstanceRunning, audit: []string{"UANA start " + boxID + " ok"},
		},
		{
			name: "start with the AMI lookup failing falls back to ec2-user", inst: stopped, user: ana, inThread: true, click: reply.ActionStart, arg: boxID,
			setup: func(e *env) { e.cloud.failAlways(cResolveImage, awsErr("Throttling", "slow down", true)) },
			private: func(*env, computebot.Instance) []reply.Message {
				return []reply.Message{reply.ActionUnderWay(lcStart, boxID)}
			},
			thread: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Started(in, ana, "ec2-user", "data-science")}
			},
			state: computebot.InstanceRunning, audit: []string{"UANA start " + boxID + " ok"},
		},
		{
			name: "owner terminates", inst: owned(computebot.InstancePending), user: ana, inThread: true, slash: "/terminate", arg: boxID,
			private: func(*env, computebot.Instance) []reply.Message {
				return []reply.Message{reply.ActionUnderWay(lcTerminate, boxID)}
			},
			thread: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Terminated(in, ana)}
			},
			state: computebot.InstanceTerminated, audit: []string{"UANA terminate " + boxID + " ok"},
		},
		{
			name: "owner extends by the button", inst: owned(computebot.InstanceRunning), user: ana, click: reply.ActionExtend, arg: boxID + "|4",
			private: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Extended(in, ana, until, 4)}
			},
			thread: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Extended(in, ana, until, 4)}
			},
			state: computebot.InstanceRunning, audit: []string{"UANA extend " + boxID + " ok"},
		},
		{
			name: "extend a lease that already ended counts from now", user: ana, slash: "/extend", arg: boxID + " 2",
			inst: withTags(owned(computebot.InstanceStopped), computebot.TagExpiresAt, epoch.Add(-time.Hour).Format(time.RFC3339)),
			private: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Extended(in, ana, epoch.Add(2*time.Hour), 2)}
			},
			thread: func(_ *env, in computebot.Instance) []reply.Message {
				return []reply.Message{reply.Extended(in, ana, epoch.Add(2*time.Hour), 2)}
			},
			state: computebot.InstanceStopped, audit: []string{"UANA extend " + boxID + " ok"},
		},
		{
			name: "an instance without a request thread reports where the command was typed", user: ana, slash: "/stop", arg: boxID,
			inst: withTags(owned(computebot.InstanceRunning), computebot.TagChannel, "", computebot.TagThread, ""),
			private: func(*env, computebot.Instance) []reply.Message {
				return []reply.Message{reply.ActionUnderWay(lcStop, boxID)}
			},
			thread: func(*env, computebot.Instance) []reply.Message { return nil },
			state:  computebot.InstanceStopped, audit: []string{"UANA stop " + boxID + " ok"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.add(tc.inst)
			if tc.setup != nil {
				tc.setup(e)
			}
			o := e.slashOrigin(tc.user)
			if tc.click != "" {
				o = e.clickOrigin(tc.user, channel, "")
			}
			if tc.inThread {
				o.ThreadTS = requestThread
			}
			if tc.click != "" {
				e.click(o, tc.click, tc.arg, "1700000000.000321")
			} else {
				e.slash(o, tc.slash, tc.arg)
			}
			in, _ := e.cloud.get(boxID)
			want := tc.thread(e, in)
			waitFor(t, "the news in the request thread", func() bool {
				if tc.inst.Tags[computebot.TagChannel] == "" {
					return len(e.chat.allPosts()) == 1
				}
				return len(e.chat.posts(channel, requestThread)) >= len(want)
			})
			waitFor(t, "the private answers", func() bool { return len(e.chat.private(o)) >= len(tc.private(e, in)) })
			in, _ = e.cloud.get(boxID)
			if in.State != tc.state {
				t.Errorf("instance %s, want %s", in.State, tc.state)
			}
			// The announcements show the instance as it ended up.
			for i, m := range tc.thread(e, in) {
				sameMessage(t, fmt.Sprintf("thread post %d", i), e.chat.posts(channel, requestThread)[i].Msg, m)
			}
			if tc.inst.Tags[computebot.TagChannel] == "" {
				// No request thread: the news goes where the command was typed.
				p := e.chat.allPosts()[0]
				if p.Channel != o.Channel || p.Thread != o.ThreadTS {
					t.Errorf("posted in %s/%s, want where the command was typed", p.Channel, p.Thread)
				}
				contains(t, "news", p.Msg, "stopped by @UANA")
			}
			e.told(o, tc.private(e, in)...)
			if got := e.auditActions(); !slices.Equal(got, tc.audit) {
				t.Errorf("audit %q, want %q", got, tc.audit)
			}
		})
	}
}

// TestExtendDetail: the new lease end is a tag and in the audit log.
func TestExtendDetail(t *testing.T) {
	e := newEnv(t)
	e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch.Add(-time.Hour), "R-BOX"))
	e.clock.Advance(1500 * time.Millisecond) // the lease still runs: extended from its end
	e.slash(e.slashOrigin(bo), "/extend", boxID+" 100")
	in, _ := e.cloud.get(boxID)
	want := epoch.Add(7*time.Hour + 100*time.Hour).Format(time.RFC3339)
	if got := in.Tags[computebot.TagExpiresAt]; got != want {
		t.Errorf("expires-at %s, want %s (an approver is not capped)", got, want)
	}
	if log := e.store.auditLog(); len(log) != 1 || log[0].Detail != "expires-at "+want || log[0].RequestID != "R-BOX" {
		t.Errorf("audit %+v", log)
	}
}

// TestInstanceActionRefusals: everything that stops an action before AWS
// is asked, and AWS saying no.
func TestInstanceActionRefusals(t *testing.T) {
	owned := func(state string) computebot.Instance {
		return managed(boxID, ana, "box", state, epoch.Add(-time.Hour), "R-BOX")
	}
	notOwner := func(action policy.ActionKind) func(e *env) reply.Message {
		return func(e *env) reply.Message {
			return reply.Refusal(policy.Refusal{Code: policy.RefuseNotOwner, Action: action, Actor: eve, InstanceID: boxID, Owner: ana, Approvers: e.cfg.Approvers})
		}
	}
	plain := func(m reply.Message) func(*env) reply.Message { return func(*env) reply.Message { return m } }
	for _, tc := range []struct {
		name    string
		insts   []computebot.Instance
		setup   func(e *env)
		user    string
		slash   string
		arg     string
		want    func(e *env) reply.Message
		acted   string // the AWS call made, if any
		audited string
	}{
		{name: "stranger stops", insts: []computebot.Instance{owned("running")}, user: eve, slash: "/stop", arg: boxID, want: notOwner(policy.ActionStop)},
		{name: "stranger starts", insts: []computebot.Instance{owned("stopped")}, user: eve, slash: "/start", arg: boxID, want: notOwner(policy.ActionStart)},
		{name: "stranger terminates", insts: []computebot.Instance{owned("running")}, user: eve, slash: "/terminate", arg: boxID, want: notOwner(policy.ActionTerminate)},
		{name: "stranger extends", insts: []computebot.Instance{owned("running")}, user: eve, slash: "/extend", arg: boxID + " 1", want: notOwner(policy.ActionExtend)},
		{
			name: "stranger while the approver list is down", insts: []computebot.Instance{owned("running")}, user: eve, slash: "/stop", arg: boxID,
			setup: func(e *env) { e.groups.err = errors.New("slack down") },
			want: func(*env) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseApproversUnknown, Action: policy.ActionStop, Actor: eve})
			},
		},
		{
			name: "not managed", user: ana, slash: "/terminate", arg: boxID,
			insts: []computebot.Instance{withTags(owned("running"), computebot.TagManaged, "")},
			want: func(*env) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseNotManaged, Action: policy.ActionTerminate, Actor: ana, InstanceID: boxID})
			},
		},
		{
			name: "owner extends past the maximum lease", user: ana, slash: "/extend", arg: boxID + " 4",
			insts: []computebot.Instance{managed(boxID, ana, "box", "running", epoch.Add(-70*time.Hour), "R-BOX")},
			want: func(e *env) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseExtendTooFar, Action: policy.ActionExtend, Actor: ana, InstanceID: boxID,
					Lease: 74 * time.Hour, MaxLease: 72 * time.Hour, Latest: epoch.Add(2 * time.Hour), Approvers: e.cfg.Approvers})
			},
		},
		{name: "stop a stopped one", insts: []computebot.Instance{owned("stopped")}, user: ana, slash: "/stop", arg: boxID, want: plain(reply.Plain("`" + boxID + "` is already stopped."))},
		{name: "stop a pending one", insts: []computebot.Instance{owned("pending")}, user: ana, slash: "/stop", arg: boxID, want: plain(reply.Plain("`" + boxID + "` is still starting; stop it once it runs (or terminate it)."))},
		{name: "start a running one", insts: []computebot.Instance{owned("running")}, user: ana, slash: "/start", arg: boxID, want: plain(reply.Plain("`" + boxID + "` is already running."))},
		{name: "start a stopping one", insts: []computebot.Instance{owned("stopping")}, user: ana, slash: "/start", arg: boxID, want: plain(reply.Plain("`" + boxID + "` is still stopping; start it once it has stopped."))},
		{name: "start a pending one", insts: []computebot.Instance{owned("pending")}, user: ana, slash: "/start", arg: boxID, want: plain(reply.Plain("`" + boxID + "` is already starting."))},
		{name: "terminate a terminated one", insts: []computebot.Instance{owned("terminated")}, user: ana, slash: "/terminate", arg: boxID, want: plain(reply.Plain("`" + boxID + "` is already terminated."))},
		{name: "stop a terminated one", insts: []computebot.Instance{owned("shutting-down")}, user: ana, slash: "/stop", arg: boxID, want: plain(reply.Plain("`" + boxID + "` has been terminated; there is nothing to stop."))},
		{name: "extend a terminated one", insts: []computebot.Instance{owned("terminated")}, user: ana, slash: "/extend", arg: boxID + " 1", want: plain(reply.Plain("`" + boxID + "` has been terminated; there is nothing to extend."))},
		{name: "no such instance ID", user: ana, slash: "/stop", arg: boxID, want: plain(reply.NoSuchInstance(boxID))},
		{
			name: "instance lookup fails", insts: []computebot.Instance{owned("running")}, user: ana, slash: "/stop", arg: boxID,
			setup: func(e *env) {
				e.cloud.failAlways(cInstance, awsErr("UnauthorizedOperation", "the bot's role may not describe instances.", false))
			},
			want: plain(reply.LookupFailed(boxID, "the bot's role may not describe instances.")),
		},
		{name: "no instance by that name", insts: []computebot.Instance{owned("running")}, user: ana, slash: "/stop", arg: "nope", want: plain(reply.NoInstanceNamed("nope"))},
		{name: "someone else's name is not mine", insts: []computebot.Instance{managed(boxID, bo, "bobox", "running", epoch, "R")}, user: ana, slash: "/stop", arg: "bobox", want: plain(reply.NoInstanceNamed("bobox"))},
		{name: "a terminated namesake does not count", insts: []computebot.Instance{owned("terminated")}, user: ana, slash: "/stop", arg: "box", want: plain(reply.NoInstanceNamed("box"))},
		{
			name: "ambiguous name", user: ana, slash: "/stop", arg: "box",
			insts: []computebot.Instance{owned("running"), managed(boxID2, ana, "box", "stopped", epoch, "R-2")},
			want:  plain(reply.AmbiguousName("box", []string{boxID, boxID2})),
		},
		{
			name: "listing by name fails", insts: []computebot.Instance{owned("running")}, user: ana, slash: "/stop", arg: "box",
			setup: func(e *env) { e.cloud.failAlways(cManagedInstances, awsErr("Unavailable", "EC2 is down.", true)) },
			want:  plain(reply.OwnListFailed("EC2 is down.")),
		},
		{
			name: "EC2 refuses the stop", insts: []computebot.Instance{owned("running")}, user: ana, slash: "/stop", arg: boxID,
			setup: func(e *env) {
				e.cloud.failAlways(cStop, awsErr("IncorrectInstanceState", "the instance is not in a state that can be stopped.", false))
			},
			want:    plain(reply.ActionFailed(lcStop, boxID, "the instance is not in a state that can be stopped.")),
			acted:   cStop,
			audited: "UANA stop " + boxID + " IncorrectInstanceState",
		},
		{
			name: "EC2 refuses the tag", insts: []computebot.Instance{owned("running")}, user: ana, slash: "/extend", arg: boxID + " 1",
			setup:   func(e *env) { e.cloud.failAlways(cTag, errors.New("boom")) },
			want:    plain(reply.ActionFailed(lcExtend, boxID, "internal error (details are in the bot's log)")),
			acted:   cTag,
			audited: "UANA extend " + boxID + " error",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			for _, in := range tc.insts {
				e.cloud.add(in)
			}
			if tc.setup != nil {
				tc.setup(e)
			}
			o := e.slashOrigin(tc.user)
			e.slash(o, tc.slash, tc.arg)
			e.told(o, tc.want(e))
			for _, m := range []string{cStop, cStart, cTerminate, cTag} {
				want := 0
				if m == tc.acted {
					want = 1
				}
				if n := e.cloud.callCount(m); n != want {
					t.Errorf("%s calls %d, want %d", m, n, want)
				}
			}
			if posts := e.chat.allPosts(); len(posts) != 0 {
				t.Errorf("posted %q", texts(posts))
			}
			got := e.auditActions()
			if tc.audited == "" && len(got) != 0 || tc.audited != "" && !slices.Equal(got, []string{tc.audited}) {
				t.Errorf("audit %q, want %q", got, tc.audited)
			}
		})
	}
}

// TestInstanceActionSlow: an instance that does not reach the state in
// LaunchWait gets a private note instead of the news.
func TestInstanceActionSlow(t *testing.T) {
	e := newEnv(t)
	e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch.Add(-time.Hour), "R-BOX"))
	e.cloud.set(-1, computebot.InstanceRunning)
	o := e.slashOrigin(ana)
	e.slash(o, "/stop", boxID)
	// One describe resolved the target; the next is the wait's.
	waitFor(t, "the wait to describe", func() bool { return e.cloud.describeCount(boxID) > 1 })
	e.clock.Advance(11 * time.Minute)
	waitFor(t, "the slow note", func() bool { return len(e.chat.private(o)) == 2 })
	e.told(o, reply.ActionUnderWay(lcStop, boxID), reply.ActionSlow(lcStop, boxID, 10*time.Minute))
	if posts := e.chat.allPosts(); len(posts) != 0 {
		t.Errorf("posted %q", texts(posts))
	}
}

// TestInstanceActionStoppedMidWait: Stop ends the background wait; nothing
// is announced by a stopped Flow.
func TestInstanceActionStoppedMidWait(t *testing.T) {
	e := newEnv(t)
	e.cloud.add(managed(boxID, ana, "box", computebot.InstanceRunning, epoch.Add(-time.Hour), "R-BOX"))
	e.cloud.set(-1, computebot.InstanceRunning)
	e.slash(e.slashOrigin(ana), "/stop", boxID)
	waitFor(t, "the wait to describe", func() bool { return e.cloud.describeCount(boxID) > 1 })
	e.f.Stop()
	n := e.cloud.describeCount(boxID)
	time.Sleep(5 * time.Millisecond)
	if m := e.cloud.describeCount(boxID); m > n+1 {
		t.Errorf("still describing after Stop: %d → %d", n, m)
	}
}

// TestConfiguredSSHUser: a configured SSH user needs no AMI lookup.
func TestConfiguredSSHUser(t *testing.T) {
	e := newEnv(t, withConfig(func(c *config.Config) { c.Launch.SSHUser = "admin" }))
	e.cloud.add(managed(boxID, ana, "box", computebot.InstanceStopped, epoch.Add(-time.Hour), "R-BOX"))
	o := e.clickOrigin(ana, channel, requestThread)
	e.click(o, reply.ActionStart, boxID, requestThread)
	waitFor(t, "the news", func() bool { return len(e.chat.posts(channel, requestThread)) == 1 })
	contains(t, "started", e.chat.posts(channel, requestThread)[0].Msg, "admin@")
	if n := e.cloud.callCount(cResolveImage); n != 0 {
		t.Errorf("ResolveImage called %d times", n)
	}
}
