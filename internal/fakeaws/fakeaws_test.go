package fakeaws

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	pricingtypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

func TestFailNextInjectsErrorsWithAWSStatuses(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)
	s.FailNext("RunInstances", "RequestLimitExceeded", "", 1)
	s.FailNext("RunInstances", "InsufficientInstanceCapacity", "no t2.micro for you", 1)
	s.FailNext("DescribeImages", "UnauthorizedOperation", "", 1)

	_, err := c.RunInstances(ctx(t), launchInput(""))
	wantAPIError(t, err, "RequestLimitExceeded", http.StatusServiceUnavailable)
	_, err = c.RunInstances(ctx(t), launchInput(""))
	wantAPIError(t, err, "InsufficientInstanceCapacity", http.StatusInternalServerError)
	if !strings.Contains(err.Error(), "no t2.micro for you") {
		t.Errorf("message lost: %v", err)
	}
	_, err = c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{})
	wantAPIError(t, err, "UnauthorizedOperation", http.StatusBadRequest)

	// The faults are used up: the next calls succeed.
	launch(t, c, "")
	if _, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{}); err != nil {
		t.Fatal(err)
	}
	if got := s.CallCount("RunInstances"); got != 3 {
		t.Errorf("CallCount(RunInstances) = %d, want 3", got)
	}
	codes := []string{}
	for _, call := range s.Calls("RunInstances") {
		codes = append(codes, call.ErrorCode)
	}
	if strings.Join(codes, ",") != "RequestLimitExceeded,InsufficientInstanceCapacity," {
		t.Errorf("recorded codes %q", codes)
	}

	// "" fails any action, JSON services included, in their own encoding.
	s.FailNext("", "ThrottlingException", "", 2)
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{})
	wantAPIError(t, err, "ThrottlingException", http.StatusBadRequest)
	_, err = ssmClient(s).GetParameter(ctx(t), &ssm.GetParameterInput{Name: aws.String("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")})
	wantAPIError(t, err, "ThrottlingException", http.StatusBadRequest)

	s.FailNext("RunInstances", "InsufficientInstanceCapacity", "", 5)
	s.ClearFaults()
	launch(t, c, "")
}

func TestSDKRetriesServerErrorsByDefault(t *testing.T) {
	// Documents the caveat in FailNext: with the SDK's default three
	// attempts, a single injected 503 is retried away.
	s := newFake(t)
	cfg := sdkConfig()
	cfg.RetryMaxAttempts = 3
	c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	s.FailNext("DescribeInstanceTypes", "ServiceUnavailable", "", 1)
	if _, err := c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{}); err != nil {
		t.Fatal(err)
	}
	if n := s.CallCount("DescribeInstanceTypes"); n != 2 {
		t.Errorf("%d calls, want 2 (one failed, one retried)", n)
	}
}

func TestLatency(t *testing.T) {
	const d = 150 * time.Millisecond
	s := newFake(t)
	c := ec2Client(s)
	s.SetLatency("DescribeImages", d)

	start := time.Now()
	if _, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d {
		t.Errorf("DescribeImages took %v, want ≥ %v", took, d)
	}
	start = time.Now()
	if _, err := c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= d {
		t.Errorf("DescribeInstanceTypes took %v; latency leaked to another action", took)
	}

	// A global latency, with one action exempted.
	s.SetLatency("", d)
	s.SetLatency("DescribeInstanceTypes", 0)
	start = time.Now()
	if _, err := pricingClient(s).GetProducts(ctx(t), &pricing.GetProductsInput{ServiceCode: aws.String("AmazonEC2")}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d {
		t.Errorf("GetProducts took %v under a global latency", took)
	}
	start = time.Now()
	if _, err := c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= d {
		t.Errorf("exempted action took %v", took)
	}

	// A client that gives up sees a timeout; the launch still happens, as
	// on AWS, and a retry with the same token finds it.
	s.ClearFaults()
	s.SetLatency("RunInstances", d)
	short, cancel := context.WithTimeout(context.Background(), d/3)
	defer cancel()
	_, err := c.RunInstances(short, launchInput("slow"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	out, err := c.RunInstances(ctx(t), launchInput("slow"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Instances()); n != 1 {
		t.Errorf("%d instances after a timed-out launch and its retry, want 1", n)
	}
	if got, _ := s.Instance(aws.ToString(out.Instances[0].InstanceId)); got.ClientToken != "slow" {
		t.Errorf("instance %+v", got)
	}
}

func TestCloseReleasesSlowHandlers(t *testing.T) {
	s := New()
	s.SetLatency("", time.Hour)
	go func() {
		_, _ = ec2Client(s).DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	}()
	for s.CallCount("") == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a handler sleeping on latency")
	}
	s.Close() // idempotent
}

func TestGetProducts(t *testing.T) {
	s := newFake(t)
	c := pricingClient(s)
	term := func(field, value string) pricingtypes.Filter {
		return pricingtypes.Filter{Type: pricingtypes.FilterTypeTermMatch, Field: aws.String(field), Value: aws.String(value)}
	}
	query := func(instanceType string, extra ...pricingtypes.Filter) []string {
		t.Helper()
		filters := append([]pricingtypes.Filter{
			term("instanceType", instanceType),
			term("location", "EU (Frankfurt)"),
			term("operatingSystem", "Linux"),
			term("tenancy", "Shared"),
			term("preInstalledSw", "NA"),
			term("capacitystatus", "Used"),
		}, extra...)
		out, err := c.GetProducts(ctx(t), &pricing.GetProductsInput{
			ServiceCode: aws.String("AmazonEC2"), Filters: filters, FormatVersion: aws.String("aws_v1"), MaxResults: aws.Int32(10),
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.FormatVersion) != "aws_v1" {
			t.Errorf("format version %q", aws.ToString(out.FormatVersion))
		}
		return out.PriceList
	}

	list := query("t2.micro")
	if len(list) != 1 {
		t.Fatalf("%d products, want 1", len(list))
	}
	var doc struct {
		Product struct {
			Attributes map[string]string `json:"attributes"`
		} `json:"product"`
		Terms struct {
			OnDemand map[string]struct {
				PriceDimensions map[string]struct {
					Unit         string            `json:"unit"`
					PricePerUnit map[string]string `json:"pricePerUnit"`
				} `json:"priceDimensions"`
			} `json:"OnDemand"`
		} `json:"terms"`
	}
	if err := json.Unmarshal([]byte(list[0]), &doc); err != nil {
		t.Fatalf("price document is not JSON: %v", err)
	}
	if a := doc.Product.Attributes; a["instanceType"] != "t2.micro" || a["location"] != "EU (Frankfurt)" {
		t.Errorf("attributes %v", a)
	}
	var prices []string
	for _, term := range doc.Terms.OnDemand {
		for _, dim := range term.PriceDimensions {
			if dim.Unit != "Hrs" {
				t.Errorf("unit %q", dim.Unit)
			}
			prices = append(prices, dim.PricePerUnit["USD"])
		}
	}
	if len(prices) != 1 || prices[0] != "0.0116000000" {
		t.Errorf("on-demand prices %v", prices)
	}

	if got := query("t3.medium"); len(got) != 0 {
		t.Errorf("unpriced type: %d products", len(got))
	}
	if got := query("t2.micro", term("operatingSystem", "Windows")); len(got) != 0 {
		t.Errorf("Windows: %d products", len(got))
	}
	s.SetPrice("t3.medium", 0.0416)
	if got := query("t3.medium"); len(got) != 1 || !strings.Contains(got[0], `"USD":"0.0416000000"`) {
		t.Errorf("after SetPrice: %v", got)
	}
}

func TestGetProductsPagination(t *testing.T) {
	s := newFake(t)
	p := pricing.NewGetProductsPaginator(pricingClient(s), &pricing.GetProductsInput{ServiceCode: aws.String("AmazonEC2"), MaxResults: aws.Int32(1)})
	n := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		n += len(out.PriceList)
	}
	if n != 2 {
		t.Errorf("%d products over all pages, want 2", n)
	}
}

func TestGetParameter(t *testing.T) {
	s := newFake(t)
	c := ssmClient(s)
	out, err := c.GetParameter(ctx(t), &ssm.GetParameterInput{Name: aws.String("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Parameter.Value) != "ami-0123456789abcdef0" || out.Parameter.Type != ssmtypes.ParameterTypeString || out.Parameter.Version != 1 {
		t.Errorf("parameter %+v", out.Parameter)
	}

	s.SetSSMParameter("/computebot/ami", "ami-0aaaaaaaaaaaaaaa1")
	s.SetSSMParameter("/computebot/ami", "ami-0bbbbbbbbbbbbbbb2")
	out, err = c.GetParameter(ctx(t), &ssm.GetParameterInput{Name: aws.String("/computebot/ami")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Parameter.Value) != "ami-0bbbbbbbbbbbbbbb2" || out.Parameter.Version != 2 || out.Parameter.LastModifiedDate == nil {
		t.Errorf("parameter %+v", out.Parameter)
	}

	_, err = c.GetParameter(ctx(t), &ssm.GetParameterInput{Name: aws.String("/nope")})
	wantAPIError(t, err, "ParameterNotFound", http.StatusBadRequest)
	var nf *ssmtypes.ParameterNotFound
	if !errors.As(err, &nf) {
		t.Errorf("want the modelled *types.ParameterNotFound, got %T", err)
	}

	many, err := c.GetParameters(ctx(t), &ssm.GetParametersInput{Names: []string{"/computebot/ami", "/nope"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(many.Parameters) != 1 || len(many.InvalidParameters) != 1 || many.InvalidParameters[0] != "/nope" {
		t.Errorf("GetParameters %+v", many)
	}
	calls := s.Calls("GetParameter")
	if len(calls) != 3 || calls[0].Service != "ssm" || !strings.Contains(string(calls[1].Body), "/computebot/ami") || calls[2].ErrorCode != "ParameterNotFound" {
		t.Errorf("calls %+v", calls)
	}
}

// TestEnvironmentEndpoint proves the route the bot uses: the SDK's default
// chain with AWS_ENDPOINT_URL and no code-level endpoint override.
func TestEnvironmentEndpoint(t *testing.T) {
	s := newFake(t)
	t.Setenv("AWS_ENDPOINT_URL", s.URL())
	sdkEnv(t, "eu-central-1")

	cfg, err := config.LoadDefaultConfig(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	ec2c := ec2.NewFromConfig(cfg)
	out, err := ec2c.RunInstances(ctx(t), launchInput("env"))
	if err != nil {
		t.Fatal(err)
	}
	if az := aws.ToString(out.Instances[0].Placement.AvailabilityZone); az != "eu-central-1a" {
		t.Errorf("availability zone %q: the signing region should show", az)
	}
	if _, err := pricing.NewFromConfig(cfg).GetProducts(ctx(t), &pricing.GetProductsInput{ServiceCode: aws.String("AmazonEC2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ssm.NewFromConfig(cfg).GetParameter(ctx(t), &ssm.GetParameterInput{Name: aws.String("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")}); err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, c := range s.Calls("") {
		services = append(services, c.Service+"."+c.Action)
	}
	if strings.Join(services, " ") != "ec2.RunInstances pricing.GetProducts ssm.GetParameter" {
		t.Errorf("calls %v", services)
	}
}

func TestUnroutedRequests(t *testing.T) {
	s := newFake(t)
	// An EC2 action the fake does not implement answers like EC2 does.
	_, err := ec2Client(s).DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{})
	wantAPIError(t, err, "InvalidAction", http.StatusBadRequest)
	// A request of no known protocol is a 404, and is recorded.
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/2021-11-15/functions/f/response-streaming-invocations", strings.NewReader("{}"))
	if code := statusOf(t, req); code != http.StatusNotFound {
		t.Errorf("status %d", code)
	}
	if calls := s.Calls("POST /2021-11-15/functions/f/response-streaming-invocations"); len(calls) != 1 || calls[0].Service != "unknown" {
		t.Errorf("calls %+v", s.Calls(""))
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newFake(t)
	s.SetRunningDelay(time.Millisecond)
	c := ec2Client(s)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := launchInput("")
			in.ClientToken = nil
			out, err := c.RunInstances(ctx(t), in)
			if err != nil {
				t.Error(err)
				return
			}
			id := aws.ToString(out.Instances[0].InstanceId)
			if _, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"running"}}}}); err != nil {
				t.Error(err)
			}
			if _, err := c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{tag("k", "v")}}); err != nil {
				t.Error(err)
			}
			_ = s.Instances()
			_ = s.Calls("")
		}()
	}
	wg.Wait()
	if n := len(s.Instances()); n != 8 {
		t.Errorf("%d instances", n)
	}
}
