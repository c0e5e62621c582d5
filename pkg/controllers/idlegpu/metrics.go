package idlegpu

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
)

var (
	// RemovalsTotal counts idle GPU nodes removed.
	RemovalsTotal = gpumetrics.NewCounterVec("idle", "removals_total", "Idle GPU nodes removed by the idle-GPU controller, by NodePool and instance type.", gpumetrics.LabelNodePool, gpumetrics.LabelInstanceType)
	// IdleGPUHoursReclaimed sums GPUs × idle time of removed nodes: the
	// GPU-hours each node had already wasted when it was removed, a lower
	// bound on what removal saves (the node would have billed at least
	// that much again had it stayed as long once more).
	IdleGPUHoursReclaimed = gpumetrics.NewCounterVec("idle", "gpu_hours_reclaimed_total", "GPUs × idle hours of GPU nodes at the time the idle-GPU controller removed them.", gpumetrics.LabelNodePool)
)

func removedEvent(nc *karpv1.NodeClaim, gpus int64, idle time.Duration) events.Event {
	return events.Event{
		InvolvedObject: nc, Type: corev1.EventTypeNormal, Reason: "IdleGPUNodeRemoved",
		Message:      fmt.Sprintf("No pod requested an accelerator for %s; removing node with %d GPUs (%.2f idle GPU-hours)", idle.Round(time.Second), gpus, float64(gpus)*idle.Hours()),
		DedupeValues: []string{string(nc.UID)},
	}
}

func blockedEvent(nc *karpv1.NodeClaim, reason string) events.Event {
	return events.Event{
		InvolvedObject: nc, Type: corev1.EventTypeNormal, Reason: "IdleGPUNodeBlocked",
		Message:       "Idle GPU node kept: " + reason,
		DedupeValues:  []string{string(nc.UID), reason},
		DedupeTimeout: 10 * time.Minute,
	}
}

var (
	// NodeWastedUSD is the money a GPU node protected by the break-even
	// rule has wasted since it became reclaimable.
	NodeWastedUSD = gpumetrics.NewGaugeVec("", "node_wasted_usd", "Dollars a GPU node has billed beyond a right-sized set of nodes for its pods since it became reclaimable (break-even protection).", gpumetrics.LabelNodePool, gpumetrics.LabelNodeClaim)
	// NodeEvictionCostUSD is what evicting the node's GPU pods would cost
	// now (lost work since checkpoints, replica restarts).
	NodeEvictionCostUSD = gpumetrics.NewGaugeVec("", "eviction_cost_usd", "Dollars of GPU work that evicting a node's GPU pods would lose now (batch: work since the last checkpoint; service: restart time).", gpumetrics.LabelNodePool, gpumetrics.LabelNodeClaim)
	// ProtectionsTotal counts protection changes by outcome (protected,
	// released past break-even, unprotected when the GPU work ended).
	ProtectionsTotal = gpumetrics.NewCounterVec("", "protection_changes_total", "Changes of GPU-work protection (do-not-disrupt) on GPU nodes, by NodePool and outcome: protected, released (past break-even), unprotected (GPU work ended or protection off).", gpumetrics.LabelNodePool, gpumetrics.LabelOutcome)
)

func releasedEvent(nc *karpv1.NodeClaim, wasted float64, e economics) events.Event {
	return events.Event{
		InvolvedObject: nc, Type: corev1.EventTypeNormal, Reason: "GPUNodeReleased",
		Message: fmt.Sprintf("Released to consolidation: it has wasted $%.2f since it became reclaimable ($%.3f/h vs $%.3f/h right-sized), at least the $%.2f evicting its GPU pods costs",
			wasted, e.price, e.rightSized, e.evictionUSD),
		DedupeValues: []string{string(nc.UID)},
	}
}

func invalidAnnotationEvent(p *corev1.Pod, err error) events.Event {
	return events.Event{
		InvolvedObject: p, Type: corev1.EventTypeWarning, Reason: "InvalidEvictionCostAnnotation",
		Message:       err.Error() + " (the defaults apply)",
		DedupeValues:  []string{string(p.UID)},
		DedupeTimeout: time.Hour,
	}
}

func softCordonEvent(nc *karpv1.NodeClaim, cordoned bool, l *ledger, e economics) events.Event {
	if !cordoned {
		return events.Event{
			InvolvedObject: nc, Type: corev1.EventTypeNormal, Reason: "GPUNodeUncordoned",
			Message:      "Soft cordon removed: the node is right-sized for its pods again, or its GPU work ended",
			DedupeValues: []string{string(nc.UID), "uncordoned"},
		}
	}
	return events.Event{
		InvolvedObject: nc, Type: corev1.EventTypeNormal, Reason: "GPUNodeSoftCordoned",
		Message: fmt.Sprintf("Soft-cordoned (PreferNoSchedule %s) to drain by attrition: it bills $%.3f/h where its pods need $%.3f/h; wasted $%.2f so far",
			v1alpha1.TaintKeyDraining, e.price, e.rightSized, l.wasted),
		DedupeValues: []string{string(nc.UID), "cordoned"},
	}
}
