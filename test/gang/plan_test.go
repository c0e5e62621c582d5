package gang_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
)

// How long planning a gang takes (the packer once per zone), on the real
// catalog: the figures in designs/gang.md.
var _ = Describe("Gang planning", func() {
	It("plans gangs of 4 to 512 nodes in one zone, cheapest first", func() {
		nc := gpuNodeClass()
		ExpectApplied(ctx, env.Client, nc)
		ExpectObjectReconciled(ctx, env.Client, nodeClassCtrl, nc)
		np := gpuNodePool(nc)
		np.Spec.Limits = nil // test.NodePool's CPU limit would cap the 64-node gang (limits are honoured)
		ExpectApplied(ctx, env.Client, np)
		ctrl := pr.NewController(pr.Options{Clock: env.Clock, KubeClient: env.Client, CloudProvider: cloudProvider, Cluster: cluster, Recorder: recorder})
		for _, tt := range []struct {
			name      string
			gpus      int64
			cpu, mem  string
			pods      int
			wantNodes int
		}{
			{"4 × 8-GPU workers", 8, "16", "64Gi", 4, 4},
			{"64 × 8-GPU workers", 8, "16", "64Gi", 64, 64},
			{"512 × 1-GPU workers", 1, "4", "16Gi", 512, 0},
		} {
			tmpl := podTemplate(tt.gpus, tt.cpu, tt.mem, lo.Ternary(tt.gpus == 8, eightGPUNodes, nil))
			pods := make([]*corev1.Pod, tt.pods)
			for i := range pods {
				pods[i] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%d", i))},
					Spec: *tmpl.Template.Spec.DeepCopy()}
			}
			start := time.Now()
			plan, why, err := ctrl.PlanAtomic(ctx, pods)
			took := time.Since(start)
			Expect(err).ToNot(HaveOccurred())
			Expect(plan).ToNot(BeNil(), why)
			if tt.wantNodes > 0 {
				Expect(plan.NodeClaims).To(HaveLen(tt.wantNodes), tt.name)
			}
			placed := lo.SumBy(plan.NodeClaims, func(n *scheduling.NodeClaim) int { return len(n.Pods) })
			Expect(placed).To(Equal(tt.pods))
			for _, n := range plan.NodeClaims {
				Expect(n.Requirements.Get(corev1.LabelTopologyZone).Values()).To(Equal([]string{plan.Zone}), "every node in the plan's zone")
			}
			Expect(took).To(BeNumerically("<", 30*time.Second), tt.name)
			AddReportEntry("gang plan", fmt.Sprintf("%s: %d nodes in %s, $%.2f/h, planned in %s", tt.name, len(plan.NodeClaims), plan.Zone, plan.Cost, took.Round(time.Millisecond)))
			GinkgoWriter.Printf("gang plan: %s: %d nodes in %s, $%.2f/h, planned in %s\n", tt.name, len(plan.NodeClaims), plan.Zone, plan.Cost, took.Round(time.Millisecond))
		}
	})
})
