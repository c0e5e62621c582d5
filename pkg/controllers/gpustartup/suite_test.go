package gpustartup_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/gpustartup"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// The controller's own suite, against Karpenter core's test environment (a
// real kube-apiserver and etcd from bin/k8s).
var (
	ctx  context.Context
	env  *test.Environment
	ctrl *gpustartup.Controller
)

func TestGPUStartup(t *testing.T) { controlplane.RunSuite(t, &ctx, "gpustartup") }

var _ = controlplane.EnvironmentSuite(&ctx, &env, func() {
	ctrl = gpustartup.NewController(gpustartup.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: events.NewRecorder(&record.FakeRecorder{})})
})

var _ = Describe("Stuck GPU nodes", func() {
	var (
		nc    *v1alpha1.GPUNodeClass
		claim *karpv1.NodeClaim
		node  *corev1.Node
	)
	BeforeEach(func() {
		nc = controlplane.GPUNodeClass()
		nc.Spec.GPU.StartupTimeout = &metav1.Duration{Duration: 15 * time.Minute}
		claim, node = test.NodeClaimAndNode(karpv1.NodeClaim{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{karpv1.NodePoolLabelKey: "stuck-pool", corev1.LabelInstanceTypeStable: "p4d.24xlarge"}},
			Spec:       karpv1.NodeClaimSpec{NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: nc.Name}},
			Status: karpv1.NodeClaimStatus{
				ProviderID: "fake://us-east-1a/i-stuck" + test.RandomName(),
				Capacity:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8"), corev1.ResourceCPU: resource.MustParse("96")},
			},
		})
		claim.Status.NodeName = node.Name
		// The device plugin never reported: the node advertises no GPUs.
		node.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("95")}
		node.Status.Capacity = node.Status.Allocatable
	})
	register := func() {
		ExpectApplied(ctx, env.Client, nc, claim, node)
		claim.StatusConditions().SetTrue(karpv1.ConditionTypeRegistered)
		ExpectApplied(ctx, env.Client, claim)
	}
	timeouts := func() float64 {
		return testutil.ToFloat64(gpustartup.TimeoutsTotal.WithLabelValues("stuck-pool", "p4d.24xlarge"))
	}

	It("replaces a node whose GPUs never appear, after startupTimeout, and counts it", func() {
		before := timeouts()
		register()
		ExpectObjectReconciled(ctx, env.Client, ctrl, claim)
		Expect(controlplane.DeletionRequested(ctx, env.Client, claim)).To(BeFalse(), "not before the timeout")
		Expect(timeouts()).To(Equal(before))
		env.Clock.Step(16 * time.Minute)
		ExpectObjectReconciled(ctx, env.Client, ctrl, ExpectExists(ctx, env.Client, claim))
		Expect(controlplane.DeletionRequested(ctx, env.Client, claim)).To(BeTrue())
		Expect(timeouts()).To(Equal(before+1), "karpenter_gpu_startup_timeouts_total{nodepool,instance_type}")
	})
	It("leaves a node alone once its GPUs are advertised", func() {
		before := timeouts()
		node.Status.Allocatable[v1alpha1.ResourceNVIDIAGPU] = resource.MustParse("8")
		register()
		env.Clock.Step(16 * time.Minute)
		ExpectObjectReconciled(ctx, env.Client, ctrl, claim)
		Expect(controlplane.DeletionRequested(ctx, env.Client, claim)).To(BeFalse())
		Expect(timeouts()).To(Equal(before))
	})
	It("records the failure reason on the NodeClaim before deleting it", func() {
		claim.Finalizers = []string{"test.karpenter-gpu.io/hold"} // keep the object to read its annotation
		register()
		env.Clock.Step(16 * time.Minute)
		ExpectObjectReconciled(ctx, env.Client, ctrl, ExpectExists(ctx, env.Client, claim))
		latest := ExpectExists(ctx, env.Client, claim)
		Expect(latest.Annotations[gpustartup.AnnotationStartupFailure]).To(ContainSubstring("nvidia.com/gpu"))
		Expect(latest.DeletionTimestamp.IsZero()).To(BeFalse())
	})
})
