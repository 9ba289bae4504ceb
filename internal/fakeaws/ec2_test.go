package fakeaws

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

var sdkInstanceID = regexp.MustCompile(`^i-[0-9a-f]{17}$`)

func TestRunInstancesAnswersAndRecordsTheLaunch(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	before := time.Now().Add(-time.Second)

	out, err := c.RunInstances(ctx(t), launchInput("req-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(aws.ToString(out.ReservationId), "r-") || aws.ToString(out.OwnerId) != OwnerID {
		t.Errorf("reservation %q owner %q", aws.ToString(out.ReservationId), aws.ToString(out.OwnerId))
	}
	in := out.Instances[0]
	id := aws.ToString(in.InstanceId)
	if !sdkInstanceID.MatchString(id) {
		t.Errorf("instance ID %q", id)
	}
	if in.State.Name != ec2types.InstanceStateNamePending || aws.ToInt32(in.State.Code) != 0 {
		t.Errorf("state %+v, want pending/0", in.State)
	}
	if in.InstanceType != ec2types.InstanceTypeT2Micro || aws.ToString(in.ImageId) != "ami-0123456789abcdef0" {
		t.Errorf("type %s image %s", in.InstanceType, aws.ToString(in.ImageId))
	}
	if aws.ToString(in.KeyName) != "data-science" || aws.ToString(in.SubnetId) != "subnet-0public" {
		t.Errorf("key %q subnet %q", aws.ToString(in.KeyName), aws.ToString(in.SubnetId))
	}
	if !strings.HasPrefix(aws.ToString(in.PrivateIpAddress), "10.0.") || aws.ToString(in.PublicIpAddress) == "" {
		t.Errorf("private %q public %q", aws.ToString(in.PrivateIpAddress), aws.ToString(in.PublicIpAddress))
	}
	if in.LaunchTime == nil || in.LaunchTime.Before(before) || in.LaunchTime.After(time.Now()) {
		t.Errorf("launch time %v", in.LaunchTime)
	}
	if got := tagMap(in.Tags); got["Name"] != "ana-t2" || got["computebot:owner"] != "U0ANA" {
		t.Errorf("tags %v", got)
	}
	if len(in.SecurityGroups) != 2 || aws.ToString(in.SecurityGroups[0].GroupId) != "sg-0aaa" {
		t.Errorf("groups %+v", in.SecurityGroups)
	}
	if in.MetadataOptions == nil || in.MetadataOptions.HttpTokens != ec2types.HttpTokensStateRequired {
		t.Errorf("metadata options %+v", in.MetadataOptions)
	}

	got, ok := s.Instance(id)
	if !ok {
		t.Fatal("instance not in the fake")
	}
	want := Instance{
		ID: id, Type: "t2.micro", ImageID: "ami-0123456789abcdef0", KeyName: "data-science",
		SubnetID: "subnet-0public", ClientToken: "req-1", HttpTokens: "required", RootEncrypted: true,
	}
	if got.ID != want.ID || got.Type != want.Type || got.ImageID != want.ImageID || got.KeyName != want.KeyName ||
		got.SubnetID != want.SubnetID || got.ClientToken != want.ClientToken || got.HttpTokens != want.HttpTokens ||
		got.RootEncrypted != want.RootEncrypted {
		t.Errorf("snapshot %+v", got)
	}
	if got.VolumeTags["computebot:owner"] != "U0ANA" || got.Tags["computebot:managed"] != "true" {
		t.Errorf("tags %v volume tags %v", got.Tags, got.VolumeTags)
	}
	if fmt.Sprint(got.SecurityGroupIDs) != "[sg-0aaa sg-0bbb]" {
		t.Errorf("groups %v", got.SecurityGroupIDs)
	}
	if !got.LaunchTime.Equal(*in.LaunchTime) {
		t.Errorf("launch time %v vs %v", got.LaunchTime, *in.LaunchTime)
	}

	calls := s.Calls("RunInstances")
	if len(calls) != 1 || calls[0].Service != "ec2" || calls[0].Params.Get("ImageId") != "ami-0123456789abcdef0" ||
		calls[0].Params.Get("TagSpecification.1.ResourceType") != "instance" {
		t.Errorf("calls %+v", calls)
	}
}

func TestRunInstancesWithoutEncryptedRootOrIMDSv2(t *testing.T) {
	s := newFake(t)
	in := launchInput("")
	in.ClientToken = nil
	in.MetadataOptions = nil
	// Encrypting some other device does not encrypt the root volume.
	in.BlockDeviceMappings[0].DeviceName = aws.String("/dev/sdf")
	out, err := ec2Client(s).RunInstances(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Instance(aws.ToString(out.Instances[0].InstanceId))
	if got.RootEncrypted || got.HttpTokens != "optional" {
		t.Errorf("RootEncrypted %v HttpTokens %q", got.RootEncrypted, got.HttpTokens)
	}
	// The ubuntu image's root is /dev/sda1.
	in = launchInput("ubuntu")
	in.ImageId = aws.String("ami-0aaaaaaaaaaaaaaa1")
	in.BlockDeviceMappings[0].DeviceName = aws.String("/dev/sda1")
	out, err = ec2Client(s).RunInstances(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Instance(aws.ToString(out.Instances[0].InstanceId)); !got.RootEncrypted {
		t.Error("ubuntu root not encrypted")
	}
}

func TestRunInstancesClientTokenIdempotency(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	first := launch(t, c, "req-42")

	// Same token, same parameters, tags in another order: same instance.
	again := launchInput("req-42")
	tags := again.TagSpecifications[0].Tags
	tags[0], tags[2] = tags[2], tags[0]
	out, err := c.RunInstances(ctx(t), again)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Instances[0].InstanceId) != aws.ToString(first.InstanceId) {
		t.Errorf("replay launched %s, want %s", aws.ToString(out.Instances[0].InstanceId), aws.ToString(first.InstanceId))
	}
	if n := len(s.Instances()); n != 1 {
		t.Fatalf("%d instances after replay, want 1", n)
	}

	// Same token, different parameters: mismatch, nothing launched.
	other := launchInput("req-42")
	other.InstanceType = ec2types.InstanceTypeT3Small
	_, err = c.RunInstances(ctx(t), other)
	wantAPIError(t, err, "IdempotentParameterMismatch", http.StatusBadRequest)
	other = launchInput("req-42")
	other.TagSpecifications[0].Tags[0] = tag("Name", "renamed")
	_, err = c.RunInstances(ctx(t), other)
	wantAPIError(t, err, "IdempotentParameterMismatch", 0)

	// Another token launches another instance.
	launch(t, c, "req-43")
	if n := len(s.Instances()); n != 2 {
		t.Fatalf("%d instances, want 2", n)
	}
}

// TestRunInstancesClientTokenOutlivesTermination: AWS keeps a token's
// result after the instances terminate (for at least 24 hours), so a late
// retry gets the terminated instance back instead of a new launch.
func TestRunInstancesClientTokenOutlivesTermination(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	first := launch(t, c, "req-7")
	id := aws.ToString(first.InstanceId)
	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	describeOne(t, c, id) // shutting-down → terminated
	again := launch(t, c, "req-7")
	if aws.ToString(again.InstanceId) != id || again.State.Name != ec2types.InstanceStateNameTerminated {
		t.Errorf("retry after termination = %s %s, want %s terminated", aws.ToString(again.InstanceId), again.State.Name, id)
	}
	if n := len(s.Instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	other := launchInput("req-7")
	other.KeyName = aws.String("another-key")
	_, err := c.RunInstances(ctx(t), other)
	wantAPIError(t, err, "IdempotentParameterMismatch", http.StatusBadRequest)
}

func TestRunInstancesConcurrentRetriesLaunchOnce(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.RunInstances(ctx(t), launchInput("same-token"))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = aws.ToString(out.Instances[0].InstanceId)
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("different instances for one token: %v", ids)
		}
	}
	if n := len(s.Instances()); n != 1 {
		t.Fatalf("%d instances, want 1", n)
	}
}

func TestRunInstancesErrors(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	in := launchInput("")
	in.ImageId = aws.String("ami-0000000000000dead")
	_, err := c.RunInstances(ctx(t), in)
	wantAPIError(t, err, "InvalidAMIID.NotFound", http.StatusBadRequest)

	in.ImageId = aws.String("not-an-ami")
	_, err = c.RunInstances(ctx(t), in)
	wantAPIError(t, err, "InvalidAMIID.Malformed", 0)

	in = launchInput("")
	in.InstanceType = "t9.huge"
	_, err = c.RunInstances(ctx(t), in)
	wantAPIError(t, err, "InvalidParameterValue", http.StatusBadRequest)

	in = launchInput("")
	in.TagSpecifications[0].Tags = append(in.TagSpecifications[0].Tags, tag("aws:reserved", "x"))
	_, err = c.RunInstances(ctx(t), in)
	wantAPIError(t, err, "InvalidParameterValue", 0)

	if n := len(s.Instances()); n != 0 {
		t.Fatalf("failed launches left %d instances", n)
	}
	// A failed launch does not burn its token.
	in = launchInput("tok")
	in.InstanceType = "t9.huge"
	_, err = c.RunInstances(ctx(t), in)
	wantAPIError(t, err, "InvalidParameterValue", 0)
	launch(t, c, "tok")
}

func TestMaxCountLaunchesOneReservation(t *testing.T) {
	s := newFake(t)
	in := launchInput("")
	in.MaxCount = aws.Int32(3)
	out, err := ec2Client(s).RunInstances(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Instances) != 3 {
		t.Fatalf("%d instances", len(out.Instances))
	}
	seen := map[string]bool{}
	for _, i := range s.Instances() {
		if i.ReservationID != aws.ToString(out.ReservationId) || seen[i.PublicIP] || seen[i.PrivateIP] {
			t.Errorf("instance %+v", i)
		}
		seen[i.PublicIP], seen[i.PrivateIP] = true, true
	}
}

func TestPrivateSubnetGetsNoPublicIP(t *testing.T) {
	s := newFake(t)
	s.SetPrivateSubnet("subnet-0private")
	c := ec2Client(s)
	in := launchInput("")
	in.SubnetId = aws.String("subnet-0private")
	out, err := c.RunInstances(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	got := describeOne(t, c, id)
	if got.State.Name != ec2types.InstanceStateNameRunning {
		t.Errorf("state %s", got.State.Name)
	}
	if got.PublicIpAddress != nil || aws.ToString(got.PrivateIpAddress) == "" {
		t.Errorf("public %v private %v", aws.ToString(got.PublicIpAddress), aws.ToString(got.PrivateIpAddress))
	}
}

func TestStateTransitionsWithoutDelay(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	id := aws.ToString(launch(t, c, "").InstanceId)
	// Delay 0: pending in the RunInstances answer, running at the next look.
	if got := describeOne(t, c, id); got.State.Name != ec2types.InstanceStateNameRunning || aws.ToInt32(got.State.Code) != 16 {
		t.Fatalf("state %+v", got.State)
	}
	ip := aws.ToString(describeOne(t, c, id).PublicIpAddress)

	stop, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	sc := stop.StoppingInstances[0]
	if aws.ToString(sc.InstanceId) != id || sc.CurrentState.Name != ec2types.InstanceStateNameStopping || sc.PreviousState.Name != ec2types.InstanceStateNameRunning {
		t.Errorf("stop change %+v %+v", sc.CurrentState, sc.PreviousState)
	}
	got := describeOne(t, c, id)
	if got.State.Name != ec2types.InstanceStateNameStopped || got.PublicIpAddress != nil {
		t.Errorf("after stop: %s, public IP %v", got.State.Name, aws.ToString(got.PublicIpAddress))
	}
	if got.StateReason == nil || aws.ToString(got.StateReason.Code) != "Client.UserInitiatedShutdown" {
		t.Errorf("state reason %+v", got.StateReason)
	}

	start, err := c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if sc := start.StartingInstances[0]; sc.CurrentState.Name != ec2types.InstanceStateNamePending || sc.PreviousState.Name != ec2types.InstanceStateNameStopped {
		t.Errorf("start change %+v %+v", sc.CurrentState, sc.PreviousState)
	}
	got = describeOne(t, c, id)
	if got.State.Name != ec2types.InstanceStateNameRunning {
		t.Errorf("after start: %s", got.State.Name)
	}
	if newIP := aws.ToString(got.PublicIpAddress); newIP == "" || newIP == ip {
		t.Errorf("public IP after start %q, before %q: want a new one", newIP, ip)
	}

	term, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if sc := term.TerminatingInstances[0]; sc.CurrentState.Name != ec2types.InstanceStateNameShuttingDown || sc.PreviousState.Name != ec2types.InstanceStateNameRunning {
		t.Errorf("terminate change %+v %+v", sc.CurrentState, sc.PreviousState)
	}
	if got := describeOne(t, c, id); got.State.Name != ec2types.InstanceStateNameTerminated || aws.ToInt32(got.State.Code) != 48 {
		t.Errorf("after terminate: %+v", got.State)
	}
	// Terminated is final.
	_, err = c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}})
	wantAPIError(t, err, "IncorrectInstanceState", http.StatusBadRequest)
}

func TestStateTransitionsHonourRunningDelay(t *testing.T) {
	const delay = 80 * time.Millisecond
	s := newFake(t)
	s.SetRunningDelay(delay)
	c := ec2Client(s)
	id := aws.ToString(launch(t, c, "").InstanceId)
	launched, _ := s.Instance(id)

	if got := describeOne(t, c, id); got.State.Name != ec2types.InstanceStateNamePending {
		t.Fatalf("state %s before the delay", got.State.Name)
	}
	// A pending instance cannot be stopped yet.
	_, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}})
	wantAPIError(t, err, "IncorrectInstanceState", 0)

	time.Sleep(delay + 10*time.Millisecond)
	if got := describeOne(t, c, id); got.State.Name != ec2types.InstanceStateNameRunning {
		t.Fatalf("state %s after the delay", got.State.Name)
	}
	snap, _ := s.Instance(id)
	if want := launched.StateChangedAt.Add(delay); !snap.StateChangedAt.Equal(want) {
		t.Errorf("StateChangedAt %v, want launch+delay %v", snap.StateChangedAt, want)
	}

	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, c, id); got.State.Name != ec2types.InstanceStateNameStopping {
		t.Errorf("state %s right after stop", got.State.Name)
	}
	// Starting a stopping instance is refused.
	_, err = c.StartInstances(ctx(t), &ec2.StartInstancesInput{InstanceIds: []string{id}})
	wantAPIError(t, err, "IncorrectInstanceState", 0)
	time.Sleep(delay + 10*time.Millisecond)
	if got, _ := s.Instance(id); got.State != "stopped" || got.PublicIP != "" {
		t.Errorf("snapshot after stop delay: %s %q", got.State, got.PublicIP)
	}
}

func TestStateChangesAreAllOrNothing(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	id := aws.ToString(launch(t, c, "").InstanceId)
	_, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id, "i-0000000000000dead"}})
	wantAPIError(t, err, "InvalidInstanceID.NotFound", 0)
	if got, _ := s.Instance(id); got.State == "shutting-down" || got.State == "terminated" {
		t.Errorf("instance changed by a failed call: %s", got.State)
	}
}

func TestSetInstanceStateAndAddInstance(t *testing.T) {
	s := newFake(t)
	s.AddInstance(Instance{ID: "i-0fedcba9876543210", Tags: map[string]string{"computebot:owner": "U0BO"}})
	got, ok := s.Instance("i-0fedcba9876543210")
	if !ok || got.State != "running" || got.Type != "t2.micro" || got.PublicIP == "" || got.PrivateIP == "" || got.ReservationID == "" {
		t.Fatalf("seeded instance %+v", got)
	}
	s.SetInstanceState(got.ID, "stopped")
	if got, _ := s.Instance(got.ID); got.State != "stopped" || got.PublicIP != "" {
		t.Errorf("after SetInstanceState: %+v", got)
	}
	d := describeOne(t, ec2Client(s), got.ID)
	if d.State.Name != ec2types.InstanceStateNameStopped || tagMap(d.Tags)["computebot:owner"] != "U0BO" {
		t.Errorf("described %+v", d)
	}
	// Snapshots are copies.
	got.Tags["computebot:owner"] = "mutated"
	if again, _ := s.Instance(got.ID); again.Tags["computebot:owner"] != "U0BO" {
		t.Error("snapshot shares the fake's map")
	}
}

func TestDescribeInstancesFilters(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	mine := aws.ToString(launch(t, c, "").InstanceId)
	s.AddInstance(Instance{ID: "i-0b0b0b0b0b0b0b0b0", Tags: map[string]string{"computebot:managed": "true", "computebot:owner": "U0BO"}})
	s.AddInstance(Instance{ID: "i-0c0c0c0c0c0c0c0c0", State: "stopped", Tags: map[string]string{"computebot:managed": "true", "computebot:owner": "U0ANA"}})
	s.AddInstance(Instance{ID: "i-0d0d0d0d0d0d0d0d0", Tags: map[string]string{"team": "web"}})

	ids := func(filters ...ec2types.Filter) []string {
		t.Helper()
		out, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: filters})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				got = append(got, aws.ToString(in.InstanceId))
			}
		}
		sort.Strings(got)
		return got
	}
	f := func(name string, values ...string) ec2types.Filter {
		return ec2types.Filter{Name: aws.String(name), Values: values}
	}
	cases := []struct {
		name    string
		filters []ec2types.Filter
		want    []string
	}{
		{"all", nil, []string{"i-0b0b0b0b0b0b0b0b0", "i-0c0c0c0c0c0c0c0c0", "i-0d0d0d0d0d0d0d0d0", mine}},
		{"tag value", []ec2types.Filter{f("tag:computebot:owner", "U0ANA")}, []string{"i-0c0c0c0c0c0c0c0c0", mine}},
		{"tag values are ORed", []ec2types.Filter{f("tag:computebot:owner", "U0ANA", "U0BO")}, []string{"i-0b0b0b0b0b0b0b0b0", "i-0c0c0c0c0c0c0c0c0", mine}},
		{"filters are ANDed", []ec2types.Filter{f("tag:computebot:owner", "U0ANA"), f("instance-state-name", "pending", "running")}, []string{mine}},
		{"tag-key", []ec2types.Filter{f("tag-key", "team")}, []string{"i-0d0d0d0d0d0d0d0d0"}},
		{"state", []ec2types.Filter{f("instance-state-name", "stopped")}, []string{"i-0c0c0c0c0c0c0c0c0"}},
		{"instance-id", []ec2types.Filter{f("instance-id", "i-0d0d0d0d0d0d0d0d0")}, []string{"i-0d0d0d0d0d0d0d0d0"}},
		{"wildcard", []ec2types.Filter{f("tag:computebot:owner", "U0B*")}, []string{"i-0b0b0b0b0b0b0b0b0"}},
		{"no match", []ec2types.Filter{f("tag:computebot:owner", "U0NOBODY")}, nil},
	}
	for _, tc := range cases {
		if got := ids(tc.filters...); fmt.Sprint(got) != fmt.Sprint(sortedCopy(tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, got, sortedCopy(tc.want))
		}
	}

	_, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{f("colour", "red")}})
	wantAPIError(t, err, "InvalidParameterValue", 0)
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{mine, "i-0000000000000dead"}})
	wantAPIError(t, err, "InvalidInstanceID.NotFound", http.StatusBadRequest)
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{"bogus"}})
	wantAPIError(t, err, "InvalidInstanceID.Malformed", 0)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func TestDescribeInstancesPagination(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	in := launchInput("")
	in.MaxCount = aws.Int32(12)
	if _, err := c.RunInstances(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	var pages []int
	seen := map[string]bool{}
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				if seen[aws.ToString(i.InstanceId)] {
					t.Errorf("%s on two pages", aws.ToString(i.InstanceId))
				}
				seen[aws.ToString(i.InstanceId)] = true
				n++
			}
		}
		pages = append(pages, n)
	}
	if fmt.Sprint(pages) != "[5 5 2]" {
		t.Errorf("page sizes %v, want [5 5 2]", pages)
	}

	_, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(3)})
	wantAPIError(t, err, "InvalidParameterValue", 0)
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), InstanceIds: []string{s.Instances()[0].ID}})
	wantAPIError(t, err, "InvalidParameterCombination", 0)
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), NextToken: aws.String("garbage!")})
	wantAPIError(t, err, "InvalidParameterValue", 0)
}

func TestDescribeInstanceTypes(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	out, err := c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"t2.micro", "g4dn.xlarge"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[ec2types.InstanceType][2]int64{}
	for _, it := range out.InstanceTypes {
		got[it.InstanceType] = [2]int64{int64(aws.ToInt32(it.VCpuInfo.DefaultVCpus)), aws.ToInt64(it.MemoryInfo.SizeInMiB)}
	}
	if got["t2.micro"] != [2]int64{1, 1024} || got["g4dn.xlarge"] != [2]int64{4, 16384} || len(got) != 2 {
		t.Errorf("types %v", got)
	}
	s.AddInstanceType(InstanceType{Name: "r7i.large", VCPUs: 2, MemoryMiB: 16384})
	all, err := c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.InstanceTypes) != 11 {
		t.Errorf("%d types, want 11", len(all.InstanceTypes))
	}
	// hibernationSupported, the default CPU topology and the GPU model.
	byName := map[ec2types.InstanceType]ec2types.InstanceTypeInfo{}
	for _, it := range all.InstanceTypes {
		byName[it.InstanceType] = it
	}
	for name, want := range map[ec2types.InstanceType]struct {
		hibernation    bool
		cores, threads int32
		memoryMiB      int64
		gpus           int32
		gpuModel       string
	}{
		"t2.micro":    {true, 1, 1, 1024, 0, ""},
		"t3.medium":   {true, 1, 2, 4096, 0, ""},
		"c5.xlarge":   {true, 2, 2, 8192, 0, ""},
		"g4dn.xlarge": {true, 2, 2, 16384, 1, "T4"},
		"g5.xlarge":   {false, 2, 2, 16384, 1, "A10G"},
		"g6.xlarge":   {false, 2, 2, 16384, 1, "L4"},
		"p3.2xlarge":  {false, 4, 2, 62464, 1, "V100"},
		"r7i.large":   {false, 1, 2, 16384, 0, ""},
	} {
		it, ok := byName[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if aws.ToBool(it.HibernationSupported) != want.hibernation {
			t.Errorf("%s hibernationSupported %v", name, aws.ToBool(it.HibernationSupported))
		}
		if aws.ToInt32(it.VCpuInfo.DefaultCores) != want.cores || aws.ToInt32(it.VCpuInfo.DefaultThreadsPerCore) != want.threads {
			t.Errorf("%s cores %d threads %d", name, aws.ToInt32(it.VCpuInfo.DefaultCores), aws.ToInt32(it.VCpuInfo.DefaultThreadsPerCore))
		}
		if aws.ToInt64(it.MemoryInfo.SizeInMiB) != want.memoryMiB {
			t.Errorf("%s memory %d", name, aws.ToInt64(it.MemoryInfo.SizeInMiB))
		}
		switch {
		case want.gpus == 0 && it.GpuInfo != nil:
			t.Errorf("%s has GPUs %+v", name, it.GpuInfo)
		case want.gpus > 0 && (it.GpuInfo == nil || len(it.GpuInfo.Gpus) != 1 || aws.ToInt32(it.GpuInfo.Gpus[0].Count) != want.gpus ||
			aws.ToString(it.GpuInfo.Gpus[0].Name) != want.gpuModel || aws.ToString(it.GpuInfo.Gpus[0].Manufacturer) != "NVIDIA"):
			t.Errorf("%s GPU info %+v", name, it.GpuInfo)
		}
	}
	_, err = c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"t9.huge"}})
	wantAPIError(t, err, "InvalidInstanceType", http.StatusBadRequest)
}

func TestDescribeImages(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	out, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{ImageIds: []string{"ami-0aaaaaaaaaaaaaaa1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Images) != 1 {
		t.Fatalf("%d images", len(out.Images))
	}
	img := out.Images[0]
	if aws.ToString(img.Name) != "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20241001" ||
		aws.ToString(img.RootDeviceName) != "/dev/sda1" || img.State != ec2types.ImageStateAvailable ||
		img.Architecture != ec2types.ArchitectureValuesX8664 {
		t.Errorf("image %+v", img)
	}
	// The root device's mapping: snapshot, default size 8 GiB, gp3.
	if len(img.BlockDeviceMappings) != 1 {
		t.Fatalf("block device mappings %+v", img.BlockDeviceMappings)
	}
	bd := img.BlockDeviceMappings[0]
	if aws.ToString(bd.DeviceName) != "/dev/sda1" || bd.Ebs == nil {
		t.Fatalf("root mapping %+v", bd)
	}
	if ebs := bd.Ebs; aws.ToInt32(ebs.VolumeSize) != 8 || ebs.VolumeType != ec2types.VolumeTypeGp3 || !aws.ToBool(ebs.DeleteOnTermination) ||
		ebs.Encrypted == nil || *ebs.Encrypted || !strings.HasPrefix(aws.ToString(ebs.SnapshotId), "snap-") {
		t.Errorf("root ebs %+v", ebs)
	}
	s.AddImage(Image{ID: "ami-0ccccccccccccccc3", Name: "my-arm-image", Architecture: "arm64", RootVolumeGiB: 75})
	byName, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"debian-12-*", "my-*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(byName.Images) != 2 {
		t.Errorf("name filter found %d images", len(byName.Images))
	}
	for _, img := range byName.Images {
		want := int32(8)
		if aws.ToString(img.ImageId) == "ami-0ccccccccccccccc3" {
			want = 75
		}
		if len(img.BlockDeviceMappings) != 1 || aws.ToInt32(img.BlockDeviceMappings[0].Ebs.VolumeSize) != want ||
			aws.ToString(img.BlockDeviceMappings[0].DeviceName) != "/dev/xvda" {
			t.Errorf("%s mappings %+v", aws.ToString(img.ImageId), img.BlockDeviceMappings)
		}
	}
	_, err = c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{ImageIds: []string{"ami-0000000000000dead"}})
	wantAPIError(t, err, "InvalidAMIID.NotFound", http.StatusBadRequest)
}

func TestCreateTags(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	id := aws.ToString(launch(t, c, "").InstanceId)
	vol := s.Instances()[0].RootVolumeID
	_, err := c.CreateTags(ctx(t), &ec2.CreateTagsInput{
		Resources: []string{id, vol},
		Tags:      []ec2types.Tag{tag("computebot:expires-at", "2026-11-28T18:00:00Z"), tag("Name", "renamed")},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Instance(id)
	if got.Tags["computebot:expires-at"] != "2026-11-28T18:00:00Z" || got.Tags["Name"] != "renamed" || got.Tags["computebot:owner"] != "U0ANA" {
		t.Errorf("tags %v", got.Tags)
	}
	if got.VolumeTags["Name"] != "renamed" {
		t.Errorf("volume tags %v", got.VolumeTags)
	}
	if tags := tagMap(describeOne(t, c, id).Tags); tags["Name"] != "renamed" {
		t.Errorf("described tags %v", tags)
	}
	_, err = c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{"i-0000000000000dead"}, Tags: []ec2types.Tag{tag("a", "b")}})
	wantAPIError(t, err, "InvalidInstanceID.NotFound", 0)
}

func TestDryRun(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	in := launchInput("dry")
	in.DryRun = aws.Bool(true)
	_, err := c.RunInstances(ctx(t), in)
	wantAPIError(t, err, "DryRunOperation", http.StatusPreconditionFailed)
	if n := len(s.Instances()); n != 0 {
		t.Fatalf("dry run launched %d instances", n)
	}
	// A dry run that would fail reports the real error.
	in.ImageId = aws.String("ami-0000000000000dead")
	_, err = c.RunInstances(ctx(t), in)
	wantAPIError(t, err, "InvalidAMIID.NotFound", 0)
	// The dry run did not register its token: a real launch with it works.
	launch(t, c, "dry")

	id := s.Instances()[0].ID
	_, err = c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", http.StatusPreconditionFailed)
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 0)
	_, err = c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{tag("x", "y")}, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 0)
	if got, _ := s.Instance(id); got.State == "shutting-down" || got.Tags["x"] != "" {
		t.Errorf("dry runs changed the instance: %+v", got)
	}
}
