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
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

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

// demoDLAMIParam is a public parameter of the Deep Learning AMI, the
// demo's dlami preset; the fake resolves it to demoDLAMI.
const (
	demoDLAMIParam = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"
	demoDLAMI      = "ami-0d1a0000000000d1a"
)

// demoUsers are the people the terminal can be (/as NAME); bo approves.
var demoUsers = []struct{ id, name string }{{"UANA", "ana"}, {"UBO", "bo"}, {"UCARL", "carl"}}

const demoConfig = `
approvers: [UBO]
approval_ttl: 24h
launch:
  # Every type and preset the help's examples use, so that each works here.
  allowed_types: [t2.micro, t3.small, t3.medium, g4dn.xlarge, g5.xlarge]
  ami: ami-0123456789abcdef0
  images:
    dlami: "resolve:ssm:` + demoDLAMIParam + `"
  key_name: demo
  max_running_per_user: 3
  default_ttl: 8h
idle:
  schedule: "@every 5s"
  cpu_below_percent: 5
  for: 1h
  grace: 5m
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
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stdout, "computebot demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	interactive := demoInteractive(stdin)
	d, err := startDemo(stdout, interactive)
	if err != nil {
		fmt.Fprintln(stdout, "computebot demo:", err)
		return 1
	}
	d.view.width = terminalWidth(stdin, interactive)
	if interactive {
		if os.Getenv("NO_COLOR") == "" {
			d.view.ansi()
		}
		if restore, ok := demoRawMode(stdin); ok {
			defer restore()
			d.edit = &lineEditor{width: d.view.width}
		}
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
	// edit is the line being typed, when the demo reads the terminal's
	// keys itself (raw mode): bot output is then printed above it, and
	// the prompt and the half-typed line are drawn again below.
	edit *lineEditor
	// pending is a click on a button that asks to confirm (Terminate),
	// waiting for the next line to say yes, as Slack's dialog waits.
	pending *pendingClick
	forms   int       // views.open calls already seen
	form    *demoForm // the form being filled in, if any
	home    string    // the Home tab last shown (its view ID)
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
	d.aws.AddImage(fakeaws.Image{ID: demoDLAMI, Name: "Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023) 20261120",
		RootVolumeGiB: 75})
	d.aws.SetSSMParameter(demoDLAMIParam, demoDLAMI)
	for typ, price := range map[string]float64{"t3.medium": 0.0416, "g4dn.xlarge": 0.526, "g5.xlarge": 1.006} {
		d.aws.SetPrice(typ, price)
	}
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
	d.showLocked(d.view.wrapped(fmt.Sprintf("computebot demo: the real bot against a fake Slack and a fake AWS (nothing leaves this machine).\n"+
		"This terminal is #%s. You are @ana; @bo is an approver; @carl is not. Type /help.\n"+
		"An instance of ana's has been idle for 3 h: the idle check (every 5 s here) will ask about it, "+
		"and stop it %s later unless someone answers.", demoChannelName, demoGraceText)) + "\n")
	d.renderLocked()
	d.promptLocked()
	d.mu.Unlock()

	lines, stop := make(chan string), make(chan struct{})
	defer close(stop)
	if d.edit != nil {
		go d.readKeys(stdin, lines, stop)
	} else {
		go readLines(stdin, lines, stop)
	}
	sig := make(chan os.Signal, 1)
	// A closed terminal (SIGHUP) too: the demo still removes its files.
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
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
			// Something happened while the person was at the prompt.
			d.mu.Lock()
			var buf strings.Builder
			if d.view.render(&buf, d.slack.Messages(demoChannel), d.user) {
				if d.edit == nil {
					// The terminal echoes keys itself: clear the prompt's
					// line, print, and prompt again.
					fmt.Fprint(d.out, "\r\033[K")
					d.showLocked(buf.String())
					d.promptLocked()
				} else {
					d.showLocked(buf.String())
				}
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
			d.tellForms()
			d.mu.Lock()
			d.renderLocked()
			d.promptLocked()
			d.mu.Unlock()
		}
	}
}

// demoGraceText is idle.grace of demoConfig, as the intro says it.
const demoGraceText = "5 minutes"

// readLines sends stdin's lines (a script, or a terminal in its own line
// mode) until it ends.
func readLines(stdin io.Reader, lines chan<- string, stop <-chan struct{}) {
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
}

// readKeys feeds the terminal's keys to the line editor and sends the
// lines it completes, until Ctrl-D on an empty line or the end of input.
func (d *demo) readKeys(stdin io.Reader, lines chan<- string, stop <-chan struct{}) {
	defer close(lines)
	buf := make([]byte, 1024)
	for {
		n, err := stdin.Read(buf)
		d.mu.Lock()
		done, eof := d.edit.feed(buf[:n], d.out)
		d.mu.Unlock()
		for _, l := range done {
			select {
			case lines <- l:
			case <-stop:
				return
			}
		}
		if eof || err != nil {
			return
		}
	}
}

// renderLocked prints what changed in the channel.
func (d *demo) renderLocked() {
	var buf strings.Builder
	d.view.render(&buf, d.slack.Messages(demoChannel), d.user)
	d.showLocked(buf.String())
}

// showLocked prints s, whole lines. With the line editor they go above
// the prompt and the half-typed line, which are drawn again below them:
// bot output never lands in the middle of what someone is typing.
func (d *demo) showLocked(s string) {
	if s == "" {
		return
	}
	if d.edit != nil {
		d.edit.erase(d.out)
		io.WriteString(d.out, s)
		d.edit.draw(d.out)
		return
	}
	io.WriteString(d.out, s)
}

func (d *demo) promptLocked() {
	p := d.names[d.user] + "> "
	if d.edit != nil {
		d.edit.setPrompt(p, d.out)
		return
	}
	fmt.Fprint(d.out, p)
}

func (d *demo) say(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.showLocked(d.view.wrapped(fmt.Sprintf(format, args...)) + "\n")
}

// handle runs one input line; it reports whether the demo should end.
func (d *demo) handle(line string) (quit bool) {
	if p := d.pending; p != nil {
		d.pending = nil
		switch answer := strings.ToLower(line); {
		case answer == strings.ToLower(p.button.confirm.yes) || answer == "y" || answer == "yes":
			d.press(p.ts, p.button)
			return false
		case answer == "" || answer == strings.ToLower(p.button.confirm.no) || answer == "n" || answer == "no":
			d.say("  (%s: nothing was done)", p.button.confirm.no)
			return false
		default:
			// Like a click outside Slack's dialog: it closes, and the
			// line is taken as it is.
			d.say("  (%s: nothing was done)", p.button.confirm.no)
		}
	}
	d.mu.Lock()
	filling := d.form != nil
	d.mu.Unlock()
	if filling {
		d.answerField(line)
		return false
	}
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
	case verb == "/home":
		d.showHome()
	case strings.EqualFold(verb, "home") && rest != "":
		d.clickHome(rest)
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

// pendingClick is a button, on the message with ts, whose confirm dialog
// is waiting for an answer.
type pendingClick struct {
	ts     string
	button demoButton
}

// click presses the button line names: its label (any case) on the newest
// message that has one; where a message shows several buttons of that
// label, one of them by its number (terminate 2) or by what it acts on
// (terminate i-0de0000000000001d, stop ana-notebook). A button that asks to
// confirm, as Terminate does in Slack, shows its dialog and waits for the
// next line. Non-interactively it waits for such a button to appear.
func (d *demo) click(line string) {
	deadline := time.Now().Add(demoButtonWait)
	for waited := false; ; waited = true {
		ts, b, problem := d.findButton(line)
		switch {
		case problem != "":
			d.say("  (%s)", problem)
			return
		case ts != "":
			d.mu.Lock()
			if waited { // show the message before its button is pressed
				d.renderLocked()
			}
			d.mu.Unlock()
			if c := b.confirm; c != nil {
				d.pending = &pendingClick{ts: ts, button: b}
				d.say("  ┌ %s\n  │ %s\n  └ [%s] [%s]: type %s to confirm, anything else cancels",
					c.title, c.text, c.yes, c.no, strings.ToLower(c.yes))
				return
			}
			d.press(ts, b)
			return
		case d.interactive || time.Now().After(deadline):
			d.say("  (no message has a [%s] button; type a button's label to click it, or /help)", line)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// press clicks b on the message with ts, as the terminal's user.
func (d *demo) press(ts string, b demoButton) {
	d.mu.Lock()
	user := d.user
	d.mu.Unlock()
	if _, err := d.slack.SendBlockAction(fakeslack.BlockAction{UserID: user, UserName: d.names[user], ChannelID: demoChannel,
		MessageTS: ts, ActionID: b.actionID, BlockID: b.blockID, Value: b.value, Text: b.label}); err != nil {
		d.say("  (could not click [%s]: %v)", b.label, err)
	}
}

// findButton finds the button line names (see click), newest message
// first. ts is "" when no message has it yet; problem says why line names
// no single button of a message that has buttons of its label.
func (d *demo) findButton(line string) (ts string, b demoButton, problem string) {
	want := strings.ToLower(strings.Join(strings.Fields(line), " "))
	msgs := d.slack.Messages(demoChannel)
	slices.SortStableFunc(msgs, func(a, b fakeslack.Message) int { return strings.Compare(a.TS, b.TS) })
	for i := len(msgs) - 1; i >= 0; i-- {
		buttons := d.view.buttons(msgs[i].Blocks)
		// The longest label first: "stop now" is not "stop" + "now".
		slices.SortStableFunc(buttons, func(a, b demoButton) int { return len(b.label) - len(a.label) })
		for _, cand := range buttons {
			label := strings.ToLower(strings.TrimSpace(cand.label))
			sel, ok := strings.CutPrefix(want, label)
			if !ok || (sel != "" && sel[0] != ' ') {
				continue
			}
			b, problem, ok := pick(buttons, cand.label, strings.TrimSpace(sel))
			if ok || problem != "" {
				return msgs[i].TS, b, problem
			}
		}
	}
	return "", demoButton{}, ""
}

// pick chooses among the buttons labelled label: the only one, the one
// numbered sel (2 or #2), or the one whose value or message text has sel.
// ok is false when sel matches none of them.
func pick(buttons []demoButton, label, sel string) (b demoButton, problem string, ok bool) {
	var same []demoButton
	for _, c := range buttons {
		if c.label == label {
			same = append(same, c)
		}
	}
	slices.SortFunc(same, func(a, b demoButton) int { return a.n - b.n })
	if sel == "" && len(same) == 1 {
		return same[0], "", true
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(sel, "#")); err == nil {
		if n < 1 || n > len(same) {
			return demoButton{}, fmt.Sprintf("there is no [%s #%d]: the message has %d", label, n, len(same)), false
		}
		return same[n-1], "", true
	}
	var found []demoButton
	for _, c := range same {
		if sel != "" && (strings.Contains(strings.ToLower(c.value), sel) || strings.Contains(strings.ToLower(c.context), sel)) {
			found = append(found, c)
		}
	}
	if len(found) == 1 {
		return found[0], "", true
	}
	if sel != "" && len(found) == 0 {
		return demoButton{}, "", false
	}
	var choices []string
	for _, c := range same {
		what, _, _ := strings.Cut(c.value, "|")
		choices = append(choices, fmt.Sprintf("%s %d (%s)", strings.ToLower(label), c.n, what))
	}
	return demoButton{}, fmt.Sprintf("%d [%s] buttons: type %s, or %s and an instance ID or name",
		len(same), label, strings.Join(choices, ", "), strings.ToLower(label)), false
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
	b.WriteString("    /home          your Home tab in the app (Launch…, your instances and requests; approvers: pending ones)\n")
	b.WriteString("    home LABEL     click a button of the Home tab: home launch…, home approve\n")
	b.WriteString("    /launch        alone: the launch form, asked field by field\n")
	b.WriteString("    /quit          end the demo (Ctrl-D too)\n")
	b.WriteString("    LABEL          click the button LABEL on the newest message that has it: approve, deny, keep running, stop now\n")
	b.WriteString("    LABEL N|ID     where a message has several: terminate 2, stop i-0de0000000000001d, extend 4 h ana-notebook\n")
	b.WriteString("                   (Terminate asks to confirm, as in Slack: type terminate again, anything else cancels)\n")
	b.WriteString("    @computebot …  mention the bot: @computebot status\n")
	b.WriteString("  The bot's commands:\n")
	for _, def := range commands.Definitions() {
		fmt.Fprintf(&b, "    %s\n        %s\n", def.Usage, def.Summary)
	}
	b.WriteString("  /computebot help COMMAND shows a command's details.")
	return b.String()
}

// demoRawMode puts the terminal on stdin in non-canonical mode without
// echo, so that the demo reads each key and can draw the half-typed line
// again below bot output, and returns what restores the terminal. It uses
// stty (Linux, macOS, the BSDs); ok is false where that is not there, and
// the demo then leaves the terminal its own line editing. Ctrl-C still
// interrupts (isig stays on). Tests replace it.
var demoRawMode = func(stdin io.Reader) (restore func(), ok bool) {
	f, isFile := stdin.(*os.File)
	if !isFile {
		return nil, false
	}
	saved, err := stty(f, "-g")
	if err != nil {
		return nil, false
	}
	if _, err := stty(f, "-icanon", "-echo", "min", "1", "time", "0"); err != nil {
		return nil, false
	}
	return func() { _, _ = stty(f, strings.TrimSpace(saved)) }, true
}

func stty(tty *os.File, args ...string) (string, error) {
	cmd := exec.Command("stty", args...)
	cmd.Stdin = tty
	out, err := cmd.Output()
	return string(out), err
}

// terminalWidth is the width lines are wrapped to: $COLUMNS, else the
// terminal's own (stty size), else 80.
func terminalWidth(stdin io.Reader, interactive bool) int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n >= 20 {
		return n
	}
	if f, ok := stdin.(*os.File); ok && interactive {
		if out, err := stty(f, "size"); err == nil {
			if _, cols, ok := strings.Cut(strings.TrimSpace(out), " "); ok {
				if n, err := strconv.Atoi(cols); err == nil && n >= 20 {
					return n
				}
			}
		}
	}
	return 80
}

// lineEditor is the line being typed at the prompt, when the demo reads
// keys itself. It knows what it drew, so it can erase it (output then goes
// where the prompt was) and draw it again.
type lineEditor struct {
	prompt string
	line   []rune
	width  int
	shown  bool // the prompt and line are on the screen
	cols   int  // how many columns they took when drawn
	utf8   []byte
	esc    int  // 0, or within an escape sequence: 1 after ESC, 2 in CSI, 3 after ESC O
	cr     bool // the last key was a carriage return
}

// feed takes the bytes the terminal sent: printable text is added and
// echoed, Backspace, Ctrl-U (the line) and Ctrl-W (a word) delete, Ctrl-L
// draws again, Enter completes a line, and Ctrl-D on an empty line ends the
// input (eof). Arrow keys and other escape sequences are ignored.
func (e *lineEditor) feed(p []byte, w io.Writer) (lines []string, eof bool) {
	for _, c := range p {
		cr := e.cr
		e.cr = false
		switch {
		case e.esc == 1:
			e.esc = map[byte]int{'[': 2, 'O': 3}[c]
		case e.esc == 2:
			if c >= 0x40 && c <= 0x7e {
				e.esc = 0
			}
		case e.esc == 3:
			e.esc = 0
		case c == 0x1b:
			e.esc = 1
		case c == '\r' || c == '\n':
			if c == '\n' && cr {
				continue // CR LF is one Enter
			}
			e.cr = c == '\r'
			lines = append(lines, string(e.line))
			e.line = e.line[:0]
			io.WriteString(w, "\n")
			e.shown = false
			e.draw(w)
		case c == 0x7f || c == 0x08:
			if len(e.line) > 0 {
				e.edit(w, e.line[:len(e.line)-1])
			}
		case c == 0x15: // Ctrl-U
			e.edit(w, e.line[:0])
		case c == 0x17: // Ctrl-W
			l := strings.TrimRight(string(e.line), " ")
			l = l[:strings.LastIndex(l, " ")+1]
			e.edit(w, []rune(l))
		case c == 0x0c: // Ctrl-L
			e.edit(w, e.line)
		case c == 0x04: // Ctrl-D
			if len(e.line) == 0 {
				return lines, true
			}
		case c == '\t':
			e.add(w, ' ')
		case c < 0x20:
		default:
			e.utf8 = append(e.utf8, c)
			if utf8.FullRune(e.utf8) {
				r, _ := utf8.DecodeRune(e.utf8)
				e.utf8 = e.utf8[:0]
				e.add(w, r)
			}
		}
	}
	return lines, false
}

func (e *lineEditor) add(w io.Writer, r rune) {
	e.line = append(e.line, r)
	if e.shown {
		io.WriteString(w, string(r))
		e.cols += textWidth(string(r))
	}
}

// edit replaces the line and draws it again.
func (e *lineEditor) edit(w io.Writer, line []rune) {
	e.erase(w)
	e.line = line
	e.draw(w)
}

func (e *lineEditor) setPrompt(p string, w io.Writer) {
	if e.shown && p == e.prompt {
		return
	}
	e.erase(w)
	e.prompt = p
	e.draw(w)
}

func (e *lineEditor) draw(w io.Writer) {
	if e.shown {
		return
	}
	s := e.prompt + string(e.line)
	io.WriteString(w, s)
	e.cols, e.shown = textWidth(s), true
}

// erase moves to where the prompt starts and clears to the end of the
// screen: the prompt may have wrapped onto several rows.
func (e *lineEditor) erase(w io.Writer) {
	if !e.shown {
		return
	}
	io.WriteString(w, "\r")
	if rows := (e.cols - 1) / max(e.width, 1); e.cols > 0 && rows > 0 {
		fmt.Fprintf(w, "\033[%dA", rows)
	}
	io.WriteString(w, "\033[J")
	e.shown = false
}
