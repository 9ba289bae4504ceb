package aws

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/computebot/computebot"
)

// ssmPrefix marks an AMI reference resolved through an SSM parameter, the
// same syntax RunInstances accepts (e.g. the public
// "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64").
const ssmPrefix = "resolve:ssm:"

// maxPageSize is DescribeInstances' largest page.
const maxPageSize = 1000

// InstanceType describes name (vCPUs, memory) with DescribeInstanceTypes.
func (c *Client) InstanceType(ctx context.Context, name string) (computebot.InstanceType, error) {
	info := callInfo{API: "ec2:DescribeInstanceTypes", Type: name}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.DescribeInstanceTypesOutput, error) {
		return c.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{
			InstanceTypes: []types.InstanceType{types.InstanceType(name)},
		}, c.ec2Retry(info.API))
	})
	if err != nil {
		return computebot.InstanceType{}, err
	}
	for _, t := range out.InstanceTypes {
		if string(t.InstanceType) != name {
			continue
		}
		it := computebot.InstanceType{Name: name}
		if t.VCpuInfo != nil {
			it.VCPUs = awssdk.ToInt32(t.VCpuInfo.DefaultVCpus)
		}
		if t.MemoryInfo != nil {
			it.MemoryMiB = awssdk.ToInt64(t.MemoryInfo.SizeInMiB)
		}
		if t.GpuInfo != nil {
			for _, g := range t.GpuInfo.Gpus {
				it.GPUs += awssdk.ToInt32(g.Count)
			}
		}
		it.Hibernation = awssdk.ToBool(t.HibernationSupported)
		return it, nil
	}
	return computebot.InstanceType{}, notFoundError(info, "InvalidInstanceType")
}

// ResolveImage looks up an AMI by ID ("ami-…") or through an SSM parameter
// ("resolve:ssm:/path"), so the launch knows its name and root device.
func (c *Client) ResolveImage(ctx context.Context, ref string) (computebot.Image, error) {
	ref = strings.TrimSpace(ref)
	id := ref
	if param, ok := strings.CutPrefix(ref, ssmPrefix); ok {
		info := callInfo{API: "ssm:GetParameter", Param: param}
		out, err := call(ctx, c, info, func(ctx context.Context) (*ssm.GetParameterOutput, error) {
			return c.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: awssdk.String(param)}, c.ssmRetry(info.API))
		})
		if err != nil {
			return computebot.Image{}, err
		}
		if out.Parameter != nil {
			id = strings.TrimSpace(awssdk.ToString(out.Parameter.Value))
		}
		if !strings.HasPrefix(id, "ami-") {
			return computebot.Image{}, &computebot.Error{
				Code:    "InvalidAMIReference",
				Message: fmt.Sprintf("SSM parameter %s does not hold an AMI ID (it holds %q).", param, truncate(id, 64)),
			}
		}
	} else if !strings.HasPrefix(ref, "ami-") {
		return computebot.Image{}, &computebot.Error{
			Code:    "InvalidAMIReference",
			Message: fmt.Sprintf("%q is neither an AMI ID (ami-…) nor an SSM reference (resolve:ssm:/parameter/path).", truncate(ref, 64)),
		}
	}

	info := callInfo{API: "ec2:DescribeImages", Image: id}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.DescribeImagesOutput, error) {
		return c.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}, c.ec2Retry(info.API))
	})
	if err != nil {
		return computebot.Image{}, err
	}
	for _, img := range out.Images {
		if awssdk.ToString(img.ImageId) != id {
			continue
		}
		found := computebot.Image{
			ID:             id,
			Name:           awssdk.ToString(img.Name),
			RootDeviceName: awssdk.ToString(img.RootDeviceName),
		}
		for _, m := range img.BlockDeviceMappings {
			if awssdk.ToString(m.DeviceName) == found.RootDeviceName && m.Ebs != nil {
				found.RootVolumeGiB = awssdk.ToInt32(m.Ebs.VolumeSize)
			}
		}
		return found, nil
	}
	// EC2 usually answers InvalidAMIID.NotFound; an empty list means the same.
	return computebot.Image{}, notFoundError(info, "InvalidAMIID.NotFound")
}

// Launch starts one instance with RunInstances. The same spec.ClientToken
// always yields the same instance. Instances require IMDSv2, the root volume
// is encrypted when spec.RootDeviceName is known, and instance and volumes
// carry spec.Tags from the start. It never creates security groups.
func (c *Client) Launch(ctx context.Context, spec computebot.LaunchSpec) (computebot.Instance, error) {
	if spec.InstanceType == "" || spec.ImageID == "" {
		return computebot.Instance{}, &computebot.Error{
			Code:    "InvalidLaunchSpec",
			Message: "The launch has no instance type or AMI; nothing was launched.",
		}
	}
	info := runInstancesInfo(spec)
	in := runInstancesInput(spec)
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.RunInstancesOutput, error) {
		// Every attempt sends in as it is, ClientToken included.
		return c.ec2.RunInstances(ctx, in, c.ec2Retry(info.API))
	})
	if err != nil {
		return computebot.Instance{}, err
	}
	if len(out.Instances) == 0 {
		return computebot.Instance{}, &computebot.Error{
			Code:    "EmptyResponse",
			Message: "AWS accepted the launch but returned no instance. Check the EC2 console before retrying.",
		}
	}
	inst := convertInstance(out.Instances[0])
	if len(inst.Tags) == 0 && len(spec.Tags) > 0 {
		// RunInstances does not always echo tags; they were applied at launch.
		inst.Tags = make(map[string]string, len(spec.Tags))
		for k, v := range spec.Tags {
			inst.Tags[k] = v
		}
	}
	return inst, nil
}

// runInstancesInput builds the request; kept apart so it reads as the policy
// it is (one instance, IMDSv2, encrypted root, tags on create).
func runInstancesInput(spec computebot.LaunchSpec) *ec2.RunInstancesInput {
	in := &ec2.RunInstancesInput{
		MinCount:     awssdk.Int32(1),
		MaxCount:     awssdk.Int32(1),
		ImageId:      awssdk.String(spec.ImageID),
		InstanceType: types.InstanceType(spec.InstanceType),
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:   types.HttpTokensStateRequired,
			HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
		},
	}
	if spec.ClientToken != "" {
		// Without it the SDK invents a token per call, which only covers its
		// own retries, not a bot restart.
		in.ClientToken = awssdk.String(spec.ClientToken)
	}
	if spec.KeyName != "" {
		in.KeyName = awssdk.String(spec.KeyName)
	}
	if spec.UserData != "" {
		in.UserData = awssdk.String(base64.StdEncoding.EncodeToString([]byte(spec.UserData)))
	}
	if len(spec.SecurityGroupIDs) > 0 {
		in.SecurityGroupIds = append([]string(nil), spec.SecurityGroupIDs...)
	}
	if spec.SubnetID != "" {
		in.SubnetId = awssdk.String(spec.SubnetID)
	}
	if spec.RootDeviceName != "" {
		root := &types.EbsBlockDevice{Encrypted: awssdk.Bool(true)}
		if spec.RootVolumeGiB > 0 {
			root.VolumeSize = awssdk.Int32(spec.RootVolumeGiB)
		}
		in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: awssdk.String(spec.RootDeviceName), Ebs: root}}
	}
	if spec.Hibernate {
		in.HibernationOptions = &types.HibernationOptionsRequest{Configured: awssdk.Bool(true)}
	}
	if len(spec.Tags) > 0 {
		tags := make([]types.Tag, 0, len(spec.Tags))
		for _, k := range sortedMapKeys(spec.Tags) {
			tags = append(tags, types.Tag{Key: awssdk.String(k), Value: awssdk.String(spec.Tags[k])})
		}
		in.TagSpecifications = []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		}
	}
	return in
}

// Instance describes one instance. An unknown ID gives an error wrapping
// computebot.ErrNotFound; note EC2 is eventually consistent, so an instance
// launched a moment ago can briefly be "not found".
func (c *Client) Instance(ctx context.Context, id string) (computebot.Instance, error) {
	info := callInfo{API: "ec2:DescribeInstances", InstanceID: id}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.DescribeInstancesOutput, error) {
		return c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, c.ec2Retry(info.API))
	})
	if err != nil {
		return computebot.Instance{}, err
	}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if awssdk.ToString(inst.InstanceId) == id {
				return convertInstance(inst), nil
			}
		}
	}
	return computebot.Instance{}, notFoundError(info, "InvalidInstanceID.NotFound")
}

// ManagedInstances lists the instances tagged computebot:managed=true,
// narrowed by owner, request and states, across all pages.
func (c *Client) ManagedInstances(ctx context.Context, filter computebot.InstanceFilter) ([]computebot.Instance, error) {
	var list []computebot.Instance
	err := c.ManagedInstancePages(ctx, filter, func(page []computebot.Instance) error {
		list = append(list, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}

// ManagedInstancePages is ManagedInstances one DescribeInstances page (up
// to 1000 instances) at a time, so a caller can work on a page, such as
// reading its metrics, while the next one is fetched. An error from fn
// stops the listing and is returned.
func (c *Client) ManagedInstancePages(ctx context.Context, filter computebot.InstanceFilter, fn func([]computebot.Instance) error) error {
	filters := []types.Filter{{Name: awssdk.String("tag:" + computebot.TagManaged), Values: []string{"true"}}}
	if filter.Owner != "" {
		filters = append(filters, types.Filter{Name: awssdk.String("tag:" + computebot.TagOwner), Values: []string{filter.Owner}})
	}
	if filter.Request != "" {
		filters = append(filters, types.Filter{Name: awssdk.String("tag:" + computebot.TagRequest), Values: []string{filter.Request}})
	}
	if len(filter.States) > 0 {
		filters = append(filters, types.Filter{Name: awssdk.String("instance-state-name"), Values: append([]string(nil), filter.States...)})
	}
	if filter.TagKey != "" {
		filters = append(filters, types.Filter{Name: awssdk.String("tag-key"), Values: []string{filter.TagKey}})
	}
	p := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{
		Filters:    filters,
		MaxResults: awssdk.Int32(maxPageSize),
	})
	info := callInfo{API: "ec2:DescribeInstances"}
	retryOpt := c.ec2Retry(info.API)
	for p.HasMorePages() {
		// Each page is its own call with its own timeout and retries.
		page, err := call(ctx, c, info, func(ctx context.Context) (*ec2.DescribeInstancesOutput, error) {
			return p.NextPage(ctx, retryOpt)
		})
		if err != nil {
			return err
		}
		var list []computebot.Instance
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				list = append(list, convertInstance(inst))
			}
		}
		if err := fn(list); err != nil {
			return err
		}
	}
	return nil
}

// Stop asks EC2 to stop one instance (StopInstances) and returns it as EC2
// reports it right after: ID and State ("stopping", or "stopped" when it
// already was); the other fields are empty. Poll Instance for the end state.
func (c *Client) Stop(ctx context.Context, id string) (computebot.Instance, error) {
	info := callInfo{API: "ec2:StopInstances", InstanceID: id, Verb: "stopped"}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.StopInstancesOutput, error) {
		return c.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}, c.ec2Retry(info.API))
	})
	if err != nil {
		return computebot.Instance{}, err
	}
	return stateChange(info, out.StoppingInstances)
}

// Hibernate stops one instance keeping its memory (StopInstances with
// Hibernate). EC2's refusals to hibernate (hibernationRefusedCodes) wrap
// computebot.ErrHibernationRefused: nothing changed, and a plain Stop is
// the caller's way on (computebot.StopKeepingMemory).
func (c *Client) Hibernate(ctx context.Context, id string) (computebot.Instance, error) {
	info := callInfo{API: "ec2:StopInstances", InstanceID: id, Verb: "hibernated"}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.StopInstancesOutput, error) {
		return c.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}, Hibernate: awssdk.Bool(true)}, c.ec2Retry(info.API))
	})
	if err != nil {
		if code := computebot.ErrorCode(err); matchCode(hibernationRefusedCodes, code) {
			return computebot.Instance{}, &computebot.Error{Code: code, Err: fmt.Errorf("%w: %w", computebot.ErrHibernationRefused, err),
				Message: fmt.Sprintf("EC2 would not hibernate %s (%s)", id, code)}
		}
		return computebot.Instance{}, err
	}
	return stateChange(info, out.StoppingInstances)
}

// hibernationRefusedCodes are EC2's answers to a hibernate that change
// nothing and leave a plain stop possible: the instance was not launched
// for hibernation, its agent is not ready yet (a few minutes after launch),
// or its configuration (type, image, volume) cannot.
var hibernationRefusedCodes = []string{"UnsupportedHibernationConfiguration", "UnsupportedOperation", "Unsupported"}

// Start asks EC2 to start one stopped instance (StartInstances); the answer
// is usually "pending". A started instance gets a new public IP, known only
// once it runs.
func (c *Client) Start(ctx context.Context, id string) (computebot.Instance, error) {
	info := callInfo{API: "ec2:StartInstances", InstanceID: id, Verb: "started"}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.StartInstancesOutput, error) {
		return c.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}, c.ec2Retry(info.API))
	})
	if err != nil {
		return computebot.Instance{}, err
	}
	return stateChange(info, out.StartingInstances)
}

// Terminate asks EC2 to terminate one instance (TerminateInstances); the
// answer is usually "shutting-down". Terminating a terminated instance
// succeeds and changes nothing, as on EC2.
func (c *Client) Terminate(ctx context.Context, id string) (computebot.Instance, error) {
	info := callInfo{API: "ec2:TerminateInstances", InstanceID: id, Verb: "terminated"}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.TerminateInstancesOutput, error) {
		return c.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, c.ec2Retry(info.API))
	})
	if err != nil {
		return computebot.Instance{}, err
	}
	return stateChange(info, out.TerminatingInstances)
}

// stateChange picks info.InstanceID's new state out of a Stop/Start/
// Terminate answer.
func stateChange(info callInfo, changes []types.InstanceStateChange) (computebot.Instance, error) {
	for _, ch := range changes {
		if awssdk.ToString(ch.InstanceId) != info.InstanceID {
			continue
		}
		inst := computebot.Instance{ID: info.InstanceID}
		if ch.CurrentState != nil {
			inst.State = string(ch.CurrentState.Name)
		}
		return inst, nil
	}
	return computebot.Instance{}, &computebot.Error{
		Code: "EmptyResponse",
		Message: fmt.Sprintf("AWS accepted the request but did not report the new state of %s. "+
			"Check the instance before trying again.", info.InstanceID),
		Err: fmt.Errorf("%s: no state change for %s in the response", info.API, info.InstanceID),
	}
}

// Tag sets tags on an instance with CreateTags (existing keys are
// overwritten, others kept). No tags is a no-op that calls nothing.
func (c *Client) Tag(ctx context.Context, id string, tags map[string]string) error {
	if len(tags) == 0 {
		return nil
	}
	list := make([]types.Tag, 0, len(tags))
	for _, k := range sortedMapKeys(tags) {
		list = append(list, types.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
	}
	info := callInfo{API: "ec2:CreateTags", InstanceID: id}
	_, err := call(ctx, c, info, func(ctx context.Context) (*ec2.CreateTagsOutput, error) {
		return c.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: list}, c.ec2Retry(info.API))
	})
	return err
}

// convertInstance keeps what the bot shows or decides on.
func convertInstance(in types.Instance) computebot.Instance {
	out := computebot.Instance{
		ID:         awssdk.ToString(in.InstanceId),
		Type:       string(in.InstanceType),
		ImageID:    awssdk.ToString(in.ImageId),
		PublicIP:   awssdk.ToString(in.PublicIpAddress),
		PrivateIP:  awssdk.ToString(in.PrivateIpAddress),
		LaunchTime: awssdk.ToTime(in.LaunchTime),
	}
	if in.State != nil {
		out.State = string(in.State.Name)
	}
	if in.HibernationOptions != nil {
		out.Hibernation = awssdk.ToBool(in.HibernationOptions.Configured)
	}
	if len(in.Tags) > 0 {
		out.Tags = make(map[string]string, len(in.Tags))
		for _, t := range in.Tags {
			out.Tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
		}
	}
	return out
}

// truncate keeps user-facing echoes of odd input short.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// runInstancesInfo describes a RunInstances call for error messages: the
// launch and its dry run name the same parameters.
func runInstancesInfo(spec computebot.LaunchSpec) callInfo {
	return callInfo{
		API:      "ec2:RunInstances",
		IAM:      "ec2:RunInstances and ec2:CreateTags",
		Type:     spec.InstanceType,
		Image:    spec.ImageID,
		KeyName:  spec.KeyName,
		SubnetID: spec.SubnetID,
		Groups:   spec.SecurityGroupIDs,
	}
}
