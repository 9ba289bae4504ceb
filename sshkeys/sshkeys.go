// Package sshkeys reads the public keys people register with /sshkey add,
// and recognises a private key pasted by mistake, so that one is never
// stored, echoed or logged. It parses with golang.org/x/crypto/ssh; it
// knows nothing of Slack or AWS.
package sshkeys

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// MinRSABits is the smallest RSA key accepted (NIST's 128-bit level).
const MinRSABits = 3072

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

func (e *UnsupportedError) Error() string { return fmt.Sprintf("%s keys are not accepted", e.Type) }

// LooksPrivate reports whether text holds a private key: any PEM block
// whose type says PRIVATE KEY (also a truncated one), or anything
// x/crypto/ssh parses as a private key. Callers check every text people
// type with it before they store or repeat it.
func LooksPrivate(text string) bool {
	if strings.Contains(strings.ToUpper(text), "PRIVATE KEY") {
		return true
	}
	// A key pasted where the chat joined its lines with spaces.
	for _, candidate := range []string{text, strings.ReplaceAll(text, " ", "\n")} {
		if _, err := ssh.ParseRawPrivateKey([]byte(candidate)); err == nil {
			return true
		}
	}
	return false
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
	default:
		return Key{}, &UnsupportedError{Type: pub.Type()}
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
