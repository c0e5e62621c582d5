package envtest_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpuprov "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
)

// karpenter-gpu's provisioning loop (core's provisioner + the GPU packer)
// against the real API server, launching on the fake fleet through core's
// NodeClaim lifecycle controller.
var _ = Describe("karpenter-gpu provisioning loop", func() {
	var (
		nc      *v1alpha1.GPUNodeClass
		loop    *gpuprov.Controller
		refiner *gpuprov.Packer
	)
	BeforeEach(func() {
		nc = core.ResolvedNodeClass(ctx, gpuNodeClass())
		refiner = gpuprov.NewPacker(gpuprov.PackerOptions{KubeClient: env.Client, CloudProvider: cloudProvider, Cluster: cluster, KeepDecisions: true})
		loop = gpuprov.NewController(gpuprov.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: events.NewRecorder(&record.FakeRecorder{}),
			Provisioner: prov, Cluster: cluster, Refiner: refiner})
	})

	// provision runs one loop and launches what it created; it returns the
	// launched NodeClaims.
	provision := func() []*karpv1.NodeClaim {
		GinkgoHelper()
		names, err := loop.Provision(ctx)
		Expect(err).ToNot(HaveOccurred())
		var out []*karpv1.NodeClaim
		for _, name := range names {
			claim := &karpv1.NodeClaim{}
			Expect(env.Client.Get(ctx, client.ObjectKey{Name: name}, claim)).To(Succeed())
			ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, claim)
			claim = ExpectExists(ctx, env.Client, claim)
			// What core's NodeClaim informer does for cluster state.
			cluster.UpdateNodeClaim(claim)
			out = append(out, claim)
		}
		return out
	}
	gpuCounts := func(claims []*karpv1.NodeClaim) map[string]int {
		out := map[string]int{}
		for _, c := range claims {
			out[c.Labels[v1alpha1.LabelGPUCount]]++
		}
		return out
	}

	It("launches small GPU types for unschedulable 1-GPU pods instead of one large machine", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		for i := 0; i < 4; i++ {
			ExpectApplied(ctx, env.Client, gpuPod(1, "3", "12Gi"))
		}
		claims := provision()
		Expect(gpuCounts(claims)).To(Equal(map[string]int{"1": 4}), "four 1-GPU NodeClaims")
		Expect(refiner.Decisions()).To(HaveLen(1))
		d := refiner.Decisions()[0]
		Expect(d.Direct).To(BeFalse(), "a small batch goes through core's Solve, then the packer")
		Expect(d.PackedCost).To(BeNumerically("<", d.CoreCost), "core's own choice is more expensive: %s", d)
	})

	It("decides a burst of GPU pods on the direct path and reuses in-flight capacity on the next loop", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		n := gpuprov.DefaultDirectMinPods + 20
		launchesBefore := fleet.Launches()
		for i := 0; i < n; i++ {
			ExpectApplied(ctx, env.Client, gpuPod(1, "3", "12Gi"))
		}
		claims := provision()
		Expect(refiner.Decisions()).ToNot(BeEmpty())
		Expect(refiner.Decisions()[0].Direct).To(BeTrue())
		Expect(gpuCounts(claims)).To(Equal(map[string]int{"1": n}), "one 1-GPU NodeClaim per pod")
		for _, c := range claims {
			Expect(c.StatusConditions().Get(karpv1.ConditionTypeLaunched).IsTrue()).To(BeTrue())
		}
		// The pods are still pending (no nodes yet): the next loop must
		// find them room on the in-flight NodeClaims and launch nothing.
		again := provision()
		Expect(again).To(BeEmpty(), "no duplicate capacity for pods already provided for")
		list := &karpv1.NodeClaimList{}
		Expect(env.Client.List(ctx, list)).To(Succeed())
		Expect(list.Items).To(HaveLen(n))
		Expect(fleet.Launches()-launchesBefore).To(Equal(n), "one instance per pod, launched once")
	})

	It("leaves CPU-only pods to core on the direct path, off GPU types", func() {
		ExpectApplied(ctx, env.Client, gpuNodePool(nc, karpv1.NodeSelectorRequirementWithMinValues{Key: v1alpha1.LabelGPUCount, Operator: corev1.NodeSelectorOpExists}))
		for i := 0; i < gpuprov.DefaultDirectMinPods; i++ {
			ExpectApplied(ctx, env.Client, gpuPod(1, "3", "12Gi"))
		}
		ExpectApplied(ctx, env.Client, test.UnschedulablePod(test.PodOptions{
			ResourceRequirements: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
			NodeRequirements:     []corev1.NodeSelectorRequirement{{Key: v1alpha1.LabelGPUCount, Operator: corev1.NodeSelectorOpDoesNotExist}},
		}))
		claims := provision()
		Expect(refiner.Decisions()[0].Direct).To(BeTrue())
		Expect(claims).To(HaveLen(gpuprov.DefaultDirectMinPods), "one NodeClaim per GPU pod, none for the CPU pod")
		Expect(gpuCounts(claims)).To(Equal(map[string]int{"1": gpuprov.DefaultDirectMinPods}))
	})
})
