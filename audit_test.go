package computebot

import (
	"slices"
	"testing"
)

func TestAuditFilter(t *testing.T) {
	log := []AuditEntry{
		{Action: "approve", Actor: "UBO", RequestID: "R1"},
		{Action: "launch", Actor: "UBO", RequestID: "R1", Target: "i-1"},
		{Action: "deny", Actor: "UBO", RequestID: "R2"},
		{Action: "stop", Actor: "UANA", Target: "i-1"},
		{Action: "stop", Actor: "UANA", Target: "i-2"},
		{Action: "invoke", Actor: "UANA", Target: "report"},
	}
	actions := func(es []AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Action+" "+e.Target)
		}
		return out
	}
	for _, tc := range []struct {
		f    AuditFilter
		want []string
	}{
		{AuditFilter{}, actions(log)},
		{AuditFilter{Instance: "i-1"}, []string{"approve ", "launch i-1", "stop i-1"}},
		{AuditFilter{Instance: "i-2"}, []string{"stop i-2"}},
		{AuditFilter{Instance: "i-9"}, nil},
		{AuditFilter{User: "UANA"}, []string{"stop i-1", "stop i-2", "invoke report"}},
		{AuditFilter{Instance: "i-1", User: "UBO"}, []string{"approve ", "launch i-1"}},
	} {
		if got := actions(tc.f.Keep(log)); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
	}
}
