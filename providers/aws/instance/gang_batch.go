package instance

// Gang launches on the controller path. The ProvisioningRequest controller
// creates every NodeClaim of a gang attempt at once, labelled with the
// request and the attempt and annotated with the gang's size
// (cloudprovider.GangOf); Karpenter core then launches each through
// CloudProvider.Create. Their CreateFleet requests are gathered here until
// the whole attempt has arrived and made as one instant CreateFleet per
// identical request with TotalTargetCapacity = MinTargetCapacity = the
// number of NodeClaims, SingleAvailabilityZone, and SingleInstanceType when
// the overrides have one type: EC2 launches the gang whole or not at all.
// If an answer is partial anyway, what launched is terminated and every
// member is refused, so core deletes every NodeClaim and the controller
// retries the request.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// DefaultGangWait is how long the launches of a gang attempt wait for the
// rest of the gang before those that arrived launch as a gang of their own.
const DefaultGangWait = gather.DefaultGangWait

// gangCollector gathers the CreateFleet requests of gang attempts (the
// backends' one gang rule, gather.Gangs), by identical request: a plan
// with several instance types or templates makes several fleets.
type gangCollector struct {
	p     *Provider
	gangs *gather.Gangs[*batchMember]
	mu    sync.Mutex
	// owned are the placement groups this provider names for gangs (and so
	// creates); a node class's own group is used as it is.
	owned map[string]string // group -> the node class of its gang
}

func newGangCollector(p *Provider, wait time.Duration) *gangCollector {
	if wait <= 0 {
		wait = DefaultGangWait
	}
	// A member waits inside its launch's timeout.
	wait = min(wait, p.opts.LaunchTimeout/2)
	gc := &gangCollector{p: p, owned: map[string]string{}}
	gc.gangs = gather.NewGangs(wait, gc.flush)
	return gc
}

// createFleet is the CreateFleet of one launch: a gang member's goes
// through the collector, any other through the batcher.
func (p *Provider) createFleet(ctx context.Context, req *cloudprovider.LaunchRequest, kind fleetKind, in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error) {
	if g, ok := cloudprovider.GangOf(req.NodeClaim); ok {
		// Reserved capacity is where it was reserved (an ODCR is used in a
		// cluster placement group only if it was made in it; a capacity
		// block is already close together): no group of our own.
		if name := p.gangPlacementGroup(ctx, req.NodeClass, in, g); name != "" && (kind == kindOnDemand || kind == kindSpot) {
			in = withPlacementGroup(in, name)
		}
		return p.gangs.createFleet(ctx, in, g)
	}
	return p.batcher.createFleet(ctx, in)
}

func (gc *gangCollector) createFleet(ctx context.Context, in *ec2.CreateFleetInput, g cloudprovider.Gang) (*ec2.CreateFleetOutput, error) {
	common, perClaim := splitTags(in)
	m := newBatchMember(ctx, lo.FromPtr(in.ClientToken), perClaim, common)
	gc.gangs.Join(g.Key+"|"+string(common.TargetCapacitySpecification.DefaultTargetCapacityType), g.Size, batchKey(common), m)
	return m.await()
}

// flush launches a gang batch: one CreateFleet per identical request.
func (gc *gangCollector) flush(gk string, gb *gather.Gang[*batchMember]) {
	if gb.Arrived < gb.Size {
		log.FromContext(gb.Members[gb.Order[0]][0].ctx()).Info("launching part of a gang: the rest did not arrive in time",
			"gang", gk, "arrived", gb.Arrived, "size", gb.Size, "waited", gc.gangs.Wait())
	}
	var wg sync.WaitGroup
	for _, ik := range gb.Order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			members := gb.Members[ik]
			gc.execute(gk, members[0].input, members)
		}()
	}
	wg.Wait()
}

// execute makes one all-or-nothing CreateFleet for the members and hands
// each its instance, or refuses every one.
func (gc *gangCollector) execute(gk string, common *ec2.CreateFleetInput, members []*batchMember) {
	p := gc.p
	ctx, cancel := context.WithTimeout(context.WithoutCancel(members[0].ctx()), p.opts.LaunchTimeout)
	defer cancel()
	n := len(members)
	in := *common
	in.TargetCapacitySpecification = lo.ToPtr(*common.TargetCapacitySpecification)
	in.TargetCapacitySpecification.TotalTargetCapacity = aws.Int32(int32(n))
	types := lo.Uniq(lo.FlatMap(in.LaunchTemplateConfigs, func(c ec2types.FleetLaunchTemplateConfigRequest, _ int) []ec2types.InstanceType {
		return lo.Map(c.Overrides, func(o ec2types.FleetLaunchTemplateOverridesRequest, _ int) ec2types.InstanceType {
			return o.InstanceType
		})
	}))
	setGangOptions(&in, n, len(types) == 1)
	gc.mu.Lock()
	nodeClass, owned := gc.owned[placementGroupOf(&in)]
	gc.mu.Unlock()
	if name := placementGroupOf(&in); owned {
		gang, _, _ := strings.Cut(gk, "|")
		if err := gc.ensurePlacementGroup(ctx, name, gang, nodeClass); err != nil {
			answerAll(members, batchAnswer{err: err})
			return
		}
	}
	if tokens := lo.Map(members, func(m *batchMember, _ int) string { return m.token }); !lo.Contains(tokens, "") {
		sort.Strings(tokens)
		in.ClientToken = aws.String("gang-" + awsutil.ShortHash(strings.Join(tokens, ",")))
	}
	out, err := p.opts.EC2.CreateFleet(ctx, &in)
	if err != nil {
		answerAll(members, batchAnswer{err: err})
		return
	}
	ids := launchedOf(out)
	zones := map[string]bool{}
	for _, fi := range out.Instances {
		if lto := fi.LaunchTemplateAndOverrides; lto != nil && lto.Overrides != nil {
			zones[lo.CoalesceOrEmpty(lo.FromPtr(lto.Overrides.AvailabilityZone), p.opts.Subnets.ZoneOf(lo.FromPtr(lto.Overrides.SubnetId)))] = true
		}
	}
	if len(ids) < n || len(zones) > 1 {
		// Partial (or spread over zones): nothing of it stays, and every
		// member is refused with the fleet's errors (none attributed: all
		// of its options count as refused).
		all := lo.Map(ids, func(l launched, _ int) string { return l.id })
		if err := p.terminateAll(ctx, all); err != nil {
			err = fmt.Errorf("rolling back a partial gang of %d/%d (instances %v), %w", len(ids), n, all, err)
			answerAll(members, batchAnswer{err: err})
			return
		}
		log.FromContext(ctx).Info("gang fleet answered partially; terminated what it launched", "launched", len(ids), "gang", n, "zones", lo.Keys(zones))
		answerAll(members, batchAnswer{out: &ec2.CreateFleetOutput{FleetId: out.FleetId, Errors: out.Errors}})
		return
	}
	// Whole: every member has its instance.
	p.batcher.answerShares(ctx, members, out.FleetId, ids, nil, true)
}

// setGangOptions makes a fleet of n all-or-nothing: MinTargetCapacity n in
// one zone (and of one type when single).
func setGangOptions(in *ec2.CreateFleetInput, n int, single bool) {
	minCount, oneZone, oneType := aws.Int32(int32(n)), lo.ToPtr(true), lo.ToPtr(single)
	// A copy of the options (new ones when unset): in may share them.
	if in.TargetCapacitySpecification.DefaultTargetCapacityType == ec2types.DefaultTargetCapacityTypeSpot {
		o := lo.FromPtr(in.SpotOptions)
		o.MinTargetCapacity, o.SingleAvailabilityZone, o.SingleInstanceType = minCount, oneZone, oneType
		in.SpotOptions = &o
		return
	}
	o := lo.FromPtr(in.OnDemandOptions)
	o.MinTargetCapacity, o.SingleAvailabilityZone, o.SingleInstanceType = minCount, oneZone, oneType
	in.OnDemandOptions = &o
}

// Placement groups: a gang whose instance types all support EFA (the
// catalog's EFA count) launches into a cluster placement group created for
// it, so its nodes sit close together on the network. The group is named
// after the cluster and the gang attempt, tagged with the cluster, the
// gang and its creation time, and deleted once empty and older than
// PlacementGroupGrace (by the orphan collector, CollectPlacementGroups: an
// account holds 500 groups).
const (
	gangGroupPrefix     = "karpenter-gpu-"
	tagGang             = "karpenter-gpu.io/gang"
	tagCreatedAt        = "karpenter-gpu.io/created-at"
	PlacementGroupGrace = 10 * time.Minute
)

// gangPlacementGroup is the placement group of a gang by the backends'
// rule (cloudprovider.GangPlacementGroup) over its overrides' types; one
// of its own is named after the cluster and the gang attempt.
func (p *Provider) gangPlacementGroup(ctx context.Context, nc *v1alpha1.GPUNodeClass, in *ec2.CreateFleetInput, g cloudprovider.Gang) string {
	var types []string
	for _, c := range in.LaunchTemplateConfigs {
		for _, o := range c.Overrides {
			types = append(types, string(o.InstanceType))
		}
	}
	name, create := cloudprovider.GangPlacementGroup(nc, types, func(it string) bool {
		e, ok := p.opts.InstanceTypes.Get(ctx, it)
		return ok && e.EFACount > 0
	})
	if !create {
		return name
	}
	name = gangGroupPrefix + awsutil.ShortHash(p.opts.ClusterName+"/"+g.Key)
	p.gangs.mu.Lock()
	p.gangs.owned[name] = nodeClassName(nc)
	p.gangs.mu.Unlock()
	return name
}

// withPlacementGroup is in with every override in the placement group.
func withPlacementGroup(in *ec2.CreateFleetInput, name string) *ec2.CreateFleetInput {
	c := *in
	c.LaunchTemplateConfigs = lo.Map(in.LaunchTemplateConfigs, func(cfg ec2types.FleetLaunchTemplateConfigRequest, _ int) ec2types.FleetLaunchTemplateConfigRequest {
		cfg.Overrides = lo.Map(cfg.Overrides, func(o ec2types.FleetLaunchTemplateOverridesRequest, _ int) ec2types.FleetLaunchTemplateOverridesRequest {
			o.Placement = &ec2types.Placement{GroupName: aws.String(name)}
			return o
		})
		return cfg
	})
	return &c
}

// placementGroupOf is the placement group a fleet's overrides name.
func placementGroupOf(in *ec2.CreateFleetInput) string {
	for _, c := range in.LaunchTemplateConfigs {
		for _, o := range c.Overrides {
			if o.Placement != nil && lo.FromPtr(o.Placement.GroupName) != "" {
				return lo.FromPtr(o.Placement.GroupName)
			}
		}
	}
	return ""
}

// ensurePlacementGroup creates a gang's cluster placement group unless it
// exists.
func (gc *gangCollector) ensurePlacementGroup(ctx context.Context, name, gang, nodeClass string) error {
	p := gc.p
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	tags := awsutil.OwnedTags(p.opts.ClusterName, map[string]string{tagGang: gang, tagCreatedAt: p.opts.Clock.Now().UTC().Format(time.RFC3339)})
	if nodeClass != "" {
		tags[cloudprovider.TagNodeClass] = nodeClass
	}
	_, err := p.opts.EC2.CreatePlacementGroup(cctx, &ec2.CreatePlacementGroupInput{
		GroupName: aws.String(name), Strategy: ec2types.PlacementStrategyCluster,
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypePlacementGroup, Tags: awsutil.ToEC2Tags(tags)}},
	})
	if err != nil && awsutil.ErrorCode(err) != "InvalidPlacementGroup.Duplicate" {
		return fmt.Errorf("creating placement group %s for gang %s, %w", name, gang, err)
	}
	return nil
}

// CollectPlacementGroups deletes the cluster's gang placement groups older
// than PlacementGroupGrace that hold no instance (EC2 refuses to delete one
// that does, and one already gone is fine). It is run by the orphan
// collector (pkg/controllers/orphans, Options.Sweep), after the orphaned
// instances are terminated; a group left now is collected next time.
func (p *Provider) CollectPlacementGroups(ctx context.Context) error {
	gc := p.gangs
	now := p.opts.Clock.Now()
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	out, err := p.opts.EC2.DescribePlacementGroups(cctx, &ec2.DescribePlacementGroupsInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + cloudprovider.TagCluster), Values: []string{p.opts.ClusterName}},
	}})
	if err != nil {
		return fmt.Errorf("listing gang placement groups, %w", err)
	}
	var errs []error
	for _, pg := range out.PlacementGroups {
		tags := lo.SliceToMap(pg.Tags, func(t ec2types.Tag) (string, string) { return lo.FromPtr(t.Key), lo.FromPtr(t.Value) })
		created, err := time.Parse(time.RFC3339, tags[tagCreatedAt])
		if tags[tagGang] == "" || err != nil || now.Sub(created) < PlacementGroupGrace {
			continue
		}
		_, err = p.opts.EC2.DeletePlacementGroup(cctx, &ec2.DeletePlacementGroupInput{GroupName: pg.GroupName})
		switch code := awsutil.ErrorCode(err); {
		case err == nil:
			gc.mu.Lock()
			delete(gc.owned, lo.FromPtr(pg.GroupName))
			gc.mu.Unlock()
			log.FromContext(ctx).Info("deleted an empty gang placement group", "placementGroup", lo.FromPtr(pg.GroupName), "gang", tags[tagGang])
		case code == "InvalidPlacementGroup.InUse" || code == "InvalidPlacementGroup.Unknown":
		default:
			errs = append(errs, fmt.Errorf("deleting gang placement group %s, %w", lo.FromPtr(pg.GroupName), err))
		}
	}
	return errors.Join(errs...)
}

// efaInterfaces is how many EFA network interfaces a launch attaches: every
// one its instance type supports (the catalog's count) for a member of a
// gang, or for a NodeClaim that requests EFA devices; 0 otherwise.
func efaInterfaces(req *cloudprovider.LaunchRequest, e *catalog.Entry) int {
	if e == nil || e.EFACount <= 0 || req.NodeClaim == nil {
		return 0
	}
	_, gang := cloudprovider.GangOf(req.NodeClaim)
	wants := req.NodeClaim.Spec.Resources.Requests[v1alpha1.ResourceEFA]
	if !gang && wants.IsZero() {
		return 0
	}
	return int(e.EFACount)
}

func nodeClassName(nc *v1alpha1.GPUNodeClass) string {
	if nc == nil {
		return ""
	}
	return nc.Name
}
