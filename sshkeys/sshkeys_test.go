package sshkeys_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
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
	if sshkeys.LooksPrivate("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG ana") || sshkeys.LooksPrivate("launch t2.micro") {
		t.Error("a public key or a command looks private")
	}
	if !sshkeys.LooksPrivate("add -----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA") {
		t.Error("a pasted private key block is not recognised")
	}
}
