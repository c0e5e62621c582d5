package cloudprovider

import (
	"context"
	"fmt"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

// GetInstanceTypes implements CloudProvider. It returns every type of the
// catalog, with refused offerings kept as Available=false (dropping a type
// would make core see running nodes as drifted and price them at zero).
//
// A NodePool of another provider's node class (Karpenter-AWS's
// EC2NodeClass in a cluster running both) has no instance types here, and
// that is no error: core's NodeOverlay controller asks for the types of
// every NodePool, managed or not, and would otherwise fail and requeue for
// as long as such a NodePool exists.
func (c *CloudProvider) GetInstanceTypes(ctx context.Context, nodePool *karpv1.NodePool) ([]*karpcp.InstanceType, error) {
	var nodeClass *v1alpha1.GPUNodeClass
	if nodePool != nil && !managedRef(nodePool.Spec.Template.Spec.NodeClassRef) {
		return nil, nil
	}
	if nodePool != nil {
		nc, err := c.resolveNodeClass(ctx, nodePool.Spec.Template.Spec.NodeClassRef)
		if err != nil {
			return nil, fmt.Errorf("resolving GPUNodeClass for NodePool %q, %w", nodePool.Name, err)
		}
		nodeClass = nc
	}
	return c.instanceTypesFor(ctx, nodeClass)
}

// instanceTypesFor builds (or returns cached) instance types for a node
// class; nodeClass may be nil for the defaults. Callers must treat the
// returned objects as immutable: Karpenter caches allocatable inside them.
func (c *CloudProvider) instanceTypesFor(ctx context.Context, nodeClass *v1alpha1.GPUNodeClass) ([]*karpcp.InstanceType, error) {
	key := fmt.Sprintf("<default>/%s", c.unavailable.Version())
	if nodeClass != nil {
		key = fmt.Sprintf("%s/%s/%d/%s", nodeClass.Name, nodeClass.UID, nodeClass.Generation, c.unavailable.Version())
	}
	if v, ok := c.instanceTypes.Get(key); ok {
		return v.([]*karpcp.InstanceType), nil
	}
	info, err := c.backend.Offerings(ctx, nodeClass)
	if err != nil {
		return nil, fmt.Errorf("describing offerings, %w", err)
	}
	its, excluded := catalog.NewInstanceTypes(lo.Ternary(info.Entries != nil, info.Entries, c.entries), catalogOptions(nodeClass, info, c.unavailable))
	if len(excluded) > 0 {
		log.FromContext(ctx).V(1).Info("excluded instance types", "count", len(excluded), "first", excluded[0].Name, "reason", excluded[0].Reason)
	}
	c.instanceTypes.SetDefault(key, its)
	return its, nil
}

// catalogOptions turns a node class and the backend's offering information
// into catalog options.
func catalogOptions(nodeClass *v1alpha1.GPUNodeClass, info *OfferingInfo, unavailable *UnavailableOfferings) catalog.Options {
	opts := catalog.Options{
		Region:              info.Region,
		Zones:               info.Zones,
		CapacityTypes:       info.CapacityTypes,
		Prices:              info.Prices,
		Reservations:        info.Reservations,
		Unavailable:         unavailable.IsUnavailable,
		TimeSlicingReplicas: 1,
	}
	if nodeClass == nil {
		return opts
	}
	opts.TimeSlicingReplicas = nodeClass.TimeSlicingReplicas()
	if k := nodeClass.Spec.Kubelet; k != nil {
		opts.MaxPods = k.MaxPods
		opts.KubeReserved = k.KubeReserved
		opts.SystemReserved = k.SystemReserved
		opts.EvictionHard = k.EvictionHard
	}
	return opts
}

// singleValuedLabels returns the labels a node of these requirements carries:
// every key with exactly one In value.
func singleValuedLabels(reqs scheduling.Requirements) map[string]string {
	labels := map[string]string{}
	for key, r := range reqs {
		if r.Operator() == corev1.NodeSelectorOpIn && r.Len() == 1 {
			labels[key] = r.Values()[0]
		}
	}
	return labels
}

// managedRef reports whether a nodeClassRef may be a GPUNodeClass: of this
// provider's group (the only kind in it), or with no group, as
// resolveNodeClass accepts it; a missing ref is left to resolveNodeClass,
// which reports it.
func managedRef(ref *karpv1.NodeClassReference) bool {
	return ref == nil || ref.Group == "" || ref.Group == v1alpha1.Group
}
