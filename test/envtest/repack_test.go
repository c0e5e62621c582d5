package envtest_test

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// A g6.48xlarge ($13.35/h, 8 GPUs) left running two 1-GPU pods. With
// breakEvenPercent 0 it is released at once; with repack on, the packer's
// cheapest set for the two pods is two 1-GPU nodes (a split core's
// consolidation never makes), launched and Ready before the 8-GPU node's
// NodeClaim is deleted.
var _ = Describe("GPU repacking move", func() {
	var (
		nc       *v1alpha1.GPUNodeClass
		np       *karpv1.NodePool
		claim    *karpv1.NodeClaim
		node     *corev1.Node
		pods     []*corev1.Pod
		ctrl     *idlegpu.Controller
		podLabel = map[string]string{"app": "repack-me"}
	)
	BeforeEach(func() {
		nc, np = disruptingPool(v1alpha1.GPUDisruption{BreakEvenPercent: ptr.To(int32(0)), Repack: ptr.To(true)})
		claim, node = controlplane.RunningGPUNode(nc, np, "g6.48xlarge", 8, 192)
		pods = nil
		for range 2 {
			p := controlplane.GPUWorkPod(node, "2", "8Gi", 1, "1")
			p.Labels = podLabel
			pods = append(pods, p)
		}
		ctrl = repackingController()
	})
	apply := func() {
		GinkgoHelper()
		ExpectApplied(ctx, env.Client, nc, np, node)
		for _, p := range pods {
			ExpectApplied(ctx, env.Client, p)
		}
		controlplane.ApplyInitialized(ctx, env.Client, claim)
	}
	poolClaims := func() []*karpv1.NodeClaim {
		GinkgoHelper()
		var list karpv1.NodeClaimList
		Expect(env.Client.List(ctx, &list)).To(Succeed())
		var out []*karpv1.NodeClaim
		for i := range list.Items {
			if list.Items[i].Labels[karpv1.NodePoolLabelKey] == np.Name {
				out = append(out, &list.Items[i])
			}
		}
		return out
	}
	replacements := func() []*karpv1.NodeClaim {
		GinkgoHelper()
		names := strings.Split(ExpectExists(ctx, env.Client, claim).Annotations[v1alpha1.AnnotationRepackReplacements], ",")
		var out []*karpv1.NodeClaim
		for _, n := range names {
			out = append(out, ExpectExists(ctx, env.Client, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: n}}))
		}
		return out
	}
	// priceOf is the cheapest on-demand price among a NodeClaim's instance
	// type options (what the provider launches).
	priceOf := func(c *karpv1.NodeClaim) float64 {
		GinkgoHelper()
		its, err := cloudProvider.GetInstanceTypes(ctx, np)
		Expect(err).ToNot(HaveOccurred())
		var allowed []string
		for _, r := range c.Spec.Requirements {
			if r.Key == corev1.LabelInstanceTypeStable {
				allowed = r.Values
			}
		}
		best := 0.0
		for _, it := range its {
			for _, a := range allowed {
				if it.Name != a {
					continue
				}
				for _, o := range it.Offerings {
					if best == 0 || o.Price < best {
						best = o.Price
					}
				}
			}
		}
		return best
	}

	It("splits the node into right-sized nodes, Ready before the old node is deleted", func() {
		apply()
		ExpectSingletonReconciled(ctx, ctrl)
		reps := replacements()
		Expect(reps).To(HaveLen(2), "two 1-GPU nodes replace the 8-GPU node")
		total := 0.0
		for _, r := range reps {
			Expect(r.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationRepackOf, claim.Name))
			Expect(r.Annotations).To(HaveKeyWithValue(karpv1.DoNotDisruptAnnotationKey, "true"), "held out of consolidation while empty")
			total += priceOf(r)
		}
		Expect(total).To(And(BeNumerically(">", 0), BeNumerically("<=", 13.35*(1-repack.Margin))))
		Expect(ExpectExists(ctx, env.Client, node).Annotations).To(HaveKeyWithValue(karpv1.DoNotDisruptAnnotationKey, "true"),
			"the node being repacked is kept away from core's consolidation meanwhile")

		By("launching the replacements: the old node stays until they are Ready")
		for _, r := range reps {
			ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, r)
		}
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(controlplane.DeletionRequested(ctx, env.Client, claim)).To(BeFalse(), "no eviction before every replacement is Ready")
		Expect(poolClaims()).To(HaveLen(3))

		By("both replacements Ready: the old NodeClaim is deleted (core's termination drains it)")
		for _, r := range reps {
			r = ExpectExists(ctx, env.Client, r)
			r.StatusConditions().SetTrue(karpv1.ConditionTypeInitialized)
			ExpectApplied(ctx, env.Client, r)
		}
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(controlplane.DeletionRequested(ctx, env.Client, claim)).To(BeTrue())
		for _, r := range reps {
			Expect(ExpectExists(ctx, env.Client, r).Annotations).To(HaveKey(v1alpha1.AnnotationRepackCompletedAt))
		}

		By("the replacements return to consolidation after the hold")
		env.Clock.Step(repack.HoldAfterMove + time.Minute)
		ExpectSingletonReconciled(ctx, ctrl)
		for _, r := range reps {
			Expect(ExpectExists(ctx, env.Client, r).Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey))
			Expect(ExpectExists(ctx, env.Client, r).Annotations).ToNot(HaveKey(v1alpha1.AnnotationRepackOf))
		}
	})
	It("abandons the move when the replacements are not Ready in time, leaving the node", func() {
		apply()
		ExpectSingletonReconciled(ctx, ctrl)
		reps := replacements()
		Expect(reps).To(HaveLen(2))
		ExpectSingletonReconciled(ctx, ctrl)
		next, ok := ctrl.NextCheck()
		Expect(ok).To(BeTrue(), "the Ready timeout is a time the simulator must wake for")
		Expect(next.Sub(env.Clock.Now())).To(BeNumerically("<=", repack.ReadyTimeout+time.Second))
		env.Clock.Step(repack.ReadyTimeout + time.Minute)
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(controlplane.DeletionRequested(ctx, env.Client, claim)).To(BeFalse())
		for _, r := range reps {
			Expect(controlplane.DeletionRequested(ctx, env.Client, r)).To(BeTrue(), "replacements of an abandoned move are deleted")
		}
		Expect(ExpectExists(ctx, env.Client, claim).Annotations).ToNot(HaveKey(v1alpha1.AnnotationRepackReplacements))
	})
	It("is blocked by a PodDisruptionBudget that allows no eviction", func() {
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "no-evictions", Namespace: pods[0].Namespace},
			Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: podLabel}, MaxUnavailable: ptr.To(intstr.FromInt32(0))}}
		ExpectApplied(ctx, env.Client, pdb)
		apply()
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(poolClaims()).To(HaveLen(1), "no replacement launched")
		Expect(ExpectExists(ctx, env.Client, claim).Annotations).ToNot(HaveKey(v1alpha1.AnnotationRepackReplacements))
	})
	It("is blocked by a user's do-not-disrupt on a pod", func() {
		pods[0].Annotations[karpv1.DoNotDisruptAnnotationKey] = "true"
		apply()
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(poolClaims()).To(HaveLen(1), "no replacement launched")
	})
	It("leaves the node alone when repack is off", func() {
		nc.Spec.GPU.Disruption.Repack = ptr.To(false)
		apply()
		ExpectSingletonReconciled(ctx, ctrl)
		Expect(poolClaims()).To(HaveLen(1))
		Expect(ExpectExists(ctx, env.Client, node).Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey), "released to core's consolidation")
	})
})
