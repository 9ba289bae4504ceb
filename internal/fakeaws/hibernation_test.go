package fakeaws

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// hibernateInput is launchInput of typ with HibernationOptions.Configured
// and, when rootGiB > 0, that root volume size.
func hibernateInput(token string, typ ec2types.InstanceType, rootGiB int32) *ec2.RunInstancesInput {
	in := launchInput(token)
	in.InstanceType = typ
	in.HibernationOptions = &ec2types.HibernationOptionsRequest{Configured: aws.Bool(true)}
	if rootGiB > 0 {
		in.BlockDeviceMappings[0].Ebs.VolumeSize = aws.Int32(rootGiB)
	}
	return in
}

func TestDescribeInstancesCPUAndHibernationOptions(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	for _, tc := range []struct {
		typ            ec2types.InstanceType
		hibernate      bool
		cores, threads int32
	}{
		{"t2.micro", false, 1, 1},
		{"t3.medium", true, 1, 2},
		{"c5.xlarge", false, 2, 2},
		{"p3.2xlarge", false, 4, 2},
	} {
		in := launchInput("")
		in.InstanceType = tc.typ
		in.BlockDeviceMappings[0].Ebs.VolumeSize = aws.Int32(64)
		if tc.hibernate {
			in.HibernationOptions = &ec2types.HibernationOptionsRequest{Configured: aws.Bool(true)}
		}
		out, err := c.RunInstances(ctx(t), in)
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		// The RunInstances answer and DescribeInstances say the same.
		for _, got := range []ec2types.Instance{out.Instances[0], describeOne(t, c, aws.ToString(out.Instances[0].InstanceId))} {
			if got.CpuOptions == nil || aws.ToInt32(got.CpuOptions.CoreCount) != tc.cores || aws.ToInt32(got.CpuOptions.ThreadsPerCore) != tc.threads {
				t.Errorf("%s cpu options %+v, want %d cores × %d threads", tc.typ, got.CpuOptions, tc.cores, tc.threads)
			}
			if got.HibernationOptions == nil || aws.ToBool(got.HibernationOptions.Configured) != tc.hibernate {
				t.Errorf("%s hibernation options %+v, want configured %v", tc.typ, got.HibernationOptions, tc.hibernate)
			}
		}
	}
	// A seeded instance of a type the fake does not know: one vCPU.
	s.AddInstance(Instance{ID: "i-0000000000000000a", Type: "z9.huge"})
	if got := describeOne(t, c, "i-0000000000000000a"); got.CpuOptions == nil || aws.ToInt32(got.CpuOptions.CoreCount) != 1 ||
		got.HibernationOptions == nil || aws.ToBool(got.HibernationOptions.Configured) {
		t.Errorf("seeded instance %+v %+v", got.CpuOptions, got.HibernationOptions)
	}
}

func TestRunInstancesHibernation(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)

	// t3.medium (4 GiB) with the image's 8 GiB encrypted root: accepted.
	out, err := c.RunInstances(ctx(t), hibernateInput("", "t3.medium", 0))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Instance(aws.ToString(out.Instances[0].InstanceId))
	if !got.HibernationConfigured || got.RootVolumeGiB != 8 || !got.RootEncrypted || got.Hibernated {
		t.Errorf("snapshot %+v", got)
	}
	if p := s.Calls("RunInstances")[0].Params; p.Get("HibernationOptions.Configured") != "true" {
		t.Errorf("params %v", p)
	}

	refused := []struct {
		name string
		in   *ec2.RunInstancesInput
		want string
	}{
		{"type without hibernation", hibernateInput("", "g5.xlarge", 100), "g5.xlarge does not support hibernation"},
		{"root too small for 16 GiB", hibernateInput("", "g4dn.xlarge", 0), "large enough"},
		{"root 15 GiB for 16 GiB", hibernateInput("", "g4dn.xlarge", 15), "large enough"},
		{"unencrypted root", func() *ec2.RunInstancesInput {
			in := hibernateInput("", "t3.small", 0)
			in.BlockDeviceMappings[0].Ebs.Encrypted = aws.Bool(false)
			return in
		}(), "must be encrypted"},
		{"encrypted volume that is not the root", func() *ec2.RunInstancesInput {
			in := hibernateInput("", "t3.small", 0)
			in.BlockDeviceMappings[0].DeviceName = aws.String("/dev/sdf")
			return in
		}(), "must be encrypted"},
		{"no mapping at all", func() *ec2.RunInstancesInput {
			in := hibernateInput("", "t3.small", 0)
			in.BlockDeviceMappings = nil
			return in
		}(), "must be encrypted"},
	}
	s.AddInstanceType(InstanceType{Name: "r5.12xlarge", VCPUs: 48, MemoryMiB: 393216, Hibernation: true})
	refused = append(refused, struct {
		name string
		in   *ec2.RunInstancesInput
		want string
	}{"more than 150 GiB of memory", hibernateInput("", "r5.12xlarge", 500), "150 GiB"})
	for _, tc := range refused {
		_, err := c.RunInstances(ctx(t), tc.in)
		wantAPIError(t, err, "UnsupportedHibernationConfiguration", http.StatusBadRequest)
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: message %v, want %q", tc.name, err, tc.want)
		}
	}
	if n := len(s.Instances()); n != 1 {
		t.Fatalf("refused launches left %d instances, want 1", n)
	}

	// The same refusals do not apply without HibernationOptions.
	plain := hibernateInput("", "g5.xlarge", 0)
	plain.HibernationOptions = nil
	out, err = c.RunInstances(ctx(t), plain)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Instance(aws.ToString(out.Instances[0].InstanceId)); got.HibernationConfigured || got.RootVolumeGiB != 8 {
		t.Errorf("plain g5 %+v", got)
	}

	// 16 GiB root for 16 GiB of memory is enough; so is an image whose own
	// root snapshot is large enough.
	out, err = c.RunInstances(ctx(t), hibernateInput("", "g4dn.xlarge", 16))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Instance(aws.ToString(out.Instances[0].InstanceId)); !got.HibernationConfigured || got.RootVolumeGiB != 16 {
		t.Errorf("g4dn with 16 GiB %+v", got)
	}
	s.AddImage(Image{ID: "ami-0ddddddddddddddd4", Name: "dl-base", RootVolumeGiB: 45})
	big := hibernateInput("", "g4dn.xlarge", 0)
	big.ImageId = aws.String("ami-0ddddddddddddddd4")
	out, err = c.RunInstances(ctx(t), big)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Instance(aws.ToString(out.Instances[0].InstanceId)); got.RootVolumeGiB != 45 {
		t.Errorf("root of the 45 GiB image: %d GiB", got.RootVolumeGiB)
	}
}

// TestHibernationOptionsInClientTokenFingerprint: HibernationOptions is a
// parameter like any other for idempotency, and a refused launch does not
// use its token up.
func TestHibernationOptionsInClientTokenFingerprint(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	_, err := c.RunInstances(ctx(t), hibernateInput("hib-1", "g4dn.xlarge", 0)) // root too small
	wantAPIError(t, err, "UnsupportedHibernationConfiguration", 0)
	first, err := c.RunInstances(ctx(t), hibernateInput("hib-1", "g4dn.xlarge", 20))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.RunInstances(ctx(t), hibernateInput("hib-1", "g4dn.xlarge", 20))
	if err != nil || aws.ToString(again.Instances[0].InstanceId) != aws.ToString(first.Instances[0].InstanceId) {
		t.Fatalf("replay: %v %v", again, err)
	}
	without := hibernateInput("hib-1", "g4dn.xlarge", 20)
	without.HibernationOptions = nil
	_, err = c.RunInstances(ctx(t), without)
	wantAPIError(t, err, "IdempotentParameterMismatch", http.StatusBadRequest)
	if n := len(s.Instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
}

func TestStopInstancesHibernate(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	plainOut, err := c.RunInstances(ctx(t), launchInput(""))
	if err != nil {
		t.Fatal(err)
	}
	plain := aws.ToString(plainOut.Instances[0].InstanceId)
	hibOut, err := c.RunInstances(ctx(t), hibernateInput("", "t3.small", 0))
	if err != nil {
		t.Fatal(err)
	}
	hib := aws.ToString(hibOut.Instances[0].InstanceId)
	describeOne(t, c, hib) // pending → running
	hibernate := func(ids ...string) (*ec2.StopInstancesOutput, error) {
		return c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: ids, Hibernate: aws.Bool(true)})
	}
	wantState := func(id, state string, hibernated bool) {
		t.Helper()
		got, _ := s.Instance(id)
		if got.State != state || got.Hibernated != hibernated {
			t.Errorf("%s: %s hibernated=%v, want %s hibernated=%v", id, got.State, got.Hibernated, state, hibernated)
		}
	}

	// Not launched for hibernation: EC2's refusal, nothing changes.
	_, err = hibernate(plain)
	wantAPIError(t, err, "UnsupportedHibernationConfiguration", http.StatusBadRequest)
	if !strings.Contains(err.Error(), "not configured at launch for hibernation: "+plain) {
		t.Errorf("message %v", err)
	}
	wantState(plain, stateRunning, false)
	// All or nothing: one refusal stops neither.
	_, err = hibernate(hib, plain)
	wantAPIError(t, err, "UnsupportedHibernationConfiguration", 0)
	wantState(hib, stateRunning, false)

	// RefuseHibernation holds until cleared.
	s.RefuseHibernation(hib, "UnsupportedOperation", "Instance "+hib+" is not ready to hibernate yet, retry in a few minutes")
	for range 2 {
		_, err = hibernate(hib)
		wantAPIError(t, err, "UnsupportedOperation", http.StatusBadRequest)
		if !strings.Contains(err.Error(), "not ready to hibernate") {
			t.Errorf("message %v", err)
		}
	}
	s.RefuseHibernation(hib, "UnsupportedHibernationConfiguration", "hibernation agent not ready")
	_, err = hibernate(hib)
	wantAPIError(t, err, "UnsupportedHibernationConfiguration", http.StatusBadRequest)
	wantState(hib, stateRunning, false)
	// A plain stop is not a hibernation: the refusal does not apply to it.
	// (Checked on the other instance, then restarted.)
	s.RefuseHibernation(plain, "UnsupportedOperation", "")
	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{plain}}); err != nil {
		t.Fatalf("plain stop refused: %v", err)
	}
	s.RefuseHibernation(hib, "", "")

	// Hibernated: stopping, then stopped, with EC2's state reason.
	out, err := hibernate(hib)
	if err != nil {
		t.Fatal(err)
	}
	if sc := out.StoppingInstances[0]; sc.CurrentState.Name != ec2types.InstanceStateNameStopping || sc.PreviousState.Name != ec2types.InstanceStateNameRunning {
		t.Errorf("hibernate change %+v %+v", sc.CurrentState, sc.PreviousState)
	}
	wantState(hib, stateStopped, true) // running delay 0: stopped at the next look
	got := describeOne(t, c, hib)
	if got.State.Name != ec2types.InstanceStateNameStopped || got.StateReason == nil || aws.ToString(got.StateReason.Code) != "Client.UserInitiatedHibernate" {
		t.Errorf("after hibernate: %s %+v", got.State.Name, got.StateReason)
	}
	wantState(hib, stateStopped, true)
	// Hibernating a stopped instance changes nothing, and is no error.
	if _, err := hibernate(hib); err != nil {
		t.Errorf("hibernate of a stopped instance: %v", err)
	}
	wantState(hib, stateStopped, true)
	calls := s.Calls("StopInstances")
	if last := calls[len(calls)-1]; last.Params.Get("Hibernate") != "true" || last.Params.Get("InstanceId.1") != hib || last.ErrorCode != "" {
		t.Errorf("last call %+v", last)
	}
	if refusedCall := calls[0]; refusedCall.ErrorCode != "UnsupportedHibernationConfiguration" {
		t.Errorf("first call %+v", refusedCall)
	}

	// A start clears it; a plain stop then is a plain stop.
	if _, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{hib}}); err != nil {
		t.Fatal(err)
	}
	wantState(hib, stateRunning, false)
	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{hib}}); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, c, hib); got.StateReason == nil || aws.ToString(got.StateReason.Code) != "Client.UserInitiatedShutdown" {
		t.Errorf("plain stop state reason %+v", got.StateReason)
	}
	wantState(hib, stateStopped, false)
}

func TestHibernateHonoursRunningDelay(t *testing.T) {
	s := newFake(t)
	s.SetRunningDelay(50 * time.Millisecond)
	c := ec2Client(s)
	s.AddInstance(Instance{ID: "i-0000000000000000b", Type: "m5.large", HibernationConfigured: true})
	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{"i-0000000000000000b"}, Hibernate: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, c, "i-0000000000000000b"); got.State.Name != ec2types.InstanceStateNameStopping {
		t.Errorf("state %s before the delay", got.State.Name)
	}
	time.Sleep(60 * time.Millisecond)
	if got, _ := s.Instance("i-0000000000000000b"); got.State != stateStopped || !got.Hibernated {
		t.Errorf("after the delay %+v", got)
	}
}

const g5NoCapacity = "We currently do not have sufficient g5.xlarge capacity in the Availability Zone you requested (us-east-1a). " +
	"Our system will be working on provisioning additional capacity. " +
	"You can currently get g5.xlarge capacity by not specifying an Availability Zone in your request or choosing us-east-1b, us-east-1c."

func TestSetNoCapacity(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	g5 := func(token, subnet string) *ec2.RunInstancesInput {
		in := launchInput(token)
		in.InstanceType = "g5.xlarge"
		in.SubnetId = nil
		if subnet != "" {
			in.SubnetId = aws.String(subnet)
		}
		return in
	}
	s.SetNoCapacity("g5.xlarge", "subnet-0public", true)
	_, err := c.RunInstances(ctx(t), g5("cap-1", "subnet-0public"))
	wantAPIError(t, err, "InsufficientInstanceCapacity", http.StatusInternalServerError)
	if !strings.Contains(err.Error(), g5NoCapacity) {
		t.Errorf("message %v", err)
	}
	if n := len(s.Instances()); n != 0 {
		t.Fatalf("%d instances launched without capacity", n)
	}
	if calls := s.Calls("RunInstances"); len(calls) != 1 || calls[0].ErrorCode != "InsufficientInstanceCapacity" {
		t.Errorf("calls %+v", calls)
	}
	// Another subnet, no subnet, another type: capacity.
	if _, err := c.RunInstances(ctx(t), g5("", "subnet-0other")); err != nil {
		t.Errorf("other subnet: %v", err)
	}
	if _, err := c.RunInstances(ctx(t), g5("", "")); err != nil {
		t.Errorf("no subnet: %v", err)
	}
	other := g5("", "subnet-0public")
	other.InstanceType = "g6.xlarge"
	if _, err := c.RunInstances(ctx(t), other); err != nil {
		t.Errorf("other type: %v", err)
	}
	// A dry run is answered DryRunOperation: capacity is not its concern.
	dry := g5("", "subnet-0public")
	dry.DryRun = aws.Bool(true)
	_, err = c.RunInstances(ctx(t), dry)
	wantAPIError(t, err, "DryRunOperation", 0)

	// Capacity back: the same token launches.
	s.SetNoCapacity("g5.xlarge", "subnet-0public", false)
	out, err := c.RunInstances(ctx(t), g5("cap-1", "subnet-0public"))
	if err != nil {
		t.Fatal(err)
	}
	// Once launched, a replay of the token answers the instance even
	// when capacity is gone again.
	s.SetNoCapacity("g5.xlarge", "subnet-0public", true)
	again, err := c.RunInstances(ctx(t), g5("cap-1", "subnet-0public"))
	if err != nil || aws.ToString(again.Instances[0].InstanceId) != aws.ToString(out.Instances[0].InstanceId) {
		t.Errorf("replay: %v %v", again, err)
	}

	// Subnet "" is every subnet, with or without a SubnetId.
	s.SetNoCapacity("t3.small", "", true)
	for _, subnet := range []string{"", "subnet-0public", "subnet-0other"} {
		in := g5("", subnet)
		in.InstanceType = "t3.small"
		_, err := c.RunInstances(ctx(t), in)
		wantAPIError(t, err, "InsufficientInstanceCapacity", http.StatusInternalServerError)
		if !strings.Contains(err.Error(), "sufficient t3.small capacity") {
			t.Errorf("message %v", err)
		}
	}
	s.SetNoCapacity("t3.small", "", false)
	in := g5("", "")
	in.InstanceType = "t3.small"
	if _, err := c.RunInstances(ctx(t), in); err != nil {
		t.Errorf("capacity back: %v", err)
	}
}

// TestNoCapacityUnderSDKRetries documents what SetNoCapacity's doc says:
// InsufficientInstanceCapacity is an HTTP 500, which the SDK's standard
// retryer retries by itself (the bot's own classification aside), each
// attempt refused without launching or using the token up.
func TestNoCapacityUnderSDKRetries(t *testing.T) {
	s := newFake(t)
	cfg := sdkConfig()
	cfg.RetryMaxAttempts = 0 // else it overrides the retryer's MaxAttempts
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
	c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	s.SetNoCapacity("t2.micro", "", true)
	_, err := c.RunInstances(ctx(t), launchInput("retried"))
	wantAPIError(t, err, "InsufficientInstanceCapacity", http.StatusInternalServerError)
	if n, calls := len(s.Instances()), s.CallCount("RunInstances"); n != 0 || calls != 3 {
		t.Errorf("%d instances in %d calls, want 0 in 3", n, calls)
	}
	s.SetNoCapacity("t2.micro", "", false)
	launch(t, ec2Client(s), "retried")
}
