// Package gangtest is what the gang suites (test/gang on the fake fleet,
// test/gang/aws on the AWS backend) share.
package gangtest

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/lifecycle"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/controllers/state/informer"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/operator/options"
	"sigs.k8s.io/karpenter/pkg/state/cost"
	"sigs.k8s.io/karpenter/pkg/state/nodepoolhealth"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	"github.com/karpenter-gpu/karpenter-gpu/test/chaos"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// Hook registers more controllers in StartManager's manager; o is the
// ProvisioningRequest controller's options with the manager's client,
// API reader, cluster state, recorder and clock filled in.
type Hook func(ctx context.Context, mgr manager.Manager, o pr.Options) error

// StartManager runs, until the spec ends, the ProvisioningRequest controller
// (o, with the manager's client, API reader, cluster state, recorder and
// the real clock filled in), core's NodeClaim lifecycle (which calls the
// provider's Create, concurrently, for each NodeClaim), core's
// cluster-state informers and what the hooks register, in a
// controller-runtime manager on cfg. The recorder writes Events to the API
// server, as the operator's does. The manager's log (every controller's) goes
// to GinkgoWriter, which Ginkgo prints for a failed spec.
func StartManager(ctx context.Context, cfg *rest.Config, cp *gpucp.CloudProvider, o pr.Options, hooks ...Hook) {
	GinkgoHelper()
	mgr, err := chaos.NewManager(ctx, cfg, options.FromContext(ctx), GinkgoLogr, false, "")
	Expect(err).ToNot(HaveOccurred())
	kube, clk := mgr.GetClient(), clock.RealClock{}
	rec := events.NewRecorder(mgr.GetEventRecorderFor("karpenter")) //nolint:staticcheck // as core's operator
	st := state.NewCluster(clk, kube, cp)
	clusterCost := cost.NewClusterCost(ctx, cp, kube)
	o.Clock, o.KubeClient, o.APIReader, o.CloudProvider, o.Cluster, o.Recorder = clk, kube, mgr.GetAPIReader(), cp, st, rec
	Expect(pr.NewController(o).Register(ctx, mgr)).To(Succeed())
	Expect(lifecycle.NewController(clk, kube, cp, rec, st, nodepoolhealth.NewState(), nil).Register(ctx, mgr)).To(Succeed())
	Expect(informer.NewNodeClaimController(kube, cp, st, clusterCost).Register(ctx, mgr)).To(Succeed())
	Expect(informer.NewNodeController(kube, st).Register(ctx, mgr)).To(Succeed())
	Expect(informer.NewPodController(kube, st).Register(ctx, mgr)).To(Succeed())
	Expect(informer.NewNodePoolController(kube, cp, st, clusterCost).Register(ctx, mgr)).To(Succeed())
	Expect(informer.NewDaemonSetController(kube, st).Register(ctx, mgr)).To(Succeed())
	for _, h := range hooks {
		Expect(h(ctx, mgr, o)).To(Succeed())
	}
	controlplane.RunManager(ctx, mgr, 30*time.Second)
}
