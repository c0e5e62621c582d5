package controlplane

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

// GPUNodeClass is a GPUNodeClass the CRD accepts, with a random name, for
// the envtest suites: DiscoveryGPUNodeClass of cluster "envtest".
func GPUNodeClass() *v1alpha1.GPUNodeClass {
	return DiscoveryGPUNodeClass("gpu-"+test.RandomName(), "envtest")
}

// DiscoveryGPUNodeClass is a GPUNodeClass named name whose subnet and
// security-group selectors match the tag karpenter.sh/discovery=cluster and
// whose nodes get the role KarpenterNodeRole-<cluster>.
func DiscoveryGPUNodeClass(name, cluster string) *v1alpha1.GPUNodeClass {
	return &v1alpha1.GPUNodeClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.GPUNodeClassSpec{
			SubnetSelectorTerms:        []v1alpha1.SubnetSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": cluster}}},
			SecurityGroupSelectorTerms: []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": cluster}}},
			Role:                       "KarpenterNodeRole-" + cluster,
		},
	}
}

// NodePool is a NodePool with a random name (core's test.NodePool) whose
// nodes come from the GPUNodeClass nc, with the requirements reqs.
func NodePool(nc *v1alpha1.GPUNodeClass, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
	return test.NodePool(karpv1.NodePool{Spec: karpv1.NodePoolSpec{Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
		NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: nc.Name},
		Requirements: reqs,
	}}}})
}

// L4NodePool is the NodePool name of the process suites: amd64 nodes with
// NVIDIA L4 GPUs, plus reqs, from the GPUNodeClass nc, consolidated at once
// (WhenEmptyOrUnderutilized after 0s, every node at a time).
func L4NodePool(name string, nc *v1alpha1.GPUNodeClass, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
	return &karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: karpv1.NodePoolSpec{
			Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
				NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: nc.Name},
				Requirements: append([]karpv1.NodeSelectorRequirementWithMinValues{
					{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
					{Key: v1alpha1.LabelGPUName, Operator: corev1.NodeSelectorOpIn, Values: []string{"l4"}},
				}, reqs...),
			}},
			Disruption: karpv1.Disruption{ConsolidationPolicy: karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized, ConsolidateAfter: karpv1.MustParseNillableDuration("0s"),
				Budgets: []karpv1.Budget{{Nodes: "100%"}}},
		},
	}
}

// GPUNodeClaim is a NodeClaim named name (UID uid-<name>) of the NodePool
// nodePool from the GPUNodeClass "gpu", asking for gpus NVIDIA GPUs, 2 CPUs
// and 8Gi on amd64, plus reqs: what core's provisioner hands the cloud
// provider's Create.
func GPUNodeClaim(name, nodePool string, gpus int64, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodeClaim {
	return &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{karpv1.NodePoolLabelKey: nodePool}},
		Spec: karpv1.NodeClaimSpec{
			NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: "gpu"},
			Requirements: append([]karpv1.NodeSelectorRequirementWithMinValues{
				{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
			}, reqs...),
			Resources: karpv1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"),
				v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI),
			}},
		},
	}
}

// RunningGPUNode is an on-demand NodeClaim and Node of the NodePool np (from
// the GPUNodeClass nc) in us-east-1a, of instanceType with gpus NVIDIA GPUs
// and cpus CPUs (allocatable one below): a node the specs of idle-GPU
// removal, break-even protection, repacking and attrition place pods on
// directly.
func RunningGPUNode(nc *v1alpha1.GPUNodeClass, np *karpv1.NodePool, instanceType string, gpus, cpus int64) (*karpv1.NodeClaim, *corev1.Node) {
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

// GPUWorkPod is a pod bound to node requesting cpu, memory and gpus NVIDIA
// GPUs (tolerating the GPU taint), whose eviction costs evictionUSD dollars
// (karpenter-gpu.io/eviction-cost).
func GPUWorkPod(node *corev1.Node, cpu, mem string, gpus int64, evictionUSD string) *corev1.Pod {
	return test.Pod(test.PodOptions{NodeName: node.Name,
		ObjectMeta:  metav1.ObjectMeta{Annotations: map[string]string{evictioncost.AnnotationEvictionCost: evictionUSD}},
		Tolerations: []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists}},
		ResourceRequirements: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem), v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)}}})
}
