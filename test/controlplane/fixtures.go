package controlplane

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
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
