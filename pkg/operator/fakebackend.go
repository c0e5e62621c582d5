package operator

import (
	"github.com/awslabs/operatorpkg/controller"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator/options"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

// FakeBackend is the controller binary's fake cloud (--backend=fake): the
// in-memory fleet and the controllers that come with it.
type FakeBackend struct {
	Fleet *fake.Fleet
	// Controllers are the orphan collector over the fleet's instances and,
	// since the fake cloud has no kubelets, its registrar (registers Nodes,
	// marks bound pods Running, as kwok does) and node lifecycle.
	Controllers []controller.Controller
}

// NewFakeBackend builds the fake cloud the flags in opts describe. The
// controller binary builds it here, so its tests run the binary's fleet.
func NewFakeBackend(opts *options.Options, kube client.Client, clk clock.Clock) *FakeBackend {
	// A gang attempt's launches make one all-or-nothing group launch, as
	// on AWS (core's lifecycle launches them concurrently).
	fleet := fake.NewFleet(fake.Options{Region: opts.Region, Clock: clk, LaunchLatency: opts.FakeLaunchLatency, GangWait: opts.FakeGangWait})
	return &FakeBackend{Fleet: fleet, Controllers: []controller.Controller{
		orphans.NewController(fleet.OrphanOptions(orphans.Options{KubeClient: kube, Clock: clk})),
		fake.NewRegistrar(fake.RegistrarOptions{KubeClient: kube, Fleet: fleet, Clock: clk, RegistrationDelay: opts.FakeRegistrationDelay}),
		fake.NewNodeLifecycle(fake.NodeLifecycleOptions{KubeClient: kube}),
	}}
}
