package envtest_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/events"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpuprov "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// Drain by attrition: a g6.48xlarge ($13.35/h, 8 GPUs) left with two 1-GPU
// pods that cost $20 each to evict is reclaimable but, at
// breakEvenPercent 1000, far from release: it stays protected and is
// soft-cordoned. Core's scheduler treats the PreferNoSchedule taint as
// hard, so a pending pod that only fits there would launch a node while
// kube-scheduler binds it to the cordoned node; karpenter-gpu's
// provisioning loop lifts the cordon instead and launches nothing.
var _ = Describe("Drain by attrition (soft cordon)", func() {
	var (
		nc    *v1alpha1.GPUNodeClass
		np    *karpv1.NodePool
		claim *karpv1.NodeClaim
		node  *corev1.Node
		pods  []*corev1.Pod
		loop  *gpuprov.Controller
	)
	bigNode := func(name string) (*karpv1.NodeClaim, *corev1.Node) {
		c, n := controlplane.RunningGPUNode(nc, np, "g6.48xlarge", 8, 192)
		for _, rl := range []corev1.ResourceList{c.Status.Capacity, c.Status.Allocatable, n.Status.Capacity, n.Status.Allocatable} {
			rl[corev1.ResourceMemory] = resource.MustParse("700Gi")
		}
		c.Labels = lo.Assign(c.Labels, map[string]string{corev1.LabelArchStable: "amd64", corev1.LabelOSStable: "linux",
			v1alpha1.LabelGPUName: "l4", v1alpha1.LabelGPUManufacturer: "nvidia"})
		n.Labels = lo.Assign(n.Labels, c.Labels)
		n.Spec.Taints = []corev1.Taint{{Key: v1alpha1.ResourceNVIDIAGPU, Effect: corev1.TaintEffectNoSchedule}}
		// Registered and initialized, as core's lifecycle labels them: core's
		// scheduler reads such a node's own taints (an unregistered one's
		// come from its NodeClaim).
		n.Labels[karpv1.NodeRegisteredLabelKey] = "true"
		n.Labels[karpv1.NodeInitializedLabelKey] = "true"
		return c, n
	}
	BeforeEach(func() {
		nc, np = disruptingPool(v1alpha1.GPUDisruption{DrainByAttrition: ptr.To(true), Repack: ptr.To(false), BreakEvenPercent: ptr.To(int32(1000))})
		claim, node = bigNode("attrition")
		pods = []*corev1.Pod{controlplane.GPUWorkPod(node, "2", "8Gi", 1, "20"), controlplane.GPUWorkPod(node, "2", "8Gi", 1, "20")}
		recorder := events.NewRecorder(&record.FakeRecorder{})
		loop = gpuprov.NewController(gpuprov.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: recorder, Provisioner: prov, Cluster: cluster,
			Refiner: gpuprov.NewPacker(gpuprov.PackerOptions{KubeClient: env.Client, CloudProvider: cloudProvider, Cluster: cluster}), DirectMinPods: -1})
	})
	// applyNode creates a node with its pods and tells cluster state, as
	// core's informers would.
	applyNode := func(c *karpv1.NodeClaim, n *corev1.Node, ps ...*corev1.Pod) {
		GinkgoHelper()
		ExpectApplied(ctx, env.Client, c, n)
		// The API server's TaintNodesByCondition admission adds the
		// not-ready taint; the node lifecycle controller (not running
		// here) removes it once the node is Ready.
		n = ExpectExists(ctx, env.Client, n)
		n.Spec.Taints = lo.Reject(n.Spec.Taints, func(t corev1.Taint, _ int) bool { return t.Key == corev1.TaintNodeNotReady })
		ExpectApplied(ctx, env.Client, n)
		for _, p := range ps {
			ExpectApplied(ctx, env.Client, p)
		}
		c.StatusConditions().SetTrue(karpv1.ConditionTypeLaunched)
		c.StatusConditions().SetTrue(karpv1.ConditionTypeRegistered)
		c.StatusConditions().SetTrue(karpv1.ConditionTypeInitialized)
		ExpectApplied(ctx, env.Client, c)
		syncState(c, n, ps...)
	}
	cordoned := func() bool {
		GinkgoHelper()
		return v1alpha1.SoftCordoned(ExpectExists(ctx, env.Client, node))
	}
	pendingPod := func() *corev1.Pod {
		p := gpuPod(1, "2", "8Gi")
		p.Spec.Tolerations = []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists}}
		return p
	}

	It("soft-cordons a reclaimable node, lifts the cordon instead of launching for a pod only it can hold, and re-cordons after the hold-off", func() {
		ExpectApplied(ctx, env.Client, nc, np)
		applyNode(claim, node, pods...)
		ExpectSingletonReconciled(ctx, idleCtrl)
		n := ExpectExists(ctx, env.Client, node)
		Expect(n.Annotations).To(HaveKeyWithValue(karpv1.DoNotDisruptAnnotationKey, "true"), "still protected: far below break-even")
		Expect(n.Spec.Taints).To(ContainElement(v1alpha1.DrainingTaint), "reclaimable: soft-cordoned")
		Expect(n.Spec.Taints).To(ContainElement(HaveField("Key", v1alpha1.ResourceNVIDIAGPU)), "the other taints are kept")
		syncState(claim, n)

		By("a pending pod that fits only on the cordoned node: no launch, the cordon is lifted")
		ExpectApplied(ctx, env.Client, pendingPod())
		results, err := loop.Schedule(ctx)
		Expect(err).ToNot(HaveOccurred())
		Expect(results.NewNodeClaims).To(BeEmpty(), "no phantom launch")
		Expect(cordoned()).To(BeFalse())
		Expect(ExpectExists(ctx, env.Client, node).Annotations).To(HaveKey(v1alpha1.AnnotationUncordonedAt))

		By("the next decision sees the uncordoned node and launches nothing either")
		syncState(claim, ExpectExists(ctx, env.Client, node))
		results, err = loop.Schedule(ctx)
		Expect(err).ToNot(HaveOccurred())
		Expect(results.NewNodeClaims).To(BeEmpty(), "the pod fits on the existing node")

		By("not cordoned again during the hold-off, cordoned again after it")
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(cordoned()).To(BeFalse())
		env.Clock.Step(v1alpha1.UncordonHoldOff + time.Minute)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(cordoned()).To(BeTrue())
	})
	It("keeps the cordon when other capacity holds the pending pod (core places it there, nothing launches)", func() {
		ExpectApplied(ctx, env.Client, nc, np)
		applyNode(claim, node, pods...)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(cordoned()).To(BeTrue())
		syncState(claim, ExpectExists(ctx, env.Client, node))
		// A second node with room, not reclaimable enough to matter here
		// (it is never reconciled by the idle controller in this spec).
		other, otherNode := bigNode("other")
		applyNode(other, otherNode)

		ExpectApplied(ctx, env.Client, pendingPod())
		results, err := loop.Schedule(ctx)
		Expect(err).ToNot(HaveOccurred())
		Expect(results.NewNodeClaims).To(BeEmpty())
		placed := lo.Filter(results.ExistingNodes, func(en *scheduling.ExistingNode, _ int) bool { return len(en.Pods) > 0 })
		Expect(placed).To(HaveLen(1))
		Expect(placed[0].Name()).To(Equal(otherNode.Name), "placed on the node that is not draining")
		Expect(cordoned()).To(BeTrue(), "the cordon stays: the pod did not need the draining node")
	})
	It("never cordons without drainByAttrition, and removes the cordon when the node's GPU work ends", func() {
		nc.Spec.GPU.Disruption.DrainByAttrition = nil
		ExpectApplied(ctx, env.Client, nc, np)
		applyNode(claim, node, pods...)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(cordoned()).To(BeFalse(), "attrition is off by default")
		nc.Spec.GPU.Disruption.DrainByAttrition = ptr.To(true)
		ExpectApplied(ctx, env.Client, nc)
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(cordoned()).To(BeTrue())
		for _, p := range pods {
			ExpectDeleted(ctx, env.Client, p)
		}
		ExpectSingletonReconciled(ctx, idleCtrl)
		Expect(cordoned()).To(BeFalse(), "no GPU work left: idle-GPU removal takes over, the cordon goes")
	})
})

// syncState tells cluster state about a node, its NodeClaim and pods, as
// core's informer controllers do.
func syncState(c *karpv1.NodeClaim, n *corev1.Node, pods ...*corev1.Pod) {
	GinkgoHelper()
	cluster.UpdateNodeClaim(ExpectExists(ctx, env.Client, c))
	Expect(cluster.UpdateNode(ctx, n)).To(Succeed())
	for _, p := range pods {
		Expect(cluster.UpdatePod(ctx, ExpectExists(ctx, env.Client, p))).To(Succeed())
	}
}
