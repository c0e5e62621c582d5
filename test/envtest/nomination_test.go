package envtest_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nomination"
)

// The nomination controller against the real API server: core's provisioner
// plans pods on NodeClaims, core's lifecycle controller registers the nodes
// the test creates for them, and the controller writes each pending pod's
// status.nominatedNodeName (KEP-5278).
var _ = Describe("Nominating pending pods to the nodes launched for them", func() {
	var ctrl *nomination.Controller
	BeforeEach(func() {
		nc := core.ResolvedNodeClass(ctx, gpuNodeClass())
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))
		ctrl = nomination.NewController(nomination.Options{KubeClient: env.Client, Cluster: cluster})
	})
	nominated := func(p *corev1.Pod) string {
		GinkgoHelper()
		ExpectReconcileSucceeded(ctx, ctrl, client.ObjectKeyFromObject(p))
		return ExpectExists(ctx, env.Client, p).Status.NominatedNodeName
	}
	// register creates the Node the instance would join as and runs core's
	// registration, which writes the NodeClaim's status.nodeName.
	register := func(claim *karpv1.NodeClaim) string {
		GinkgoHelper()
		claim = ExpectExists(ctx, env.Client, claim)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "node-" + claim.Name, Labels: map[string]string{corev1.LabelHostname: "node-" + claim.Name}},
			Spec:       corev1.NodeSpec{ProviderID: claim.Status.ProviderID, Taints: []corev1.Taint{karpv1.UnregisteredNoExecuteTaint}},
		}
		ExpectApplied(ctx, env.Client, node)
		ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, claim)
		claim = ExpectExists(ctx, env.Client, claim)
		Expect(claim.Status.NodeName).To(Equal(node.Name), "core's registration names the node")
		cluster.UpdateNodeClaim(claim)
		return node.Name
	}

	It("nominates each pod to the node launched for it once that registers, sets it again if kube-scheduler clears it while the node starts, leaves other nominations alone, and clears its own when the plan is gone", func() {
		// Each pod on a node of its own GPU count: two NodeClaims.
		count := func(n string) corev1.NodeSelectorRequirement {
			return corev1.NodeSelectorRequirement{Key: v1alpha1.LabelGPUCount, Operator: corev1.NodeSelectorOpIn, Values: []string{n}}
		}
		small, big := gpuPod(1, "3", "12Gi", count("1")), gpuPod(4, "40", "160Gi", count("4"))
		claims := core.ProvisionAndLaunch(ctx, small, big)
		Expect(claims).To(HaveLen(2), "a node for each pod")
		planned := map[string]*karpv1.NodeClaim{}
		for _, p := range []*corev1.Pod{small, big} {
			name := cluster.PodNodeClaimMapping(client.ObjectKeyFromObject(p))
			Expect(name).ToNot(BeEmpty(), "core's provisioner planned %s on a NodeClaim", p.Name)
			planned[p.Name] = &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}}
		}
		Expect(planned[small.Name].Name).ToNot(Equal(planned[big.Name].Name))
		Expect(ExpectExists(ctx, env.Client, planned[big.Name]).Labels[v1alpha1.LabelGPUCount]).To(Equal("4"))

		By("launched but not registered: no node name yet, nothing written")
		Expect(nominated(small)).To(BeEmpty())

		By("registered: each pod is nominated to its own node")
		smallNode, bigNode := register(planned[small.Name]), register(planned[big.Name])
		Expect(nominated(small)).To(Equal(smallNode))
		Expect(nominated(big)).To(Equal(bigNode))

		// clear does what kube-scheduler v1.36 does after a failed cycle
		// whose preemption finds no victims.
		clear := func(p *corev1.Pod) {
			GinkgoHelper()
			latest := ExpectExists(ctx, env.Client, p)
			stored := latest.DeepCopy()
			latest.Status.NominatedNodeName = ""
			Expect(env.Client.Status().Patch(ctx, latest, client.MergeFrom(stored))).To(Succeed())
		}
		By("cleared by kube-scheduler while the node is still starting: set again")
		clear(big)
		Expect(nominated(big)).To(Equal(bigNode))

		By("a later run's plan that would over-fill the node: not nominated there")
		// As a later provisioning run can place a pod on a NodeClaim whose
		// first-planned pod it moved elsewhere: kube-scheduler would hold
		// both shares and bind neither.
		extra := gpuPod(4, "40", "160Gi", count("4"))
		ExpectApplied(ctx, env.Client, extra)
		cluster.UpdatePodToNodeClaimMapping(map[string][]*corev1.Pod{planned[big.Name].Name: {extra}})
		Expect(nominated(extra)).To(BeEmpty(), "the 4-GPU node already holds the big pod's 4 GPUs")
		Expect(nominated(big)).To(Equal(bigNode))

		By("cleared once the node is initialized: kube-scheduler chose otherwise, left cleared")
		claim := ExpectExists(ctx, env.Client, planned[small.Name])
		claim.StatusConditions().SetTrue(karpv1.ConditionTypeInitialized)
		ExpectApplied(ctx, env.Client, claim)
		clear(small)
		Expect(nominated(small)).To(BeEmpty())

		By("a nomination someone else made (kube-scheduler's preemption) is not overwritten")
		other := ExpectExists(ctx, env.Client, small)
		stored := other.DeepCopy()
		other.Status.NominatedNodeName = "preemption-target"
		Expect(env.Client.Status().Patch(ctx, other, client.MergeFrom(stored))).To(Succeed())
		Expect(nominated(small)).To(Equal("preemption-target"))

		By("the NodeClaim is being deleted: the nomination this controller made is cleared")
		Expect(env.Client.Delete(ctx, ExpectExists(ctx, env.Client, planned[big.Name]))).To(Succeed())
		Expect(ExpectExists(ctx, env.Client, planned[big.Name]).DeletionTimestamp.IsZero()).To(BeFalse(), "still terminating")
		Expect(nominated(big)).To(BeEmpty())
	})
})
