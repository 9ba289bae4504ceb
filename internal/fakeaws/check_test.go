package fakeaws

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func stsClient(s *Server) *sts.Client {
	return sts.NewFromConfig(sdkConfig(), func(o *sts.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

func TestGetCallerIdentity(t *testing.T) {
	s := newFake(t)
	out, err := stsClient(s).GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) != OwnerID || aws.ToString(out.Arn) != DefaultCallerARN || aws.ToString(out.UserId) == "" {
		t.Errorf("identity = %q %q %q", aws.ToString(out.Account), aws.ToString(out.Arn), aws.ToString(out.UserId))
	}
	if calls := s.Calls("GetCallerIdentity"); len(calls) != 1 || calls[0].Service != "sts" {
		t.Errorf("calls = %+v, want one sts call", calls)
	}

	s.FailNext("GetCallerIdentity", "InvalidClientTokenId", "", 1)
	_, err = stsClient(s).GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
	wantAPIError(t, err, "InvalidClientTokenId", 400)
}

func TestDescribeKeyPairsGroupsSubnets(t *testing.T) {
	s := newFake(t)
	c := ec2Client(s)

	_, err := c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyNames: []string{"data-science"}})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)
	_, err = c.DescribeSecurityGroups(ctx(t), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidGroup.NotFound", 400)
	_, err = c.DescribeSecurityGroups(ctx(t), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"default"}})
	wantAPIError(t, err, "InvalidGroupId.Malformed", 400)
	_, err = c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidSubnetID.NotFound", 400)
	_, err = c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-x"}})
	wantAPIError(t, err, "InvalidSubnetID.Malformed", 400)

	s.AddKeyPair("data-science")
	s.AddSecurityGroup("sg-0123456789abcdef0", "ssh")
	s.AddSubnet("subnet-0123456789abcdef0")

	keys, err := c.DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyNames: []string{"data-science"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.KeyPairs) != 1 || aws.ToString(keys.KeyPairs[0].KeyName) != "data-science" || aws.ToString(keys.KeyPairs[0].KeyPairId) == "" {
		t.Errorf("key pairs = %+v", keys.KeyPairs)
	}
	groups, err := c.DescribeSecurityGroups(ctx(t), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-0123456789abcdef0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.SecurityGroups) != 1 || aws.ToString(groups.SecurityGroups[0].VpcId) != DefaultVPC ||
		aws.ToString(groups.SecurityGroups[0].GroupName) != "ssh" {
		t.Errorf("groups = %+v", groups.SecurityGroups)
	}
	subnets, err := c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-0123456789abcdef0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(subnets.Subnets) != 1 || aws.ToString(subnets.Subnets[0].VpcId) != DefaultVPC ||
		aws.ToString(subnets.Subnets[0].AvailabilityZone) != "us-east-1a" {
		t.Errorf("subnets = %+v", subnets.Subnets)
	}

	// Another server knows none of them.
	_, err = ec2Client(newFake(t)).DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyNames: []string{"data-science"}})
	wantAPIError(t, err, "InvalidKeyPair.NotFound", 400)

	_, err = c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-0123456789abcdef0"}, DryRun: aws.Bool(true)})
	wantAPIError(t, err, "DryRunOperation", 412)
}
