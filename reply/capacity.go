package reply

import (
	"fmt"

	"github.com/computebot/computebot"
)

// Words about what a launch needs from AWS beyond permission: vCPU quota,
// capacity (and the fallbacks that cover its lack), hibernation.

// QuotaLine is the request message's quota figure: "vCPU quota for G
// instances: 12 of 32 in use, this needs 4"; "" when not looked up.
func QuotaLine(l *computebot.LaunchRequest) string {
	switch {
	case l.Quota != nil:
		q := l.Quota
		return fmt.Sprintf("vCPU quota for %s instances: %d of %d in use, this needs %d", q.Class, q.InUse, q.Limit, l.VCPUs)
	case l.QuotaUnknown:
		return "vCPU quota unknown (it could not be read); the launch may still fail on it"
	}
	return ""
}

// VCPUQuotaExceeded refuses a request whose vCPUs do not fit the account's
// quota, with the numbers and where to ask for more.
func VCPUQuotaExceeded(instanceType string, needs int, q computebot.VCPUQuota) Message {
	free := max(q.Limit-q.InUse, 0)
	region := q.Region
	if region == "" {
		region = "us-east-1"
	}
	return Plain(fmt.Sprintf("`%s` needs %d vCPUs, but the account's vCPU quota for %s instances is %d with %d in use (%d free), so it could not launch. Nothing was launched.\n"+
		"Stop an instance of that kind, or ask an AWS admin to raise the quota *%s* (`%s`) in Service Quotas: https://%s.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/%s",
		instanceType, needs, q.Class, q.Limit, q.InUse, free, q.QuotaName, q.QuotaCode, region, q.QuotaCode))
}

// fallbackLine is the request message's line on what an approval covers
// when AWS has no capacity for the type; "" when nothing falls back.
func fallbackLine(l *computebot.LaunchRequest) string {
	fallbacks := l.Fallbacks()
	if len(fallbacks) == 0 {
		return ""
	}
	price := "price unknown"
	if l.MaxPriceKnown {
		price = fmt.Sprintf("up to ≈ $%s/h", trimPrice(l.MaxPricePerHour))
	}
	return fmt.Sprintf("If AWS has no `%s` capacity: %s (%s)", l.InstanceType, codeList(fallbacks), price)
}

// hibernationLine is the request message's line on hibernation, when it
// was asked for.
func hibernationLine(l *computebot.LaunchRequest) string {
	switch {
	case !l.Hibernate:
		return ""
	case l.NoHibernation != "":
		return "no: " + l.NoHibernation + "; a stop will not keep the memory"
	}
	return "yes: a stop keeps the memory"
}

// CannotHibernateType: the type does not support hibernation.
func CannotHibernateType(instanceType string) string {
	return fmt.Sprintf("`%s` cannot hibernate", instanceType)
}

// CannotHibernateMemory: too much memory to hibernate (EC2's limit is 150 GiB).
func CannotHibernateMemory(instanceType string, mib int64) string {
	return fmt.Sprintf("`%s` has %s of memory, more than the 150 GiB EC2 can hibernate", instanceType, GiB(mib))
}

// CannotHibernateImage: the image's root volume is unknown, so it cannot be
// sized and encrypted for hibernation.
func CannotHibernateImage(imageID string) string {
	return fmt.Sprintf("the root volume of `%s` is unknown", Literal(imageID))
}

// NoCapacityTrying is the thread note when a launch moves on for lack of
// capacity: to the next subnet, or to the next type.
func NoCapacityTrying(from, to computebot.LaunchTry) Message {
	where := "here"
	if from.SubnetID != "" {
		where = "in `" + from.SubnetID + "`"
	}
	next := "trying `" + to.InstanceType + "`"
	switch {
	case to.InstanceType == from.InstanceType:
		next = "trying subnet `" + to.SubnetID + "`"
	case to.SubnetID != "" && to.SubnetID != from.SubnetID:
		next += " in `" + to.SubnetID + "`"
	}
	if to.InstanceType != from.InstanceType {
		where = "in any subnet"
	}
	return Plain(fmt.Sprintf(":arrows_counterclockwise: AWS has no `%s` capacity %s; %s.", from.InstanceType, where, next))
}

// NoCapacityAnywhere is a launch's failure once every attempt of its plan
// found no capacity.
func NoCapacityAnywhere(l *computebot.LaunchRequest) string {
	types := append([]string{l.InstanceType}, l.Fallbacks()...)
	subnets := map[string]bool{}
	for _, t := range l.Plan {
		subnets[t.SubnetID] = true
	}
	in := "its subnet"
	if len(subnets) > 1 {
		in = fmt.Sprintf("any of its %d subnets", len(subnets))
	}
	return fmt.Sprintf("AWS has no capacity for %s in %s right now. Nothing was launched; try again later or with another type.", codeList(types), in)
}

// StopNote is the line a stop adds about memory: kept by a hibernation,
// or why an instance launched for hibernation was stopped plainly.
func StopNote(s computebot.Stopped) string {
	switch {
	case s.Hibernated:
		return "It hibernated: its memory is kept and comes back when it starts."
	case s.NotHibernated != "":
		return fmt.Sprintf("It was not hibernated (%s), so it was stopped plainly and its memory is lost.", Literal(s.NotHibernated))
	}
	return ""
}
