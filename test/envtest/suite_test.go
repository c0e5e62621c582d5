// Package envtest runs karpenter-gpu against a real kube-apiserver and etcd
// (built from source by tools/build-envtest.sh) with Karpenter core's
// provisioner and NodeClaim lifecycle controllers and the fake fleet.
package envtest_test

import (
	"context"
	"testing"

	"k8s.io/client-go/tools/record"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/lifecycle"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/coresuite"
)

var (
	ctx           context.Context
	env           *test.Environment
	fleet         *fake.Fleet
	core          *coresuite.Core
	cloudProvider *gpucp.CloudProvider
	cluster       *state.Cluster
	prov          *provisioning.Provisioner
	lifecycleCtrl *lifecycle.Controller
	idleCtrl      *idlegpu.Controller
)

func TestEnvtest(t *testing.T) { controlplane.RunSuite(t, &ctx, "karpenter-gpu envtest") }

var _ = controlplane.CoreSuite(&ctx, &env, func() {
	fleet = fake.NewFleet(fake.Options{Clock: env.Clock, Seed: 1})
	core = coresuite.New(env, fleet, "envtest")
	cloudProvider, cluster, prov, lifecycleCtrl = core.CloudProvider, core.Cluster, core.Provisioner, core.Lifecycle
	idleCtrl = idlegpu.NewController(idlegpu.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: core.Recorder, CloudProvider: cloudProvider})
}, func() { core.Reset(ctx) })

// disruptingPool is a GPUNodeClass whose GPU nodes are disrupted as d says
// and a gpuNodePool on it: the setting of the break-even, repacking and
// attrition specs.
func disruptingPool(d v1alpha1.GPUDisruption) (*v1alpha1.GPUNodeClass, *karpv1.NodePool) {
	nc := gpuNodeClass()
	nc.Spec.GPU.Disruption = &d
	return nc, gpuNodePool(nc)
}

// repackingController is a new idle-GPU controller (its timers and
// break-even accounts start empty) that launches repacking moves' nodes
// through core's provisioner.
func repackingController() *idlegpu.Controller {
	return idlegpu.NewController(idlegpu.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: events.NewRecorder(&record.FakeRecorder{}),
		CloudProvider: cloudProvider, Provisioner: prov})
}
