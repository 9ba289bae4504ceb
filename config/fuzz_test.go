package config

import (
	"os"
	"testing"
)

// FuzzParse: no input makes Parse panic, and a config Parse accepts is valid.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	f.Add(minimal)
	f.Add("approvers: [U1]\nlaunch: {allowed_types: [T3.micro, foo], ami: x, max_running_per_user: [1], prices: {t3.micro: cheap}}\nidle: {for: [1h], grace: 24x, schedul: x}\n")
	f.Add("a: &x [1]\nb: *x\nlaunch:\n  <<: {ami: y}\n")
	f.Fuzz(func(t *testing.T, data string) {
		c, err := Parse([]byte(data))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
	})
}
