package aws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/internal/fakeaws"
)

const (
	defaultAMI = "ami-0123456789abcdef0"
	al2023SSM  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
)

func newFake(t *testing.T) *fakeaws.Server {
	t.Helper()
	fake := fakeaws.New()
	t.Cleanup(fake.Close)
	return fake
}

// newClient builds the real client against the fake, without retries so a
// fault injected once is seen once: writes get one attempt (as with
// AWS_MAX_ATTEMPTS=1) and so do reads, unless opts.ReadAttempts says
// otherwise (the retry tests, retry_test.go).
func newClient(t *testing.T, fake *fakeaws.Server, opts aws.Options) *aws.Client {
	t.Helper()
	if opts.ReadAttempts == 0 {
		opts.ReadAttempts = 1
	}
	cfg := awssdk.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
		BaseEndpoint:     awssdk.String(fake.URL()),
	}
	return aws.NewFromConfig(cfg, opts)
}

func wantCode(t *testing.T, err error, code string) *computebot.Error {
	t.Helper()
	var ce *computebot.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want *computebot.Error with code %s", err, err, code)
	}
	if ce.Code != code {
		t.Fatalf("Code = %q, want %q (err: %v)", ce.Code, code, err)
	}
	return ce
}

func launchSpec(token string) computebot.LaunchSpec {
	return computebot.LaunchSpec{
		ClientToken:      token,
		InstanceType:     "t2.micro",
		ImageID:          defaultAMI,
		RootDeviceName:   "/dev/xvda",
		KeyName:          "data-science",
		SecurityGroupIDs: []string{"sg-0123"},
		SubnetID:         "subnet-0abc",
		Tags: map[string]string{
			computebot.TagName:      "ana-feature",
			computebot.TagManaged:   "true",
			computebot.TagOwner:     "U0ANA",
			computebot.TagRequest:   "req-1",
			computebot.TagExpiresAt: "2026-11-28T16:00:00Z",
		},
	}
}

func TestInstanceType(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()

	it, err := c.InstanceType(ctx, "t2.micro")
	if err != nil {
		t.Fatal(err)
	}
	if want := (computebot.InstanceType{Name: "t2.micro", VCPUs: 1, MemoryMiB: 1024, Hibernation: true}); it != want {
		t.Errorf("got %+v, want %+v", it, want)
	}

	_, err = c.InstanceType(ctx, "t9.huge")
	ce := wantCode(t, err, "InvalidInstanceType")
	if !errors.Is(err, computebot.ErrNotFound) {
		t.Error("unknown type does not wrap ErrNotFound")
	}
	if ce.Message != "t9.huge is not an EC2 instance type offered in this region." {
		t.Errorf("Message = %q", ce.Message)
	}
}

func TestResolveImage(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()
	want := computebot.Image{ID: defaultAMI, Name: "al2023-ami-2023.6.20241010.0-kernel-6.1-x86_64", RootDeviceName: "/dev/xvda", RootVolumeGiB: 8}

	t.Run("by ID", func(t *testing.T) {
		img, err := c.ResolveImage(ctx, defaultAMI)
		if err != nil {
			t.Fatal(err)
		}
		if img != want {
			t.Errorf("got %+v, want %+v", img, want)
		}
	})
	t.Run("by SSM parameter", func(t *testing.T) {
		before := fake.CallCount("GetParameter")
		img, err := c.ResolveImage(ctx, "resolve:ssm:"+al2023SSM)
		if err != nil {
			t.Fatal(err)
		}
		if img != want {
			t.Errorf("got %+v, want %+v", img, want)
		}
		if n := fake.CallCount("GetParameter") - before; n != 1 {
			t.Errorf("GetParameter calls = %d, want 1", n)
		}
	})
	t.Run("SSM parameter pointing to another AMI", func(t *testing.T) {
		fake.SetSSMParameter("/team/ubuntu", "ami-0aaaaaaaaaaaaaaa1")
		img, err := c.ResolveImage(ctx, "resolve:ssm:/team/ubuntu")
		if err != nil {
			t.Fatal(err)
		}
		if img.ID != "ami-0aaaaaaaaaaaaaaa1" || img.RootDeviceName != "/dev/sda1" || !strings.HasPrefix(img.Name, "ubuntu/") {
			t.Errorf("got %+v", img)
		}
	})
	t.Run("unknown SSM parameter", func(t *testing.T) {
		_, err := c.ResolveImage(ctx, "resolve:ssm:/nope")
		ce := wantCode(t, err, "ParameterNotFound")
		if !errors.Is(err, computebot.ErrNotFound) || !strings.Contains(ce.Message, "/nope") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("SSM parameter without an AMI", func(t *testing.T) {
		fake.SetSSMParameter("/team/junk", "hello")
		_, err := c.ResolveImage(ctx, "resolve:ssm:/team/junk")
		wantCode(t, err, "InvalidAMIReference")
	})
	t.Run("unknown AMI", func(t *testing.T) {
		_, err := c.ResolveImage(ctx, "ami-0ffffffffffffffff")
		ce := wantCode(t, err, "InvalidAMIID.NotFound")
		if !errors.Is(err, computebot.ErrNotFound) {
			t.Error("does not wrap ErrNotFound")
		}
		if ce.Message != "AMI ami-0ffffffffffffffff does not exist in this region (or is not shared with this account)." {
			t.Errorf("Message = %q", ce.Message)
		}
	})
	t.Run("neither form", func(t *testing.T) {
		before := fake.CallCount("")
		_, err := c.ResolveImage(ctx, "ubuntu-latest")
		wantCode(t, err, "InvalidAMIReference")
		if fake.CallCount("") != before {
			t.Error("a bad reference reached AWS")
		}
	})
}

func TestLaunch(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()
	spec := launchSpec("req-1")

	inst, err := c.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(inst.ID, "i-") || inst.Type != "t2.micro" || inst.ImageID != defaultAMI {
		t.Errorf("instance = %+v", inst)
	}
	if inst.State != computebot.InstancePending {
		t.Errorf("State = %q, want pending", inst.State)
	}
	if inst.LaunchTime.IsZero() || inst.PrivateIP == "" {
		t.Errorf("LaunchTime/PrivateIP missing: %+v", inst)
	}
	if inst.Tags[computebot.TagOwner] != "U0ANA" {
		t.Errorf("Tags = %v", inst.Tags)
	}

	got, ok := fake.Instance(inst.ID)
	if !ok {
		t.Fatalf("fake has no %s", inst.ID)
	}
	for name, tags := range map[string]map[string]string{"instance": got.Tags, "volume": got.VolumeTags} {
		for k, v := range spec.Tags {
			if tags[k] != v {
				t.Errorf("%s tag %s = %q, want %q", name, k, tags[k], v)
			}
		}
	}
	if got.HttpTokens != "required" {
		t.Errorf("HttpTokens = %q, want required (IMDSv2)", got.HttpTokens)
	}
	if !got.RootEncrypted {
		t.Error("root volume not encrypted")
	}
	if got.ClientToken != "req-1" || got.KeyName != "data-science" || got.SubnetID != "subnet-0abc" ||
		len(got.SecurityGroupIDs) != 1 || got.SecurityGroupIDs[0] != "sg-0123" {
		t.Errorf("fake instance = %+v", got)
	}
	if n := fake.CallCount("CreateSecurityGroup") + fake.CallCount("AuthorizeSecurityGroupIngress"); n != 0 {
		t.Errorf("security group calls = %d, want 0", n)
	}

	// Tags in the request are in sorted key order, for both resource types.
	params := fake.Calls("RunInstances")[0].Params
	if params.Get("TagSpecification.1.ResourceType") != "instance" || params.Get("TagSpecification.2.ResourceType") != "volume" {
		t.Errorf("tag specifications = %v", params)
	}
	if params.Get("TagSpecification.1.Tag.1.Key") != computebot.TagName ||
		params.Get("TagSpecification.1.Tag.2.Key") != computebot.TagExpiresAt {
		t.Errorf("tags not sorted: %v", params)
	}

	// The next Describe sees it running (running delay 0), with a public IP.
	inst, err = c.Instance(ctx, inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if inst.State != computebot.InstanceRunning || inst.PublicIP == "" {
		t.Errorf("after launch: %+v", inst)
	}
}

func TestLaunchIdempotent(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()

	first, err := c.Launch(ctx, launchSpec("req-same"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Launch(ctx, launchSpec("req-same"))
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != second.ID {
		t.Errorf("same ClientToken gave %s and %s", first.ID, second.ID)
	}
	if n := len(fake.Instances()); n != 1 {
		t.Errorf("fake has %d instances, want 1", n)
	}

	other := launchSpec("req-same")
	other.InstanceType = "t3.small"
	_, err = c.Launch(ctx, other)
	ce := wantCode(t, err, "IdempotentParameterMismatch")
	if !strings.Contains(ce.Message, "different settings") {
		t.Errorf("Message = %q", ce.Message)
	}
	if n := len(fake.Instances()); n != 1 {
		t.Errorf("fake has %d instances after mismatch, want 1", n)
	}
}

func TestLaunchWithoutOptionalFields(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	inst, err := c.Launch(context.Background(), computebot.LaunchSpec{ClientToken: "min", InstanceType: "t2.micro", ImageID: defaultAMI})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := fake.Instance(inst.ID)
	if got.HttpTokens != "required" {
		t.Errorf("HttpTokens = %q", got.HttpTokens)
	}
	p := fake.Calls("RunInstances")[0].Params
	for _, k := range []string{"KeyName", "SubnetId", "SecurityGroupId.1", "BlockDeviceMapping.1.DeviceName", "TagSpecification.1.ResourceType"} {
		if p.Has(k) {
			t.Errorf("%s sent: %v", k, p.Get(k))
		}
	}

	_, err = c.Launch(context.Background(), computebot.LaunchSpec{InstanceType: "t2.micro"})
	wantCode(t, err, "InvalidLaunchSpec")
}

// Each AWS failure reaches the caller as a plain-words *computebot.Error,
// through the real SDK and the real wire protocol.
func TestLaunchErrors(t *testing.T) {
	tests := []struct {
		code    string
		message string
	}{
		{"InsufficientInstanceCapacity", "AWS has no spare t2.micro capacity in this Availability Zone right now. Try again in a few minutes or pick another instance type."},
		{"InvalidAMIID.NotFound", "AMI ami-0123456789abcdef0 does not exist in this region (or is not shared with this account)."},
		{"InvalidAMIID.Malformed", "AMI ami-0123456789abcdef0 does not exist in this region (or is not shared with this account)."},
		{"InvalidAMIID.Unavailable", "AMI ami-0123456789abcdef0 does not exist in this region (or is not shared with this account)."},
		{"UnauthorizedOperation", "The bot's AWS role is not allowed to call ec2:RunInstances and ec2:CreateTags (UnauthorizedOperation). Ask an admin to check the IAM policy."},
		{"VcpuLimitExceeded", "This AWS account has reached its vCPU limit for this instance family. Ask an admin to request a quota increase."},
		{"RequestLimitExceeded", "AWS is throttling requests right now; try again shortly."},
		{"InvalidKeyPair.NotFound", `Key pair "data-science" does not exist in this region. Ask an admin to create it or fix launch.key_name.`},
		{"InvalidSubnetID.NotFound", "Subnet subnet-0abc does not exist in this region. Ask an admin to fix launch.subnet_id (or launch.subnet_ids)."},
		{"InvalidGroup.NotFound", "Security group sg-0123 does not exist in this region or not in the subnet's VPC. Ask an admin to fix launch.security_group_ids."},
		{"Unsupported", "t2.micro is not supported in this Availability Zone or with this AMI (Unsupported). Pick another instance type, or ask an admin to change the subnet."},
		{"InstanceLimitExceeded", "This AWS account has reached its instance limit in this region. Ask an admin to request a quota increase."},
		{"InternalError", "AWS had an internal error (InternalError); try again shortly."},
		{"SomethingNew", "AWS refused ec2:RunInstances: SomethingNew."},
	}
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	for i, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			fake.FailNext("RunInstances", tt.code, "", 1)
			_, err := c.Launch(context.Background(), launchSpec(fmt.Sprintf("fail-%d", i)))
			ce := wantCode(t, err, tt.code)
			if ce.Message != tt.message {
				t.Errorf("Message = %q\n want %q", ce.Message, tt.message)
			}
		})
	}
	if n := len(fake.Instances()); n != 0 {
		t.Errorf("%d instances launched by failed calls", n)
	}

	t.Run("InvalidParameterValue for the type", func(t *testing.T) {
		fake.FailNext("RunInstances", "InvalidParameterValue", "Invalid value 't2.micro' for InstanceType.", 1)
		_, err := c.Launch(context.Background(), launchSpec("ipv"))
		ce := wantCode(t, err, "InvalidParameterValue")
		if want := "AWS does not accept t2.micro as an instance type here (InvalidParameterValue). Pick another instance type."; ce.Message != want {
			t.Errorf("Message = %q", ce.Message)
		}
	})
	t.Run("UnauthorizedOperation on DescribeImages", func(t *testing.T) {
		fake.FailNext("DescribeImages", "UnauthorizedOperation", "", 1)
		_, err := c.ResolveImage(context.Background(), defaultAMI)
		ce := wantCode(t, err, "UnauthorizedOperation")
		if !strings.Contains(ce.Message, "ec2:DescribeImages") {
			t.Errorf("Message = %q", ce.Message)
		}
	})
	t.Run("InvalidInstanceID.NotFound", func(t *testing.T) {
		_, err := c.Instance(context.Background(), "i-0123456789abcdef0")
		ce := wantCode(t, err, "InvalidInstanceID.NotFound")
		if !errors.Is(err, computebot.ErrNotFound) {
			t.Error("does not wrap ErrNotFound")
		}
		if ce.Message != "Instance i-0123456789abcdef0 does not exist in this region." {
			t.Errorf("Message = %q", ce.Message)
		}
	})
}

func TestTimeout(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{CallTimeout: 100 * time.Millisecond})
	fake.SetLatency("RunInstances", 2*time.Second)

	start := time.Now()
	_, err := c.Launch(context.Background(), launchSpec("slow"))
	took := time.Since(start)
	ce := wantCode(t, err, "Timeout")
	if ce.Message != "AWS did not answer within 100ms." {
		t.Errorf("Message = %q", ce.Message)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("does not wrap context.DeadlineExceeded")
	}
	if took > time.Second {
		t.Errorf("took %v, want about the call timeout", took)
	}

	// The caller's own cancellation is reported as such.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.InstanceType(ctx, "t2.micro")
	wantCode(t, err, "Canceled")
}

func TestManagedInstances(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()
	fake.SetRunningDelay(time.Hour) // keep i-b1 pending
	managed := func(owner string) map[string]string {
		return map[string]string{computebot.TagManaged: "true", computebot.TagOwner: owner}
	}
	fake.AddInstance(fakeaws.Instance{ID: "i-a1", Tags: managed("U0ANA")})
	fake.AddInstance(fakeaws.Instance{ID: "i-a2", State: "stopped", Tags: managed("U0ANA")})
	fake.AddInstance(fakeaws.Instance{ID: "i-b1", State: "pending", Tags: managed("U0BO")})
	fake.AddInstance(fakeaws.Instance{ID: "i-x1", Tags: map[string]string{computebot.TagOwner: "U0ANA"}})         // not managed
	fake.AddInstance(fakeaws.Instance{ID: "i-x2", Tags: map[string]string{computebot.TagManaged: "false"}})       // not managed
	fake.AddInstance(fakeaws.Instance{ID: "i-x3", State: "terminated", Tags: map[string]string{"Name": "other"}}) // not managed

	ids := func(list []computebot.Instance) string {
		var s []string
		for _, in := range list {
			s = append(s, in.ID)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		filter computebot.InstanceFilter
		want   string
	}{
		{computebot.InstanceFilter{}, "i-a1,i-a2,i-b1"},
		{computebot.InstanceFilter{Owner: "U0ANA"}, "i-a1,i-a2"},
		{computebot.InstanceFilter{States: []string{"pending", "running"}}, "i-a1,i-b1"},
		{computebot.InstanceFilter{Owner: "U0ANA", States: []string{"pending", "running"}}, "i-a1"},
		{computebot.InstanceFilter{Owner: "U0NOBODY"}, ""},
	}
	for _, tt := range tests {
		list, err := c.ManagedInstances(ctx, tt.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(list); got != tt.want {
			t.Errorf("ManagedInstances(%+v) = %s, want %s", tt.filter, got, tt.want)
		}
	}

	list, _ := c.ManagedInstances(ctx, computebot.InstanceFilter{Owner: "U0BO"})
	if len(list) != 1 || list[0].State != "pending" || list[0].Tags[computebot.TagOwner] != "U0BO" || list[0].PrivateIP == "" {
		t.Errorf("converted instance = %+v", list)
	}

	calls := fake.Calls("DescribeInstances")
	p := calls[len(calls)-1].Params
	if p.Get("MaxResults") != "1000" || p.Get("Filter.1.Name") != "tag:computebot:managed" || p.Get("Filter.1.Value.1") != "true" ||
		p.Get("Filter.2.Name") != "tag:computebot:owner" || p.Get("Filter.2.Value.1") != "U0BO" || p.Has("Filter.3.Name") {
		t.Errorf("request params = %v", p)
	}
}

func TestManagedInstancesPaginates(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	const n = 1500 // two pages of 1000
	for i := range n {
		fake.AddInstance(fakeaws.Instance{ID: fmt.Sprintf("i-%05d", i), Tags: map[string]string{computebot.TagManaged: "true"}})
	}
	fake.AddInstance(fakeaws.Instance{ID: "i-unmanaged"})
	list, err := c.ManagedInstances(context.Background(), computebot.InstanceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Errorf("got %d instances, want %d", len(list), n)
	}
	seen := map[string]bool{}
	for _, in := range list {
		if seen[in.ID] {
			t.Fatalf("duplicate %s", in.ID)
		}
		seen[in.ID] = true
	}
	if got := fake.CallCount("DescribeInstances"); got != 2 {
		t.Errorf("DescribeInstances calls = %d, want 2 pages", got)
	}
}

func TestManagedInstancesError(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	fake.FailNext("DescribeInstances", "UnauthorizedOperation", "", 1)
	_, err := c.ManagedInstances(context.Background(), computebot.InstanceFilter{})
	wantCode(t, err, "UnauthorizedOperation")
}

// getProductsFilters decodes the filters of every recorded GetProducts call.
func getProductsFilters(t *testing.T, fake *fakeaws.Server) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, call := range fake.Calls("GetProducts") {
		var in struct {
			ServiceCode string
			Filters     []struct{ Type, Field, Value string }
		}
		if err := json.Unmarshal(call.Body, &in); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{"ServiceCode": in.ServiceCode}
		for _, f := range in.Filters {
			if f.Type != "TERM_MATCH" {
				t.Errorf("filter %s has type %s", f.Field, f.Type)
			}
			m[f.Field] = f.Value
		}
		out = append(out, m)
	}
	return out
}

func TestHourlyPrice(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	c.SetNow(func() time.Time { return now })
	ctx := context.Background()

	usd, err := c.HourlyPrice(ctx, "t2.micro")
	if err != nil {
		t.Fatal(err)
	}
	if usd != 0.0116 {
		t.Errorf("price = %v, want 0.0116", usd)
	}
	filters := getProductsFilters(t, fake)
	want := map[string]string{
		"ServiceCode": "AmazonEC2", "instanceType": "t2.micro", "location": "US East (N. Virginia)",
		"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
	}
	if fmt.Sprint(filters[0]) != fmt.Sprint(want) {
		t.Errorf("filters = %v\n want %v", filters[0], want)
	}

	// Cached.
	for range 3 {
		if usd, err := c.HourlyPrice(ctx, "t2.micro"); err != nil || usd != 0.0116 {
			t.Fatalf("cached price = %v, %v", usd, err)
		}
	}
	if n := fake.CallCount("GetProducts"); n != 1 {
		t.Errorf("GetProducts calls = %d, want 1", n)
	}

	// Refreshed after the TTL (24 h by default).
	fake.SetPrice("t2.micro", 0.0125)
	now = now.Add(23 * time.Hour)
	if usd, _ := c.HourlyPrice(ctx, "t2.micro"); usd != 0.0116 {
		t.Errorf("price before TTL = %v, want the cached 0.0116", usd)
	}
	now = now.Add(2 * time.Hour)
	if usd, _ := c.HourlyPrice(ctx, "t2.micro"); usd != 0.0125 {
		t.Errorf("price after TTL = %v, want 0.0125", usd)
	}
	if n := fake.CallCount("GetProducts"); n != 2 {
		t.Errorf("GetProducts calls = %d, want 2", n)
	}
}

func TestHourlyPriceUnknown(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	c.SetNow(func() time.Time { return now })
	ctx := context.Background()

	_, err := c.HourlyPrice(ctx, "m5.large") // a type the fake has no price for
	ce := wantCode(t, err, "PriceUnknown")
	if !errors.Is(err, computebot.ErrPriceUnknown) {
		t.Error("does not wrap ErrPriceUnknown")
	}
	if ce.Message != "The AWS Pricing API has no on-demand Linux price for m5.large in us-east-1." {
		t.Errorf("Message = %q", ce.Message)
	}
	// Location first, then regionCode.
	filters := getProductsFilters(t, fake)
	if len(filters) != 2 || filters[0]["location"] != "US East (N. Virginia)" || filters[1]["regionCode"] != "us-east-1" {
		t.Errorf("filters = %v", filters)
	}

	// The miss is cached too, for an hour.
	calls := fake.CallCount("GetProducts")
	if _, err := c.HourlyPrice(ctx, "m5.large"); !errors.Is(err, computebot.ErrPriceUnknown) {
		t.Errorf("cached miss: %v", err)
	}
	if fake.CallCount("GetProducts") != calls {
		t.Error("a cached miss called GetProducts again")
	}
	fake.SetPrice("m5.large", 0.096)
	now = now.Add(61 * time.Minute)
	if usd, err := c.HourlyPrice(ctx, "m5.large"); err != nil || usd != 0.096 {
		t.Errorf("after the miss expired: %v, %v", usd, err)
	}
}

func TestHourlyPriceRegionWithoutLocationName(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{Region: "xx-test-1"})
	usd, err := c.HourlyPrice(context.Background(), "t3.small")
	if err != nil || usd != 0.0208 {
		t.Fatalf("price = %v, %v", usd, err)
	}
	filters := getProductsFilters(t, fake)
	if len(filters) != 1 || filters[0]["regionCode"] != "xx-test-1" || filters[0]["location"] != "" {
		t.Errorf("filters = %v", filters)
	}
}

func TestHourlyPriceFailure(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	ctx := context.Background()

	fake.FailNext("GetProducts", "ThrottlingException", "", 1)
	_, err := c.HourlyPrice(ctx, "t2.micro")
	ce := wantCode(t, err, "ThrottlingException")
	if !errors.Is(err, computebot.ErrPriceUnknown) {
		t.Error("a failed lookup does not wrap ErrPriceUnknown")
	}
	if ce.Message != "AWS is throttling requests right now; try again shortly." {
		t.Errorf("Message = %q", ce.Message)
	}
	// Failures are not cached.
	if usd, err := c.HourlyPrice(ctx, "t2.micro"); err != nil || usd != 0.0116 {
		t.Errorf("after a failure: %v, %v", usd, err)
	}

	fake.FailNext("GetProducts", "AccessDeniedException", "", 1)
	_, err = c.HourlyPrice(ctx, "t3.small")
	wantCode(t, err, "AccessDeniedException")

	fake.SetLatency("GetProducts", time.Second)
	slow := newClient(t, fake, aws.Options{CallTimeout: 50 * time.Millisecond})
	_, err = slow.HourlyPrice(ctx, "t3.small")
	wantCode(t, err, "Timeout")
	if !errors.Is(err, computebot.ErrPriceUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout chain: %v", err)
	}
}

// Concurrent lookups of one type share a single GetProducts call.
func TestHourlyPriceConcurrent(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, aws.Options{})
	fake.SetLatency("GetProducts", 100*time.Millisecond)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if usd, err := c.HourlyPrice(context.Background(), "t2.micro"); err != nil || usd != 0.0116 {
				t.Errorf("price = %v, %v", usd, err)
			}
		})
	}
	wg.Wait()
	if n := fake.CallCount("GetProducts"); n != 1 {
		t.Errorf("GetProducts calls = %d, want 1", n)
	}
}

// New goes through the SDK's default chain, so AWS_ENDPOINT_URL points every
// service (EC2, SSM, Pricing, Lambda, CloudWatch) at the fake.
func TestNewFromEnvironment(t *testing.T) {
	fake := newFake(t)
	t.Setenv("AWS_ENDPOINT_URL", fake.URL())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKID")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRET")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx := context.Background()

	c, err := aws.New(ctx, aws.Options{ReadBackoffMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if c.Region() != "eu-west-1" {
		t.Errorf("Region = %q, want eu-west-1 from AWS_REGION", c.Region())
	}
	if _, err := c.InstanceType(ctx, "t2.micro"); err != nil {
		t.Fatal(err)
	}
	if usd, err := c.HourlyPrice(ctx, "t2.micro"); err != nil || usd != 0.0116 {
		t.Fatalf("price = %v, %v", usd, err)
	}
	if f := getProductsFilters(t, fake); f[0]["location"] != "EU (Ireland)" {
		t.Errorf("pricing filters = %v", f)
	}
	fake.AddFunction(fakeaws.Function{Name: "hello"})
	if res, err := c.Invoke(ctx, computebot.Invocation{Function: "hello", Payload: []byte(`{}`)}); err != nil || string(res.Payload) != `{}` {
		t.Fatalf("Invoke through AWS_ENDPOINT_URL: %+v, %v", res, err)
	}
	fake.PutMetric("i-env", "CPUUtilization", time.Date(2026, 11, 28, 9, 1, 0, 0, time.UTC), 4)
	m, err := c.InstanceMetrics(ctx, computebot.MetricsQuery{InstanceIDs: []string{"i-env"},
		Start: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), Period: 5 * time.Minute})
	if err != nil || len(m["i-env"].CPUMax) != 1 {
		t.Fatalf("InstanceMetrics through AWS_ENDPOINT_URL: %+v, %v", m, err)
	}
	// AWS_MAX_ATTEMPTS=1 bounds the writes: a single failure is not retried…
	fake.AddInstance(fakeaws.Instance{ID: instanceID, Tags: map[string]string{computebot.TagManaged: "true"}})
	fake.FailNextStatus("CreateTags", "InternalError", "", 500, 1)
	err = c.Tag(ctx, instanceID, map[string]string{"a": "1"})
	wantCode(t, err, "InternalError")
	if n := fake.CallCount("CreateTags"); n != 1 {
		t.Errorf("CreateTags calls = %d, want 1 (AWS_MAX_ATTEMPTS=1)", n)
	}
	// …but not the reads, which keep their own attempts (default 8).
	fake.FailNextStatus("DescribeInstanceTypes", "InternalError", "", 500, 2)
	before := fake.CallCount("DescribeInstanceTypes")
	if _, err := c.InstanceType(ctx, "t3.small"); err != nil {
		t.Fatalf("a read after 2 failures, AWS_MAX_ATTEMPTS=1: %v", err)
	}
	if n := fake.CallCount("DescribeInstanceTypes") - before; n != 3 {
		t.Errorf("DescribeInstanceTypes calls = %d, want 3", n)
	}

	c, err = aws.New(ctx, aws.Options{Region: "us-west-2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Region() != "us-west-2" {
		t.Errorf("Region = %q, want the option's us-west-2", c.Region())
	}
}
