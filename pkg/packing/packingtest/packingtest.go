// Package packingtest holds the fixtures the tests of pkg/packing and of its
// lower bound (pkg/packing/lowerbound) share.
package packingtest

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Resources is cpu CPUs, memGi GiB of memory, one pod and, when gpus > 0,
// gpus NVIDIA GPUs: a pod's requests, or the allocatable of a node type
// that holds one pod.
func Resources(cpu, memGi, gpus int64) corev1.ResourceList {
	r := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(cpu, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memGi<<30, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(1, resource.DecimalSI),
	}
	if gpus > 0 {
		r[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	return r
}
