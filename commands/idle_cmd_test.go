package commands

import "testing"

func TestIdleSubcommand(t *testing.T) {
	for _, in := range []struct{ name, text string }{{"/computebot", "idle"}} {
		res := ParseSlash(in.name, in.text)
		if res.Outcome != Run {
			t.Fatalf("%s %s: %+v", in.name, in.text, res)
		}
		if _, ok := res.Command.(*Idle); !ok {
			t.Fatalf("got %T", res.Command)
		}
	}
	if res := ParseText("idle"); res.Outcome != Run {
		t.Fatalf("mention idle: %+v", res)
	}
	if got := HelpText("idle"); got == "" {
		t.Fatal("no help for idle")
	}
}
