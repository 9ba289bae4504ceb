package fakeaws

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// throttledCalls makes n DescribeInstances calls under a 0.3 throttle ratio
// and reports which were throttled.
func throttledCalls(t *testing.T, seed int64, n int) []bool {
	t.Helper()
	s := newFake(t)
	c := ec2Client(s)
	s.SetThrottleRatio("DescribeInstances", 0.3, seed)
	out := make([]bool, n)
	for i := range out {
		_, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{})
		if err != nil {
			wantAPIError(t, err, "RequestLimitExceeded", http.StatusServiceUnavailable)
			out[i] = true
		}
	}
	if _, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{}); err != nil {
		t.Errorf("another action throttled: %v", err)
	}
	return out
}

func TestThrottleRatioIsSeeded(t *testing.T) {
	a, b, c := throttledCalls(t, 7, 200), throttledCalls(t, 7, 200), throttledCalls(t, 8, 200)
	n, same, differs := 0, true, false
	for i := range a {
		if a[i] {
			n++
		}
		same = same && a[i] == b[i]
		differs = differs || a[i] != c[i]
	}
	if n < 40 || n > 80 {
		t.Errorf("%d of 200 calls throttled at ratio 0.3", n)
	}
	if !same || !differs {
		t.Errorf("same seed same calls: %v; other seed other calls: %v", same, differs)
	}
}

// TestThrottleEveryService throttles every action and checks each service's
// own code and status, and that the SDK takes each for throttling.
func TestThrottleEveryService(t *testing.T) {
	s := newFake(t)
	s.AddFunction(Function{Name: "hello"})
	s.SetThrottleRatio("", 1, 1)
	s.SetThrottleRatio("DescribeInstanceTypes", 0, 0) // exempt

	calls := []struct {
		code   string
		status int
		call   func(context.Context) error
	}{
		{"RequestLimitExceeded", http.StatusServiceUnavailable, func(c context.Context) error {
			_, err := ec2Client(s).RunInstances(c, launchInput("tok"))
			return err
		}},
		{"Throttling", http.StatusBadRequest, func(c context.Context) error {
			_, err := stsClient(s).GetCallerIdentity(c, &sts.GetCallerIdentityInput{})
			return err
		}},
		{"Throttling", http.StatusBadRequest, func(c context.Context) error {
			_, err := cloudwatchClient(s).GetMetricData(c, &cloudwatch.GetMetricDataInput{
				StartTime: aws.Time(time.Now().Add(-time.Hour)), EndTime: aws.Time(time.Now()),
				MetricDataQueries: []cwtypes.MetricDataQuery{statQuery("a", "i-0123456789abcdef0", "CPUUtilization", "Average", 300)},
			})
			return err
		}},
		{"TooManyRequestsException", http.StatusTooManyRequests, func(c context.Context) error {
			_, err := lambdaClient(s).Invoke(c, &lambda.InvokeInput{FunctionName: aws.String("hello")})
			var tm *lambdatypes.TooManyRequestsException
			if errors.As(err, &tm) && (aws.ToString(tm.RetryAfterSeconds) != "1" || tm.Reason == "" || tm.ErrorMessage() == "") {
				t.Errorf("TooManyRequestsException = %+v", tm)
			}
			return err
		}},
		{"ThrottlingException", http.StatusTooManyRequests, func(c context.Context) error {
			_, err := pricingClient(s).GetProducts(c, &pricing.GetProductsInput{ServiceCode: aws.String("AmazonEC2")})
			return err
		}},
		{"ThrottlingException", http.StatusBadRequest, func(c context.Context) error {
			_, err := ssmClient(s).GetParameter(c, &ssm.GetParameterInput{Name: aws.String("/x")})
			return err
		}},
		{"TooManyRequestsException", http.StatusTooManyRequests, func(c context.Context) error {
			_, err := quotasClient(s).GetServiceQuota(c, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String("L-1216C47A")})
			return err
		}},
	}
	for _, tc := range calls {
		err := tc.call(ctx(t))
		wantAPIError(t, err, tc.code, tc.status)
		if !retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool() {
			t.Errorf("the SDK does not take %v for throttling", err)
		}
	}
	if n := len(s.Instances()); n != 0 {
		t.Errorf("a throttled RunInstances launched %d instances", n)
	}
	if _, err := ec2Client(s).DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{}); err != nil {
		t.Errorf("exempted action: %v", err)
	}
	var codes []string
	for _, c := range s.Calls("") {
		codes = append(codes, c.ErrorCode)
	}
	if len(codes) != len(calls)+1 || codes[0] != "RequestLimitExceeded" || codes[len(codes)-1] != "" {
		t.Errorf("recorded codes %q", codes)
	}

	s.ClearFaults()
	launch(t, ec2Client(s), "tok")
}

// TestDropResponseLaunchesOnce loses the answer of a launch both ways: a
// retry with the same ClientToken finds the instance the lost call launched.
func TestDropResponseLaunchesOnce(t *testing.T) {
	for _, hangUp := range []bool{false, true} {
		s := newFake(t)
		c := ec2Client(s)
		if hangUp {
			s.SetDropConnection("RunInstances", 1)
		} else {
			s.SetDropResponse("RunInstances", 1)
		}
		// A call that fails anyway does not use the drop up.
		bad := launchInput("tok")
		bad.ImageId = aws.String("ami-0000000000000dead")
		_, err := c.RunInstances(ctx(t), bad)
		wantAPIError(t, err, "InvalidAMIID.NotFound", 0)

		_, err = c.RunInstances(ctx(t), launchInput("tok"))
		var apiErr smithy.APIError
		if hangUp {
			if err == nil || errors.As(err, &apiErr) {
				t.Fatalf("hang-up: %v, want a connection error", err)
			}
		} else {
			wantAPIError(t, err, "InternalError", http.StatusInternalServerError)
		}
		insts := s.Instances()
		if len(insts) != 1 {
			t.Fatalf("%d instances after the lost answer, want 1", len(insts))
		}
		calls := s.Calls("RunInstances")
		if last := calls[len(calls)-1]; !last.AnswerLost || (hangUp && last.ErrorCode != "ConnectionClosed") || (!hangUp && last.ErrorCode != "InternalError") {
			t.Errorf("recorded %+v", last)
		}
		again := launch(t, c, "tok")
		if aws.ToString(again.InstanceId) != insts[0].ID || len(s.Instances()) != 1 {
			t.Errorf("retry launched %s, want %s", aws.ToString(again.InstanceId), insts[0].ID)
		}
	}
}

// TestDropResponseUnderSDKRetries: with the SDK's default retries the lost
// answer is invisible, and the SDK's own token keeps it to one launch.
func TestDropResponseUnderSDKRetries(t *testing.T) {
	s := newFake(t)
	cfg := sdkConfig()
	cfg.RetryMaxAttempts = 3
	c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	s.SetDropResponse("RunInstances", 1)
	s.SetDropConnection("RunInstances", 1)
	in := launchInput("")
	in.ClientToken = nil // the SDK invents one, the same for its retries
	if _, err := c.RunInstances(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	if n, calls := len(s.Instances()), s.CallCount("RunInstances"); n != 1 || calls != 3 {
		t.Errorf("%d instances in %d calls, want 1 in 3", n, calls)
	}
	// Other actions act too: the stop happened although its answer was lost.
	id := s.Instances()[0].ID
	s.SetDropResponse("", 1)
	if _, err := ec2Client(s).StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{id}}); err == nil {
		t.Fatal("answer not lost")
	}
	if in, _ := s.Instance(id); in.State != stateStopped && in.State != stateStopping {
		t.Errorf("state %s after a stop whose answer was lost", in.State)
	}
}
