package aws

import (
	"context"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
)

// OrphanOptions completes the options of the orphan collector
// (pkg/controllers/orphans) for this backend: it lists every live instance
// of the cluster, including those not tagged with a NodeClaim (a batched
// launch tags its instances just after CreateFleet, and that may fail),
// repairs the NodeClaim tag of an instance a NodeClaim refers to whose tag is
// missing or stale, so that List finds it, deletes the gang placement groups
// left empty (instance.Provider.CollectPlacementGroups), and runs on the
// backend's clock unless o sets one.
func (b *Backend) OrphanOptions(o orphans.Options) orphans.Options {
	o.Instances = everyInstance{b}
	o.Retag = func(ctx context.Context, id, nodeClaim string) error {
		return b.instances.Tag(ctx, id, map[string]string{cloudprovider.TagNodeClaim: nodeClaim, "Name": nodeClaim})
	}
	o.Sweep = b.instances.CollectPlacementGroups
	if o.Clock == nil {
		o.Clock = b.clock
	}
	return o
}

// everyInstance is the backend as the orphan collector sees it: List
// includes the cluster's instances without a NodeClaim tag.
type everyInstance struct{ *Backend }

func (e everyInstance) List(ctx context.Context) ([]*cloudprovider.Instance, error) {
	return e.instances.ListAll(ctx)
}
