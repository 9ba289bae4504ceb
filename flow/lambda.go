package flow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/internal/crash"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// The Lambda workflows: /lambda list, /lambda invoke for functions that
// need no approval (a thread with the result), and approved invocations of
// those that do (in the request's thread). An invocation is not idempotent:
// it is made once, and never again after a restart.

// listFunctions answers /lambda list with the functions the allowlist lets
// people see, one page at a time.
func (f *Flow) listFunctions(ctx context.Context, o Origin, offset int) {
	all, err := f.cloud.ListFunctions(ctx)
	if err != nil {
		f.log.Error("list functions", "err", err)
		f.tell(ctx, o, reply.FunctionsListFailed(computebot.UserMessage(err)))
		return
	}
	var fns []computebot.Function
	for _, fn := range all {
		if f.authz.FunctionAllowed(fn.Name) {
			fns = append(fns, fn)
		}
	}
	slices.SortFunc(fns, func(x, y computebot.Function) int { return strings.Compare(x.Name, y.Name) })
	if offset >= len(fns) {
		offset = 0
	}
	f.tell(ctx, o, reply.FunctionList(fns, offset))
}

// invoke runs /lambda invoke for a function that needs no approval: it
// opens a thread (or uses the one the command was typed in) and posts the
// result there. An invocation is made once: its intent records that it
// starts, and a run after a restart that finds that record says the result
// is unknown instead of invoking again.
func (f *Flow) invoke(ctx context.Context, in *computebot.Intent, o Origin, c *commands.LambdaInvoke) {
	defer f.finishing(ctx, in)()
	function := c.Function
	if in.Step == stepInvoking {
		f.tell(ctx, o, reply.InvokeFailed(function, reply.InvokeInterrupted()))
		return
	}
	d, err := f.authz.Authorize(ctx, policy.Action{Kind: policy.ActionInvoke, Actor: o.User, Function: function})
	if d.Verdict != policy.Allow {
		if err != nil {
			f.log.Error("authorize invoke", "function", function, "err", err)
		}
		if d.Verdict == policy.NeedsApproval {
			f.tell(ctx, o, reply.InvokeNeedsApproval(function))
		} else {
			f.tell(ctx, o, reply.Refusal(d.Refusal))
		}
		return
	}
	// Look the function up first so that a missing one is a private
	// answer, not a public thread.
	if why := f.lookUpFunction(ctx, function); why != nil {
		f.tell(ctx, o, *why)
		return
	}
	// The "invoked" message opens the result's thread: posted once (a run
	// after a crash finds it by its key), and before the invocation.
	msg := reply.Invoked(o.User, function, c.Async)
	msg.Key = reply.InvokedKey(in.ID)
	ts := ""
	if in.Step == stepPosting {
		ts = f.findPosted(ctx, o.Channel, o.ThreadTS, msg.Key, in.CreatedAt)
	}
	if ts == "" {
		if !f.step(ctx, in, stepPosting) {
			f.tell(ctx, o, reply.InvokeFailed(function, reply.InternalError()))
			return
		}
		var err error
		if ts, err = f.chat.Post(ctx, o.Channel, o.ThreadTS, msg); err != nil {
			f.log.Error("post invocation", "function", function, "err", err)
			f.tell(ctx, o, reply.CannotPost(computebot.KindLambda, errors.Is(err, ErrNotInChannel)))
			return
		}
	}
	thread := o.ThreadTS
	if thread == "" {
		thread = ts
	}
	if !f.step(ctx, in, stepInvoking) {
		f.post(ctx, o.Channel, thread, reply.InvokeFailed(function, reply.InternalError()), "invocation failure", "function", function)
		return
	}
	f.runInvocation(ctx, o.User, "", computebot.LambdaRequest{Function: function, Payload: c.Payload, Async: c.Async}, o.Channel, thread)
}

// lookUpFunction checks that a function exists; a non-nil message is the
// answer when it does not (or Lambda failed).
func (f *Flow) lookUpFunction(ctx context.Context, function string) *reply.Message {
	_, err := f.cloud.GetFunction(ctx, function)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, computebot.ErrNotFound):
		m := reply.FunctionNotFound(function)
		return &m
	}
	m := reply.LookupFailed(function, computebot.UserMessage(err))
	return &m
}

// runInvocation invokes the function, audits it and posts the outcome in
// the thread. It returns the failure in plain words, or "".
func (f *Flow) runInvocation(ctx context.Context, actor, requestID string, l computebot.LambdaRequest, channel, thread string) string {
	limit := f.cfg.Lambda.Timeout.Duration()
	ictx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	crash.Point("before-invoke")
	res, err := f.cloud.Invoke(ictx, computebot.Invocation{Function: l.Function, Payload: []byte(l.Payload), Async: l.Async})
	post := func(m reply.Message) {
		f.post(ctx, channel, thread, m, "invocation result", "function", l.Function, "request_id", requestID)
	}
	if err != nil {
		why := reply.Literal(computebot.UserMessage(err))
		if errors.Is(err, context.DeadlineExceeded) || computebot.ErrorCode(err) == "Timeout" {
			why = reply.InvokeTimedOut(limit)
		}
		f.audit.Record(ctx, computebot.AuditEntry{Actor: actor, Action: "invoke", RequestID: requestID, Target: l.Function, Result: computebot.AuditResult(err), Detail: why})
		post(reply.InvokeFailed(l.Function, why))
		return why
	}
	result := "ok"
	if res.FunctionError != "" {
		result = "FunctionError:" + res.FunctionError
	}
	f.audit.Record(ctx, computebot.AuditEntry{Actor: actor, Action: "invoke", RequestID: requestID, Target: l.Function, Result: result,
		Detail: fmt.Sprintf("status %d, async %v", res.StatusCode, l.Async)})
	if l.Async {
		post(reply.InvokeAccepted(l.Function, res))
		return ""
	}
	msg, full := reply.InvokeResult(l.Function, res)
	post(msg)
	if full != "" {
		if err := f.chat.Upload(ctx, channel, thread, reply.OutputFileName(l.Function, f.now()), reply.OutputFileTitle(l.Function), full); err != nil {
			f.log.Error("upload invocation output", "function", l.Function, "request_id", requestID, "err", err)
			post(reply.UploadFailed())
		}
	}
	return ""
}

// invokeApproved runs an approved Lambda request. One that was in flight
// when the bot stopped is not run again: the thread says so and the request
// fails.
func (f *Flow) invokeApproved(ctx context.Context, id string, resume bool) {
	var interrupted bool
	r, err := f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		interrupted = false
		switch {
		case !f.mine(cur):
			return computebot.ErrConflict // another replica took it over
		case cur.State == computebot.RequestApproved:
			cur.State = computebot.RequestExecuting
		case cur.State == computebot.RequestExecuting && resume:
			interrupted = true
		default:
			return computebot.ErrConflict
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			f.log.Error("start approved invocation", "request_id", id, "err", err)
		}
		return
	}
	if interrupted {
		f.fail(ctx, r, reply.InvokeInterrupted(), "Interrupted")
		return
	}
	why := f.runInvocation(ctx, r.Requester, r.ID, *r.Lambda, r.ChannelID, r.MessageTS)
	r, err = f.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		if cur.State != computebot.RequestExecuting || !f.mine(cur) {
			return computebot.ErrConflict // settled meanwhile (a resume elsewhere marked it failed)
		}
		if why != "" {
			cur.State, cur.Failure = computebot.RequestFailed, why
		} else {
			cur.State = computebot.RequestDone
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			f.log.Error("record invocation", "request_id", id, "err", err)
		}
		return
	}
	f.refreshMessage(ctx, r)
}

// admitLambda checks that an approval-gated function exists and makes the
// request pending.
func (f *Flow) admitLambda(ctx context.Context, r *computebot.Request) (*computebot.Request, error) {
	if why := f.lookUpFunction(ctx, r.Lambda.Function); why != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // shutting down: it resumes
		}
		return nil, f.refuse(ctx, r, *why)
	}
	// Lambda requests always need an approver: never auto-approved.
	return f.settleNew(ctx, r.ID, false, nil)
}
