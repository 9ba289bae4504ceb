package aws_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
	"github.com/computebot/computebot/internal/fakeaws"
)

// The retry policy (retry.go), through the real SDK against the fake: reads
// retry harder than writes, and Invoke is tried once.

const throttle = "RequestLimitExceeded"

// testReadBackoff is the reads' ReadBackoffMax in these tests.
const testReadBackoff = 20 * time.Millisecond

// newRetryClient builds the client with the retry settings of production:
// writeAttempts is what AWS_MAX_ATTEMPTS would say (0: unset, the SDK's 3),
// reads keep opts.ReadAttempts (0: the default, 8). Only the reads' backoff
// is shortened, to testReadBackoff unless opts says otherwise.
func newRetryClient(t *testing.T, fake *fakeaws.Server, writeAttempts int, opts aws.Options) *aws.Client {
	t.Helper()
	if opts.ReadBackoffMax == 0 {
		opts.ReadBackoffMax = testReadBackoff
	}
	cfg := awssdk.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: writeAttempts,
		BaseEndpoint:     awssdk.String(fake.URL()),
	}
	return aws.NewFromConfig(cfg, opts)
}

// errorCodes lists the error code answered to each call of action ("" for
// a success), oldest first.
func errorCodes(fake *fakeaws.Server, action string) []string {
	var codes []string
	for _, c := range fake.Calls(action) {
		codes = append(codes, c.ErrorCode)
	}
	return codes
}

func wantTransient(t *testing.T, err error, code string) {
	t.Helper()
	if ce := wantCode(t, err, code); !ce.Transient {
		t.Errorf("%s is not Transient: %v", code, err)
	}
}

func managedFleet(fake *fakeaws.Server, owner string, n int) {
	for i := range n {
		fake.AddInstance(fakeaws.Instance{ID: "i-0" + strings.Repeat("0", 15) + string(rune('a'+i)),
			Tags: map[string]string{computebot.TagManaged: "true", computebot.TagOwner: owner}})
	}
}

// The symptom: the quota count's DescribeInstances throttled three times in
// a row refused a launch. Now three throttles in a row cost time, not the
// launch, even with AWS_MAX_ATTEMPTS=1 (the end-to-end tests' setting).
func TestReadRetriesThrottlesInARow(t *testing.T) {
	t.Parallel()
	quotaCount := computebot.InstanceFilter{Owner: "U0ANA", States: []string{"pending", "running", "stopping", "stopped"}}
	for name, read := range map[string]func(*aws.Client) error{
		"ManagedInstances": func(c *aws.Client) error {
			list, err := c.ManagedInstances(context.Background(), quotaCount)
			if err == nil && len(list) != 2 {
				t.Errorf("ManagedInstances = %d instances, want 2", len(list))
			}
			return err
		},
		"Instance": func(c *aws.Client) error {
			inst, err := c.Instance(context.Background(), "i-0000000000000000a")
			if err == nil && inst.ID != "i-0000000000000000a" {
				t.Errorf("Instance = %+v", inst)
			}
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			managedFleet(fake, "U0ANA", 2)
			c := newRetryClient(t, fake, 1, aws.Options{})
			fake.FailNext("DescribeInstances", throttle, "", 3)
			if err := read(c); err != nil {
				t.Fatalf("after 3 throttles in a row: %v", err)
			}
			if got, want := errorCodes(fake, "DescribeInstances"), []string{throttle, throttle, throttle, ""}; !slices.Equal(got, want) {
				t.Errorf("DescribeInstances answers = %q, want %q", got, want)
			}
		})
	}
}

// The scenario: EC2 throttling 30 % of the calls, ten launches'
// quota counts, one after the other. Every one goes through (with three
// attempts, 2–4 of 10 were refused).
func TestReadsUnderThrottleRatio(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	managedFleet(fake, "U0ANA", 3)
	c := newRetryClient(t, fake, 1, aws.Options{})
	// Seed 11 throttles 5 of the 15 attempts, one count's 3 in a row.
	fake.SetThrottleRatio("DescribeInstances", 0.3, 11)
	quotaCount := computebot.InstanceFilter{Owner: "U0ANA", States: []string{"pending", "running", "stopping", "stopped"}}
	for i := range 10 {
		list, err := c.ManagedInstances(context.Background(), quotaCount)
		if err != nil {
			t.Fatalf("quota count %d: %v", i+1, err)
		}
		if len(list) != 3 {
			t.Fatalf("quota count %d: %d instances, want 3", i+1, len(list))
		}
	}
	// How many attempts each count took.
	var attempts []int
	n := 0
	for _, code := range errorCodes(fake, "DescribeInstances") {
		n++
		if code == "" {
			attempts = append(attempts, n)
			n = 0
		}
	}
	if len(attempts) != 10 || slices.Max(attempts) < 4 {
		t.Errorf("attempts per count %v: want 10 counts, one of them throttled 3 times in a row (the issue's case)", attempts)
	}
	t.Logf("attempts per quota count: %v", attempts)
}

// When AWS throttles every attempt the read still fails, as Transient, with
// the throttle's code and message, and within CallTimeout, whether time or
// attempts run out first.
func TestReadAlwaysThrottled(t *testing.T) {
	t.Parallel()
	t.Run("time runs out first", func(t *testing.T) {
		t.Parallel()
		fake := newFake(t)
		managedFleet(fake, "U0ANA", 1)
		const callTimeout = time.Second
		c := newRetryClient(t, fake, 1, aws.Options{CallTimeout: callTimeout})
		fake.FailNext("DescribeInstances", throttle, "", 1000)
		start := time.Now()
		_, err := c.ManagedInstances(context.Background(), computebot.InstanceFilter{})
		took := time.Since(start)
		wantTransient(t, err, throttle)
		if msg := computebot.UserMessage(err); msg != "AWS is throttling requests right now; try again shortly." {
			t.Errorf("Message = %q", msg)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("does not wrap context.DeadlineExceeded: %v", err)
		}
		if took > callTimeout+500*time.Millisecond {
			t.Errorf("took %v, want about CallTimeout (%v)", took, callTimeout)
		}
		if n := fake.CallCount("DescribeInstances"); n < 1 || n > aws.DefaultReadAttempts {
			t.Errorf("DescribeInstances calls = %d", n)
		}
	})
	t.Run("attempts run out first", func(t *testing.T) {
		t.Parallel()
		fake := newFake(t)
		managedFleet(fake, "U0ANA", 1)
		const callTimeout = 10 * time.Second
		c := newRetryClient(t, fake, 1, aws.Options{CallTimeout: callTimeout, ReadAttempts: 3})
		fake.FailNext("DescribeInstances", throttle, "", 1000)
		start := time.Now()
		_, err := c.Instance(context.Background(), "i-0000000000000000a")
		took := time.Since(start)
		wantTransient(t, err, throttle)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("reported as a timeout: %v", err)
		}
		if n := fake.CallCount("DescribeInstances"); n != 3 {
			t.Errorf("DescribeInstances calls = %d, want ReadAttempts (3)", n)
		}
		if took >= callTimeout {
			t.Errorf("took %v, not within CallTimeout", took)
		}
	})
	t.Run("a caller's cancellation stays one", func(t *testing.T) {
		t.Parallel()
		fake := newFake(t)
		c := newRetryClient(t, fake, 1, aws.Options{})
		fake.FailNext("DescribeInstances", throttle, "", 1000)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		_, err := c.ManagedInstances(ctx, computebot.InstanceFilter{})
		wantCode(t, err, "Canceled")
	})
}

// The reads run in the SDK's adaptive mode: after a throttle the service
// client paces its reads (here, a cold client, about 2 s), far beyond the
// reads' backoff (20 ms). Writes have their own retryer and are not paced;
// RetryModeStandard turns the pacing off.
func TestReadsAreRateLimitedAfterAThrottle(t *testing.T) {
	t.Parallel()
	const paced = 500 * time.Millisecond
	gap := func(t *testing.T, fake *fakeaws.Server) time.Duration {
		t.Helper()
		calls := fake.Calls("DescribeInstances")
		if len(calls) != 2 || calls[0].ErrorCode != throttle || calls[1].ErrorCode != "" {
			t.Fatalf("DescribeInstances calls = %+v", calls)
		}
		return calls[1].Time.Sub(calls[0].Time)
	}
	t.Run("adaptive", func(t *testing.T) {
		t.Parallel()
		fake := newFake(t)
		managedFleet(fake, "U0ANA", 1)
		c := newRetryClient(t, fake, 1, aws.Options{})
		fake.FailNext("DescribeInstances", throttle, "", 1)
		if _, err := c.Instance(context.Background(), "i-0000000000000000a"); err != nil {
			t.Fatal(err)
		}
		if d := gap(t, fake); d < paced {
			t.Errorf("retry %v after the throttle, want the adaptive mode's pacing (≥ %v)", d, paced)
		}
		start := time.Now()
		if err := c.Tag(context.Background(), "i-0000000000000000a", map[string]string{"a": "1"}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d >= paced {
			t.Errorf("a write after a throttled read took %v: paced like the reads", d)
		}
	})
	t.Run("standard", func(t *testing.T) {
		t.Parallel()
		fake := newFake(t)
		managedFleet(fake, "U0ANA", 1)
		c := newRetryClient(t, fake, 1, aws.Options{ReadRetryMode: aws.RetryModeStandard})
		fake.FailNext("DescribeInstances", throttle, "", 1)
		if _, err := c.Instance(context.Background(), "i-0000000000000000a"); err != nil {
			t.Fatal(err)
		}
		if d := gap(t, fake); d >= paced {
			t.Errorf("retry %v after the throttle in standard mode, want about the backoff (%v)", d, testReadBackoff)
		}
	})
}

// Mutating calls get the configured attempts (AWS_MAX_ATTEMPTS, default
// 3), never the reads' 8.
func TestWritesRetryAtMostTheConfiguredAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		action        string
		code          string
		status        int
		writeAttempts int // 0: unset
		want          int
		do            func(*aws.Client) error
	}{
		{"StopInstances throttled, 3 configured", "StopInstances", throttle, 503, 3, 3,
			func(c *aws.Client) error { _, err := c.Stop(context.Background(), instanceID); return err }},
		{"CreateTags failing, SDK default", "CreateTags", "InternalError", 500, 0, 3,
			func(c *aws.Client) error { return c.Tag(context.Background(), instanceID, map[string]string{"a": "1"}) }},
		{"CreateTags failing, AWS_MAX_ATTEMPTS=1", "CreateTags", "InternalError", 500, 1, 1,
			func(c *aws.Client) error { return c.Tag(context.Background(), instanceID, map[string]string{"a": "1"}) }},
		{"TerminateInstances failing, 2 configured", "TerminateInstances", "InternalError", 500, 2, 2,
			func(c *aws.Client) error { _, err := c.Terminate(context.Background(), instanceID); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			fake.AddInstance(fakeaws.Instance{ID: instanceID, Tags: map[string]string{computebot.TagManaged: "true"}})
			c := newRetryClient(t, fake, tt.writeAttempts, aws.Options{ReadAttempts: 8})
			fake.FailNextStatus(tt.action, tt.code, "", tt.status, 100)
			wantTransient(t, tt.do(c), tt.code)
			if n := fake.CallCount(tt.action); n != tt.want {
				t.Errorf("%s calls = %d, want %d", tt.action, n, tt.want)
			}
			if in, _ := fake.Instance(instanceID); in.State != computebot.InstanceRunning || in.Tags["a"] != "" {
				t.Errorf("failed calls changed the instance: %+v", in)
			}
		})
	}
}

// RunInstances is retried like any write, and safely: the SDK resends the
// same input, so every attempt carries the same ClientToken, ours or (with
// none) the one the SDK generated once for the call, and EC2 launches once,
// even when the answer to an attempt that launched was lost.
func TestLaunchRetriesResendTheClientToken(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, token string
		inject      func(*fakeaws.Server)
		attempts    int
	}{
		{"our token, 5xx", "req-retry", func(f *fakeaws.Server) { f.FailNextStatus("RunInstances", "InternalError", "", 500, 2) }, 3},
		{"our token, throttled", "req-throttled", func(f *fakeaws.Server) { f.FailNext("RunInstances", throttle, "", 2) }, 3},
		{"our token, the launch's answer lost", "req-lost", func(f *fakeaws.Server) { f.SetDropResponse("RunInstances", 1) }, 2},
		{"SDK's token, the launch's answer lost", "", func(f *fakeaws.Server) { f.SetDropResponse("RunInstances", 2) }, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			c := newRetryClient(t, fake, 3, aws.Options{})
			tt.inject(fake)
			inst, err := c.Launch(context.Background(), launchSpec(tt.token))
			if err != nil {
				t.Fatal(err)
			}
			calls := fake.Calls("RunInstances")
			if len(calls) != tt.attempts {
				t.Fatalf("RunInstances calls = %d, want %d", len(calls), tt.attempts)
			}
			token := calls[0].Params.Get("ClientToken")
			if token == "" || (tt.token != "" && token != tt.token) {
				t.Errorf("ClientToken = %q, want %q", token, tt.token)
			}
			for i, call := range calls {
				if got := call.Params.Get("ClientToken"); got != token {
					t.Errorf("attempt %d: ClientToken %q, attempt 1 sent %q", i+1, got, token)
				}
			}
			if list := fake.Instances(); len(list) != 1 || list[0].ID != inst.ID || list[0].ClientToken != token {
				t.Errorf("instances = %+v, want only %s", list, inst.ID)
			}
		})
	}
}

// Invoke is tried exactly once whatever the failure, however many
// attempts the writes and reads have.
func TestInvokeIsTriedOnce(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		code   string
		status int
	}{
		{"ServiceException", 500},
		{"TooManyRequestsException", 429},
		{"ResourceNotReadyException", 502},
	} {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			fake.AddFunction(fakeaws.Function{Name: "f"})
			c := newRetryClient(t, fake, 3, aws.Options{ReadAttempts: 8})
			fake.FailNextStatus("Invoke", tt.code, "", tt.status, 1)
			_, err := c.Invoke(context.Background(), computebot.Invocation{Function: "f", Payload: []byte(`{}`)})
			wantCode(t, err, tt.code)
			if n := fake.CallCount("Invoke"); n != 1 {
				t.Errorf("Invoke calls = %d, want 1", n)
			}
			if n := len(fake.Invocations("f")); n != 0 {
				t.Errorf("%d invocations ran", n)
			}
		})
	}
}

// Every method of the client follows the policy of its operation: with
// one 5xx injected, reads go through on their second attempt although
// writes have one (AWS_MAX_ATTEMPTS=1); writes go through with two; Invoke
// fails either way. This catches an SDK call that forgets its retry option.
func TestRetryPolicyPerMethod(t *testing.T) {
	t.Parallel()
	const (
		sg     = "sg-0123456789abcdef0"
		subnet = "subnet-0123456789abcdef0"
	)
	seed := func(fake *fakeaws.Server) {
		fake.AddInstance(fakeaws.Instance{ID: instanceID, Tags: map[string]string{computebot.TagManaged: "true"}})
		fake.AddInstance(fakeaws.Instance{ID: "i-0fffffffffffffff1", State: computebot.InstanceStopped, Tags: map[string]string{computebot.TagManaged: "true"}})
		fake.AddFunction(fakeaws.Function{Name: "f"})
		fake.AddKeyPair("data-science")
		fake.AddSecurityGroup(sg, "computebot")
		fake.AddSubnet(subnet)
		fake.PutMetric(instanceID, "CPUUtilization", metricsBase.Add(time.Minute), 4)
	}
	ctx := context.Background()
	methods := []struct {
		name, action, class string
		do                  func(*aws.Client) error
	}{
		{"InstanceType", "DescribeInstanceTypes", "read", func(c *aws.Client) error { _, err := c.InstanceType(ctx, "t2.micro"); return err }},
		{"ResolveImage by ID", "DescribeImages", "read", func(c *aws.Client) error { _, err := c.ResolveImage(ctx, defaultAMI); return err }},
		{"ResolveImage by SSM", "GetParameter", "read", func(c *aws.Client) error { _, err := c.ResolveImage(ctx, "resolve:ssm:"+al2023SSM); return err }},
		{"HourlyPrice", "GetProducts", "read", func(c *aws.Client) error { _, err := c.HourlyPrice(ctx, "t2.micro"); return err }},
		{"Instance", "DescribeInstances", "read", func(c *aws.Client) error { _, err := c.Instance(ctx, instanceID); return err }},
		{"ManagedInstances", "DescribeInstances", "read", func(c *aws.Client) error {
			_, err := c.ManagedInstances(ctx, computebot.InstanceFilter{})
			return err
		}},
		{"ListFunctions", "ListFunctions", "read", func(c *aws.Client) error { _, err := c.ListFunctions(ctx); return err }},
		{"GetFunction", "GetFunction", "read", func(c *aws.Client) error { _, err := c.GetFunction(ctx, "f"); return err }},
		{"InstanceMetrics", "GetMetricData", "read", func(c *aws.Client) error {
			_, err := c.InstanceMetrics(ctx, hourQuery(instanceID))
			return err
		}},
		{"InstanceMetricsOneByOne", "GetMetricStatistics", "read", func(c *aws.Client) error {
			_, err := c.InstanceMetricsOneByOne(ctx, hourQuery(instanceID), 1)
			return err
		}},
		{"CallerIdentity", "GetCallerIdentity", "read", func(c *aws.Client) error { _, err := c.CallerIdentity(ctx); return err }},
		{"KeyPairExists", "DescribeKeyPairs", "read", func(c *aws.Client) error { return c.KeyPairExists(ctx, "data-science") }},
		{"SecurityGroupsExist", "DescribeSecurityGroups", "read", func(c *aws.Client) error {
			_, err := c.SecurityGroupsExist(ctx, []string{sg})
			return err
		}},
		{"SubnetExists", "DescribeSubnets", "read", func(c *aws.Client) error { _, err := c.SubnetExists(ctx, subnet); return err }},

		{"Launch", "RunInstances", "write", func(c *aws.Client) error { _, err := c.Launch(ctx, launchSpec("per-method")); return err }},
		{"DryRunLaunch", "RunInstances", "write", func(c *aws.Client) error { return c.DryRunLaunch(ctx, launchSpec("per-method")) }},
		{"Stop", "StopInstances", "write", func(c *aws.Client) error { _, err := c.Stop(ctx, instanceID); return err }},
		{"Start", "StartInstances", "write", func(c *aws.Client) error { _, err := c.Start(ctx, "i-0fffffffffffffff1"); return err }},
		{"Terminate", "TerminateInstances", "write", func(c *aws.Client) error { _, err := c.Terminate(ctx, instanceID); return err }},
		{"Tag", "CreateTags", "write", func(c *aws.Client) error { return c.Tag(ctx, instanceID, map[string]string{"a": "1"}) }},

		{"Invoke", "Invoke", "once", func(c *aws.Client) error {
			_, err := c.Invoke(ctx, computebot.Invocation{Function: "f", Payload: []byte(`{}`)})
			return err
		}},
	}
	// Calls of the action without a fault, when not 1: one per metric.
	faultless := map[string]int{"InstanceMetricsOneByOne": 3}
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			for _, writeAttempts := range []int{1, 2} {
				fake := newFake(t)
				seed(fake)
				c := newRetryClient(t, fake, writeAttempts, aws.Options{ReadAttempts: 2})
				fake.FailNextStatus(m.action, "InternalError", "", 500, 1)
				err := m.do(c)
				calls := fake.CallCount(m.action)
				wantOK := m.class == "read" || (m.class == "write" && writeAttempts == 2)
				switch {
				case wantOK && (err != nil || calls != max(faultless[m.name], 1)+1):
					t.Errorf("%s, AWS_MAX_ATTEMPTS=%d: %d calls, err %v; want through on the 2nd attempt", m.class, writeAttempts, calls, err)
				case !wantOK && (calls != 1 || computebot.ErrorCode(err) != "InternalError"):
					t.Errorf("%s, AWS_MAX_ATTEMPTS=%d: %d calls, err %v; want InternalError after 1", m.class, writeAttempts, calls, err)
				}
			}
		})
	}
}

// Every AWS operation the package calls has its own line in the policy
// table (so none is retried as a write by default), and the table's reads
// are exactly the operations named like reads.
func TestRetryPolicyCoversEveryCall(t *testing.T) {
	calls, problems := scanAWSCalls(t, ".")
	for _, p := range problems {
		t.Error(p)
	}
	for _, c := range calls {
		if _, listed := aws.RetryClass(c.action()); !listed {
			t.Errorf("%s: %s is not in retryPolicy (retry.go); say whether it is a read, a write or once", c.pos, c.action())
		}
	}
	policy := aws.RetryPolicy()
	for _, api := range slices.Sorted(maps.Keys(policy)) {
		_, op, _ := strings.Cut(api, ":")
		readName := strings.HasPrefix(op, "Describe") || strings.HasPrefix(op, "Get") || strings.HasPrefix(op, "List")
		if (policy[api] == "read") != readName {
			t.Errorf("%s is classed %q: reads (only) are named Describe*, Get*, List*", api, policy[api])
		}
	}
	if policy["lambda:InvokeFunction"] != "once" {
		t.Errorf("lambda:InvokeFunction is %q, want once", policy["lambda:InvokeFunction"])
	}
}

// The reads' backoff cap leaves half of CallTimeout to the attempts.
func TestReadBackoff(t *testing.T) {
	for _, tt := range []struct {
		max, callTimeout time.Duration
		attempts         int
		want             time.Duration
	}{
		{aws.DefaultReadBackoffMax, aws.DefaultCallTimeout, aws.DefaultReadAttempts, aws.DefaultCallTimeout / 14},
		{testReadBackoff, aws.DefaultCallTimeout, aws.DefaultReadAttempts, testReadBackoff},
		{aws.DefaultReadBackoffMax, time.Second, 3, 250 * time.Millisecond},
		{aws.DefaultReadBackoffMax, time.Second, 1, aws.DefaultReadBackoffMax},
	} {
		if got := aws.ReadBackoff(tt.max, tt.callTimeout, tt.attempts); got != tt.want {
			t.Errorf("ReadBackoff(%v, %v, %d) = %v, want %v", tt.max, tt.callTimeout, tt.attempts, got, tt.want)
		}
	}
}
