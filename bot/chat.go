package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/slack-go/slack"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/reply"
)

// Chat is Slack's Web API in the workflows' terms: it implements flow.Chat
// and policy.GroupMembers with slack-go. Rate-limited calls (HTTP 429) are
// retried after Slack's Retry-After by slack-go's own retry client.
type Chat struct {
	api        *slack.Client
	httpClient *http.Client // response_url posts
	observer   Observer     // nil: nothing observed
}

// responseURLMethod is the method name response_url posts are counted under.
const responseURLMethod = "response_url"

var _ flow.Chat = (*Chat)(nil)

// ChatOptions configure NewChat.
type ChatOptions struct {
	APIURL   string // default https://slack.com/api/
	BotToken string // xoxb-…
	AppToken string // xapp-…, for socket mode
	// Observer, when set, sees each Web API HTTP request's method and
	// status.
	Observer Observer
}

// rateLimitRetries is how often one call waits out a 429 before giving up:
// enough to ride out a burst (100 idle notices), not a stuck workspace.
const rateLimitRetries = 5

// NewChat builds the Web API client.
func NewChat(o ChatOptions) *Chat {
	if o.APIURL == "" {
		o.APIURL = slack.APIURL
	}
	transport, webhooks := http.DefaultTransport, http.DefaultTransport
	if o.Observer != nil {
		transport = countingTransport{next: transport, report: o.Observer.SlackCall}
		// A response URL ends in a secret (it lets anyone post into the
		// channel): its calls are counted under one fixed name.
		webhooks = countingTransport{next: webhooks, report: func(_ string, status int) { o.Observer.SlackCall(responseURLMethod, status) }}
	}
	api := slack.New(o.BotToken,
		slack.OptionAPIURL(o.APIURL),
		slack.OptionAppLevelToken(o.AppToken),
		slack.OptionHTTPClient(&http.Client{Transport: transport}),
		// After OptionHTTPClient: the retry client wraps it. No jitter:
		// Retry-After already spreads the callers of one workspace.
		slack.OptionRetryConfig(slack.RetryConfig{MaxRetries: rateLimitRetries, RetryAfterDuration: time.Second}),
	)
	return &Chat{api: api, observer: o.Observer, httpClient: &http.Client{Timeout: 10 * time.Second, Transport: webhooks}}
}

// slackError names the call that failed and, for Slack's "not in channel"
// answers, wraps flow.ErrNotInChannel so the workflows can say "invite me".
func slackError(err error, format string, args ...any) error {
	var se slack.SlackErrorResponse
	var rl *slack.RateLimitedError
	switch {
	case errors.As(err, &se) && (se.Err == "not_in_channel" || se.Err == "channel_not_found"):
		err = fmt.Errorf("%w: %w", flow.ErrNotInChannel, err)
	case errors.As(err, &rl):
		err = fmt.Errorf("%w: %w", flow.ErrRateLimited, err)
	}
	return fmt.Errorf("slack: "+format+": %w", append(args, err)...)
}

// metadataEvent is the event_type of the message metadata that carries a
// message's key (reply.Message.Key).
const metadataEvent = "computebot_message"

func messageOptions(threadTS string, m reply.Message) []slack.MsgOption {
	opts := []slack.MsgOption{slack.MsgOptionText(Text(m.Text), false), slack.MsgOptionBlocks(Blocks(m)...)}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	if m.Key != "" {
		opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{EventType: metadataEvent, EventPayload: map[string]any{"key": m.Key}}))
	}
	return opts
}

func (c *Chat) Post(ctx context.Context, channel, threadTS string, m reply.Message) (string, error) {
	_, ts, err := c.api.PostMessageContext(ctx, channel, messageOptions(threadTS, m)...)
	if err != nil {
		return "", slackError(err, "chat.postMessage to %s", channel)
	}
	return ts, nil
}

func (c *Chat) Update(ctx context.Context, channel, ts string, m reply.Message) error {
	if _, _, _, err := c.api.UpdateMessageContext(ctx, channel, ts, messageOptions("", m)...); err != nil {
		return slackError(err, "chat.update %s/%s", channel, ts)
	}
	return nil
}

func (c *Chat) Ephemeral(ctx context.Context, channel, user, threadTS string, m reply.Message) error {
	if _, err := c.api.PostEphemeralContext(ctx, channel, user, messageOptions(threadTS, m)...); err != nil {
		return slackError(err, "chat.postEphemeral to %s in %s", user, channel)
	}
	return nil
}

// Respond posts an ephemeral reply through a response_url: it reaches the
// person even in channels the bot is not a member of.
func (c *Chat) Respond(ctx context.Context, responseURL string, m reply.Message) error {
	blocks := slack.Blocks{BlockSet: Blocks(m)}
	msg := &slack.WebhookMessage{Text: Text(m.Text), Blocks: &blocks, ResponseType: slack.ResponseTypeEphemeral}
	if err := slack.PostWebhookCustomHTTPContext(ctx, responseURL, c.httpClient, msg); err != nil {
		// The URL carries a secret-ish token; say which call failed, not where.
		return fmt.Errorf("slack: response_url post: %w", err)
	}
	return nil
}

// UserGroupMembers resolves a user group (policy.GroupMembers).
func (c *Chat) UserGroupMembers(ctx context.Context, group string) ([]string, error) {
	members, err := c.api.GetUserGroupMembersContext(ctx, group)
	if err != nil {
		return nil, slackError(err, "usergroups.users.list %s", group)
	}
	return members, nil
}

// Upload attaches content as a file in a thread (files.getUploadURLExternal,
// the upload, files.completeUploadExternal), for output too long to post.
func (c *Chat) Upload(ctx context.Context, channel, threadTS, filename, title, content string) error {
	_, err := c.api.UploadFileContext(ctx, slack.UploadFileParameters{
		Content: content, FileSize: len(content), Filename: filename, Title: reply.PlainText(title),
		Channel: channel, ThreadTimestamp: threadTS, SnippetType: "text",
	})
	if err != nil {
		return slackError(err, "upload %s to %s", filename, channel)
	}
	return nil
}

// historyPage is how many messages one conversations.history or
// conversations.replies call asks for.
const historyPage = 200

// FindMessage finds the bot's message whose metadata carries key, in a
// channel's history (or a thread's replies) since a moment: Slack has no
// idempotency key for posts, so this is how a post a crashed run made is
// found again. An error wrapping computebot.ErrNotFound when there is none.
func (c *Chat) FindMessage(ctx context.Context, channel, threadTS, key string, since time.Time) (string, error) {
	oldest := strconv.FormatFloat(float64(since.UnixMicro())/1e6, 'f', 6, 64)
	cursor := ""
	for {
		var (
			msgs    []slack.Message
			hasMore bool
			next    string
			err     error
		)
		if threadTS != "" {
			msgs, hasMore, next, err = c.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
				ChannelID: channel, Timestamp: threadTS, Oldest: oldest, Cursor: cursor, Limit: historyPage, IncludeAllMetadata: true})
		} else {
			var h *slack.GetConversationHistoryResponse
			h, err = c.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
				ChannelID: channel, Oldest: oldest, Cursor: cursor, Limit: historyPage, IncludeAllMetadata: true})
			if h != nil {
				msgs, hasMore, next = h.Messages, h.HasMore, h.ResponseMetaData.NextCursor
			}
		}
		if err != nil {
			return "", slackError(err, "look for message %s in %s", key, channel)
		}
		for _, m := range msgs {
			if m.Metadata.EventType == metadataEvent && m.Metadata.EventPayload["key"] == key {
				return m.Timestamp, nil
			}
		}
		if !hasMore || next == "" {
			return "", fmt.Errorf("slack: message %s in %s: %w", key, channel, computebot.ErrNotFound)
		}
		cursor = next
	}
}

// CheckTokens proves the bot token with auth.test before the bot starts:
// a *FatalTokenError when Slack refuses it for good. Other failures (Slack
// unreachable) are not fatal here: the Web API calls retry on their own.
func (c *Chat) CheckTokens(ctx context.Context) error {
	if _, err := c.CheckBotToken(ctx); err != nil {
		if f := fatal("SLACK_BOT_TOKEN", err); f != nil {
			return f
		}
	}
	return nil
}

// DM opens (or finds) the direct-message channel with a user.
func (c *Chat) DM(ctx context.Context, user string) (string, error) {
	ch, _, _, err := c.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}})
	if err != nil {
		return "", slackError(err, "conversations.open with %s", user)
	}
	return ch.ID, nil
}
