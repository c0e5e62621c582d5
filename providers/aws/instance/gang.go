package instance

// Gang launches: a whole gang of GPU nodes in one instant CreateFleet with
// MinTargetCapacity equal to the target and SingleAvailabilityZone (and
// SingleInstanceType when the gang has one type), optionally in a cluster
// placement group, so EC2 itself refuses a partial fleet. See
// designs/gang.md.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// GangRequest asks EC2 for Count instances at once.
type GangRequest struct {
	NodeClass *v1alpha1.GPUNodeClass
	// NodeClaim is one of the gang's NodeClaims; they share a template,
	// so its labels and taints make every instance's user data.
	NodeClaim *karpv1.NodeClaim
	// Options in preference order, all of one capacity type (one fleet).
	Options []cloudprovider.LaunchOption
	Count   int
	// PlacementGroup, when set, is the cluster placement group every
	// instance launches into.
	PlacementGroup string
	Tags           map[string]string
	ClientToken    string
}

// GangResult is what a gang launch started.
type GangResult struct {
	Instances []*cloudprovider.Instance
	// Refused: options EC2 answered with a capacity error.
	Refused []cloudprovider.LaunchOption
}

// GangCapacityError is a gang EC2 did not launch whole. Anything it did
// launch was terminated before it was returned.
type GangCapacityError struct {
	Count, Launched int
	Codes           []string
}

func (e *GangCapacityError) Error() string {
	return fmt.Sprintf("insufficient capacity for a gang of %d (%d launched and terminated): %s", e.Count, e.Launched, strings.Join(e.Codes, ", "))
}

// IsGangCapacityError reports whether err is a whole-gang refusal.
func IsGangCapacityError(err error) bool {
	var ge *GangCapacityError
	return errors.As(err, &ge)
}

// LaunchGang launches a gang all at once or not at all. EC2 enforces it
// through MinTargetCapacity; if an answer is partial anyway (an endpoint
// that ignores it), what launched is terminated and a *GangCapacityError
// returned.
func (p *Provider) LaunchGang(ctx context.Context, req GangRequest) (*GangResult, error) {
	switch {
	case req.NodeClass == nil || req.NodeClaim == nil:
		return nil, errors.New("gang launch needs a node class and a NodeClaim")
	case req.Count < 1:
		return nil, fmt.Errorf("gang size must be at least 1, got %d", req.Count)
	case len(req.Options) == 0:
		return nil, errors.New("gang launch has no options")
	}
	if missing := Unresolved(req.NodeClass); len(missing) > 0 {
		return nil, fmt.Errorf("GPUNodeClass %q has no resolved %s", req.NodeClass.Name, strings.Join(missing, ", "))
	}
	groups := p.groupOptions(ctx, req.Options)
	if len(groups) != 1 {
		return nil, fmt.Errorf("a gang launches in one fleet of one capacity type, got %v", lo.Map(groups, func(g launchGroup, _ int) fleetKind { return g.kind }))
	}
	g := groups[0]
	lreq := &cloudprovider.LaunchRequest{NodeClaim: req.NodeClaim, NodeClass: req.NodeClass, Options: g.options, Tags: req.Tags, ClientToken: req.ClientToken}
	plan, err := p.planFleet(ctx, lreq, g, false)
	if err != nil {
		return nil, err
	}
	if plan.overrideCount() > MaxOverrides {
		if plan, err = p.planFleet(ctx, lreq, g, true); err != nil {
			return nil, err
		}
	}
	if len(plan.options) == 0 {
		return nil, fmt.Errorf("none of the %d options can launch with GPUNodeClass %q", len(g.options), req.NodeClass.Name)
	}
	in := p.gangInput(lreq, g.kind, plan, req)
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	out, err := p.opts.EC2.CreateFleet(cctx, in)
	if err != nil {
		if code := awsutil.ErrorCode(err); awsutil.IsCapacityCode(code) {
			return &GangResult{Refused: plan.options}, &GangCapacityError{Count: req.Count, Codes: []string{code}}
		}
		return nil, fmt.Errorf("creating gang fleet, %w", err)
	}
	res := &GangResult{}
	var codes []string
	failed := map[int]bool{}
	for _, e := range out.Errors {
		codes = append(codes, lo.FromPtr(e.ErrorCode))
		if i, ok := p.optionOf(plan, e.LaunchTemplateAndOverrides); ok && awsutil.IsCapacityCode(lo.FromPtr(e.ErrorCode)) {
			failed[i] = true
		}
	}
	for i := range failed {
		res.Refused = append(res.Refused, plan.options[i])
	}
	for _, fi := range out.Instances {
		i, ok := p.optionOf(plan, fi.LaunchTemplateAndOverrides)
		for _, id := range fi.InstanceIds {
			inst := &cloudprovider.Instance{ID: id, State: cloudprovider.InstanceStatePending, LaunchTime: p.opts.Clock.Now(),
				Tags: lo.Assign(awsutil.OwnedTags(p.opts.ClusterName, lo.Assign(req.NodeClass.Spec.Tags, req.Tags)))}
			if ok {
				o := plan.options[i]
				inst.InstanceType, inst.Zone, inst.CapacityType, inst.ReservationID = o.InstanceType, o.Zone, o.CapacityType, o.ReservationID
				inst.ImageID = plan.images[lo.FromPtr(fi.LaunchTemplateAndOverrides.LaunchTemplateSpecification.LaunchTemplateName)]
			}
			res.Instances = append(res.Instances, inst)
		}
	}
	zones := lo.Uniq(lo.Map(res.Instances, func(i *cloudprovider.Instance, _ int) string { return i.Zone }))
	if len(res.Instances) == req.Count && len(zones) == 1 {
		return res, nil
	}
	// Partial (or spread over zones): take it all back.
	launched := len(res.Instances)
	if len(zones) > 1 {
		codes = append(codes, fmt.Sprintf("spread over zones %v", zones))
	}
	if err := p.terminateAll(ctx, lo.Map(res.Instances, func(i *cloudprovider.Instance, _ int) string { return i.ID })); err != nil {
		return nil, fmt.Errorf("rolling back a partial gang of %d/%d, %w", launched, req.Count, err)
	}
	if len(codes) == 0 {
		codes = []string{"partial answer"}
	}
	return &GangResult{Refused: res.Refused}, &GangCapacityError{Count: req.Count, Launched: launched, Codes: lo.Uniq(codes)}
}

// gangInput is fleetInput for a whole gang.
func (p *Provider) gangInput(lreq *cloudprovider.LaunchRequest, kind fleetKind, plan *fleetPlan, req GangRequest) *ec2.CreateFleetInput {
	in := p.fleetInput(lreq, kind, plan)
	in.TargetCapacitySpecification.TotalTargetCapacity = aws.Int32(int32(req.Count))
	single := len(lo.Uniq(lo.Map(plan.options, func(o cloudprovider.LaunchOption, _ int) string { return o.InstanceType }))) == 1
	setGangOptions(in, req.Count, single)
	if req.PlacementGroup != "" {
		for ci := range in.LaunchTemplateConfigs {
			for oi := range in.LaunchTemplateConfigs[ci].Overrides {
				in.LaunchTemplateConfigs[ci].Overrides[oi].Placement = &ec2types.Placement{GroupName: lo.ToPtr(req.PlacementGroup)}
			}
		}
	}
	return in
}

// optionOf maps a fleet answer's override to the plan's option.
func (p *Provider) optionOf(plan *fleetPlan, lto *ec2types.LaunchTemplateAndOverridesResponse) (int, bool) {
	if lto == nil || lto.LaunchTemplateSpecification == nil || lto.Overrides == nil {
		return 0, false
	}
	zone := lo.FromPtr(lto.Overrides.AvailabilityZone)
	if zone == "" {
		zone = p.opts.Subnets.ZoneOf(lo.FromPtr(lto.Overrides.SubnetId))
	}
	i, ok := plan.overrides[overrideKey(lo.FromPtr(lto.LaunchTemplateSpecification.LaunchTemplateName), string(lto.Overrides.InstanceType), zone)]
	return i, ok
}

// terminateAll terminates instances in one call.
func (p *Provider) terminateAll(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	_, err := p.opts.EC2.TerminateInstances(cctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	return err
}
