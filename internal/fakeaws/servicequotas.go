package fakeaws

// Service Quotas (AWS JSON 1.1, X-Amz-Target ServiceQuotasV20190624.*):
// GetServiceQuota answers the applied value of a quota. The fake knows
// EC2's on-demand vCPU quotas from the start (ec2VCPUQuotas, generous
// enough that no test runs into them by accident); SetServiceQuota adds or
// changes a quota and DeleteServiceQuota makes its lookup fail.

// quotaKey identifies a quota: service code ("ec2") and quota code ("L-…").
type quotaKey struct{ service, code string }

type serviceQuota struct {
	name  string
	value float64
}

// ec2VCPUQuotas are the "Running On-Demand … instances" quotas (vCPUs)
// every account has, preloaded by New.
var ec2VCPUQuotas = []struct {
	code, name string
	value      float64
}{
	{"L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 512},
	{"L-DB2E81BA", "Running On-Demand G and VT instances", 64},
	{"L-417A185B", "Running On-Demand P instances", 64},
	{"L-74FC7D96", "Running On-Demand F instances", 32},
	{"L-7295265B", "Running On-Demand X instances", 32},
	{"L-6E869C2A", "Running On-Demand DL instances", 32},
	{"L-1945791B", "Running On-Demand Inf instances", 32},
	{"L-2C3B7624", "Running On-Demand Trn instances", 32},
	{"L-43DA4232", "Running On-Demand High Memory instances", 32},
	{"L-F7808C92", "Running On-Demand HPC instances", 32},
}

// serviceNames are the ServiceName answers for the service codes the fake
// knows by name; others answer their code.
var serviceNames = map[string]string{
	"ec2": "Amazon Elastic Compute Cloud (Amazon EC2)",
}

// SetServiceQuota sets the applied value GetServiceQuota answers for a
// quota, adding the quota if need be (named as EC2's vCPU quotas are, else
// after its code).
func (s *Server) SetServiceQuota(serviceCode, quotaCode string, value float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := quotaKey{serviceCode, quotaCode}
	q, ok := s.quotas[k]
	if !ok {
		q.name = quotaCode
		if serviceCode == "ec2" {
			for _, known := range ec2VCPUQuotas {
				if known.code == quotaCode {
					q.name = known.name
				}
			}
		}
	}
	q.value = value
	s.quotas[k] = q
}

// DeleteServiceQuota forgets a quota: GetServiceQuota then answers
// NoSuchResourceException for it, as Service Quotas does for a quota it
// has no applied value of.
func (s *Server) DeleteServiceQuota(serviceCode, quotaCode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.quotas, quotaKey{serviceCode, quotaCode})
}

type serviceQuotaJSON struct {
	ServiceCode string  `json:"ServiceCode"`
	ServiceName string  `json:"ServiceName"`
	QuotaArn    string  `json:"QuotaArn"`
	QuotaCode   string  `json:"QuotaCode"`
	QuotaName   string  `json:"QuotaName"`
	Value       float64 `json:"Value"`
	Unit        string  `json:"Unit"`
	Adjustable  bool    `json:"Adjustable"`
	GlobalQuota bool    `json:"GlobalQuota"`
}

// sqGetServiceQuota answers ServiceQuotasV20190624.GetServiceQuota. Errors
// are the model's: IllegalArgumentException (400) for a missing code,
// NoSuchResourceException (404) for an unknown service or quota.
func sqGetServiceQuota(s *Server, req *request) (*response, *apiError) {
	var in struct {
		ServiceCode string `json:"ServiceCode"`
		QuotaCode   string `json:"QuotaCode"`
	}
	if aerr := decodeJSON(req, &in); aerr != nil {
		return nil, aerr
	}
	if in.ServiceCode == "" || in.QuotaCode == "" {
		return nil, errorf("IllegalArgumentException", "ServiceCode and QuotaCode are required.")
	}
	s.mu.Lock()
	q, ok := s.quotas[quotaKey{in.ServiceCode, in.QuotaCode}]
	known := ok || serviceNames[in.ServiceCode] != ""
	for k := range s.quotas {
		known = known || k.service == in.ServiceCode
	}
	s.mu.Unlock()
	if !known {
		return nil, errorf("NoSuchResourceException", "The request failed because the specified service does not exist.")
	}
	if !ok {
		return nil, errorf("NoSuchResourceException", "The request failed because the specified quota does not exist.")
	}
	name := serviceNames[in.ServiceCode]
	if name == "" {
		name = in.ServiceCode
	}
	return jsonResponse(map[string]any{"Quota": serviceQuotaJSON{
		ServiceCode: in.ServiceCode,
		ServiceName: name,
		QuotaArn:    "arn:aws:servicequotas:" + req.region + ":" + OwnerID + ":" + in.ServiceCode + "/" + in.QuotaCode,
		QuotaCode:   in.QuotaCode,
		QuotaName:   q.name,
		Value:       q.value,
		Unit:        "None",
		Adjustable:  true,
		GlobalQuota: false,
	}})
}
