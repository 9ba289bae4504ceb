package fakeaws

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// EC2 instance state names and the codes EC2 pairs them with.
const (
	statePending      = "pending"
	stateRunning      = "running"
	stateShuttingDown = "shutting-down"
	stateTerminated   = "terminated"
	stateStopping     = "stopping"
	stateStopped      = "stopped"
)

var stateCodes = map[string]int{
	statePending:      0,
	stateRunning:      16,
	stateShuttingDown: 32,
	stateTerminated:   48,
	stateStopping:     64,
	stateStopped:      80,
}

// transitions are the states that end by themselves once the running delay
// has elapsed.
var transitions = map[string]string{
	statePending:      stateRunning,
	stateStopping:     stateStopped,
	stateShuttingDown: stateTerminated,
}

var (
	instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	imageIDPattern    = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// defaultRootVolumeGiB is the root snapshot size of an image added without
// one (EC2's Linux AMIs mostly have 8 GiB).
const defaultRootVolumeGiB = 8

// maxHibernationMemoryMiB is the most memory an instance can hibernate
// (150 GiB, EC2's limit for Linux instances).
const maxHibernationMemoryMiB = 150 * 1024

// instance is the stored form of an Instance.
type instance struct {
	Instance
	seq         int64 // launch order, the DescribeInstances cursor
	launchIndex int   // position within its reservation
}

func (in *instance) snapshot() Instance { return in.Instance.clone() }

func (i Instance) clone() Instance {
	i.SecurityGroupIDs = append([]string(nil), i.SecurityGroupIDs...)
	i.Tags = maps.Clone(i.Tags)
	i.VolumeTags = maps.Clone(i.VolumeTags)
	return i
}

// launchRecord remembers what a ClientToken launched, for idempotency.
type launchRecord struct {
	fingerprint string
	ids         []string
}

// sortedLocked returns every instance in launch order (by seq). The slice
// is the server's own: read it, never modify it.
func (s *Server) sortedLocked() []*instance { return s.order }

// orderIndexLocked is the position in s.order of the instance with seq (or
// where it would go).
func (s *Server) orderIndexLocked(seq int64) int {
	return sort.Search(len(s.order), func(i int) bool { return s.order[i].seq >= seq })
}

// advanceLocked ends every transitional state whose delay has elapsed. It
// runs on every EC2 call and snapshot instead of on a timer, so the fake
// needs no goroutines and tests stay deterministic.
func (s *Server) advanceLocked(now time.Time) {
	d := s.runningDelay
	for _, in := range s.instances {
		next, ok := transitions[in.State]
		if ok && now.Sub(in.StateChangedAt) >= d {
			s.enterLocked(in, next, in.StateChangedAt.Add(d))
		}
	}
}

// enterLocked moves an instance into state. Public IPs follow EC2: an
// instance gets a fresh one each time it starts and loses it when stopped.
func (s *Server) enterLocked(in *instance, state string, at time.Time) {
	in.State, in.StateChangedAt = state, at
	switch state {
	case statePending, stateRunning:
		in.Hibernated = false // started again: its memory is back in RAM
		if in.PublicIP == "" && !s.privateSubnet[in.SubnetID] {
			in.PublicIP = s.publicIPLocked()
		}
	case stateStopped, stateTerminated:
		in.PublicIP = ""
	}
}

// publicIPLocked hands out addresses from 54.12.34.56 upwards, never
// reusing one, so a restarted instance visibly gets a new address.
func (s *Server) publicIPLocked() string {
	for {
		n := uint32(54)<<24 | 12<<16 | 34<<8 | 56 + uint32(s.nextPublic)
		s.nextPublic++
		if last := n & 0xff; last != 0 && last != 255 {
			return fmt.Sprintf("%d.%d.%d.%d", n>>24, n>>16&0xff, n>>8&0xff, n&0xff)
		}
	}
}

func (s *Server) privateIPLocked() string {
	n := s.nextPrivate
	s.nextPrivate++
	return fmt.Sprintf("10.0.%d.%d", 1+n/240%254, 10+n%240)
}

func dryRun(req *request) *apiError {
	if req.params.Get("DryRun") == "true" {
		return errorf("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	return nil
}

// --- RunInstances ------------------------------------------------------------

// launchSpec is a parsed RunInstances request.
type launchSpec struct {
	imageID, instanceType, keyName, subnetID, httpTokens string
	minCount, maxCount                                   int
	hibernate                                            bool // HibernationOptions.Configured
	securityGroupIDs                                     []string
	tags                                                 map[string]map[string]string // resource type → tags
	devices                                              map[string]map[string]string // device name → fields (Ebs.Encrypted, …)
	fingerprint                                          string
}

func parseLaunchSpec(req *request) (*launchSpec, *apiError) {
	p := req.params
	spec := &launchSpec{
		imageID:          p.Get("ImageId"),
		instanceType:     p.Get("InstanceType"),
		keyName:          p.Get("KeyName"),
		subnetID:         p.Get("SubnetId"),
		httpTokens:       p.Get("MetadataOptions.HttpTokens"),
		securityGroupIDs: queryStrings(p, "SecurityGroupId"),
		tags:             map[string]map[string]string{},
		devices:          map[string]map[string]string{},
	}
	if spec.imageID == "" {
		return nil, errorf("MissingParameter", "The request must contain the parameter ImageId")
	}
	if spec.instanceType == "" {
		return nil, errorf("MissingParameter", "The request must contain the parameter InstanceType")
	}
	var err error
	if spec.minCount, err = strconv.Atoi(p.Get("MinCount")); err != nil {
		return nil, errorf("MissingParameter", "The request must contain the parameter MinCount")
	}
	if spec.maxCount, err = strconv.Atoi(p.Get("MaxCount")); err != nil {
		return nil, errorf("MissingParameter", "The request must contain the parameter MaxCount")
	}
	if spec.minCount < 1 || spec.maxCount < spec.minCount {
		return nil, errorf("InvalidParameterValue", "Invalid counts: MinCount %d, MaxCount %d", spec.minCount, spec.maxCount)
	}
	switch spec.httpTokens {
	case "":
		spec.httpTokens = "optional"
	case "optional", "required":
	default:
		return nil, errorf("InvalidParameterValue", "Value (%s) for parameter MetadataOptions.HttpTokens is invalid.", spec.httpTokens)
	}
	switch v := p.Get("HibernationOptions.Configured"); v {
	case "", "false":
	case "true":
		spec.hibernate = true
	default:
		return nil, errorf("InvalidParameterValue", "Value (%s) for parameter HibernationOptions.Configured is invalid.", v)
	}
	for _, m := range queryList(p, "TagSpecification") {
		rt := m.fields.Get("ResourceType")
		if rt == "" {
			return nil, errorf("InvalidParameterValue", "TagSpecification.%d.ResourceType is required", m.index)
		}
		tags, aerr := parseTags(m.fields, "Tag")
		if aerr != nil {
			return nil, aerr
		}
		if spec.tags[rt] == nil {
			spec.tags[rt] = map[string]string{}
		}
		for k, v := range tags {
			spec.tags[rt][k] = v
		}
	}
	for _, m := range queryList(p, "BlockDeviceMapping") {
		dev := m.fields.Get("DeviceName")
		if dev == "" {
			return nil, errorf("InvalidParameterValue", "BlockDeviceMapping.%d.DeviceName is required", m.index)
		}
		fields := map[string]string{}
		for k := range m.fields {
			fields[k] = m.fields.Get(k)
		}
		spec.devices[dev] = fields
	}

	// The fingerprint compares requests by meaning, not by encoding: a
	// caller that rebuilds the same request (say after a restart) may
	// emit tags or security groups in another order, and that must not
	// count as "different parameters". Scalars include
	// HibernationOptions.Configured and MetadataOptions.*.
	scalars := map[string]string{}
	for k := range p {
		switch {
		case k == "Action", k == "Version", k == "ClientToken", k == "DryRun",
			strings.HasPrefix(k, "SecurityGroupId."),
			strings.HasPrefix(k, "TagSpecification."),
			strings.HasPrefix(k, "BlockDeviceMapping."):
			continue
		}
		scalars[k] = p.Get(k)
	}
	groups := append([]string(nil), spec.securityGroupIDs...)
	sort.Strings(groups)
	fp, _ := json.Marshal(struct {
		Scalars map[string]string
		Groups  []string
		Tags    map[string]map[string]string
		Devices map[string]map[string]string
	}{scalars, groups, spec.tags, spec.devices})
	spec.fingerprint = string(fp)
	return spec, nil
}

// parseTags reads prefix.N.Key / prefix.N.Value and applies EC2's tag rules.
func parseTags(v map[string][]string, prefix string) (map[string]string, *apiError) {
	tags := map[string]string{}
	for _, m := range queryList(v, prefix) {
		k, val := m.fields.Get("Key"), m.fields.Get("Value")
		switch {
		case k == "":
			return nil, errorf("InvalidParameterValue", "Tag key cannot be empty")
		case len(k) > 128:
			return nil, errorf("InvalidParameterValue", "Tag key exceeds the maximum length of 128 characters")
		case len(val) > 256:
			return nil, errorf("InvalidParameterValue", "Tag value exceeds the maximum length of 256 characters")
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, errorf("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
		}
		if _, dup := tags[k]; dup {
			return nil, errorf("InvalidParameterValue", "Duplicate tag key '%s' specified.", k)
		}
		tags[k] = val
	}
	if len(tags) > 50 {
		return nil, errorf("TagLimitExceeded", "The maximum number of Tags for a resource has been reached.")
	}
	return tags, nil
}

// ec2RunInstances launches, idempotently per ClientToken as AWS does: the
// same token with the same parameters answers the instances the first
// successful call launched, in their current state (also once terminated:
// AWS keeps a token's result for at least 24 hours after termination, the
// fake for ever); with other parameters IdempotentParameterMismatch. A call
// that failed does not use its token up; an empty token is no token.
func ec2RunInstances(s *Server, req *request) (*response, *apiError) {
	spec, aerr := parseLaunchSpec(req)
	if aerr != nil {
		return nil, aerr
	}
	token := req.params.Get("ClientToken")
	if len(token) > 64 {
		return nil, errorf("InvalidParameterValue", "Value for parameter ClientToken exceeds the maximum length of 64 characters")
	}

	// One critical section from the token lookup to the launch, so that
	// concurrent retries carrying one token cannot both launch.
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.advanceLocked(now)

	if rec, ok := s.tokens[token]; ok && token != "" {
		if rec.fingerprint != spec.fingerprint {
			return nil, errorf("IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
		}
		if aerr := dryRun(req); aerr != nil {
			return nil, aerr
		}
		return xmlResponse(s.reservationResponseLocked(req, rec.ids))
	}

	img, ok := s.images[spec.imageID]
	if !ok {
		if !imageIDPattern.MatchString(spec.imageID) {
			return nil, errorf("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", spec.imageID)
		}
		return nil, errorf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", spec.imageID)
	}
	typ, ok := s.types[spec.instanceType]
	if !ok {
		return nil, errorf("InvalidParameterValue", "Invalid value '%s' for InstanceType.", spec.instanceType)
	}
	root := spec.devices[img.RootDeviceName]
	rootEncrypted := root["Ebs.Encrypted"] == "true"
	rootGiB := img.RootVolumeGiB
	if v := root["Ebs.VolumeSize"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			return nil, errorf("InvalidParameterValue", "Value (%s) for parameter volumeSize is invalid.", v)
		}
		rootGiB = int32(n)
	}
	if spec.hibernate {
		if aerr := hibernationRefusal(typ, rootEncrypted, rootGiB); aerr != nil {
			return nil, aerr
		}
	}
	if aerr := dryRun(req); aerr != nil {
		return nil, aerr
	}
	// Capacity is EC2's to judge after the request is valid; a launch
	// refused for it launches nothing and leaves its token unused.
	if s.noCapacity[capacityKey{spec.instanceType, spec.subnetID}] || s.noCapacity[capacityKey{spec.instanceType, ""}] {
		return nil, insufficientCapacity(spec.instanceType, req.region)
	}

	reservation := "r-" + randomHex(17)
	launchTime := now.UTC().Truncate(time.Second) // EC2 reports whole seconds
	ids := make([]string, 0, spec.maxCount)
	for i := 0; i < spec.maxCount; i++ {
		s.seq++
		in := &instance{seq: s.seq, launchIndex: i, Instance: Instance{
			ID:               "i-" + randomHex(17),
			Type:             spec.instanceType,
			ImageID:          spec.imageID,
			KeyName:          spec.keyName,
			SubnetID:         spec.subnetID,
			SecurityGroupIDs: append([]string(nil), spec.securityGroupIDs...),
			PrivateIP:        s.privateIPLocked(),
			LaunchTime:       launchTime,
			Tags:             maps.Clone(spec.tags["instance"]),
			VolumeTags:       maps.Clone(spec.tags["volume"]),
			ClientToken:      token,
			HttpTokens:       spec.httpTokens,
			RootEncrypted:    rootEncrypted,
			RootVolumeGiB:    rootGiB,
			ReservationID:    reservation,
			RootVolumeID:     "vol-" + randomHex(17),

			HibernationConfigured: spec.hibernate,
		}}
		if in.Tags == nil {
			in.Tags = map[string]string{}
		}
		if in.VolumeTags == nil {
			in.VolumeTags = map[string]string{}
		}
		s.enterLocked(in, statePending, now)
		s.instances[in.ID] = in
		s.order = append(s.order, in)
		s.volumes[in.RootVolumeID] = in.ID
		ids = append(ids, in.ID)
	}
	if token != "" {
		s.tokens[token] = &launchRecord{fingerprint: spec.fingerprint, ids: ids}
	}
	return xmlResponse(s.reservationResponseLocked(req, ids))
}

// hibernationRefusal is EC2's UnsupportedHibernationConfiguration for a
// launch with HibernationOptions.Configured that cannot hibernate: a type
// without hibernation support or with more than 150 GiB of memory, an
// unencrypted root volume, or one too small to hold the memory.
func hibernationRefusal(t InstanceType, rootEncrypted bool, rootGiB int32) *apiError {
	const code = "UnsupportedHibernationConfiguration"
	switch {
	case !t.Hibernation:
		return errorf(code, "The instance type %s does not support hibernation.", t.Name)
	case t.MemoryMiB > maxHibernationMemoryMiB:
		return errorf(code, "Hibernation is not supported for instances with more than 150 GiB of memory; %s has %d MiB.", t.Name, t.MemoryMiB)
	case !rootEncrypted:
		return errorf(code, "For hibernation, the root device volume must be encrypted.")
	case int64(rootGiB)*1024 < t.MemoryMiB:
		return errorf(code, "For hibernation, the root device volume must be large enough to store the instance memory: %s has %d MiB of memory and the root volume is %d GiB.", t.Name, t.MemoryMiB, rootGiB)
	}
	return nil
}

// capacityKey is an instance type in a subnet ("" = every subnet).
type capacityKey struct{ instanceType, subnetID string }

// SetNoCapacity makes RunInstances of instanceType in subnetID (its
// SubnetId parameter, "" when absent) fail with InsufficientInstanceCapacity
// (HTTP 500, a server error on EC2) while none is true; subnetID "" means
// every subnet, with or without a SubnetId. Each (type, subnet) is its own
// switch: none=false clears that one only. A refused launch launches
// nothing and does not use its ClientToken up, so the same call succeeds
// once capacity is back. Mind that the SDK's standard retryer retries a 500
// by itself (3 attempts by default).
func (s *Server) SetNoCapacity(instanceType, subnetID string, none bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := capacityKey{instanceType, subnetID}
	if none {
		s.noCapacity[k] = true
	} else {
		delete(s.noCapacity, k)
	}
}

// insufficientCapacity is EC2's answer, naming the zone the fake places
// instances in (region+"a") and the region's other zones.
func insufficientCapacity(instanceType, region string) *apiError {
	return errorf("InsufficientInstanceCapacity",
		"We currently do not have sufficient %s capacity in the Availability Zone you requested (%sa). "+
			"Our system will be working on provisioning additional capacity. "+
			"You can currently get %s capacity by not specifying an Availability Zone in your request or choosing %sb, %sc.",
		instanceType, region, instanceType, region, region)
}

// RefuseHibernation makes every StopInstances with Hibernate=true of the
// instance fail with code and message (e.g. UnsupportedOperation
// "Instance i-… is not ready to hibernate yet, retry in a few minutes", as
// EC2 answers while the hibernation agent is not ready), changing nothing,
// until it is called again with code "". The HTTP status is AWS's for the
// code (see FailNext). The refusal applies before EC2's own checks, also
// to an instance not configured for hibernation. An empty message gets
// AWS-like default text.
func (s *Server) RefuseHibernation(instanceID, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "" {
		delete(s.hibRefusals, instanceID)
		return
	}
	if message == "" {
		message = defaultMessage(code)
	}
	s.hibRefusals[instanceID] = &apiError{status: statusFor(code), code: code, message: message}
}

func (s *Server) reservationResponseLocked(req *request, ids []string) any {
	type runInstancesResponse struct {
		XMLName       xml.Name      `xml:"RunInstancesResponse"`
		Xmlns         string        `xml:"xmlns,attr"`
		RequestID     string        `xml:"requestId"`
		ReservationID string        `xml:"reservationId"`
		OwnerID       string        `xml:"ownerId"`
		Groups        []xmlGroup    `xml:"groupSet>item"`
		Instances     []xmlInstance `xml:"instancesSet>item"`
	}
	out := runInstancesResponse{Xmlns: ec2Namespace, RequestID: req.requestID, OwnerID: OwnerID}
	for _, id := range ids {
		in := s.instances[id]
		out.ReservationID = in.ReservationID
		out.Instances = append(out.Instances, s.xmlInstanceLocked(in, req.region))
	}
	return out
}

// --- XML shapes (element names from the SDK's ec2 deserializers.go) -------

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func stateOf(name string) xmlState { return xmlState{Code: stateCodes[name], Name: name} }

type xmlGroup struct {
	GroupID string `xml:"groupId"`
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func xmlTags(m map[string]string) []xmlTag {
	var out []xmlTag
	for _, k := range sortedKeys(m) {
		out = append(out, xmlTag{k, m[k]})
	}
	return out
}

type xmlBlockDevice struct {
	DeviceName string `xml:"deviceName"`
	Ebs        struct {
		VolumeID            string `xml:"volumeId"`
		Status              string `xml:"status"`
		AttachTime          string `xml:"attachTime"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
	} `xml:"ebs"`
}

type xmlInstance struct {
	InstanceID     string   `xml:"instanceId"`
	ImageID        string   `xml:"imageId"`
	State          xmlState `xml:"instanceState"`
	PrivateDNSName string   `xml:"privateDnsName"`
	DNSName        string   `xml:"dnsName"`
	Reason         string   `xml:"reason"`
	KeyName        string   `xml:"keyName,omitempty"`
	AmiLaunchIndex int      `xml:"amiLaunchIndex"`
	InstanceType   string   `xml:"instanceType"`
	LaunchTime     string   `xml:"launchTime"`
	Placement      struct {
		AvailabilityZone string `xml:"availabilityZone"`
		Tenancy          string `xml:"tenancy"`
	} `xml:"placement"`
	Monitoring struct {
		State string `xml:"state"`
	} `xml:"monitoring"`
	SubnetID         string     `xml:"subnetId,omitempty"`
	VpcID            string     `xml:"vpcId,omitempty"`
	PrivateIPAddress string     `xml:"privateIpAddress,omitempty"`
	IPAddress        string     `xml:"ipAddress,omitempty"`
	Groups           []xmlGroup `xml:"groupSet>item"`
	StateReason      *struct {
		Code    string `xml:"code"`
		Message string `xml:"message"`
	} `xml:"stateReason,omitempty"`
	Architecture   string           `xml:"architecture"`
	RootDeviceType string           `xml:"rootDeviceType"`
	RootDeviceName string           `xml:"rootDeviceName"`
	BlockDevices   []xmlBlockDevice `xml:"blockDeviceMapping>item"`
	ClientToken    string           `xml:"clientToken,omitempty"`
	Lifecycle      string           `xml:"instanceLifecycle,omitempty"`
	Tags           []xmlTag         `xml:"tagSet>item"`
	CPUOptions     struct {
		CoreCount      int `xml:"coreCount"`
		ThreadsPerCore int `xml:"threadsPerCore"`
	} `xml:"cpuOptions"`
	HibernationOptions struct {
		Configured bool `xml:"configured"`
	} `xml:"hibernationOptions"`
	MetadataOptions struct {
		State        string `xml:"state"`
		HTTPTokens   string `xml:"httpTokens"`
		HTTPEndpoint string `xml:"httpEndpoint"`
		HopLimit     int    `xml:"httpPutResponseHopLimit"`
	} `xml:"metadataOptions"`
}

const ec2Time = "2006-01-02T15:04:05.000Z"

func (s *Server) xmlInstanceLocked(in *instance, region string) xmlInstance {
	x := xmlInstance{
		InstanceID:       in.ID,
		ImageID:          in.ImageID,
		State:            stateOf(in.State),
		KeyName:          in.KeyName,
		AmiLaunchIndex:   in.launchIndex,
		InstanceType:     in.Type,
		LaunchTime:       in.LaunchTime.UTC().Format(ec2Time),
		SubnetID:         in.SubnetID,
		PrivateIPAddress: in.PrivateIP,
		IPAddress:        in.PublicIP,
		Architecture:     "x86_64",
		RootDeviceType:   "ebs",
		RootDeviceName:   "/dev/xvda",
		ClientToken:      in.ClientToken,
		Tags:             xmlTags(in.Tags),
	}
	if img, ok := s.images[in.ImageID]; ok {
		x.Architecture, x.RootDeviceName = img.Architecture, img.RootDeviceName
	}
	x.Placement.AvailabilityZone, x.Placement.Tenancy = region+"a", "default"
	x.Monitoring.State = "disabled"
	if in.SubnetID != "" {
		x.VpcID = "vpc-0fa4e0000000000f0"
	}
	if in.PrivateIP != "" {
		x.PrivateDNSName = "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + "." + region + ".compute.internal"
	}
	if in.PublicIP != "" {
		x.DNSName = "ec2-" + strings.ReplaceAll(in.PublicIP, ".", "-") + "." + region + ".compute.amazonaws.com"
	}
	for _, g := range in.SecurityGroupIDs {
		x.Groups = append(x.Groups, xmlGroup{g})
	}
	switch in.State {
	case stateStopping, stateStopped:
		x.Reason = "User initiated (" + in.StateChangedAt.UTC().Format("2006-01-02 15:04:05 GMT") + ")"
		x.StateReason = &struct {
			Code    string `xml:"code"`
			Message string `xml:"message"`
		}{"Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"}
		if in.Hibernated {
			x.StateReason.Code, x.StateReason.Message = "Client.UserInitiatedHibernate", "Client.UserInitiatedHibernate: User initiated hibernate"
		}
	case stateShuttingDown, stateTerminated:
		x.Reason = "User initiated (" + in.StateChangedAt.UTC().Format("2006-01-02 15:04:05 GMT") + ")"
	}
	if in.State != stateTerminated {
		var bd xmlBlockDevice
		bd.DeviceName = x.RootDeviceName
		bd.Ebs.VolumeID, bd.Ebs.Status = in.RootVolumeID, "attached"
		bd.Ebs.AttachTime, bd.Ebs.DeleteOnTermination = x.LaunchTime, true
		x.BlockDevices = []xmlBlockDevice{bd}
	}
	cores, threads := cpuTopology(s.types[in.Type].VCPUs)
	x.CPUOptions.CoreCount, x.CPUOptions.ThreadsPerCore = int(cores), int(threads)
	x.HibernationOptions.Configured = in.HibernationConfigured
	if in.Spot {
		x.Lifecycle = "spot"
	}
	x.MetadataOptions.State, x.MetadataOptions.HTTPEndpoint = "applied", "enabled"
	x.MetadataOptions.HTTPTokens, x.MetadataOptions.HopLimit = in.HttpTokens, 2
	return x
}

// cpuTopology splits vCPUs into cores and threads per core as EC2's
// default CPU options do: two threads per core when the count is even,
// else one. A type the fake does not know counts as one vCPU.
func cpuTopology(vcpus int32) (cores, threadsPerCore int32) {
	if vcpus < 1 {
		vcpus = 1
	}
	threadsPerCore = 1
	if vcpus >= 2 && vcpus%2 == 0 {
		threadsPerCore = 2
	}
	return vcpus / threadsPerCore, threadsPerCore
}

// --- DescribeInstances -------------------------------------------------------

type ec2Filter struct {
	name   string
	values []string
}

func parseFilters(req *request, valid func(name string) bool) ([]ec2Filter, *apiError) {
	var out []ec2Filter
	for _, m := range queryList(req.params, "Filter") {
		f := ec2Filter{name: m.fields.Get("Name"), values: queryStrings(m.fields, "Value")}
		if f.name == "" || !valid(f.name) {
			return nil, errorf("InvalidParameterValue", "The filter '%s' is invalid", f.name)
		}
		if len(f.values) == 0 {
			return nil, errorf("InvalidParameterValue", "The filter '%s' requires at least one value", f.name)
		}
		out = append(out, f)
	}
	return out, nil
}

// matchFilters: values within a filter are ORed, filters are ANDed, and
// values may use the * and ? wildcards.
func matchFilters(filters []ec2Filter, attr func(name string) []string) bool {
	for _, f := range filters {
		have := attr(f.name)
		ok := false
		for _, want := range f.values {
			for _, h := range have {
				if globMatch(want, h) {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

var instanceFilterNames = map[string]bool{
	"tag-key": true, "tag-value": true, "instance-state-name": true, "instance-state-code": true,
	"instance-id": true, "instance-type": true, "image-id": true, "key-name": true, "subnet-id": true,
	"vpc-id": true, "client-token": true, "ip-address": true, "private-ip-address": true,
	"reservation-id": true, "instance.group-id": true, "availability-zone": true,
}

func validInstanceFilter(name string) bool {
	return strings.HasPrefix(name, "tag:") && len(name) > 4 || instanceFilterNames[name]
}

func instanceAttr(in *instance, region, name string) []string {
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	if key, ok := strings.CutPrefix(name, "tag:"); ok {
		if v, ok := in.Tags[key]; ok {
			return []string{v}
		}
		return nil
	}
	switch name {
	case "tag-key":
		return sortedKeys(in.Tags)
	case "tag-value":
		var vs []string
		for _, v := range in.Tags {
			vs = append(vs, v)
		}
		return vs
	case "instance-state-name":
		return one(in.State)
	case "instance-state-code":
		return one(strconv.Itoa(stateCodes[in.State]))
	case "instance-id":
		return one(in.ID)
	case "instance-type":
		return one(in.Type)
	case "image-id":
		return one(in.ImageID)
	case "key-name":
		return one(in.KeyName)
	case "subnet-id":
		return one(in.SubnetID)
	case "vpc-id":
		if in.SubnetID != "" {
			return []string{"vpc-0fa4e0000000000f0"}
		}
	case "client-token":
		return one(in.ClientToken)
	case "ip-address":
		return one(in.PublicIP)
	case "private-ip-address":
		return one(in.PrivateIP)
	case "reservation-id":
		return one(in.ReservationID)
	case "instance.group-id":
		return in.SecurityGroupIDs
	case "availability-zone":
		return one(region + "a")
	}
	return nil
}

// page tokens are opaque to the client; ours carry the launch sequence
// number of the last instance returned, so instances launched between two
// pages are neither skipped nor repeated.
func encodePageToken(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("fakeaws:" + strconv.FormatInt(seq, 10)))
}

func decodePageToken(tok string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	n, ok := strings.CutPrefix(string(b), "fakeaws:")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseInt(n, 10, 64)
	return seq, err == nil
}

func (s *Server) notFoundInstancesLocked(ids []string) *apiError {
	var missing []string
	for _, id := range ids {
		if _, ok := s.instances[id]; !ok {
			if !instanceIDPattern.MatchString(id) {
				return errorf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
			}
			missing = append(missing, id)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return errorf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", missing[0])
	}
	return errorf("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
}

func ec2DescribeInstances(s *Server, req *request) (*response, *apiError) {
	ids := queryStrings(req.params, "InstanceId")
	filters, aerr := parseFilters(req, validInstanceFilter)
	if aerr != nil {
		return nil, aerr
	}
	maxResults := 0
	if v := req.params.Get("MaxResults"); v != "" {
		if len(ids) > 0 {
			return nil, errorf("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 1000 {
			return nil, errorf("InvalidParameterValue", "Value ( %s ) for parameter maxResults is invalid. Expect a number between 5 and 1000.", v)
		}
		maxResults = n
	}
	var after int64
	if tok := req.params.Get("NextToken"); tok != "" {
		seq, ok := decodePageToken(tok)
		if !ok {
			return nil, errorf("InvalidParameterValue", "The parameter NextToken is invalid")
		}
		after = seq
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	if aerr := s.notFoundInstancesLocked(ids); aerr != nil {
		return nil, aerr
	}
	if aerr := dryRun(req); aerr != nil {
		return nil, aerr
	}
	wanted := map[string]bool{}
	for _, id := range ids {
		wanted[id] = true
	}
	// Scan from the cursor in launch order and stop at one more match than
	// the page holds (which says whether there is a next page): a page
	// costs its own instances, not the whole fleet.
	var matched []*instance
	for _, in := range s.order[s.orderIndexLocked(after+1):] {
		if len(ids) > 0 && !wanted[in.ID] {
			continue
		}
		if matchFilters(filters, func(name string) []string { return instanceAttr(in, req.region, name) }) {
			matched = append(matched, in)
			if maxResults > 0 && len(matched) > maxResults {
				break
			}
		}
	}
	next := ""
	if maxResults > 0 && len(matched) > maxResults {
		matched = matched[:maxResults]
		next = encodePageToken(matched[maxResults-1].seq)
	}

	out := describeInstancesResponse{Xmlns: ec2Namespace, RequestID: req.requestID, NextToken: next}
	byID := map[string]*xmlReservation{}
	for _, in := range matched {
		r := byID[in.ReservationID]
		if r == nil {
			r = &xmlReservation{ReservationID: in.ReservationID, OwnerID: OwnerID}
			byID[in.ReservationID] = r
			out.Reservations = append(out.Reservations, r)
		}
		r.Instances = append(r.Instances, s.xmlInstanceLocked(in, req.region))
	}
	if out.Reservations == nil {
		// EC2 always sends the (possibly empty) set element.
		out.Reservations = []*xmlReservation{}
	}
	// About 2 KB per instance: sized once, the buffer never moves.
	return &response{contentType: "text/xml;charset=UTF-8", body: out.appendXML(make([]byte, 0, 1024+2560*len(matched)))}, nil
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Groups        []xmlGroup    `xml:"groupSet>item"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

type describeInstancesResponse struct {
	XMLName      xml.Name          `xml:"DescribeInstancesResponse"`
	Xmlns        string            `xml:"xmlns,attr"`
	RequestID    string            `xml:"requestId"`
	Reservations []*xmlReservation `xml:"reservationSet>item"`
	NextToken    string            `xml:"nextToken,omitempty"`
}

// appendXML encodes the answer exactly as xml.Marshal (with xml.Header)
// would, element for element (a test holds it to that), several times
// faster: a page of 1,000 instances is the fake's hottest answer, and
// encoding/xml's reflection made it cost as much as the client's parsing.
func (r *describeInstancesResponse) appendXML(b []byte) []byte {
	w := xmlWriter{b: append(b, xml.Header...)}
	w.b = append(w.b, `<DescribeInstancesResponse xmlns="`...)
	w.text(r.Xmlns)
	w.b = append(w.b, `">`...)
	w.elem("requestId", r.RequestID)
	// encoding/xml writes the parent of an a>b list even when the list is
	// empty or nil.
	w.open("reservationSet")
	for _, res := range r.Reservations {
		w.open("item")
		w.elem("reservationId", res.ReservationID)
		w.elem("ownerId", res.OwnerID)
		w.groups(res.Groups)
		w.open("instancesSet")
		for i := range res.Instances {
			w.open("item")
			w.instance(&res.Instances[i])
			w.close("item")
		}
		w.close("instancesSet")
		w.close("item")
	}
	w.close("reservationSet")
	w.elemOmit("nextToken", r.NextToken)
	w.close("DescribeInstancesResponse")
	return w.b
}

// xmlWriter appends XML the way encoding/xml prints it.
type xmlWriter struct{ b []byte }

func (w *xmlWriter) open(name string) {
	w.b = append(w.b, '<')
	w.b = append(w.b, name...)
	w.b = append(w.b, '>')
}

func (w *xmlWriter) close(name string) {
	w.b = append(w.b, "</"...)
	w.b = append(w.b, name...)
	w.b = append(w.b, '>')
}

// text escapes s as xml.EscapeText does; text with nothing to escape (the
// usual case) is copied as is.
func (w *xmlWriter) text(s string) {
	if plainXMLText(s) {
		w.b = append(w.b, s...)
		return
	}
	var buf bytes.Buffer
	_ = xml.EscapeText(&buf, []byte(s))
	w.b = append(w.b, buf.Bytes()...)
}

// plainXMLText reports whether encoding/xml would print s unchanged: no
// markup or quote characters, no \t \n \r (it escapes those too), and only
// characters XML allows.
func plainXMLText(s string) bool {
	for i, r := range s {
		switch {
		case r == '"' || r == '\'' || r == '&' || r == '<' || r == '>':
			return false
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return false
			}
		case r < 0x20, r > 0xD7FF && r < 0xE000, r == 0xFFFE, r == 0xFFFF:
			return false
		}
	}
	return true
}

func (w *xmlWriter) elem(name, s string) {
	w.open(name)
	w.text(s)
	w.close(name)
}

func (w *xmlWriter) elemOmit(name, s string) {
	if s != "" {
		w.elem(name, s)
	}
}

func (w *xmlWriter) elemInt(name string, n int) {
	w.open(name)
	w.b = strconv.AppendInt(w.b, int64(n), 10)
	w.close(name)
}

func (w *xmlWriter) groups(gs []xmlGroup) {
	w.open("groupSet")
	for _, g := range gs {
		w.open("item")
		w.elem("groupId", g.GroupID)
		w.close("item")
	}
	w.close("groupSet")
}

// instance writes the fields of xmlInstance in declaration order, with
// its tags' names and omitempty rules.
func (w *xmlWriter) instance(x *xmlInstance) {
	w.elem("instanceId", x.InstanceID)
	w.elem("imageId", x.ImageID)
	w.open("instanceState")
	w.elemInt("code", x.State.Code)
	w.elem("name", x.State.Name)
	w.close("instanceState")
	w.elem("privateDnsName", x.PrivateDNSName)
	w.elem("dnsName", x.DNSName)
	w.elem("reason", x.Reason)
	w.elemOmit("keyName", x.KeyName)
	w.elemInt("amiLaunchIndex", x.AmiLaunchIndex)
	w.elem("instanceType", x.InstanceType)
	w.elem("launchTime", x.LaunchTime)
	w.open("placement")
	w.elem("availabilityZone", x.Placement.AvailabilityZone)
	w.elem("tenancy", x.Placement.Tenancy)
	w.close("placement")
	w.open("monitoring")
	w.elem("state", x.Monitoring.State)
	w.close("monitoring")
	w.elemOmit("subnetId", x.SubnetID)
	w.elemOmit("vpcId", x.VpcID)
	w.elemOmit("privateIpAddress", x.PrivateIPAddress)
	w.elemOmit("ipAddress", x.IPAddress)
	w.groups(x.Groups)
	if x.StateReason != nil {
		w.open("stateReason")
		w.elem("code", x.StateReason.Code)
		w.elem("message", x.StateReason.Message)
		w.close("stateReason")
	}
	w.elem("architecture", x.Architecture)
	w.elem("rootDeviceType", x.RootDeviceType)
	w.elem("rootDeviceName", x.RootDeviceName)
	w.open("blockDeviceMapping")
	for _, bd := range x.BlockDevices {
		w.open("item")
		w.elem("deviceName", bd.DeviceName)
		w.open("ebs")
		w.elem("volumeId", bd.Ebs.VolumeID)
		w.elem("status", bd.Ebs.Status)
		w.elem("attachTime", bd.Ebs.AttachTime)
		w.open("deleteOnTermination")
		w.b = strconv.AppendBool(w.b, bd.Ebs.DeleteOnTermination)
		w.close("deleteOnTermination")
		w.close("ebs")
		w.close("item")
	}
	w.close("blockDeviceMapping")
	w.elemOmit("clientToken", x.ClientToken)
	w.elemOmit("instanceLifecycle", x.Lifecycle)
	w.open("tagSet")
	for _, t := range x.Tags {
		w.open("item")
		w.elem("key", t.Key)
		w.elem("value", t.Value)
		w.close("item")
	}
	w.close("tagSet")
	w.open("cpuOptions")
	w.elemInt("coreCount", x.CPUOptions.CoreCount)
	w.elemInt("threadsPerCore", x.CPUOptions.ThreadsPerCore)
	w.close("cpuOptions")
	w.open("hibernationOptions")
	w.open("configured")
	w.b = strconv.AppendBool(w.b, x.HibernationOptions.Configured)
	w.close("configured")
	w.close("hibernationOptions")
	w.open("metadataOptions")
	w.elem("state", x.MetadataOptions.State)
	w.elem("httpTokens", x.MetadataOptions.HTTPTokens)
	w.elem("httpEndpoint", x.MetadataOptions.HTTPEndpoint)
	w.elemInt("httpPutResponseHopLimit", x.MetadataOptions.HopLimit)
	w.close("metadataOptions")
}

// --- DescribeInstanceTypes / DescribeImages ----------------------------------

func ec2DescribeInstanceTypes(s *Server, req *request) (*response, *apiError) {
	names := queryStrings(req.params, "InstanceType")
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	for _, n := range names {
		if _, ok := s.types[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, errorf("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", strings.Join(missing, ", "))
	}
	if aerr := dryRun(req); aerr != nil {
		return nil, aerr
	}
	if len(names) == 0 {
		names = sortedKeys(s.types)
	}
	type xmlType struct {
		InstanceType      string `xml:"instanceType"`
		CurrentGeneration bool   `xml:"currentGeneration"`
		VCPUInfo          struct {
			DefaultVCPUs          int32 `xml:"defaultVCpus"`
			DefaultCores          int32 `xml:"defaultCores"`
			DefaultThreadsPerCore int32 `xml:"defaultThreadsPerCore"`
		} `xml:"vCpuInfo"`
		MemoryInfo struct {
			SizeInMiB int64 `xml:"sizeInMiB"`
		} `xml:"memoryInfo"`
		ProcessorInfo struct {
			Architectures []string `xml:"supportedArchitectures>item"`
		} `xml:"processorInfo"`
		HibernationSupported bool `xml:"hibernationSupported"`
		GpuInfo              *struct {
			Gpus []struct {
				Count        int32  `xml:"count"`
				Name         string `xml:"name"`
				Manufacturer string `xml:"manufacturer"`
			} `xml:"gpus>item"`
		} `xml:"gpuInfo,omitempty"`
	}
	type describeInstanceTypesResponse struct {
		XMLName   xml.Name  `xml:"DescribeInstanceTypesResponse"`
		Xmlns     string    `xml:"xmlns,attr"`
		RequestID string    `xml:"requestId"`
		Types     []xmlType `xml:"instanceTypeSet>item"`
	}
	out := describeInstanceTypesResponse{Xmlns: ec2Namespace, RequestID: req.requestID, Types: []xmlType{}}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		t := s.types[n]
		var x xmlType
		x.InstanceType, x.CurrentGeneration = t.Name, !strings.HasPrefix(t.Name, "t2.")
		x.VCPUInfo.DefaultVCPUs, x.MemoryInfo.SizeInMiB = t.VCPUs, t.MemoryMiB
		x.VCPUInfo.DefaultCores, x.VCPUInfo.DefaultThreadsPerCore = cpuTopology(t.VCPUs)
		x.ProcessorInfo.Architectures = []string{"x86_64"}
		x.HibernationSupported = t.Hibernation
		if t.GPUs > 0 {
			x.GpuInfo = &struct {
				Gpus []struct {
					Count        int32  `xml:"count"`
					Name         string `xml:"name"`
					Manufacturer string `xml:"manufacturer"`
				} `xml:"gpus>item"`
			}{}
			x.GpuInfo.Gpus = append(x.GpuInfo.Gpus, struct {
				Count        int32  `xml:"count"`
				Name         string `xml:"name"`
				Manufacturer string `xml:"manufacturer"`
			}{Count: t.GPUs, Name: gpuModel(t.Name), Manufacturer: "NVIDIA"})
		}
		out.Types = append(out.Types, x)
	}
	return xmlResponse(out)
}

// gpuModels are the NVIDIA GPUs of common GPU families (g4dn, g5, g6 and
// p3 are preloaded); a family not listed answers A10G.
var gpuModels = map[string]string{"g4dn": "T4", "g5": "A10G", "g6": "L4", "g6e": "L40S", "p3": "V100", "p4d": "A100", "p5": "H100"}

func gpuModel(instanceType string) string {
	family, _, _ := strings.Cut(instanceType, ".")
	if m, ok := gpuModels[family]; ok {
		return m
	}
	return "A10G"
}

func validImageFilter(name string) bool {
	switch name {
	case "name", "image-id", "architecture", "state", "root-device-name":
		return true
	}
	return false
}

func ec2DescribeImages(s *Server, req *request) (*response, *apiError) {
	ids := queryStrings(req.params, "ImageId")
	filters, aerr := parseFilters(req, validImageFilter)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.images[id]; !ok {
			if !imageIDPattern.MatchString(id) {
				return nil, errorf("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
			}
			return nil, errorf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
	}
	if aerr := dryRun(req); aerr != nil {
		return nil, aerr
	}
	if len(ids) == 0 {
		ids = sortedKeys(s.images)
	}
	// The root device's mapping, as EC2 describes an EBS-backed AMI's:
	// its snapshot, size and (gp3) volume type.
	type xmlImageDevice struct {
		DeviceName string `xml:"deviceName"`
		Ebs        struct {
			DeleteOnTermination bool   `xml:"deleteOnTermination"`
			Iops                int    `xml:"iops"`
			SnapshotID          string `xml:"snapshotId"`
			VolumeSize          int32  `xml:"volumeSize"`
			VolumeType          string `xml:"volumeType"`
			Throughput          int    `xml:"throughput"`
			Encrypted           bool   `xml:"encrypted"`
		} `xml:"ebs"`
	}
	type xmlImage struct {
		ImageID            string           `xml:"imageId"`
		ImageLocation      string           `xml:"imageLocation"`
		ImageState         string           `xml:"imageState"`
		ImageOwnerID       string           `xml:"imageOwnerId"`
		CreationDate       string           `xml:"creationDate"`
		IsPublic           bool             `xml:"isPublic"`
		Architecture       string           `xml:"architecture"`
		ImageType          string           `xml:"imageType"`
		Name               string           `xml:"name"`
		RootDeviceType     string           `xml:"rootDeviceType"`
		RootDeviceName     string           `xml:"rootDeviceName"`
		BlockDevices       []xmlImageDevice `xml:"blockDeviceMapping>item"`
		VirtualizationType string           `xml:"virtualizationType"`
		Hypervisor         string           `xml:"hypervisor"`
		PlatformDetails    string           `xml:"platformDetails"`
	}
	type describeImagesResponse struct {
		XMLName   xml.Name   `xml:"DescribeImagesResponse"`
		Xmlns     string     `xml:"xmlns,attr"`
		RequestID string     `xml:"requestId"`
		Images    []xmlImage `xml:"imagesSet>item"`
	}
	out := describeImagesResponse{Xmlns: ec2Namespace, RequestID: req.requestID, Images: []xmlImage{}}
	seen := map[string]bool{}
	for _, id := range ids {
		img := s.images[id]
		attr := func(name string) []string {
			switch name {
			case "name":
				return []string{img.Name}
			case "image-id":
				return []string{img.ID}
			case "architecture":
				return []string{img.Architecture}
			case "state":
				return []string{"available"}
			case "root-device-name":
				return []string{img.RootDeviceName}
			}
			return nil
		}
		if seen[id] || !matchFilters(filters, attr) {
			continue
		}
		seen[id] = true
		var root xmlImageDevice
		root.DeviceName = img.RootDeviceName
		root.Ebs.DeleteOnTermination, root.Ebs.Iops, root.Ebs.SnapshotID = true, 3000, snapshotOf(img.ID)
		root.Ebs.VolumeSize, root.Ebs.VolumeType, root.Ebs.Throughput = img.RootVolumeGiB, "gp3", 125
		out.Images = append(out.Images, xmlImage{
			ImageID: img.ID, ImageLocation: "amazon/" + img.Name, ImageState: "available",
			ImageOwnerID: "137112412989", CreationDate: "2024-10-10T00:00:00.000Z", IsPublic: true,
			Architecture: img.Architecture, ImageType: "machine", Name: img.Name,
			RootDeviceType: "ebs", RootDeviceName: img.RootDeviceName, BlockDevices: []xmlImageDevice{root},
			VirtualizationType: "hvm", Hypervisor: "xen", PlatformDetails: "Linux/UNIX",
		})
	}
	return xmlResponse(out)
}

// snapshotOf is the (stable, made-up) ID of an image's root snapshot.
func snapshotOf(imageID string) string {
	sum := sha256.Sum256([]byte(imageID))
	return "snap-" + hex.EncodeToString(sum[:])[:17]
}

// --- CreateTags ----------------------------------------------------------------

func ec2CreateTags(s *Server, req *request) (*response, *apiError) {
	ids := queryStrings(req.params, "ResourceId")
	if len(ids) == 0 {
		return nil, errorf("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	tags, aerr := parseTags(req.params, "Tag")
	if aerr != nil {
		return nil, aerr
	}
	if len(tags) == 0 {
		return nil, errorf("MissingParameter", "The request must contain the parameter tagSet")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	// Validate every resource before touching any: CreateTags is atomic.
	targets := make([]map[string]string, 0, len(ids))
	for _, id := range ids {
		var m map[string]string
		switch {
		case strings.HasPrefix(id, "i-"):
			in, ok := s.instances[id]
			if !ok {
				return nil, s.notFoundInstancesLocked([]string{id})
			}
			m = in.Tags
		case strings.HasPrefix(id, "vol-"):
			iid, ok := s.volumes[id]
			if !ok {
				return nil, errorf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
			}
			m = s.instances[iid].VolumeTags
		case strings.HasPrefix(id, "ami-"):
			if _, ok := s.images[id]; !ok {
				return nil, errorf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
			}
			m = map[string]string{} // images keep no tags in this fake
		default:
			return nil, errorf("InvalidID", "The ID '%s' is not valid", id)
		}
		n := len(m)
		for k := range tags {
			if _, ok := m[k]; !ok {
				n++
			}
		}
		if n > 50 {
			return nil, errorf("TagLimitExceeded", "The maximum number of Tags for a resource has been reached.")
		}
		targets = append(targets, m)
	}
	if aerr := dryRun(req); aerr != nil {
		return nil, aerr
	}
	for _, m := range targets {
		for k, v := range tags {
			m[k] = v
		}
	}
	type createTagsResponse struct {
		XMLName   xml.Name `xml:"CreateTagsResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		RequestID string   `xml:"requestId"`
		Return    bool     `xml:"return"`
	}
	return xmlResponse(createTagsResponse{Xmlns: ec2Namespace, RequestID: req.requestID, Return: true})
}

// --- Stop / Start / Terminate --------------------------------------------------

// stateChange decides an instance's next state for an action: the new
// state, or "" to leave it as is, or an error when the action is not
// allowed from the current state.
type stateChange func(in *instance) (string, *apiError)

// ec2StopInstances stops, or with Hibernate=true hibernates: a running
// instance launched with hibernation configured goes stopping → stopped
// like a plain stop, marked Hibernated. An instance not configured for it
// is refused as EC2 refuses it (UnsupportedHibernationConfiguration, HTTP
// 400), as is one RefuseHibernation names; a refusal changes nothing, for
// any of the instances (all or nothing).
func ec2StopInstances(s *Server, req *request) (*response, *apiError) {
	hibernate := req.params.Get("Hibernate") == "true"
	next := func(in *instance) (string, *apiError) {
		switch in.State {
		case stateRunning:
			if !hibernate {
				return stateStopping, nil
			}
			if refusal := s.hibRefusals[in.ID]; refusal != nil {
				e := *refusal
				return "", &e
			}
			if !in.HibernationConfigured {
				return "", errorf("UnsupportedHibernationConfiguration", "The instance can't be hibernated because it was not configured at launch for hibernation: %s", in.ID)
			}
			return stateStopping, nil
		case stateStopping, stateStopped:
			return "", nil
		}
		return "", errorf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be stopped.", in.ID)
	}
	return s.changeState(req, "StopInstancesResponse", next, func(in *instance) { in.Hibernated = hibernate })
}

func ec2StartInstances(s *Server, req *request) (*response, *apiError) {
	return s.changeState(req, "StartInstancesResponse", func(in *instance) (string, *apiError) {
		switch in.State {
		case stateStopped:
			return statePending, nil
		case statePending, stateRunning:
			return "", nil
		}
		return "", errorf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", in.ID)
	}, nil)
}

func ec2TerminateInstances(s *Server, req *request) (*response, *apiError) {
	return s.changeState(req, "TerminateInstancesResponse", func(in *instance) (string, *apiError) {
		switch in.State {
		case stateShuttingDown, stateTerminated:
			return "", nil
		}
		return stateShuttingDown, nil
	}, nil)
}

// changeState applies next to every instance of the call, all or nothing;
// entered, when not nil, runs for each instance that changes state, after
// it has.
func (s *Server) changeState(req *request, root string, next stateChange, entered func(in *instance)) (*response, *apiError) {
	ids := queryStrings(req.params, "InstanceId")
	if len(ids) == 0 {
		return nil, errorf("MissingParameter", "The request must contain the parameter InstanceId")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.advanceLocked(now)
	if aerr := s.notFoundInstancesLocked(ids); aerr != nil {
		return nil, aerr
	}
	// All or nothing, like EC2: check every instance before changing any.
	targets := make([]string, len(ids))
	for i, id := range ids {
		st, aerr := next(s.instances[id])
		if aerr != nil {
			return nil, aerr
		}
		targets[i] = st
	}
	if aerr := dryRun(req); aerr != nil {
		return nil, aerr
	}
	type xmlChange struct {
		InstanceID    string   `xml:"instanceId"`
		CurrentState  xmlState `xml:"currentState"`
		PreviousState xmlState `xml:"previousState"`
	}
	type changeResponse struct {
		XMLName   xml.Name
		Xmlns     string      `xml:"xmlns,attr"`
		RequestID string      `xml:"requestId"`
		Changes   []xmlChange `xml:"instancesSet>item"`
	}
	out := changeResponse{XMLName: xml.Name{Local: root}, Xmlns: ec2Namespace, RequestID: req.requestID}
	for i, id := range ids {
		in := s.instances[id]
		prev := in.State
		if targets[i] != "" {
			s.enterLocked(in, targets[i], now)
			if entered != nil {
				entered(in)
			}
		}
		out.Changes = append(out.Changes, xmlChange{InstanceID: id, CurrentState: stateOf(in.State), PreviousState: stateOf(prev)})
	}
	return xmlResponse(out)
}
