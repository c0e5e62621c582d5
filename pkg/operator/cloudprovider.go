package operator

import (
	"context"
	"fmt"

	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/metrics"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/overlay"
	"sigs.k8s.io/karpenter/pkg/controllers/node/health"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeoverlay"
	"sigs.k8s.io/karpenter/pkg/controllers/state"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// CloudProviderOptions are what NewCloudProvider needs.
type CloudProviderOptions struct {
	// Provider configures karpenter-gpu's cloud provider (gpucp.New).
	Provider gpucp.Options
	// InstanceTypeStore is core's NodeOverlay store (the operator's); nil
	// creates one.
	InstanceTypeStore *nodeoverlay.InstanceTypeStore
	// Wrap, when set, wraps karpenter-gpu's provider before core's
	// decorators are applied. The simulator memoises GetInstanceTypes on
	// simulated state there; the controller binary sets none.
	Wrap func(*gpucp.CloudProvider) karpcp.CloudProvider
}

// CloudProvider is karpenter-gpu's cloud provider as Karpenter core's
// operators assemble a provider: core's metrics decorator around it, core's
// NodeOverlay decorator around that, and node repair's policy matcher over
// the result. The controller binary and the simulator both build it here,
// so they run the same provider.
type CloudProvider struct {
	// Provider is karpenter-gpu's own provider.
	Provider *gpucp.CloudProvider
	// Undecorated is the provider before the NodeOverlay decorator (with
	// metrics): what core's NodeOverlay controller reads instance types
	// from.
	Undecorated karpcp.CloudProvider
	// Decorated is the provider every other controller uses.
	Decorated karpcp.CloudProvider
	// RepairPolicyMatcher compiles the provider's repair policies; nil when
	// core's NodeRepair feature gate is off (or legacy node repair is on).
	RepairPolicyMatcher *health.RepairPolicyMatcher
	// InstanceTypeStore is the NodeOverlay decorator's store.
	InstanceTypeStore *nodeoverlay.InstanceTypeStore
}

// NewCloudProvider builds the cloud provider. ctx carries core's options
// (feature gates).
func NewCloudProvider(ctx context.Context, o CloudProviderOptions) (*CloudProvider, error) {
	provider, err := gpucp.New(o.Provider)
	if err != nil {
		return nil, fmt.Errorf("creating cloud provider, %w", err)
	}
	var base karpcp.CloudProvider = provider
	if o.Wrap != nil {
		base = o.Wrap(provider)
	}
	store := o.InstanceTypeStore
	if store == nil {
		store = nodeoverlay.NewInstanceTypeStore()
	}
	undecorated := metrics.Decorate(base)
	decorated := overlay.Decorate(undecorated, o.Provider.KubeClient, store)
	matcher, err := health.NewRepairPolicyMatcher(ctx, decorated)
	if err != nil {
		return nil, fmt.Errorf("compiling repair policies, %w", err)
	}
	return &CloudProvider{Provider: provider, Undecorated: undecorated, Decorated: decorated, RepairPolicyMatcher: matcher, InstanceTypeStore: store}, nil
}

// NewCluster returns core's cluster state over the decorated provider,
// matching Nodes against the repair policies as they change.
func (c *CloudProvider) NewCluster(clk clock.Clock, kube client.Client) *state.Cluster {
	return state.NewCluster(clk, kube, c.Decorated, state.WithRepairPolicyMatcher(c.RepairPolicyMatcher))
}
