package gang_test

import (
	"fmt"
	"strings"
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

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	"github.com/karpenter-gpu/karpenter-gpu/test/gang/gangtest"
)

// The same failure as "rolls back a gang the capacity cannot hold", with
// nothing stepped by hand: the controller, Karpenter core's NodeClaim
// lifecycle and cluster-state informers run in a controller-runtime manager
// (informer cache, watches, requeues on the real clock) against the real
// API server. Every attempt is refused whole by the fleet (3 of 4 p4d fit
// in a zone; the gang's launches reach it as one group with
// MinTargetCapacity 4, as on AWS), so nothing launches; each is rolled
// back, retried with backoff in another zone, and the request ends Failed
// with no NodeClaim and no instance left running.
var _ = Describe("ProvisioningRequest under a running manager", func() {
	It("a request the capacity cannot satisfy becomes Failed with no instance left running", func() {
		limitP4d(3)
		applyGPUNodePool()
		before, err := fleet.List(ctx)
		Expect(err).ToNot(HaveOccurred())
		groupsBefore, refusedBefore := fleet.GroupCounts()

		gangtest.StartManager(ctx, env.Config, cloudProvider, pr.Options{MaxAttempts: 3, RetryBackoff: time.Second, LaunchTimeout: time.Minute})

		tmpl := podTemplate(8, "16", "64Gi", map[string]string{corev1.LabelInstanceTypeStable: "p4d.24xlarge"})
		ExpectApplied(ctx, env.Client, tmpl)
		p := provReq(autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp, tmpl, 4)
		start := time.Now()
		ExpectApplied(ctx, env.Client, p)

		// Watch the request until it fails, recording the attempts' zones
		// and the messages it reported on the way.
		zonesTried, messages := map[string]bool{}, map[string]bool{}
		Eventually(func(g Gomega) {
			cur := &autoscalingv1.ProvisioningRequest{}
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(p), cur)).To(Succeed())
			if z := string(cur.Status.ProvisioningClassDetails[pr.DetailZone]); z != "" {
				zonesTried[z] = true
			}
			if c := cond(cur, autoscalingv1.Provisioned); c != nil {
				messages[c.Message] = true
			}
			g.Expect(cond(cur, autoscalingv1.Failed)).ToNot(BeNil(), "not failed yet: %v", cur.Status.Conditions)
			p = cur
		}).WithTimeout(2 * time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		failedAfter := time.Since(start)

		f := cond(p, autoscalingv1.Failed)
		Expect(f.Status).To(Equal(metav1.ConditionTrue))
		Expect(f.Reason).To(Equal(pr.ReasonCapacityIsNotFound))
		Expect(f.Message).To(ContainSubstring("attempt 3 of 3 failed"))
		Expect(f.Message).To(ContainSubstring("everything launched for it was deleted"))
		Expect(cond(p, autoscalingv1.Provisioned).Status).To(Equal(metav1.ConditionFalse))
		// Each retry goes to a zone that has not refused: three refused
		// group launches (below) and every zone's p4d remembered as refused.
		// (Polling the request's zone can miss an attempt now that a refusal
		// takes milliseconds.)
		Expect(lo.Filter(zones, func(z string, _ int) bool {
			return cloudProvider.Unavailable().IsUnavailable("p4d.24xlarge", z, karpv1.CapacityTypeOnDemand)
		})).To(ConsistOf(zones), "each retry goes to a zone that has not refused; zones seen %v, messages %v", lo.Keys(zonesTried), lo.Keys(messages))
		// Every attempt recorded the NodeClaims it created (a reconcile
		// from a stale cached copy once recorded one that created none).
		Expect(lo.Filter(lo.Keys(messages), func(m string, _ int) bool { return strings.Contains(m, "recorded no NodeClaims") })).To(BeEmpty())
		retries := lo.Filter(lo.Keys(messages), func(m string, _ int) bool { return strings.Contains(m, "retrying in") })
		Expect(retries).ToNot(BeEmpty(), "the retries and their backoff were reported: %v", lo.Keys(messages))

		// Nothing of the gang is left: no NodeClaim, no running instance.
		Eventually(func(g Gomega) {
			g.Expect(nodeClaimsOf(string(p.UID))).To(BeEmpty())
			all, err := fleet.List(ctx)
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(lo.Filter(all, func(i *cloudprovider.Instance, _ int) bool { return i.State != cloudprovider.InstanceStateTerminated })).To(BeEmpty())
		}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		all, err := fleet.List(ctx)
		Expect(err).ToNot(HaveOccurred())
		launched := len(all) - len(before)
		Expect(launched).To(BeZero(), "three attempts, each refused whole: no partial gang ever launches")
		groups, refused := fleet.GroupCounts()
		Expect(groups - groupsBefore).To(BeZero())
		Expect(refused-refusedBefore).To(Equal(3), "each attempt reached the fleet as one group launch")
		// Failed is final: nothing launches afterwards.
		Consistently(func() int { return len(nodeClaimsOf(string(p.UID))) }).WithTimeout(3 * time.Second).Should(BeZero())
		AddReportEntry("gang failed under a manager", fmt.Sprintf("Failed after %s; zones tried %v; instances launched %d, running 0", failedAfter.Round(100*time.Millisecond), lo.Keys(zonesTried), launched))
		GinkgoWriter.Printf("gang failed under a manager after %s: zones %v, instances launched %d, running 0\n", failedAfter.Round(100*time.Millisecond), lo.Keys(zonesTried), launched)
	})
})
