package bot

import (
	"context"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/reply"
)

// origin is who acted, where, and how to answer them privately. Slash
// commands, button clicks and mentions all reduce to one, so they share a
// single pipeline after the ack.
type origin struct {
	user     string
	channel  string
	threadTS string // the thread they typed or clicked in; "" at top level
	// responseURL answers privately even in channels the bot is not a
	// member of (slash commands, clicks); mentions have none.
	responseURL string
}

// originOf is the requester's side of a stored request.
func originOf(r *computebot.Request) origin {
	return origin{user: r.Requester, channel: r.ChannelID, responseURL: r.ResponseURL}
}

// tell answers the person who acted, and only them.
func (b *Bot) tell(ctx context.Context, o origin, m reply.Message) {
	var err error
	if o.responseURL != "" {
		err = b.chat.Respond(ctx, o.responseURL, m)
	} else {
		err = b.chat.Ephemeral(ctx, o.channel, o.user, o.threadTS, m)
	}
	if err != nil {
		b.log.Error("private reply failed", "user", o.user, "channel", o.channel, "err", err)
	}
}
