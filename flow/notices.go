package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/idle"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// The idle scheduler's side of the chat: Notices posts its notices (the
// scheduler's Notifier), and the Flow handles their buttons and the
// approvers' /computebot idle report.

// Notices shows the idle scheduler's notices to people. It implements
// idle.Notifier.
type Notices struct {
	chat          Chat
	notifyChannel string
	pace          *pacer
	log           *slog.Logger
}

var _ idle.Notifier = (*Notices)(nil)

// NewNotices posts notices through chat; notifyChannel ("" for none) is the
// last resort when neither the request thread nor a DM works. Posts to one
// channel are at least interval apart.
func NewNotices(chat Chat, notifyChannel string, interval time.Duration, log *slog.Logger) *Notices {
	if interval <= 0 {
		interval = Options{}.withDefaults().NoticeInterval
	}
	if log == nil {
		log = slog.Default()
	}
	return &Notices{chat: chat, notifyChannel: notifyChannel, pace: newPacer(interval), log: log}
}

// PostNotice posts an idle or lease notice: in the instance's request
// thread, else a DM to the owner, else notify_channel. Posts are paced per
// channel so a burst of notices stays under Slack's rate limit.
//
// A settled notice is posted only when its first post never completed (a
// crash in between): then the first post may well be in Slack, so it is
// looked for (by its key) and updated, rather than posted again.
func (s *Notices) PostNotice(ctx context.Context, n idle.Notice) (string, string, error) {
	msg := reply.IdleNotice(n)
	if n.State != idle.StateNoticed {
		if ch, ts, ok := s.find(ctx, n, msg.Key); ok {
			return ch, ts, s.chat.Update(ctx, ch, ts, msg)
		}
	}
	return s.postFor(ctx, n.InstanceID, n.RequestChannel, n.RequestThread, n.Owner, msg)
}

// HoursStarted posts that an instance was started because its office
// hours began, with its address, where its notices go.
func (s *Notices) HoursStarted(ctx context.Context, inst computebot.Instance, hours string) error {
	_, _, err := s.postFor(ctx, inst.ID, inst.Tags[computebot.TagChannel], inst.Tags[computebot.TagThread], inst.Tags[computebot.TagOwner],
		reply.HoursStarted(inst, hours))
	return err
}

// postFor posts news about an instance: in its request thread, else a DM
// to its owner, else notify_channel; paced per channel.
func (s *Notices) postFor(ctx context.Context, instanceID, requestChannel, requestThread, owner string, msg reply.Message) (string, string, error) {
	var tried []error
	try := func(channel, thread string) (string, bool) {
		if err := s.pace.wait(ctx, channel); err != nil {
			tried = append(tried, err)
			return "", false
		}
		ts, err := s.chat.Post(ctx, channel, thread, msg)
		if err != nil {
			tried = append(tried, err)
			return "", false
		}
		return ts, true
	}
	if requestChannel != "" {
		if ts, ok := try(requestChannel, requestThread); ok {
			return requestChannel, ts, nil
		}
	}
	if owner != "" {
		if dm, err := s.chat.DM(ctx, owner); err != nil {
			tried = append(tried, err)
		} else if ts, ok := try(dm, ""); ok {
			return dm, ts, nil
		}
	}
	if s.notifyChannel != "" {
		if ts, ok := try(s.notifyChannel, ""); ok {
			return s.notifyChannel, ts, nil
		}
	}
	if len(tried) == 0 {
		return "", "", fmt.Errorf("flow: post notice for %s: nowhere to post: no request thread, owner or notify_channel", instanceID)
	}
	return "", "", fmt.Errorf("flow: post notice for %s: nowhere to post: %w", instanceID, errors.Join(tried...))
}

// find looks for a notice's first post where PostNotice posts: the request
// thread, the owner's DM, notify_channel.
func (s *Notices) find(ctx context.Context, n idle.Notice, key string) (channel, ts string, ok bool) {
	since := n.NoticedAt.Add(-time.Minute)
	look := func(ch, thread string) bool {
		if ch == "" {
			return false
		}
		found, err := s.chat.FindMessage(ctx, ch, thread, key, since)
		if err != nil {
			if !errors.Is(err, computebot.ErrNotFound) {
				s.log.Warn("look for a notice's first post", "instance", n.InstanceID, "err", err)
			}
			return false
		}
		channel, ts = ch, found
		return true
	}
	if look(n.RequestChannel, n.RequestThread) {
		return channel, ts, true
	}
	if n.Owner != "" {
		if dm, err := s.chat.DM(ctx, n.Owner); err == nil && look(dm, "") {
			return channel, ts, true
		}
	}
	ok = look(s.notifyChannel, "")
	return channel, ts, ok
}

// UpdateNotice re-renders a posted notice (kept, stopped, cancelled).
func (s *Notices) UpdateNotice(ctx context.Context, n idle.Notice) error {
	if n.Channel == "" || n.TS == "" {
		return errors.New("flow: notice was never posted")
	}
	return s.chat.Update(ctx, n.Channel, n.TS, reply.IdleNotice(n))
}

// Announce posts what became of a notice in its thread.
func (s *Notices) Announce(ctx context.Context, n idle.Notice) error {
	if n.Channel == "" {
		return errors.New("flow: notice was never posted")
	}
	if err := s.pace.wait(ctx, n.Channel); err != nil {
		return err
	}
	_, err := s.chat.Post(ctx, n.Channel, n.ThreadTS(), reply.NoticeAnnouncement(n))
	return err
}

// noticeButton carries out Keep running or Stop now: the button must be
// on the notice's own message, the clicker is authorized like any other
// action on the instance (owner or approver), and the scheduler acts. Run
// again after a restart (stepStarted), a click whose effect is already
// there (kept by this clicker, stopped) is done without a word.
func (f *Flow) noticeButton(ctx context.Context, in *computebot.Intent, o Origin, c noticeCommand) {
	defer f.finishing(ctx, in)()
	if f.idle == nil {
		f.tell(ctx, o, reply.IdleNotRunning())
		return
	}
	n, err := f.idle.Notice(ctx, c.instanceID)
	if err == nil && !f.clickedOnNotice(ctx, o, c, n) {
		f.log.Warn("click refused: its instance is not the clicked notice's", "instance", c.instanceID, "user", o.User)
		f.tell(ctx, o, reply.ClickNotOnItsMessage())
		return
	}
	rerun := in.Step == stepStarted
	if rerun && err == nil && ((c.keep && n.State == idle.StateKept && n.SettledBy == o.User) ||
		(!c.keep && (n.State == idle.StateStopped || n.State == idle.StateStopping))) {
		return
	}
	kind := policy.ActionStop
	if c.keep {
		kind = policy.ActionKeep
	}
	inst, refusal := f.resolveTarget(ctx, o, c.instanceID)
	if refusal != nil {
		f.tell(ctx, o, *refusal)
		return
	}
	d, err := f.authz.Authorize(ctx, policy.Action{Kind: kind, Actor: o.User, Instance: &inst})
	if d.Verdict != policy.Allow {
		if err != nil {
			f.log.Error("authorize notice button", "instance", inst.ID, "err", err)
		}
		f.tell(ctx, o, reply.Refusal(d.Refusal))
		return
	}
	if !rerun && !f.step(ctx, in, stepStarted) {
		f.tell(ctx, o, reply.NoticeButtonFailed(errors.New("flow: record the click's step")))
		return
	}
	if c.keep {
		n, err = f.idle.Keep(ctx, inst.ID, o.User)
	} else {
		n, err = f.idle.StopNow(ctx, inst.ID, o.User)
	}
	if err != nil {
		f.log.Error("notice button", "instance", inst.ID, "keep", c.keep, "err", err)
		f.tell(ctx, o, reply.NoticeButtonFailed(err))
		return
	}
	f.log.Info("notice button", "instance", inst.ID, "user", o.User, "keep", c.keep, "state", n.State)
}

// idleReport answers /computebot idle (approvers).
func (f *Flow) idleReport(ctx context.Context, o Origin) {
	d, err := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionIdleReport, Actor: o.User})
	if d.Verdict != policy.Allow {
		if err != nil {
			f.log.Error("authorize idle report", "err", err)
		}
		f.tell(ctx, o, reply.Refusal(d.Refusal))
		return
	}
	if f.idle == nil {
		f.tell(ctx, o, reply.IdleNotRunning())
		return
	}
	rep, err := f.idle.Report(ctx)
	if err != nil {
		f.log.Error("idle report", "err", err)
		f.tell(ctx, o, reply.IdleReportFailed(computebot.UserMessage(err)))
		return
	}
	f.tell(ctx, o, reply.IdleReport(rep, f.now()))
}

// pacer spaces posts to one channel: Slack allows about one
// chat.postMessage per second per channel, so a burst (100 idle notices)
// is spread out instead of answered with a storm of 429s.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	next     map[string]time.Time
}

func newPacer(interval time.Duration) *pacer {
	return &pacer{interval: interval, next: map[string]time.Time{}}
}

// wait blocks until channel may be posted to again.
func (p *pacer) wait(ctx context.Context, channel string) error {
	p.mu.Lock()
	now := time.Now()
	at := p.next[channel]
	if at.Before(now) {
		at = now
	}
	p.next[channel] = at.Add(p.interval)
	p.mu.Unlock()
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// clickedOnNotice reports whether a notice button was clicked on the
// notice's own message. A notice whose post was not recorded (in flight,
// or its poster died) is checked against the message found by its key.
func (f *Flow) clickedOnNotice(ctx context.Context, o Origin, c noticeCommand, n idle.Notice) bool {
	n = f.awaitNoticeTS(ctx, n)
	if n.TS != "" {
		return n.Channel == o.Channel && n.TS == c.messageTS
	}
	thread := ""
	if o.Channel == n.RequestChannel {
		thread = n.RequestThread
	}
	found := f.findPosted(ctx, o.Channel, thread, reply.NoticeKey(n.InstanceID, n.Episode), n.NoticedAt)
	return found != "" && found == c.messageTS
}

// awaitNoticeTS re-reads a notice whose post is not recorded yet, for a
// moment (Options.NoticeRecordWait), so a click that raced the recording
// is judged by the ts itself.
func (f *Flow) awaitNoticeTS(ctx context.Context, n idle.Notice) idle.Notice {
	deadline := time.Now().Add(f.opts.NoticeRecordWait)
	for n.TS == "" && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return n
		case <-time.After(50 * time.Millisecond):
		}
		cur, err := f.idle.Notice(ctx, n.InstanceID)
		if err != nil || cur.Episode != n.Episode {
			return n
		}
		n = cur
	}
	return n
}
