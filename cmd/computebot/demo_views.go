//go:build !nodemo

package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/computebot/computebot/internal/fakeslack"
)

// The demo's views: the Home tab (/home shows it; "home LABEL" clicks one
// of its buttons) and the launch form (opened by /launch alone or the
// tab's Launch…), which the terminal asks field by field and then submits
// as Slack would; errors on fields are asked again.

// demoField is one input of a form, as the demo asks it.
type demoField struct {
	id, label, kind string // kind: static_select, number_input, plain_text_input, conversations_select
	options         []demoOption
	optional        bool
}

type demoOption struct{ value, text string }

// demoForm is a form being filled in.
type demoForm struct {
	viewID string
	fields []demoField
	ask    []int // the fields still to ask, in order
	values map[string]map[string]any
}

// viewBlocks decodes a view's blocks.
func viewBlocks(v fakeslack.View) []map[string]any {
	out := make([]map[string]any, 0, len(v.Blocks))
	for _, raw := range v.Blocks {
		var blk map[string]any
		if json.Unmarshal(raw, &blk) == nil {
			out = append(out, blk)
		}
	}
	return out
}

func textOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["text"].(string)
	return s
}

// formFields are a modal's inputs.
func formFields(v fakeslack.View) []demoField {
	var out []demoField
	for _, blk := range viewBlocks(v) {
		if blk["type"] != "input" {
			continue
		}
		el, _ := blk["element"].(map[string]any)
		f := demoField{label: textOf(blk["label"])}
		f.id, _ = blk["block_id"].(string)
		f.kind, _ = el["type"].(string)
		f.optional, _ = blk["optional"].(bool)
		opts, _ := el["options"].([]any)
		for _, o := range opts {
			om, _ := o.(map[string]any)
			value, _ := om["value"].(string)
			f.options = append(f.options, demoOption{value: value, text: textOf(om["text"])})
		}
		out = append(out, f)
	}
	return out
}

// showHome asks Slack for the person's home tab and prints it.
func (d *demo) showHome() {
	d.mu.Lock()
	user := d.user
	d.mu.Unlock()
	before, _ := d.slack.HomeView(user)
	if _, err := d.slack.SendAppHomeOpened(user); err != nil {
		d.say("  (could not open the Home tab: %v)", err)
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if v, ok := d.slack.HomeView(user); ok && v.Hash != before.Hash {
			d.mu.Lock()
			d.home = v.ID
			d.mu.Unlock()
			d.say("%s", d.renderView(v))
			d.say("  (click its buttons with home LABEL, e.g. home launch…)")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.say("  (the Home tab did not come)")
}

// renderView prints a view's blocks as the channel prints messages.
func (d *demo) renderView(v fakeslack.View) string {
	var b strings.Builder
	b.WriteString("┌ Home tab\n")
	for _, blk := range viewBlocks(v) {
		switch blk["type"] {
		case "header":
			fmt.Fprintf(&b, "│ %s\n", d.view.mrkdwn("*"+textOf(blk["text"])+"*", d.view.style))
		case "section":
			if t := textOf(blk["text"]); t != "" {
				for _, l := range strings.Split(d.view.mrkdwn(t, d.view.style), "\n") {
					fmt.Fprintf(&b, "│ %s\n", l)
				}
			}
		case "context":
			els, _ := blk["elements"].([]any)
			for _, e := range els {
				fmt.Fprintf(&b, "│ %s\n", d.view.mrkdwn(textOf(e), d.view.style))
			}
		case "divider":
			b.WriteString("│ ──\n")
		case "actions":
			els, _ := blk["elements"].([]any)
			var labels []string
			for _, e := range els {
				em, _ := e.(map[string]any)
				labels = append(labels, "["+textOf(em["text"])+"]")
			}
			fmt.Fprintf(&b, "│ %s\n", strings.Join(labels, " "))
		}
	}
	b.WriteString("└")
	return d.view.wrapped(b.String())
}

// clickHome clicks a button of the last shown Home tab.
func (d *demo) clickHome(label string) {
	d.mu.Lock()
	user, home := d.user, d.home
	d.mu.Unlock()
	if home == "" {
		d.say("  (type /home first)")
		return
	}
	for _, b := range d.slack.ViewButtons(home) {
		if strings.EqualFold(b, label) || strings.EqualFold(strings.TrimSuffix(b, "…"), strings.TrimSuffix(label, "…")) {
			if _, err := d.slack.ClickInView(user, home, b); err != nil {
				d.say("  (could not click %s: %v)", b, err)
			}
			return
		}
	}
	d.say("  The Home tab has no %q button; it has %s.", label, strings.Join(d.slack.ViewButtons(home), ", "))
}

// tellForms starts asking the fields of a form the bot just opened for the
// person at the terminal.
func (d *demo) tellForms() {
	n := len(d.slack.Calls("views.open"))
	if n == d.forms {
		return
	}
	d.forms = n
	d.mu.Lock()
	user := d.user
	d.mu.Unlock()
	views := d.slack.Views()
	for i := len(views) - 1; i >= 0; i-- {
		v := views[i]
		if v.UserID != user || v.Closed {
			continue
		}
		f := &demoForm{viewID: v.ID, fields: formFields(v), values: map[string]map[string]any{}}
		for j := range f.fields {
			f.ask = append(f.ask, j)
		}
		d.mu.Lock()
		d.form = f
		d.mu.Unlock()
		d.say("┌ %s (the bot's form; type each field, Enter to skip an optional one, cancel to close it)", v.Title)
		d.askField()
		return
	}
}

// askField asks the next field of the form.
func (d *demo) askField() {
	d.mu.Lock()
	f := d.form
	d.mu.Unlock()
	if f == nil || len(f.ask) == 0 {
		return
	}
	field := f.fields[f.ask[0]]
	q := "│ " + field.label
	if field.optional {
		q += " (optional)"
	}
	for i, o := range field.options {
		q += fmt.Sprintf("\n│   %d. %s", i+1, o.text)
	}
	d.say("%s", q)
}

// answerField takes a line as the answer to the form's current field;
// after the last one the form is submitted.
func (d *demo) answerField(line string) {
	d.mu.Lock()
	f, user := d.form, d.user
	d.mu.Unlock()
	if strings.EqualFold(line, "cancel") {
		d.mu.Lock()
		d.form = nil
		d.mu.Unlock()
		d.say("└ (form closed; nothing was sent)")
		return
	}
	field := f.fields[f.ask[0]]
	if line == "" && !field.optional {
		d.say("│ (required)")
		d.askField()
		return
	}
	if line == "" {
		delete(f.values, field.id) // skipped: also an earlier, refused value
	}
	if line != "" {
		value, ok := demoFieldValue(field, line)
		if !ok {
			d.say("│ (%s)", demoFieldHint(field))
			d.askField()
			return
		}
		f.values[field.id] = map[string]any{field.id: value}
	}
	f.ask = f.ask[1:]
	if len(f.ask) > 0 {
		d.askField()
		return
	}
	if _, err := d.slack.SendViewSubmission(user, f.viewID, f.values); err != nil {
		d.say("└ (Slack would not send it: %v)", err)
		d.mu.Lock()
		d.form = nil
		d.mu.Unlock()
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if v, _ := d.slack.View(f.viewID); v.Closed {
			d.mu.Lock()
			d.form = nil
			d.mu.Unlock()
			d.say("└ (sent)")
			return
		}
		if errs := d.slack.ViewErrors(f.viewID); len(errs) > 0 {
			for i, fl := range f.fields {
				if msg, bad := errs[fl.id]; bad {
					d.say("│ %s: %s", fl.label, msg)
					f.ask = append(f.ask, i)
				}
			}
			if len(f.ask) == 0 { // errors on no field the demo knows
				d.closeForm("└ (the bot refused the form: %v)", errs)
				return
			}
			d.askField()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.closeForm("└ (no answer from the bot)")
}

// demoFieldValue is a typed answer as Slack's element would send it.
func demoFieldValue(f demoField, line string) (any, bool) {
	switch f.kind {
	case "static_select":
		if n, err := strconv.Atoi(line); err == nil && n >= 1 && n <= len(f.options) {
			return fakeslack.SelectValue(f.options[n-1].value), true
		}
		for _, o := range f.options {
			if strings.EqualFold(o.value, line) || strings.HasPrefix(strings.ToLower(o.text), strings.ToLower(line)) {
				return fakeslack.SelectValue(o.value), true
			}
		}
		return nil, false
	case "number_input":
		if _, err := strconv.Atoi(line); err != nil {
			return nil, false // Slack's number field takes digits only
		}
		return fakeslack.NumberValue(line), true
	case "conversations_select":
		return fakeslack.ConversationValue(demoChannel), true // the demo has one channel
	}
	return fakeslack.TextValue(line), true
}

// demoFieldHint says what a field takes, after an answer it cannot take.
func demoFieldHint(f demoField) string {
	if f.kind == "number_input" {
		return "a whole number"
	}
	return "pick one of the numbers or names above"
}

// closeForm ends the form being filled in, saying why.
func (d *demo) closeForm(format string, args ...any) {
	d.mu.Lock()
	d.form = nil
	d.mu.Unlock()
	d.say(format, args...)
}
