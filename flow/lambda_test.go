package flow_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/config"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

func fn(name string) computebot.Function {
	return computebot.Function{Name: name, Runtime: "python3.13", MemoryMB: 128, LastModified: epoch.Add(-24 * time.Hour), Description: "does " + name}
}

// TestLambdaList: only the allowlisted functions, by name, a page at a
// time.
func TestLambdaList(t *testing.T) {
	t.Run("allowlisted, sorted", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.addFunction(fn("report-weekly"), fn("secret-thing"), fn("deploy-prod"), fn("report-daily"))
		o := e.slashOrigin(eve)
		e.slash(o, "/lambda", "list")
		e.told(o, reply.FunctionList([]computebot.Function{fn("deploy-prod"), fn("report-daily"), fn("report-weekly")}, 0))
	})
	t.Run("Lambda fails", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.failAlways(cListFunctions, awsErr("AccessDenied", "the bot's role may not list functions.", false))
		o := e.slashOrigin(eve)
		e.slash(o, "/lambda", "list")
		e.told(o, reply.FunctionsListFailed("the bot's role may not list functions."))
	})
	t.Run("pages", func(t *testing.T) {
		e := newEnv(t)
		var fns []computebot.Function
		for i := range 45 {
			fns = append(fns, fn(fmt.Sprintf("report-%02d", i)))
		}
		e.cloud.addFunction(fns...)
		o := e.slashOrigin(eve)
		e.slash(o, "/lambda", "list")
		e.told(o, reply.FunctionList(fns, 0))
		value := nextPage(e.chat.private(o)[0].Msg)
		if value != "lambda||40" {
			t.Fatalf("next-page value %q", value)
		}
		for _, tc := range []struct {
			value string
			want  reply.Message
		}{{value, reply.FunctionList(fns, 40)}, {"lambda||45", reply.FunctionList(fns, 0)}} {
			c := e.clickOrigin(eve, channel, "")
			e.click(c, reply.ActionPage, tc.value, "1700000000.000001")
			e.told(c, tc.want)
		}
	})
}

// TestInvoke: /lambda invoke of a function that needs no approval: a
// public thread with the result, or a private answer when there is none.
func TestInvoke(t *testing.T) {
	long := `{"rows": "` + strings.Repeat("x", 4000) + `"}`
	ok := computebot.InvocationResult{StatusCode: 200, Payload: []byte(`{"ok": true}`), LogTail: "START\nEND\n", RequestID: "req-1"}
	for _, tc := range []struct {
		name   string
		opt    envOption
		thread string // typed in this thread (a mention); "" a slash command
		args   string
		setup  func(e *env)
		// result is what the thread says after the Invoked message.
		result func(e *env) []reply.Message
		upload string // uploaded content, if any
		audit  string // result and detail
	}{
		{
			name: "synchronous", args: `report-daily {"day": 1}`,
			setup:  func(e *env) { e.cloud.setInvoke(answer(ok, nil)) },
			result: func(*env) []reply.Message { m, _ := reply.InvokeResult("report-daily", ok); return []reply.Message{m} },
			audit:  "ok status 200, async false",
		},
		{
			name: "typed in a thread", thread: "1700000000.000555", args: `report-daily`,
			setup:  func(e *env) { e.cloud.setInvoke(answer(ok, nil)) },
			result: func(*env) []reply.Message { m, _ := reply.InvokeResult("report-daily", ok); return []reply.Message{m} },
			audit:  "ok status 200, async false",
		},
		{
			name: "asynchronous", args: `--async report-daily {"day": 1}`,
			setup: func(e *env) {
				e.cloud.setInvoke(answer(computebot.InvocationResult{StatusCode: 202, RequestID: "req-9"}, nil))
			},
			result: func(*env) []reply.Message {
				return []reply.Message{reply.InvokeAccepted("report-daily", computebot.InvocationResult{StatusCode: 202, RequestID: "req-9"})}
			},
			audit: "ok status 202, async true",
		},
		{
			name: "function error", args: `report-daily`,
			setup: func(e *env) {
				e.cloud.setInvoke(answer(computebot.InvocationResult{StatusCode: 200, FunctionError: "Unhandled", Payload: []byte(`{"errorMessage":"boom"}`)}, nil))
			},
			result: func(*env) []reply.Message {
				m, _ := reply.InvokeResult("report-daily", computebot.InvocationResult{StatusCode: 200, FunctionError: "Unhandled", Payload: []byte(`{"errorMessage":"boom"}`)})
				return []reply.Message{m}
			},
			audit: "FunctionError:Unhandled status 200, async false",
		},
		{
			name: "outlives lambda.timeout", args: `report-daily`,
			opt: withConfig(func(c *config.Config) { c.Lambda.Timeout = config.Duration(5 * time.Millisecond) }),
			setup: func(e *env) {
				e.cloud.setInvoke(func(ctx context.Context, _ computebot.Invocation) (computebot.InvocationResult, error) {
					<-ctx.Done()
					return computebot.InvocationResult{}, ctx.Err()
				})
			},
			result: func(*env) []reply.Message {
				return []reply.Message{reply.InvokeFailed("report-daily", reply.InvokeTimedOut(5*time.Millisecond))}
			},
			audit: "error " + reply.InvokeTimedOut(5*time.Millisecond),
		},
		{
			name: "AWS reports a timeout", args: `report-daily`,
			setup: func(e *env) {
				e.cloud.setInvoke(answer(computebot.InvocationResult{}, awsErr("Timeout", "timed out", true)))
			},
			result: func(*env) []reply.Message {
				return []reply.Message{reply.InvokeFailed("report-daily", reply.InvokeTimedOut(time.Minute))}
			},
			audit: "Timeout " + reply.InvokeTimedOut(time.Minute),
		},
		{
			name: "the invocation fails", args: `report-daily`,
			setup: func(e *env) {
				e.cloud.setInvoke(answer(computebot.InvocationResult{}, awsErr("TooManyRequestsException", "Lambda is throttling this function.", true)))
			},
			result: func(*env) []reply.Message {
				return []reply.Message{reply.InvokeFailed("report-daily", "Lambda is throttling this function.")}
			},
			audit: "TooManyRequestsException Lambda is throttling this function.",
		},
		{
			name: "long output is attached", args: `report-daily`,
			setup: func(e *env) {
				e.cloud.setInvoke(answer(computebot.InvocationResult{StatusCode: 200, Payload: []byte(long)}, nil))
			},
			result: func(*env) []reply.Message {
				m, _ := reply.InvokeResult("report-daily", computebot.InvocationResult{StatusCode: 200, Payload: []byte(long)})
				return []reply.Message{m}
			},
			upload: "Result:\n{\n  \"rows\": \"" + strings.Repeat("x", 4000) + "\"\n}\n\nLog:\n",
			audit:  "ok status 200, async false",
		},
		{
			name: "the attachment fails", args: `report-daily`,
			setup: func(e *env) {
				e.cloud.setInvoke(answer(computebot.InvocationResult{StatusCode: 200, Payload: []byte(long)}, nil))
				e.chat.failWith(mUpload, errors.New("slack: file upload failed"))
			},
			result: func(*env) []reply.Message {
				m, _ := reply.InvokeResult("report-daily", computebot.InvocationResult{StatusCode: 200, Payload: []byte(long)})
				return []reply.Message{m, reply.UploadFailed()}
			},
			audit: "ok status 200, async false",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []envOption
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			e := newEnv(t, opts...)
			e.cloud.addFunction(fn("report-daily"))
			tc.setup(e)
			o := e.slashOrigin(ana)
			var ans flow.Answer
			if tc.thread != "" {
				o = e.mentionOrigin(ana, channel, tc.thread)
				ans = e.mention(o, "lambda invoke "+tc.args)
			} else {
				ans = e.slash(o, "/lambda", "invoke "+tc.args)
			}
			if ans.Reply != nil || ans.Outcome != "accepted" {
				t.Fatalf("Accept = %+v", ans)
			}
			// Opened in the channel (or the thread typed in) …
			opened := e.chat.posts(channel, tc.thread)
			if tc.thread == "" && len(opened) != 1 || len(opened) == 0 {
				t.Fatalf("posts in %q: %q", tc.thread, texts(opened))
			}
			async := strings.Contains(tc.args, "--async")
			// The post carries its intent's key, so a rerun finds it instead of posting twice.
			invoked := reply.Invoked(ana, "report-daily", async)
			if !strings.HasPrefix(opened[0].Msg.Key, "invoked/") {
				t.Fatalf("invoked key = %q, want invoked/<intent>", opened[0].Msg.Key)
			}
			invoked.Key = opened[0].Msg.Key
			sameMessage(t, "invoked", opened[0].Msg, invoked)
			thread := tc.thread
			if thread == "" {
				thread = opened[0].TS
			}
			// … the result in the thread.
			got := e.chat.posts(channel, thread)
			if tc.thread != "" {
				got = got[1:]
			}
			want := tc.result(e)
			if len(got) != len(want) {
				t.Fatalf("thread %q, want %q", texts(got), msgTexts(want))
			}
			for i := range want {
				sameMessage(t, fmt.Sprintf("thread post %d", i), got[i].Msg, want[i])
			}
			ups := e.chat.where(func(c chatCall) bool { return c.Method == mUpload })
			switch {
			case tc.upload == "" && len(ups) != 0:
				t.Errorf("uploaded %+v", ups)
			case tc.upload != "":
				if len(ups) != 1 || ups[0].Content != tc.upload || ups[0].Channel != channel || ups[0].Thread != thread ||
					ups[0].Filename != reply.OutputFileName("report-daily", epoch) || ups[0].Title != reply.OutputFileTitle("report-daily") {
					t.Errorf("uploads %+v", ups)
				}
			}
			inv := e.cloud.invoked()
			if len(inv) != 1 || inv[0].Function != "report-daily" || inv[0].Async != async {
				t.Fatalf("invocations %+v", inv)
			}
			if strings.Contains(tc.args, `{"day": 1}`) && string(inv[0].Payload) != `{"day": 1}` {
				t.Errorf("payload %q, want it as typed", inv[0].Payload)
			}
			log := e.store.auditLog()
			if len(log) != 1 || log[0].Actor != ana || log[0].Action != "invoke" || log[0].Target != "report-daily" ||
				log[0].Result+" "+log[0].Detail != tc.audit {
				t.Errorf("audit %+v, want %q", log, tc.audit)
			}
			e.told(o)
		})
	}
}

func answer(res computebot.InvocationResult, err error) func(context.Context, computebot.Invocation) (computebot.InvocationResult, error) {
	return func(context.Context, computebot.Invocation) (computebot.InvocationResult, error) { return res, err }
}

// TestInvokeRefusals: nothing is invoked and nothing posted.
func TestInvokeRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  string
		setup func(e *env)
		inAck bool
		want  reply.Message
	}{
		{name: "outside the allowlist", args: "secret-thing", inAck: true, want: reply.FunctionNotFound("secret-thing")},
		{name: "missing", args: "report-gone", want: reply.FunctionNotFound("report-gone")},
		{
			name: "lookup fails", args: "report-daily",
			setup: func(e *env) {
				e.cloud.failAlways(cGetFunction, awsErr("AccessDenied", "the bot's role may not read functions.", false))
			},
			want: reply.LookupFailed("report-daily", "the bot's role may not read functions."),
		},
		{
			name: "not in the channel", args: "report-daily",
			setup: func(e *env) { e.chat.failWith(mPost, fmt.Errorf("channel_not_found: %w", flow.ErrNotInChannel)) },
			want:  reply.CannotPost(computebot.KindLambda, true),
		},
		{
			name: "posting fails", args: "report-daily",
			setup: func(e *env) { e.chat.failWith(mPost, errors.New("slack: fatal_error")) },
			want:  reply.CannotPost(computebot.KindLambda, false),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.addFunction(fn("report-daily"), fn("secret-thing"))
			if tc.setup != nil {
				tc.setup(e)
			}
			o := e.slashOrigin(ana)
			ans := e.slash(o, "/lambda", "invoke "+tc.args)
			if tc.inAck {
				if ans.Reply == nil || ans.Outcome != "refused" || ans.Job != nil {
					t.Fatalf("Accept = %+v", ans)
				}
				sameMessage(t, "ack", *ans.Reply, tc.want)
			} else {
				e.told(o, tc.want)
			}
			if n := len(e.cloud.invoked()); n != 0 {
				t.Errorf("%d invocations", n)
			}
			if posts := e.chat.allPosts(); len(posts) != 0 {
				t.Errorf("posted %q", texts(posts))
			}
			if e.store.count() != 0 {
				t.Error("a request was stored")
			}
		})
	}
	// The allowlist leaks nothing: a function outside it reads like a
	// missing one.
	outside := words(reply.Refusal(policy.Refusal{Code: policy.RefuseFunctionNotFound, Function: "secret-thing"}))
	missing := words(reply.FunctionNotFound("report-gone"))
	if strings.ReplaceAll(outside, "secret-thing", "X") != strings.ReplaceAll(missing, "report-gone", "X") {
		t.Errorf("outside the allowlist %q, missing %q: want the same words", outside, missing)
	}
}

// TestInvokeRulesChanged: a command accepted under one set of rules and run
// under another (the config was reloaded in between) follows the new ones:
// its job decides again. (That a refusal under the new rules is told is
// TestBugRefusedOnRerunUntold, in bugs_test.go: it is not.)
func TestInvokeRulesChanged(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(c *config.Config)
		request bool // it became a request to approve
	}{
		{"now needs approval", func(c *config.Config) { c.Lambda.RequireApproval = []string{"report-*"} }, true},
		{"now outside the allowlist", func(c *config.Config) { c.Lambda.AllowedFunctions = []string{"deploy-*"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.addFunction(fn("report-daily"))
			env, ans := e.accept(e.slashOrigin(ana), slashInput("/lambda", "invoke report-daily"))
			tc.change(e.cfg)
			e.f.Run(e.ctx, *ans.Job)
			if n := len(e.cloud.invoked()); n != 0 {
				t.Errorf("%d invocations", n)
			}
			r := e.store.last()
			if tc.request {
				if r == nil || r.State != sPending || r.Lambda == nil || r.Lambda.Function != "report-daily" {
					t.Fatalf("request %+v, want one pending for report-daily", r)
				}
				top := e.chat.posts(channel, "")
				if len(top) != 1 {
					t.Fatalf("top-level posts %q", texts(top))
				}
				sameMessage(t, "request message", top[0].Msg, reply.RequestMessage(r))
			} else if r != nil || len(e.chat.allPosts()) != 0 {
				t.Errorf("request %+v, posts %q: want neither", r, texts(e.chat.allPosts()))
			}
			if in := e.store.intent(env.ID); in.State != computebot.IntentDone {
				t.Errorf("intent %s, want done", in.State)
			}
		})
	}
}

// TestLambdaApproval: a function under lambda.require_approval goes
// through a request like a launch, and is invoked once approved.
func TestLambdaApproval(t *testing.T) {
	t.Run("approved and invoked", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.addFunction(fn("deploy-prod"))
		// The instance quota has nothing to do with Lambda.
		e.cloud.add(managed("i-00000000000000a01", ana, "a", computebot.InstanceRunning, epoch, "R-A"))
		e.cloud.add(managed("i-00000000000000a02", ana, "b", computebot.InstanceRunning, epoch, "R-B"))
		o := e.slashOrigin(ana)
		ans := e.slash(o, "/lambda", `invoke deploy-prod {"v": 2}`)
		if ans.Reply != nil || ans.Outcome != "accepted" {
			t.Fatalf("Accept = %+v", ans)
		}
		r := e.store.last()
		if r.State != sPending || r.Lambda == nil || r.Lambda.Function != "deploy-prod" || r.Lambda.Payload != `{"v": 2}` {
			t.Fatalf("stored %+v", r)
		}
		top := e.chat.posts(channel, "")
		if len(top) != 1 {
			t.Fatalf("top %q", texts(top))
		}
		sameMessage(t, "request message", top[0].Msg, reply.RequestMessage(r))
		contains(t, "request message", top[0].Msg, "asks to invoke Lambda function `deploy-prod`", "[Approve]")
		if n := len(e.cloud.invoked()); n != 0 {
			t.Fatalf("invoked before the approval")
		}

		e.decide(r, bo, true)
		r = e.store.get(r.ID)
		if got, want := e.store.states(r.ID), []computebot.RequestState{sNew, sPending, sApproved, sExecuting, sDone}; !slices.Equal(got, want) {
			t.Errorf("states %v, want %v", got, want)
		}
		inv := e.cloud.invoked()
		if len(inv) != 1 || string(inv[0].Payload) != `{"v": 2}` {
			t.Fatalf("invocations %+v", inv)
		}
		thread := e.chat.posts(channel, r.MessageTS)
		res, _ := reply.InvokeResult("deploy-prod", computebot.InvocationResult{StatusCode: 200, Payload: []byte(`{"ok":true}`), RequestID: "req-1"})
		sameMessage(t, "result", thread[len(thread)-1].Msg, res)
		ups := e.chat.updates(r.MessageTS)
		contains(t, "request message", ups[len(ups)-1].Msg, "Approved by @UBO — invoked (see thread)")
		if got, want := e.auditActions(), []string{"UBO approve ok", "UANA invoke deploy-prod ok"}; !slices.Equal(got, want) {
			t.Errorf("audit %q, want %q", got, want)
		}
	})
	t.Run("approved and failing", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.addFunction(fn("deploy-prod"))
		e.cloud.setInvoke(answer(computebot.InvocationResult{}, awsErr("ResourceConflictException", "the function is being updated.", false)))
		e.slash(e.slashOrigin(ana), "/lambda", `invoke deploy-prod`)
		r := e.store.last()
		e.decide(r, bo, true)
		r = e.store.get(r.ID)
		if r.State != sFailed || r.Failure != "the function is being updated." {
			t.Errorf("stored %s %q", r.State, r.Failure)
		}
		thread := e.chat.posts(channel, r.MessageTS)
		sameMessage(t, "failure", thread[len(thread)-1].Msg, reply.InvokeFailed("deploy-prod", "the function is being updated."))
		ups := e.chat.updates(r.MessageTS)
		contains(t, "request message", ups[len(ups)-1].Msg, "invocation failed (see thread)")
	})
	t.Run("denied", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.addFunction(fn("deploy-prod"))
		e.slash(e.slashOrigin(ana), "/lambda", `invoke deploy-prod`)
		r := e.store.last()
		e.decide(r, bo, false)
		if got := e.store.get(r.ID).State; got != sDenied {
			t.Errorf("state %s", got)
		}
		if n := len(e.cloud.invoked()); n != 0 {
			t.Errorf("%d invocations", n)
		}
	})
	t.Run("missing function", func(t *testing.T) {
		e := newEnv(t)
		o := e.slashOrigin(ana)
		e.slash(o, "/lambda", `invoke deploy-gone`)
		e.told(o, reply.FunctionNotFound("deploy-gone"))
		r := e.store.last()
		if r.State != sRefused {
			t.Errorf("state %s", r.State)
		}
		if posts := e.chat.allPosts(); len(posts) != 0 {
			t.Errorf("posted %q", texts(posts))
		}
	})
	t.Run("request message cannot be posted", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.addFunction(fn("deploy-prod"))
		e.chat.failWith(mPost, fmt.Errorf("not_in_channel: %w", flow.ErrNotInChannel))
		o := e.slashOrigin(ana)
		e.slash(o, "/lambda", `invoke deploy-prod`)
		e.told(o, reply.CannotPost(computebot.KindLambda, true))
		if r := e.store.last(); r.State != sRefused {
			t.Errorf("state %s", r.State)
		}
	})
}

// TestLambdaResume: an approved invocation runs after a restart; one that
// was in flight is never run again.
func TestLambdaResume(t *testing.T) {
	stored := func(state computebot.RequestState) *computebot.Request {
		return &computebot.Request{
			ID: "R-LAMBDA01", Requester: ana, ChannelID: channel, ResponseURL: "https://hooks.test/old", MessageTS: "1700000000.000100",
			State: state, DecidedBy: bo, DecidedAt: epoch, CreatedAt: epoch, ApprovalExpiresAt: epoch.Add(24 * time.Hour),
			Lambda: &computebot.LambdaRequest{Function: "deploy-prod", Payload: `{"v": 3}`},
		}
	}
	t.Run("approved", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.addFunction(fn("deploy-prod"))
		e.store.put(stored(sApproved))
		for _, j := range e.restart().Resume(e.ctx) {
			e.f.Run(e.ctx, j)
		}
		if got := e.store.get("R-LAMBDA01").State; got != sDone {
			t.Errorf("state %s", got)
		}
		if n := len(e.cloud.invoked()); n != 1 {
			t.Errorf("%d invocations, want 1", n)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		e := newEnv(t)
		e.cloud.addFunction(fn("deploy-prod"))
		e.store.put(stored(sExecuting))
		jobs := e.restart().Resume(e.ctx)
		if len(jobs) != 1 {
			t.Fatalf("%d jobs", len(jobs))
		}
		e.f.Run(e.ctx, jobs[0])
		r := e.store.get("R-LAMBDA01")
		if r.State != sFailed || r.Failure != reply.InvokeInterrupted() {
			t.Errorf("stored %s %q", r.State, r.Failure)
		}
		if n := len(e.cloud.invoked()); n != 0 {
			t.Errorf("%d invocations: an interrupted invocation must not run again", n)
		}
		thread := e.chat.posts(channel, r.MessageTS)
		if len(thread) != 1 {
			t.Fatalf("thread %q", texts(thread))
		}
		sameMessage(t, "failure", thread[0].Msg, reply.Failed(r))
		contains(t, "failure", thread[0].Msg, "the invocation of request `R-LAMBDA01` failed", "restarted while this invocation was running")
		if got := e.auditActions(); !slices.Equal(got, []string{"UBO invoke deploy-prod Interrupted"}) {
			t.Errorf("audit %q", got)
		}
		// Running the same job twice changes nothing.
		e.f.Run(e.ctx, jobs[0])
		if n := len(e.chat.posts(channel, r.MessageTS)); n != 1 {
			t.Errorf("thread has %d posts after a second run", n)
		}
	})
}
