package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// listFunctions answers /lambda list with the functions the allowlist lets
// people see, one page at a time.
func (b *Bot) listFunctions(ctx context.Context, o origin, offset int) {
	actx, cancel := b.awsCtx(ctx)
	defer cancel()
	all, err := b.cloud.ListFunctions(actx)
	if err != nil {
		b.log.Error("list functions", "err", err)
		b.tell(ctx, o, reply.Plain("I could not list Lambda functions: "+computebot.UserMessage(err)))
		return
	}
	var fns []computebot.Function
	for _, f := range all {
		if b.authz.FunctionAllowed(f.Name) {
			fns = append(fns, f)
		}
	}
	slices.SortFunc(fns, func(x, y computebot.Function) int { return strings.Compare(x.Name, y.Name) })
	if offset >= len(fns) {
		offset = 0
	}
	b.tell(ctx, o, reply.FunctionList(fns, offset))
}

// invoke runs /lambda invoke for a function that needs no approval: it
// opens a thread (or uses the one the command was typed in) and posts the
// result there.
func (b *Bot) invoke(ctx context.Context, o origin, function, payload string, async bool) {
	d, err := b.authz.Authorize(ctx, policy.Action{Kind: policy.ActionInvoke, Actor: o.user, Function: function})
	if d.Verdict != policy.Allow {
		if err != nil {
			b.log.Error("authorize invoke", "function", function, "err", err)
		}
		reason := d.Reason
		if d.Verdict == policy.NeedsApproval {
			reason = fmt.Sprintf("`%s` needs an approver; run `/lambda invoke %s …` to request it.", function, function)
		}
		b.tell(ctx, o, reply.Plain(reason))
		return
	}
	// Look the function up first so that a missing one is a private
	// answer, not a public thread.
	actx, cancel := b.awsCtx(ctx)
	_, err = b.cloud.GetFunction(actx, function)
	cancel()
	if err != nil {
		if errors.Is(err, computebot.ErrNotFound) {
			b.tell(ctx, o, reply.Plain(policy.FunctionNotFound(function)))
		} else {
			b.tell(ctx, o, reply.Plain(fmt.Sprintf("I could not look up `%s`: %s", function, computebot.UserMessage(err))))
		}
		return
	}
	ts, err := b.chat.Post(ctx, o.channel, o.threadTS, reply.Invoked(o.user, function, async))
	if err != nil {
		b.log.Error("post invocation", "function", function, "err", err)
		b.tell(ctx, o, reply.Plain("I can't post in this channel: invite me first (`/invite @computebot`), then run the command again. Nothing was invoked."))
		return
	}
	thread := o.threadTS
	if thread == "" {
		thread = ts
	}
	b.runInvocation(ctx, o.user, "", function, payload, async, o.channel, thread)
}

// runInvocation invokes the function, audits it and posts the outcome in
// the thread. It returns the failure in plain words, or "".
func (b *Bot) runInvocation(ctx context.Context, actor, requestID, function, payload string, async bool, channel, thread string) string {
	ictx, cancel := context.WithTimeout(ctx, b.set.LambdaTimeout)
	defer cancel()
	res, err := b.cloud.Invoke(ictx, computebot.Invocation{Function: function, Payload: []byte(payload), Async: async})
	post := func(m reply.Message) {
		if _, perr := b.chat.Post(ctx, channel, thread, m); perr != nil {
			b.log.Error("post invocation result", "function", function, "request_id", requestID, "err", perr)
		}
	}
	if err != nil {
		why := computebot.UserMessage(err)
		if errors.Is(err, context.DeadlineExceeded) || computebot.ErrorCode(err) == "Timeout" {
			why = fmt.Sprintf("it did not finish within %s (lambda.timeout). It may still be running: check its logs before invoking it again.", b.set.LambdaTimeout)
		}
		b.audit(ctx, computebot.AuditEntry{Actor: actor, Action: "invoke", RequestID: requestID, Target: function, Result: codeOr(err), Detail: why})
		post(reply.InvokeFailed(function, why))
		return why
	}
	result := "ok"
	if res.FunctionError != "" {
		result = "FunctionError:" + res.FunctionError
	}
	b.audit(ctx, computebot.AuditEntry{Actor: actor, Action: "invoke", RequestID: requestID, Target: function, Result: result,
		Detail: fmt.Sprintf("status %d, async %v", res.StatusCode, async)})
	if async {
		post(reply.InvokeAccepted(function, res))
		return ""
	}
	msg, full := reply.InvokeResult(function, res)
	post(msg)
	if full != "" {
		name := fmt.Sprintf("%s-%s.txt", function, b.now().UTC().Format("20060102T150405Z"))
		if err := b.chat.Upload(ctx, channel, thread, name, "Output of "+function, full); err != nil {
			b.log.Error("upload invocation output", "function", function, "request_id", requestID, "err", err)
			post(reply.Plain("I could not attach the full output (file upload failed); it is in the function's CloudWatch logs."))
		}
	}
	return ""
}

// invokeApproved runs an approved Lambda request. An invocation is not
// idempotent, so one that was in flight when the bot stopped is not run
// again: the thread says so and the request fails.
func (b *Bot) invokeApproved(ctx context.Context, id string, resume bool) {
	var interrupted bool
	r, err := b.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
		switch {
		case cur.State == computebot.RequestApproved:
			cur.State = computebot.RequestLaunching
		case cur.State == computebot.RequestLaunching && resume:
			interrupted = true
		default:
			return computebot.ErrConflict
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, computebot.ErrConflict) {
			b.log.Error("start approved invocation", "request_id", id, "err", err)
		}
		return
	}
	if interrupted {
		b.failLaunch(ctx, r, "the bot restarted while this invocation was running, so its result is unknown. Check the function's logs before invoking it again.", "Interrupted")
		return
	}
	why := b.runInvocation(ctx, r.Requester, r.ID, r.Function, r.Payload, r.Async, r.ChannelID, r.MessageTS)
	if why != "" {
		r, err = b.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
			cur.State, cur.Failure = computebot.RequestFailed, why
			return nil
		})
	} else {
		r, err = b.store.UpdateRequest(ctx, id, func(cur *computebot.Request) error {
			cur.State = computebot.RequestReady
			return nil
		})
	}
	if err != nil {
		b.log.Error("record invocation", "request_id", id, "err", err)
		return
	}
	b.refreshMessage(ctx, r)
}

// admitLambda checks that an approval-gated function exists and makes the
// request pending.
func (b *Bot) admitLambda(ctx context.Context, r *computebot.Request) *computebot.Request {
	actx, cancel := b.awsCtx(ctx)
	_, err := b.cloud.GetFunction(actx, r.Function)
	cancel()
	if err != nil {
		reason := policy.FunctionNotFound(r.Function)
		if !errors.Is(err, computebot.ErrNotFound) {
			reason = fmt.Sprintf("I could not look up `%s`: %s", r.Function, computebot.UserMessage(err))
		}
		b.refuse(ctx, r, reason)
		return nil
	}
	// Lambda requests always need an approver: never auto-approved.
	return b.settleNew(ctx, r.ID, false, nil)
}
