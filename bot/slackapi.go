package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/computebot/computebot/reply"
)

// chat is what the bot needs from Slack's Web API, in our own terms. The
// socket loop and the flows depend on this, not on *slack.Client, so they
// can be unit-tested with a fake.
type chat interface {
	Post(ctx context.Context, channel, threadTS string, m reply.Message) (ts string, err error)
	Update(ctx context.Context, channel, ts string, m reply.Message) error
	Ephemeral(ctx context.Context, channel, user, threadTS string, m reply.Message) error
	Respond(ctx context.Context, responseURL string, m reply.Message) error
	UserGroupMembers(ctx context.Context, group string) ([]string, error)
	Upload(ctx context.Context, channel, threadTS, filename, title, content string) error
	// DMChannel opens (or finds) the direct-message channel with a user.
	DMChannel(ctx context.Context, user string) (string, error)
}

// slackChat implements chat with slack-go. Rate-limited calls (HTTP 429) are
// retried after Slack's Retry-After, a bounded number of times.
type slackChat struct {
	api        *slack.Client
	httpClient *http.Client
	retries    int
}

func newSlackChat(api *slack.Client) *slackChat {
	return &slackChat{api: api, httpClient: &http.Client{Timeout: 10 * time.Second}, retries: 5}
}

func (s *slackChat) Post(ctx context.Context, channel, threadTS string, m reply.Message) (string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(m.Text, false), slack.MsgOptionBlocks(Blocks(m)...)}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	var ts string
	err := s.retry(ctx, func() error {
		var err error
		_, ts, err = s.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("slack: chat.postMessage to %s: %w", channel, err)
	}
	return ts, nil
}

func (s *slackChat) Update(ctx context.Context, channel, ts string, m reply.Message) error {
	err := s.retry(ctx, func() error {
		_, _, _, err := s.api.UpdateMessageContext(ctx, channel, ts,
			slack.MsgOptionText(m.Text, false), slack.MsgOptionBlocks(Blocks(m)...))
		return err
	})
	if err != nil {
		return fmt.Errorf("slack: chat.update %s/%s: %w", channel, ts, err)
	}
	return nil
}

func (s *slackChat) Ephemeral(ctx context.Context, channel, user, threadTS string, m reply.Message) error {
	opts := []slack.MsgOption{slack.MsgOptionText(m.Text, false), slack.MsgOptionBlocks(Blocks(m)...)}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	err := s.retry(ctx, func() error {
		_, err := s.api.PostEphemeralContext(ctx, channel, user, opts...)
		return err
	})
	if err != nil {
		return fmt.Errorf("slack: chat.postEphemeral to %s in %s: %w", user, channel, err)
	}
	return nil
}

// Respond posts an ephemeral reply through a response_url: it reaches the
// person even in channels the bot is not a member of.
func (s *slackChat) Respond(ctx context.Context, responseURL string, m reply.Message) error {
	blocks := slack.Blocks{BlockSet: Blocks(m)}
	msg := &slack.WebhookMessage{Text: m.Text, Blocks: &blocks, ResponseType: slack.ResponseTypeEphemeral}
	err := s.retry(ctx, func() error {
		return slack.PostWebhookCustomHTTPContext(ctx, responseURL, s.httpClient, msg)
	})
	if err != nil {
		// The URL carries a secret-ish token; say which call failed, not where.
		return fmt.Errorf("slack: response_url post: %w", err)
	}
	return nil
}

func (s *slackChat) UserGroupMembers(ctx context.Context, group string) ([]string, error) {
	var members []string
	err := s.retry(ctx, func() error {
		var err error
		members, err = s.api.GetUserGroupMembersContext(ctx, group)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("slack: usergroups.users.list %s: %w", group, err)
	}
	return members, nil
}

func (s *slackChat) retry(ctx context.Context, call func() error) error {
	for attempt := 0; ; attempt++ {
		err := call()
		var rl *slack.RateLimitedError
		if err == nil || !errors.As(err, &rl) || attempt >= s.retries {
			return err
		}
		wait := rl.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up waiting out a rate limit)", ctx.Err())
		case <-t.C:
		}
	}
}

// Upload attaches content as a file in a thread (files.getUploadURLExternal,
// the upload, files.completeUploadExternal), for output too long to post.
func (s *slackChat) Upload(ctx context.Context, channel, threadTS, filename, title, content string) error {
	_, err := s.api.UploadFileContext(ctx, slack.UploadFileParameters{
		Content: content, FileSize: len(content), Filename: filename, Title: title,
		Channel: channel, ThreadTimestamp: threadTS, SnippetType: "text",
	})
	if err != nil {
		return fmt.Errorf("slack: upload %s to %s: %w", filename, channel, err)
	}
	return nil
}

func (s *slackChat) DMChannel(ctx context.Context, user string) (string, error) {
	var ch *slack.Channel
	err := s.retry(ctx, func() error {
		var err error
		ch, _, _, err = s.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("slack: conversations.open with %s: %w", user, err)
	}
	return ch.ID, nil
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
