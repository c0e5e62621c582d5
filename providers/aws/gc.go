package aws

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/awslabs/operatorpkg/reconciler"
	"github.com/awslabs/operatorpkg/singleton"
	"github.com/samber/lo"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// DefaultOrphanGracePeriod: see cloudprovider.DefaultOrphanGracePeriod.
const DefaultOrphanGracePeriod = cloudprovider.DefaultOrphanGracePeriod

// CollectOrphans terminates this cluster's instances that no NodeClaim
// refers to and that are older than gracePeriod, for example instances
// leaked by a controller crash between CreateFleet and the NodeClaim status
// update. A NodeClaim refers to its provider ID's instance; one that has no
// provider ID yet (still launching) also to every instance tagged with its
// name. An instance tagged with the name of a NodeClaim that recorded another
// instance is a duplicate (a launch whose answer was lost, re-launched) and
// is collected. An instance a NodeClaim refers to whose NodeClaim tag is
// missing or stale (a batched launch whose CreateTags failed) is tagged
// again, so that List finds it. It returns the IDs it terminated.
func (b *Backend) CollectOrphans(ctx context.Context, kubeClient client.Client, gracePeriod time.Duration) ([]string, error) {
	// List instances first: a NodeClaim created after the NodeClaim list
	// would otherwise look absent for an instance launched in between.
	instances, err := b.list(ctx, false)
	if err != nil {
		return nil, err
	}
	claims := &karpv1.NodeClaimList{}
	if err := kubeClient.List(ctx, claims); err != nil {
		return nil, fmt.Errorf("listing NodeClaims, %w", err)
	}
	orphans, owners := cloudprovider.Orphans(instances, claims.Items, b.ProviderID, b.clock.Now(), gracePeriod)
	var collected []string
	var errs []error
	for inst, name := range owners {
		if inst.State != cloudprovider.InstanceStateTerminated && inst.Tags[cloudprovider.TagNodeClaim] != name {
			if err := b.batcher.tag(ctx, inst.ID, map[string]string{cloudprovider.TagNodeClaim: name, "Name": name}); err != nil {
				errs = append(errs, err)
			} else {
				log.FromContext(ctx).Info("tagged an instance with its NodeClaim", "instance", inst.ID, "nodeclaim", name)
			}
		}
	}
	for _, inst := range orphans {
		if err := b.Terminate(ctx, inst.ID); err != nil && !cloudprovider.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		log.FromContext(ctx).Info("terminated instance without a NodeClaim", "instance", inst.ID, "nodeclaim", inst.Tags[cloudprovider.TagNodeClaim], "launched", inst.LaunchTime)
		collected = append(collected, inst.ID)
	}
	return collected, errors.Join(errs...)
}

// GarbageCollector is a singleton controller running CollectOrphans.
type GarbageCollector struct {
	Backend     *Backend
	KubeClient  client.Client
	GracePeriod time.Duration
	Interval    time.Duration
}

// Name is the controller's name.
func (g *GarbageCollector) Name() string { return "karpenter-gpu.aws.garbagecollection" }

// Reconcile collects orphans.
func (g *GarbageCollector) Reconcile(ctx context.Context) (reconciler.Result, error) {
	if _, err := g.Backend.CollectOrphans(ctx, g.KubeClient, lo.Ternary(g.GracePeriod > 0, g.GracePeriod, DefaultOrphanGracePeriod)); err != nil {
		return reconciler.Result{}, err
	}
	return reconciler.Result{RequeueAfter: lo.Ternary(g.Interval > 0, g.Interval, 2*time.Minute)}, nil
}

// Register wires the singleton into a manager.
func (g *GarbageCollector) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).Named(g.Name()).WatchesRawSource(singleton.Source()).Complete(singleton.AsReconciler(g))
}
