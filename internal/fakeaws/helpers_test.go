package fakeaws

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// newFake starts a fake that is closed when the test ends.
func newFake(t *testing.T) *Server {
	t.Helper()
	s := New()
	t.Cleanup(s.Close)
	return s
}

// sdkConfig is the config the brief prescribes for tests: static
// credentials, one attempt so injected faults are not retried away.
func sdkConfig() aws.Config {
	return aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
	}
}

func ec2Client(s *Server) *ec2.Client {
	return ec2.NewFromConfig(sdkConfig(), func(o *ec2.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

func pricingClient(s *Server) *pricing.Client {
	return pricing.NewFromConfig(sdkConfig(), func(o *pricing.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

func ssmClient(s *Server) *ssm.Client {
	return ssm.NewFromConfig(sdkConfig(), func(o *ssm.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantAPIError asserts err is an AWS API error with code and, when status
// is not 0, that HTTP status.
func wantAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("want API error %s, got %v", code, err)
	}
	if apiErr.ErrorCode() != code {
		t.Fatalf("want error code %s, got %s (%v)", code, apiErr.ErrorCode(), err)
	}
	if status != 0 {
		var re *awshttp.ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("no HTTP response in %v", err)
		}
		if re.HTTPStatusCode() != status {
			t.Fatalf("%s: want HTTP %d, got %d", code, status, re.HTTPStatusCode())
		}
	}
}

func tag(k, v string) ec2types.Tag { return ec2types.Tag{Key: aws.String(k), Value: aws.String(v)} }

// launchInput is what the bot sends: tagged instance and volume, IMDSv2,
// encrypted root volume.
func launchInput(token string) *ec2.RunInstancesInput {
	return &ec2.RunInstancesInput{
		ImageId:          aws.String("ami-0123456789abcdef0"),
		InstanceType:     ec2types.InstanceTypeT2Micro,
		MinCount:         aws.Int32(1),
		MaxCount:         aws.Int32(1),
		KeyName:          aws.String("data-science"),
		SecurityGroupIds: []string{"sg-0aaa", "sg-0bbb"},
		SubnetId:         aws.String("subnet-0public"),
		ClientToken:      aws.String(token),
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{tag("Name", "ana-t2"), tag("computebot:owner", "U0ANA"), tag("computebot:managed", "true")}},
			{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{tag("computebot:owner", "U0ANA")}},
		},
		MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired},
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{
			{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{Encrypted: aws.Bool(true)}},
		},
	}
}

func launch(t *testing.T, c *ec2.Client, token string) ec2types.Instance {
	t.Helper()
	out, err := c.RunInstances(ctx(t), launchInput(token))
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	if len(out.Instances) != 1 {
		t.Fatalf("want 1 instance, got %d", len(out.Instances))
	}
	return out.Instances[0]
}

func describeOne(t *testing.T, c *ec2.Client, id string) ec2types.Instance {
	t.Helper()
	out, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("want one instance, got %+v", out.Reservations)
	}
	return out.Reservations[0].Instances[0]
}

func tagMap(tags []ec2types.Tag) map[string]string {
	m := map[string]string{}
	for _, tg := range tags {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// statusOf posts a raw request and returns the status code, for the paths
// no SDK client takes.
func statusOf(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// sdkEnv gives the SDK's default chain static credentials, region and one
// attempt, and nothing from this machine's AWS files or instance metadata;
// the test sets the endpoint variable it is about.
func sdkEnv(t *testing.T, region string) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKID")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRET")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", region)
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}
