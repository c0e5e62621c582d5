package provisioning

import (
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	nodepoolutils "sigs.k8s.io/karpenter/pkg/utils/nodepool"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

// PendingPlan is PackPending's answer.
type PendingPlan struct {
	NodeClaims []*scheduling.NodeClaim
	Cost       float64 // $/h
	// Left are the pods no NodePool's packing accepted, for core's
	// scheduler, with the last reason a pool gave.
	Left map[*corev1.Pod]string
}

// PackPending plans new NodeClaims for pods that no existing or in-flight
// node holds, over opts.NodePools in weight order as core's scheduler tries
// its NodeClaim templates: each pool packs the pods still unplaced with the
// packer's one door for new capacity (packing.PackPods), and a pod stays
// with the first pool that places it. The caller must already have placed
// what fits on existing capacity. The direct path (Packer.PackPending) and
// the ProvisioningRequest controller's atomic plans use it.
func PackPending(pods []*corev1.Pod, opts packing.Options) PendingPlan {
	plan := PendingPlan{Left: map[*corev1.Pod]string{}}
	pools := append([]*karpv1.NodePool(nil), opts.NodePools...)
	nodepoolutils.OrderByWeight(pools)
	todo := pods
	for _, np := range pools {
		if len(todo) == 0 {
			break
		}
		pp := packing.PackPods(np, opts.InstanceTypes[np.Name], todo, opts)
		plan.NodeClaims = append(plan.NodeClaims, pp.NodeClaims...)
		plan.Cost += pp.Cost
		var next []*corev1.Pod
		for _, p := range todo {
			if reason, rejected := pp.Rejected[p]; rejected {
				plan.Left[p] = np.Name + ": " + reason
				next = append(next, p)
				continue
			}
			delete(plan.Left, p)
		}
		todo = next
	}
	if len(pools) == 0 {
		for _, p := range pods {
			plan.Left[p] = "no NodePools"
		}
	}
	return plan
}
