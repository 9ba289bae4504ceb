package commands

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A token is one shell-like word.
type token struct {
	val        string
	start, end int // byte offsets of the word in the lexer's source
	// quoted: the word began with a quote, so it is always literal text —
	// never a flag, never the help keyword ("--reason '--help'").
	quoted bool
}

// lexer splits text into shell-like words, one at a time, so that a caller
// can stop early and take the rest of the text raw (a Lambda payload).
//
// Quoting follows the shell, adjusted for chat:
//   - "double quotes" group words; inside them a backslash escapes a quote
//     or a backslash. Slack's smart quotes “…” (and „…“) work the same.
//   - 'single quotes' (and ‘…’) group words literally. Because chat clients
//     turn the apostrophe of "it's" into ’, a single quote opens a quoted
//     section only at the start of a word or after "=", and closes it
//     preferably where a word ends: 'it's fine' is one word, it’s is a word.
//   - Outside quotes a backslash escapes a space, a quote or a backslash.
type lexer struct {
	src string
	pos int
}

func isSpace(r rune) bool {
	return unicode.IsSpace(r) || r == '\u200b' || r == '\ufeff' || r == '\u2060'
}

func isDoubleQuote(r rune) bool { return r == '"' || r == '“' || r == '”' || r == '„' }
func isSingleQuote(r rune) bool { return r == '\'' || r == '‘' || r == '’' }

// closesDouble reports whether c closes a double-quoted section opened by o.
// A straight quote closes only a straight quote; smart ones close smart ones
// or a straight one (people mix them when editing).
func closesDouble(o, c rune) bool {
	if o == '"' {
		return c == '"'
	}
	return c == '"' || c == '“' || c == '”'
}

func closesSingle(o, c rune) bool {
	if o == '\'' {
		return c == '\''
	}
	return isSingleQuote(c)
}

func (l *lexer) rest() string { return l.src[l.pos:] }

func (l *lexer) skipSpace() {
	for l.pos < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[l.pos:])
		if !isSpace(r) {
			return
		}
		l.pos += size
	}
}

// next returns the next word; ok is false at the end of the text. problem
// is a reply when the text cannot be split (an unterminated quote).
func (l *lexer) next() (tok token, ok bool, problem string) {
	l.skipSpace()
	if l.pos >= len(l.src) {
		return token{}, false, ""
	}
	start := l.pos
	var b strings.Builder
	var prev rune // the last rune of the word so far, -1 when none
	prev = -1
	quoted := false
	for l.pos < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[l.pos:])
		switch {
		case isSpace(r):
			return token{val: b.String(), start: start, end: l.pos, quoted: quoted}, true, ""
		case r == '\\':
			n, nsize := utf8.DecodeRuneInString(l.src[l.pos+size:])
			if l.pos+size < len(l.src) && (isSpace(n) || n == '\\' || isDoubleQuote(n) || isSingleQuote(n)) {
				b.WriteRune(n)
				prev = n
				l.pos += size + nsize
				continue
			}
			b.WriteRune(r)
		case isDoubleQuote(r):
			if l.pos == start {
				quoted = true
			}
			end, ok := l.double(r, l.pos+size, &b)
			if !ok {
				return token{}, false, unterminated(l.src[start:])
			}
			l.pos = end
			prev = r
			continue
		case isSingleQuote(r) && (prev == -1 || prev == '='):
			if l.pos == start {
				quoted = true
			}
			end, ok := l.single(r, l.pos+size, &b)
			if !ok {
				return token{}, false, unterminated(l.src[start:])
			}
			l.pos = end
			prev = r
			continue
		default:
			b.WriteRune(r)
		}
		prev = r
		l.pos += size
	}
	return token{val: b.String(), start: start, end: l.pos, quoted: quoted}, true, ""
}

// double reads a double-quoted section starting after the opening quote o
// at byte i; it returns the offset after the closing quote.
func (l *lexer) double(o rune, i int, b *strings.Builder) (int, bool) {
	for i < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[i:])
		if r == '\\' && i+size < len(l.src) {
			n, nsize := utf8.DecodeRuneInString(l.src[i+size:])
			if n == '\\' || isDoubleQuote(n) {
				b.WriteRune(n)
				i += size + nsize
				continue
			}
		}
		if closesDouble(o, r) {
			return i + size, true
		}
		b.WriteRune(r)
		i += size
	}
	return 0, false
}

// single reads a single-quoted section: it ends at the first closing quote
// followed by a space or the end of the text, else at the first closing
// quote at all.
func (l *lexer) single(o rune, i int, b *strings.Builder) (int, bool) {
	first := -1
	for j := i; j < len(l.src); {
		r, size := utf8.DecodeRuneInString(l.src[j:])
		if closesSingle(o, r) {
			if first < 0 {
				first = j
			}
			after, _ := utf8.DecodeRuneInString(l.src[j+size:])
			if j+size >= len(l.src) || isSpace(after) {
				b.WriteString(l.src[i:j])
				return j + size, true
			}
		}
		j += size
	}
	if first < 0 {
		return 0, false
	}
	_, size := utf8.DecodeRuneInString(l.src[first:])
	b.WriteString(l.src[i:first])
	return first + size, true
}

// all returns the remaining words.
func (l *lexer) all() ([]token, string) {
	var toks []token
	for {
		t, ok, problem := l.next()
		if problem != "" {
			return nil, problem
		}
		if !ok {
			return toks, ""
		}
		toks = append(toks, t)
	}
}

func unterminated(from string) string {
	return fmt.Sprintf("unterminated quote in %s: add the closing quote.", code(from))
}
