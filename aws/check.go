package aws

import (
	"context"
	"fmt"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/computebot/computebot"
)

// The calls behind `computebot check`: they prove the deployment can do
// what the bot will do, without doing it. Like every call in this package
// they fail with a *computebot.Error whose Message says what is wrong.

// CodeDryRunOperation is EC2's answer to a DryRun request that would have
// succeeded.
const CodeDryRunOperation = "DryRunOperation"

// Identity is who the AWS credentials belong to (STS GetCallerIdentity).
type Identity struct {
	Account string
	ARN     string
	UserID  string
}

// CallerIdentity asks STS whose credentials the client uses. It needs no
// IAM permission, so it proves the credentials work and nothing more.
func (c *Client) CallerIdentity(ctx context.Context) (Identity, error) {
	info := callInfo{API: "sts:GetCallerIdentity"}
	out, err := call(ctx, c, info, func(ctx context.Context) (*sts.GetCallerIdentityOutput, error) {
		return c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, c.stsRetry(info.API))
	})
	if err != nil {
		return Identity{}, err
	}
	return Identity{
		Account: awssdk.ToString(out.Account),
		ARN:     awssdk.ToString(out.Arn),
		UserID:  awssdk.ToString(out.UserId),
	}, nil
}

// KeyPairExists checks that the EC2 key pair name exists in the region; a
// missing one gives an error wrapping computebot.ErrNotFound.
func (c *Client) KeyPairExists(ctx context.Context, name string) error {
	info := callInfo{API: "ec2:DescribeKeyPairs", KeyName: name}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.DescribeKeyPairsOutput, error) {
		return c.ec2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{name}}, c.ec2Retry(info.API))
	})
	if err != nil {
		return err
	}
	for _, k := range out.KeyPairs {
		if awssdk.ToString(k.KeyName) == name {
			return nil
		}
	}
	return notFoundError(info, "InvalidKeyPair.NotFound")
}

// SecurityGroupsExist checks that every group ID exists in the region and,
// when there are several, that they share one VPC (RunInstances refuses
// groups of different VPCs). It returns the groups' VPC.
func (c *Client) SecurityGroupsExist(ctx context.Context, ids []string) (vpc string, err error) {
	if len(ids) == 0 {
		return "", nil
	}
	info := callInfo{API: "ec2:DescribeSecurityGroups", Groups: ids}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.DescribeSecurityGroupsOutput, error) {
		return c.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: append([]string(nil), ids...)}, c.ec2Retry(info.API))
	})
	if err != nil {
		return "", err
	}
	vpcs := map[string]string{} // group → VPC
	for _, g := range out.SecurityGroups {
		vpcs[awssdk.ToString(g.GroupId)] = awssdk.ToString(g.VpcId)
	}
	for _, id := range ids {
		v, ok := vpcs[id]
		if !ok {
			return "", notFoundError(callInfo{API: info.API, Groups: []string{id}}, "InvalidGroup.NotFound")
		}
		if vpc != "" && v != vpc {
			return "", &computebot.Error{
				Code:    "InvalidGroup.VPCMismatch",
				Message: fmt.Sprintf("Security groups %s are in different VPCs (%s, %s); an instance can only use groups of one VPC.", strings.Join(ids, ", "), vpc, v),
			}
		}
		vpc = v
	}
	return vpc, nil
}

// SubnetExists checks that the subnet exists in the region and returns its
// VPC.
func (c *Client) SubnetExists(ctx context.Context, id string) (vpc string, err error) {
	info := callInfo{API: "ec2:DescribeSubnets", SubnetID: id}
	out, err := call(ctx, c, info, func(ctx context.Context) (*ec2.DescribeSubnetsOutput, error) {
		return c.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{id}}, c.ec2Retry(info.API))
	})
	if err != nil {
		return "", err
	}
	for _, s := range out.Subnets {
		if awssdk.ToString(s.SubnetId) == id {
			return awssdk.ToString(s.VpcId), nil
		}
	}
	return "", notFoundError(info, "InvalidSubnetID.NotFound")
}

// DryRunLaunch asks EC2 whether the launch the bot would make for spec is
// allowed, with RunInstances and DryRun set: nothing is launched. nil means
// EC2 answered DryRunOperation (allowed); otherwise the error says why not,
// e.g. code UnauthorizedOperation when the IAM policy refuses it.
func (c *Client) DryRunLaunch(ctx context.Context, spec computebot.LaunchSpec) error {
	info := runInstancesInfo(spec)
	in := runInstancesInput(spec)
	in.DryRun = awssdk.Bool(true)
	_, err := call(ctx, c, info, func(ctx context.Context) (*ec2.RunInstancesOutput, error) {
		return c.ec2.RunInstances(ctx, in, c.ec2Retry(info.API))
	})
	switch {
	case err == nil:
		// EC2 never launches with DryRun set; an answer without the
		// DryRunOperation error means something ignored the flag.
		return &computebot.Error{
			Code:    "DryRunIgnored",
			Message: "EC2 answered the DryRun launch as if it had launched; check the EC2 console for a stray instance.",
		}
	case computebot.ErrorCode(err) == CodeDryRunOperation:
		return nil
	}
	return err
}
