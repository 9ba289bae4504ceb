package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a length of time in the config file: a Go duration ("90m",
// "24h", "1h30m") or a number of days ("3d", "1.5d", "1d12h").
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d the way the config file would say it: "3d", "8h",
// "30m", else time.Duration's form ("1h30m0s").
func (d Duration) String() string {
	t := time.Duration(d)
	switch {
	case t == 0:
		return "0s"
	case t%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(t/(24*time.Hour)), 10) + "d"
	case t%time.Hour == 0:
		return strconv.FormatInt(int64(t/time.Hour), 10) + "h"
	case t%time.Minute == 0:
		return strconv.FormatInt(int64(t/time.Minute), 10) + "m"
	}
	return t.String()
}

// UnmarshalYAML reads a duration string. A bad value is reported as a
// *yaml.TypeError so that decoding goes on and every problem in the file is
// reported at once; Parse names the key it belongs to.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: invalid duration: expected a value such as 24h, 30m or 3d, got %s", n.Line, n.Column, nodeKind(n))}}
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %v", n.Line, n.Column, err)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

var daysRE = regexp.MustCompile(`([0-9]*\.?[0-9]+)d`)

// ParseDuration parses a Go duration string that may also use "d" for days
// of 24 hours: "3d", "1.5d", "1d12h", "90m".
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	bad := fmt.Errorf("invalid duration %q: use a number and a unit, e.g. 30m, 24h or 3d", s)
	if in == "" || len(in) > 64 {
		return 0, bad
	}
	var failed bool
	expanded := daysRE.ReplaceAllStringFunc(in, func(m string) string {
		f, err := strconv.ParseFloat(strings.TrimSuffix(m, "d"), 64)
		if err != nil {
			failed = true
			return m
		}
		return strconv.FormatFloat(f*24, 'f', -1, 64) + "h"
	})
	if failed || strings.Contains(expanded, "d") {
		return 0, bad
	}
	v, err := time.ParseDuration(expanded)
	if err != nil {
		return 0, bad
	}
	return v, nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}
