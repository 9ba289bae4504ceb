package commands

import (
	"strings"
)

// HelpText renders help from Definitions in reply's light markup (*bold*,
// `code`). topic is "" for every command, or a command as Help.Topic
// carries it ("launch", "lambda", "lambda invoke"; "/launch" works too). An
// unknown topic gets a line saying so and the list of commands.
func HelpText(topic string) string {
	defs := Definitions()
	t, ok := helpTopic(defs, topic)
	if !ok {
		return unknownTopic(defs, strings.TrimSpace(topic))
	}
	if t == "" {
		return overview(defs)
	}
	var parts []string
	for i := range defs {
		d := &defs[i]
		if d.Name == t || strings.HasPrefix(d.Name, t+" ") {
			parts = append(parts, detail(d))
		}
	}
	return strings.Join(parts, "\n\n")
}

func overview(defs []Definition) string {
	var b strings.Builder
	b.WriteString("*computebot* launches EC2 instances and invokes Lambda functions from Slack. ")
	b.WriteString("Every command works as a slash command or as a mention: `@computebot launch t2.micro`.\n")
	for i := range defs {
		d := &defs[i]
		b.WriteString("\n• `" + d.Usage + "`\n    " + d.Summary)
	}
	b.WriteString("\n\nQuote values that have spaces: `--reason \"feature engineering\"`. ")
	b.WriteString("`/computebot help COMMAND` (or `/launch help`) shows a command's arguments, who may use it and examples.")
	return b.String()
}

func detail(d *Definition) string {
	var b strings.Builder
	b.WriteString("*" + d.slashName() + "* — " + d.Summary + "\n")
	b.WriteString("Usage: `" + d.Usage + "`\n")
	if len(d.Args) > 0 {
		b.WriteString("Arguments:\n")
		for _, a := range d.Args {
			b.WriteString("• `" + a.Name + "` — " + a.Help)
			if a.Optional {
				b.WriteString(" (optional)")
			}
			b.WriteString("\n")
		}
	}
	if len(d.Flags) > 0 {
		b.WriteString("Flags:\n")
		for _, f := range d.Flags {
			b.WriteString("• `" + f.usage() + "` — " + f.Help + "\n")
		}
	}
	b.WriteString("Who: " + d.Who + "\n")
	if d.Notes != "" {
		b.WriteString(d.Notes + "\n")
	}
	if len(d.Examples) > 0 {
		b.WriteString("Examples:\n")
		for _, e := range d.Examples {
			b.WriteString("• `" + e + "`\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// shortHelp answers an empty command.
func shortHelp(defs []Definition) string {
	return "Hi! I launch EC2 instances and invoke Lambda functions. Commands: `" +
		strings.Join(commandWords(defs), "`, `") +
		"`.\nTry `help` for usage, or `help launch` for one command."
}
