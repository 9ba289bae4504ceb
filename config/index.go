package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/computebot/computebot/commands"
	"gopkg.in/yaml.v3"
)

// index maps the keys of a parsed YAML document to their lines and back,
// so that yaml.v3's "line 7: …" errors can name the key, and validation
// problems can name the line.
type index struct {
	byLine map[int][]string      // paths whose key (or list item) is on a line
	line   map[string]int        // path → line of its key or item
	value  map[string]*yaml.Node // path → value node
	at     map[[2]int]string     // line and column of a value node → path
}

func newIndex(root *yaml.Node) *index {
	ix := &index{byLine: map[int][]string{}, line: map[string]int{}, value: map[string]*yaml.Node{}, at: map[[2]int]string{}}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		ix.walk(root.Content[0], "", 0)
	}
	return ix
}

func (ix *index) add(path string, line int, v *yaml.Node) {
	if _, seen := ix.line[path]; !seen {
		ix.line[path] = line
		ix.value[path] = v
	}
	ix.byLine[line] = append(ix.byLine[line], path)
	if v != nil {
		ix.at[[2]int{v.Line, v.Column}] = path
	}
	if v != nil && v.Line != line && v.Kind == yaml.ScalarNode {
		ix.byLine[v.Line] = append(ix.byLine[v.Line], path)
	}
}

func (ix *index) walk(n *yaml.Node, path string, depth int) {
	if depth > 32 {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ix.add(p, k.Line, v)
			ix.walk(v, p, depth+1)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			ix.add(p, item.Line, item)
			ix.walk(item, p, depth+1)
		}
	}
}

// lineOf returns the line of path, or of its closest parent in the file.
func (ix *index) lineOf(path string) int {
	for path != "" {
		if l, ok := ix.line[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

var (
	lineRE        = regexp.MustCompile(`^line (\d+): (?:column (\d+): )?(.*)$`)
	notFoundRE    = regexp.MustCompile(`^field (.+) not found in type (\S+)$`)
	unmarshalRE   = regexp.MustCompile(`^cannot unmarshal (\S+)(?: .*)? into (.+)$`)
	alreadySetRE  = regexp.MustCompile(`^(?:field|mapping key) "?(.+?)"? already (?:set in type \S+|defined at line (\d+))$`)
	configTypeMap = structKeys(reflect.TypeOf(Config{}))
)

const duplicateKey = "the key is given twice; keep one"

// typeErrors turns yaml.v3's decoding errors into Problems naming keys.
func (ix *index) typeErrors(msgs []string) []*Problem {
	var ps []*Problem
	for _, msg := range msgs {
		p := &Problem{Message: msg}
		m := lineRE.FindStringSubmatch(msg)
		if m == nil {
			ps = append(ps, p)
			continue
		}
		p.Line, _ = strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		p.Message = m[3]
		switch {
		case col > 0: // our own errors (Duration) say exactly which value
			p.Key = ix.at[[2]int{p.Line, col}]
		case notFoundRE.MatchString(p.Message):
			nf := notFoundRE.FindStringSubmatch(p.Message)
			p.Key = ix.pathOnLine(p.Line, nf[1])
			p.Message = unknownKey(p.Key, nf[1], nf[2])
		case unmarshalRE.MatchString(p.Message):
			um := unmarshalRE.FindStringSubmatch(p.Message)
			p.Key = ix.pathOfValue(p.Line, p.Message)
			p.Message = fmt.Sprintf("expected %s, got %s", describeType(um[2]), ix.describeValue(p.Key))
		case alreadySetRE.MatchString(p.Message):
			as := alreadySetRE.FindStringSubmatch(p.Message)
			p.Key = ix.pathOnLine(p.Line, as[1])
			p.Message = duplicateKey
		default:
			p.Key = ix.pathOnLine(p.Line, "")
		}
		ps = append(ps, p)
	}
	return ps
}

// pathOnLine picks the key a line-numbered error is about: the one called
// name if given, else the deepest key on that line.
func (ix *index) pathOnLine(line int, name string) string {
	best := ""
	for _, p := range ix.byLine[line] {
		if name != "" {
			if p == name || strings.HasSuffix(p, "."+name) {
				return p
			}
			continue
		}
		if len(p) > len(best) {
			best = p
		}
	}
	return best
}

// pathOfValue finds the key of the value a "cannot unmarshal !!tag `value`
// into T" error is about: the deepest key on the line whose value has that
// tag (and, for a scalar, that text).
func (ix *index) pathOfValue(line int, msg string) string {
	tag, rest, _ := strings.Cut(strings.TrimPrefix(msg, "cannot unmarshal "), " ")
	shown := ""
	if strings.HasPrefix(rest, "`") {
		shown, _, _ = strings.Cut(rest[1:], "`")
	}
	best := ""
	for _, p := range ix.byLine[line] {
		v := ix.value[p]
		if v == nil || len(p) <= len(best) {
			continue
		}
		var ok bool
		switch tag {
		case "!!seq":
			ok = v.Kind == yaml.SequenceNode
		case "!!map":
			ok = v.Kind == yaml.MappingNode
		default:
			short, truncated := strings.CutSuffix(shown, "...")
			ok = v.Kind == yaml.ScalarNode && (v.Value == shown || truncated && strings.HasPrefix(v.Value, short))
		}
		if ok {
			best = p
		}
	}
	if best == "" {
		return ix.pathOnLine(line, "")
	}
	return best
}

func (ix *index) describeValue(path string) string {
	v, ok := ix.value[path]
	if !ok || v == nil {
		return "something else"
	}
	if v.Kind == yaml.ScalarNode {
		s := v.Value
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return strconv.Quote(s)
	}
	return nodeKind(v)
}

func describeType(goType string) string {
	switch {
	case goType == "int":
		return "a whole number"
	case goType == "float64":
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasPrefix(goType, "config."):
		return "a mapping of keys"
	}
	return goType
}

// unknownKey explains an unknown key, listing the keys allowed where it is.
func unknownKey(path, name, goType string) string {
	parent := ""
	if i := strings.LastIndex(path, "."+name); i > 0 {
		parent = path[:i]
	}
	valid := configTypeMap[goType]
	var b strings.Builder
	if parent == "" {
		fmt.Fprintf(&b, "unknown key `%s`", name)
	} else {
		fmt.Fprintf(&b, "unknown key `%s` under `%s`", name, parent)
	}
	if s := commands.Suggest(name, valid); s != "" {
		fmt.Fprintf(&b, "; did you mean `%s`?", s)
	}
	if len(valid) > 0 {
		where := "top-level keys"
		if parent != "" {
			where = "keys under " + parent
		}
		fmt.Fprintf(&b, " (%s: %s)", where, strings.Join(valid, ", "))
	}
	return b.String()
}

// structKeys maps each struct type of the config ("config.Launch") to its
// YAML keys.
func structKeys(t reflect.Type) map[string][]string {
	out := map[string][]string{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if t.Kind() != reflect.Struct || out[t.String()] != nil {
			return
		}
		var keys []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			keys = append(keys, name)
		}
		out[t.String()] = keys
		for i := 0; i < t.NumField(); i++ {
			walk(t.Field(i).Type)
		}
	}
	walk(t)
	return out
}
