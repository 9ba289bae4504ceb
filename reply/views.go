package reply

// Views are the surfaces other than messages: a modal form, and the App
// Home tab. Like messages they are platform-neutral; package bot renders
// them.

// View is a modal (Modal) or a person's home tab.
type View struct {
	Modal bool
	// CallbackID names the form, so its submission is recognised.
	CallbackID string
	Title      string // a modal's title (24 characters at most)
	Submit     string // its submit button; "" for none
	Close      string // its close button
	// Metadata travels with the view and comes back with its submission
	// (where the form was opened: a channel ID).
	Metadata string
	Blocks   []Block
}

// FieldKind is what a form field takes.
type FieldKind string

const (
	FieldSelect   FieldKind = "select"   // one of Options
	FieldText     FieldKind = "text"     // a line of text
	FieldLongText FieldKind = "longtext" // several lines
	FieldNumber   FieldKind = "number"   // a whole number in [Min, Max]
	FieldChannel  FieldKind = "channel"  // a channel the bot can post in
)

// Field is one input of a form. Its ID keys both its value in the
// submission and the error shown on it.
type Field struct {
	ID      string
	Kind    FieldKind
	Label   string
	Hint    string
	Options []Option // FieldSelect
	Initial string   // the initial value (an option's Value, a channel ID…)
	// Placeholder is the grey text of an empty select.
	Placeholder string
	Optional    bool
	MaxLen      int // text fields; 0: the platform's limit
	Min, Max    int // FieldNumber
}

// Option is one choice of a select.
type Option struct {
	Value string
	Text  string // 75 characters at most
}
