package sshkeys_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/computebot/computebot/sshkeys"
)

func authorized(t *testing.T, pub any, comment string) string {
	t.Helper()
	p, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p))) + " " + comment
}

func TestParse(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa3072, _ := rsa.GenerateKey(rand.Reader, 3072)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	privPEM, err := ssh.MarshalPrivateKey(edPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, text, label   string
		wantLabel, wantType string
		wantErr             error
		weak                bool
	}{
		{name: "ed25519 with comment", text: authorized(t, edPub, "ana@laptop"), wantLabel: "ana@laptop", wantType: "ssh-ed25519"},
		{name: "label wins", text: authorized(t, edPub, "ana@laptop"), label: "work laptop", wantLabel: "work-laptop", wantType: "ssh-ed25519"},
		{name: "ecdsa", text: authorized(t, &ec.PublicKey, ""), wantType: "ecdsa-sha2-nistp256"},
		{name: "rsa 3072", text: authorized(t, &rsa3072.PublicKey, "old"), wantLabel: "old", wantType: "ssh-rsa"},
		{name: "rsa 2048 is weak", text: authorized(t, &rsa2048.PublicKey, "old"), weak: true},
		{name: "not a key", text: "hello world", wantErr: sshkeys.ErrNotAKey},
		{name: "options are not accepted", text: `command="rm -rf /" ` + authorized(t, edPub, "x"), wantErr: sshkeys.ErrNotAKey},
		{name: "a private key", text: string(pem.EncodeToMemory(privPEM)), wantErr: sshkeys.ErrPrivateKey},
		{name: "a private key on one line", text: strings.ReplaceAll(string(pem.EncodeToMemory(privPEM)), "\n", " "), wantErr: sshkeys.ErrPrivateKey},
		{name: "a truncated private key", text: "-----BEGIN RSA PRIVATE KEY----- MIIEow", wantErr: sshkeys.ErrPrivateKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := sshkeys.Parse(tc.text, tc.label)
			var weak *sshkeys.WeakKeyError
			switch {
			case tc.weak:
				if !errors.As(err, &weak) || weak.Bits != 2048 {
					t.Fatalf("err = %v, want a weak key of 2048 bits", err)
				}
				return
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if k.Type != tc.wantType || !strings.HasPrefix(k.Fingerprint, "SHA256:") {
				t.Errorf("key %+v", k)
			}
			if tc.wantLabel != "" && k.Label != tc.wantLabel {
				t.Errorf("label %q, want %q", k.Label, tc.wantLabel)
			}
			if k.Label == "" || !strings.HasSuffix(k.Line, " "+k.Label) || !strings.HasPrefix(k.Line, k.Type+" AAAA") {
				t.Errorf("line %q, label %q", k.Line, k.Label)
			}
		})
	}
}

func TestLooksPrivate(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(edPriv, "ana")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(block))), "\n")
	body := strings.Join(lines[1:len(lines)-1], "\n")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs1 := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PrivateKey(rsaKey))
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		text    string
		private bool
	}{
		{authorized(t, edPub, "ana@laptop"), false},
		{"launch t2.micro", false},
		{`launch t3.micro --reason "rotate the private key on the build box"`, false},
		{"help private keys", false},
		{"add -----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA", true},
		{"add -----BEGIN\u00a0RSA\u00a0PRIVATE KEY-----", true},
		{"-----END PRIVATE KEY-----", true},
		{"add " + body, true},                               // the body alone, lines kept
		{"add " + strings.ReplaceAll(body, "\n", ""), true}, // … or joined
		{"add " + strings.ReplaceAll(body, "\n", " "), true},
		{"add " + pkcs1, true},
		{"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none", true},
	} {
		if got := sshkeys.LooksPrivate(tc.text); got != tc.private {
			t.Errorf("LooksPrivate(%.60q) = %v, want %v", tc.text, got, tc.private)
		}
	}
}
