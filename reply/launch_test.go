package reply

import (
	"testing"
	"time"

	"github.com/computebot/computebot"
)

func TestPrice(t *testing.T) {
	cases := []struct {
		perHour float64
		known   bool
		lease   time.Duration
		want    string
	}{
		{0.0116, true, 4 * time.Hour, "≈ $0.0116/h, ≈ $0.05 for the lease"},
		{0.0208, true, 8 * time.Hour, "≈ $0.0208/h, ≈ $0.17 for the lease"},
		{0.015, true, 10 * time.Hour, "≈ $0.015/h, ≈ $0.15 for the lease"},
		{1.2, true, 90 * time.Minute, "≈ $1.20/h, ≈ $1.80 for the lease"},
		{0, false, time.Hour, "price unknown"},
	}
	for _, tc := range cases {
		r := &computebot.LaunchRequest{PricePerHour: tc.perHour, PriceKnown: tc.known, Lease: tc.lease}
		if got := Price(r); got != tc.want {
			t.Errorf("Price(%v/h, %v) = %q, want %q", tc.perHour, tc.lease, got, tc.want)
		}
	}
}

func TestUnits(t *testing.T) {
	if got := GiB(1024); got != "1 GiB" {
		t.Errorf("GiB(1024) = %q", got)
	}
	if got := GiB(512); got != "0.5 GiB" {
		t.Errorf("GiB(512) = %q", got)
	}
	if got := Hours(4 * time.Hour); got != "4 h" {
		t.Errorf("Hours = %q", got)
	}
	if got := Hours(90 * time.Minute); got != "90 min" {
		t.Errorf("Hours = %q", got)
	}
}

func TestSSHUser(t *testing.T) {
	cases := []struct{ configured, image, want string }{
		{"", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20241001", "ubuntu"},
		{"", "debian-12-amd64-20241004-1890", "admin"},
		{"", "al2023-ami-2023.6.20241010.0-kernel-6.1-x86_64", "ec2-user"},
		{"", "", "ec2-user"},
		{"centos", "ubuntu-anything", "centos"},
	}
	for _, tc := range cases {
		if got := SSHUser(tc.configured, tc.image); got != tc.want {
			t.Errorf("SSHUser(%q, %q) = %q, want %q", tc.configured, tc.image, got, tc.want)
		}
	}
}
