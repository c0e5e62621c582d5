package v1alpha1

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Drain by attrition (spec.gpu.disruption.drainByAttrition): the soft
// cordon karpenter-gpu puts on a node the break-even rule finds
// reclaimable, and the mark the provisioning loop leaves when it lifts the
// cordon because a pending pod needs the node's free capacity.
const (
	// TaintKeyDraining is the key of the soft cordon.
	TaintKeyDraining = Group + "/draining"
	// AnnotationUncordonedAt (RFC 3339) records when the provisioning loop
	// lifted the soft cordon; the node is not soft-cordoned again for
	// UncordonHoldOff after it.
	AnnotationUncordonedAt = Group + "/uncordoned-at"
	// UncordonHoldOff is how long a node whose soft cordon was lifted for
	// a pending pod stays uncordoned (the pod is bound well within it).
	UncordonHoldOff = 10 * time.Minute
)

// DrainingTaint is the soft cordon: PreferNoSchedule, so kube-scheduler
// prefers other nodes but may still bind a pod here when nothing else
// fits; no running pod is affected.
var DrainingTaint = corev1.Taint{Key: TaintKeyDraining, Effect: corev1.TaintEffectPreferNoSchedule}

// SoftCordoned reports whether the node carries the soft cordon.
func SoftCordoned(n *corev1.Node) bool {
	for i := range n.Spec.Taints {
		if n.Spec.Taints[i].MatchTaint(&DrainingTaint) {
			return true
		}
	}
	return false
}

// RecentlyUncordoned reports whether the provisioning loop lifted the
// node's soft cordon less than UncordonHoldOff before now.
func RecentlyUncordoned(n *corev1.Node, now time.Time) bool {
	at, err := time.Parse(time.RFC3339, n.Annotations[AnnotationUncordonedAt])
	return err == nil && now.Sub(at) < UncordonHoldOff
}

// AnnotationProtectedGPUWork marks a karpenter.sh/do-not-disrupt annotation
// as set by break-even protection (pkg/controllers/idlegpu), so it is
// removed again when no longer needed and a user's own annotation is never
// touched.
const AnnotationProtectedGPUWork = Group + "/protected-gpu-work"

// Repacking moves (spec.gpu.disruption.repack): the state of a move lives in
// annotations, so a restarted controller picks it up where it was.
const (
	// AnnotationRepackReplacements, on the NodeClaim being repacked, lists
	// (comma-separated) the NodeClaims launched to replace it.
	AnnotationRepackReplacements = Group + "/repack-replacements"
	// AnnotationRepackStartedAt (RFC 3339), on the NodeClaim being
	// repacked, is when its replacements were launched.
	AnnotationRepackStartedAt = Group + "/repack-started-at"
	// AnnotationRepackPods, on the NodeClaim being repacked, identifies the
	// pods the move was planned for; the move is abandoned if they change.
	AnnotationRepackPods = Group + "/repack-pods"
	// AnnotationRepackOf, on a replacement NodeClaim (and its Node), names
	// the NodeClaim it replaces; the replacement carries
	// karpenter.sh/do-not-disrupt until the move is over.
	AnnotationRepackOf = Group + "/repack-of"
	// AnnotationRepackCompletedAt (RFC 3339), on a replacement, is when the
	// replaced node was deleted.
	AnnotationRepackCompletedAt = Group + "/repack-completed-at"
)
