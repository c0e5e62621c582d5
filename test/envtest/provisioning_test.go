package envtest_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// gpuNodeClass is a minimal valid GPUNodeClass.
func gpuNodeClass() *v1alpha1.GPUNodeClass { return controlplane.GPUNodeClass() }

// gpuNodePool is a NodePool on nc limited to amd64 (the arm64 g5g types are
// cheapest otherwise and would hide what the tests look at).
func gpuNodePool(nc *v1alpha1.GPUNodeClass, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
	return controlplane.NodePool(nc, append([]karpv1.NodeSelectorRequirementWithMinValues{
		{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
	}, reqs...)...)
}

func gpuPod(gpus int64, cpu, mem string, reqs ...corev1.NodeSelectorRequirement) *corev1.Pod {
	return test.UnschedulablePod(test.PodOptions{
		ResourceRequirements: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem), v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
		},
		NodeRequirements: reqs,
	})
}

// provisionAndLaunch runs core's provisioner for the pending pods, then core's
// NodeClaim lifecycle controller (which calls the provider's Create), and
// returns the launched NodeClaims (coresuite.Core.ProvisionAndLaunch).
func provisionAndLaunch(pods ...*corev1.Pod) []*karpv1.NodeClaim {
	GinkgoHelper()
	return core.ProvisionAndLaunch(ctx, pods...)
}

var _ = Describe("Provisioning GPU pods on the fake fleet", func() {
	var nc *v1alpha1.GPUNodeClass
	BeforeEach(func() {
		nc = core.ResolvedNodeClass(ctx, gpuNodeClass())
	})

	It("launches the cheapest 1-GPU type with its GPU labels and allocatable", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		claims := provisionAndLaunch(gpuPod(1, "2", "8Gi"))
		Expect(claims).To(HaveLen(1))
		c := claims[0]
		Expect(c.StatusConditions().Get(karpv1.ConditionTypeLaunched).IsTrue()).To(BeTrue())
		Expect(c.Status.ProviderID).To(HavePrefix(fake.ProviderIDPrefix))
		// g4dn.xlarge (T4, $0.526/h) is the cheapest amd64 NVIDIA type that holds 2 CPU / 8Gi.
		Expect(c.Labels).To(HaveKeyWithValue(corev1.LabelInstanceTypeStable, "g4dn.xlarge"))
		Expect(c.Labels).To(HaveKeyWithValue(v1alpha1.LabelGPUName, "t4"))
		Expect(c.Labels).To(HaveKeyWithValue(v1alpha1.LabelGPUCount, "1"))
		Expect(c.Labels).To(HaveKeyWithValue(karpv1.CapacityTypeLabelKey, karpv1.CapacityTypeOnDemand))
		Expect(c.Labels).To(HaveKey(corev1.LabelTopologyZone))
		gpus := c.Status.Allocatable[v1alpha1.ResourceNVIDIAGPU]
		Expect(gpus.Value()).To(Equal(int64(1)))
		mem := c.Status.Allocatable[corev1.ResourceMemory]
		Expect(mem.Cmp(resource.MustParse("16Gi"))).To(BeNumerically("<", 0), "allocatable memory must be below raw memory")
	})

	It("honours a Gt requirement on GPU memory (any GPU with more than 40 GiB)", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		claims := provisionAndLaunch(gpuPod(1, "2", "8Gi", corev1.NodeSelectorRequirement{Key: v1alpha1.LabelGPUMemory, Operator: corev1.NodeSelectorOpGt, Values: []string{"40959"}}))
		Expect(claims).To(HaveLen(1))
		// g6e.xlarge (L40S, 45776 MiB) is the cheapest type with more than 40 GiB per GPU.
		Expect(claims[0].Labels).To(HaveKeyWithValue(corev1.LabelInstanceTypeStable, "g6e.xlarge"))
		Expect(claims[0].Labels).To(HaveKeyWithValue(v1alpha1.LabelGPUName, "l40s"))
	})

	It("launches an 8-GPU type for an 8-GPU pod", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		claims := provisionAndLaunch(gpuPod(8, "16", "64Gi"))
		Expect(claims).To(HaveLen(1))
		Expect(claims[0].Labels).To(HaveKeyWithValue(v1alpha1.LabelGPUCount, "8"))
		gpus := claims[0].Status.Allocatable[v1alpha1.ResourceNVIDIAGPU]
		Expect(gpus.Value()).To(Equal(int64(8)))
	})

	It("falls back to the next cheapest offering when capacity is refused, and remembers the refusal", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
			fleet.RefuseCapacity(fake.Offering{InstanceType: "g4dn.xlarge", Zone: z, CapacityType: karpv1.CapacityTypeOnDemand}, 1)
		}
		claims := provisionAndLaunch(gpuPod(1, "2", "8Gi"))
		Expect(claims).To(HaveLen(1))
		// g3s.xlarge ($0.75/h) is next after g4dn.xlarge ($0.526/h) for this pod.
		Expect(claims[0].Labels).To(HaveKeyWithValue(corev1.LabelInstanceTypeStable, "g3s.xlarge"))
		its, err := cloudProvider.GetInstanceTypes(ctx, gpuNodePool(nc))
		Expect(err).ToNot(HaveOccurred())
		g4dn, ok := lo.Find(its, func(it *karpcp.InstanceType) bool { return it.Name == "g4dn.xlarge" })
		Expect(ok).To(BeTrue(), "refused types stay in the catalog")
		Expect(g4dn.Offerings.Available()).To(BeEmpty(), "refused offerings are kept with Available=false")
		Expect(g4dn.Offerings).ToNot(BeEmpty())
	})

	It("keeps CPU-only pods off GPU types", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc, karpv1.NodeSelectorRequirementWithMinValues{Key: v1alpha1.LabelGPUCount, Operator: corev1.NodeSelectorOpExists}))
		cpuPod := test.UnschedulablePod(test.PodOptions{
			ResourceRequirements: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
			NodeRequirements:     []corev1.NodeSelectorRequirement{{Key: v1alpha1.LabelGPUCount, Operator: corev1.NodeSelectorOpDoesNotExist}},
		})
		Expect(provisionAndLaunch(cpuPod)).To(BeEmpty())
	})

	It("terminates the instance when the NodeClaim is deleted", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		claims := provisionAndLaunch(gpuPod(1, "2", "8Gi"))
		Expect(claims).To(HaveLen(1))
		Expect(cloudProvider.Delete(ctx, claims[0])).To(Succeed())
		_, err := cloudProvider.Get(ctx, claims[0].Status.ProviderID)
		Expect(err).To(HaveOccurred())
		Expect(cloudProvider.Delete(ctx, claims[0])).To(MatchError(ContainSubstring("terminated")))
	})
})
