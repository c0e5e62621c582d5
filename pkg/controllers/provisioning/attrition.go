package provisioning

import (
	"context"
	"fmt"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
)

// Drain by attrition never causes a launch. Core's scheduler treats the
// soft cordon (PreferNoSchedule karpenter-gpu.io/draining) on an existing
// node as a hard taint, so a pending pod that only fits there would get a
// new NodeClaim while kube-scheduler, for which the taint is a preference,
// binds it to the cordoned node: a phantom launch. Before launching, the
// loop therefore lifts the cordon of every soft-cordoned node that could
// hold one of the pods it is about to launch for, launches nothing this
// round, and lets the pods' 10 s requeue decide again on the uncordoned
// nodes (kube-scheduler binds them there in the meantime).

// liftSoftCordons lifts the soft cordon of each node that could hold one of
// the pods of ncs, and returns how many it lifted.
func (c *Controller) liftSoftCordons(ctx context.Context, ncs []*scheduling.NodeClaim) (int, error) {
	pods := lo.FlatMap(ncs, func(nc *scheduling.NodeClaim, _ int) []*corev1.Pod { return nc.Pods })
	if len(pods) == 0 {
		return 0, nil
	}
	var candidates []*state.StateNode
	for sn := range c.cluster.Nodes() {
		if sn.Node != nil && !sn.MarkedForDeletion() && v1alpha1.SoftCordoned(sn.Node) {
			candidates = append(candidates, sn)
		}
	}
	lifted := 0
	for _, sn := range candidates {
		p, ok := lo.Find(pods, func(p *corev1.Pod) bool { return couldHold(sn, p) })
		if !ok {
			continue
		}
		node := &corev1.Node{}
		if err := c.kube.Get(ctx, client.ObjectKeyFromObject(sn.Node), node); err != nil {
			return lifted, client.IgnoreNotFound(err)
		}
		stored := node.DeepCopy()
		node.Spec.Taints = lo.Reject(node.Spec.Taints, func(t corev1.Taint, _ int) bool { return t.MatchTaint(&v1alpha1.DrainingTaint) })
		node.Annotations = lo.Assign(node.Annotations, map[string]string{v1alpha1.AnnotationUncordonedAt: c.clock.Now().UTC().Format(time.RFC3339)})
		if err := c.kube.Patch(ctx, node, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{})); err != nil {
			return lifted, client.IgnoreNotFound(fmt.Errorf("lifting the soft cordon of node %s, %w", node.Name, err))
		}
		lifted++
		gpumetrics.SoftCordonsTotal.WithLabelValues(node.Labels[karpv1.NodePoolLabelKey], "lifted").Inc()
		c.recorder.Publish(events.Event{
			InvolvedObject: node, Type: corev1.EventTypeNormal, Reason: "GPUNodeSoftCordonLifted",
			Message:      fmt.Sprintf("Soft cordon lifted for %s: pod %s/%s would otherwise need new capacity", v1alpha1.UncordonHoldOff, p.Namespace, p.Name),
			DedupeValues: []string{string(node.UID)},
		})
		log.FromContext(ctx).V(1).Info("lifted soft cordon for a pending pod", "Node", node.Name, "Pod", client.ObjectKeyFromObject(p))
	}
	return lifted, nil
}

// couldHold says whether the node, without its soft cordon, could run the
// pod: its other taints are tolerated, its labels satisfy the pod's node
// selector and required affinity, and its free allocatable holds the pod's
// requests.
func couldHold(sn *state.StateNode, p *corev1.Pod) bool {
	taints := lo.Reject(sn.Node.Spec.Taints, func(t corev1.Taint, _ int) bool { return t.MatchTaint(&v1alpha1.DrainingTaint) })
	if kscheduling.Taints(taints).ToleratesPod(p) != nil {
		return false
	}
	if kscheduling.NewLabelRequirements(sn.Node.Labels).Compatible(kscheduling.NewStrictPodRequirements(p), kscheduling.AllowUndefinedWellKnownLabels) != nil {
		return false
	}
	return resources.Fits(resources.RequestsForPods(p), sn.Available())
}
