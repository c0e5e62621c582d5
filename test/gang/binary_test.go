package gang_test

import (
	"flag"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	coreoptions "sigs.k8s.io/karpenter/pkg/operator/options"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator/options"
	"github.com/karpenter-gpu/karpenter-gpu/test/gang/gangtest"
)

// The controller binary's fake backend (--backend=fake, as the end-to-end
// suites run it), built from its default flags by the code the binary
// builds it with (operator.NewFakeBackend), under a running manager: a
// gang the capacity cannot hold (room for 3 p4d per zone, a 4-node gang)
// reaches the fleet as one group launch and is refused whole, attempt
// after attempt, so no instance of it ever starts. Without the fleet's
// gang wait the members launch one by one: 3 start in every attempt and
// are rolled back.
var _ = Describe("The controller binary's fake backend", func() {
	It("refuses a gang the capacity cannot hold whole, with no instance ever started", func() {
		fs := &coreoptions.FlagSet{FlagSet: flag.NewFlagSet("controller", flag.ContinueOnError)}
		opts := &options.Options{}
		opts.AddFlags(fs)
		Expect(opts.Parse(fs, "--backend=fake")).To(Succeed())
		backend := operator.NewFakeBackend(opts, env.Client, clock.RealClock{})
		for _, z := range zones {
			backend.Fleet.SetCapacity(p4dIn(z), 3)
		}
		cp, err := gpucp.New(gpucp.Options{KubeClient: env.Client, Backend: backend.Fleet, Clock: clock.RealClock{}, ClusterName: "envtest"})
		Expect(err).ToNot(HaveOccurred())

		applyGPUNodePool()
		gangtest.StartManager(ctx, env.Config, cp, pr.Options{MaxAttempts: 3, RetryBackoff: time.Second, LaunchTimeout: time.Minute})

		tmpl := podTemplate(8, "16", "64Gi", map[string]string{corev1.LabelInstanceTypeStable: "p4d.24xlarge"})
		ExpectApplied(ctx, env.Client, tmpl)
		p := provReq(autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp, tmpl, 4)
		ExpectApplied(ctx, env.Client, p)
		Eventually(func(g Gomega) {
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(cond(p, autoscalingv1.Failed)).ToNot(BeNil(), "not failed yet: %v", p.Status.Conditions)
		}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(cond(p, autoscalingv1.Failed).Status).To(Equal(metav1.ConditionTrue))
		Expect(cond(p, autoscalingv1.Failed).Message).To(ContainSubstring("attempt 3 of 3 failed"))

		Eventually(func() int { return len(nodeClaimsOf(string(p.UID))) }).WithTimeout(30 * time.Second).Should(BeZero())
		all, err := backend.Fleet.List(ctx)
		Expect(err).ToNot(HaveOccurred())
		Expect(all).To(BeEmpty(), "the gang was refused whole: no instance of it ever started")
		groups, refused := backend.Fleet.GroupCounts()
		Expect(groups).To(BeZero())
		// An attempt reaches the fleet as one group launch of its 4; under
		// load an attempt can also fail before its NodeClaims launch (the
		// controller's create grace), so not every attempt need reach it.
		Expect(refused).To(And(BeNumerically(">=", 1), BeNumerically("<=", 3)), "each attempt's 4 launches reached the fleet as one group launch")
	})
})
