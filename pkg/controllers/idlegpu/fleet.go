package idlegpu

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
)

// Right-sized against the fleet, not the node alone, for repacking. A node
// whose pods fit no cheaper set of new nodes wastes nothing on its own, yet
// eight such 1-GPU nodes may hold pods that one 8-GPU node would hold for
// less: the waste is the fleet's. Per NodePool, the merge factor is
//
//	ρ = cost of the packer's cheapest set of new nodes for all the pool's
//	    GPU-node pods together  /  Σ over its nodes of their own right-sized cost
//
// (at most 1). With repack on, each node keeps a second break-even account
// in which its right-sized cost is scaled by ρ: it is charged its share of
// what merging would save, and once that share adds up to its eviction cost
// it becomes a candidate of the repacking move's merge
// (pkg/controllers/repack). It stays protected from core's consolidation,
// which cannot make the merge (it replaces several nodes by at most one, by
// first-fit): releasing such nodes to core evicts pods for little or no
// saving (measured: designs/online.md).

// fleetFactors computes the merge factor of each NodePool over the GPU
// nodes break-even protection judges (1 when the packer cannot place the
// pool's pods together, or merging saves nothing).
func (c *Controller) fleetFactors(ctx context.Context, snap *snapshot) map[string]float64 {
	type acc struct {
		its  []*karpcp.InstanceType // the pool's, fetched once a poll
		pods []*corev1.Pod
		own  float64
		ok   bool
	}
	pools := map[string]*acc{}
	for _, gn := range snap.gpuNodes {
		if mode, _ := gn.nodeClass.GPUWorkProtection(); mode != v1alpha1.ProtectionBreakEven || !gn.hasGPUWork || !gn.nodeClass.RepackEnabled() ||
			repack.InFlight(gn.nodeClaim) || repack.IsReplacement(gn.node) {
			continue
		}
		name := gn.nodeClaim.Labels[karpv1.NodePoolLabelKey]
		np := snap.nodePools[name]
		if np == nil {
			continue
		}
		a := pools[name]
		if a == nil {
			a = &acc{ok: true}
			pools[name] = a
		}
		if a.its == nil {
			its, err := c.instanceTypes(ctx, np)
			if err != nil {
				a.ok = false
				continue
			}
			a.its = its
		}
		var movable []*corev1.Pod
		for _, p := range gn.pods {
			if !podutils.IsOwnedByDaemonSet(p) && !podutils.IsTerminating(p) {
				movable = append(movable, p)
			}
		}
		rs, ok := c.rightSized(np, a.its, movable)
		if !ok {
			a.ok = false
			continue
		}
		a.own += rs
		a.pods = append(a.pods, movable...)
	}
	out := map[string]float64{}
	for name, a := range pools {
		if !a.ok || a.own <= 0 {
			continue
		}
		together, ok := c.rightSized(snap.nodePools[name], a.its, a.pods)
		if !ok || together >= a.own {
			continue
		}
		out[name] = together / a.own
	}
	return out
}

// mergeFactor is the NodePool's merge factor of this poll (1 if none).
func (c *Controller) mergeFactor(pool string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.merge[pool]; ok && f > 0 && f < 1 {
		return f
	}
	return 1
}

// fleetBreakEven updates the node's account of the fleet's waste (repack
// on, its pool mergeable); otherwise it drops it.
func (c *Controller) fleetBreakEven(gn gpuNode, e economics, percent int32) {
	f := c.mergeFactor(gn.nodeClaim.Labels[karpv1.NodePoolLabelKey])
	if !gn.nodeClass.RepackEnabled() || f >= 1 || e.reason != "" {
		c.mu.Lock()
		delete(c.fleetLedgers, gn.nodeClaim.Name)
		c.mu.Unlock()
		return
	}
	e.rightSized *= f
	c.breakEvenIn(c.fleetLedgers, gn, e, percent)
}

// fleetReleased reports whether the node's fleet account has reached
// break-even.
func (c *Controller) fleetReleased(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.fleetLedgers[name]
	return l != nil && l.released
}
