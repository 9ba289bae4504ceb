package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/computebot/computebot/bot"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/internal/dynamotest"
	"github.com/computebot/computebot/internal/fakeslack"
)

// BenchmarkAckLatency sends /launch envelopes at 200 per second while every
// AWS call takes 2 s. It reports the latency from the envelope being
// written by the fake Slack to the bot's ack being read back (p50-ms,
// p99-ms: both websocket hops and slack-go included), and inside the bot
// from receiving the envelope to writing its ack (bot-p50-ms, bot-p99-ms).
//
//	go test -run '^$' -bench AckLatency -benchtime 1x ./cmd/computebot/
func BenchmarkAckLatency(b *testing.B) {
	benchAckLatency(b, func(tune func(*Main)) *bed { return newBedWith(b, tune, withAWSCallTimeout(30*time.Second)) })
}

// BenchmarkAckLatencyDynamoDB is BenchmarkAckLatency on the DynamoDB store,
// against moto on 127.0.0.1: a local emulator's latency, not DynamoDB's
// (a call within an AWS region takes a few milliseconds; each accepted
// /launch makes two, its open marker and its intent).
//
//	go test -run '^$' -bench AckLatencyDynamoDB -benchtime 1x ./cmd/computebot/
func BenchmarkAckLatencyDynamoDB(b *testing.B) {
	for _, name := range []string{"moto", "dynalite"} {
		b.Run(name, func(b *testing.B) {
			benchAckLatency(b, func(tune func(*Main)) *bed {
				srv := dynamotest.Moto(b)
				if name == "dynalite" {
					srv = dynamotest.Dynalite(b)
				}
				table := dynamotest.NewTable(b, srv)
				b.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.Endpoint)
				return newBedWith(b, tune, withAWSCallTimeout(30*time.Second), withConfig(dynamoConfig(table)))
			})
		})
	}
}

func benchAckLatency(b *testing.B, newBed func(tune func(*Main)) *bed) {
	const (
		rate     = 200 // envelopes per second
		duration = 3 * time.Second
	)
	var mu sync.Mutex
	var inBot []time.Duration
	bed := newBed(func(m *Main) {
		m.WrapObserver = func(o bot.Observer) bot.Observer {
			return ackTimes{o, func(d time.Duration) { mu.Lock(); inBot = append(inBot, d); mu.Unlock() }}
		}
	})
	bed.aws.SetLatency("", 2*time.Second)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		n := int(rate * duration / time.Second)
		envs := make([]string, 0, n)
		tick := time.NewTicker(time.Second / rate)
		for i := range n {
			<-tick.C
			env, err := bed.slack.SendSlashCommand(fakeslack.SlashCommand{Command: "/launch", Text: "t2.micro --hours 2",
				UserID: fmt.Sprintf("UBENCH%04d", i), ChannelID: channel})
			if err != nil {
				b.Fatal(err)
			}
			envs = append(envs, env)
		}
		tick.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, env := range envs {
			ack, err := bed.slack.WaitAck(ctx, env)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, ack.ReceivedAt.Sub(ack.SentAt))
		}
		cancel()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(len(lat)), "envelopes")
	// The same, measured inside the bot: from the envelope reaching the
	// bot's event loop to its ack being handed to the socket.
	mu.Lock()
	slices.Sort(inBot)
	b.ReportMetric(ms(percentile(inBot, 50)), "bot-p50-ms")
	b.ReportMetric(ms(percentile(inBot, 99)), "bot-p99-ms")
	mu.Unlock()
}

// BenchmarkRunningToReply measures the delay between the fake EC2 turning
// an instance running and the bot posting its IP reply, with the bot's
// production poll interval. Launches run concurrently.
//
//	go test -run '^$' -bench RunningToReply -benchtime 1x ./cmd/computebot/
func BenchmarkRunningToReply(b *testing.B) {
	const launches = 10
	bed := newBed(b, withTimings(func(o *flow.Options) { o.PollInterval = 0 }), // the default
		withConfig(strings.Replace(baseConfig, "max_running_per_user: 3", "max_running_per_user: 100", 1)))
	const pending = 2500 * time.Millisecond
	bed.aws.SetRunningDelay(pending)
	var delays []time.Duration
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range launches {
			wg.Add(1)
			go func() {
				defer wg.Done()
				bed.slash(ana, "/launch", "t3.medium") // auto-approved
			}()
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		for {
			mu.Lock()
			done := readyReplies(bed) >= launches*(len(delays)/launches+1)
			mu.Unlock()
			if done || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		delays = delays[:0]
		for _, inst := range bed.aws.Instances() {
			running := inst.LaunchTime.Add(pending)
			for _, c := range bed.slack.Calls("chat.postMessage") {
				if strings.Contains(c.Params["text"], inst.ID+" is running") {
					delays = append(delays, c.Time.Sub(running))
				}
			}
		}
	}
	b.StopTimer()
	if len(delays) == 0 {
		b.Fatal("no IP replies")
	}
	slices.Sort(delays)
	b.ReportMetric(ms(percentile(delays, 50)), "p50-ms")
	b.ReportMetric(ms(delays[len(delays)-1]), "max-ms")
	b.ReportMetric(float64(len(delays)), "instances")
}

// ackTimes records each ack's latency inside the bot, besides observing it.
type ackTimes struct {
	bot.Observer
	add func(time.Duration)
}

func (a ackTimes) Ack(envelopeType string, d time.Duration) {
	a.add(d)
	a.Observer.Ack(envelopeType, d)
}

func readyReplies(bed *bed) int {
	n := 0
	for _, c := range bed.slack.Calls("chat.postMessage") {
		if strings.Contains(c.Params["text"], " is running") {
			n++
		}
	}
	return n
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
