package gputaint_test

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/gputaint"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// The controller's own suite, against Karpenter core's test environment (a
// real kube-apiserver and etcd from bin/k8s).
var (
	ctx  context.Context
	env  *test.Environment
	ctrl *gputaint.Controller
)

func TestGPUTaint(t *testing.T) { controlplane.RunSuite(t, &ctx, "gputaint") }

var _ = controlplane.EnvironmentSuite(&ctx, &env, func() {
	ctrl = gputaint.NewController(gputaint.Options{KubeClient: env.Client, Recorder: events.NewRecorder(&record.FakeRecorder{})})
})

var _ = Describe("GPU taint on NodePools", func() {
	It("adds nvidia.com/gpu:NoSchedule to NodePools of a tainting GPUNodeClass", func() {
		nc := controlplane.GPUNodeClass()
		np := controlplane.NodePool(nc)
		ExpectApplied(ctx, env.Client, nc, np)
		ExpectObjectReconciled(ctx, env.Client, ctrl, np)
		Expect(ExpectExists(ctx, env.Client, np).Spec.Template.Spec.Taints).To(ContainElement(gputaint.Taint))
	})
	It("adds the taint once, however often it reconciles", func() {
		nc := controlplane.GPUNodeClass()
		np := controlplane.NodePool(nc)
		ExpectApplied(ctx, env.Client, nc, np)
		ExpectObjectReconciled(ctx, env.Client, ctrl, np)
		ExpectObjectReconciled(ctx, env.Client, ctrl, np)
		Expect(ExpectExists(ctx, env.Client, np).Spec.Template.Spec.Taints).To(HaveLen(1))
	})
	It("leaves NodePools alone when the GPUNodeClass opts out", func() {
		nc := controlplane.GPUNodeClass()
		nc.Spec.GPU.Taint = new(false)
		np := controlplane.NodePool(nc)
		ExpectApplied(ctx, env.Client, nc, np)
		ExpectObjectReconciled(ctx, env.Client, ctrl, np)
		Expect(ExpectExists(ctx, env.Client, np).Spec.Template.Spec.Taints).To(BeEmpty())
	})
	It("leaves NodePools of other node classes alone", func() {
		np := test.NodePool()
		ExpectApplied(ctx, env.Client, np)
		ExpectObjectReconciled(ctx, env.Client, ctrl, np)
		Expect(ExpectExists(ctx, env.Client, np).Spec.Template.Spec.Taints).To(BeEmpty())
	})
})
