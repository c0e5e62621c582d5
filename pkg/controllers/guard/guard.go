// Package guard is the one rule for the user's protections that
// karpenter-gpu's own disruptions (idle-GPU removal, repacking moves) apply
// as core applies them to its own: a karpenter.sh/do-not-disrupt annotation
// on the NodeClaim or Node that karpenter-gpu did not set, a pod that may
// not be disrupted (its do-not-disrupt, still active if it is a duration),
// and PodDisruptionBudgets that forbid evicting the node's pods.
package guard

import (
	"fmt"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/utils/pdb"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Blocked says why disrupting the node would override the user, if it
// would. pods are the pods bound to the node.
func Blocked(clk clock.Clock, recorder events.Recorder, limits pdb.Limits, nodeClaim *karpv1.NodeClaim, node *corev1.Node, pods []*corev1.Pod) (string, bool) {
	for _, obj := range []client.Object{nodeClaim, node} {
		a := obj.GetAnnotations()
		if _, ok := a[karpv1.DoNotDisruptAnnotationKey]; ok && a[v1alpha1.AnnotationProtectedGPUWork] != "true" {
			return fmt.Sprintf("%s has the %s annotation", obj.GetName(), karpv1.DoNotDisruptAnnotationKey), true
		}
	}
	for _, p := range pods {
		if !podutils.IsDisruptable(p, clk, recorder) {
			return fmt.Sprintf("pod %s/%s may not be disrupted", p.Namespace, p.Name), true
		}
	}
	evictable := lo.Filter(pods, func(p *corev1.Pod, _ int) bool { return podutils.IsEvictable(p, clk, recorder) })
	if keys, ok := limits.CanEvictPods(evictable, clk, recorder); !ok {
		return fmt.Sprintf("PodDisruptionBudget %v blocks eviction", keys), true
	}
	return "", false
}
