package envtest_test

import (
	"regexp"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

var providerIDPattern = regexp.MustCompile(`^aws:///us-east-1[abc]/i-[0-9a-f]+$`)

// gpuNodeClass is the shared minimal GPUNodeClass of the envtest suites
// (its selectors match the "envtest" discovery tag).
func gpuNodeClass() *v1alpha1.GPUNodeClass { return controlplane.GPUNodeClass() }

// gpuNodePool is a NodePool on nc limited to amd64 on-demand nodes.
func gpuNodePool(nc *v1alpha1.GPUNodeClass, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
	return controlplane.NodePool(nc, append([]karpv1.NodeSelectorRequirementWithMinValues{
		{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
		{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}},
	}, reqs...)...)
}

func gpuPod(gpus int64) *corev1.Pod {
	return test.UnschedulablePod(test.PodOptions{ResourceRequirements: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
		Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
	}})
}

// provisionAndLaunch runs core's provisioner, then core's NodeClaim
// lifecycle controller, which calls the provider's Create and so the AWS
// backend's CreateFleet (coresuite.Core.ProvisionAndLaunch).
func provisionAndLaunch(pods ...*corev1.Pod) []*karpv1.NodeClaim {
	GinkgoHelper()
	return core.ProvisionAndLaunch(ctx, pods...)
}

func instanceOf(providerID string) fakeaws.Instance {
	GinkgoHelper()
	inst, ok := lo.Find(srv.Instances(), func(i fakeaws.Instance) bool { return providerID == "aws:///"+i.Zone+"/"+i.ID })
	Expect(ok).To(BeTrue(), "no EC2 instance for %s", providerID)
	return inst
}

var _ = Describe("Provisioning GPU pods on EC2 (fake endpoint)", func() {
	var nc *v1alpha1.GPUNodeClass
	BeforeEach(func() {
		nc = core.ResolvedNodeClass(ctx, gpuNodeClass())
	})

	It("resolves the GPUNodeClass from EC2, SSM and IAM", func() {
		Expect(lo.Map(nc.Status.Subnets, func(s v1alpha1.Subnet, _ int) string { return s.Zone })).To(ConsistOf("us-east-1a", "us-east-1b", "us-east-1c"))
		Expect(nc.Status.SecurityGroups).To(ConsistOf(v1alpha1.SecurityGroup{ID: "sg-nodes", Name: "nodes"}))
		Expect(lo.Map(nc.Status.AMIs, func(a v1alpha1.AMI, _ int) string { return a.ID })).To(ContainElements("ami-nvx86", "ami-nvarm"))
		Expect(srv.InstanceProfiles()).To(HaveKey(nc.Status.InstanceProfile))
	})

	It("launches a NodeClaim with an aws:/// provider ID on the cheapest GPU type", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		claims := provisionAndLaunch(gpuPod(1))
		Expect(claims).To(HaveLen(1))
		c := claims[0]
		Expect(c.StatusConditions().Get(karpv1.ConditionTypeLaunched).IsTrue()).To(BeTrue())
		Expect(c.Status.ProviderID).To(MatchRegexp(providerIDPattern.String()))
		Expect(c.Labels).To(HaveKeyWithValue(corev1.LabelInstanceTypeStable, "g4dn.xlarge"))
		Expect(c.Labels).To(HaveKeyWithValue(v1alpha1.LabelGPUName, "t4"))
		inst := instanceOf(c.Status.ProviderID)
		Expect(inst.InstanceType).To(Equal("g4dn.xlarge"))
		Expect(c.Labels).To(HaveKeyWithValue(corev1.LabelTopologyZone, inst.Zone))
		Expect(inst.Tags).To(HaveKeyWithValue(gpucp.TagNodeClaim, c.Name))
		Expect(inst.Tags).To(HaveKeyWithValue(gpucp.TagCluster, clusterName))
		Expect(c.Status.ImageID).To(Equal("ami-nvx86"))
	})

	It("launches one instance per NodeClaim for several pods", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		claims := provisionAndLaunch(gpuPod(8), gpuPod(8))
		Expect(claims).To(HaveLen(2))
		ids := lo.Map(claims, func(c *karpv1.NodeClaim, _ int) string { return c.Status.ProviderID })
		Expect(lo.Uniq(ids)).To(HaveLen(2))
		for _, c := range claims {
			Expect(c.Labels).To(HaveKeyWithValue(corev1.LabelInstanceTypeStable, "p5.48xlarge"))
			Expect(instanceOf(c.Status.ProviderID).InstanceType).To(Equal("p5.48xlarge"))
		}
	})

	It("falls back when EC2 refuses capacity and remembers the refused offerings", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
			srv.InsufficientCapacity(fakeaws.Offering{InstanceType: "g4dn.xlarge", Zone: z, CapacityType: fakeaws.OnDemand}, "")
		}
		DeferCleanup(func() {
			for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
				srv.InsufficientCapacity(fakeaws.Offering{InstanceType: "g4dn.xlarge", Zone: z, CapacityType: fakeaws.OnDemand}, "-")
			}
		})
		claims := provisionAndLaunch(gpuPod(1))
		Expect(claims).To(HaveLen(1))
		Expect(claims[0].Labels).To(HaveKeyWithValue(corev1.LabelInstanceTypeStable, "g6.xlarge"))
		for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
			Expect(cloudProvider.Unavailable().IsUnavailable("g4dn.xlarge", z, karpv1.CapacityTypeOnDemand)).To(BeTrue())
		}
	})

	It("terminates the instance when the NodeClaim is deleted", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		claims := provisionAndLaunch(gpuPod(1))
		Expect(claims).To(HaveLen(1))
		c := claims[0]
		id := instanceOf(c.Status.ProviderID).ID
		Expect(env.Client.Delete(ctx, c)).To(Succeed())
		// Core's lifecycle controller finalizes the NodeClaim: it calls the
		// provider's Delete (TerminateInstances), then sees the instance gone.
		for range 3 {
			ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, c)
		}
		inst, _ := lo.Find(srv.Instances(), func(i fakeaws.Instance) bool { return i.ID == id })
		Expect(inst.State).To(BeElementOf("shutting-down", "terminated"))
		ExpectNotFound(ctx, env.Client, c)
		Expect(srv.Requests("TerminateInstances")).ToNot(BeEmpty())
	})
})
