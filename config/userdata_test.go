package config

import "testing"

func TestUserDataKeepsTheDocument(t *testing.T) {
	doc := "#cloud-config\n# upgrade first\npackage_upgrade: yes\nssh_pwauth: no\nssh_authorized_keys:\n  - ssh-ed25519 AAAAadmin admin\n"
	got, err := UserData(doc, []string{"ssh-ed25519 AAAAana ana"})
	if err != nil {
		t.Fatal(err)
	}
	want := "#cloud-config\n# upgrade first\npackage_upgrade: yes\nssh_pwauth: no\nssh_authorized_keys:\n  - ssh-ed25519 AAAAadmin admin\n  - ssh-ed25519 AAAAana ana\n"
	if got != want {
		t.Errorf("UserData =\n%s\nwant\n%s", got, want)
	}
	got, err = UserData("", []string{"ssh-ed25519 AAAAana ana"})
	if err != nil || got != "#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 AAAAana ana\n" {
		t.Errorf("keys alone: %q, %v", got, err)
	}
	if got, err := UserData("", nil); got != "" || err != nil {
		t.Errorf("nothing: %q, %v", got, err)
	}
	got, err = UserData("#cloud-config\n", []string{"k1"})
	if err != nil || got != "#cloud-config\nssh_authorized_keys:\n  - k1\n" {
		t.Errorf("header only: %q, %v", got, err)
	}
}
