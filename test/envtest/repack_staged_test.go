package envtest_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// Three g6.48xlarge ($13.35/h each) left with one 1-GPU pod each, released
// at once (breakEvenPercent 0), in a NodePool whose disruption budget
// allows one node at a time. Each node alone has no split (one pod's
// cheapest node is a single node, core's replace), so the move is a merge
// of all three into the packer's cheapest set for their pods; its old nodes
// are deleted one at a time, each after the previous one is gone.
var _ = Describe("GPU repacking move, staged within the disruption budget", func() {
	var (
		nc     *v1alpha1.GPUNodeClass
		np     *karpv1.NodePool
		claims []*karpv1.NodeClaim
		ctrl   *idlegpu.Controller
	)
	BeforeEach(func() {
		nc, np = disruptingPool(v1alpha1.GPUDisruption{BreakEvenPercent: ptr.To(int32(0)), Repack: ptr.To(true)})
		np.Spec.Disruption.Budgets = []karpv1.Budget{{Nodes: "1"}}
		ExpectApplied(ctx, env.Client, nc, np)
		claims = nil
		for range 3 {
			claim, node := controlplane.RunningGPUNode(nc, np, "g6.48xlarge", 8, 192)
			// As core's lifecycle controller adds it: a deleted NodeClaim
			// stays (disrupting) until termination drained its node.
			claim.Finalizers = append(claim.Finalizers, karpv1.TerminationFinalizer)
			controlplane.ApplyInitialized(ctx, env.Client, claim, node, controlplane.GPUWorkPod(node, "2", "8Gi", 1, "1"))
			claims = append(claims, claim)
		}
		ctrl = repackingController()
	})
	// launchReady launches the replacements (core's lifecycle controller)
	// and marks them Initialized.
	launchReady := func(names []string) {
		GinkgoHelper()
		for _, n := range names {
			r := ExpectExists(ctx, env.Client, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: n}})
			ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, r)
			r = ExpectExists(ctx, env.Client, r)
			r.StatusConditions().SetTrue(karpv1.ConditionTypeInitialized)
			ExpectApplied(ctx, env.Client, r)
		}
	}
	deleting := func() []*karpv1.NodeClaim {
		GinkgoHelper()
		var out []*karpv1.NodeClaim
		for _, c := range claims {
			if controlplane.DeletionRequested(ctx, env.Client, c) {
				out = append(out, c)
			}
		}
		return out
	}

	It("merges more nodes than the budget allows at once, deleting one old node at a time", func() {
		ExpectSingletonReconciled(ctx, ctrl)
		var names []string
		for _, c := range claims {
			c = ExpectExists(ctx, env.Client, c)
			Expect(c.Annotations).To(HaveKey(v1alpha1.AnnotationRepackReplacements), "all three nodes are in the one move")
			if names == nil {
				names = strings.Split(c.Annotations[v1alpha1.AnnotationRepackReplacements], ",")
			}
			Expect(strings.Split(c.Annotations[v1alpha1.AnnotationRepackReplacements], ",")).To(Equal(names))
		}

		By("replacements Ready: one old node is deleted, the budget holds the others")
		launchReady(names)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(deleting()).To(HaveLen(1))
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(deleting()).To(HaveLen(1), "the first node is still draining: the budget allows no second")

		By("each deletion finished: the next old node goes")
		for want := 2; want <= 3; want++ {
			for _, c := range deleting() {
				ExpectFinalizersRemoved(ctx, env.Client, c) // termination done
				ExpectNotFound(ctx, env.Client, c)
			}
			ExpectSingletonReconciled(ctx, ctrl)
			Expect(deleting()).To(HaveLen(want))
		}

		By("the replacements stay: the pods moved there are not evicted again")
		for _, n := range names {
			Expect(controlplane.DeletionRequested(ctx, env.Client, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: n}})).To(BeFalse())
		}
	})

	It("keeps the replacements when a node left in the move changes after another was moved", func() {
		ExpectSingletonReconciled(ctx, ctrl)
		names := strings.Split(ExpectExists(ctx, env.Client, claims[0]).Annotations[v1alpha1.AnnotationRepackReplacements], ",")
		launchReady(names)
		ExpectSingletonReconciled(ctx, ctrl)
		moved := deleting()
		Expect(moved).To(HaveLen(1))
		By("a new pod lands on a node still waiting for budget")
		var waiting *karpv1.NodeClaim
		for _, c := range claims {
			if !controlplane.DeletionRequested(ctx, env.Client, c) {
				waiting = ExpectExists(ctx, env.Client, c)
				break
			}
		}
		var node corev1.NodeList
		Expect(env.Client.List(ctx, &node)).To(Succeed())
		for i := range node.Items {
			if node.Items[i].Spec.ProviderID == waiting.Status.ProviderID {
				ExpectApplied(ctx, env.Client, controlplane.GPUWorkPod(&node.Items[i], "2", "8Gi", 1, "1"))
			}
		}
		for _, c := range moved {
			ExpectFinalizersRemoved(ctx, env.Client, c) // termination done
			ExpectNotFound(ctx, env.Client, c)
		}
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(controlplane.DeletionRequested(ctx, env.Client, waiting)).To(BeFalse(), "its pods changed: it leaves the move")
		Expect(ExpectExists(ctx, env.Client, waiting).Annotations).ToNot(HaveKey(v1alpha1.AnnotationRepackReplacements))
		for _, n := range names {
			Expect(controlplane.DeletionRequested(ctx, env.Client, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: n}})).To(BeFalse(),
				"replacements holding the moved node's pods are not deleted")
		}
	})
})
