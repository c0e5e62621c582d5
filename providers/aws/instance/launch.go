package instance

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/ami"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// MaxOverrides bounds the overrides of one CreateFleet call. Past it, each
// option gets only the subnet of its zone with the most free addresses.
const MaxOverrides = 300

// fleetKind is one CreateFleet call: EC2 fleets take one default capacity
// type, and capacity blocks cannot share a fleet with ODCRs.
type fleetKind string

const (
	kindReserved      fleetKind = "reserved"
	kindCapacityBlock fleetKind = "capacity-block"
	kindSpot          fleetKind = "spot"
	kindOnDemand      fleetKind = "on-demand"
)

type launchGroup struct {
	kind    fleetKind
	options []cloudprovider.LaunchOption
}

// Launch is cloudprovider.Backend.Launch. The provider's options are split
// into one instant CreateFleet per kind (reserved, capacity block, spot,
// on-demand), tried in the order the provider ranked their best option, each
// with overrides over its options × the node class's subnets in their zones.
// An option is Refused when every one of its overrides failed with a
// capacity error; other failures are errors. Requests are idempotent per
// NodeClaim through the fleet client token.
func (p *Provider) Launch(ctx context.Context, req *cloudprovider.LaunchRequest) (*cloudprovider.LaunchResult, error) {
	if _, gang := cloudprovider.GangOf(req.NodeClaim); !gang {
		// A gang's members wait for one another and make one CreateFleet
		// (gang_batch.go): holding slots while waiting could starve the
		// rest of their gang.
		select {
		case p.launchSlots <- struct{}{}:
			defer func() { <-p.launchSlots }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.LaunchTimeout)
	defer cancel()
	nc := req.NodeClass
	if nc == nil {
		return nil, fmt.Errorf("launch request has no node class")
	}
	if missing := Unresolved(nc); len(missing) > 0 {
		return nil, fmt.Errorf("GPUNodeClass %q has no resolved %s", nc.Name, strings.Join(missing, ", "))
	}
	if p.mayHaveLaunched(req.NodeClaim) {
		inst, err := p.launchedBefore(ctx, req)
		if err != nil {
			return nil, err
		}
		if inst != nil {
			return &cloudprovider.LaunchResult{Instance: inst}, nil
		}
	}
	res := &cloudprovider.LaunchResult{}
	var errs []error
	for _, g := range p.groupOptions(ctx, req.Options) {
		inst, refused, err := p.launchGroup(ctx, req, g)
		res.Refused = append(res.Refused, refused...)
		if inst != nil {
			res.Instance = inst
			return res, nil
		}
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return res, errors.Join(errs...)
}

// RestartLookupWindow is how long after a provider starts the NodeClaims it
// launches are still looked up in EC2 first (NodeClaims created before the
// start always are): it covers clock skew between the API server and the
// controller.
const RestartLookupWindow = time.Minute

// mayHaveLaunched reports whether a previous controller process may have
// launched the NodeClaim and died before recording it: the NodeClaim is
// older than this process. The fleet client token alone does not make that
// re-launch idempotent: the first launch may have been batched with other
// NodeClaims (one token for the batch), or made with other options (offerings
// the previous process had seen refused), and either is a new token.
func (p *Provider) mayHaveLaunched(nc *karpv1.NodeClaim) bool {
	return nc != nil && !nc.CreationTimestamp.IsZero() && nc.CreationTimestamp.Time.Before(p.started.Add(RestartLookupWindow))
}

// launchedBefore returns the live instance already launched for the
// NodeClaim (found by its NodeClaim tag) on one of the request's options, or
// nil. Instances tagged with the NodeClaim that it cannot use (an option no
// longer offered, extra copies) are terminated: no NodeClaim refers to them.
func (p *Provider) launchedBefore(ctx context.Context, req *cloudprovider.LaunchRequest) (*cloudprovider.Instance, error) {
	filters := []ec2types.Filter{
		{Name: aws.String("tag:" + cloudprovider.TagCluster), Values: []string{p.opts.ClusterName}},
		{Name: aws.String("tag:" + cloudprovider.TagNodeClaim), Values: []string{req.NodeClaim.Name}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
	}
	found, err := p.describe(ctx, &ec2.DescribeInstancesInput{Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("looking up instances of NodeClaim %s, %w", req.NodeClaim.Name, err)
	}
	rank := func(inst *cloudprovider.Instance) int {
		return lo.IndexOf(lo.Map(req.Options, func(o cloudprovider.LaunchOption, _ int) string { return o.String() }),
			cloudprovider.LaunchOption{InstanceType: inst.InstanceType, Zone: inst.Zone, CapacityType: inst.CapacityType}.String())
	}
	found = lo.Filter(found, func(inst *cloudprovider.Instance, _ int) bool {
		return inst.State != cloudprovider.InstanceStateTerminated
	})
	sort.SliceStable(found, func(i, j int) bool {
		ri, rj := rank(found[i]), rank(found[j])
		return ri >= 0 && (rj < 0 || ri < rj)
	})
	var keep *cloudprovider.Instance
	for _, inst := range found {
		if keep == nil && rank(inst) >= 0 {
			keep = inst
			log.FromContext(ctx).Info("found the instance a previous launch of the NodeClaim started", "nodeclaim", req.NodeClaim.Name, "instance", inst.ID)
			continue
		}
		if err := p.Terminate(ctx, inst.ID); err != nil && !cloudprovider.IsNotFound(err) {
			return nil, err
		}
		log.FromContext(ctx).Info("terminated an unusable instance of a previous launch of the NodeClaim", "nodeclaim", req.NodeClaim.Name, "instance", inst.ID, "offering", inst.InstanceType+"/"+inst.Zone+"/"+inst.CapacityType)
	}
	return keep, nil
}

// Unresolved names the parts of the node class a launch needs that are not
// resolved yet.
func Unresolved(nc *v1alpha1.GPUNodeClass) []string {
	var missing []string
	if len(nc.Status.Subnets) == 0 {
		missing = append(missing, "subnets")
	}
	if len(nc.Status.SecurityGroups) == 0 {
		missing = append(missing, "security groups")
	}
	if len(nc.Status.AMIs) == 0 {
		missing = append(missing, "images")
	}
	if nc.Status.InstanceProfile == "" {
		missing = append(missing, "instance profile")
	}
	return missing
}

// groupOptions splits options by fleet kind, keeping the provider's order
// within each group and ordering groups by their first option.
func (p *Provider) groupOptions(ctx context.Context, options []cloudprovider.LaunchOption) []launchGroup {
	var groups []launchGroup
	for _, o := range options {
		kind := fleetKind(o.CapacityType)
		if o.CapacityType == karpv1.CapacityTypeReserved {
			kind = kindReserved
			if r, ok := p.opts.Reservations.Get(ctx, o.ReservationID); ok && r.CapacityBlock {
				kind = kindCapacityBlock
			}
		}
		i := lo.IndexOf(lo.Map(groups, func(g launchGroup, _ int) fleetKind { return g.kind }), kind)
		if i < 0 {
			groups = append(groups, launchGroup{kind: kind})
			i = len(groups) - 1
		}
		groups[i].options = append(groups[i].options, o)
	}
	return groups
}

// fleetPlan is one CreateFleet request and how to map its answer back.
type fleetPlan struct {
	configs   []ec2types.FleetLaunchTemplateConfigRequest
	options   []cloudprovider.LaunchOption
	images    map[string]string // launch template -> image
	overrides map[string]int    // override key -> option index
	perOption []int             // overrides per option
}

func overrideKey(template, instanceType, zone string) string {
	return template + "|" + instanceType + "|" + zone
}

func (p *Provider) planFleet(ctx context.Context, req *cloudprovider.LaunchRequest, g launchGroup, oneSubnet bool) (*fleetPlan, error) {
	nc := req.NodeClass
	plan := &fleetPlan{images: map[string]string{}, overrides: map[string]int{}}
	configIndex := map[string]int{}
	templates := map[string]string{} // image|reservation -> template name
	logger := log.FromContext(ctx)
	for _, o := range g.options {
		entry, ok := p.opts.InstanceTypes.Get(ctx, o.InstanceType)
		if !ok {
			logger.Info("skipping launch option of an unknown instance type", "option", o.String())
			continue
		}
		ami, ok := ami.For(nc, &entry)
		if !ok {
			logger.Info("skipping launch option without a compatible image", "option", o.String())
			continue
		}
		subnets := p.opts.Subnets.InZone(nc, o.Zone)
		if len(subnets) == 0 {
			logger.Info("skipping launch option in a zone without a subnet", "option", o.String())
			continue
		}
		if oneSubnet {
			subnets = subnets[:1]
		}
		efa := efaInterfaces(req, &entry)
		tkey := ami.ID + "|" + o.ReservationID + "|" + fmt.Sprint(efa)
		name, ok := templates[tkey]
		if !ok {
			spec, err := p.opts.Templates.Spec(nc, req.NodeClaim, ami.ID, o.ReservationID, g.kind == kindCapacityBlock)
			if err != nil {
				return nil, err
			}
			spec.EFAInterfaces = efa
			if name, err = p.opts.Templates.Ensure(ctx, spec); err != nil {
				return nil, err
			}
			templates[tkey] = name
			plan.images[name] = ami.ID
		}
		ci, ok := configIndex[name]
		if !ok {
			plan.configs = append(plan.configs, ec2types.FleetLaunchTemplateConfigRequest{
				LaunchTemplateSpecification: &ec2types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateName: aws.String(name), Version: aws.String("$Latest")},
			})
			ci = len(plan.configs) - 1
			configIndex[name] = ci
		}
		oi := len(plan.options)
		plan.options = append(plan.options, o)
		plan.perOption = append(plan.perOption, len(subnets))
		plan.overrides[overrideKey(name, o.InstanceType, o.Zone)] = oi
		for _, s := range subnets {
			plan.configs[ci].Overrides = append(plan.configs[ci].Overrides, ec2types.FleetLaunchTemplateOverridesRequest{
				InstanceType:     ec2types.InstanceType(o.InstanceType),
				SubnetId:         aws.String(s),
				AvailabilityZone: aws.String(o.Zone),
			})
		}
	}
	return plan, nil
}

func (p *fleetPlan) overrideCount() int {
	return lo.SumBy(p.configs, func(c ec2types.FleetLaunchTemplateConfigRequest) int { return len(c.Overrides) })
}

// launchGroup runs one CreateFleet.
func (p *Provider) launchGroup(ctx context.Context, req *cloudprovider.LaunchRequest, g launchGroup) (*cloudprovider.Instance, []cloudprovider.LaunchOption, error) {
	plan, err := p.planFleet(ctx, req, g, false)
	if err != nil {
		return nil, nil, err
	}
	if plan.overrideCount() > MaxOverrides {
		if plan, err = p.planFleet(ctx, req, g, true); err != nil {
			return nil, nil, err
		}
	}
	if len(plan.options) == 0 {
		return nil, nil, fmt.Errorf("none of the %d %s options can launch with GPUNodeClass %q", len(g.options), g.kind, req.NodeClass.Name)
	}
	in := p.fleetInput(req, g.kind, plan)
	var out *ec2.CreateFleetOutput
	for attempt := 0; ; attempt++ {
		out, err = p.createFleet(ctx, req, g.kind, in)
		if err == nil {
			break
		}
		code := awsutil.ErrorCode(err)
		if awsutil.IsLaunchTemplateNotFound(code) && attempt == 0 {
			// Deleted behind the cache's back: recreate and retry once.
			for name := range plan.images {
				p.opts.Templates.Forget(name)
			}
			if plan, err = p.planFleet(ctx, req, g, plan.overrideCount() > MaxOverrides); err != nil {
				return nil, nil, err
			}
			in = p.fleetInput(req, g.kind, plan)
			continue
		}
		if awsutil.IsCapacityCode(code) {
			return nil, plan.options, nil
		}
		return nil, nil, fmt.Errorf("creating %s fleet, %w", g.kind, err)
	}
	return p.fleetResult(ctx, req, g, plan, out)
}

func (p *Provider) fleetInput(req *cloudprovider.LaunchRequest, kind fleetKind, plan *fleetPlan) *ec2.CreateFleetInput {
	tags := awsutil.ToEC2Tags(awsutil.OwnedTags(p.opts.ClusterName, lo.Assign(req.NodeClass.Spec.Tags, req.Tags)))
	in := &ec2.CreateFleetInput{
		Type:                  ec2types.FleetTypeInstant,
		LaunchTemplateConfigs: plan.configs,
		TargetCapacitySpecification: &ec2types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity: aws.Int32(1),
		},
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: tags},
			{ResourceType: ec2types.ResourceTypeVolume, Tags: tags},
		},
	}
	switch kind {
	case kindSpot:
		in.TargetCapacitySpecification.DefaultTargetCapacityType = ec2types.DefaultTargetCapacityTypeSpot
		in.SpotOptions = &ec2types.SpotOptionsRequest{AllocationStrategy: ec2types.SpotAllocationStrategyPriceCapacityOptimized}
	case kindCapacityBlock:
		in.TargetCapacitySpecification.DefaultTargetCapacityType = ec2types.DefaultTargetCapacityTypeCapacityBlock
	default:
		in.TargetCapacitySpecification.DefaultTargetCapacityType = ec2types.DefaultTargetCapacityTypeOnDemand
		in.OnDemandOptions = &ec2types.OnDemandOptionsRequest{AllocationStrategy: ec2types.FleetOnDemandAllocationStrategyLowestPrice}
	}
	if req.ClientToken != "" {
		// One token per NodeClaim and request content: a retry after a
		// controller restart returns the instance already launched, while a
		// changed request (refused options dropped) is a new launch instead
		// of an IdempotentParameterMismatch.
		in.ClientToken = aws.String(lo.Substring(req.ClientToken, 0, 40) + "-" + awsutil.ShortHash(fmt.Sprintf("%s/%v", kind, plan.overrides)))
	}
	return in
}

// fleetResult maps a CreateFleet answer onto the plan's options.
func (p *Provider) fleetResult(ctx context.Context, req *cloudprovider.LaunchRequest, g launchGroup, plan *fleetPlan, out *ec2.CreateFleetOutput) (*cloudprovider.Instance, []cloudprovider.LaunchOption, error) {
	optionOf := func(lto *ec2types.LaunchTemplateAndOverridesResponse) (int, bool) { return p.optionOf(plan, lto) }
	failed := make([]int, len(plan.options))
	var unmapped, other []string
	for _, e := range out.Errors {
		code := lo.FromPtr(e.ErrorCode)
		i, ok := optionOf(e.LaunchTemplateAndOverrides)
		switch {
		case awsutil.IsCapacityCode(code) && ok:
			failed[i]++
		case awsutil.IsCapacityCode(code):
			unmapped = append(unmapped, code)
		default:
			other = append(other, fmt.Sprintf("%s: %s", code, lo.FromPtr(e.ErrorMessage)))
		}
	}
	var refused []cloudprovider.LaunchOption
	for i, n := range failed {
		if n > 0 && n >= plan.perOption[i] {
			refused = append(refused, plan.options[i])
		}
	}
	for _, fi := range out.Instances {
		if len(fi.InstanceIds) == 0 {
			continue
		}
		i, ok := optionOf(fi.LaunchTemplateAndOverrides)
		if !ok {
			return nil, refused, fmt.Errorf("fleet launched %s (%s) on an override it was not given", fi.InstanceIds[0], fi.InstanceType)
		}
		if len(fi.InstanceIds) > 1 {
			log.FromContext(ctx).Error(nil, "fleet launched more instances than requested; the extras are collected as orphans", "instances", fi.InstanceIds)
		}
		o := plan.options[i]
		if o.ReservationID != "" {
			p.opts.Reservations.Invalidate()
		}
		return &cloudprovider.Instance{
			ID:            fi.InstanceIds[0],
			InstanceType:  o.InstanceType,
			Zone:          o.Zone,
			CapacityType:  o.CapacityType,
			ReservationID: o.ReservationID,
			ImageID:       plan.images[lo.FromPtr(fi.LaunchTemplateAndOverrides.LaunchTemplateSpecification.LaunchTemplateName)],
			State:         cloudprovider.InstanceStatePending,
			LaunchTime:    p.opts.Clock.Now(),
			Tags:          lo.Assign(awsutil.OwnedTags(p.opts.ClusterName, lo.Assign(req.NodeClass.Spec.Tags, req.Tags))),
		}, refused, nil
	}
	if len(other) > 0 {
		return nil, refused, fmt.Errorf("%s fleet launched nothing: %s", g.kind, strings.Join(lo.Uniq(other), "; "))
	}
	if len(unmapped) > 0 || len(out.Errors) == 0 {
		// Capacity errors EC2 did not attribute (or no answer at all):
		// nothing in this group launched, so none of it had capacity.
		return nil, plan.options, nil
	}
	return nil, refused, nil
}
