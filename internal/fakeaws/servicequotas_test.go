package fakeaws

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
)

func quotasClient(s *Server) *servicequotas.Client {
	return servicequotas.NewFromConfig(sdkConfig(), func(o *servicequotas.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

func getQuota(t *testing.T, c *servicequotas.Client, service, code string) (*sqtypes.ServiceQuota, error) {
	t.Helper()
	out, err := c.GetServiceQuota(ctx(t), &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String(service), QuotaCode: aws.String(code)})
	if err != nil {
		return nil, err
	}
	if out.Quota == nil {
		t.Fatalf("%s/%s: no Quota in the answer", service, code)
	}
	return out.Quota, nil
}

func TestGetServiceQuotaPreloadsEC2VCPUQuotas(t *testing.T) {
	s := newFake(t)
	c := quotasClient(s)
	for code, want := range map[string]struct {
		name  string
		value float64
	}{
		"L-1216C47A": {"Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 512},
		"L-DB2E81BA": {"Running On-Demand G and VT instances", 64},
		"L-417A185B": {"Running On-Demand P instances", 64},
		"L-74FC7D96": {"Running On-Demand F instances", 32},
		"L-7295265B": {"Running On-Demand X instances", 32},
		"L-6E869C2A": {"Running On-Demand DL instances", 32},
		"L-1945791B": {"Running On-Demand Inf instances", 32},
		"L-2C3B7624": {"Running On-Demand Trn instances", 32},
		"L-43DA4232": {"Running On-Demand High Memory instances", 32},
		"L-F7808C92": {"Running On-Demand HPC instances", 32},
	} {
		q, err := getQuota(t, c, "ec2", code)
		if err != nil {
			t.Fatalf("%s: %v", code, err)
		}
		if aws.ToString(q.QuotaName) != want.name || aws.ToFloat64(q.Value) != want.value || aws.ToString(q.QuotaCode) != code ||
			aws.ToString(q.ServiceCode) != "ec2" || aws.ToString(q.ServiceName) != "Amazon Elastic Compute Cloud (Amazon EC2)" ||
			aws.ToString(q.QuotaArn) != "arn:aws:servicequotas:us-east-1:"+OwnerID+":ec2/"+code ||
			aws.ToString(q.Unit) != "None" || !q.Adjustable || q.GlobalQuota {
			t.Errorf("%s = %+v", code, q)
		}
	}
	calls := s.Calls("GetServiceQuota")
	if len(calls) != 10 || calls[0].Service != "servicequotas" || calls[0].Params != nil ||
		!strings.Contains(string(calls[0].Body), `"QuotaCode":"L-`) || !strings.Contains(string(calls[0].Body), `"ServiceCode":"ec2"`) {
		t.Errorf("calls %+v", calls[:1])
	}
}

func TestSetAndDeleteServiceQuota(t *testing.T) {
	s := newFake(t)
	c := quotasClient(s)
	s.SetServiceQuota("ec2", "L-DB2E81BA", 8)
	q, err := getQuota(t, c, "ec2", "L-DB2E81BA")
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToFloat64(q.Value) != 8 || aws.ToString(q.QuotaName) != "Running On-Demand G and VT instances" {
		t.Errorf("set quota %+v", q)
	}
	// Fractional values survive the JSON.
	s.SetServiceQuota("ec2", "L-DB2E81BA", 12.5)
	if q, err := getQuota(t, c, "ec2", "L-DB2E81BA"); err != nil || aws.ToFloat64(q.Value) != 12.5 {
		t.Errorf("fractional quota %+v %v", q, err)
	}

	// Deleted: the lookup fails as Service Quotas fails it, with its
	// modeled error (HTTP 404 per the model's httpError).
	s.DeleteServiceQuota("ec2", "L-DB2E81BA")
	_, err = getQuota(t, c, "ec2", "L-DB2E81BA")
	wantAPIError(t, err, "NoSuchResourceException", http.StatusNotFound)
	var nsr *sqtypes.NoSuchResourceException
	if !errors.As(err, &nsr) || !strings.Contains(nsr.ErrorMessage(), "quota does not exist") {
		t.Errorf("error %T %v", err, err)
	}
	// Unknown service, unknown quota.
	_, err = getQuota(t, c, "EC2", "L-1216C47A")
	wantAPIError(t, err, "NoSuchResourceException", http.StatusNotFound)
	if !strings.Contains(err.Error(), "service does not exist") {
		t.Errorf("unknown service: %v", err)
	}
	_, err = getQuota(t, c, "ec2", "L-00000000")
	wantAPIError(t, err, "NoSuchResourceException", 0)

	// A new quota, of another service too.
	s.SetServiceQuota("ec2", "L-0263D0A3", 5)
	s.SetServiceQuota("lambda", "L-B99A9384", 1000)
	if q, err := getQuota(t, c, "ec2", "L-0263D0A3"); err != nil || aws.ToFloat64(q.Value) != 5 || aws.ToString(q.QuotaName) != "L-0263D0A3" {
		t.Errorf("new quota %+v %v", q, err)
	}
	if q, err := getQuota(t, c, "lambda", "L-B99A9384"); err != nil || aws.ToFloat64(q.Value) != 1000 || aws.ToString(q.ServiceName) != "lambda" {
		t.Errorf("lambda quota %+v %v", q, err)
	}
}

func TestServiceQuotasFaults(t *testing.T) {
	s := newFake(t)
	c := quotasClient(s)
	s.FailNext("GetServiceQuota", "AccessDeniedException", "", 1)
	s.FailNext("GetServiceQuota", "ServiceException", "boom", 1)
	_, err := getQuota(t, c, "ec2", "L-1216C47A")
	wantAPIError(t, err, "AccessDeniedException", 0)
	_, err = getQuota(t, c, "ec2", "L-1216C47A")
	wantAPIError(t, err, "ServiceException", http.StatusInternalServerError)
	if !strings.Contains(err.Error(), "boom") {
		t.Errorf("message lost: %v", err)
	}
	if _, err := getQuota(t, c, "ec2", "L-1216C47A"); err != nil {
		t.Fatalf("faults used up: %v", err)
	}

	// Throttled the way Service Quotas throttles, and the SDK knows it.
	s.SetThrottleRatio("GetServiceQuota", 1, 1)
	_, err = getQuota(t, c, "ec2", "L-1216C47A")
	wantAPIError(t, err, "TooManyRequestsException", http.StatusTooManyRequests)
	if !retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool() {
		t.Errorf("the SDK does not take %v for throttling", err)
	}
	s.ClearFaults()

	// A lost answer is Service Quotas' internal error.
	s.SetDropResponse("GetServiceQuota", 1)
	_, err = getQuota(t, c, "ec2", "L-1216C47A")
	wantAPIError(t, err, "ServiceException", http.StatusInternalServerError)

	const d = 100 * time.Millisecond
	s.SetLatency("GetServiceQuota", d)
	start := time.Now()
	if _, err := getQuota(t, c, "ec2", "L-1216C47A"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < d {
		t.Errorf("answered in %v, want at least %v", el, d)
	}
	codes := []string{}
	for _, call := range s.Calls("GetServiceQuota") {
		codes = append(codes, call.ErrorCode)
	}
	if strings.Join(codes, ",") != "AccessDeniedException,ServiceException,,TooManyRequestsException,ServiceException," {
		t.Errorf("recorded codes %q", codes)
	}
}

// TestServiceQuotasEndpointVariable: the SDK's service ID is "Service
// Quotas", so its own endpoint variable is AWS_ENDPOINT_URL_SERVICE_QUOTAS.
func TestServiceQuotasEndpointVariable(t *testing.T) {
	s := newFake(t)
	t.Setenv("AWS_ENDPOINT_URL", "")
	os.Unsetenv("AWS_ENDPOINT_URL") // t.Setenv restores it
	t.Setenv("AWS_ENDPOINT_URL_SERVICE_QUOTAS", s.URL())
	sdkEnv(t, "eu-west-1")
	cfg, err := config.LoadDefaultConfig(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	q, err := getQuota(t, servicequotas.NewFromConfig(cfg), "ec2", "L-1216C47A")
	if err != nil {
		t.Fatal(err)
	}
	if arn := aws.ToString(q.QuotaArn); arn != "arn:aws:servicequotas:eu-west-1:"+OwnerID+":ec2/L-1216C47A" {
		t.Errorf("ARN %q: the signing region should show", arn)
	}
	if calls := s.Calls(""); len(calls) != 1 || calls[0].Service != "servicequotas" || calls[0].Action != "GetServiceQuota" {
		t.Errorf("calls %+v", calls)
	}
}
