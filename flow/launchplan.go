package flow

import (
	"context"
	"errors"

	"github.com/computebot/computebot"
	"github.com/computebot/computebot/reply"
	"github.com/computebot/computebot/schedule"
)

// What a launch request's admission works out beyond policy: whether its
// vCPUs fit the account's quota, which RunInstances it may try (the type in
// each subnet, then the fallback types), and whether it can hibernate.

// maxHibernationMiB is EC2's limit: an instance with more memory cannot
// hibernate.
const maxHibernationMiB = 150 * 1024

// defaultRootGiB stands for an image whose root size EC2 did not say.
const defaultRootGiB = 8

// checkQuota looks up the vCPU quota the type counts against. It returns
// the quota (nil when unknown: a failed lookup does not block a request)
// and, when the request cannot fit, the refusal to give at once.
func (f *Flow) checkQuota(ctx context.Context, r *computebot.Request, it computebot.InstanceType) (*computebot.VCPUQuota, *reply.Message, error) {
	q, err := f.cloud.VCPUQuota(ctx, r.Launch.InstanceType)
	switch {
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	case errors.Is(err, computebot.ErrNotFound):
		return nil, nil, nil // a type without an on-demand vCPU quota
	case err != nil:
		f.log.Warn("vCPU quota lookup failed; the request goes on with the quota unknown", "request_id", r.ID, "type", r.Launch.InstanceType, "err", err)
		return nil, nil, err
	}
	if !q.Fits(int(it.VCPUs)) {
		why := reply.VCPUQuotaExceeded(r.Launch.InstanceType, int(it.VCPUs), q)
		return &q, &why, nil
	}
	return &q, nil, nil
}

// planLaunch lists the launch's attempts: the type in each subnet
// (launch.subnet_ids, else launch.subnet_id), then each of its
// launch.fallback_types in each subnet. Each attempt is configured for
// hibernation when it was asked for and its type and the image can. A
// fallback type EC2 cannot describe, or that does not fit its vCPU quota
// (an unknown quota does not leave it out), is left out. It also returns the
// highest hourly price among the types (known only when all are) and, when
// hibernation was asked for but the requested type cannot, why.
func (f *Flow) planLaunch(ctx context.Context, l *computebot.LaunchRequest, primary computebot.InstanceType, img computebot.Image) (plan []computebot.LaunchTry, maxPrice float64, maxKnown bool, noHibernation string) {
	subnets := f.cfg.Launch.Subnets()
	maxKnown = true
	for i, name := range f.cfg.Launch.Types(l.InstanceType) {
		it := primary
		if i > 0 {
			var err error
			if it, err = f.cloud.InstanceType(ctx, name); err != nil {
				f.log.Warn("fallback type left out: EC2 did not describe it", "type", name, "err", err)
				continue
			}
			// A fallback in another quota class (or a larger size) that
			// cannot fit would only fail with VcpuLimitExceeded later.
			if q, err := f.cloud.VCPUQuota(ctx, name); err == nil && !q.Fits(int(it.VCPUs)) {
				f.log.Info("fallback type left out: over its vCPU quota", "type", name, "class", q.Class, "in_use", q.InUse, "limit", q.Limit)
				continue
			}
		}
		price, known := l.PricePerHour, l.PriceKnown
		if i > 0 {
			price, known = f.prices.Price(ctx, name)
		}
		maxPrice, maxKnown = max(maxPrice, price), maxKnown && known
		hibernate, root, whyNot := false, int32(0), ""
		if l.Hibernate {
			hibernate, root, whyNot = hibernation(it, img)
			if i == 0 {
				noHibernation = whyNot
			}
		}
		for _, subnet := range subnets {
			plan = append(plan, computebot.LaunchTry{InstanceType: name, SubnetID: subnet, Hibernate: hibernate, RootVolumeGiB: root})
		}
	}
	return plan, maxPrice, maxKnown, noHibernation
}

// hibernation says whether an instance of type it from img can hibernate
// and, if so, the root volume size that holds its memory as well as the
// image (the root volume is always encrypted, which hibernation needs);
// else why not, in words for the request message.
func hibernation(it computebot.InstanceType, img computebot.Image) (ok bool, rootGiB int32, whyNot string) {
	switch {
	case !it.Hibernation:
		return false, 0, reply.CannotHibernateType(it.Name)
	case it.MemoryMiB > maxHibernationMiB:
		return false, 0, reply.CannotHibernateMemory(it.Name, it.MemoryMiB)
	case img.RootDeviceName == "":
		return false, 0, reply.CannotHibernateImage(img.ID)
	}
	base := img.RootVolumeGiB
	if base <= 0 {
		base = defaultRootGiB
	}
	memGiB := int32((it.MemoryMiB + 1023) / 1024)
	return true, base + memGiB, ""
}

// defaultSchedule is launch.default_schedule as the tag holds it
// (canonical text); "" for none. The config was validated.
func (f *Flow) defaultSchedule() string {
	if f.cfg.Launch.DefaultSchedule == "" {
		return ""
	}
	hours, err := schedule.Parse(f.cfg.Launch.DefaultSchedule, nil)
	if err != nil {
		return ""
	}
	return hours.String()
}
