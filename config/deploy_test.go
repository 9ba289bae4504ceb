package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the deploy config maps from example.yaml")

// The Kubernetes config maps carry example.yaml with their own store
// section (a PVC path, or the DynamoDB table).
var configMaps = []string{
	"../deploy/kubernetes/configmap.yaml",
	"../deploy/kubernetes/replicas/configmap.yaml",
}

const embedIndent = "    "

// TestDeployConfigMapsFollowExample keeps the config maps in step with
// example.yaml: every key and comment as there, only the store section their
// own, and each one valid. `go test ./config -run ConfigMaps -update`
// rewrites them.
func TestDeployConfigMapsFollowExample(t *testing.T) {
	example, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range configMaps {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		head, embedded, ok := strings.Cut(string(raw), "  config.yaml: |\n")
		if !ok {
			t.Fatalf("%s: no config.yaml entry", path)
		}
		var lines []string
		for l := range strings.SplitSeq(strings.TrimSuffix(embedded, "\n"), "\n") {
			lines = append(lines, strings.TrimPrefix(l, embedIndent))
		}
		cfg := strings.Join(lines, "\n") + "\n"
		want := withStore(string(example), storeSection(t, path, cfg))
		if cfg == want {
			if _, err := Parse([]byte(cfg)); err != nil {
				t.Errorf("%s: its config is not valid: %v", path, err)
			}
			continue
		}
		if !*update {
			t.Errorf("%s is not example.yaml with its own store section; run `go test ./config -run ConfigMaps -update`", path)
			continue
		}
		var b strings.Builder
		b.WriteString(head + "  config.yaml: |\n")
		for l := range strings.SplitSeq(strings.TrimSuffix(want, "\n"), "\n") {
			if l != "" {
				b.WriteString(embedIndent + l)
			}
			b.WriteString("\n")
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// storeSection is the top-level "store:" section of a config, up to the
// next top-level key.
func storeSection(t *testing.T, path, cfg string) string {
	t.Helper()
	_, rest, ok := strings.Cut(cfg, "\nstore:\n")
	if !ok {
		t.Fatalf("%s: no store section", path)
	}
	end := strings.Index(rest, "\naws:\n")
	if end < 0 {
		t.Fatalf("%s: no aws section after the store", path)
	}
	return "store:\n" + rest[:end]
}

// withStore is cfg with its store section replaced.
func withStore(cfg, store string) string {
	before, rest, _ := strings.Cut(cfg, "\nstore:\n")
	_, after, _ := strings.Cut(rest, "\naws:\n")
	return before + "\n" + store + "\naws:\n" + after
}
