package envtest_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	nodepoolvalidation "sigs.k8s.io/karpenter/pkg/controllers/nodepool/validation"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

var _ = Describe("GPUNodeClass admission (CEL in the CRD, real API server)", func() {
	DescribeTable("rejects an invalid spec with a clear message",
		func(mutate func(*v1alpha1.GPUNodeClass), message string) {
			nc := gpuNodeClass()
			mutate(nc)
			err := env.Client.Create(ctx, nc)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("neither role nor instance profile", func(nc *v1alpha1.GPUNodeClass) { nc.Spec.Role = "" }, "role"),
		Entry("both role and instance profile", func(nc *v1alpha1.GPUNodeClass) { nc.Spec.InstanceProfile = lo.ToPtr("profile") }, "role"),
		Entry("no subnet selector terms", func(nc *v1alpha1.GPUNodeClass) { nc.Spec.SubnetSelectorTerms = nil }, "subnetSelectorTerms"),
		Entry("a subnet term with both id and tags", func(nc *v1alpha1.GPUNodeClass) {
			nc.Spec.SubnetSelectorTerms[0].ID = "subnet-0123456789abcdef0"
		}, "subnetSelectorTerms"),
		Entry("a tag in the karpenter.sh domain", func(nc *v1alpha1.GPUNodeClass) { nc.Spec.Tags = map[string]string{"karpenter.sh/nodepool": "x"} }, "tag"),
		Entry("an unknown MIG strategy", func(nc *v1alpha1.GPUNodeClass) { nc.Spec.GPU.MIGStrategy = "sometimes" }, "migStrategy"),
		Entry("zero time-slicing replicas", func(nc *v1alpha1.GPUNodeClass) { nc.Spec.GPU.TimeSlicing = &v1alpha1.TimeSlicing{Replicas: 0} }, "replicas"),
		Entry("a Custom AMI family without selector terms", func(nc *v1alpha1.GPUNodeClass) { nc.Spec.AMIFamily = "Custom" }, "amiSelectorTerms"),
	)

	It("accepts a valid spec and applies defaults", func() {
		nc := gpuNodeClass()
		Expect(env.Client.Create(ctx, nc)).To(Succeed())
		Expect(nc.AMIFamilyOrDefault()).To(Equal("AL2023"))
		d, ok := nc.IdleAfter()
		Expect(ok).To(BeTrue())
		Expect(d.Minutes()).To(BeNumerically("==", 10))
	})
})

// The chart ships core's karpenter.sh CRDs unpatched (so it can run beside
// Karpenter-AWS): an unknown karpenter-gpu.io key passes admission and is
// refused by core's runtime NodePool validation, with karpenter-gpu's
// well-known labels registered.
var _ = Describe("NodePool requirements on karpenter-gpu.io labels (core's CRDs, runtime validation)", func() {
	It("accepts a well-known GPU label with Gt", func() {
		nc := gpuNodeClass()
		np := gpuNodePool(nc, karpv1.NodeSelectorRequirementWithMinValues{Key: v1alpha1.LabelGPUMemory, Operator: corev1.NodeSelectorOpGt, Values: []string{"40959"}})
		ExpectApplied(ctx, env.Client, nc, np)
		ExpectObjectReconciled(ctx, env.Client, nodepoolvalidation.NewController(env.Clock, env.Client, cloudProvider), np)
		Expect(ExpectExists(ctx, env.Client, np).StatusConditions().Get(karpv1.ConditionTypeValidationSucceeded).IsTrue()).To(BeTrue())
	})
	It("refuses an unknown key in the karpenter-gpu.io domain", func() {
		nc := gpuNodeClass()
		np := gpuNodePool(nc, karpv1.NodeSelectorRequirementWithMinValues{Key: v1alpha1.Group + "/gpu-colour", Operator: corev1.NodeSelectorOpIn, Values: []string{"green"}})
		ExpectApplied(ctx, env.Client, nc, np)
		ExpectObjectReconciled(ctx, env.Client, nodepoolvalidation.NewController(env.Clock, env.Client, cloudProvider), np)
		c := ExpectExists(ctx, env.Client, np).StatusConditions().Get(karpv1.ConditionTypeValidationSucceeded)
		Expect(c.IsFalse()).To(BeTrue())
		Expect(c.Message).To(ContainSubstring("karpenter-gpu.io"))
	})
})
