package envtest_test

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

// runningGPUNode is an on-demand NodeClaim and Node of a GPUNodeClass
// NodePool in us-east-1a, with the type's GPUs and a CPU allocatable one
// below its CPUs (the specs of break-even protection, repacking and
// attrition place pods on it directly).
func runningGPUNode(nc *v1alpha1.GPUNodeClass, np *karpv1.NodePool, instanceType string, gpus, cpus int64) (*karpv1.NodeClaim, *corev1.Node) {
	resources := func(cpu int64) corev1.ResourceList {
		return corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI),
			corev1.ResourceCPU: *resource.NewQuantity(cpu, resource.DecimalSI), corev1.ResourcePods: resource.MustParse("100")}
	}
	return test.NodeClaimAndNode(karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{karpv1.NodePoolLabelKey: np.Name, corev1.LabelInstanceTypeStable: instanceType,
			corev1.LabelTopologyZone: "us-east-1a", karpv1.CapacityTypeLabelKey: karpv1.CapacityTypeOnDemand}},
		Spec: karpv1.NodeClaimSpec{NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: nc.Name}},
		Status: karpv1.NodeClaimStatus{ProviderID: "fake://us-east-1a/i-" + test.RandomName(),
			Capacity: resources(cpus), Allocatable: resources(cpus - 1)},
	})
}

// gpuWorkPod is a pod bound to the node requesting cpu, memory and GPUs,
// whose eviction costs evictionUSD dollars (karpenter-gpu.io/eviction-cost).
func gpuWorkPod(node *corev1.Node, cpu, mem string, gpus int64, evictionUSD string) *corev1.Pod {
	return test.Pod(test.PodOptions{NodeName: node.Name,
		ObjectMeta:  metav1.ObjectMeta{Annotations: map[string]string{evictioncost.AnnotationEvictionCost: evictionUSD}},
		Tolerations: []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists}},
		ResourceRequirements: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem), v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)}}})
}
