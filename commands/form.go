package commands

import (
	"fmt"
	"strings"
)

// The launch form: /launch with no arguments, the Home tab's Launch… button
// and the global shortcut open it; its submission is checked here field by
// field, with the same limits as the typed command, because a form's limits
// are only advice to the client that shows it.

// OpenLaunchForm asks for the launch form.
type OpenLaunchForm struct{}

func (*OpenLaunchForm) CommandName() string { return "launch" }

// The launch form's fields: keys of its values and of its errors.
const (
	FieldType    = "type"
	FieldImage   = "image"
	FieldHours   = "hours"
	FieldName    = "name"
	FieldReason  = "reason"
	FieldChannel = "channel"
)

// FormErrors are a form's problems, by field, in words for the person.
type FormErrors map[string]string

// ParseLaunchForm reads a submitted launch form (values by field; a field
// left empty is absent or "") into the command the typed /launch would be,
// and says what is wrong with each field. With errors the command holds
// the fields that are right (for further checks); it must not be run.
func ParseLaunchForm(values map[string]string) (*Launch, FormErrors) {
	errs := FormErrors{}
	get := func(k string) string { return strings.TrimFunc(values[k], isSpace) }
	l := &Launch{InstanceType: strings.ToLower(get(FieldType))}
	switch {
	case l.InstanceType == "":
		errs[FieldType] = "Pick an instance type."
	case !IsInstanceTypeName(l.InstanceType):
		errs[FieldType] = fmt.Sprintf("%q is not an EC2 instance type name (family.size, e.g. t3.micro).", l.InstanceType)
	}
	if v := get(FieldHours); v != "" {
		h, ok := parseHours(v)
		if !ok {
			errs[FieldHours] = fmt.Sprintf("A whole number of hours from %d to %d.", MinHours, MaxHours)
		} else {
			l.Hours, l.HoursSet = h, true
		}
	}
	if v := strings.ToLower(get(FieldImage)); v != "" {
		if !IsPresetName(v) {
			errs[FieldImage] = "Pick one of the image presets."
		} else {
			l.Image = v
		}
	}
	if v := get(FieldName); v != "" {
		if msg := checkText("The name", v, MaxNameLen, false); msg != "" {
			errs[FieldName] = msg
		} else {
			l.Name = v
		}
	}
	if v := get(FieldReason); v != "" {
		if msg := checkText("The reason", v, MaxReasonLen, true); msg != "" {
			errs[FieldReason] = msg
		} else {
			l.Reason = v
		}
	}
	if len(errs) > 0 {
		return l, errs
	}
	return l, nil
}
