// Package bot is computebot's Slack adapter, and the only package that
// imports slack-go: the socket-mode loop and its acks, envelope
// de-duplication, Chat (the Web API in the workflows' terms), Block Kit
// rendering and the token checks of `computebot check`. What a command does
// is decided by the workflows (package flow); the bot turns envelopes into
// commands and the workflows' messages into Slack's.
//
// Every envelope follows one path: decode what was typed or clicked, hand
// it to the workflows' Accept (which parses it, checks what needs no I/O
// and persists it as an intent, with the answer, before anything else),
// ack with that answer, then queue the job Accept returned. A redelivered
// envelope is recognised by its stored intent and acked with the same
// answer. Nothing slow (AWS,
// most Slack calls) happens before the ack, so a slow AWS never makes Slack
// retry an envelope.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/computebot/computebot/flow"
)

// Observer sees what the adapter does, for metrics and readiness; the
// metrics package's type implements it.
type Observer interface {
	Connected()    // the socket-mode connection is up
	Disconnected() // … and down (an error, a disconnect request, a reconnect)
	Envelope(envelopeType string)
	// Ack reports the time from receiving an envelope to handing its ack
	// to the socket.
	Ack(envelopeType string, d time.Duration)
	// Command reports a command (typed, mentioned or clicked) and its
	// outcome: "accepted", "refused", "reply" or "ignored".
	Command(name, outcome string)
	// SlackCall reports a Web API HTTP request's method and status (0: a
	// transport error).
	SlackCall(method string, status int)
}

// Workflows is what the adapter hands envelopes to (package flow).
type Workflows interface {
	Accept(ctx context.Context, env flow.Envelope) flow.Answer
	Submit(j flow.Job)
}

// Options wire a Bot. What observes it is the Chat's Observer.
type Options struct {
	Chat      *Chat
	Workflows Workflows
	Logger    *slog.Logger
}

// Bot is the socket-mode side of computebot.
type Bot struct {
	chat     *Chat
	flow     Workflows
	observer Observer
	log      *slog.Logger
	socket   *socketmode.Client

	acking   chan struct{} // semaphore: envelopes between receipt and ack
	inflight sync.WaitGroup
	received sync.Map // envelope ID → time.Time, until its ack
}

// New checks opts and builds a Bot; Run starts it.
func New(opts Options) (*Bot, error) {
	if opts.Chat == nil || opts.Workflows == nil {
		return nil, errors.New("bot: Chat and Workflows are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	observer := opts.Chat.observer
	if observer == nil {
		observer = nopObserver{}
	}
	return &Bot{
		chat: opts.Chat, flow: opts.Workflows, observer: observer, log: opts.Logger,
		socket: socketmode.New(opts.Chat.api),
		acking: make(chan struct{}, 256),
	}, nil
}

// Run connects to Slack and serves until ctx ends; it returns once every
// envelope received has been acked and handed on. It returns an error when
// the socket-mode client gives up, and a *FatalTokenError at once when
// Slack refuses the app-level token for good (a revoked or wrong token,
// a missing scope: retrying cannot help); transient connection errors are
// retried by slack-go with backoff.
func (b *Bot) Run(ctx context.Context) error {
	sockCtx, cancelSock := context.WithCancel(ctx)
	defer cancelSock()
	sockErr := make(chan error, 1)
	go func() { sockErr <- b.socket.RunContext(sockCtx) }()

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-sockErr:
			if err != nil && ctx.Err() == nil {
				runErr = fmt.Errorf("bot: socket mode: %w", err)
				if f := fatal("SLACK_APP_TOKEN", err); f != nil {
					runErr = f
				}
			}
			break loop
		case evt := <-b.socket.Events:
			if evt.Type == socketmode.EventTypeConnectionError {
				if ce, ok := evt.Data.(*slack.ConnectionErrorEvent); ok {
					if f := fatal("SLACK_APP_TOKEN", ce.ErrorObj); f != nil {
						runErr = f
						break loop
					}
				}
			}
			b.handleEvent(sockCtx, evt)
		}
	}
	cancelSock()
	b.inflight.Wait() // they may still hand jobs on
	return runErr
}

type nopObserver struct{}

func (nopObserver) Connected()                {}
func (nopObserver) Disconnected()             {}
func (nopObserver) Envelope(string)           {}
func (nopObserver) Ack(string, time.Duration) {}
func (nopObserver) Command(string, string)    {}
func (nopObserver) SlackCall(string, int)     {}
