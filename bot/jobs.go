package bot

import (
	"context"

	"github.com/computebot/computebot"
)

type jobKind int

const (
	jobNewRequest jobKind = iota // post a persisted request (or refuse it)
	jobApprove
	jobDeny
	jobLaunch // launch an approved request
)

// job is one unit of slow work, queued after the ack.
type job struct {
	kind      jobKind
	requestID string
	actor     string // who clicked
	channel   string // where they clicked
	threadTS  string
	resume    bool // picked up after a restart
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
		b.launch(ctx, j.requestID, j.resume)
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
