package idlegpu_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// NextCheck is what lets the simulator skip the polls that cannot act: it
// must name the moment an idle GPU node reaches idleAfter, no later (the
// removal would come late) and no earlier than a poll could remove it.
var _ = Describe("NextCheck", func() {
	It("names the moment a GPU node without GPU work reaches idleAfter", func() {
		nc := controlplane.GPUNodeClass()
		np := gpuNodePool(nc)
		claim, node := controlplane.RunningGPUNode(nc, np, "g6.xlarge", 1, 4)
		cpuPod := test.Pod(test.PodOptions{NodeName: node.Name,
			ResourceRequirements: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}})
		controlplane.ApplyInitialized(ctx, env.Client, claim, nc, np, node, cpuPod)
		ExpectSingletonReconciled(ctx, ctrl)
		due, ok := ctrl.NextCheck()
		Expect(ok).To(BeTrue(), "an idle GPU node is pending removal")
		// Counted from the NodeClaim's initialization (a wall-clock
		// condition time, which may run ahead of the test's clock) or the
		// controller's start, whichever is later.
		Expect(due.Sub(env.Clock.Now())).To(And(BeNumerically(">", 9*time.Minute), BeNumerically("<", 11*time.Minute)),
			"idleAfter (10m) from when the controller started counting")

		env.Clock.Step(due.Sub(env.Clock.Now()) - time.Second)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(removalRequested(claim)).To(BeFalse(), "a second before NextCheck")
		again, ok := ctrl.NextCheck()
		Expect(ok).To(BeTrue())
		Expect(again).To(Equal(due), "an unchanged cluster keeps the same moment")

		env.Clock.Step(time.Second)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(removalRequested(claim)).To(BeTrue(), "removed at NextCheck")
	})
})
