//go:build !nodemo

package main

// computebot demo: the real bot (Main, with the same bot, commands, aws and
// store code) against the in-process fake Slack and fake AWS, with the
// terminal as the Slack channel. See runDemo.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/internal/fakeaws"
	"github.com/computebot/computebot/internal/fakeslack"
)

// The demo workspace.
const (
	demoChannel     = "CDEMO"
	demoChannelName = "data-science"
	demoIdleID      = "i-0de0000000000001d"
)

// demoUsers are the people the terminal can be (/as NAME); bo approves.
var demoUsers = []struct{ id, name string }{{"UANA", "ana"}, {"UBO", "bo"}, {"UCARL", "carl"}}

const demoConfig = `
approvers: [UBO]
approval_ttl: 24h
launch:
  allowed_types: [t2.micro, t3.small, t3.medium]
  ami: ami-0123456789abcdef0
  key_name: demo
  max_running_per_user: 3
  default_ttl: 8h
idle:
  schedule: "@every 5s"
  cpu_below_percent: 5
  for: 1h
  grace: 20s
  snooze: 4h
  metrics_delay: 0s
store:
  path: %s
`

// Timings of the non-interactive mode: after each input line the demo waits
// until nothing has happened for demoQuiet (no Slack or AWS call, no ack),
// at most demoQuietCap; a typed button label that is not there yet is waited
// for up to demoButtonWait (the idle notice comes on the scheduler's time).
var (
	demoQuiet      = 300 * time.Millisecond
	demoQuietCap   = 20 * time.Second
	demoButtonWait = 20 * time.Second
)

// runDemo runs `computebot demo`: it reads lines from stdin (slash commands,
// button labels, the demo's own /as, /help and /quit) and writes the channel
// as it changes to stdout. It returns the process exit code.
func runDemo(args []string, stdin io.Reader, stdout io.Writer) int {
	fs := flag.NewFlagSet("computebot demo", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: computebot demo\n\nRuns the bot against an in-process fake Slack and fake AWS; the terminal is the\nSlack channel. No tokens, no network. Type /help once it runs.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stdout, "computebot demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	d, err := startDemo(stdout, demoInteractive(stdin))
	if err != nil {
		fmt.Fprintln(stdout, "computebot demo:", err)
		return 1
	}
	code := d.loop(stdin)
	if err := d.close(); err != nil {
		fmt.Fprintln(stdout, "computebot demo:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

type demo struct {
	out         io.Writer
	interactive bool
	dir         string
	slack       *fakeslack.Server
	aws         *fakeaws.Server
	main        *Main
	restoreEnv  func()
	log         *os.File
	names       map[string]string // user ID → name

	mu   sync.Mutex // guards what follows and writes to out
	user string     // who the terminal is
	view *channelView
}

// demoInteractive reports whether stdin is a person at a terminal: then the
// channel is printed as it changes instead of after each line; tests replace it.
var demoInteractive = isTerminal

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func startDemo(out io.Writer, interactive bool) (d *demo, err error) {
	dir, err := os.MkdirTemp("", "computebot-demo-")
	if err != nil {
		return nil, err
	}
	d = &demo{out: out, interactive: interactive, dir: dir, slack: fakeslack.New(), aws: fakeaws.New(),
		names: map[string]string{fakeslack.BotUserID: fakeslack.BotName}, user: "UANA"}
	defer func() {
		if err != nil {
			_ = d.close()
		}
	}()
	for _, u := range demoUsers {
		d.slack.AddUser(u.id, u.name)
		d.names[u.id] = u.name
	}
	d.slack.AddChannel(demoChannel, demoChannelName)
	d.aws.SetRunningDelay(1500 * time.Millisecond) // long enough to see "pending"
	d.aws.AddFunction(fakeaws.Function{Name: "demo-hello", Description: "echoes its payload"})
	d.view = newChannelView(d.names)

	// The AWS SDK reads its configuration from the process environment.
	d.restoreEnv = setEnv(map[string]string{
		"AWS_ENDPOINT_URL":            d.aws.URL(),
		"AWS_REGION":                  "us-east-1",
		"AWS_ACCESS_KEY_ID":           "AKIDDEMO",
		"AWS_SECRET_ACCESS_KEY":       "SECRETDEMO",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_MAX_ATTEMPTS":            "1",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "no-aws-credentials"),
	})

	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(demoConfig, filepath.Join(dir, "computebot.db"))), 0o600); err != nil {
		return d, err
	}
	if err := d.seedIdle(); err != nil {
		return d, fmt.Errorf("seeding the idle instance: %w", err)
	}

	if d.log, err = os.Create(filepath.Join(dir, "computebot.log")); err != nil {
		return d, err
	}
	m := NewMain()
	m.Stderr = d.log // the bot's JSON logs stay out of the conversation
	env := map[string]string{
		"SLACK_BOT_TOKEN": "xoxb-demo-bot-token",
		"SLACK_APP_TOKEN": "xapp-demo-app-token",
		"SLACK_API_URL":   d.slack.APIURL(),
	}
	m.Getenv = func(k string) string { return env[k] }
	m.Timings = flow.Options{PollInterval: 100 * time.Millisecond, RetryBackoff: 50 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second, NoticeInterval: 50 * time.Millisecond}
	m.IdleCheckEvery = time.Second
	// No operations endpoint in the demo: it must start on a machine where
	// port 9090 is taken, and two demos must run side by side.
	if err := m.ParseFlags([]string{"--config", cfgPath, "--listen", ""}); err != nil {
		return d, err
	}
	if err := m.Run(context.Background()); err != nil {
		return d, err
	}
	d.main = m
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.slack.WaitConnected(ctx); err != nil {
		return d, fmt.Errorf("the bot did not connect to the fake Slack: %w", err)
	}
	return d, nil
}

// seedIdle posts a request thread and adds the instance it launched three
// hours ago, idle since: the scheduler's first scans find it.
func (d *demo) seedIdle() error {
	form := url.Values{
		"token":   {"xoxb-demo-bot-token"},
		"channel": {demoChannel},
		"text": {fakeslack.UserMention("UANA") + " requests 1 × `t3.small` — Approved by " + fakeslack.UserMention("UBO") +
			" — `" + demoIdleID + "` running since 3 h (seeded by the demo; it has been idle all along)"},
	}
	resp, err := http.PostForm(d.slack.APIURL()+"chat.postMessage", form)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		OK    bool   `json:"ok"`
		TS    string `json:"ts"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return err
	}
	if !r.OK {
		return errors.New(r.Error)
	}
	now := time.Now()
	d.aws.AddInstance(fakeaws.Instance{ID: demoIdleID, Type: "t3.small", State: "running", LaunchTime: now.Add(-3 * time.Hour),
		ImageID: "ami-0123456789abcdef0", KeyName: "demo",
		Tags: map[string]string{"computebot:managed": "true", "computebot:owner": "UANA", "Name": "ana-notebook",
			"computebot:channel": demoChannel, "computebot:thread": r.TS, "computebot:request": "R-DEMO01",
			"computebot:expires-at": now.Add(5 * time.Hour).UTC().Format(time.RFC3339)}})
	// Low, flat metrics from 3 h ago to 3 h ahead, so the demo can run a while.
	start := now.Add(-3 * time.Hour).Truncate(5 * time.Minute)
	n := int(6*time.Hour/(5*time.Minute)) + 1
	series := func(v float64) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	d.aws.SetMetricSeries(demoIdleID, "CPUUtilization", start, 5*time.Minute, series(0.8))
	d.aws.SetMetricSeries(demoIdleID, "NetworkIn", start, 5*time.Minute, series(12_000))
	d.aws.SetMetricSeries(demoIdleID, "NetworkOut", start, 5*time.Minute, series(9_000))
	return nil
}

// setEnv sets the variables ("" unsets) and returns what restores them.
func setEnv(vars map[string]string) (restore func()) {
	type old struct {
		v   string
		set bool
	}
	saved := map[string]old{}
	for k, v := range vars {
		ov, set := os.LookupEnv(k)
		saved[k] = old{ov, set}
		if v == "" {
			_ = os.Unsetenv(k)
		} else {
			_ = os.Setenv(k, v)
		}
	}
	return func() {
		for k, o := range saved {
			if o.set {
				_ = os.Setenv(k, o.v)
			} else {
				_ = os.Unsetenv(k)
			}
		}
	}
}

func (d *demo) close() error {
	var err error
	if d.main != nil {
		err = d.main.Close()
	}
	if d.log != nil {
		err = errors.Join(err, d.log.Close())
	}
	d.slack.Close()
	d.aws.Close()
	if d.restoreEnv != nil {
		d.restoreEnv()
	}
	return errors.Join(err, os.RemoveAll(d.dir))
}

func (d *demo) loop(stdin io.Reader) int {
	d.mu.Lock()
	fmt.Fprintf(d.out, "computebot demo: the real bot against a fake Slack and a fake AWS (nothing leaves this machine).\n"+
		"This terminal is #%s. You are @ana; @bo is an approver; @carl is not. Type /help.\n"+
		"An instance of ana's has been idle for 3 h: the idle check (every 5 s here) will ask about it.\n", demoChannelName)
	d.view.render(d.out, d.slack.Messages(demoChannel), d.user)
	d.prompt()
	d.mu.Unlock()

	lines, stop := make(chan string), make(chan struct{})
	defer close(stop)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stop:
				return
			}
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)

	var tick <-chan time.Time
	if d.interactive {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-sig:
			d.say("\nbye (interrupted)")
			return 0
		case <-tick:
			// Something happened while the person was at the prompt: clear
			// the prompt's line, print it, and prompt again.
			d.mu.Lock()
			var buf strings.Builder
			if d.view.render(&buf, d.slack.Messages(demoChannel), d.user) {
				fmt.Fprint(d.out, "\r\033[K"+buf.String())
				d.prompt()
			}
			d.mu.Unlock()
		case line, ok := <-lines:
			if !ok {
				d.say("\nbye")
				return 0
			}
			if !d.interactive {
				d.mu.Lock()
				fmt.Fprintln(d.out, line) // echo after the prompt, like a terminal would
				d.mu.Unlock()
			}
			if quit := d.handle(strings.TrimSpace(line)); quit {
				d.say("bye")
				return 0
			}
			if d.interactive {
				d.waitQuiet(3 * time.Second) // the ticker shows what comes later
			} else {
				d.waitQuiet(demoQuietCap)
			}
			d.mu.Lock()
			d.view.render(d.out, d.slack.Messages(demoChannel), d.user)
			d.prompt()
			d.mu.Unlock()
		}
	}
}

func (d *demo) prompt() { fmt.Fprintf(d.out, "%s> ", d.names[d.user]) }

func (d *demo) say(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format+"\n", args...)
}

// handle runs one input line; it reports whether the demo should end.
func (d *demo) handle(line string) (quit bool) {
	if line == "" {
		return false
	}
	verb, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case verb == "/quit" || verb == "/exit":
		return true
	case verb == "/help":
		d.say("%s", demoHelp())
	case verb == "/as":
		d.switchUser(rest)
	case strings.HasPrefix(verb, "/"):
		if !isBotCommand(verb) {
			d.say("  %s is not a command here. Type /help.", verb)
			return false
		}
		d.mu.Lock()
		user := d.user
		d.mu.Unlock()
		if _, err := d.slack.SendSlashCommand(fakeslack.SlashCommand{Command: verb, Text: rest, UserID: user,
			UserName: d.names[user], ChannelID: demoChannel, ChannelName: demoChannelName}); err != nil {
			d.say("  (could not send %s: %v)", verb, err)
		}
	case strings.EqualFold(verb, "@computebot") || strings.EqualFold(verb, "@"+fakeslack.BotName+":"):
		d.mu.Lock()
		user := d.user
		d.mu.Unlock()
		if _, err := d.slack.SendMention(fakeslack.Mention{UserID: user, ChannelID: demoChannel, Text: fakeslack.UserMention(fakeslack.BotUserID) + " " + rest}); err != nil {
			d.say("  (could not send the mention: %v)", err)
		}
	default:
		d.click(line)
	}
	return false
}

func (d *demo) switchUser(name string) {
	name = strings.TrimPrefix(strings.ToLower(name), "@")
	for _, u := range demoUsers {
		if u.name == name {
			d.mu.Lock()
			d.user = u.id
			d.mu.Unlock()
			role := "not an approver"
			if u.id == "UBO" {
				role = "an approver"
			}
			d.say("  (you are now @%s, %s)", u.name, role)
			return
		}
	}
	var names []string
	for _, u := range demoUsers {
		names = append(names, u.name)
	}
	d.say("  (no user %q; try /as %s)", name, strings.Join(names, ", /as "))
}

// click presses the button labelled label (any case) on the newest message
// that has one. Non-interactively it waits for such a button to appear.
func (d *demo) click(label string) {
	deadline := time.Now().Add(demoButtonWait)
	for waited := false; ; waited = true {
		ts, text, ok := d.findButton(label)
		if ok {
			d.mu.Lock()
			user := d.user
			if waited { // show the message before its button is pressed
				d.view.render(d.out, d.slack.Messages(demoChannel), user)
			}
			d.mu.Unlock()
			if _, err := d.slack.Click(user, demoChannel, ts, text); err != nil {
				d.say("  (could not click [%s]: %v)", text, err)
			}
			return
		}
		if d.interactive || time.Now().After(deadline) {
			d.say("  (no message has a [%s] button; type a button's label to click it, or /help)", label)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *demo) findButton(label string) (ts, text string, ok bool) {
	msgs := d.slack.Messages(demoChannel)
	slices.SortStableFunc(msgs, func(a, b fakeslack.Message) int { return strings.Compare(a.TS, b.TS) })
	for i := len(msgs) - 1; i >= 0; i-- {
		for _, b := range d.slack.Buttons(demoChannel, msgs[i].TS) {
			if strings.EqualFold(strings.TrimSpace(b), label) {
				return msgs[i].TS, b, true
			}
		}
	}
	return "", "", false
}

// activity counts everything the bot does that the demo can see: Slack
// calls, acks and AWS calls.
func (d *demo) activity() int {
	return len(d.slack.AllCalls()) + len(d.slack.Acks()) + len(d.aws.Calls(""))
}

// waitQuiet waits until nothing has happened for demoQuiet, at most maxWait.
func (d *demo) waitQuiet(maxWait time.Duration) {
	capAt := time.Now().Add(maxWait)
	last, lastChange := d.activity(), time.Now()
	for time.Now().Before(capAt) {
		time.Sleep(25 * time.Millisecond)
		if n := d.activity(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= demoQuiet {
			return
		}
	}
}

func isBotCommand(verb string) bool {
	if verb == "/computebot" {
		return true
	}
	for _, def := range commands.Definitions() {
		if strings.HasPrefix(def.Usage, verb+" ") || def.Usage == verb {
			return true
		}
	}
	return false
}

func demoHelp() string {
	var b strings.Builder
	b.WriteString("  The demo's own commands:\n")
	b.WriteString("    /as NAME       be someone else: ana, bo (an approver) or carl\n")
	b.WriteString("    /help          this list\n")
	b.WriteString("    /quit          end the demo (Ctrl-D too)\n")
	b.WriteString("    LABEL          click the button LABEL on the newest message that has it: approve, deny, keep running, stop now\n")
	b.WriteString("    @computebot …  mention the bot: @computebot status\n")
	b.WriteString("  The bot's commands:\n")
	for _, def := range commands.Definitions() {
		fmt.Fprintf(&b, "    %s\n        %s\n", def.Usage, def.Summary)
	}
	b.WriteString("  /computebot help COMMAND shows a command's details.")
	return b.String()
}
