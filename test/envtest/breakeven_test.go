package envtest_test

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// Eight g3.4xlarge ($1.14/h, 1 M60) each run one 10-vCPU 1-GPU pod: alone,
// each node is right-sized (no cheaper node holds its pod), but one
// g4dn.metal ($7.824/h, 8 T4, 96 vCPU) holds all eight pods for less than
// the eight nodes' $9.12/h. With repack on, break-even also counts the
// fleet's waste: each node is charged its share ($1.14 × (1 − 7.824/9.12)
// ≈ $0.162/h) and, once that reaches its pod's $1 eviction cost
// (breakEvenPercent 100, between 1h and 8h), the nodes are merged by the
// repacking move while staying protected from core's consolidation.
var _ = Describe("Break-even protection counts the fleet's waste", func() {
	var (
		nc     *v1alpha1.GPUNodeClass
		np     *karpv1.NodePool
		claims []*karpv1.NodeClaim
		nodes  []*corev1.Node
		pods   []*corev1.Pod
	)
	BeforeEach(func() {
		nc, np = disruptingPool(v1alpha1.GPUDisruption{BreakEvenPercent: ptr.To(int32(100)), Repack: ptr.To(false)})
		claims, nodes, pods = nil, nil, nil
		for range 8 {
			claim, node := controlplane.RunningGPUNode(nc, np, "g3.4xlarge", 1, 16)
			claims, nodes = append(claims, claim), append(nodes, node)
			pods = append(pods, controlplane.GPUWorkPod(node, "10", "16Gi", 1, "1"))
		}
	})
	apply := func(n int) {
		GinkgoHelper()
		ExpectApplied(ctx, env.Client, nc, np)
		for i := range n {
			controlplane.ApplyInitialized(ctx, env.Client, claims[i], nodes[i], pods[i])
		}
	}
	protected := func(n int) int {
		GinkgoHelper()
		count := 0
		for i := range n {
			if ExpectExists(ctx, env.Client, nodes[i]).Annotations[karpv1.DoNotDisruptAnnotationKey] == "true" {
				count++
			}
		}
		return count
	}
	// expectProtectedAfter applies n nodes and expects the idle-GPU
	// controller to keep all n protected after d.
	expectProtectedAfter := func(n int, d time.Duration) {
		GinkgoHelper()
		apply(n)
		ExpectSingletonReconciled(ctx, idleCtrl)
		env.Clock.Step(d)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(protected(n)).To(Equal(n))
	}

	It("without repack, keeps nodes that are right-sized alone protected (core's consolidation cannot merge them)", func() {
		expectProtectedAfter(8, 8*time.Hour)
	})
	It("with repack, merges the released nodes into the packer's cheaper node (a merge core's consolidation does not find)", func() {
		nc.Spec.GPU.Disruption.Repack = ptr.To(true)
		np.Spec.Disruption.Budgets = []karpv1.Budget{{Nodes: "100%"}}
		apply(8)
		ctrl := repackingController()
		ExpectSingletonReconciled(ctx, ctrl)
		env.Clock.Step(time.Hour)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(ExpectExists(ctx, env.Client, claims[0]).Annotations).ToNot(HaveKey(v1alpha1.AnnotationRepackReplacements),
			"about $0.16 of the fleet's waste charged to each node after 1h, below its $1 eviction cost")
		Expect(protected(8)).To(Equal(8))
		env.Clock.Step(7 * time.Hour)
		ExpectSingletonReconciled(ctx, ctrl)
		reps := ExpectExists(ctx, env.Client, claims[0]).Annotations[v1alpha1.AnnotationRepackReplacements]
		Expect(reps).ToNot(BeEmpty())
		Expect(strings.Split(reps, ",")).To(HaveLen(1), "one 8-GPU node for the eight pods")
		for i := range 8 {
			Expect(ExpectExists(ctx, env.Client, claims[i]).Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationRepackReplacements, reps))
			Expect(ExpectExists(ctx, env.Client, nodes[i]).Annotations).To(HaveKeyWithValue(karpv1.DoNotDisruptAnnotationKey, "true"), "kept from core while the merge runs")
		}
		rep := ExpectExists(ctx, env.Client, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: reps}})
		Expect(strings.Split(rep.Annotations[v1alpha1.AnnotationRepackOf], ",")).To(HaveLen(8))
	})
	It("keeps a node that is right-sized and has nothing to merge with", func() {
		expectProtectedAfter(1, 100*time.Hour)
	})
})
