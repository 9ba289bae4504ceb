// Package sshkeys reads the public keys people register with /sshkey add,
// and recognises a private key pasted by mistake, so that one is never
// stored, echoed or logged. It parses with golang.org/x/crypto/ssh; it
// knows nothing of Slack or AWS.
package sshkeys

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
)

// MinRSABits is the smallest RSA key accepted (NIST's 128-bit level);
// MaxRSABits the largest (beyond it a key is a mistake, and user data has
// 16 KB for all of them).
const (
	MinRSABits = 3072
	MaxRSABits = 8192
)

// MaxPerPerson is how many keys one person may register: a few machines.
const MaxPerPerson = 5

// Key is one registered public key.
type Key struct {
	Label       string `json:"label"`
	Type        string `json:"type"`        // ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa…
	Bits        int    `json:"bits"`        // RSA and ECDSA key sizes; 256 for ed25519
	Fingerprint string `json:"fingerprint"` // SHA256:…, as ssh-keygen -l prints it
	// Line is the key as installed in authorized_keys: type, base64 and
	// label, on one line, nothing else (no options).
	Line string `json:"line"`
}

// Errors of Parse.
var (
	// ErrPrivateKey: the text is (or holds) a private key.
	ErrPrivateKey = errors.New("that is a private key")
	// ErrNotAKey: the text is no OpenSSH public key.
	ErrNotAKey = errors.New("not an OpenSSH public key")
)

// WeakKeyError is a key of an accepted kind that is too small.
type WeakKeyError struct {
	Type      string
	Bits, Min int
}

func (e *WeakKeyError) Error() string {
	return fmt.Sprintf("%s key of %d bits; at least %d", e.Type, e.Bits, e.Min)
}

// UnsupportedError is a key of a type not accepted (DSA, certificates,
// security keys).
type UnsupportedError struct{ Type string }

func (e *UnsupportedError) Error() string { return fmt.Sprintf("%s are not accepted", e.Type) }

// LooksPrivate reports whether text holds a private key, in any of the
// shapes people paste one: a PEM block (its BEGIN or END line, whatever
// the spacing, also cut short), the base64 body of one without its header
// lines (an OpenSSH, PKCS#1, PKCS#8 or SEC 1 key, on one line or several),
// or a PuTTY key file. Callers check every text people type with it before
// they store or repeat it. Words about keys ("rotate the private key")
// are not keys.
func LooksPrivate(text string) bool {
	if pemPrivateRE.MatchString(text) || strings.Contains(text, "PuTTY-User-Key-File-") {
		return true
	}
	for _, run := range base64Runs(text) {
		if privateDER(run) {
			return true
		}
	}
	return false
}

// pemPrivateRE matches the armour line of a PEM private key block (the
// spaces may be any, even non-breaking ones a chat client put there).
var pemPrivateRE = regexp.MustCompile(`(?i)-{3,}\s*(BEGIN|END)[\s\p{Zs}]+([A-Z0-9]+[\s\p{Zs}]+)*PRIVATE[\s\p{Zs}]+KEY`)

// base64Runs are the long runs of base64 in text, whitespace between
// base64 lines joined: where a pasted key body would be.
func base64Runs(text string) []string {
	var runs []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() >= 64 {
			runs = append(runs, cur.String())
		}
		cur.Reset()
	}
	for _, word := range strings.Fields(text) {
		// A run starts with a long word (a body's lines are 64 to 76
		// characters), so a short word before it ("add") stays out; its
		// last line may be short.
		if isBase64(word) && (len(word) >= 20 || cur.Len() > 0) {
			cur.WriteString(word)
			continue
		}
		flush()
	}
	flush()
	return runs
}

func isBase64(w string) bool {
	for _, r := range w {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '=') {
			return false
		}
	}
	return w != ""
}

// privateDER reports whether b64 decodes to a private key: OpenSSH's
// format, or DER that Go's x509 parses as one.
func privateDER(b64 string) bool {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil {
			return false
		}
	}
	if bytes.HasPrefix(raw, []byte("openssh-key-v1\x00")) {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(raw); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS8PrivateKey(raw); err == nil {
		return true
	}
	_, err = x509.ParseECPrivateKey(raw)
	return err == nil
}

// Parse reads one public key in authorized_keys format ("ssh-ed25519
// AAAA… comment"), without options. label, when not empty, names it;
// else its comment does, else the start of its fingerprint.
func Parse(text, label string) (Key, error) {
	text = strings.TrimSpace(text)
	if LooksPrivate(text) {
		return Key{}, ErrPrivateKey
	}
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil || len(options) > 0 || strings.TrimSpace(string(rest)) != "" {
		return Key{}, ErrNotAKey
	}
	k := Key{Type: pub.Type(), Fingerprint: ssh.FingerprintSHA256(pub)}
	switch pub.Type() {
	case ssh.KeyAlgoED25519:
		k.Bits = 256
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		k.Bits = map[string]int{ssh.KeyAlgoECDSA256: 256, ssh.KeyAlgoECDSA384: 384, ssh.KeyAlgoECDSA521: 521}[pub.Type()]
	case ssh.KeyAlgoRSA:
		cp, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return Key{}, ErrNotAKey
		}
		rk, ok := cp.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return Key{}, ErrNotAKey
		}
		k.Bits = rk.N.BitLen()
		if k.Bits < MinRSABits {
			return Key{}, &WeakKeyError{Type: "RSA", Bits: k.Bits, Min: MinRSABits}
		}
		if k.Bits > MaxRSABits {
			return Key{}, &UnsupportedError{Type: fmt.Sprintf("RSA keys over %d bits (this one has %d)", MaxRSABits, k.Bits)}
		}
	default:
		return Key{}, &UnsupportedError{Type: pub.Type() + " keys"}
	}
	k.Label = cleanLabel(label)
	if k.Label == "" {
		k.Label = cleanLabel(comment)
	}
	if k.Label == "" {
		k.Label = strings.TrimPrefix(k.Fingerprint, "SHA256:")[:12]
	}
	k.Line = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + k.Label
	return k, nil
}

// cleanLabel keeps a label to one short word-ish line: what goes after the
// key in authorized_keys and in the bot's answers.
func cleanLabel(s string) string {
	s = strings.Join(strings.Fields(s), "-")
	var b strings.Builder
	for _, r := range s {
		if r == '-' || r == '_' || r == '.' || r == '@' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > 40 {
		out = out[:40]
	}
	return out
}
