package envtest_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
)

var _ = Describe("Idle-GPU consolidation", func() {
	var (
		nc       *v1alpha1.GPUNodeClass
		np       *karpv1.NodePool
		claim    *karpv1.NodeClaim
		node     *corev1.Node
		cpuPod   *corev1.Pod
		podLabel = map[string]string{"app": "cpu-sidecar"}
	)
	BeforeEach(func() {
		nc = gpuNodeClass()
		np = gpuNodePool(nc)
		claim, node = test.NodeClaimAndNode(karpv1.NodeClaim{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{karpv1.NodePoolLabelKey: np.Name, corev1.LabelInstanceTypeStable: "g6.xlarge"}},
			Spec:       karpv1.NodeClaimSpec{NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: nc.Name}},
			Status: karpv1.NodeClaimStatus{
				ProviderID:  "fake://us-east-1a/i-idle" + test.RandomName(),
				Capacity:    corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1"), corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourcePods: resource.MustParse("50")},
				Allocatable: corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1"), corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourcePods: resource.MustParse("50")},
			},
		})
		claim.StatusConditions().SetTrue(karpv1.ConditionTypeInitialized)
		cpuPod = test.Pod(test.PodOptions{ObjectMeta: metav1.ObjectMeta{Labels: podLabel}, NodeName: node.Name,
			ResourceRequirements: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}})
	})
	apply := func() {
		ExpectApplied(ctx, env.Client, nc, np, claim, node, cpuPod)
		claim.StatusConditions().SetTrue(karpv1.ConditionTypeInitialized)
		ExpectApplied(ctx, env.Client, claim) // status is a subresource: apply it after create
	}
	idleRemovalRequested := func() bool { return deletionRequested(claim) }

	It("removes a GPU node held only by a CPU pod once idleAfter has passed, counting the removal and the GPU-hours it reclaims", func() {
		removals := func() float64 { return testutil.ToFloat64(idlegpu.RemovalsTotal.WithLabelValues(np.Name, "g6.xlarge")) }
		reclaimed := func() float64 { return testutil.ToFloat64(idlegpu.IdleGPUHoursReclaimed.WithLabelValues(np.Name)) }
		removalsBefore, reclaimedBefore := removals(), reclaimed()
		apply()
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(idleRemovalRequested()).To(BeFalse(), "not before idleAfter")
		Expect(removals()).To(Equal(removalsBefore))
		env.Clock.Step(11 * time.Minute)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(idleRemovalRequested()).To(BeTrue())
		Expect(removals()).To(Equal(removalsBefore+1), "karpenter_gpu_idle_removals_total{nodepool,instance_type}")
		// One GPU idle since it was initialized: at least idleAfter (10m),
		// about the 11 minutes the clock was stepped (the initialization is
		// stamped a few milliseconds apart from the test clock), under 12.
		Expect(reclaimed()-reclaimedBefore).To(BeNumerically(">=", 10.0/60), "karpenter_gpu_idle_gpu_hours_reclaimed_total{nodepool}")
		Expect(reclaimed() - reclaimedBefore).To(BeNumerically("<", 12.0/60))
	})
	It("keeps a node whose GPU is in use", func() {
		gpuPod := test.Pod(test.PodOptions{NodeName: node.Name, ResourceRequirements: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")}, Limits: corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")}}})
		apply()
		ExpectApplied(ctx, env.Client, gpuPod)
		env.Clock.Step(11 * time.Minute)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(idleRemovalRequested()).To(BeFalse())
	})
	It("does not remove a node with a do-not-disrupt pod", func() {
		cpuPod.Annotations = map[string]string{karpv1.DoNotDisruptAnnotationKey: "true"}
		apply()
		env.Clock.Step(11 * time.Minute)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(idleRemovalRequested()).To(BeFalse())
	})
	It("does not remove a node whose pod is protected by a blocking PodDisruptionBudget", func() {
		apply()
		pdb := test.PodDisruptionBudget(test.PDBOptions{Labels: podLabel, MaxUnavailable: &intstr.IntOrString{IntVal: 0}})
		ExpectApplied(ctx, env.Client, pdb)
		env.Clock.Step(11 * time.Minute)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(idleRemovalRequested()).To(BeFalse())
	})
	It("does not remove a node when the NodePool's disruption budget is 0", func() {
		np.Spec.Disruption.Budgets = []karpv1.Budget{{Nodes: "0"}}
		apply()
		env.Clock.Step(11 * time.Minute)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(idleRemovalRequested()).To(BeFalse())
	})
	It("never removes a node whose GPUNodeClass sets idleAfter: Never", func() {
		never := karpv1.MustParseNillableDuration("Never")
		nc.Spec.GPU.IdleAfter = &never
		apply()
		env.Clock.Step(24 * time.Hour)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(idleRemovalRequested()).To(BeFalse())
	})
})

var _ = Describe("Protecting running GPU work from consolidation", func() {
	It("marks a node running a GPU pod do-not-disrupt and clears the mark when the GPU work ends", func() {
		nc := gpuNodeClass()
		np := gpuNodePool(nc)
		claim, node := test.NodeClaimAndNode(karpv1.NodeClaim{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{karpv1.NodePoolLabelKey: np.Name}},
			Spec:       karpv1.NodeClaimSpec{NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: nc.Name}},
			Status: karpv1.NodeClaimStatus{ProviderID: "fake://us-east-1a/i-protect" + test.RandomName(),
				Allocatable: corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")}},
		})
		gpuPod := test.Pod(test.PodOptions{NodeName: node.Name, ResourceRequirements: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")}, Limits: corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")}}})
		ExpectApplied(ctx, env.Client, nc, np, claim, node, gpuPod)
		claim.StatusConditions().SetTrue(karpv1.ConditionTypeInitialized)
		ExpectApplied(ctx, env.Client, claim)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(ExpectExists(ctx, env.Client, node).Annotations).To(HaveKeyWithValue(karpv1.DoNotDisruptAnnotationKey, "true"))
		ExpectDeleted(ctx, env.Client, gpuPod)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(ExpectExists(ctx, env.Client, node).Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey))
	})
})
