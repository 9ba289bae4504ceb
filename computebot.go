// Package computebot holds the domain types and the interfaces at the seams
// between the packages: the workflows (flow/) depend on Cloud and Store,
// never on the AWS SDK or on bbolt; aws/ implements Cloud, store/
// implements Store.
package computebot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Tag keys put on every instance and volume computebot launches. Other
// features (listing, idle shutdown) find the bot's instances by these.
const (
	TagName      = "Name"
	TagManaged   = "computebot:managed"
	TagOwner     = "computebot:owner"
	TagRequest   = "computebot:request"
	TagChannel   = "computebot:channel"
	TagThread    = "computebot:thread"
	TagExpiresAt = "computebot:expires-at"
	// TagKeepUntil (RFC 3339) exempts an instance from idle stops until
	// then (/keep); lease ends still apply.
	TagKeepUntil = "computebot:keep-until"
	// TagSchedule holds an instance's office hours in package schedule's
	// text ("weekdays 08:00-19:00 Europe/Berlin"), or "off".
	TagSchedule = "computebot:schedule"
)

// EC2 instance state names, as EC2 spells them.
const (
	InstancePending      = "pending"
	InstanceRunning      = "running"
	InstanceStopping     = "stopping"
	InstanceStopped      = "stopped"
	InstanceShuttingDown = "shutting-down"
	InstanceTerminated   = "terminated"
)

// Instance is an EC2 instance as the bot sees it.
type Instance struct {
	ID         string
	Type       string
	State      string
	ImageID    string
	PublicIP   string
	PrivateIP  string
	LaunchTime time.Time
	Tags       map[string]string
	// Hibernation is true when the instance was launched able to
	// hibernate (HibernationOptions.Configured): a stop should hibernate it.
	Hibernation bool
}

// InstanceType describes an EC2 instance type (from DescribeInstanceTypes).
type InstanceType struct {
	Name      string
	VCPUs     int32
	MemoryMiB int64
	GPUs      int32 // accelerators (DescribeInstanceTypes GpuInfo); 0 for none
	// Hibernation is DescribeInstanceTypes' HibernationSupported.
	Hibernation bool
}

// Image is an AMI (from DescribeImages). Name drives SSH user inference;
// RootDeviceName lets the launch encrypt the root volume.
type Image struct {
	ID             string
	Name           string
	RootDeviceName string
	RootVolumeGiB  int32 // the root snapshot's size; 0 when unknown
}

// VCPUQuota is the account's on-demand vCPU quota (Service Quotas) for the
// class of instance families a type belongs to, and how much of it the
// running and pending instances of that class use.
//
// It is stored with launch requests: the JSON names are the stored ones.
type VCPUQuota struct {
	Class     string `json:"class"`      // "standard", "G", "P", …: which instances share the quota
	QuotaCode string `json:"quota_code"` // e.g. L-DB2E81BA
	QuotaName string `json:"quota_name"` // as Service Quotas names it
	Region    string `json:"region"`
	Limit     int    `json:"limit"`  // vCPUs
	InUse     int    `json:"in_use"` // vCPUs of the class's running and pending instances
}

// Fits reports whether vcpus more fit within the quota.
func (q VCPUQuota) Fits(vcpus int) bool { return q.InUse+vcpus <= q.Limit }

// LaunchSpec is everything RunInstances needs for one instance.
type LaunchSpec struct {
	// ClientToken makes RunInstances idempotent: the same token always
	// returns the same instance, so a retry or a restart never launches twice.
	ClientToken      string
	InstanceType     string
	ImageID          string // a resolved ami-… ID
	RootDeviceName   string // from the Image; empty skips the explicit root mapping
	KeyName          string
	SecurityGroupIDs []string
	SubnetID         string
	// Tags are applied to the instance and its volumes at launch.
	Tags map[string]string
	// UserData is the instance's user data (a cloud-init document), as
	// text; "" for none. It is part of what the ClientToken stands for.
	UserData string
	// Hibernate launches the instance able to hibernate
	// (HibernationOptions.Configured); its root volume is then encrypted
	// and RootVolumeGiB large enough for its memory.
	Hibernate bool
	// RootVolumeGiB sizes the root volume; 0 keeps the image's size.
	RootVolumeGiB int32
}

// InstanceFilter selects managed instances (tag computebot:managed=true).
type InstanceFilter struct {
	Owner   string   // computebot:owner tag; empty means any owner
	Request string   // computebot:request tag; empty means any request
	States  []string // instance-state-name; empty means any state
	TagKey  string   // only instances with this tag (any value); empty means no such condition
}

// Compute is the EC2 side of what the bot needs. Every method is bounded
// by the context it is given.
type Compute interface {
	InstanceType(ctx context.Context, name string) (InstanceType, error)
	// ResolveImage accepts an AMI ID or a "resolve:ssm:PARAMETER" reference.
	ResolveImage(ctx context.Context, ref string) (Image, error)
	// HourlyPrice is the on-demand Linux price in USD; ErrPriceUnknown when
	// the Pricing API has no answer.
	HourlyPrice(ctx context.Context, instanceType string) (float64, error)
	Launch(ctx context.Context, spec LaunchSpec) (Instance, error)
	Instance(ctx context.Context, id string) (Instance, error)
	ManagedInstances(ctx context.Context, filter InstanceFilter) ([]Instance, error)
	// Stop, Start and Terminate ask EC2 for the change and return the
	// instance as EC2 reports it right after (usually stopping / pending /
	// shutting-down); callers poll Instance for the final state.
	Stop(ctx context.Context, id string) (Instance, error)
	// Hibernate stops an instance keeping its memory (StopInstances with
	// Hibernate). When EC2 will not hibernate it (not configured, not
	// ready, not supported), the error wraps ErrHibernationRefused and
	// nothing changed: StopKeepingMemory then stops it plainly.
	Hibernate(ctx context.Context, id string) (Instance, error)
	Start(ctx context.Context, id string) (Instance, error)
	Terminate(ctx context.Context, id string) (Instance, error)
	// Tag sets tags on an instance (CreateTags), e.g. a new expires-at.
	Tag(ctx context.Context, id string, tags map[string]string) error
	// VCPUQuota is the on-demand vCPU quota of instanceType's class and
	// its use; an error wrapping ErrNotFound for a type without one.
	VCPUQuota(ctx context.Context, instanceType string) (VCPUQuota, error)
}

// Function is a Lambda function as the bot lists it.
type Function struct {
	Name         string
	Runtime      string
	MemoryMB     int32
	LastModified time.Time
	Description  string
}

// Invocation is one Lambda invoke.
type Invocation struct {
	Function string
	Payload  []byte // JSON; empty means no payload
	Async    bool   // InvocationType Event instead of RequestResponse
}

// InvocationResult is what Lambda answered.
type InvocationResult struct {
	StatusCode      int32
	FunctionError   string // "Unhandled", "Handled" or "" when the function succeeded
	Payload         []byte // the function's response (RequestResponse only)
	LogTail         string // last 4 KB of the log, decoded (RequestResponse with LogType Tail)
	RequestID       string // Lambda's request ID (the accepted ID for Async)
	ExecutedVersion string
}

// Functions is the Lambda side of what the bot needs.
type Functions interface {
	// ListFunctions returns every function in the region (all pages).
	ListFunctions(ctx context.Context) ([]Function, error)
	// GetFunction returns one function; an error wrapping ErrNotFound when absent.
	GetFunction(ctx context.Context, name string) (Function, error)
	// Invoke runs a function; it waits at most as long as ctx allows.
	Invoke(ctx context.Context, in Invocation) (InvocationResult, error)
}

// Cloud is everything the bot does in AWS. Implemented by package aws.
type Cloud interface {
	Compute
	Functions
}

// Sentinel errors shared across packages.
var (
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrConflict     = errors.New("state changed concurrently")
	ErrPriceUnknown = errors.New("price unknown")
	// ErrNoCapacity: EC2 has no capacity for the type where it was asked
	// (InsufficientInstanceCapacity); another subnet or type may have.
	ErrNoCapacity = errors.New("no capacity")
	// ErrHibernationRefused: EC2 would not hibernate the instance.
	ErrHibernationRefused = errors.New("hibernation refused")
	// ErrDeleteKey, returned by a key/value update function, asks for the
	// key to be deleted instead of saved (a conditional delete).
	ErrDeleteKey = errors.New("delete the key")
)

// Error is a failure whose Message is safe and useful to show to a user in
// plain words ("AWS has no t2.micro capacity…"). Code is the machine-readable
// cause (an AWS error code, or one of ours); Err is the underlying error for logs.
// Transient marks a failure worth another attempt (throttling, a timeout, an
// internal error of the service); the package that made the call decides it.
type Error struct {
	Code      string
	Message   string
	Transient bool
	Err       error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// UserMessage returns the text to show a user for err: the Message of the
// first *Error in its chain, or a generic line (internal details stay in logs).
func UserMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "internal error (details are in the bot's log)"
}

// ErrorCode returns the Code of the first *Error in err's chain, or "".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Transient reports whether err is a failure worth another attempt (see
// Error.Transient).
func Transient(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Transient
}

// MetricsQuery asks for the idle-detection metrics of many instances over
// one window, in fixed periods.
type MetricsQuery struct {
	InstanceIDs []string
	// GPUInstanceIDs (a subset of InstanceIDs) also get their GPU
	// utilization read: the CloudWatch agent's nvidia_smi_utilization_gpu
	// (namespace CWAgent, dimension InstanceId), Maximum.
	GPUInstanceIDs []string
	Start, End     time.Time     // End is exclusive; both aligned to Period
	Period         time.Duration // 5 minutes for basic monitoring
}

// InstanceMetrics are one instance's datapoints over a window, oldest
// first, one per period that has data: CPUUtilization (Maximum, percent)
// and NetworkIn + NetworkOut (Sum, bytes). A period without a datapoint is
// simply absent, so len(...) < the number of periods means partial data.
type InstanceMetrics struct {
	CPUMax     []Datapoint
	NetworkIn  []Datapoint
	NetworkOut []Datapoint
	GPUMax     []Datapoint // only for MetricsQuery.GPUInstanceIDs
}

// Datapoint is one period's value.
type Datapoint struct {
	Time  time.Time
	Value float64
}

// Metrics reads CloudWatch. Implemented by package aws with GetMetricData,
// batched (up to 500 queries per call), never one call per instance.
type Metrics interface {
	InstanceMetrics(ctx context.Context, q MetricsQuery) (map[string]InstanceMetrics, error)
}

// Stopper stops instances; Compute is one.
type Stopper interface {
	Stop(ctx context.Context, id string) (Instance, error)
	Hibernate(ctx context.Context, id string) (Instance, error)
}

// Stopped says how StopKeepingMemory stopped an instance.
type Stopped struct {
	Instance   Instance // as EC2 reported it right after the call
	Hibernated bool     // its memory is kept
	// NotHibernated is why an instance launched for hibernation was
	// stopped plainly instead (EC2's refusal, in plain words); "" otherwise.
	NotHibernated string
}

// StopKeepingMemory stops inst, hibernating it when it was launched able to
// (inst.Hibernation). When EC2 refuses the hibernation (for example its
// agent is not ready yet), nothing changed, and the instance is stopped
// plainly: a stop was asked for, and a running idle machine costs money.
// Every stop of the bot goes through here (/stop, Stop now, idle stops).
func StopKeepingMemory(ctx context.Context, c Stopper, inst Instance) (Stopped, error) {
	if !inst.Hibernation {
		after, err := c.Stop(ctx, inst.ID)
		return Stopped{Instance: after}, err
	}
	after, err := c.Hibernate(ctx, inst.ID)
	if err == nil {
		return Stopped{Instance: after, Hibernated: true}, nil
	}
	if !errors.Is(err, ErrHibernationRefused) {
		return Stopped{}, err
	}
	why := UserMessage(err)
	after, err = c.Stop(ctx, inst.ID)
	return Stopped{Instance: after, NotHibernated: why}, err
}
