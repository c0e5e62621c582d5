package aws_test

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

// kubelets plays the nodes of launched instances until ctx ends: a Node
// (with core's unregistered taint) for each launched NodeClaim, and, for a
// Node being deleted, what node termination does before it goes (its
// finalizers removed). never names NodeClaims whose node never joins.
func kubelets(ctx context.Context, kube client.Client, never func(*karpv1.NodeClaim) bool) {
	defer GinkgoRecover()
	for ctx.Err() == nil {
		claims := &karpv1.NodeClaimList{}
		nodes := &corev1.NodeList{}
		if kube.List(ctx, claims) != nil || kube.List(ctx, nodes) != nil {
			continue
		}
		byProvider := lo.SliceToMap(nodes.Items, func(n corev1.Node) (string, bool) { return n.Spec.ProviderID, true })
		for i := range claims.Items {
			c := &claims.Items[i]
			if c.Status.ProviderID == "" || !c.DeletionTimestamp.IsZero() || byProvider[c.Status.ProviderID] || never(c) {
				continue
			}
			_ = kube.Create(ctx, &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: c.Name, Labels: c.Labels},
				Spec:       corev1.NodeSpec{ProviderID: c.Status.ProviderID, Taints: []corev1.Taint{karpv1.UnregisteredNoExecuteTaint}},
				Status: corev1.NodeStatus{Capacity: c.Status.Capacity, Allocatable: c.Status.Allocatable,
					Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}},
			})
		}
		for i := range nodes.Items {
			n := &nodes.Items[i]
			if !n.DeletionTimestamp.IsZero() && len(n.Finalizers) > 0 {
				stored := n.DeepCopy()
				n.Finalizers = nil
				_ = kube.Patch(ctx, n, client.MergeFrom(stored))
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A chaos schedule on gang launches through the EC2 endpoint: six 4-node
// p5 gangs compete for room for 6 per zone in three zones while zones are
// made to refuse, the endpoint intermittently ignores MinTargetCapacity
// (partial answers), and one node never joins. Every gang must end
// Provisioned whole in one zone or Failed with nothing left, with no
// instance outliving its gang.
var _ = Describe("Gang launches on EC2 under chaos", func() {
	BeforeEach(setupNodeClassAndPool)
	It("leaves no partial gang and no leaked instance", func() {
		const gangs, size, perZone, seed = 6, 4, 6, 11
		rng := rand.New(rand.NewSource(seed))
		off := func(z string) fakeaws.Offering {
			return fakeaws.Offering{InstanceType: "p5.48xlarge", Zone: z, CapacityType: fakeaws.OnDemand}
		}
		for _, z := range zones {
			srv.SetCapacity(off(z), perZone)
		}
		DeferCleanup(func() {
			srv.IgnoreMinTargetCapacity(false)
			for _, z := range zones {
				srv.InsufficientCapacity(off(z), "-")
			}
		})
		before := len(srv.Instances())
		startManager()
		kctx, stop := context.WithCancel(ctx)
		DeferCleanup(stop)
		var mu sync.Mutex
		neverJoins, joinRng := "", rand.New(rand.NewSource(seed+1))
		go kubelets(kctx, env.Client, func(c *karpv1.NodeClaim) bool {
			mu.Lock()
			defer mu.Unlock()
			if neverJoins == "" && joinRng.Intn(8) == 0 {
				neverJoins = c.Name
			}
			return c.Name == neverJoins
		})

		var reqs []*autoscalingv1.ProvisioningRequest
		for i := 0; i < gangs; i++ {
			p := gangRequest()
			ExpectApplied(ctx, env.Client, p)
			reqs = append(reqs, p)
		}
		done := func(p *autoscalingv1.ProvisioningRequest) bool {
			return meta.IsStatusConditionTrue(p.Status.Conditions, autoscalingv1.Failed) || meta.IsStatusConditionTrue(p.Status.Conditions, autoscalingv1.Provisioned)
		}
		faults := map[string]int{}
		tick := 0
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			switch r := rng.Intn(10); {
			case r < 1:
				z := zones[rng.Intn(len(zones))]
				srv.InsufficientCapacity(off(z), "")
				faults["zone refuses"]++
				time.AfterFunc(2*time.Second, func() { srv.InsufficientCapacity(off(z), "-") })
			case r < 3:
				srv.IgnoreMinTargetCapacity(true)
				faults["partial answers"]++
				time.AfterFunc(time.Second, func() { srv.IgnoreMinTargetCapacity(false) })
			}
			if tick++; tick%5 == 0 {
				// The refusals age out of the unavailable-offerings cache
				// (its TTL, minutes in a real cluster).
				cloudProvider.Unavailable().Flush()
			}
			for i, p := range reqs {
				cur := &autoscalingv1.ProvisioningRequest{}
				Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(p), cur)).To(Succeed())
				reqs[i] = cur
			}
			if lo.EveryBy(reqs, done) {
				break
			}
			time.Sleep(time.Second)
		}
		Expect(lo.EveryBy(reqs, done)).To(BeTrue(), "every gang decided within 3 minutes")
		srv.IgnoreMinTargetCapacity(false)

		provisioned, failed := 0, 0
		var gangInstances []string
		Eventually(func(g Gomega) {
			provisioned, failed, gangInstances = 0, 0, nil
			for _, p := range reqs {
				claims := nodeClaimsOf(string(p.UID))
				if meta.IsStatusConditionTrue(p.Status.Conditions, autoscalingv1.Failed) {
					failed++
					g.Expect(claims).To(BeEmpty(), "a failed gang leaves nothing")
					continue
				}
				provisioned++
				g.Expect(claims).To(HaveLen(size), "a provisioned gang is whole")
				g.Expect(lo.Uniq(lo.Map(claims, func(c karpv1.NodeClaim, _ int) string { return c.Labels[corev1.LabelTopologyZone] }))).To(HaveLen(1))
				for _, c := range claims {
					g.Expect(c.StatusConditions().Get(karpv1.ConditionTypeRegistered).IsTrue()).To(BeTrue())
					gangInstances = append(gangInstances, c.Status.ProviderID)
				}
			}
			running := lo.Map(srv.LiveInstances(), func(i fakeaws.Instance, _ int) string { return "aws:///" + i.Zone + "/" + i.ID })
			g.Expect(running).To(ConsistOf(lo.ToAnySlice(gangInstances)...), "every running instance belongs to a provisioned gang (0 leaked)")
		}).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
		Expect(provisioned).To(BeNumerically(">", 0), "failures: %v", lo.FilterMap(reqs, func(p *autoscalingv1.ProvisioningRequest, _ int) (string, bool) {
			c := meta.FindStatusCondition(p.Status.Conditions, autoscalingv1.Failed)
			return lo.Ternary(c != nil, lo.FromPtr(c).Message, ""), c != nil
		}))
		Expect(provisioned).To(BeNumerically("<=", len(zones)*(perZone/size)), "capacity bounds the gangs that fit")
		launched := len(srv.Instances()) - before
		mu.Lock()
		defer mu.Unlock()
		fleets := len(srv.Requests("CreateFleet"))
		for _, p := range reqs {
			if c := meta.FindStatusCondition(p.Status.Conditions, autoscalingv1.Failed); c != nil {
				AddReportEntry("failed "+p.Name, c.Message)
			}
		}
		AddReportEntry("gang chaos on EC2", fmt.Sprintf("gangs=%d provisioned=%d failed=%d CreateFleet=%d instances started=%d running=%d leaked=0 partial=0 faults=%v neverJoins=%q",
			gangs, provisioned, failed, fleets, launched, len(gangInstances), faults, neverJoins))
	})
})
