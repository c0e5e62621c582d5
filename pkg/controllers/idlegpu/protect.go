package idlegpu

import (
	"context"
	"fmt"

	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// AnnotationProtected marks a karpenter.sh/do-not-disrupt annotation as set
// by this controller, so it is removed again when the GPU work ends and a
// user's own annotation is never touched.
const AnnotationProtected = v1alpha1.Group + "/protected-gpu-work"

// protect shields nodes running GPU pods from voluntary disruption as their
// GPUNodeClass asks (gpu.disruption.protection): BreakEven (default) while
// waiting has cost less than evicting would (breakeven.go), Always while any
// GPU pod runs, Never not at all. do-not-disrupt is the one knob core
// honours for all its voluntary disruption methods. Expiration, spot
// interruption and repair still apply; a user's own do-not-disrupt is never
// touched.
func (c *Controller) protect(ctx context.Context, gn gpuNode, np *karpv1.NodePool) error {
	mode, percent := gn.nodeClass.GPUWorkProtection()
	want := false
	var l *ledger
	var e economics
	switch {
	case !gn.hasGPUWork || mode == v1alpha1.ProtectionNever:
		c.forget(gn.nodeClaim.Name)
	case mode == v1alpha1.ProtectionAlways:
		c.forget(gn.nodeClaim.Name)
		want = true
	default:
		e = c.economicsOf(ctx, gn, np)
		want, l = c.breakEven(gn, e, percent)
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
	if want == ours || (want && annotated) {
		return nil
	}
	stored := gn.node.DeepCopy()
	if want {
		gn.node.Annotations = lo.Assign(gn.node.Annotations, map[string]string{karpv1.DoNotDisruptAnnotationKey: "true", AnnotationProtected: "true"})
	} else {
		delete(gn.node.Annotations, karpv1.DoNotDisruptAnnotationKey)
		delete(gn.node.Annotations, AnnotationProtected)
	}
	if err := c.kubeClient.Patch(ctx, gn.node, client.MergeFrom(stored)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("patching protection of node %s, %w", gn.node.Name, err)
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
	return nil
}

// forget drops a node's break-even account.
func (c *Controller) forget(name string) {
	c.mu.Lock()
	delete(c.ledgers, name)
	c.mu.Unlock()
}
