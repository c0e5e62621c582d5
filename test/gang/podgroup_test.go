package gang_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/gang/gangtest"
)

// groupPod is a member of a pod group without Kueue: the group label, the
// minimum member count and the pod-group scheduling gate.
func groupPod(group string, i, minMembers int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", group, i), Namespace: "default",
			Labels:      map[string]string{pr.LabelPodGroup: group, "app": "trainer"},
			Annotations: map[string]string{pr.KeyPodGroupMinMembers: fmt.Sprint(minMembers)}},
		Spec: corev1.PodSpec{
			SchedulingGates: []corev1.PodSchedulingGate{{Name: pr.SchedulingGatePodGroup}},
			NodeSelector:    map[string]string{corev1.LabelInstanceTypeStable: "p4d.24xlarge"},
			Tolerations:     []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{Name: "worker", Image: "trainer", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("64Gi"), v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8")},
				Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8")},
			}}},
		},
	}
}

// Pod groups without Kueue, on the real API server with everything in a
// running manager: the pod-group controller, the ProvisioningRequest
// controller, core's NodeClaim lifecycle and state informers, and the fake
// fleet's registrar as the kubelets. The test binds pods as kube-scheduler
// would (envtest has none) once they are ungated.
var _ = Describe("Pod groups without Kueue", func() {
	BeforeEach(func() {
		applyGPUNodePool()

		// Registered first so it runs after the manager stops.
		DeferCleanup(func() {
			for _, o := range []client.Object{&corev1.Pod{}, &autoscalingv1.ProvisioningRequest{}, &corev1.PodTemplate{}} {
				Expect(env.Client.DeleteAllOf(ctx, o, client.InNamespace("default"))).To(Succeed())
			}
		})
		// The group's backoff keeps a failed request on the API server long
		// enough for the specs' 100 ms polls to see it Failed: it is counted
		// from the condition's transition time, which the API stores in
		// whole seconds, so a 1 s backoff can leave it there for a few
		// milliseconds.
		gangtest.StartManager(ctx, env.Config, cloudProvider, pr.Options{MaxAttempts: 1, RetryBackoff: time.Second, LaunchTimeout: time.Minute},
			func(ctx context.Context, mgr manager.Manager, o pr.Options) error {
				if err := pr.NewPodGroupController(pr.PodGroupOptions{Clock: o.Clock, KubeClient: o.KubeClient, APIReader: o.APIReader, Recorder: o.Recorder, RetryBackoff: 4 * time.Second}).Register(ctx, mgr); err != nil {
					return err
				}
				return fake.NewRegistrar(fake.RegistrarOptions{KubeClient: o.KubeClient, Fleet: fleet, Clock: o.Clock}).Register(ctx, mgr)
			})
	})

	requests := func(group string) []autoscalingv1.ProvisioningRequest {
		list := &autoscalingv1.ProvisioningRequestList{}
		Expect(env.Client.List(ctx, list, client.InNamespace("default"), client.MatchingLabels{pr.LabelPodGroup: group})).To(Succeed())
		return list.Items
	}
	gatedPods := func(group string) (gated, ungated []corev1.Pod) {
		list := &corev1.PodList{}
		Expect(env.Client.List(ctx, list, client.InNamespace("default"), client.MatchingLabels{pr.LabelPodGroup: group})).To(Succeed())
		for _, p := range list.Items {
			if len(p.Spec.SchedulingGates) > 0 {
				gated = append(gated, p)
			} else {
				ungated = append(ungated, p)
			}
		}
		return gated, ungated
	}
	running := func() []*cloudprovider.Instance {
		all, err := fleet.List(ctx)
		Expect(err).ToNot(HaveOccurred())
		return lo.Filter(all, func(i *cloudprovider.Instance, _ int) bool { return i.State != cloudprovider.InstanceStateTerminated })
	}

	It("waits for min-members, provisions the group all at once, then ungates its pods onto the gang's nodes", func() {
		for i := range 3 {
			ExpectApplied(ctx, env.Client, groupPod("train", i, 4))
		}
		// Three of four: nothing is requested or launched.
		Consistently(func(g Gomega) {
			g.Expect(requests("train")).To(BeEmpty())
			g.Expect(running()).To(BeEmpty())
		}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

		start := time.Now()
		ExpectApplied(ctx, env.Client, groupPod("train", 3, 4))
		var req autoscalingv1.ProvisioningRequest
		Eventually(func(g Gomega) {
			reqs := requests("train")
			g.Expect(reqs).To(HaveLen(1))
			req = reqs[0]
			_, ungated := gatedPods("train")
			if len(ungated) > 0 {
				// A pod is never ungated before its capacity is there.
				Expect(cond(&req, autoscalingv1.Provisioned)).ToNot(BeNil())
				Expect(cond(&req, autoscalingv1.Provisioned).Status).To(Equal(metav1.ConditionTrue), "pods ungated before the request was provisioned")
			}
			g.Expect(ungated).To(HaveLen(4))
		}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		provisionedAfter := time.Since(start)

		Expect(req.Name).To(Equal(pr.RequestName("train", 0)))
		Expect(req.Spec.ProvisioningClassName).To(Equal(autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp))
		Expect(req.Spec.PodSets).To(HaveLen(1), "identical members are one PodSet")
		Expect(req.Spec.PodSets[0].Count).To(BeEquivalentTo(4))
		Expect(cond(&req, autoscalingv1.Provisioned).Reason).To(Equal(pr.ReasonCapacityIsProvisioned))
		claims := nodeClaimsOf(string(req.UID))
		Expect(claims).To(HaveLen(4))
		Expect(lo.Uniq(lo.Map(claims, func(nc *karpv1.NodeClaim, _ int) string { return nc.Labels[corev1.LabelTopologyZone] }))).To(HaveLen(1))
		Expect(running()).To(HaveLen(4))
		_, ungated := gatedPods("train")
		for _, p := range ungated {
			Expect(p.Annotations).To(HaveKeyWithValue(autoscalingv1.ProvisioningRequestPodAnnotationKey, req.Name))
			Expect(p.Spec.Tolerations).To(ContainElement(pr.BookingToleration(string(req.UID))))
		}
		// Booked: the gang's nodes are tainted for the group's pods alone.
		for _, nc := range claims {
			node := &corev1.Node{}
			Expect(env.Client.Get(ctx, client.ObjectKey{Name: nc.Status.NodeName}, node)).To(Succeed())
			Expect(node.Spec.Taints).To(ContainElement(pr.BookingTaint(string(req.UID))), "node %s not booked", node.Name)
		}

		// kube-scheduler's part: bind each pod to a node of the gang.
		nodes := lo.Map(claims, func(nc *karpv1.NodeClaim, _ int) string { return nc.Status.NodeName })
		for i, p := range ungated {
			Expect(env.Client.SubResource("binding").Create(ctx, &p, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
				Target: corev1.ObjectReference{Kind: "Node", Name: nodes[i]}})).To(Succeed())
		}
		// The booking is released because the group's pods are bound.
		Eventually(func(g Gomega) {
			cur := &autoscalingv1.ProvisioningRequest{}
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&req), cur)).To(Succeed())
			g.Expect(string(cur.Status.ProvisioningClassDetails[pr.DetailBooking])).To(Equal(pr.BookingConsumed))
			// Released: the booking taint is off every node of the gang.
			for _, n := range nodes {
				node := &corev1.Node{}
				g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: n}, node)).To(Succeed())
				g.Expect(lo.Map(node.Spec.Taints, func(t corev1.Taint, _ int) string { return t.Key })).ToNot(ContainElement(pr.TaintBooked))
			}
		}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		AddReportEntry("pod group provisioned", provisionedAfter.Round(100*time.Millisecond).String())
		GinkgoWriter.Printf("pod group of 4 x p4d: 4th member applied -> all 4 ungated on a provisioned gang: %s\n", provisionedAfter.Round(100*time.Millisecond))

		// The group's pods gone: its request and PodTemplates go too.
		for _, p := range ungated {
			Expect(env.Client.Delete(ctx, &p, client.GracePeriodSeconds(0))).To(Succeed())
		}
		Eventually(func(g Gomega) {
			g.Expect(requests("train")).To(BeEmpty())
			tmpls := &corev1.PodTemplateList{}
			g.Expect(env.Client.List(ctx, tmpls, client.MatchingLabels{pr.LabelPodGroup: "train"})).To(Succeed())
			g.Expect(tmpls.Items).To(BeEmpty())
		}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	})

	It("keeps a group the capacity cannot hold gated with nothing running, and retries with a new request", func() {
		limitP4d(3)
		for i := range 4 {
			ExpectApplied(ctx, env.Client, groupPod("big", i, 4))
		}
		// The first request fails (its one attempt gets 3 of 4), the group
		// makes a second after its backoff; meanwhile every pod stays gated.
		seenFailed := map[string]bool{}
		var firstUID string
		Eventually(func(g Gomega) {
			gated, _ := gatedPods("big")
			Expect(gated).To(HaveLen(4), "a pod of a group without capacity was ungated")
			reqs := requests("big")
			// A failed request goes once its successor exists; two in flight
			// would launch the group twice.
			Expect(lo.CountBy(reqs, func(r autoscalingv1.ProvisioningRequest) bool { return !isFailed(&r) })).To(BeNumerically("<=", 1),
				"requests of one group in flight at once: %v", lo.Map(reqs, func(r autoscalingv1.ProvisioningRequest, _ int) string { return r.Name }))
			for _, r := range reqs {
				if isFailed(&r) {
					seenFailed[r.Name] = true
					if r.Name == pr.RequestName("big", 0) {
						firstUID = string(r.UID)
					}
				}
				Expect(cond(&r, autoscalingv1.Provisioned) == nil || cond(&r, autoscalingv1.Provisioned).Status != metav1.ConditionTrue).To(BeTrue())
			}
			g.Expect(seenFailed).To(HaveKey(pr.RequestName("big", 0)))
			g.Expect(lo.Map(requests("big"), func(r autoscalingv1.ProvisioningRequest, _ int) string { return r.Name })).To(ContainElement(pr.RequestName("big", 1)))
		}).WithTimeout(2 * time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		// Nothing of the failed request is left.
		Eventually(func() []*karpv1.NodeClaim { return nodeClaimsOf(firstUID) }).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(BeEmpty())
		gated, _ := gatedPods("big")
		Expect(gated).To(HaveLen(4))
		// The workload gives up (its pods deleted): the group's requests go;
		// whatever an attempt in flight had launched is deleted or, if
		// registered, no longer held from consolidation.
		for _, p := range gated {
			Expect(env.Client.Delete(ctx, &p, client.GracePeriodSeconds(0))).To(Succeed())
		}
		Eventually(func(g Gomega) {
			g.Expect(requests("big")).To(BeEmpty())
			ncs := &karpv1.NodeClaimList{}
			g.Expect(env.Client.List(ctx, ncs)).To(Succeed())
			for _, nc := range ncs.Items {
				g.Expect(nc.Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey), "NodeClaim %s still held", nc.Name)
				g.Expect(nc.StatusConditions().Get(karpv1.ConditionTypeRegistered).IsTrue() || !nc.DeletionTimestamp.IsZero()).To(BeTrue(), "NodeClaim %s in flight for a deleted group", nc.Name)
			}
		}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	})

	It("keeps a group whose members disagree on the minimum gated, with a Warning event on each pod", func() {
		ExpectApplied(ctx, env.Client, groupPod("odd", 0, 2))
		ExpectApplied(ctx, env.Client, groupPod("odd", 1, 3))
		Eventually(func(g Gomega) {
			list := &corev1.EventList{}
			g.Expect(env.Client.List(ctx, list, client.InNamespace("default"))).To(Succeed())
			on := map[string]string{}
			for _, e := range list.Items {
				if e.InvolvedObject.Kind == "Pod" && e.Reason == pr.NotProvisionedReason && e.Type == corev1.EventTypeWarning {
					on[e.InvolvedObject.Name] = e.Message
				}
			}
			g.Expect(on).To(HaveKeyWithValue("odd-0", ContainSubstring("other pods of the group say")))
			g.Expect(on).To(HaveKeyWithValue("odd-1", ContainSubstring("other pods of the group say")))
		}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		gated, _ := gatedPods("odd")
		Expect(gated).To(HaveLen(2))
		Expect(requests("odd")).To(BeEmpty())
	})
})
