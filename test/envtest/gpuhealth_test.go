package envtest_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/gpustartup"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/gputaint"
)

var _ = Describe("Stuck GPU nodes", func() {
	var (
		nc    *v1alpha1.GPUNodeClass
		claim *karpv1.NodeClaim
		node  *corev1.Node
	)
	BeforeEach(func() {
		nc = gpuNodeClass()
		nc.Spec.GPU.StartupTimeout = &metav1.Duration{Duration: 15 * time.Minute}
		claim, node = test.NodeClaimAndNode(karpv1.NodeClaim{
			Spec: karpv1.NodeClaimSpec{NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: nc.Name}},
			Status: karpv1.NodeClaimStatus{
				ProviderID: "fake://us-east-1a/i-stuck" + test.RandomName(),
				Capacity:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8"), corev1.ResourceCPU: resource.MustParse("96")},
			},
		})
		claim.Status.NodeName = node.Name
		// The device plugin never reported: the node advertises no GPUs.
		node.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("95")}
		node.Status.Capacity = node.Status.Allocatable
	})
	register := func() {
		ExpectApplied(ctx, env.Client, nc, claim, node)
		claim.StatusConditions().SetTrue(karpv1.ConditionTypeRegistered)
		ExpectApplied(ctx, env.Client, claim)
	}
	gone := func() bool { return deletionRequested(claim) }

	It("replaces a node whose GPUs never appear, after startupTimeout, and records why", func() {
		register()
		ExpectObjectReconciled(ctx, env.Client, startupCtrl, claim)
		Expect(gone()).To(BeFalse(), "not before the timeout")
		env.Clock.Step(16 * time.Minute)
		stored := ExpectExists(ctx, env.Client, claim)
		ExpectObjectReconciled(ctx, env.Client, startupCtrl, stored)
		Expect(gone()).To(BeTrue())
	})
	It("leaves a node alone once its GPUs are advertised", func() {
		node.Status.Allocatable[v1alpha1.ResourceNVIDIAGPU] = resource.MustParse("8")
		register()
		env.Clock.Step(16 * time.Minute)
		ExpectObjectReconciled(ctx, env.Client, startupCtrl, claim)
		Expect(gone()).To(BeFalse())
	})
	It("records the failure reason on the NodeClaim before deleting it", func() {
		claim.Finalizers = []string{"test.karpenter-gpu.io/hold"} // keep the object to read its annotation
		register()
		env.Clock.Step(16 * time.Minute)
		ExpectObjectReconciled(ctx, env.Client, startupCtrl, ExpectExists(ctx, env.Client, claim))
		latest := ExpectExists(ctx, env.Client, claim)
		Expect(latest.Annotations[gpustartup.AnnotationStartupFailure]).To(ContainSubstring("nvidia.com/gpu"))
		Expect(latest.DeletionTimestamp.IsZero()).To(BeFalse())
	})
})

var _ = Describe("GPU taint on NodePools", func() {
	It("adds nvidia.com/gpu:NoSchedule to NodePools of a tainting GPUNodeClass", func() {
		nc := gpuNodeClass()
		np := gpuNodePool(nc)
		ExpectApplied(ctx, env.Client, nc, np)
		ExpectObjectReconciled(ctx, env.Client, taintCtrl, np)
		Expect(ExpectExists(ctx, env.Client, np).Spec.Template.Spec.Taints).To(ContainElement(gputaint.Taint))
	})
	It("leaves NodePools alone when the GPUNodeClass opts out", func() {
		nc := gpuNodeClass()
		nc.Spec.GPU.Taint = new(false)
		np := gpuNodePool(nc)
		ExpectApplied(ctx, env.Client, nc, np)
		ExpectObjectReconciled(ctx, env.Client, taintCtrl, np)
		Expect(ExpectExists(ctx, env.Client, np).Spec.Template.Spec.Taints).To(BeEmpty())
	})
})
