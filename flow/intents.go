package flow

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// Intents: every envelope is persisted as an intent before its ack (one
// durable write), with the quick answer the ack carries; the work after the
// ack runs from the stored intent, never from memory alone. A redelivered
// envelope finds its intent and gets the same answer; a restart runs every
// unfinished intent again (Resume).
//
// An intent owns its command up to the command's durable effect: a /launch
// until its request is posted (or refused), an Approve until the decision
// is recorded, a /stop until EC2 was asked to stop. What comes after a
// request's decision (the launch, the wait for the instance) is the
// request's own state machine, resumed from the request's state. Running
// an intent twice (it was under way when the process died) does its effect
// once: request IDs and ClientTokens derive from the intent, decisions are
// compare-and-sets, and what is not idempotent on its own (an /extend's new
// lease end, a direct invocation) is recorded in the intent's Step first.

// Input is what someone typed or clicked, as the adapter decoded it from
// its platform's format.
type Input struct {
	Source    computebot.IntentSource
	Command   string // a slash command's name ("/launch")
	Text      string // what was typed (slash command text, a mention's text)
	ActionID  string // a click's action ID
	Value     string // a click's button value
	MessageTS string // the message a button was clicked on
}

// Envelope is one delivery of the platform, ready for Accept.
type Envelope struct {
	// ID is the platform's ID of the delivery, identical on redelivery; ""
	// when it sent none (then the delivery cannot be recognised again, and
	// gets an ID of its own).
	ID     string
	Origin Origin
	Input  Input
}

// Steps recorded in Intent.Step.
const (
	stepPosting  = "posting"  // the request message may have been posted
	stepInvoking = "invoking" // a direct invocation was started
	stepStarted  = "started"  // a notice button's action was handed to the scheduler
	stepAsked    = "asked"    // EC2 may have been asked to stop, start or terminate the instance
	stepExtendTo = "extend-to:"
)

// Accept handles one envelope before its ack: it parses what was typed or
// clicked, applies the checks that need no I/O, and persists the intent
// with its quick answer. Its Answer carries that answer (for the ack, when
// the origin allows) and the Job to run after the ack.
func (f *Flow) Accept(ctx context.Context, env Envelope) Answer {
	o := env.Origin
	id := env.ID
	if id == "" {
		id = "anon-" + rand.Text()
	}
	if o.Trigger == "" {
		o.Trigger = "envelope:" + id
	}
	if env.Input.Source == computebot.SourceForm {
		if _, err := f.store.Intent(ctx, id); err == nil {
			// Delivered and accepted before: recognised below as such, not
			// judged again under rules that may have changed since.
		} else if errs := f.formErrors(o, env.Input); len(errs) > 0 {
			// Nothing changes: the form stays open with its errors (a
			// redelivery is checked again and gets the same).
			return Answer{FieldErrors: errs, Outcome: "refused", Command: "launch"}
		}
	}
	cmd, quick, outcome := f.triage(ctx, o, env.Input)
	if _, form := cmd.(*commands.OpenLaunchForm); form && outcome == "accepted" {
		// Opening a form changes nothing, and its trigger is dead in 3 s:
		// not stored, not resumed; a redelivery opens it again, or fails.
		return Answer{Outcome: "accepted", Command: "launch", Job: &Job{kind: jobForm, origin: o}}
	}
	text := env.Input.Text
	if outcome == "secret" {
		// A private key was typed: it is stored nowhere, not even in the
		// intent (a redelivery gets the same answer from the Ack).
		text, outcome = "", "refused"
	}
	name := ""
	if cmd != nil {
		name = cmd.CommandName()
	}
	in := &computebot.Intent{
		ID: id, TriggerID: o.Trigger, Actor: o.User, Channel: o.Channel, ThreadTS: o.ThreadTS,
		ResponseURL: o.ResponseURL, ReplyInAck: o.ReplyInAck,
		Source: env.Input.Source, Command: env.Input.Command, Text: text,
		ActionID: env.Input.ActionID, Value: env.Input.Value, MessageTS: env.Input.MessageTS,
		State: computebot.IntentAccepted, CreatedAt: f.now(), Claim: f.cluster.Self(),
	}
	work := outcome == "accepted"
	if quick != nil {
		in.Ack = quick.Text
		// The answer is all there is to do, unless it cannot travel in
		// the ack (a mention's): then sending it is the job.
		work = !o.ReplyInAck
	}
	if !work {
		in.State = computebot.IntentDone
	}
	stored, err := f.store.AcceptIntent(ctx, in)
	switch {
	case errors.Is(err, computebot.ErrExists):
		// Delivered before: same answer, no second job (the first one
		// runs, or resumes after a restart).
		f.log.Info("redelivered envelope", "envelope_id", id, "state", stored.State)
		ans := Answer{Outcome: "duplicate", Command: name}
		if stored.ReplyInAck && stored.Ack != "" {
			m := reply.Plain(stored.Ack)
			ans.Reply = &m
		}
		return ans
	case err != nil:
		f.log.Error("persist intent", "envelope_id", id, "err", err)
		if env.Input.Source == computebot.SourceForm {
			// On the form, which stays open: nothing typed is lost.
			return Answer{FieldErrors: map[string]string{commands.FieldType: reply.FormNotSaved()}, Outcome: "refused", Command: name}
		}
		m := reply.SaveFailed()
		if !o.ReplyInAck {
			// No ack shows it (a mention): say it after the ack instead.
			f.background(func(ctx context.Context) { f.tell(ctx, o, m) })
			return Answer{Outcome: "refused", Command: name}
		}
		return Answer{Reply: &m, Outcome: "refused", Command: name}
	}
	ans := Answer{Outcome: outcome, Command: name}
	if quick != nil && o.ReplyInAck {
		ans.Reply = quick
	}
	if work {
		ans.Job = &Job{kind: jobIntent, intentID: id}
	}
	return ans
}

// triage parses an input and decides what can be decided without I/O: the
// command, the quick answer (help, usage, a refusal), and the outcome
// ("accepted" when work is left, "reply", "refused" or "ignored").
func (f *Flow) triage(ctx context.Context, o Origin, in Input) (commands.Command, *reply.Message, string) {
	quick := func(m reply.Message, outcome string) (*reply.Message, string) { return &m, outcome }
	var res commands.Result
	switch in.Source {
	case computebot.SourceClick:
		cmd, err := Click(in.ActionID, in.Value, in.MessageTS)
		if err != nil {
			f.log.Info("ignoring click", "action_id", in.ActionID, "err", err)
			return nil, nil, "ignored"
		}
		return cmd, nil, "accepted"
	case computebot.SourceMention:
		res = commands.ParseText(in.Text)
		if _, form := res.Command.(*commands.OpenLaunchForm); form {
			// A mention cannot open a form (no trigger to open it with).
			m, outcome := quick(reply.LaunchUsageInMention(), "reply")
			return nil, m, outcome
		}
	case computebot.SourceForm:
		c, errs := commands.ParseLaunchForm(formValues(in.Value))
		if len(errs) > 0 { // checked before the ack (Accept): a damaged record
			m, outcome := quick(reply.FormNoLongerValid(), "refused")
			return nil, m, outcome
		}
		res = commands.Result{Outcome: commands.Run, Command: c}
	default:
		res = commands.ParseSlash(in.Command, in.Text)
	}
	switch {
	case res.Secret:
		m, outcome := quick(reply.PrivateKeyPasted(), "secret")
		return nil, m, outcome
	case res.Outcome == commands.Ignore:
		return nil, nil, "ignored"
	case res.Outcome == commands.Reply:
		m, outcome := quick(reply.Plain(res.Reply), "reply")
		return nil, m, outcome
	}
	switch c := res.Command.(type) {
	case *commands.Help:
		text := commands.HelpText(c.Topic)
		if c.Topic == "launch" && len(f.cfg.Launch.Images) > 0 {
			text += "\n" + reply.ImagePresets(f.cfg.Launch.Images)
		}
		m, outcome := quick(reply.Plain(text), "reply")
		return c, m, outcome
	case *commands.Launch:
		if _, ok := f.cfg.Launch.Images[c.Image]; c.Image != "" && !ok {
			m, outcome := quick(reply.UnknownImagePreset(c.Image, f.cfg.Launch.Images), "refused")
			return c, m, outcome
		}
		r := f.newLaunchRequest(o, c)
		if d := f.authz.Precheck(policy.Action{Kind: policy.ActionLaunch, Actor: o.User, Request: r}); d.Verdict == policy.Deny {
			m, outcome := quick(reply.Refusal(d.Refusal), "refused")
			return c, m, outcome
		}
	case *commands.LambdaInvoke:
		d, err := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionInvoke, Actor: o.User, Function: c.Function})
		if err != nil {
			f.log.Error("authorize invoke", "function", c.Function, "err", err)
		}
		if d.Verdict == policy.Deny {
			m, outcome := quick(reply.Refusal(d.Refusal), "refused")
			return c, m, outcome
		}
	}
	return res.Command, nil, "accepted"
}

// originOf is where an intent came from, to answer there.
func originOf(in *computebot.Intent) Origin {
	return Origin{User: in.Actor, Channel: in.Channel, ThreadTS: in.ThreadTS, ResponseURL: in.ResponseURL,
		Trigger: in.TriggerID, ReplyInAck: in.ReplyInAck}
}

// runIntent carries out a stored intent: the first time, or again after a
// restart.
func (f *Flow) runIntent(ctx context.Context, id string) {
	in, err := f.store.Intent(ctx, id)
	if err != nil {
		f.log.Error("load intent", "intent", id, "err", err)
		return
	}
	if in.State == computebot.IntentDone {
		return
	}
	o := originOf(in)
	if in.Ack != "" {
		// A quick answer that could not travel in the ack (a mention's).
		f.tell(ctx, o, reply.Plain(in.Ack))
		f.finish(ctx, in)
		return
	}
	cmd, quick, outcome := f.triage(ctx, o, Input{Source: in.Source, Command: in.Command, Text: in.Text,
		ActionID: in.ActionID, Value: in.Value, MessageTS: in.MessageTS})
	if outcome != "accepted" {
		// The rules changed since the ack (a new config after a restart):
		// the person hears the refusal now.
		if quick != nil {
			f.tell(ctx, o, *quick)
		}
		f.finish(ctx, in)
		return
	}
	unlock := f.locks.lock(f.lockKey(o, cmd))
	defer unlock()
	switch c := cmd.(type) {
	case *commands.Launch:
		f.acceptRequest(ctx, in, f.newLaunchRequest(o, c))
	case *commands.LambdaInvoke:
		if d, _ := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionInvoke, Actor: o.User, Function: c.Function}); d.Verdict == policy.NeedsApproval {
			f.acceptRequest(ctx, in, f.newLambdaRequest(o, c))
			return
		}
		f.invoke(ctx, in, o, c)
	case decideCommand:
		f.decide(ctx, in, o, c)
	case noticeCommand:
		f.noticeButton(ctx, in, o, c)
	default:
		f.runCommand(ctx, in, o, cmd)
	}
}

// lockKey is what an intent's work is serialized on, so that messages in a
// thread follow the order of events: a request's ID for what touches a
// request, an instance's for what touches one, nothing for the rest.
func (f *Flow) lockKey(o Origin, cmd commands.Command) string {
	switch c := cmd.(type) {
	case *commands.Launch, *commands.LambdaInvoke:
		return requestID(o.Trigger)
	case decideCommand:
		return c.requestID
	case noticeCommand:
		return c.instanceID
	case *commands.Stop:
		return c.Target
	case *commands.Start:
		return c.Target
	case *commands.Terminate:
		return c.Target
	case *commands.Extend:
		return c.Target
	}
	return ""
}

// finish records an intent done: a restart no longer runs it.
func (f *Flow) finish(ctx context.Context, in *computebot.Intent) {
	_, err := f.store.UpdateIntent(ctx, in.ID, func(cur *computebot.Intent) error {
		cur.State = computebot.IntentDone
		return nil
	})
	if err != nil {
		f.log.Error("finish intent", "intent", in.ID, "err", err)
	}
}

// finishing returns a function to defer that finishes the intent when the
// work returns; when it panics (a bug), the person hears that something
// went wrong before the intent is finished, so that it neither vanishes
// untold nor fails again at every start. The panic goes on to Run, which
// logs it.
func (f *Flow) finishing(ctx context.Context, in *computebot.Intent) func() {
	return func() {
		p := recover()
		if p != nil {
			f.tell(ctx, originOf(in), reply.SomethingWentWrong())
		}
		f.finish(ctx, in)
		if p != nil {
			panic(p)
		}
	}
}

// step records what an intent is about to do that must not happen twice
// (see Intent.Step). It returns false (and logs) when the record could not
// be written: then the effect must not be attempted.
func (f *Flow) step(ctx context.Context, in *computebot.Intent, step string) bool {
	_, err := f.store.UpdateIntent(ctx, in.ID, func(cur *computebot.Intent) error {
		cur.Step = step
		return nil
	})
	if err != nil {
		f.log.Error("record intent step", "intent", in.ID, "step", step, "err", err)
		return false
	}
	in.Step = step
	return true
}

// keyedLocks serialize work per key (a request, an instance): messages in
// one thread keep the order of events whichever worker posts them. The
// zero value is ready to use.
type keyedLocks struct {
	mu   sync.Mutex
	held map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	users int // holders and waiters; the entry goes with the last
}

// lock takes key's lock ("" is no lock) and returns its release.
func (k *keyedLocks) lock(key string) func() {
	if key == "" {
		return func() {}
	}
	k.mu.Lock()
	if k.held == nil {
		k.held = map[string]*keyedLock{}
	}
	l := k.held[key]
	if l == nil {
		l = &keyedLock{}
		k.held[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.held, key)
		}
		k.mu.Unlock()
	}
}
