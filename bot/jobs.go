package bot

import (
	"context"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/reply"
)

type jobKind int

const (
	jobNewRequest jobKind = iota // post a persisted request (or refuse it)
	jobApprove
	jobDeny
	jobLaunch  // launch an approved request (or invoke an approved Lambda request)
	jobCommand // run a parsed command (instances, stop, lambda, …)
	jobTell    // answer someone privately (a refusal decided before the ack)
)

// job is one unit of slow work, queued after the ack.
type job struct {
	kind      jobKind
	requestID string
	resume    bool   // picked up after a restart
	origin    origin // who acted and where
	command   commands.Command
	text      string // jobTell
}

func (b *Bot) enqueue(j job) {
	b.jobs <- j
}

func (b *Bot) runJob(ctx context.Context, j job) {
	defer func() {
		// A bug in one request must not take the bot down with it.
		if p := recover(); p != nil {
			b.log.Error("job panicked", "request_id", j.requestID, "panic", p)
		}
	}()
	switch j.kind {
	case jobNewRequest:
		b.postRequest(ctx, j.requestID)
	case jobApprove, jobDeny:
		b.decide(ctx, j)
	case jobLaunch:
		b.proceed(ctx, j.requestID, j.resume)
	case jobCommand:
		b.runCommand(ctx, j.origin, j.command)
	case jobTell:
		b.tell(ctx, j.origin, reply.Plain(j.text))
	}
}

// resume picks up every request a previous run left unfinished.
func (b *Bot) resume(ctx context.Context) {
	reqs, err := b.store.Requests(ctx, computebot.RequestNew, computebot.RequestPending, computebot.RequestApproved,
		computebot.RequestLaunching, computebot.RequestLaunched)
	if err != nil {
		b.log.Error("resume: list requests", "err", err)
		return
	}
	for _, r := range reqs {
		if r.State != computebot.RequestPending {
			b.log.Info("resuming request", "request_id", r.ID, "state", r.State)
		}
		switch {
		case r.State == computebot.RequestPending && r.MessageTS != "":
			continue // stays approvable; the sweeper expires it
		case r.State == computebot.RequestNew, r.MessageTS == "":
			b.enqueue(job{kind: jobNewRequest, requestID: r.ID})
			continue
		}
		switch r.State {
		case computebot.RequestApproved, computebot.RequestLaunching:
			b.enqueue(job{kind: jobLaunch, requestID: r.ID, resume: true})
		case computebot.RequestLaunched:
			b.startWaiter(r.ID)
		}
	}
}

// proceed carries out an approved request: a launch, or a Lambda invocation.
func (b *Bot) proceed(ctx context.Context, id string, resume bool) {
	r, err := b.store.Request(ctx, id)
	if err != nil {
		b.log.Error("load approved request", "request_id", id, "err", err)
		return
	}
	if r.Kind == computebot.KindLambda {
		b.invokeApproved(ctx, id, resume)
		return
	}
	b.launch(ctx, id, resume)
}
