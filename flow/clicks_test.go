package flow_test

import (
	"reflect"
	"testing"

	"github.com/computebot/computebot/commands"
	"github.com/computebot/computebot/flow"
	"github.com/computebot/computebot/reply"
)

// TestClick: every button's action ID and value, and the values no
// button of ours carries.
func TestClick(t *testing.T) {
	for _, tc := range []struct {
		action, value string
		name          string           // the command's name; "" for an error
		want          commands.Command // for the exported command types
	}{
		{action: reply.ActionApprove, value: "R-ABC", name: "approve"},
		{action: reply.ActionDeny, value: "R-ABC", name: "deny"},
		{action: reply.ActionApprove, value: ""},
		{action: reply.ActionDeny, value: ""},
		{action: reply.ActionStop, value: boxID, name: "stop", want: &commands.Stop{Target: boxID}},
		{action: reply.ActionStart, value: boxID, name: "start", want: &commands.Start{Target: boxID}},
		{action: reply.ActionTerminate, value: boxID, name: "terminate", want: &commands.Terminate{Target: boxID}},
		{action: reply.ActionExtend, value: boxID + "|4", name: "extend", want: &commands.Extend{Target: boxID, Hours: 4}},
		{action: reply.ActionExtend, value: boxID},
		{action: reply.ActionExtend, value: boxID + "|x"},
		{action: reply.ActionExtend, value: boxID + "|0"},
		{action: reply.ActionExtend, value: boxID + "|-4"},
		{action: reply.ActionKeepRunning, value: boxID, name: "keep running"},
		{action: reply.ActionStopNow, value: boxID, name: "stop now"},
		{action: reply.ActionPage, value: "instances|mine|20", name: "page"},
		{action: reply.ActionPage, value: "instances|all|0", name: "page"},
		{action: reply.ActionPage, value: "lambda||40", name: "page"},
		{action: reply.ActionPage, value: "lambda|40"},
		{action: reply.ActionPage, value: "instances|mine|x"},
		{action: reply.ActionPage, value: "instances|mine|-1"},
		{action: reply.ActionPage, value: "a|b|1|2"},
		{action: "instance_reboot", value: boxID},
		{action: "", value: ""},
	} {
		cmd, err := flow.Click(tc.action, tc.value, "1700000000.000001")
		if tc.name == "" {
			if err == nil {
				t.Errorf("Click(%q, %q) = %v, want an error", tc.action, tc.value, cmd)
			}
			continue
		}
		if err != nil {
			t.Errorf("Click(%q, %q): %v", tc.action, tc.value, err)
			continue
		}
		if got := cmd.CommandName(); got != tc.name {
			t.Errorf("Click(%q, %q) is %q, want %q", tc.action, tc.value, got, tc.name)
		}
		if tc.want != nil && !reflect.DeepEqual(cmd, tc.want) {
			t.Errorf("Click(%q, %q) = %#v, want %#v", tc.action, tc.value, cmd, tc.want)
		}
	}
}

// TestButtonsParse: every button the replies put on a message is a click
// Click understands (the extend value included).
func TestButtonsParse(t *testing.T) {
	for _, state := range []string{"running", "stopped", "pending"} {
		for _, b := range reply.InstanceButtons(managed(boxID, ana, "box", state, epoch, "R-BOX")) {
			if _, err := flow.Click(b.ActionID, b.Value, "1700000000.000001"); err != nil {
				t.Errorf("%s instance, button %q: %v", state, b.Text, err)
			}
		}
	}
}
