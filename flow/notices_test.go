package flow_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

const notifyChannel = "CNOTIFY"

func notice() idle.Notice {
	return idle.Notice{
		InstanceID: boxID, Name: "box", Owner: ana, Type: "t2.micro", Reason: idle.ReasonIdle, Action: idle.ActionStop,
		MaxCPU: 1.5, NetworkBytes: 1000, Window: time.Hour, CostPerHour: 0.0116, PriceKnown: true,
		NoticedAt: epoch, StopAt: epoch.Add(30 * time.Minute), State: idle.StateNoticed, Episode: "e1",
		RequestChannel: channel, RequestThread: requestThread,
	}
}

// TestPostNotice: the request thread first, then a DM to the owner, then
// notify_channel.
func TestPostNotice(t *testing.T) {
	errThread := errors.New("thread gone")
	errDM := errors.New("cannot open DM")
	errDMPost := errors.New("DM post failed")
	errNotify := errors.New("notify channel archived")
	failing := func(thread, dm, dmPost, notify bool) func(c chatCall) error {
		return func(c chatCall) error {
			switch {
			case thread && c.Method == mPost && c.Channel == channel:
				return errThread
			case dm && c.Method == mDM:
				return errDM
			case dmPost && c.Method == mPost && c.Channel == "D"+ana:
				return errDMPost
			case notify && c.Method == mPost && c.Channel == notifyChannel:
				return errNotify
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name        string
		n           func(n *idle.Notice)
		notify      string
		fail        func(c chatCall) error
		wantChannel string
		wantThread  string
		wantErrs    []error // the error wraps each; nil: no error
	}{
		{name: "request thread", notify: notifyChannel, wantChannel: channel, wantThread: requestThread},
		{name: "thread fails: DM", notify: notifyChannel, fail: failing(true, false, false, false), wantChannel: "D" + ana},
		{name: "no request thread: DM", n: func(n *idle.Notice) { n.RequestChannel, n.RequestThread = "", "" }, wantChannel: "D" + ana},
		{name: "DM cannot open: notify channel", notify: notifyChannel, fail: failing(true, true, false, false), wantChannel: notifyChannel},
		{name: "DM post fails: notify channel", notify: notifyChannel, fail: failing(true, false, true, false), wantChannel: notifyChannel},
		{name: "no owner: notify channel", notify: notifyChannel, n: func(n *idle.Notice) { n.Owner, n.RequestChannel = "", "" }, wantChannel: notifyChannel},
		{name: "everything fails", notify: notifyChannel, fail: failing(true, false, true, true), wantErrs: []error{errThread, errDMPost, errNotify}},
		{name: "nowhere at all", n: func(n *idle.Notice) { n.Owner, n.RequestChannel = "", "" }, wantErrs: []error{}},
		{name: "no notify channel", fail: failing(true, true, false, false), wantErrs: []error{errThread, errDM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chat := newFakeChat()
			if tc.fail != nil {
				chat.failWhen(tc.fail)
			}
			s := flow.NewNotices(chat, tc.notify, time.Microsecond, quiet)
			n := notice()
			if tc.n != nil {
				tc.n(&n)
			}
			ch, ts, err := s.PostNotice(context.Background(), n)
			if tc.wantErrs != nil {
				if err == nil {
					t.Fatalf("PostNotice = %s %s, want an error", ch, ts)
				}
				if !strings.Contains(err.Error(), "nowhere to post") || !strings.Contains(err.Error(), boxID) {
					t.Errorf("error %q", err)
				}
				for _, want := range tc.wantErrs {
					if !errors.Is(err, want) {
						t.Errorf("error %q does not wrap %q", err, want)
					}
				}
				if posts := chat.allPosts(); len(posts) != 0 {
					t.Errorf("posted %q", texts(posts))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			posts := chat.allPosts()
			if len(posts) != 1 {
				t.Fatalf("posts %+v", posts)
			}
			p := posts[0]
			if ch != tc.wantChannel || ts != p.TS || p.Channel != tc.wantChannel || p.Thread != tc.wantThread {
				t.Errorf("PostNotice = %s %s, posted in %s/%s; want %s/%s", ch, ts, p.Channel, p.Thread, tc.wantChannel, tc.wantThread)
			}
			sameMessage(t, "notice", p.Msg, reply.IdleNotice(n))
		})
	}
}

// TestNoticePacing: posts to one channel are spaced; a cancelled wait
// gives up.
func TestNoticePacing(t *testing.T) {
	t.Run("spaced per channel", func(t *testing.T) {
		chat := newFakeChat()
		const interval = 20 * time.Millisecond
		s := flow.NewNotices(chat, "", interval, nil)
		n := notice()
		other := notice()
		other.RequestChannel = elsewhere
		start := time.Now()
		for _, x := range []idle.Notice{n, other} {
			if _, _, err := s.PostNotice(context.Background(), x); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d >= interval {
			t.Errorf("two channels took %v: only posts to one channel are spaced", d)
		}
		if _, _, err := s.PostNotice(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < interval {
			t.Errorf("a second post to %s after %v, want at least %v", channel, d, interval)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		chat := newFakeChat()
		s := flow.NewNotices(chat, "", time.Hour, nil)
		n := notice()
		n.Owner = ""
		if _, _, err := s.PostNotice(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := s.PostNotice(ctx, n); !errors.Is(err, context.Canceled) {
			t.Errorf("PostNotice = %v, want it to give up with the context", err)
		}
		posted := n
		posted.Channel, posted.TS = channel, "1700000000.000001"
		if err := s.Announce(ctx, posted); !errors.Is(err, context.Canceled) {
			t.Errorf("Announce = %v, want it to give up with the context", err)
		}
		if n := len(chat.allPosts()); n != 1 {
			t.Errorf("%d posts, want the first only", n)
		}
	})
	t.Run("default interval", func(t *testing.T) {
		chat := newFakeChat()
		s := flow.NewNotices(chat, notifyChannel, 0, nil)
		if _, _, err := s.PostNotice(context.Background(), notice()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUpdateAndAnnounceNotice: a posted notice is re-rendered in place;
// what became of it goes in its thread.
func TestUpdateAndAnnounceNotice(t *testing.T) {
	// The scheduler announces stopped and cancelled notices.
	inThread := notice()
	inThread.Channel, inThread.TS, inThread.State = channel, "1700000000.000050", idle.StateCancelled
	inThread.Cancel = &idle.Cancellation{Reason: idle.CancelStopped}
	inDM := notice()
	inDM.Channel, inDM.TS, inDM.State, inDM.How, inDM.SettledBy = "D"+ana, "1700000000.000060", idle.StateStopped, idle.SettledStopNow, ana
	unposted := notice()

	chat := newFakeChat()
	s := flow.NewNotices(chat, "", time.Microsecond, quiet)
	ctx := context.Background()
	for _, n := range []idle.Notice{inThread, inDM} {
		if err := s.UpdateNotice(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := s.Announce(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	ups := chat.where(func(c chatCall) bool { return c.Method == mUpdate })
	if len(ups) != 2 || ups[0].Channel != channel || ups[0].TS != inThread.TS || ups[1].Channel != "D"+ana || ups[1].TS != inDM.TS {
		t.Fatalf("updates %+v", ups)
	}
	sameMessage(t, "updated notice", ups[0].Msg, reply.IdleNotice(inThread))
	sameMessage(t, "updated DM notice", ups[1].Msg, reply.IdleNotice(inDM))
	posts := chat.allPosts()
	if len(posts) != 2 || posts[0].Channel != channel || posts[0].Thread != requestThread || posts[1].Channel != "D"+ana || posts[1].Thread != inDM.TS {
		t.Fatalf("announcements %+v", posts)
	}
	sameMessage(t, "announcement", posts[0].Msg, reply.NoticeAnnouncement(inThread))
	sameMessage(t, "DM announcement", posts[1].Msg, reply.NoticeAnnouncement(inDM))
	contains(t, "announcement", posts[0].Msg, "cancelled: `"+boxID+"` was stopped meanwhile")
	contains(t, "DM announcement", posts[1].Msg, "stopped `"+boxID+"` (Stop now by @UANA)")

	if err := s.UpdateNotice(ctx, unposted); err == nil {
		t.Error("UpdateNotice of an unposted notice succeeded")
	}
	if err := s.Announce(ctx, unposted); err == nil {
		t.Error("Announce of an unposted notice succeeded")
	}
	boom := errors.New("slack down")
	chat.failWhen(func(chatCall) error { return boom })
	if err := s.UpdateNotice(ctx, inThread); !errors.Is(err, boom) {
		t.Errorf("UpdateNotice = %v, want the chat's error", err)
	}
	if err := s.Announce(ctx, inThread); !errors.Is(err, boom) {
		t.Errorf("Announce = %v, want the chat's error", err)
	}
}

// TestNoticeButtons: Keep running and Stop now, as the owner, an approver
// or a stranger; the scheduler does the rest.
func TestNoticeButtons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opt    envOption
		inst   computebot.Instance
		user   string
		action string
		err    error
		calls  []string // the scheduler's
		told   func(e *env) []reply.Message
	}{
		{name: "owner keeps it", user: ana, action: reply.ActionKeepRunning, calls: []string{"keep " + boxID + " " + ana}},
		{name: "owner stops it now", user: ana, action: reply.ActionStopNow, calls: []string{"stop-now " + boxID + " " + ana}},
		{name: "approver keeps it", user: carl, action: reply.ActionKeepRunning, calls: []string{"keep " + boxID + " " + carl}},
		{
			name: "stranger keeps it", user: eve, action: reply.ActionKeepRunning,
			told: func(e *env) []reply.Message {
				return []reply.Message{reply.Refusal(policy.Refusal{Code: policy.RefuseNotOwner, Action: policy.ActionKeep, Actor: eve, InstanceID: boxID, Owner: ana, Approvers: e.cfg.Approvers})}
			},
		},
		{
			name: "stranger stops it now", user: eve, action: reply.ActionStopNow,
			told: func(e *env) []reply.Message {
				return []reply.Message{reply.Refusal(policy.Refusal{Code: policy.RefuseNotOwner, Action: policy.ActionStop, Actor: eve, InstanceID: boxID, Owner: ana, Approvers: e.cfg.Approvers})}
			},
		},
		{
			name: "not managed", user: ana, action: reply.ActionKeepRunning,
			inst: withTags(managed(boxID, ana, "box", computebot.InstanceRunning, epoch, "R"), computebot.TagManaged, ""),
			told: func(e *env) []reply.Message {
				return []reply.Message{reply.Refusal(policy.Refusal{Code: policy.RefuseNotManaged, Action: policy.ActionKeep, Actor: ana, InstanceID: boxID})}
			},
		},
		{
			name: "no such instance", user: ana, action: reply.ActionStopNow, inst: managed(boxID2, ana, "box", computebot.InstanceRunning, epoch, "R"),
			told: func(e *env) []reply.Message { return []reply.Message{reply.NoSuchInstance(boxID)} },
		},
		{
			name: "the scheduler says no", user: ana, action: reply.ActionKeepRunning, err: &idle.NoNoticeError{InstanceID: boxID},
			calls: []string{"keep " + boxID + " " + ana},
			told: func(e *env) []reply.Message {
				return []reply.Message{reply.NoticeButtonFailed(&idle.NoNoticeError{InstanceID: boxID})}
			},
		},
		{
			name: "the scheduler is off", opt: withoutIdle(), user: ana, action: reply.ActionStopNow,
			told: func(e *env) []reply.Message { return []reply.Message{reply.IdleNotRunning()} },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []envOption
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			e := newEnv(t, opts...)
			inst := tc.inst
			if inst.ID == "" {
				inst = managed(boxID, ana, "box", computebot.InstanceRunning, epoch, "R")
			}
			e.cloud.add(inst)
			if e.idle != nil {
				e.idle.err = tc.err
				e.idle.notice = postedNotice()
			}
			o := e.clickOrigin(tc.user, channel, requestThread)
			ans := e.click(o, tc.action, boxID, noticeTS)
			if ans.Outcome != "accepted" {
				t.Errorf("Outcome %q", ans.Outcome)
			}
			var want []reply.Message
			if tc.told != nil {
				want = tc.told(e)
			}
			e.told(o, want...)
			if tc.err != nil {
				contains(t, "answer", want[0], "That did not work: `"+boxID+"` has no idle or lease notice.")
			}
			if e.idle != nil {
				if got := e.idle.recorded(); !slices.Equal(got, tc.calls) {
					t.Errorf("scheduler calls %q, want %q", got, tc.calls)
				}
			}
			if n := e.cloud.callCount(cStop) + e.cloud.callCount(cTag); n != 0 {
				t.Errorf("the flow acted itself (%d calls); the scheduler does", n)
			}
			if posts := e.chat.allPosts(); len(posts) != 0 {
				t.Errorf("posted %q", texts(posts))
			}
		})
	}
}

// TestIdleReport: /computebot idle, for approvers.
func TestIdleReport(t *testing.T) {
	rep := idle.Report{Noticed: []idle.Notice{notice()}, Snoozed: []idle.Snooze{{InstanceID: boxID2, Owner: ana, Reason: idle.ReasonIdle, KeptBy: ana, Until: epoch.Add(time.Hour)}}}
	for _, tc := range []struct {
		name  string
		opt   envOption
		user  string
		err   error
		want  func(e *env) reply.Message
		asked bool
	}{
		{name: "approver", user: bo, asked: true, want: func(*env) reply.Message { return reply.IdleReport(rep, epoch) }},
		{name: "approver through a group", user: carl, asked: true, want: func(*env) reply.Message { return reply.IdleReport(rep, epoch) }},
		{
			name: "stranger", user: eve,
			want: func(e *env) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseApproversOnly, Action: policy.ActionIdleReport, Actor: eve, Approvers: e.cfg.Approvers})
			},
		},
		{
			name: "the report fails", user: bo, asked: true, err: awsErr("Throttling", "CloudWatch is throttling.", true),
			want: func(*env) reply.Message { return reply.IdleReportFailed("CloudWatch is throttling.") },
		},
		{name: "the scheduler is off", opt: withoutIdle(), user: bo, want: func(*env) reply.Message { return reply.IdleNotRunning() }},
		{
			name: "the scheduler is off, asked by a stranger", opt: withoutIdle(), user: eve,
			want: func(e *env) reply.Message {
				return reply.Refusal(policy.Refusal{Code: policy.RefuseApproversOnly, Action: policy.ActionIdleReport, Actor: eve, Approvers: e.cfg.Approvers})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []envOption
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			e := newEnv(t, opts...)
			if e.idle != nil {
				e.idle.report, e.idle.reportErr = rep, tc.err
			}
			o := e.slashOrigin(tc.user)
			e.slash(o, "/computebot", "idle")
			e.told(o, tc.want(e))
			if e.idle != nil {
				if asked := slices.Contains(e.idle.recorded(), "report"); asked != tc.asked {
					t.Errorf("report asked: %v, want %v", asked, tc.asked)
				}
			}
		})
	}
}
