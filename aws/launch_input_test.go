package aws_test

import (
	"reflect"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/aws"
)

func TestRunInstancesInput(t *testing.T) {
	in := aws.RunInstancesInput(computebot.LaunchSpec{
		ClientToken:      "req-1",
		InstanceType:     "t2.micro",
		ImageID:          "ami-1",
		RootDeviceName:   "/dev/xvda",
		KeyName:          "k",
		SecurityGroupIDs: []string{"sg-1"},
		SubnetID:         "subnet-1",
		Tags:             map[string]string{"b": "2", "a": "1", "Name": "n"},
	})
	if awssdk.ToInt32(in.MinCount) != 1 || awssdk.ToInt32(in.MaxCount) != 1 {
		t.Errorf("count = %d..%d, want 1..1", awssdk.ToInt32(in.MinCount), awssdk.ToInt32(in.MaxCount))
	}
	if awssdk.ToString(in.ClientToken) != "req-1" || awssdk.ToString(in.ImageId) != "ami-1" || in.InstanceType != "t2.micro" ||
		awssdk.ToString(in.KeyName) != "k" || awssdk.ToString(in.SubnetId) != "subnet-1" || !reflect.DeepEqual(in.SecurityGroupIds, []string{"sg-1"}) {
		t.Errorf("basic fields wrong: %+v", in)
	}
	if in.MetadataOptions == nil || in.MetadataOptions.HttpTokens != types.HttpTokensStateRequired ||
		in.MetadataOptions.HttpEndpoint != types.InstanceMetadataEndpointStateEnabled {
		t.Errorf("MetadataOptions = %+v, want IMDSv2 required", in.MetadataOptions)
	}
	if len(in.BlockDeviceMappings) != 1 || awssdk.ToString(in.BlockDeviceMappings[0].DeviceName) != "/dev/xvda" ||
		!awssdk.ToBool(in.BlockDeviceMappings[0].Ebs.Encrypted) {
		t.Errorf("BlockDeviceMappings = %+v, want encrypted /dev/xvda", in.BlockDeviceMappings)
	}
	if len(in.TagSpecifications) != 2 || in.TagSpecifications[0].ResourceType != types.ResourceTypeInstance ||
		in.TagSpecifications[1].ResourceType != types.ResourceTypeVolume {
		t.Fatalf("TagSpecifications = %+v, want instance and volume", in.TagSpecifications)
	}
	for _, ts := range in.TagSpecifications {
		var keys []string
		for _, tag := range ts.Tags {
			keys = append(keys, awssdk.ToString(tag.Key))
		}
		if want := []string{"Name", "a", "b"}; !reflect.DeepEqual(keys, want) {
			t.Errorf("%s tag keys = %v, want sorted %v", ts.ResourceType, keys, want)
		}
	}
}

func TestRunInstancesInputMinimal(t *testing.T) {
	in := aws.RunInstancesInput(computebot.LaunchSpec{InstanceType: "t2.micro", ImageID: "ami-1"})
	if in.ClientToken != nil || in.KeyName != nil || in.SubnetId != nil || in.SecurityGroupIds != nil ||
		in.BlockDeviceMappings != nil || in.TagSpecifications != nil {
		t.Errorf("optional fields set: %+v", in)
	}
	if in.MetadataOptions == nil || in.MetadataOptions.HttpTokens != types.HttpTokensStateRequired {
		t.Error("IMDSv2 must be required even in a minimal launch")
	}
}
