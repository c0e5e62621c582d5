package idlegpu_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// Repeat evictions (evictioncost.Repeat, window 24h, multiplier 3): a
// g6.48xlarge ($13.35/h, 8 GPUs) running two 1-GPU pods of a Job, each
// costing $20 to evict, wastes $11.7-13.35/h and is released at
// breakEvenPercent 100 once it has wasted $40 (between 3h and 3.5h). When
// a released node leaves with the Job's pods, the Job is remembered, and a
// second such node running its replacement pods is released only at 3 ×
// $40 = $120 (past 9h) while the window lasts.
var _ = Describe("Repeat evictions", func() {
	const window = 24 * time.Hour
	var (
		nc  *v1alpha1.GPUNodeClass
		np  *karpv1.NodePool
		job = metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "train", UID: types.UID("job-train"), Controller: ptr.To(true)}
	)
	BeforeEach(func() {
		ctrl = idlegpu.NewController(idlegpu.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: recorder, CloudProvider: cloudProvider,
			Eviction: evictioncost.Model{Repeat: evictioncost.Repeat{Window: window, Multiplier: 3}}})
		nc, np = breakEvenPool()
		ExpectApplied(ctx, env.Client, nc, np)
	})
	// nodeOf starts an oversizedNode whose two 1-GPU pods have owner (none
	// when nil).
	nodeOf := func(owner *metav1.OwnerReference) (*karpv1.NodeClaim, *corev1.Node, []*corev1.Pod) {
		GinkgoHelper()
		claim, node, pods := oversizedNode(nc, np)
		controlplane.ApplyInitialized(ctx, env.Client, claim, node)
		for _, p := range pods {
			if owner != nil {
				p.OwnerReferences = []metav1.OwnerReference{*owner}
			}
			ExpectApplied(ctx, env.Client, p)
		}
		return claim, node, pods
	}
	// gone removes a node with its pods, as a consolidation that evicted
	// them would, and lets the controller see it.
	gone := func(claim *karpv1.NodeClaim, node *corev1.Node, pods []*corev1.Pod) {
		GinkgoHelper()
		for _, p := range pods {
			ExpectDeleted(ctx, env.Client, p)
		}
		ExpectDeleted(ctx, env.Client, node, claim)
		ExpectSingletonReconciled(ctx, ctrl)
	}

	DescribeTable("a node running the replacements of displaced pods",
		func(releaseFirst bool, second *metav1.OwnerReference, after time.Duration, wantProtected bool) {
			claim, node, pods := nodeOf(&job)
			ExpectSingletonReconciled(ctx, ctrl)
			if releaseFirst {
				env.Clock.Step(4 * time.Hour)
				ExpectSingletonReconciled(ctx, ctrl)
				Expect(protected(node)).To(BeFalse(), "the first node is released past $40 wasted")
			}
			gone(claim, node, pods)
			claim2, node2, _ := nodeOf(second)
			ExpectSingletonReconciled(ctx, ctrl)
			env.Clock.Step(after)
			ExpectSingletonReconciled(ctx, ctrl)
			Expect(protected(node2)).To(Equal(wantProtected))
			cost := testutil.ToFloat64(idlegpu.NodeEvictionCostUSD.WithLabelValues(np.Name, claim2.Name))
			if wantProtected {
				Expect(cost).To(BeNumerically("==", 120), "the Job's pods weigh 3 × $20 each")
			}
		},
		Entry("holds it below 3× the eviction cost: at most $80.1 wasted after 6h", true, &job, 6*time.Hour, true),
		Entry("releases it past 3× the eviction cost: at least $117 wasted after 10h", true, &job, 10*time.Hour, false),
		Entry("weighs another workload's pods as usual: released after 6h", true,
			&metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "other", UID: types.UID("job-other"), Controller: ptr.To(true)}, 6*time.Hour, false),
		Entry("weighs bare pods (each its own workload) as usual: released after 6h", true, nil, 6*time.Hour, false),
		Entry("remembers only nodes this controller released: a protected node that left displaced nothing", false, &job, 6*time.Hour, false),
	)

	It("forgets the workload when the window ends, and says when it will", func() {
		// At 30× the replacements weigh $1,200: past the window's end
		// before waste reaches it, so the window's end is the next check.
		ctrl = idlegpu.NewController(idlegpu.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: recorder, CloudProvider: cloudProvider,
			Eviction: evictioncost.Model{Repeat: evictioncost.Repeat{Window: window, Multiplier: 30}}})
		claim, node, pods := nodeOf(&job)
		ExpectSingletonReconciled(ctx, ctrl)
		env.Clock.Step(4 * time.Hour)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(protected(node)).To(BeFalse())
		gone(claim, node, pods)
		displacedAt := env.Clock.Now()
		_, node2, _ := nodeOf(&job)
		ExpectSingletonReconciled(ctx, ctrl)
		env.Clock.Step(time.Hour)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(protected(node2)).To(BeTrue())
		next, ok := ctrl.NextCheck()
		Expect(ok).To(BeTrue())
		Expect(next).To(BeTemporally("==", displacedAt.Add(window)), "the estimate falls when the window ends: a poll must run then")
		env.Clock.SetTime(displacedAt.Add(window))
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(protected(node2)).To(BeFalse(), "past the window its pods weigh $40; it wasted far more")
	})
})
