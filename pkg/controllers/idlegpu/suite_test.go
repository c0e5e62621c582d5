package idlegpu_test

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/coresuite"
)

// The controller's own suite, against Karpenter core's test environment (a
// real kube-apiserver and etcd from bin/k8s), with karpenter-gpu's cloud
// provider over the fake fleet to price nodes for break-even protection.
// The repacking specs, which need core's provisioner, are in test/envtest.
var (
	ctx           context.Context
	env           *test.Environment
	cloudProvider *gpucp.CloudProvider
	recorder      *test.EventRecorder
	ctrl          *idlegpu.Controller
)

func TestIdleGPU(t *testing.T) { controlplane.RunSuite(t, &ctx, "idlegpu") }

var _ = controlplane.CoreSuite(&ctx, &env, func() {
	cloudProvider = coresuite.CloudProvider(env, fake.NewFleet(fake.Options{Clock: env.Clock, Seed: 1}), "idlegpu")
}, nil)

// Each spec starts a new controller: its idle timers and break-even
// accounts are in memory, and it counts idle time from its start.
var _ = BeforeEach(func() {
	recorder = test.NewEventRecorder()
	ctrl = idlegpu.NewController(idlegpu.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: recorder, CloudProvider: cloudProvider})
})

// gpuNodePool is a NodePool on nc limited to amd64, so the right-sized
// replacements break-even prices are the x86 types the specs name.
func gpuNodePool(nc *v1alpha1.GPUNodeClass) *karpv1.NodePool {
	return controlplane.NodePool(nc, karpv1.NodeSelectorRequirementWithMinValues{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}})
}

// breakEvenPool is the setting of the break-even specs: a GPUNodeClass
// whose nodes running GPU work are protected until break-even at
// breakEvenPercent 100, with repacking off, and a gpuNodePool on it.
func breakEvenPool() (*v1alpha1.GPUNodeClass, *karpv1.NodePool) {
	nc := controlplane.GPUNodeClass()
	nc.Spec.GPU.Disruption = &v1alpha1.GPUDisruption{BreakEvenPercent: ptr.To(int32(100)), Repack: ptr.To(false)}
	return nc, gpuNodePool(nc)
}

// oversizedNode is a g6.48xlarge ($13.35/h, 8 GPUs) of np running two 1-GPU
// pods, each costing $20 to evict (the eviction-cost annotation): two
// g6.xlarge ($1.61/h) would hold them, so it wastes $11.7-13.35/h, and at
// breakEvenPercent 100 it is released once it has wasted $40. Nothing is
// applied.
func oversizedNode(nc *v1alpha1.GPUNodeClass, np *karpv1.NodePool) (*karpv1.NodeClaim, *corev1.Node, []*corev1.Pod) {
	claim, node := controlplane.RunningGPUNode(nc, np, "g6.48xlarge", 8, 192)
	return claim, node, []*corev1.Pod{controlplane.GPUWorkPod(node, "2", "8Gi", 1, "20"), controlplane.GPUWorkPod(node, "2", "8Gi", 1, "20")}
}

// removalRequested reports whether the controller deleted claim.
func removalRequested(claim *karpv1.NodeClaim) bool {
	GinkgoHelper()
	return controlplane.DeletionRequested(ctx, env.Client, claim)
}

// protected reports whether node carries karpenter.sh/do-not-disrupt.
func protected(node *corev1.Node) bool {
	GinkgoHelper()
	return ExpectExists(ctx, env.Client, node).Annotations[karpv1.DoNotDisruptAnnotationKey] == "true"
}
