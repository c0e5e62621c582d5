package cloudprovider

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
)

// MaxLaunchOptions bounds the options sent in one launch request (EC2
// CreateFleet accepts a limited number of overrides). Options past it are
// reached on the next provisioning loop once the cheaper ones are marked
// unavailable.
const MaxLaunchOptions = 60

// candidate pairs a launch option with the instance type it belongs to.
type candidate struct {
	LaunchOption
	instanceType *karpcp.InstanceType
}

// LaunchOptions returns the options a NodeClaim may launch on, in the order
// Create tries them: by CompareLaunch (reserved first, then cheapest), then
// by name and zone for determinism. Only available offerings of types that
// satisfy the NodeClaim's requirements and hold its requests are returned.
func LaunchOptions(nodeClaim *karpv1.NodeClaim, its []*karpcp.InstanceType) ([]LaunchOption, error) {
	cands, err := launchCandidates(nodeClaim, its)
	return lo.Map(cands, func(c candidate, _ int) LaunchOption { return c.LaunchOption }), err
}

func launchCandidates(nodeClaim *karpv1.NodeClaim, its []*karpcp.InstanceType) ([]candidate, error) {
	reqs := scheduling.NewNodeSelectorRequirementsWithMinValues(nodeClaim.Spec.Requirements...)
	compatible := lo.Filter(its, func(it *karpcp.InstanceType, _ int) bool {
		return reqs.IsCompatible(it.Requirements, scheduling.AllowUndefinedWellKnownLabels) &&
			resources.Fits(nodeClaim.Spec.Resources.Requests, it.Allocatable()) &&
			it.Offerings.Launchable().HasCompatible(reqs)
	})
	if reqs.HasMinValues() {
		if _, unsatisfied, err := karpcp.InstanceTypes(compatible).SatisfiesMinValues(reqs); err != nil {
			return nil, fmt.Errorf("minValues not satisfiable by available instance types %v, %w", unsatisfied, err)
		}
	}
	var cands []candidate
	for _, it := range compatible {
		for _, o := range it.Offerings.Launchable().Compatible(reqs) {
			cands = append(cands, candidate{
				LaunchOption: LaunchOption{InstanceType: it.Name, Zone: o.Zone(), CapacityType: o.CapacityType(), ReservationID: o.ReservationID(), Price: o.Price},
				instanceType: it,
			})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if c := CompareLaunch(a.CapacityType, a.Price, b.CapacityType, b.Price); c != 0 {
			return c < 0
		}
		if a.InstanceType != b.InstanceType {
			return a.InstanceType < b.InstanceType
		}
		return a.Zone < b.Zone
	})
	return cands, nil
}

func (c *CloudProvider) launch(ctx context.Context, nodeClaim *karpv1.NodeClaim, nodeClass *v1alpha1.GPUNodeClass, its []*karpcp.InstanceType) (*karpv1.NodeClaim, error) {
	cands, err := launchCandidates(nodeClaim, its)
	if err != nil {
		return nil, karpcp.NewInsufficientCapacityError(err)
	}
	if len(cands) == 0 {
		return nil, karpcp.NewInsufficientCapacityError(fmt.Errorf("no available offering satisfies the NodeClaim's requirements and requests"))
	}
	cands = lo.Slice(cands, 0, MaxLaunchOptions)
	res, err := c.backend.Launch(ctx, &LaunchRequest{
		NodeClaim:   nodeClaim,
		NodeClass:   nodeClass,
		Options:     lo.Map(cands, func(c candidate, _ int) LaunchOption { return c.LaunchOption }),
		Tags:        c.instanceTags(nodeClaim, nodeClass),
		ClientToken: string(nodeClaim.UID),
	})
	if res != nil {
		for _, r := range res.Refused {
			c.unavailable.MarkUnavailable(r.InstanceType, r.Zone, r.CapacityType)
			gpumetrics.CapacityErrors.WithLabelValues(r.InstanceType, r.Zone, r.CapacityType).Inc()
		}
		if len(res.Refused) > 0 {
			log.FromContext(ctx).Info("offerings refused for capacity", "offerings", strings.Join(lo.Map(res.Refused, func(o LaunchOption, _ int) string { return o.String() }), ","))
		}
	}
	if err != nil {
		var ice *karpcp.InsufficientCapacityError
		if errors.As(err, &ice) {
			return nil, err
		}
		return nil, fmt.Errorf("launching instance, %w", err)
	}
	if res == nil || res.Instance == nil {
		return nil, karpcp.NewInsufficientCapacityError(fmt.Errorf("all %d offerings tried were refused for capacity", len(cands)))
	}
	chosen, ok := lo.Find(cands, func(c candidate) bool {
		return c.InstanceType == res.Instance.InstanceType && c.Zone == res.Instance.Zone && c.CapacityType == res.Instance.CapacityType
	})
	if !ok {
		return nil, fmt.Errorf("backend launched %s/%s/%s, which was not among the options", res.Instance.InstanceType, res.Instance.Zone, res.Instance.CapacityType)
	}
	return c.launchedNodeClaim(nodeClaim, nodeClass, res.Instance, chosen), nil
}

// launchedNodeClaim is what Create returns: the labels, provider ID and
// resources Karpenter's scheduler trusts until the node initializes.
func (c *CloudProvider) launchedNodeClaim(nodeClaim *karpv1.NodeClaim, nodeClass *v1alpha1.GPUNodeClass, inst *Instance, chosen candidate) *karpv1.NodeClaim {
	labels := singleValuedLabels(chosen.instanceType.Requirements)
	labels[corev1.LabelInstanceTypeStable] = inst.InstanceType
	labels[corev1.LabelTopologyZone] = inst.Zone
	labels[karpv1.CapacityTypeLabelKey] = inst.CapacityType
	// A type with a single reservation carries its ID as a single-valued
	// requirement; only a reserved launch may be labelled with it.
	delete(labels, karpcp.ReservationIDLabel)
	if inst.ReservationID != "" {
		labels[karpcp.ReservationIDLabel] = inst.ReservationID
	}
	return &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:        nodeClaim.Name,
			Labels:      labels,
			Annotations: map[string]string{AnnotationNodeClassHash: NodeClassHash(nodeClass)},
		},
		Status: karpv1.NodeClaimStatus{
			ProviderID:  c.backend.ProviderID(inst),
			ImageID:     inst.ImageID,
			Capacity:    chosen.instanceType.Capacity,
			Allocatable: chosen.instanceType.Allocatable(),
		},
	}
}

func (c *CloudProvider) instanceTags(nodeClaim *karpv1.NodeClaim, nodeClass *v1alpha1.GPUNodeClass) map[string]string {
	tags := lo.Assign(nodeClass.Spec.Tags, map[string]string{
		TagNodeClaim: nodeClaim.Name,
		TagNodeClass: nodeClass.Name,
		TagCluster:   c.clusterName,
		"Name":       nodeClaim.Name,
	})
	if np, ok := nodeClaim.Labels[karpv1.NodePoolLabelKey]; ok {
		tags[TagNodePool] = np
	}
	return tags
}
