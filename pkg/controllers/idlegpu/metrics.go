package idlegpu

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"
)

var (
	// RemovalsTotal counts idle GPU nodes removed.
	RemovalsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "karpenter_gpu", Subsystem: "idle", Name: "removals_total",
		Help: "Idle GPU nodes removed by the idle-GPU controller, by NodePool and instance type.",
	}, []string{"nodepool", "instance_type"})
	// IdleGPUHoursReclaimed sums GPUs × idle time of removed nodes: the
	// GPU-hours each node had already wasted when it was removed, a lower
	// bound on what removal saves (the node would have billed at least
	// that much again had it stayed as long once more).
	IdleGPUHoursReclaimed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "karpenter_gpu", Subsystem: "idle", Name: "gpu_hours_reclaimed_total",
		Help: "GPUs × idle hours of GPU nodes at the time the idle-GPU controller removed them.",
	}, []string{"nodepool"})
)

func init() {
	crmetrics.Registry.MustRegister(RemovalsTotal, IdleGPUHoursReclaimed)
}

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
