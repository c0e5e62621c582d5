package packing

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Models reports whether the packer can place pod on new capacity without
// core's scheduler: a pod that requests an accelerator and carries none of
// the constraints the packer leaves to core (pod affinity, topology spread,
// host ports, volumes, DRA). Accelerators are v1alpha1.UsesAccelerator's.
func Models(p *corev1.Pod) bool {
	return v1alpha1.UsesAccelerator(p) && podUnsupported(p) == ""
}

// PodsPlan is PackPods' answer.
type PodsPlan struct {
	NodeClaims []*scheduling.NodeClaim
	Cost       float64 // $/h, each NodeClaim at its cheapest launchable offering
	// Rejected are the pods PackPods leaves to core's scheduler, with why.
	Rejected map[*corev1.Pod]string
}

// PackPods is the packer's one door for planning new capacity: new
// NodeClaims for pending pods of one NodePool without core's scheduler or,
// with Options.Proposed, a cheaper re-plan of the NodeClaims core's
// scheduler proposed for them (same packing and NodeClaim construction).
// Its callers: the provisioning loop's direct path and the
// ProvisioningRequest plans (both through provisioning.PackPending, which
// walks the NodePools), the re-plan of core's batch
// (provisioning.RefineResults), the repack and idle-GPU controllers, the
// simulator and benchmarks. Without Options.Proposed it knows
// nothing of existing or in-flight nodes, so a caller that has them must
// place pods there first (core's Solve does). Pods with constraints the
// packer does not model, that do not tolerate the template's taints, whose
// requirements conflict with the template, or that no type holds are
// returned in Rejected. Options.NodePools and InstanceTypes are not used
// (np and its are).
func PackPods(np *karpv1.NodePool, its []*cloudprovider.InstanceType, pods []*corev1.Pod, opts Options) PodsPlan {
	if len(opts.Proposed) > 0 {
		return replan(np, its, pods, opts)
	}
	plan := PodsPlan{Rejected: map[*corev1.Pod]string{}}
	pp, reason := newPoolPacker(np, its, opts)
	if pp == nil {
		for _, p := range pods {
			plan.Rejected[p] = reason
		}
		return plan
	}
	var ok []*corev1.Pod
	for _, p := range pods {
		if r := podUnsupported(p); r != "" {
			plan.Rejected[p] = r
			continue
		}
		if err := pp.taints.ToleratesPod(p); err != nil {
			plan.Rejected[p] = "does not tolerate the NodePool taints"
			continue
		}
		if err := pp.tmpl.Requirements.Compatible(podRequirements(p, opts.IgnorePreferences), kscheduling.AllowUndefinedWellKnownLabels); err != nil {
			plan.Rejected[p] = "requirements incompatible with the NodePool"
			continue
		}
		ok = append(ok, p)
	}
	base := *pp.tmpl
	base.Annotations = maps.Clone(base.Annotations)
	if base.Annotations == nil {
		base.Annotations = map[string]string{}
	}
	// As core's addToNewNodeClaim records for a NodeClaim without relaxed minValues.
	base.Annotations[karpv1.NodeClaimMinValuesRelaxedAnnotationKey] = "false"
	ncs, cost, unplaced, reason := pp.pack(&base, ok, nil)
	if reason != "" {
		for _, p := range ok {
			plan.Rejected[p] = reason
		}
		return plan
	}
	for _, p := range unplaced {
		plan.Rejected[p] = "no instance type holds the pod within the limits"
	}
	plan.NodeClaims, plan.Cost = ncs, cost
	return plan
}
