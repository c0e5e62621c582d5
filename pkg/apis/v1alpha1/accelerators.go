package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/karpenter/pkg/utils/resources"
)

// AcceleratorResources are the extended resources that make a pod
// accelerator (GPU) work and a node an accelerator node: every controller,
// metric, the packer and the simulator count these and only these.
var AcceleratorResources = []corev1.ResourceName{ResourceNVIDIAGPU, ResourceAMDGPU, ResourceNeuron, ResourceGaudi}

// IsAcceleratorResource reports whether name is one of AcceleratorResources.
func IsAcceleratorResource(name corev1.ResourceName) bool {
	for _, r := range AcceleratorResources {
		if r == name {
			return true
		}
	}
	return false
}

// Accelerators is the number of accelerators in a resource list (a node's
// or NodeClaim's capacity or allocatable), summed over AcceleratorResources.
func Accelerators(rl corev1.ResourceList) int64 {
	var n int64
	for _, r := range AcceleratorResources {
		if q, ok := rl[r]; ok {
			n += q.Value()
		}
	}
	return n
}

// PodAccelerators is the number of accelerators a pod uses, summed over
// AcceleratorResources. It is the one rule, decided once:
//
//   - Counted as kube-scheduler counts a pod's extended resources: from its
//     effective requests (resources.Ceiling: the larger of the largest init
//     container and the sum of the app and sidecar containers, plus
//     overhead), which is also what Karpenter core's scheduler packs by.
//   - Extended resources cannot be overcommitted: the API server rejects a
//     container whose request differs from its limit and defaults a missing
//     request to the limit. A resource with a limit and no request (a pod
//     object that never went through the API server, as in unit tests)
//     therefore counts its limit, as the API server would have defaulted it.
func PodAccelerators(p *corev1.Pod) int64 {
	ceiling := resources.Ceiling(p)
	var n int64
	for _, r := range AcceleratorResources {
		if q, ok := ceiling.Requests[r]; ok && !q.IsZero() {
			n += q.Value()
			continue
		}
		if q, ok := ceiling.Limits[r]; ok {
			n += q.Value()
		}
	}
	return n
}

// UsesAccelerator reports whether a pod uses any accelerator
// (PodAccelerators > 0).
func UsesAccelerator(p *corev1.Pod) bool { return PodAccelerators(p) > 0 }
