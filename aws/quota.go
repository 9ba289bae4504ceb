package aws

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/computebot/computebot"
)

// How long the vCPU quota figures are reused: a quota changes when someone
// raises it (rare, but then people retry at once: a couple of minutes),
// use with every launch and stop of anyone in the account, so it is
// counted again within seconds, yet a burst of requests costs one listing.
const (
	quotaLimitTTL = 2 * time.Minute
	quotaUsageTTL = 15 * time.Second
)

// quotaClass is one on-demand vCPU quota of EC2: the instance families
// that share it.
type quotaClass struct {
	label string // how the bot names the class: "standard", "G and VT"…
	code  string // Service Quotas quota code
	name  string // Service Quotas quota name
}

var (
	standardClass = quotaClass{"standard", "L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"}
	// quotaClasses are the other on-demand vCPU quotas, by the letters
	// that start a family's name (g5 → "g", inf2 → "inf", u-6tb1 → "u").
	quotaClasses = map[string]quotaClass{
		"g":   {"G", "L-DB2E81BA", "Running On-Demand G and VT instances"},
		"vt":  {"VT", "L-DB2E81BA", "Running On-Demand G and VT instances"},
		"p":   {"P", "L-417A185B", "Running On-Demand P instances"},
		"f":   {"F", "L-74FC7D96", "Running On-Demand F instances"},
		"x":   {"X", "L-7295265B", "Running On-Demand X instances"},
		"dl":  {"DL", "L-6E869C2A", "Running On-Demand DL instances"},
		"inf": {"Inf", "L-1945791B", "Running On-Demand Inf instances"},
		"trn": {"Trn", "L-2C3B7624", "Running On-Demand Trn instances"},
		"u":   {"high memory", "L-43DA4232", "Running On-Demand High Memory instances"},
		"hpc": {"HPC", "L-F7808C92", "Running On-Demand HPC instances"},
	}
)

// quotaClassOf is the vCPU quota instanceType counts against; false for a
// type without one (mac instances run on dedicated hosts).
func quotaClassOf(instanceType string) (quotaClass, bool) {
	family, _, _ := strings.Cut(strings.ToLower(instanceType), ".")
	letters := family
	if i := strings.IndexFunc(family, func(r rune) bool { return r < 'a' || r > 'z' }); i >= 0 {
		letters = family[:i]
	}
	if c, ok := quotaClasses[letters]; ok {
		return c, true
	}
	if c, ok := quotaClasses[letters[:min(len(letters), 1)]]; ok && strings.ContainsRune("gpfx", rune(letters[0])) {
		return c, true // a newer family of a class, such as gr6 (G)
	}
	if letters == "mac" || letters == "" {
		return quotaClass{}, false
	}
	if strings.ContainsRune("acdhimrtz", rune(letters[0])) {
		return standardClass, true
	}
	return quotaClass{}, false
}

// quotaLimit is a cached quota value.
type quotaLimit struct {
	value float64
	at    time.Time
}

// quotaUsage is a cached count of the vCPUs in use, by quota code.
type quotaUsage struct {
	byCode map[string]int
	at     time.Time
}

// VCPUQuota is the account's on-demand vCPU quota for instanceType's class
// (Service Quotas GetServiceQuota) and the vCPUs its running and pending
// instances use (DescribeInstances over the whole account, not only the
// bot's: the quota counts every instance). Both are cached briefly (see
// quotaLimitTTL, quotaUsageTTL). A type without an on-demand vCPU quota
// gives an error wrapping computebot.ErrNotFound.
func (c *Client) VCPUQuota(ctx context.Context, instanceType string) (computebot.VCPUQuota, error) {
	class, ok := quotaClassOf(instanceType)
	if !ok {
		return computebot.VCPUQuota{}, &computebot.Error{Code: "NoVCPUQuota",
			Message: fmt.Sprintf("%s has no on-demand vCPU quota.", instanceType),
			Err:     fmt.Errorf("vcpu quota of %s: %w", instanceType, computebot.ErrNotFound)}
	}
	limit, err := c.quotaValue(ctx, class)
	if err != nil {
		return computebot.VCPUQuota{}, err
	}
	used, err := c.vcpusInUse(ctx)
	if err != nil {
		return computebot.VCPUQuota{}, err
	}
	return computebot.VCPUQuota{
		Class: class.label, QuotaCode: class.code, QuotaName: class.name, Region: c.region,
		Limit: int(math.Floor(limit)), InUse: used[class.code],
	}, nil
}

func (c *Client) quotaValue(ctx context.Context, class quotaClass) (float64, error) {
	c.mu.Lock()
	cached, ok := c.quotaLimits[class.code]
	c.mu.Unlock()
	if ok && c.now().Sub(cached.at) < quotaLimitTTL {
		return cached.value, nil
	}
	info := callInfo{API: "servicequotas:GetServiceQuota"}
	out, err := call(ctx, c, info, func(ctx context.Context) (*servicequotas.GetServiceQuotaOutput, error) {
		return c.servicequotas.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{
			ServiceCode: awssdk.String("ec2"), QuotaCode: awssdk.String(class.code),
		}, c.servicequotasRetry(info.API))
	})
	if err != nil {
		return 0, err
	}
	if out.Quota == nil || out.Quota.Value == nil {
		return 0, notFoundError(info, "NoSuchResourceException")
	}
	value := awssdk.ToFloat64(out.Quota.Value)
	c.mu.Lock()
	c.quotaLimits[class.code] = quotaLimit{value: value, at: c.now()}
	c.mu.Unlock()
	return value, nil
}

// vcpusInUse counts the vCPUs of every running and pending instance in the
// region, by quota code, from one listing (all pages).
func (c *Client) vcpusInUse(ctx context.Context) (map[string]int, error) {
	c.mu.Lock()
	cached := c.quotaUsage
	c.mu.Unlock()
	if cached.byCode != nil && c.now().Sub(cached.at) < quotaUsageTTL {
		return cached.byCode, nil
	}
	p := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{
		Filters:    []types.Filter{{Name: awssdk.String("instance-state-name"), Values: []string{computebot.InstancePending, computebot.InstanceRunning}}},
		MaxResults: awssdk.Int32(maxPageSize),
	})
	info := callInfo{API: "ec2:DescribeInstances"}
	retryOpt := c.ec2Retry(info.API)
	used := map[string]int{}
	for p.HasMorePages() {
		page, err := call(ctx, c, info, func(ctx context.Context) (*ec2.DescribeInstancesOutput, error) {
			return p.NextPage(ctx, retryOpt)
		})
		if err != nil {
			return nil, err
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				class, ok := quotaClassOf(string(inst.InstanceType))
				if !ok || inst.InstanceLifecycle == types.InstanceLifecycleTypeSpot {
					continue // Spot instances count against quotas of their own
				}
				n, err := c.vcpusOf(ctx, inst)
				if err != nil {
					return nil, err
				}
				used[class.code] += n
			}
		}
	}
	c.mu.Lock()
	c.quotaUsage = quotaUsage{byCode: used, at: c.now()}
	c.mu.Unlock()
	return used, nil
}

// vcpusOf is an instance's vCPUs: its CPU options (cores × threads, which
// is what the quota counts, also for an instance launched with fewer
// cores), else its type's default.
func (c *Client) vcpusOf(ctx context.Context, inst types.Instance) (int, error) {
	if o := inst.CpuOptions; o != nil && awssdk.ToInt32(o.CoreCount) > 0 {
		return int(awssdk.ToInt32(o.CoreCount) * max(awssdk.ToInt32(o.ThreadsPerCore), 1)), nil
	}
	it, err := c.InstanceType(ctx, string(inst.InstanceType))
	if err != nil {
		return 0, err
	}
	return int(it.VCPUs), nil
}
