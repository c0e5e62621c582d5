package idlegpu_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// A g6.xlarge (1 GPU) of a GPUNodeClass with the default idleAfter (10m),
// kept alive by a CPU pod only.
var _ = Describe("Idle-GPU removal", func() {
	var (
		nc       *v1alpha1.GPUNodeClass
		np       *karpv1.NodePool
		claim    *karpv1.NodeClaim
		node     *corev1.Node
		cpuPod   *corev1.Pod
		podLabel = map[string]string{"app": "cpu-sidecar"}
	)
	BeforeEach(func() {
		nc = controlplane.GPUNodeClass()
		np = gpuNodePool(nc)
		claim, node = controlplane.RunningGPUNode(nc, np, "g6.xlarge", 1, 4)
		cpuPod = test.Pod(test.PodOptions{ObjectMeta: metav1.ObjectMeta{Labels: podLabel}, NodeName: node.Name,
			ResourceRequirements: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}})
	})
	apply := func() {
		GinkgoHelper()
		controlplane.ApplyInitialized(ctx, env.Client, claim, nc, np, node, cpuPod)
	}
	// idleAfterPassed applies the node, reconciles, steps the clock past
	// idleAfter and reconciles again.
	idleAfterPassed := func(d time.Duration) {
		GinkgoHelper()
		apply()
		ExpectSingletonReconciled(ctx, ctrl)
		env.Clock.Step(d)
		ExpectSingletonReconciled(ctx, ctrl)
	}

	It("removes a GPU node held only by a CPU pod once idleAfter has passed, counting the removal and the GPU-hours it reclaims", func() {
		removals := func() float64 { return testutil.ToFloat64(idlegpu.RemovalsTotal.WithLabelValues(np.Name, "g6.xlarge")) }
		reclaimed := func() float64 { return testutil.ToFloat64(idlegpu.IdleGPUHoursReclaimed.WithLabelValues(np.Name)) }
		removalsBefore, reclaimedBefore := removals(), reclaimed()
		apply()
		ExpectSingletonReconciled(ctx, ctrl)
		env.Clock.Step(9 * time.Minute)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(removalRequested(claim)).To(BeFalse(), "not before idleAfter")
		Expect(removals()).To(Equal(removalsBefore))
		Expect(reclaimed()).To(Equal(reclaimedBefore))
		env.Clock.Step(2 * time.Minute)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(removalRequested(claim)).To(BeTrue())
		Expect(removals()).To(Equal(removalsBefore+1), "karpenter_gpu_idle_removals_total{nodepool,instance_type}")
		// One GPU idle since the controller first saw it: the 11 minutes the
		// clock was stepped (the controller started a few milliseconds
		// before), so between idleAfter and 12 minutes.
		Expect(reclaimed()-reclaimedBefore).To(And(BeNumerically(">=", 10.0/60), BeNumerically("<", 12.0/60)), "karpenter_gpu_idle_gpu_hours_reclaimed_total{nodepool}")
		Expect(recorder.Calls("IdleGPUNodeRemoved")).To(Equal(1))
	})
	It("counts idle time from the last GPU work it saw", func() {
		gpuPod := controlplane.GPUWorkPod(node, "1", "1Gi", 1, "0")
		apply()
		ExpectApplied(ctx, env.Client, gpuPod)
		env.Clock.Step(time.Hour)
		ExpectSingletonReconciled(ctx, ctrl)
		ExpectDeleted(ctx, env.Client, gpuPod)
		env.Clock.Step(5 * time.Minute)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(removalRequested(claim)).To(BeFalse(), "idle for 5 minutes, not the hour since initialization")
		env.Clock.Step(6 * time.Minute)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(removalRequested(claim)).To(BeTrue())
	})
	DescribeTable("keeps an idle node past idleAfter",
		func(setup func(), event string) {
			setup()
			idleAfterPassed(24 * time.Hour)
			Expect(removalRequested(claim)).To(BeFalse())
			if event != "" {
				Expect(recorder.Calls(event)).To(BeNumerically(">=", 1))
			}
		},
		Entry("when its GPU is in use", func() { cpuPod = controlplane.GPUWorkPod(node, "100m", "1Gi", 1, "0") }, ""),
		Entry("when the user marked the node do-not-disrupt", func() {
			node.Annotations = map[string]string{karpv1.DoNotDisruptAnnotationKey: "true"}
		}, "IdleGPUNodeBlocked"),
		Entry("when a pod on it is do-not-disrupt", func() {
			cpuPod.Annotations = map[string]string{karpv1.DoNotDisruptAnnotationKey: "true"}
		}, "IdleGPUNodeBlocked"),
		Entry("when a PodDisruptionBudget blocks its pod's eviction", func() {
			ExpectApplied(ctx, env.Client, test.PodDisruptionBudget(test.PDBOptions{Labels: podLabel, MaxUnavailable: &intstr.IntOrString{IntVal: 0}}))
		}, "IdleGPUNodeBlocked"),
		Entry("when its NodePool's disruption budget is 0", func() {
			np.Spec.Disruption.Budgets = []karpv1.Budget{{Nodes: "0"}}
		}, "IdleGPUNodeBlocked"),
		Entry("when its GPUNodeClass sets idleAfter: Never", func() {
			never := karpv1.MustParseNillableDuration("Never")
			nc.Spec.GPU.IdleAfter = &never
		}, ""),
	)
})

// A g6.48xlarge ($13.35/h, 8 GPUs) left running two 1-GPU pods: any
// right-sized set for them costs at most two g6.xlarge ($1.61/h), so it
// wastes at least $11.7/h. Its two pods each cost $20 to evict (the
// eviction-cost annotation); at breakEvenPercent 100 the node is released
// once it has wasted $40: between 1h and 10h.
var _ = Describe("Break-even protection of running GPU work", func() {
	var (
		nc    *v1alpha1.GPUNodeClass
		np    *karpv1.NodePool
		claim *karpv1.NodeClaim
		node  *corev1.Node
		pods  []*corev1.Pod
	)
	BeforeEach(func() {
		nc, np = breakEvenPool()
		claim, node, pods = oversizedNode(nc, np)
	})
	apply := func() {
		GinkgoHelper()
		controlplane.ApplyInitialized(ctx, env.Client, claim, nc, np, node)
		for _, p := range pods {
			ExpectApplied(ctx, env.Client, p)
		}
	}
	// protectedAfter applies the node, reconciles, steps the clock by d,
	// reconciles again and reports whether the node is protected.
	protectedAfter := func(d time.Duration) bool {
		GinkgoHelper()
		apply()
		ExpectSingletonReconciled(ctx, ctrl)
		env.Clock.Step(d)
		ExpectSingletonReconciled(ctx, ctrl)
		return protected(node)
	}

	It("holds protection below break-even and releases the node past it", func() {
		apply()
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(protected(node)).To(BeTrue(), "protected while nothing is wasted yet")
		Expect(ExpectExists(ctx, env.Client, node).Annotations).To(HaveKeyWithValue(idlegpu.AnnotationProtected, "true"))
		env.Clock.Step(time.Hour)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(protected(node)).To(BeTrue(), "at most $13.35 wasted after 1h, below the $40 eviction cost")
		wasted := testutil.ToFloat64(idlegpu.NodeWastedUSD.WithLabelValues(np.Name, claim.Name))
		Expect(wasted).To(And(BeNumerically(">=", 11.7), BeNumerically("<=", 13.35)))
		Expect(testutil.ToFloat64(idlegpu.NodeEvictionCostUSD.WithLabelValues(np.Name, claim.Name))).To(BeNumerically("==", 40))
		next, ok := ctrl.NextCheck()
		Expect(ok).To(BeTrue())
		Expect(next.Sub(env.Clock.Now())).To(And(BeNumerically(">", time.Hour), BeNumerically("<", 3*time.Hour)), "break-even at $40 / ($11.7..13.35)/h from the start")
		env.Clock.Step(9 * time.Hour)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(protected(node)).To(BeFalse(), "at least $117 wasted after 10h: released to consolidation")
		Expect(ExpectExists(ctx, env.Client, node).Annotations).ToNot(HaveKey(idlegpu.AnnotationProtected))
		Expect(removalRequested(claim)).To(BeFalse(), "released to core's consolidation, not removed: its GPUs are in use")
	})
	DescribeTable("protection after a while",
		func(setup func(), after time.Duration, want bool) {
			setup()
			Expect(protectedAfter(after)).To(Equal(want))
		},
		Entry("scales break-even with breakEvenPercent: at most $26.7 wasted after 2h, below 1000% of $40",
			func() { nc.Spec.GPU.Disruption.BreakEvenPercent = ptr.To(int32(1000)) }, 2*time.Hour, true),
		Entry("scales break-even with breakEvenPercent: at least $491 wasted after 42h, past 1000% of $40",
			func() { nc.Spec.GPU.Disruption.BreakEvenPercent = ptr.To(int32(1000)) }, 42*time.Hour, false),
		Entry("adds evictionCostPerPod to a GPU pod's cost but not to one the annotation fixes: at most $26.7 wasted after 2h, below $20 + $0 + $15",
			func() {
				nc.Spec.GPU.Disruption.EvictionCostPerPod = ptr.To("15")
				pods[1].Annotations = map[string]string{evictioncost.AnnotationWorkloadClass: "service", evictioncost.AnnotationRestartTime: "0s"}
			}, 2*time.Hour, true),
		Entry("adds evictionCostPerPod: at least $35.1 wasted after 3h, past $35",
			func() {
				nc.Spec.GPU.Disruption.EvictionCostPerPod = ptr.To("15")
				pods[1].Annotations = map[string]string{evictioncost.AnnotationWorkloadClass: "service", evictioncost.AnnotationRestartTime: "0s"}
			}, 3*time.Hour, false),
		// The cheapest type for one 2-CPU 1-GPU pod: it wastes nothing. (A
		// g6.xlarge, $0.80/h, would waste $0.28/h against it and be
		// released after about 72h.)
		Entry("keeps a right-sized node protected however long it runs",
			func() {
				claim, node = controlplane.RunningGPUNode(nc, np, "g4dn.xlarge", 1, 4)
				pods = []*corev1.Pod{controlplane.GPUWorkPod(node, "2", "8Gi", 1, "20")}
			}, 1000*time.Hour, true),
		Entry("never releases under protection: Always",
			func() {
				nc.Spec.GPU.Disruption = &v1alpha1.GPUDisruption{ProtectRunningGPUPods: ptr.To(true), BreakEvenPercent: ptr.To(int32(100)), Repack: ptr.To(false)}
			}, 100*time.Hour, true),
		Entry("never protects under protection: Never",
			func() { nc.Spec.GPU.Disruption.Protection = ptr.To(v1alpha1.ProtectionNever) }, time.Duration(0), false),
	)
	It("clears its protection when the GPU work ends", func() {
		Expect(protectedAfter(0)).To(BeTrue())
		for _, p := range pods {
			ExpectDeleted(ctx, env.Client, p)
		}
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(ExpectExists(ctx, env.Client, node).Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey))
		Expect(ExpectExists(ctx, env.Client, node).Annotations).ToNot(HaveKey(idlegpu.AnnotationProtected))
	})
	It("never touches a user's own do-not-disrupt", func() {
		node.Annotations = map[string]string{karpv1.DoNotDisruptAnnotationKey: "true"}
		Expect(protectedAfter(100*time.Hour)).To(BeTrue(), "past break-even, the user's annotation stays")
		Expect(ExpectExists(ctx, env.Client, node).Annotations).ToNot(HaveKey(idlegpu.AnnotationProtected))
	})
})
