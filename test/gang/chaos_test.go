package gang_test

import (
	"fmt"
	"math/rand"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

// A chaos schedule on gang launches: eight 4-node gangs compete for p4d
// capacity limited per zone, with random capacity refusals and nodes that
// never register. Whatever happens, every gang ends Provisioned whole in one
// zone or Failed with nothing left, and no instance outlives its NodeClaim.
var _ = Describe("Gang launches under chaos", func() {
	It("leaves no partial gang and no leaked instance", func() {
		const (
			gangs     = 8
			gangSize  = 4
			perZone   = 6
			seed      = 7
			maxRounds = 80
		)
		rng := rand.New(rand.NewSource(seed))
		before, err := fleet.List(ctx)
		Expect(err).ToNot(HaveOccurred())
		applyGPUNodePool()
		offering := func(z string) fake.Offering {
			return fake.Offering{InstanceType: "p4d.24xlarge", Zone: z, CapacityType: karpv1.CapacityTypeOnDemand}
		}
		for _, z := range zones {
			fleet.SetCapacity(offering(z), perZone)
		}
		DeferCleanup(func() {
			for _, z := range zones {
				fleet.SetCapacity(offering(z), -1)
				fleet.RefuseCapacity(offering(z), 0)
			}
			fleet.NeverRegisterNext(0)
		})
		ctrl := pr.NewController(pr.Options{Clock: env.Clock, KubeClient: env.Client, CloudProvider: cloudProvider, Cluster: cluster, Recorder: recorder,
			MaxAttempts: 3, RetryBackoff: time.Minute, LaunchTimeout: 4 * time.Minute})
		tmpl := podTemplate(8, "16", "64Gi", map[string]string{corev1.LabelInstanceTypeStable: "p4d.24xlarge"})
		ExpectApplied(ctx, env.Client, tmpl)
		var reqs []*autoscalingv1.ProvisioningRequest
		for i := 0; i < gangs; i++ {
			p := provReq(autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp, tmpl, gangSize)
			ExpectApplied(ctx, env.Client, p)
			reqs = append(reqs, p)
		}
		done := func(p *autoscalingv1.ProvisioningRequest) bool {
			return cond(p, autoscalingv1.Failed) != nil || (cond(p, autoscalingv1.Provisioned) != nil && cond(p, autoscalingv1.Provisioned).Status == metav1.ConditionTrue)
		}
		faults := map[string]int{}
		rounds := 0
		for ; rounds < maxRounds; rounds++ {
			// Chaos: a refusal somewhere, or a node that will never register.
			switch r := rng.Intn(10); {
			case r < 3:
				fleet.RefuseCapacity(offering(zones[rng.Intn(len(zones))]), 1)
				faults["capacity refusal"]++
			case r < 4:
				fleet.NeverRegisterNext(1)
				faults["never registers"]++
			}
			for i, p := range reqs {
				ExpectObjectReconciled(ctx, env.Client, ctrl, p)
				reqs[i] = ExpectExists(ctx, env.Client, p)
			}
			claims := &karpv1.NodeClaimList{}
			Expect(env.Client.List(ctx, claims)).To(Succeed())
			var unlaunched []*karpv1.NodeClaim
			for i := range claims.Items {
				c := &claims.Items[i]
				switch {
				case !c.DeletionTimestamp.IsZero():
					// What core's node termination does before the NodeClaim's own finalizer runs.
					if c.Status.NodeName != "" {
						node := &corev1.Node{}
						if err := env.Client.Get(ctx, client.ObjectKey{Name: c.Status.NodeName}, node); err == nil {
							ExpectDeleted(ctx, env.Client, node)
							ExpectFinalizersRemoved(ctx, env.Client, node)
						}
					}
					ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, c)
				case c.Status.ProviderID == "":
					unlaunched = append(unlaunched, c)
				case !c.StatusConditions().Get(karpv1.ConditionTypeRegistered).IsTrue():
					_, err := registrar.Reconcile(ctx, c)
					Expect(err).ToNot(HaveOccurred())
					ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, c)
				}
			}
			// Launched together, as core's concurrent lifecycle does: a gang
			// launches whole or is refused whole.
			launchAll(unlaunched)
			if lo.EveryBy(reqs, done) && lo.NoneBy(claims.Items, func(c karpv1.NodeClaim) bool { return !c.DeletionTimestamp.IsZero() }) {
				break
			}
			env.Clock.Step(30 * time.Second)
		}
		Expect(lo.EveryBy(reqs, done)).To(BeTrue(), "every gang decided within %d rounds", maxRounds)

		// Invariants.
		provisioned, failed, nodes := 0, 0, 0
		for _, p := range reqs {
			claims := nodeClaimsOf(string(p.UID))
			if cond(p, autoscalingv1.Failed) != nil {
				failed++
				Expect(claims).To(BeEmpty(), "a failed gang leaves nothing: %s", cond(p, autoscalingv1.Failed).Message)
				continue
			}
			provisioned++
			Expect(claims).To(HaveLen(gangSize), "a provisioned gang is whole")
			Expect(lo.Uniq(lo.Map(claims, func(c *karpv1.NodeClaim, _ int) string { return c.Labels[corev1.LabelTopologyZone] }))).To(HaveLen(1))
			for _, c := range claims {
				Expect(c.StatusConditions().Get(karpv1.ConditionTypeRegistered).IsTrue()).To(BeTrue())
				Expect(c.Labels).To(HaveKeyWithValue(v1alpha1.LabelGPUCount, "8"))
			}
			nodes += len(claims)
		}
		all, err := fleet.List(ctx)
		Expect(err).ToNot(HaveOccurred())
		launched := len(all) - len(before)
		live := lo.Filter(all, func(i *cloudprovider.Instance, _ int) bool { return i.State != cloudprovider.InstanceStateTerminated })
		Expect(live).To(HaveLen(nodes), "no instance outlives its gang (0 leaked)")
		Expect(provisioned).To(BeNumerically(">", 0))
		Expect(provisioned).To(BeNumerically("<=", len(zones)*(perZone/gangSize)), "capacity bounds the gangs that fit")
		AddReportEntry("gang chaos", fmt.Sprintf("gangs=%d size=%d rounds=%d provisioned=%d failed=%d instances launched=%d live=%d leaked=0 partial=0 faults=%v",
			gangs, gangSize, rounds, provisioned, failed, launched, len(live), faults))
		GinkgoWriter.Printf("gang chaos: gangs=%d provisioned=%d failed=%d rounds=%d instances launched=%d live=%d faults=%v\n",
			gangs, provisioned, failed, rounds, launched, len(live), faults)
	})
})
