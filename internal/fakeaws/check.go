package fakeaws

import (
	"encoding/xml"
	"regexp"
	"runtime"
	"sync"
	"weak"
)

// What `computebot check` asks about besides images and types: the
// caller's identity (STS), key pairs, security groups and subnets. The fake
// knows none of the latter three until a test adds them with AddKeyPair,
// AddSecurityGroup and AddSubnet; RunInstances does not consult them.
//
// Their state lives in a side table keyed by a weak pointer to the server
// rather than in Server itself, so this file stays self-contained; an entry
// goes when its server is garbage-collected.

// DefaultCallerARN is the identity GetCallerIdentity reports.
const DefaultCallerARN = "arn:aws:sts::" + OwnerID + ":assumed-role/computebot/computebot"

// DefaultVPC is the VPC of every security group and subnet the fake knows.
const DefaultVPC = "vpc-0fa4e0000000000a1"

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

var (
	groupIDPattern  = regexp.MustCompile(`^sg-([0-9a-f]{8}|[0-9a-f]{17})$`)
	subnetIDPattern = regexp.MustCompile(`^subnet-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

// networkState is one server's key pairs, security groups and subnets.
type networkState struct {
	keyPairs map[string]string // name → key pair ID
	groups   map[string]string // group ID → name
	subnets  map[string]bool
}

var (
	networkMu sync.Mutex
	networks  = map[weak.Pointer[Server]]*networkState{}
)

// networkLocked returns s's state; the caller holds networkMu.
func (s *Server) networkLocked() *networkState {
	key := weak.Make(s)
	n := networks[key]
	if n == nil {
		n = &networkState{keyPairs: map[string]string{}, groups: map[string]string{}, subnets: map[string]bool{}}
		networks[key] = n
		runtime.AddCleanup(s, func(key weak.Pointer[Server]) {
			networkMu.Lock()
			defer networkMu.Unlock()
			delete(networks, key)
		}, key)
	}
	return n
}

// AddKeyPair makes DescribeKeyPairs know an EC2 key pair by name.
func (s *Server) AddKeyPair(name string) {
	networkMu.Lock()
	defer networkMu.Unlock()
	s.networkLocked().keyPairs[name] = "key-" + randomHex(17)
}

// AddSecurityGroup makes DescribeSecurityGroups know a group (sg-…).
func (s *Server) AddSecurityGroup(id, name string) {
	networkMu.Lock()
	defer networkMu.Unlock()
	s.networkLocked().groups[id] = name
}

// AddSubnet makes DescribeSubnets know a subnet (subnet-…).
func (s *Server) AddSubnet(id string) {
	networkMu.Lock()
	defer networkMu.Unlock()
	s.networkLocked().subnets[id] = true
}

// stsGetCallerIdentity answers with DefaultCallerARN (AWS Query protocol).
func stsGetCallerIdentity(_ *Server, req *request) (*response, *apiError) {
	type result struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	}
	type getCallerIdentityResponse struct {
		XMLName   xml.Name `xml:"GetCallerIdentityResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		Result    result   `xml:"GetCallerIdentityResult"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}
	return xmlResponse(getCallerIdentityResponse{
		Xmlns:     stsNamespace,
		Result:    result{Arn: DefaultCallerARN, UserID: "AROAFAKEROLEID:computebot", Account: OwnerID},
		RequestID: req.requestID,
	})
}

func ec2DescribeKeyPairs(s *Server, req *request) (*response, *apiError) {
	if aerr := dryRun(req); aerr != nil {
		return nil, aerr
	}
	type item struct {
		KeyPairID   string `xml:"keyPairId"`
		KeyName     string `xml:"keyName"`
		Fingerprint string `xml:"keyFingerprint"`
		KeyType     string `xml:"keyType"`
	}
	type describeKeyPairsResponse struct {
		XMLName   xml.Name `xml:"DescribeKeyPairsResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		RequestID string   `xml:"requestId"`
		Keys      []item   `xml:"keySet>item"`
	}
	networkMu.Lock()
	defer networkMu.Unlock()
	n := s.networkLocked()
	out := describeKeyPairsResponse{Xmlns: ec2Namespace, RequestID: req.requestID, Keys: []item{}}
	for _, name := range queryStrings(req.params, "KeyName") {
		id, ok := n.keyPairs[name]
		if !ok {
			return nil, errorf("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", name)
		}
		out.Keys = append(out.Keys, item{KeyPairID: id, KeyName: name, Fingerprint: "1f:51:ae:28:bf:89:e9:d8:1f:25:5d:37:2d:7d:b8:ca:9f:f5:f1:6f", KeyType: "rsa"})
	}
	return xmlResponse(out)
}

func ec2DescribeSecurityGroups(s *Server, req *request) (*response, *apiError) {
	if aerr := dryRun(req); aerr != nil {
		return nil, aerr
	}
	type item struct {
		OwnerID     string `xml:"ownerId"`
		GroupID     string `xml:"groupId"`
		GroupName   string `xml:"groupName"`
		Description string `xml:"groupDescription"`
		VpcID       string `xml:"vpcId"`
	}
	type describeSecurityGroupsResponse struct {
		XMLName   xml.Name `xml:"DescribeSecurityGroupsResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		RequestID string   `xml:"requestId"`
		Groups    []item   `xml:"securityGroupInfo>item"`
	}
	networkMu.Lock()
	defer networkMu.Unlock()
	n := s.networkLocked()
	out := describeSecurityGroupsResponse{Xmlns: ec2Namespace, RequestID: req.requestID, Groups: []item{}}
	for _, id := range queryStrings(req.params, "GroupId") {
		if !groupIDPattern.MatchString(id) {
			return nil, errorf("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
		}
		name, ok := n.groups[id]
		if !ok {
			return nil, errorf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
		out.Groups = append(out.Groups, item{OwnerID: OwnerID, GroupID: id, GroupName: name, Description: name, VpcID: DefaultVPC})
	}
	return xmlResponse(out)
}

func ec2DescribeSubnets(s *Server, req *request) (*response, *apiError) {
	if aerr := dryRun(req); aerr != nil {
		return nil, aerr
	}
	type item struct {
		SubnetID         string `xml:"subnetId"`
		State            string `xml:"state"`
		VpcID            string `xml:"vpcId"`
		CidrBlock        string `xml:"cidrBlock"`
		AvailabilityZone string `xml:"availabilityZone"`
		OwnerID          string `xml:"ownerId"`
	}
	type describeSubnetsResponse struct {
		XMLName   xml.Name `xml:"DescribeSubnetsResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		RequestID string   `xml:"requestId"`
		Subnets   []item   `xml:"subnetSet>item"`
	}
	networkMu.Lock()
	defer networkMu.Unlock()
	n := s.networkLocked()
	out := describeSubnetsResponse{Xmlns: ec2Namespace, RequestID: req.requestID, Subnets: []item{}}
	for _, id := range queryStrings(req.params, "SubnetId") {
		if !subnetIDPattern.MatchString(id) {
			return nil, errorf("InvalidSubnetID.Malformed", "Invalid id: \"%s\" (expecting \"subnet-...\")", id)
		}
		if !n.subnets[id] {
			return nil, errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
		out.Subnets = append(out.Subnets, item{SubnetID: id, State: "available", VpcID: DefaultVPC,
			CidrBlock: "10.0.0.0/20", AvailabilityZone: req.region + "a", OwnerID: OwnerID})
	}
	return xmlResponse(out)
}
