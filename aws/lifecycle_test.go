package aws_test

import (
	"context"
	"errors"
	"testing"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/internal/fakeaws"
)

const instanceID = "i-0123456789abcdef0"

func TestStopStartTerminate(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()
	fake.AddInstance(fakeaws.Instance{ID: instanceID, Tags: map[string]string{computebot.TagManaged: "true"}})
	firstIP := func() string { in, _ := fake.Instance(instanceID); return in.PublicIP }()

	steps := []struct {
		name  string
		do    func(context.Context, string) (computebot.Instance, error)
		now   string // state in the answer
		after string // state once the transition is over (running delay 0)
	}{
		{"stop", c.Stop, computebot.InstanceStopping, computebot.InstanceStopped},
		{"stop again", c.Stop, computebot.InstanceStopped, computebot.InstanceStopped},
		{"start", c.Start, computebot.InstancePending, computebot.InstanceRunning},
		{"terminate", c.Terminate, computebot.InstanceShuttingDown, computebot.InstanceTerminated},
		{"terminate again", c.Terminate, computebot.InstanceTerminated, computebot.InstanceTerminated},
	}
	for _, st := range steps {
		inst, err := st.do(ctx, instanceID)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if inst.ID != instanceID || inst.State != st.now {
			t.Fatalf("%s: got %+v, want state %s", st.name, inst, st.now)
		}
		got, err := c.Instance(ctx, instanceID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != st.after {
			t.Fatalf("%s: then %s, want %s", st.name, got.State, st.after)
		}
		if st.name == "start" && (got.PublicIP == "" || got.PublicIP == firstIP) {
			t.Errorf("restarted with public IP %q (before: %q), want a new one", got.PublicIP, firstIP)
		}
	}
	for _, action := range []string{"StopInstances", "StartInstances", "TerminateInstances"} {
		calls := fake.Calls(action)
		if len(calls) == 0 || calls[0].Params.Get("InstanceId.1") != instanceID || calls[0].Params.Has("InstanceId.2") {
			t.Errorf("%s calls = %+v", action, calls)
		}
	}
}

func TestLifecycleErrors(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()
	fake.AddInstance(fakeaws.Instance{ID: instanceID, State: "terminated"})

	t.Run("wrong state, EC2's usual text", func(t *testing.T) {
		_, err := c.Start(ctx, instanceID)
		ce := wantCode(t, err, "IncorrectInstanceState")
		if want := "Instance " + instanceID + " is not in a state that allows this; it can't be started right now."; ce.Message != want {
			t.Errorf("Message = %q\n want %q", ce.Message, want)
		}
		_, err = c.Stop(ctx, instanceID)
		ce = wantCode(t, err, "IncorrectInstanceState")
		if want := "Instance " + instanceID + " is not in a state that allows this; it can't be stopped right now."; ce.Message != want {
			t.Errorf("Message = %q", ce.Message)
		}
	})
	t.Run("wrong state named by AWS", func(t *testing.T) {
		fake.FailNext("StartInstances", "IncorrectInstanceState", "The instance '"+instanceID+"' is in state 'stopping' and cannot be started.", 1)
		_, err := c.Start(ctx, instanceID)
		ce := wantCode(t, err, "IncorrectInstanceState")
		if want := "Instance " + instanceID + " is stopping, so it can't be started."; ce.Message != want {
			t.Errorf("Message = %q\n want %q", ce.Message, want)
		}
	})
	t.Run("unknown instance", func(t *testing.T) {
		for name, do := range map[string]func(context.Context, string) (computebot.Instance, error){
			"stop": c.Stop, "start": c.Start, "terminate": c.Terminate,
		} {
			_, err := do(ctx, "i-0fffffffffffffff0")
			ce := wantCode(t, err, "InvalidInstanceID.NotFound")
			if !errors.Is(err, computebot.ErrNotFound) || ce.Message != "Instance i-0fffffffffffffff0 does not exist in this region." {
				t.Errorf("%s: %v", name, err)
			}
		}
		_, err := c.Stop(ctx, "i-nothex")
		wantCode(t, err, "InvalidInstanceID.Malformed")
		if !errors.Is(err, computebot.ErrNotFound) {
			t.Error("malformed ID does not wrap ErrNotFound")
		}
	})
	t.Run("not allowed", func(t *testing.T) {
		for action, do := range map[string]func(context.Context, string) (computebot.Instance, error){
			"StopInstances": c.Stop, "StartInstances": c.Start, "TerminateInstances": c.Terminate,
		} {
			fake.FailNext(action, "UnauthorizedOperation", "", 1)
			_, err := do(ctx, instanceID)
			ce := wantCode(t, err, "UnauthorizedOperation")
			if want := "The bot's AWS role is not allowed to call ec2:" + action + " (UnauthorizedOperation). Ask an admin to check the IAM policy."; ce.Message != want {
				t.Errorf("Message = %q\n want %q", ce.Message, want)
			}
		}
	})
	if got, _ := fake.Instance(instanceID); got.State != "terminated" {
		t.Errorf("state changed to %s by failed calls", got.State)
	}
}

func TestTag(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()
	fake.AddInstance(fakeaws.Instance{ID: instanceID, Tags: map[string]string{
		computebot.TagManaged: "true", computebot.TagExpiresAt: "2026-11-28T16:00:00Z",
	}})

	err := c.Tag(ctx, instanceID, map[string]string{computebot.TagExpiresAt: "2026-11-28T20:00:00Z", "b": "2", "a": "1"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := fake.Instance(instanceID)
	want := map[string]string{computebot.TagManaged: "true", computebot.TagExpiresAt: "2026-11-28T20:00:00Z", "a": "1", "b": "2"}
	if len(got.Tags) != len(want) {
		t.Errorf("tags = %v, want %v", got.Tags, want)
	}
	for k, v := range want {
		if got.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, got.Tags[k], v)
		}
	}
	p := fake.Calls("CreateTags")[0].Params
	if p.Get("ResourceId.1") != instanceID || p.Get("Tag.1.Key") != "a" || p.Get("Tag.3.Key") != computebot.TagExpiresAt {
		t.Errorf("params = %v", p)
	}

	if err := c.Tag(ctx, instanceID, nil); err != nil || fake.CallCount("CreateTags") != 1 {
		t.Errorf("no tags: %v, %d calls", err, fake.CallCount("CreateTags"))
	}

	err = c.Tag(ctx, "i-0fffffffffffffff0", map[string]string{"a": "1"})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	if !errors.Is(err, computebot.ErrNotFound) {
		t.Error("does not wrap ErrNotFound")
	}
	fake.FailNext("CreateTags", "UnauthorizedOperation", "", 1)
	err = c.Tag(ctx, instanceID, map[string]string{"a": "1"})
	if ce := wantCode(t, err, "UnauthorizedOperation"); ce.Message != "The bot's AWS role is not allowed to call ec2:CreateTags (UnauthorizedOperation). Ask an admin to check the IAM policy." {
		t.Errorf("Message = %q", ce.Message)
	}
}
