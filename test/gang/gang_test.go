package gang_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

var zones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

// eightGPUNodes keeps each 8-GPU worker on its own 8-GPU node (the catalog
// also has a 16-GPU type that would take two).
var eightGPUNodes = map[string]string{v1alpha1.LabelGPUCount: "8"}

// gpuNodeClass is the shared minimal GPUNodeClass of the envtest suites
// (its selectors match the "envtest" discovery tag).
func gpuNodeClass() *v1alpha1.GPUNodeClass { return controlplane.GPUNodeClass() }

// gpuNodePool is a NodePool of amd64 nodes on nc (core's test.NodePool, with
// its CPU limit).
func gpuNodePool(nc *v1alpha1.GPUNodeClass) *karpv1.NodePool {
	return controlplane.NodePool(nc, karpv1.NodeSelectorRequirementWithMinValues{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}})
}

// applyGPUNodePool applies a GPUNodeClass, resolved by the status
// controller, and a gpuNodePool on it.
func applyGPUNodePool() {
	GinkgoHelper()
	nc := gpuNodeClass()
	ExpectApplied(ctx, env.Client, nc)
	ExpectObjectReconciled(ctx, env.Client, nodeClassCtrl, nc)
	ExpectApplied(ctx, env.Client, gpuNodePool(nc))
}

// podTemplate is a training worker asking for gpus GPUs.
func podTemplate(gpus int64, cpu, mem string, nodeSelector map[string]string) *corev1.PodTemplate {
	return &corev1.PodTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "worker-" + test.RandomName(), Namespace: "default"},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "trainer"}},
			Spec: corev1.PodSpec{
				NodeSelector: nodeSelector,
				Tolerations:  []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				Containers: []corev1.Container{{Name: "worker", Image: "trainer", Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem), v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
					Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
				}}},
			},
		},
	}
}

func provReq(class string, tmpl *corev1.PodTemplate, count int32) *autoscalingv1.ProvisioningRequest {
	return &autoscalingv1.ProvisioningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "job-" + test.RandomName(), Namespace: "default"},
		Spec: autoscalingv1.ProvisioningRequestSpec{
			ProvisioningClassName: class,
			PodSets:               []autoscalingv1.PodSet{{PodTemplateRef: autoscalingv1.Reference{Name: tmpl.Name}, Count: count}},
		},
	}
}

// orphanReconciler is the controller's NodeClaim reconciler.
func orphanReconciler(c *pr.Controller) (reconcile.ObjectReconciler[*karpv1.NodeClaim], error) {
	return objectReconciler(c.ReconcileNodeClaim), nil
}

type objectReconciler func(context.Context, *karpv1.NodeClaim) (reconcile.Result, error)

func (f objectReconciler) Reconcile(ctx context.Context, nc *karpv1.NodeClaim) (reconcile.Result, error) {
	return f(ctx, nc)
}

func cond(p *autoscalingv1.ProvisioningRequest, typ string) *metav1.Condition {
	return meta.FindStatusCondition(p.Status.Conditions, typ)
}

// isFailed is whether a request's Failed condition is true.
func isFailed(p *autoscalingv1.ProvisioningRequest) bool {
	return meta.IsStatusConditionTrue(p.Status.Conditions, autoscalingv1.Failed)
}

var _ = Describe("ProvisioningRequest", func() {
	var ctrl *pr.Controller
	BeforeEach(func() {
		applyGPUNodePool()
		ctrl = pr.NewController(pr.Options{Clock: env.Clock, KubeClient: env.Client, CloudProvider: cloudProvider, Cluster: cluster, Recorder: recorder,
			MaxAttempts: 2, RetryBackoff: time.Minute, LaunchTimeout: 5 * time.Minute, BookingTTL: 10 * time.Minute})
	})

	reconcileReq := func(p *autoscalingv1.ProvisioningRequest) *autoscalingv1.ProvisioningRequest {
		GinkgoHelper()
		ExpectObjectReconciled(ctx, env.Client, ctrl, p)
		return ExpectExists(ctx, env.Client, p)
	}
	// launch runs core's lifecycle (the provider's Create) on each NodeClaim
	// and tells cluster state, as core's informer would.
	launch := func(claims []*karpv1.NodeClaim) {
		GinkgoHelper()
		launchAll(claims)
		for _, c := range claims {
			latest := &karpv1.NodeClaim{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c), latest); err == nil {
				cluster.UpdateNodeClaim(latest)
			}
		}
	}
	// register lets the fake kubelet create each launched NodeClaim's Node
	// and core's lifecycle register it.
	register := func(claims []*karpv1.NodeClaim) {
		GinkgoHelper()
		for _, c := range claims {
			c = ExpectExists(ctx, env.Client, c)
			_, err := registrar.Reconcile(ctx, c)
			Expect(err).ToNot(HaveOccurred())
			ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, c)
			c = ExpectExists(ctx, env.Client, c)
			Expect(c.StatusConditions().Get(karpv1.ConditionTypeRegistered).IsTrue()).To(BeTrue(), "NodeClaim %s registered", c.Name)
		}
	}
	// terminate runs core's lifecycle finalizer on deleted NodeClaims until
	// they are gone (their instances terminated).
	terminate := func(uid string) {
		GinkgoHelper()
		names := lo.Map(nodeClaimsOf(uid), func(c *karpv1.NodeClaim, _ int) string { return c.Name })
		defer func() {
			for _, n := range names {
				cluster.DeleteNodeClaim(n) // as core's informer does
			}
		}()
		for i := 0; i < 5 && len(nodeClaimsOf(uid)) > 0; i++ {
			for _, c := range nodeClaimsOf(uid) {
				Expect(c.DeletionTimestamp.IsZero()).To(BeFalse(), "NodeClaim %s of a rolled-back gang must be deleting", c.Name)
				ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, c)
			}
		}
		Expect(nodeClaimsOf(uid)).To(BeEmpty())
	}
	runningInstances := func() []*cloudprovider.Instance {
		GinkgoHelper()
		all, err := fleet.List(ctx)
		Expect(err).ToNot(HaveOccurred())
		return lo.Filter(all, func(i *cloudprovider.Instance, _ int) bool { return i.State != cloudprovider.InstanceStateTerminated })
	}
	// requestGang applies a best-effort-atomic request for four 8-GPU
	// workers on nodes with nodeSelector, reconciles it once and returns it
	// with the NodeClaims of its first attempt.
	requestGang := func(nodeSelector map[string]string) (*autoscalingv1.ProvisioningRequest, []*karpv1.NodeClaim) {
		GinkgoHelper()
		tmpl := podTemplate(8, "16", "64Gi", nodeSelector)
		ExpectApplied(ctx, env.Client, tmpl)
		p := provReq(autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp, tmpl, 4)
		ExpectApplied(ctx, env.Client, p)
		p = reconcileReq(p)
		Expect(cond(p, autoscalingv1.Accepted).Status).To(Equal(metav1.ConditionTrue))
		Expect(cond(p, autoscalingv1.Provisioned).Reason).To(Equal(pr.ReasonProvisioning))
		claims := nodeClaimsOf(string(p.UID))
		Expect(claims).To(HaveLen(4), "one 8-GPU node per worker")
		return p, claims
	}
	// provisionGang takes a 4-node request through launch and registration.
	provisionGang := func() (*autoscalingv1.ProvisioningRequest, []*karpv1.NodeClaim) {
		GinkgoHelper()
		p, claims := requestGang(eightGPUNodes)
		launch(claims)
		p = reconcileReq(p)
		Expect(cond(p, autoscalingv1.Provisioned).Status).To(Equal(metav1.ConditionFalse), "not provisioned before the nodes register")
		register(claims)
		p = reconcileReq(p)
		return p, nodeClaimsOf(string(p.UID))
	}

	It("provisions a 4-node GPU gang in one zone, held for its pods", func() {
		p, claims := provisionGang()
		c := cond(p, autoscalingv1.Provisioned)
		Expect(c.Status).To(Equal(metav1.ConditionTrue))
		Expect(c.Reason).To(Equal(pr.ReasonCapacityIsProvisioned))
		Expect(claims).To(HaveLen(4))
		zonesUsed := lo.Uniq(lo.Map(claims, func(c *karpv1.NodeClaim, _ int) string { return c.Labels[corev1.LabelTopologyZone] }))
		Expect(zonesUsed).To(HaveLen(1), "every node of the gang in one zone")
		Expect(zonesUsed[0]).To(Equal(string(p.Status.ProvisioningClassDetails[pr.DetailZone])))
		for _, c := range claims {
			Expect(c.Labels).To(HaveKeyWithValue(v1alpha1.LabelGPUCount, "8"))
			Expect(c.Annotations).To(HaveKeyWithValue(karpv1.DoNotDisruptAnnotationKey, "true"), "booked capacity is not disrupted")
			node := ExpectNodeExists(ctx, env.Client, c.Status.NodeName)
			Expect(node.Labels).To(HaveKeyWithValue(pr.LabelRequest, string(p.UID)))
		}
		Expect(runningInstances()).To(HaveLen(4))
		Expect(string(p.Status.ProvisioningClassDetails[pr.DetailBooking])).To(Equal(pr.BookingHeld))
	})

	bindPods := func(p *autoscalingv1.ProvisioningRequest, claims []*karpv1.NodeClaim) {
		GinkgoHelper()
		for _, c := range claims {
			ExpectApplied(ctx, env.Client, test.Pod(test.PodOptions{ObjectMeta: metav1.ObjectMeta{Name: "w-" + test.RandomName(), Namespace: "default",
				Annotations: map[string]string{autoscalingv1.ProvisioningRequestPodAnnotationKey: p.Name}}, NodeName: c.Status.NodeName}))
		}
	}

	It("releases the booking when the booking time passes before the pods bind", func() {
		p, claims := provisionGang()
		bindPods(p, claims[:2]) // two of four pods bind: still held
		p = reconcileReq(p)
		Expect(string(p.Status.ProvisioningClassDetails[pr.DetailBooking])).To(Equal(pr.BookingHeld))
		env.Clock.Step(10*time.Minute + time.Second)
		p = reconcileReq(p)
		c := cond(p, autoscalingv1.BookingExpired)
		Expect(c).ToNot(BeNil())
		Expect(c.Status).To(Equal(metav1.ConditionTrue))
		Expect(c.Reason).To(Equal(pr.ReasonCapacityReservationTimeExpired))
		Expect(string(p.Status.ProvisioningClassDetails[pr.DetailBooking])).To(Equal(pr.BookingExpired))
		for _, nc := range nodeClaimsOf(string(p.UID)) {
			Expect(nc.Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey), "released to consolidation")
			Expect(ExpectNodeExists(ctx, env.Client, nc.Status.NodeName).Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey))
		}
		Expect(runningInstances()).To(HaveLen(4), "releasing is not deleting: consolidation decides")
	})

	It("releases the booking without expiry once every pod is bound", func() {
		p, claims := provisionGang()
		bindPods(p, claims)
		p = reconcileReq(p)
		Expect(cond(p, autoscalingv1.BookingExpired)).To(BeNil())
		Expect(string(p.Status.ProvisioningClassDetails[pr.DetailBooking])).To(Equal(pr.BookingConsumed))
		for _, nc := range nodeClaimsOf(string(p.UID)) {
			Expect(nc.Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey))
		}
	})

	It("reports CapacityRevoked when a booked node goes away before the pods come", func() {
		p, claims := provisionGang()
		Expect(env.Client.Delete(ctx, claims[0])).To(Succeed())
		p = reconcileReq(p)
		c := cond(p, autoscalingv1.CapacityRevoked)
		Expect(c).ToNot(BeNil())
		Expect(c.Status).To(Equal(metav1.ConditionTrue))
		Expect(c.Message).To(ContainSubstring(claims[0].Name))
		for _, nc := range nodeClaimsOf(string(p.UID)) {
			Expect(nc.Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey))
		}
	})

	It("rolls back a gang the capacity cannot hold, retries with backoff, then fails with nothing left", func() {
		// p4d.24xlarge has room for 3 per zone: a 4-node gang never fits in one.
		limitP4d(3)
		tmpl := podTemplate(8, "16", "64Gi", map[string]string{corev1.LabelInstanceTypeStable: "p4d.24xlarge"})
		ExpectApplied(ctx, env.Client, tmpl)
		p := provReq(autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp, tmpl, 4)
		ExpectApplied(ctx, env.Client, p)
		usedZones := map[string]bool{}
		_, refusedBefore := fleet.GroupCounts()
		for attempt := 1; attempt <= 2; attempt++ {
			p = reconcileReq(p)
			claims := nodeClaimsOf(string(p.UID))
			Expect(claims).To(HaveLen(4), "attempt %d launches the whole gang", attempt)
			usedZones[string(p.Status.ProvisioningClassDetails[pr.DetailZone])] = true
			launch(claims) // the fleet refuses the gang whole (3 of 4 fit): core deletes every NodeClaim
			Expect(runningInstances()).To(BeEmpty(), "attempt %d: nothing of a refused gang launches", attempt)
			for _, c := range nodeClaimsOf(string(p.UID)) {
				Expect(c.DeletionTimestamp.IsZero()).To(BeFalse(), "attempt %d: core deletes every refused NodeClaim", attempt)
			}
			env.Clock.Step(20 * time.Second)
			p = reconcileReq(p)
			terminate(string(p.UID))
			Expect(runningInstances()).To(BeEmpty(), "attempt %d rolled back", attempt)
			if attempt == 1 {
				c := cond(p, autoscalingv1.Provisioned)
				Expect(c.Status).To(Equal(metav1.ConditionFalse))
				Expect(c.Reason).To(Equal(pr.ReasonCapacityIsNotFound))
				Expect(c.Message).To(MatchRegexp(`retrying in 1m[0-9]+s`), "30 s doubled, plus up to a fifth")
				Expect(cond(p, autoscalingv1.Failed)).To(BeNil())
				// Within the backoff nothing is launched.
				p = reconcileReq(p)
				Expect(nodeClaimsOf(string(p.UID))).To(BeEmpty())
				env.Clock.Step(time.Minute + 13*time.Second)
			}
		}
		Expect(usedZones).To(HaveLen(2), "the retry avoids the zone that refused")
		_, refused := fleet.GroupCounts()
		Expect(refused-refusedBefore).To(Equal(2), "each attempt reached the fleet as one group launch, refused whole")
		c := cond(p, autoscalingv1.Failed)
		Expect(c).ToNot(BeNil())
		Expect(c.Status).To(Equal(metav1.ConditionTrue))
		Expect(c.Message).To(ContainSubstring("attempt 2 of 2"))
		// Failed is final: nothing more is launched.
		p = reconcileReq(p)
		Expect(nodeClaimsOf(string(p.UID))).To(BeEmpty())
		Expect(runningInstances()).To(BeEmpty())
	})

	It("rolls back a gang whose nodes do not all register within the launch timeout", func() {
		p, claims := requestGang(eightGPUNodes)
		launch(claims)
		register(claims[:3]) // the fourth never registers
		env.Clock.Step(5*time.Minute + time.Second)
		p = reconcileReq(p)
		c := cond(p, autoscalingv1.Provisioned)
		Expect(c.Status).To(Equal(metav1.ConditionFalse))
		Expect(c.Message).To(ContainSubstring("3 of 4 nodes registered"))
		for _, nc := range nodeClaimsOf(string(p.UID)) {
			Expect(nc.DeletionTimestamp.IsZero()).To(BeFalse(), "every NodeClaim of the gang is deleted")
			// What core's node termination does before the NodeClaim's own finalizer runs.
			if nc.Status.NodeName != "" {
				node := ExpectNodeExists(ctx, env.Client, nc.Status.NodeName)
				ExpectFinalizersRemoved(ctx, env.Client, node)
				ExpectDeleted(ctx, env.Client, node)
			}
		}
		terminate(string(p.UID))
		Expect(runningInstances()).To(BeEmpty(), "the registered nodes' instances and the one that never registered are terminated")
	})

	// p4d.24xlarge supports EFA: its gangs get a cluster placement group.
	p4dGang := func() (*autoscalingv1.ProvisioningRequest, []*karpv1.NodeClaim, string) {
		GinkgoHelper()
		p, claims := requestGang(map[string]string{corev1.LabelInstanceTypeStable: "p4d.24xlarge"})
		g, ok := cloudprovider.GangOf(claims[0])
		Expect(ok).To(BeTrue(), "the NodeClaims carry their gang")
		return p, claims, fake.GangPlacementGroupName(g)
	}

	It("launches an EFA gang whole into one placement group, in one zone", func() {
		_, claims, group := p4dGang()
		launch(claims)
		insts := runningInstances()
		Expect(insts).To(HaveLen(4))
		Expect(lo.Uniq(lo.Map(insts, func(i *cloudprovider.Instance, _ int) string { return fleet.PlacementGroupOf(i.ID) }))).To(Equal([]string{group}),
			"every node of the gang in the gang's placement group")
		Expect(lo.Uniq(lo.Map(insts, func(i *cloudprovider.Instance, _ int) string { return i.Zone }))).To(HaveLen(1))
		launched, _ := fleet.GroupCounts()
		Expect(launched).To(BeNumerically(">", 0))
	})

	It("rolls back a gang its placement group cannot hold, with nothing launched", func() {
		p, claims, group := p4dGang()
		fleet.SetPlacementGroupCapacity(group, 2)
		DeferCleanup(func() { fleet.SetPlacementGroupCapacity(group, -1) })
		launch(claims)
		Expect(runningInstances()).To(BeEmpty(), "nothing of a gang its placement group cannot hold launches")
		for _, c := range nodeClaimsOf(string(p.UID)) {
			Expect(c.DeletionTimestamp.IsZero()).To(BeFalse(), "core deletes every refused NodeClaim")
		}
		env.Clock.Step(20 * time.Second)
		p = reconcileReq(p)
		terminate(string(p.UID))
		c := cond(p, autoscalingv1.Provisioned)
		Expect(c.Status).To(Equal(metav1.ConditionFalse))
		Expect(c.Reason).To(Equal(pr.ReasonCapacityIsNotFound))
		Expect(runningInstances()).To(BeEmpty())
	})

	It("answers check-capacity from existing nodes without launching", func() {
		// An existing 8-GPU node with room for two 4-GPU workers.
		claim, node := test.NodeClaimAndNode(karpv1.NodeClaim{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{corev1.LabelTopologyZone: "us-east-1a", corev1.LabelInstanceTypeStable: "p4d.24xlarge",
				karpv1.CapacityTypeLabelKey: karpv1.CapacityTypeOnDemand, karpv1.NodePoolLabelKey: "existing", corev1.LabelArchStable: "amd64"}},
			Status: karpv1.NodeClaimStatus{ProviderID: test.RandomProviderID(),
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("96"), corev1.ResourceMemory: resource.MustParse("1000Gi"), v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8"), corev1.ResourcePods: resource.MustParse("110")},
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("95"), corev1.ResourceMemory: resource.MustParse("990Gi"), v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8"), corev1.ResourcePods: resource.MustParse("110")}},
		})
		node.Spec.Taints = nil // registered: no karpenter.sh/unregistered taint
		ExpectApplied(ctx, env.Client, claim, node)
		ExpectMakeNodesInitialized(ctx, env.Client, env.Clock, node)
		ExpectMakeNodeClaimsInitialized(ctx, env.Client, env.Clock, claim)
		cluster.UpdateNodeClaim(ExpectExists(ctx, env.Client, claim))
		Expect(cluster.UpdateNode(ctx, ExpectExists(ctx, env.Client, node))).To(Succeed())
		before := len(ExpectNodeClaims(ctx, env.Client))

		tmpl := podTemplate(4, "8", "32Gi", nil)
		ExpectApplied(ctx, env.Client, tmpl)
		fits := provReq(autoscalingv1.ProvisioningClassCheckCapacity, tmpl, 2)
		tooBig := provReq(autoscalingv1.ProvisioningClassCheckCapacity, tmpl, 3)
		ExpectApplied(ctx, env.Client, fits, tooBig)
		fits, tooBig = reconcileReq(fits), reconcileReq(tooBig)

		Expect(cond(fits, autoscalingv1.Provisioned).Status).To(Equal(metav1.ConditionTrue))
		Expect(cond(fits, autoscalingv1.Provisioned).Reason).To(Equal(pr.ReasonCapacityIsFound))
		Expect(cond(tooBig, autoscalingv1.Provisioned).Status).To(Equal(metav1.ConditionFalse))
		Expect(cond(tooBig, autoscalingv1.Provisioned).Reason).To(Equal(pr.ReasonCapacityIsNotFound))
		Expect(cond(tooBig, autoscalingv1.Provisioned).Message).To(ContainSubstring("2 of 3 pods"))
		Expect(ExpectNodeClaims(ctx, env.Client)).To(HaveLen(before), "check-capacity launches nothing")
		Expect(runningInstances()).To(BeEmpty())

		// The booking of a check-capacity answer expires like any other.
		env.Clock.Step(10*time.Minute + time.Second)
		fits = reconcileReq(fits)
		Expect(cond(fits, autoscalingv1.BookingExpired).Status).To(Equal(metav1.ConditionTrue))
	})

	It("deletes the in-flight NodeClaims of a request that is deleted, and releases registered ones", func() {
		tmpl := podTemplate(8, "16", "64Gi", eightGPUNodes)
		ExpectApplied(ctx, env.Client, tmpl)
		p := provReq(autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp, tmpl, 4)
		ExpectApplied(ctx, env.Client, p)
		p = reconcileReq(p)
		claims := nodeClaimsOf(string(p.UID))
		Expect(claims).To(HaveLen(4))
		launch(claims)
		register(claims[:1])
		ExpectDeleted(ctx, env.Client, p)
		for _, c := range nodeClaimsOf(string(p.UID)) {
			ExpectObjectReconciled(ctx, env.Client, lo.Must(orphanReconciler(ctrl)), c)
		}
		left := nodeClaimsOf(string(p.UID))
		Expect(lo.CountBy(left, func(c *karpv1.NodeClaim) bool { return c.DeletionTimestamp.IsZero() })).To(Equal(1), "only the registered node stays")
		for _, c := range left {
			if c.DeletionTimestamp.IsZero() {
				Expect(c.Annotations).ToNot(HaveKey(karpv1.DoNotDisruptAnnotationKey), "and it is released")
			}
		}
	})

	It("fails a request whose PodTemplate is missing", func() {
		p := provReq(autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp, &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: "missing"}}, 2)
		ExpectApplied(ctx, env.Client, p)
		p = reconcileReq(p)
		Expect(cond(p, autoscalingv1.Failed).Reason).To(Equal(pr.ReasonFailedToCreatePods))
		Expect(cond(p, autoscalingv1.Failed).Message).To(ContainSubstring("PodTemplate default/missing"))
		Expect(nodeClaimsOf(string(p.UID))).To(BeEmpty())
	})

	It("leaves requests of other classes alone", func() {
		tmpl := podTemplate(1, "1", "1Gi", nil)
		ExpectApplied(ctx, env.Client, tmpl)
		p := provReq("queued-provisioning.gke.io", tmpl, 1)
		ExpectApplied(ctx, env.Client, p)
		p = reconcileReq(p)
		Expect(p.Status.Conditions).To(BeEmpty())
	})
})
