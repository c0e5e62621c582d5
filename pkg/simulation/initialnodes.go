package simulation

// A cluster's existing Karpenter nodes as the simulation's starting fleet
// (simulator preview --nodes): each becomes, before any pod arrives, a
// NodeClaim of the workload's NodePool built by core's own NodeClaim
// template (labels, NodePool hash annotations, owner reference), pinned to
// the node's instance type, zone and capacity type; core's lifecycle
// controller launches it on the fake fleet (priced from the catalog or
// --prices) and the registrar registers its Node, so the policy's
// disruption controllers may consolidate it like any node they launched.

import (
	"fmt"
	"strings"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	corescheduling "sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// InitialNode is a node the cluster runs when the simulation starts.
type InitialNode struct {
	// Name is the cluster's name for it (errors name it).
	Name string
	// InstanceType, Zone ("" for any of the fleet's) and CapacityType
	// ("" for on-demand) pin what is launched.
	InstanceType, Zone, CapacityType string
	// Labels are the node's labels: those no controller derives (the
	// cluster's NodePool template's, e.g. team: research) go on its
	// NodeClaim, so pods selecting them still fit it; the simulated
	// NodePool does not launch them elsewhere.
	Labels map[string]string
}

// derivedLabelDomains are label domains a node's controllers, kubelet or
// cloud provider set: not carried from an existing node to its NodeClaim.
var derivedLabelDomains = []string{"kubernetes.io", "k8s.io", "amazonaws.com", v1alpha1.AWSGroup, v1alpha1.Group}

// customLabels are the labels of an existing node that its NodePool's
// template gave it (neither well known, restricted nor derived).
func customLabels(labels map[string]string) map[string]string {
	return lo.PickBy(labels, func(k, _ string) bool {
		if karpv1.WellKnownLabels.Has(k) || karpv1.IsRestrictedLabel(k) != nil || karpv1.RestrictedLabels.Has(k) {
			return false
		}
		if _, normalized := karpv1.NormalizedLabels[k]; normalized {
			return false
		}
		d := karpv1.GetLabelDomain(k)
		return !lo.ContainsBy(derivedLabelDomains, func(r string) bool { return d == r || strings.HasSuffix(d, "."+r) })
	})
}

// InitialNodeError says why the simulation cannot start an initial node:
// the NodePool does not allow it, or the catalog has no launchable
// offering of it.
type InitialNodeError struct {
	Node   string
	Reason string
}

func (e *InitialNodeError) Error() string {
	return fmt.Sprintf("existing node %s: %s", e.Node, e.Reason)
}

// startInitialNodes creates the NodeClaims of cfg.InitialNodes in the
// workload's first NodePool and lets the controllers launch them.
func (e *engine) startInitialNodes() error {
	if len(e.cfg.InitialNodes) == 0 {
		return nil
	}
	np := &karpv1.NodePool{}
	if err := e.kube.Get(e.ctx, client.ObjectKeyFromObject(e.w.NodePools[0]), np); err != nil {
		return err
	}
	its, err := e.cp.GetInstanceTypes(e.ctx, np)
	if err != nil {
		return fmt.Errorf("instance types of NodePool %q, %w", np.Name, err)
	}
	e.as("cluster")
	for _, n := range e.cfg.InitialNodes {
		ct := lo.CoalesceOrEmpty(n.CapacityType, karpv1.CapacityTypeOnDemand)
		pin := scheduling.NewRequirements(
			scheduling.NewRequirement(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, n.InstanceType),
			scheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, ct))
		if n.Zone != "" {
			pin.Add(scheduling.NewRequirement(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, n.Zone))
		}
		nct := corescheduling.NewNodeClaimTemplate(np)
		if err := nct.Requirements.Compatible(pin, scheduling.AllowUndefinedWellKnownLabels); err != nil {
			return &InitialNodeError{Node: n.Name, Reason: fmt.Sprintf("NodePool %s does not allow %s %s%s: %v", np.Name, n.InstanceType, ct, lo.Ternary(n.Zone != "", " in "+n.Zone, ""), err)}
		}
		nct.Requirements.Add(pin.Values()...)
		it, ok := lo.Find(its, func(it *cloudprovider.InstanceType) bool { return it.Name == n.InstanceType })
		if !ok {
			return &InitialNodeError{Node: n.Name, Reason: fmt.Sprintf("%s is not among the instance types of NodePool %s's node class in %s", n.InstanceType, np.Name, e.cfg.Region)}
		}
		if err := it.Requirements.Intersects(nct.Requirements); err != nil {
			return &InitialNodeError{Node: n.Name, Reason: fmt.Sprintf("NodePool %s cannot launch %s %s%s: %v", np.Name, n.InstanceType, ct, lo.Ternary(n.Zone != "", " in "+n.Zone, ""), err)}
		}
		if len(it.Offerings.Launchable().Compatible(nct.Requirements)) == 0 {
			return &InitialNodeError{Node: n.Name, Reason: fmt.Sprintf("no launchable offering of %s %s%s in %s", n.InstanceType, ct, lo.Ternary(n.Zone != "", " in "+n.Zone, ""), e.cfg.Region)}
		}
		nct.InstanceTypeOptions = cloudprovider.InstanceTypes{it}
		nc := nct.ToNodeClaim()
		nc.Labels = lo.Assign(customLabels(n.Labels), nc.Labels)
		if err := e.kube.Create(e.ctx, nc); err != nil {
			return fmt.Errorf("creating the NodeClaim of existing node %s, %w", n.Name, err)
		}
		e.debugf("initial node %s: NodeClaim %s (%s)", n.Name, nc.Name, strings.Join([]string{n.InstanceType, n.Zone, ct}, " "))
	}
	return e.settle()
}
