package bot

import (
	"context"
	"fmt"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/policy"
	"github.com/computebot/computebot/reply"
)

// runCommand runs a parsed command after its ack. Typed commands, mentions
// and button clicks all arrive here, each with the origin of whoever acted.
func (b *Bot) runCommand(ctx context.Context, o origin, cmd commands.Command) {
	switch c := cmd.(type) {
	case *commands.Instances:
		b.listInstances(ctx, o, c.All, 0)
	case pageCommand:
		if c.list == "lambda" {
			b.listFunctions(ctx, o, c.offset)
		} else {
			b.listInstances(ctx, o, c.all, c.offset)
		}
	case *commands.Stop:
		b.changeInstance(ctx, o, policy.ActionStop, c.Target, 0)
	case *commands.Start:
		b.changeInstance(ctx, o, policy.ActionStart, c.Target, 0)
	case *commands.Terminate:
		b.changeInstance(ctx, o, policy.ActionTerminate, c.Target, 0)
	case *commands.Extend:
		b.changeInstance(ctx, o, policy.ActionExtend, c.Target, c.Hours)
	case *commands.LambdaList:
		b.listFunctions(ctx, o, 0)
	case *commands.LambdaInvoke:
		b.invoke(ctx, o, c.Function, c.Payload, c.Async)
	case *commands.Status:
		b.status(ctx, o)
	case *commands.Idle:
		b.idleReport(ctx, o)
	case keepCommand:
		b.onNoticeButton(ctx, o, c.instanceID, true)
	case stopNowCommand:
		b.onNoticeButton(ctx, o, c.instanceID, false)
	case *commands.Help:
		b.tell(ctx, o, reply.Plain(commands.HelpText(c.Topic)))
	default:
		b.tell(ctx, o, reply.Plain(fmt.Sprintf("I can't run `%s` here. Try `/computebot help`.", cmd.CommandName())))
	}
}

// status answers "@computebot status" in a request's thread.
func (b *Bot) status(ctx context.Context, o origin) {
	if o.threadTS == "" {
		b.tell(ctx, o, reply.Plain("Ask `@computebot status` in a request's thread to hear where that request stands. `/instances` lists your instances."))
		return
	}
	reqs, err := b.store.Requests(ctx)
	if err != nil {
		b.log.Error("status: list requests", "err", err)
		b.tell(ctx, o, reply.Plain("I could not look that up (internal error); please try again."))
		return
	}
	for _, r := range reqs {
		if r.ChannelID == o.channel && r.MessageTS == o.threadTS {
			if _, err := b.chat.Post(ctx, o.channel, o.threadTS, reply.Status(r)); err != nil {
				b.log.Error("post status", "request_id", r.ID, "err", err)
			}
			return
		}
	}
	b.tell(ctx, o, reply.Plain("This thread is not one of my requests. Ask `@computebot status` in a request's thread."))
}

// requestThread is where news about an instance goes: the thread of the
// request that launched it, from its tags.
func requestThread(in computebot.Instance) (channel, threadTS string) {
	return in.Tags[computebot.TagChannel], in.Tags[computebot.TagThread]
}
