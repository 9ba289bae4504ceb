package commands

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/computebot/computebot/schedule"
	"github.com/computebot/computebot/sshkeys"
)

// ParseSlash parses a slash command as Slack delivers it: name is the
// command ("/launch", "/instances", "/stop", "/start", "/terminate",
// "/extend", "/lambda", or "/computebot", whose first word is the
// subcommand: "/computebot launch t2.micro") and text is the rest.
//
// A slash command is always meant for the bot, so the outcome is Run or
// Reply, never Ignore.
func ParseSlash(name, text string) Result {
	if sshkeys.LooksPrivate(text) {
		return privateKey()
	}
	defs := Definitions()
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.TrimPrefix(n, "/")
	text = clean(text)
	if n == "computebot" {
		return parseWords(defs, text)
	}
	for _, w := range commandWords(defs) {
		if w == n {
			return dispatch(defs, n, &lexer{src: text})
		}
	}
	return replyf(fmt.Sprintf("computebot does not handle %s. Try `/computebot help`.", code("/"+strings.TrimPrefix(strings.TrimSpace(name), "/"))))
}

// ParseText parses free text: an @-mention with the bot's mention already
// removed by the adapter ("launch t2.micro --hours 4"). Empty text gets a short help reply;
// a first word that is no command gets "unknown command" with a suggestion.
// Quoted text (a line starting with ">") is ignored: someone quoting a
// command is not giving one.
func ParseText(text string) Result {
	if sshkeys.LooksPrivate(text) {
		return privateKey()
	}
	text = clean(text)
	if strings.HasPrefix(text, ">") {
		return ignore()
	}
	return parseWords(Definitions(), text)
}

// clean trims the text and unwraps a command written as code. The chat
// platform's own escaping, links and leading mentions are already undone by
// its adapter (package bot): this package sees text as it was typed.
func clean(text string) string {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = strings.TrimFunc(text, isSpace)
	// A command written as code: `launch t2.micro` or ```launch t2.micro```.
	for _, fence := range []string{"```", "`"} {
		if len(text) > 2*len(fence) && strings.HasPrefix(text, fence) && strings.HasSuffix(text, fence) {
			inner := text[len(fence) : len(text)-len(fence)]
			if !strings.Contains(inner, "`") {
				text = strings.TrimFunc(inner, isSpace)
			}
			break
		}
	}
	return text
}

// parseWords parses text whose first word is the command.
func parseWords(defs []Definition, text string) Result {
	lx := &lexer{src: text}
	first, ok, problem := lx.next()
	if problem != "" {
		return replyf(problem)
	}
	if !ok {
		return replyf(shortHelp(defs))
	}
	word := strings.ToLower(first.val)
	if !first.quoted {
		word = strings.TrimPrefix(word, "/")
		if isHelpWord(word) {
			word = "help"
		}
	}
	return dispatch(defs, word, lx)
}

// dispatch parses the words after the command word.
func dispatch(defs []Definition, word string, lx *lexer) Result {
	if word == "help" {
		return parseHelp(defs, lx)
	}
	if subs := subcommands(defs, word); len(subs) > 0 {
		sub, ok, problem := lx.next()
		if problem != "" {
			return replyf(problem)
		}
		list := "`" + strings.Join(subs, "` or `") + "`"
		if !ok {
			return replyf(fmt.Sprintf("/%s needs a subcommand: %s.\n%s", word, list, usages(defs, word)))
		}
		if !sub.quoted && isHelpWord(sub.val) {
			return helpFor(word)
		}
		name := word + " " + strings.ToLower(sub.val)
		switch name {
		case "lambda invoke":
			return parseInvoke(defs, lx)
		case "sshkey add":
			return parseSSHKeyAdd(defs, lx)
		}
		if d, ok := lookup(defs, name); ok {
			return parseArgs(d, lx)
		}
		msg := fmt.Sprintf("unknown subcommand %s for /%s", code(sub.val), word)
		if s := Suggest(strings.ToLower(sub.val), subs); s != "" {
			msg += fmt.Sprintf("; did you mean `%s`?", s)
		} else {
			msg += "; use " + list + "."
		}
		return replyf(msg + "\n" + usages(defs, word))
	}
	if d, ok := lookup(defs, word); ok {
		return parseArgs(d, lx)
	}
	msg := fmt.Sprintf("unknown command %s. Try `help`", code(word))
	if s := Suggest(word, commandWords(defs)); s != "" {
		msg += fmt.Sprintf(" — did you mean `%s`?", s)
	} else {
		msg += " for the list of commands."
	}
	return replyf(msg)
}

// parsed holds the words of a command once split into arguments and flags.
type parsed struct {
	def   *Definition
	args  []string
	flags map[string]string // switches map to ""
}

// parseArgs splits the remaining words by d's Args and Flags and builds the
// command. "help" (unquoted, not a flag's value) anywhere asks for d's help,
// whatever else is wrong.
func parseArgs(d *Definition, lx *lexer) Result {
	toks, problem := lx.all()
	if problem != "" {
		return replyf(problem)
	}
	if len(toks) == 0 && d.bare != nil {
		return run(d.bare())
	}
	p := &parsed{def: d, flags: map[string]string{}}
	first := "" // the first problem; reported unless help is asked for
	fail := func(msg string) {
		if first == "" {
			first = msg
		}
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if !t.quoted && isHelpWord(t.val) {
			return helpFor(d.Name)
		}
		if t.quoted || !isFlagLike(t.val) {
			if i == 0 && !t.quoted && strings.EqualFold(t.val, d.Name) {
				continue // "/launch launch t2.micro": the name typed twice
			}
			p.args = append(p.args, t.val)
			continue
		}
		name, value, hasValue := splitFlag(t.val)
		f, ok := d.flag(name)
		if !ok {
			fail(unknownFlag(d, t.val, name))
			continue
		}
		if _, dup := p.flags[name]; dup {
			fail(withUsage(d, fmt.Sprintf("--%s is given twice; give it once.", name)))
		}
		if f.Value == "" {
			if hasValue {
				fail(withUsage(d, fmt.Sprintf("--%s takes no value (got %s).", name, code(t.val))))
			}
			p.flags[name] = ""
			continue
		}
		if !hasValue {
			if i+1 < len(toks) && (toks[i+1].quoted || !isFlagLike(toks[i+1].val)) {
				i++
				value = toks[i].val
				if !toks[i].quoted && isHelpWord(value) && name != "reason" && name != "name" {
					return helpFor(d.Name)
				}
			} else {
				fail(withUsage(d, fmt.Sprintf("--%s needs a value: %s.", name, f.Help)))
				continue
			}
		}
		if strings.TrimFunc(value, isSpace) == "" {
			fail(withUsage(d, fmt.Sprintf("--%s needs a value: %s.", name, f.Help)))
			continue
		}
		if _, dup := p.flags[name]; !dup {
			p.flags[name] = value
		}
	}
	if first != "" {
		return replyf(first)
	}
	if n := len(d.Args); n > 0 && d.Args[n-1].Rest && len(p.args) > n {
		p.args = append(p.args[:n-1], strings.Join(p.args[n-1:], " "))
	}
	if len(p.args) > len(d.Args) {
		extra := p.args[len(d.Args)]
		msg := fmt.Sprintf("unexpected argument %s for %s", code(extra), d.slashName())
		if d.extraHint != "" {
			msg += "; " + d.extraHint
		}
		return replyf(withUsage(d, msg+"."))
	}
	for i, a := range d.Args {
		if i >= len(p.args) && !a.Optional {
			return replyf(withUsage(d, fmt.Sprintf("%s needs %s: %s.", d.slashName(), a.Name, a.Help)))
		}
	}
	return d.build(p)
}

func buildLaunch(p *parsed) Result {
	d := p.def
	t := strings.ToLower(p.args[0])
	if !IsInstanceTypeName(t) {
		return replyf(withUsage(d, fmt.Sprintf("%s is not an EC2 instance type name (family.size, e.g. t3.micro or g4dn.xlarge).", code(p.args[0]))))
	}
	l := &Launch{InstanceType: t}
	if v, ok := p.flags["hours"]; ok {
		h, ok := parseHours(v)
		if !ok {
			return replyf(fmt.Sprintf("--hours must be a whole number of hours from %d to %d, not %s.", MinHours, MaxHours, code(v)))
		}
		l.Hours, l.HoursSet = h, true
	}
	if v, ok := p.flags["ami"]; ok {
		v = normalizeAWSID(strings.TrimSpace(v), IsAMIRef)
		if !IsAMIRef(v) {
			return replyf(fmt.Sprintf("--ami must be an AMI ID (ami- followed by 8 or 17 hex digits) or an SSM parameter (resolve:ssm:/…), not %s.", code(v)))
		}
		l.AMI = v
	}
	if v, ok := p.flags["image"]; ok {
		v = strings.ToLower(strings.TrimSpace(v))
		if !IsPresetName(v) {
			return replyf(fmt.Sprintf("--image takes the short name of an image preset (letters, digits, - and _), not %s.", code(v)))
		}
		if l.AMI != "" {
			return replyf(withUsage(d, "give --image or --ami, not both."))
		}
		l.Image = v
	}
	if v, ok := p.flags["name"]; ok {
		v = strings.TrimFunc(v, isSpace)
		if msg := checkText("--name", v, MaxNameLen, false); msg != "" {
			return replyf(msg)
		}
		l.Name = v
	}
	if v, ok := p.flags["reason"]; ok {
		v = strings.TrimFunc(v, isSpace)
		if msg := checkText("--reason", v, MaxReasonLen, true); msg != "" {
			return replyf(msg)
		}
		l.Reason = v
	}
	_, l.Hibernate = p.flags["hibernate"]
	return run(l)
}

func checkText(flag, v string, limit int, multiline bool) string {
	if n := utf8.RuneCountInString(v); n > limit {
		return fmt.Sprintf("%s is %d characters long; the limit is %d.", flag, n, limit)
	}
	if !printable(v, multiline) {
		return fmt.Sprintf("%s contains control characters; use plain text.", flag)
	}
	return ""
}

func buildTarget(mk func(string) Command) func(p *parsed) Result {
	return func(p *parsed) Result {
		t, msg := checkTarget(p.args[0])
		if msg != "" {
			return replyf(withUsage(p.def, msg))
		}
		return run(mk(t))
	}
}

func buildExtend(p *parsed) Result {
	t, msg := checkTarget(p.args[0])
	if msg != "" {
		return replyf(withUsage(p.def, msg))
	}
	h, ok := parseHours(p.args[1])
	if !ok {
		return replyf(withUsage(p.def, fmt.Sprintf("HOURS must be a whole number of hours from %d to %d, not %s.", MinHours, MaxHours, code(p.args[1]))))
	}
	return run(&Extend{Target: t, Hours: h})
}

// MaxKeep bounds /keep's DURATION: beyond it, stop the instance instead.
const MaxKeep = 90 * 24 * time.Hour

func buildKeep(p *parsed) Result {
	t, msg := checkTarget(p.args[0])
	if msg != "" {
		return replyf(withUsage(p.def, msg))
	}
	d, ok := ParseDuration(p.args[1])
	if !ok || d < time.Minute || d > MaxKeep {
		return replyf(withUsage(p.def, fmt.Sprintf("DURATION must be how long to keep it, such as 90m, 6h or 3d (at most 90 days), not %s.", code(p.args[1]))))
	}
	return run(&Keep{Target: t, For: d})
}

func buildSchedule(p *parsed) Result {
	t, msg := checkTarget(p.args[0])
	if msg != "" {
		return replyf(withUsage(p.def, msg))
	}
	if strings.EqualFold(strings.TrimSpace(p.args[1]), schedule.Off) {
		return run(&SetSchedule{Target: t, Off: true})
	}
	hours, err := schedule.Parse(p.args[1], nil)
	if err != nil {
		return replyf(withUsage(p.def, "That is not a schedule: "+err.Error()+"."))
	}
	return run(&SetSchedule{Target: t, Hours: hours})
}

// ParseDuration reads a duration as people type it: Go's (90m, 1h30m) or
// whole days (3d).
func ParseDuration(s string) (time.Duration, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 3650 {
			return 0, false
		}
		return time.Duration(days) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil && d > 0
}

// parseInvoke parses "lambda invoke [--async] FUNCTION [JSON] [--async]".
// The payload is the raw text after the function name, so it is never
// split into words: JSON keeps its quotes and spaces.
func parseInvoke(defs []Definition, lx *lexer) Result {
	d, _ := lookup(defs, "lambda invoke")
	async := false
	setAsync := func(word string) string {
		name, _, hasValue := splitFlag(word)
		switch {
		case name != "async":
			return unknownFlag(d, word, name)
		case hasValue:
			return withUsage(d, fmt.Sprintf("--async takes no value (got %s).", code(word)))
		case async:
			return withUsage(d, "--async is given twice; give it once.")
		}
		async = true
		return ""
	}
	var fn token
	for {
		t, ok, problem := lx.next()
		if problem != "" {
			return replyf(problem)
		}
		if !ok {
			return replyf(withUsage(d, fmt.Sprintf("%s needs FUNCTION: %s.", d.slashName(), d.Args[0].Help)))
		}
		if !t.quoted && isHelpWord(t.val) {
			return helpFor(d.Name)
		}
		if !t.quoted && isFlagLike(t.val) {
			if msg := setAsync(t.val); msg != "" {
				return replyf(msg)
			}
			continue
		}
		fn = t
		break
	}
	if len(fn.val) > 170 || !functionRE.MatchString(fn.val) {
		return replyf(withUsage(d, fmt.Sprintf("%s is not a Lambda function name (letters, digits, - and _, or a function ARN).", code(fn.val))))
	}
	rest := strings.TrimFunc(lx.rest(), isSpace)
	// Flags right after the function name…
	for {
		word, after := firstWord(rest)
		if word == "" || !isFlagLike(word) {
			break
		}
		if isHelpWord(word) {
			return helpFor(d.Name)
		}
		if msg := setAsync(word); msg != "" {
			return replyf(msg)
		}
		rest = after
	}
	// …and at the very end (no JSON text ends with a word like --async).
	if before, word := lastWord(rest); isFlagLike(word) && isPlainWord(word) {
		if isHelpWord(word) {
			return helpFor(d.Name)
		}
		if msg := setAsync(word); msg != "" {
			return replyf(msg)
		}
		rest = before
	}
	if isHelpWord(rest) {
		return helpFor(d.Name)
	}
	payload, msg := checkPayload(unfence(rest))
	if msg != "" {
		return replyf(msg)
	}
	return run(&LambdaInvoke{Function: fn.val, Payload: payload, Async: async})
}

// parseHelp parses "help [COMMAND]"; the command may be two words
// ("help lambda invoke") and may start with a slash ("help /launch").
func parseHelp(defs []Definition, lx *lexer) Result {
	toks, problem := lx.all()
	if problem != "" {
		return replyf(problem)
	}
	var words []string
	for _, t := range toks {
		w := strings.ToLower(t.val)
		if !t.quoted && isHelpWord(w) {
			continue // "help --help", "/launch help help"
		}
		words = append(words, w)
	}
	if len(words) == 0 {
		return helpFor("")
	}
	topic, ok := helpTopic(defs, strings.Join(words, " "))
	if !ok {
		return replyf(unknownTopic(defs, strings.Join(words, " ")))
	}
	return helpFor(topic)
}

// helpTopic normalises a help topic: "/launch" → "launch", "/computebot
// launch" → "launch", "lambda" and "lambda invoke" as they are.
func helpTopic(defs []Definition, topic string) (string, bool) {
	topic = strings.ToLower(strings.Join(strings.FieldsFunc(topic, isSpace), " "))
	topic = strings.TrimPrefix(topic, "/")
	topic = strings.TrimPrefix(topic, "@computebot ")
	if t, ok := strings.CutPrefix(topic, "computebot "); ok {
		topic = strings.TrimPrefix(t, "/")
	}
	if topic == "" || topic == "computebot" {
		return "", true
	}
	if _, ok := lookup(defs, topic); ok {
		return topic, true
	}
	if len(subcommands(defs, topic)) > 0 {
		return topic, true
	}
	return "", false
}

func unknownTopic(defs []Definition, topic string) string {
	msg := fmt.Sprintf("there is no command %s", code(topic))
	if s := Suggest(topic, commandWords(defs)); s != "" {
		msg += fmt.Sprintf("; did you mean `%s`?", s)
	} else {
		msg += "."
	}
	return msg + " Commands: " + strings.Join(commandWords(defs), ", ") + "."
}

func unknownFlag(d *Definition, word, name string) string {
	shown := word
	if i := strings.IndexByte(shown, '='); i >= 0 {
		shown = shown[:i]
	}
	if len(d.Flags) == 0 {
		return withUsage(d, fmt.Sprintf("unknown flag %s for %s; it takes no flags.", shownFlag(shown), d.slashName()))
	}
	var names []string
	for _, f := range d.Flags {
		names = append(names, f.Name)
	}
	msg := fmt.Sprintf("unknown flag %s for %s", shownFlag(shown), d.slashName())
	if s := Suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean --%s?", s)
	} else {
		msg += "; its flags are --" + strings.Join(names, ", --") + "."
	}
	return withUsage(d, msg)
}

// shownFlag shows a flag as typed, shortened if absurdly long.
func shownFlag(s string) string {
	if utf8.RuneCountInString(s) > 40 || strings.ContainsAny(s, "`\n") {
		return code(s)
	}
	return s
}

func withUsage(d *Definition, msg string) string {
	return msg + "\nUsage: `" + d.Usage + "`"
}

// usages lists the usage lines of the commands starting with word.
func usages(defs []Definition, word string) string {
	var lines []string
	for _, d := range defs {
		if w, _, _ := strings.Cut(d.Name, " "); w == word {
			lines = append(lines, "`"+d.Usage+"`")
		}
	}
	return "Usage: " + strings.Join(lines, " or ")
}

// isFlagLike reports whether an unquoted word is meant as a flag: --x, -x,
// or —x / –x (chat clients turn "--" into a dash). "-5" is not a flag.
func isFlagLike(w string) bool {
	r, size := utf8.DecodeRuneInString(w)
	switch r {
	case '—', '–':
		return len(w) > size
	case '-':
		n, _ := utf8.DecodeRuneInString(w[size:])
		return n == '-' || (n >= 'a' && n <= 'z') || (n >= 'A' && n <= 'Z')
	}
	return false
}

// splitFlag splits "--name=value" into its lower-case name and value.
func splitFlag(w string) (name, value string, hasValue bool) {
	w = strings.TrimLeft(w, "-—–")
	name, value, hasValue = strings.Cut(w, "=")
	return strings.ToLower(name), value, hasValue
}

// isHelpWord reports whether an unquoted word asks for help.
func isHelpWord(w string) bool {
	switch strings.ToLower(w) {
	case "help", "-h", "?":
		return true
	}
	if isFlagLike(w) {
		name, _, hasValue := splitFlag(w)
		return name == "help" && !hasValue
	}
	return false
}

// isPlainWord reports whether w is a bare word (no quotes or brackets), so
// it cannot be the end of a JSON value.
func isPlainWord(w string) bool {
	return !strings.ContainsAny(w, "\"'“”‘’{}[],:")
}

func firstWord(s string) (word, rest string) {
	s = strings.TrimLeftFunc(s, isSpace)
	i := strings.IndexFunc(s, isSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeftFunc(s[i:], isSpace)
}

func lastWord(s string) (rest, word string) {
	s = strings.TrimRightFunc(s, isSpace)
	i := strings.LastIndexFunc(s, isSpace)
	if i < 0 {
		return "", s
	}
	_, size := utf8.DecodeRuneInString(s[i:])
	return strings.TrimRightFunc(s[:i], isSpace), s[i+size:]
}

// unfence removes code formatting around a payload: `{…}` or ```json {…}```.
func unfence(s string) string {
	for _, fence := range []string{"```", "`"} {
		if len(s) >= 2*len(fence) && strings.HasPrefix(s, fence) && strings.HasSuffix(s, fence) {
			inner := s[len(fence) : len(s)-len(fence)]
			if fence == "```" {
				inner = strings.TrimPrefix(inner, "json")
			}
			return strings.TrimFunc(inner, isSpace)
		}
	}
	return s
}

// privateKey is the outcome of any text that holds a private key, whatever
// the command: checked before anything else, so the key is never parsed
// into a command, stored with it, or quoted back in an error. The words
// of the answer are package reply's (the caller's).
func privateKey() Result { return Result{Outcome: Reply, Secret: true} }

// parseSSHKeyAdd parses "sshkey add KEY [--label NAME]": the key is the
// rest of the text (it has spaces), the label flag may come anywhere
// after it or before it.
func parseSSHKeyAdd(defs []Definition, lx *lexer) Result {
	d, _ := lookup(defs, "sshkey add")
	words := strings.Fields(lx.rest())
	label := ""
	var key []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case isHelpWord(w) && len(words) == 1:
			return helpFor(d.Name)
		case w == "--label" || strings.HasPrefix(w, "--label="):
			if v, ok := strings.CutPrefix(w, "--label="); ok {
				label = v
				continue
			}
			if i+1 >= len(words) {
				return replyf(withUsage(d, "--label needs a NAME."))
			}
			i++
			label = words[i]
			// A quoted label of several words: up to the closing quote.
			if q := label[:1]; (q == `"` || q == "'") && (len(label) == 1 || !strings.HasSuffix(label, q)) {
				for i+1 < len(words) && !strings.HasSuffix(label, q) {
					i++
					label += " " + words[i]
				}
			}
			label = strings.Trim(label, `"'`)
		case isFlagLike(w):
			return replyf(unknownFlag(d, w, strings.TrimLeft(w, "-")))
		default:
			key = append(key, w)
		}
	}
	if len(key) == 0 {
		return replyf(withUsage(d, fmt.Sprintf("%s needs KEY: %s.", d.slashName(), d.Args[0].Help)))
	}
	return run(&SSHKeyAdd{Key: strings.Join(key, " "), Label: label})
}
