package reply

import (
	"fmt"
	"strings"

	"github.com/computebot/computebot/commands"
)

// ActionOpenLaunchForm is the Launch… button (Home tab) and the global
// shortcut's callback ID: both open the launch form.
const ActionOpenLaunchForm = "open_launch_form"

// LaunchFormCallback names the launch form, so its submissions are known.
const LaunchFormCallback = "launch_form"

// TypeChoice is an allowed type as the form offers it; Known when its specs
// were looked up.
type TypeChoice struct {
	Name       string
	Known      bool
	VCPUs      int32
	MemoryMiB  int64
	GPUs       int32
	Price      float64
	PriceKnown bool
}

// label is "g5.xlarge · 4 vCPU, 16 GiB, 1 GPU, ≈ $1.006/h" (75 characters
// at most: Slack's limit for an option).
func (c TypeChoice) label() string {
	if !c.Known {
		return c.Name
	}
	parts := []string{fmt.Sprintf("%d vCPU", c.VCPUs), GiB(c.MemoryMiB)}
	if c.GPUs > 0 {
		parts = append(parts, fmt.Sprintf("%d GPU", c.GPUs))
	}
	if c.PriceKnown {
		parts = append(parts, "≈ $"+trimPrice(c.Price)+"/h")
	}
	return Clip(c.Name+" · "+strings.Join(parts, ", "), 75)
}

// LaunchFormSpec is what the launch form offers.
type LaunchFormSpec struct {
	Types        []TypeChoice
	Images       []string // preset names; none: the field is left out
	DefaultLease string   // the lease when the field is left empty ("8 h")
	MaxHours     int
	// Channel is where the request will be posted (the channel /launch
	// was typed in); AskChannel asks for one instead, NotifyIn first.
	Channel    string
	AskChannel bool
	NotifyIn   string
}

// LaunchForm is the modal that asks for what /launch takes.
func LaunchForm(s LaunchFormSpec) View {
	types := make([]Option, len(s.Types))
	for i, t := range s.Types {
		types[i] = Option{Value: t.Name, Text: t.label()}
	}
	field := func(f Field) Block {
		if f.Kind == FieldSelect {
			f.Placeholder = "Choose"
		}
		if f.Kind == FieldChannel {
			f.Placeholder = "Choose a channel"
		}
		return Block{Kind: Input, ID: f.ID, Field: &f}
	}
	blocks := []Block{
		field(Field{ID: commands.FieldType, Kind: FieldSelect, Label: "Instance type", Options: types,
			Hint: "The allowed types, with their size and on-demand price."}),
	}
	if len(s.Images) > 0 {
		images := []Option{{Value: "", Text: "The default image"}}
		for _, name := range s.Images {
			images = append(images, Option{Value: name, Text: name})
		}
		blocks = append(blocks, field(Field{ID: commands.FieldImage, Kind: FieldSelect, Label: "Image", Options: images, Optional: true}))
	}
	blocks = append(blocks,
		field(Field{ID: commands.FieldHours, Kind: FieldNumber, Label: "Lease (hours)", Optional: true,
			Min: commands.MinHours, Max: min(max(s.MaxHours, commands.MinHours), commands.MaxHours),
			Hint: fmt.Sprintf("How long you need it, at most %d hours; empty: %s.", s.MaxHours, s.DefaultLease)}),
		field(Field{ID: commands.FieldName, Kind: FieldText, Label: "Name", Optional: true, MaxLen: commands.MaxNameLen,
			Hint: "The instance's Name tag, for /stop NAME and the console."}),
		field(Field{ID: commands.FieldReason, Kind: FieldLongText, Label: "Reason", Optional: true, MaxLen: commands.MaxReasonLen,
			Hint: "Shown to the approvers."}),
	)
	if s.AskChannel {
		blocks = append(blocks, field(Field{ID: commands.FieldChannel, Kind: FieldChannel, Label: "Post the request in", Initial: s.NotifyIn,
			Hint: "The channel where the request and its thread go; the bot must be a member."}))
	}
	return View{Modal: true, CallbackID: LaunchFormCallback, Title: "Launch an instance", Submit: "Request", Close: "Cancel",
		Metadata: s.Channel, Blocks: blocks}
}

// LaunchUsageInMention answers "@computebot launch" alone: a form opens only
// from /launch.
func LaunchUsageInMention() Message {
	return Plain("`@computebot launch TYPE` launches TYPE (for example `@computebot launch t3.small --hours 4`); type `/launch` alone for a form.")
}

// FormNoLongerValid: a launch form checked at its submission no longer
// passes (the config changed before it ran).
func FormNoLongerValid() Message {
	return Plain("Your launch form could not be used any more (the bot's rules changed since you sent it); nothing was launched. Please open `/launch` again.")
}

// FormUnknown is the error on a submission of a form the bot does not know.
func FormUnknown() string {
	return "This form is not one of mine any more; close it and open /launch again."
}

// FormNeedsChannel is the error on a launch form without a channel.
func FormNeedsChannel() string { return "Pick the channel where the request is posted." }

// FormCannotOpen: the form could not be opened (Slack refused, or its 3
// seconds to open one passed).
func FormCannotOpen() Message {
	return Plain("I could not open the launch form. Please try again, or type `/launch TYPE` (`/computebot help launch` shows the options).")
}

// FormNotSaved is the error shown on the form when the request could not
// be saved: the form stays open, so nothing typed is lost.
func FormNotSaved() string {
	return "I could not save your request just now (my store did not answer). Nothing was launched; submit again in a moment."
}
