package idlegpu

import (
	"context"
	"fmt"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
)

// AnnotationProtected marks a karpenter.sh/do-not-disrupt annotation as set
// by this controller, so it is removed again when the GPU work ends and a
// user's own annotation is never touched.
const AnnotationProtected = v1alpha1.AnnotationProtectedGPUWork

// protect shields nodes running GPU pods from voluntary disruption as their
// GPUNodeClass asks (gpu.disruption.protection): BreakEven (default) while
// waiting has cost less than evicting would (breakeven.go), Always while any
// GPU pod runs, Never not at all. do-not-disrupt is the one knob core
// honours for all its voluntary disruption methods. Expiration, spot
// interruption and repair still apply; a user's own do-not-disrupt is never
// touched.
func (c *Controller) protect(ctx context.Context, gn gpuNode, np *karpv1.NodePool) (*ledger, economics, error) {
	mode, percent := gn.nodeClass.GPUWorkProtection()
	want := false
	var l *ledger
	var e economics
	if repack.IsReplacement(gn.node) || repack.IsReplacement(gn.nodeClaim) {
		// Held by its repacking move (pkg/controllers/repack) until it is over.
		return nil, e, nil
	}
	switch {
	case !gn.hasGPUWork || mode == v1alpha1.ProtectionNever:
		c.forget(gn.nodeClaim.Name)
	case mode == v1alpha1.ProtectionAlways:
		c.forget(gn.nodeClaim.Name)
		want = true
	default:
		e = c.economicsOf(ctx, gn, np)
		want, l = c.breakEven(gn, e, percent)
		c.fleetBreakEven(gn, e, percent)
	}
	if repack.InFlight(gn.nodeClaim) {
		// Being repacked: core's consolidation must not act on it meanwhile.
		want = true
	}
	pool := gn.nodeClaim.Labels[karpv1.NodePoolLabelKey]
	if l != nil {
		NodeWastedUSD.WithLabelValues(pool, gn.nodeClaim.Name).Set(l.wasted)
		NodeEvictionCostUSD.WithLabelValues(pool, gn.nodeClaim.Name).Set(e.evictionUSD)
	} else {
		NodeWastedUSD.DeleteLabelValues(pool, gn.nodeClaim.Name)
		NodeEvictionCostUSD.DeleteLabelValues(pool, gn.nodeClaim.Name)
	}
	ours := gn.node.Annotations[AnnotationProtected] == "true"
	_, annotated := gn.node.Annotations[karpv1.DoNotDisruptAnnotationKey]
	changeProtection := !(want == ours || (want && annotated))
	// Drain by attrition: soft-cordon the node while the rule finds it
	// reclaimable (or has released it) and it still runs GPU work, unless
	// the provisioning loop just lifted the cordon for a pending pod.
	cordon := mode == v1alpha1.ProtectionBreakEven && gn.nodeClass.DrainByAttrition() && gn.hasGPUWork &&
		l != nil && (l.rate > 0 || l.released) && !v1alpha1.RecentlyUncordoned(gn.node, c.clk.Now())
	if held := v1alpha1.RecentlyUncordoned(gn.node, c.clk.Now()); held && !cordon && l != nil && (l.rate > 0 || l.released) {
		// Re-cordon when the hold-off ends: a time NextCheck must report,
		// since nothing in the cluster changes then.
		at, _ := time.Parse(time.RFC3339, gn.node.Annotations[v1alpha1.AnnotationUncordonedAt])
		c.mu.Lock()
		if end := at.Add(v1alpha1.UncordonHoldOff); l.nextCheck.IsZero() || end.Before(l.nextCheck) {
			l.nextCheck = end
		}
		c.mu.Unlock()
	}
	changeCordon := cordon != v1alpha1.SoftCordoned(gn.node)
	if !changeProtection && !changeCordon {
		return l, e, nil
	}
	stored := gn.node.DeepCopy()
	if changeProtection {
		if want {
			gn.node.Annotations = lo.Assign(gn.node.Annotations, map[string]string{karpv1.DoNotDisruptAnnotationKey: "true", AnnotationProtected: "true"})
		} else {
			gn.node.Annotations = lo.OmitByKeys(gn.node.Annotations, []string{karpv1.DoNotDisruptAnnotationKey, AnnotationProtected})
		}
	}
	patch := client.MergeFrom(stored)
	if changeCordon {
		// Taints are a list a merge patch replaces whole: lock against
		// concurrent writers (core's disrupted taint, the GPU taint).
		patch = client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{})
		gn.node.Spec.Taints = lo.Reject(gn.node.Spec.Taints, func(t corev1.Taint, _ int) bool { return t.MatchTaint(&v1alpha1.DrainingTaint) })
		if cordon {
			gn.node.Spec.Taints = append(gn.node.Spec.Taints, v1alpha1.DrainingTaint)
		}
	}
	if err := c.kubeClient.Patch(ctx, gn.node, patch); client.IgnoreNotFound(err) != nil {
		return l, e, fmt.Errorf("patching protection of node %s, %w", gn.node.Name, err)
	}
	if changeCordon {
		outcome := lo.Ternary(cordon, "cordoned", "uncordoned")
		gpumetrics.SoftCordonsTotal.WithLabelValues(pool, outcome).Inc()
		c.recorder.Publish(softCordonEvent(gn.nodeClaim, cordon, l, e))
	}
	if !changeProtection {
		return l, e, nil
	}
	switch {
	case want:
		ProtectionsTotal.WithLabelValues(pool, "protected").Inc()
	case l != nil && l.released:
		ProtectionsTotal.WithLabelValues(pool, "released").Inc()
		c.recorder.Publish(releasedEvent(gn.nodeClaim, l.wasted, e))
		log.FromContext(ctx).V(1).Info("releasing GPU node to consolidation past break-even", "NodeClaim", gn.nodeClaim.Name,
			"wasted-usd", l.wasted, "eviction-cost-usd", e.evictionUSD, "price", e.price, "right-sized", e.rightSized)
	default:
		ProtectionsTotal.WithLabelValues(pool, "unprotected").Inc()
	}
	return l, e, nil
}

// forget drops a node's break-even account.
func (c *Controller) forget(name string) {
	c.mu.Lock()
	delete(c.ledgers, name)
	delete(c.fleetLedgers, name)
	c.mu.Unlock()
}
