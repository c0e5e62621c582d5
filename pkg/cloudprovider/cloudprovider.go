// Package cloudprovider implements Karpenter's CloudProvider for GPU nodes
// over a small Backend (providers/fake, providers/aws). It owns the decisions
// Karpenter leaves to providers: the instance-type catalog with GPU labels
// and prices, which offering a NodeClaim launches on (cheapest available,
// reserved first, falling back in price order on capacity refusals), drift
// and repair policies.
package cloudprovider

import (
	"context"
	"fmt"
	"time"

	"github.com/awslabs/operatorpkg/status"
	"github.com/patrickmn/go-cache"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

// Options configures a CloudProvider.
type Options struct {
	KubeClient client.Client
	Backend    Backend
	Clock      clock.Clock
	// Entries is the instance catalog; nil means the embedded AWS catalog.
	Entries []catalog.Entry
	// ClusterName tags every instance so List and garbage collection only
	// see this cluster's instances.
	ClusterName string
	// Unavailable is shared with the backend; nil creates one.
	Unavailable *UnavailableOfferings
}

// CloudProvider implements sigs.k8s.io/karpenter/pkg/cloudprovider.CloudProvider.
type CloudProvider struct {
	kubeClient  client.Client
	backend     Backend
	clock       clock.Clock
	entries     []catalog.Entry
	clusterName string
	unavailable *UnavailableOfferings
	// instanceTypes caches GetInstanceTypes per node class, keyed by the node
	// class generation and the unavailable-offerings version: core calls it on
	// every provisioning and disruption loop.
	instanceTypes *cache.Cache
}

var _ karpcp.CloudProvider = (*CloudProvider)(nil)

// New returns a CloudProvider. It fails if the embedded catalog cannot be
// read, which is a build defect, not user input.
func New(opts Options) (*CloudProvider, error) {
	if opts.Backend == nil || opts.KubeClient == nil {
		return nil, fmt.Errorf("cloudprovider: Backend and KubeClient are required")
	}
	clk := lo.Ternary[clock.Clock](opts.Clock == nil, clock.RealClock{}, opts.Clock)
	entries := opts.Entries
	if entries == nil {
		var err error
		if entries, _, err = catalog.Embedded(); err != nil {
			return nil, fmt.Errorf("loading embedded catalog, %w", err)
		}
	}
	return &CloudProvider{
		kubeClient:    opts.KubeClient,
		backend:       opts.Backend,
		clock:         clk,
		entries:       entries,
		clusterName:   opts.ClusterName,
		unavailable:   lo.Ternary(opts.Unavailable == nil, NewUnavailableOfferings(clk, UnavailableOfferingsTTL), opts.Unavailable),
		instanceTypes: cache.New(time.Minute, 5*time.Minute),
	}, nil
}

// Unavailable exposes the capacity-refusal cache (for backends and metrics).
func (c *CloudProvider) Unavailable() *UnavailableOfferings { return c.unavailable }

// Name implements CloudProvider.
func (c *CloudProvider) Name() string { return "karpenter-gpu" }

// GetSupportedNodeClasses implements CloudProvider.
func (c *CloudProvider) GetSupportedNodeClasses() []status.Object {
	return []status.Object{&v1alpha1.GPUNodeClass{}}
}

// Reboot implements CloudProvider. GPU faults are repaired by replacement:
// a reboot rarely clears an Xid fault and keeps the node out of service.
func (c *CloudProvider) Reboot(context.Context, *karpv1.NodeClaim, string) error {
	return karpcp.NewNodeRebootNotImplementedError()
}

// resolveNodeClass fetches the GPUNodeClass a NodeClaim or NodePool refers to.
func (c *CloudProvider) resolveNodeClass(ctx context.Context, ref *karpv1.NodeClassReference) (*v1alpha1.GPUNodeClass, error) {
	if ref == nil {
		return nil, fmt.Errorf("no nodeClassRef")
	}
	if ref.Group != "" && ref.Group != v1alpha1.Group {
		return nil, fmt.Errorf("nodeClassRef group %q is not %q", ref.Group, v1alpha1.Group)
	}
	nc := &v1alpha1.GPUNodeClass{}
	if err := c.kubeClient.Get(ctx, client.ObjectKey{Name: ref.Name}, nc); err != nil {
		return nil, err
	}
	return nc, nil
}

// Create implements CloudProvider: launch the cheapest launchable offering
// among the NodeClaim's compatible options (see launch.go).
func (c *CloudProvider) Create(ctx context.Context, nodeClaim *karpv1.NodeClaim) (*karpv1.NodeClaim, error) {
	nodeClass, err := c.resolveNodeClass(ctx, nodeClaim.Spec.NodeClassRef)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, karpcp.NewNodeClassNotReadyError(fmt.Errorf("resolving GPUNodeClass, %w", err))
		}
		return nil, fmt.Errorf("resolving GPUNodeClass, %w", err)
	}
	if ready := nodeClass.StatusConditions().Get(status.ConditionReady); ready.IsFalse() {
		return nil, karpcp.NewNodeClassNotReadyError(fmt.Errorf("GPUNodeClass %q is not ready: %s", nodeClass.Name, ready.Message))
	}
	its, err := c.instanceTypesFor(ctx, nodeClass)
	if err != nil {
		return nil, fmt.Errorf("resolving instance types, %w", err)
	}
	return c.launch(ctx, nodeClaim, nodeClass, its)
}

// Delete implements CloudProvider.
func (c *CloudProvider) Delete(ctx context.Context, nodeClaim *karpv1.NodeClaim) error {
	id, err := c.backend.InstanceID(nodeClaim.Status.ProviderID)
	if err != nil {
		return karpcp.NewNodeClaimNotFoundError(fmt.Errorf("parsing provider ID, %w", err))
	}
	inst, err := c.backend.Get(ctx, id)
	if err == nil && inst.State == InstanceStateTerminated {
		return karpcp.NewNodeClaimNotFoundError(fmt.Errorf("instance %s terminated", id))
	}
	if err == nil {
		err = c.backend.Terminate(ctx, id)
	}
	if IsNotFound(err) {
		return karpcp.NewNodeClaimNotFoundError(err)
	}
	if err != nil {
		return fmt.Errorf("terminating instance %s, %w", id, err)
	}
	return nil
}

// Get implements CloudProvider.
func (c *CloudProvider) Get(ctx context.Context, providerID string) (*karpv1.NodeClaim, error) {
	id, err := c.backend.InstanceID(providerID)
	if err != nil {
		return nil, karpcp.NewNodeClaimNotFoundError(fmt.Errorf("parsing provider ID, %w", err))
	}
	inst, err := c.backend.Get(ctx, id)
	if IsNotFound(err) {
		return nil, karpcp.NewNodeClaimNotFoundError(err)
	}
	if err != nil {
		return nil, fmt.Errorf("getting instance %s, %w", id, err)
	}
	if inst.State == InstanceStateTerminated {
		return nil, karpcp.NewNodeClaimNotFoundError(fmt.Errorf("instance %s terminated", id))
	}
	return c.nodeClaimFromInstance(ctx, inst), nil
}

// List implements CloudProvider.
func (c *CloudProvider) List(ctx context.Context) ([]*karpv1.NodeClaim, error) {
	insts, err := c.backend.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing instances, %w", err)
	}
	out := make([]*karpv1.NodeClaim, 0, len(insts))
	for _, inst := range insts {
		if inst.State != InstanceStateTerminated {
			out = append(out, c.nodeClaimFromInstance(ctx, inst))
		}
	}
	return out, nil
}

// nodeClaimFromInstance rebuilds what is known about a NodeClaim from its
// instance, for Get and List (garbage collection, termination).
func (c *CloudProvider) nodeClaimFromInstance(ctx context.Context, inst *Instance) *karpv1.NodeClaim {
	nc := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:              inst.Tags[TagNodeClaim],
			Labels:            map[string]string{},
			CreationTimestamp: metav1.NewTime(inst.LaunchTime),
		},
		Status: karpv1.NodeClaimStatus{ProviderID: c.backend.ProviderID(inst), ImageID: inst.ImageID},
	}
	if np, ok := inst.Tags[TagNodePool]; ok {
		nc.Labels[karpv1.NodePoolLabelKey] = np
	}
	nc.Labels[corev1.LabelInstanceTypeStable] = inst.InstanceType
	nc.Labels[corev1.LabelTopologyZone] = inst.Zone
	nc.Labels[karpv1.CapacityTypeLabelKey] = inst.CapacityType
	var nodeClass *v1alpha1.GPUNodeClass
	if name, ok := inst.Tags[TagNodeClass]; ok {
		nodeClass, _ = c.resolveNodeClass(ctx, &karpv1.NodeClassReference{Name: name})
	}
	if its, err := c.instanceTypesFor(ctx, nodeClass); err == nil {
		if it, ok := lo.Find(its, func(it *karpcp.InstanceType) bool { return it.Name == inst.InstanceType }); ok {
			nc.Labels = lo.Assign(singleValuedLabels(it.Requirements), nc.Labels)
			nc.Status.Capacity = it.Capacity
			nc.Status.Allocatable = it.Allocatable()
		}
	}
	return nc
}
