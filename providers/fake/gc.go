package fake

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// GarbageCollector terminates fleet instances that no NodeClaim refers to (by
// provider ID, or by the name tag of a NodeClaim still launching) once they are older than
// GracePeriod: instances leaked by a controller crash between launch and the
// NodeClaim update whose NodeClaim was then deleted. It is the fake twin of
// providers/aws GarbageCollector.
type GarbageCollector struct {
	Fleet       *Fleet
	KubeClient  client.Client
	GracePeriod time.Duration
	Interval    time.Duration

	mu        sync.Mutex
	collected []string
}

// Name is the controller's name.
func (g *GarbageCollector) Name() string { return "karpenter-gpu.fake.garbagecollection" }

// Collected lists the instances terminated so far.
func (g *GarbageCollector) Collected() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.collected...)
}

// CollectOrphans terminates orphans older than the grace period.
func (g *GarbageCollector) CollectOrphans(ctx context.Context) ([]string, error) {
	// Instances first: a NodeClaim created after the NodeClaim list would
	// otherwise look absent for an instance launched in between.
	instances, err := g.Fleet.List(ctx)
	if err != nil {
		return nil, err
	}
	claims := &karpv1.NodeClaimList{}
	if err := g.KubeClient.List(ctx, claims); err != nil {
		return nil, fmt.Errorf("listing NodeClaims, %w", err)
	}
	grace := lo.Ternary(g.GracePeriod > 0, g.GracePeriod, DefaultOrphanGracePeriod)
	orphans, _ := cloudprovider.Orphans(instances, claims.Items, g.Fleet.ProviderID, g.Fleet.clock.Now(), grace)
	var collected []string
	var errs []error
	for _, inst := range orphans {
		if err := g.Fleet.Terminate(ctx, inst.ID); err != nil && !cloudprovider.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		log.FromContext(ctx).Info("terminated instance without a NodeClaim", "instance", inst.ID, "nodeclaim", inst.Tags[cloudprovider.TagNodeClaim], "launched", inst.LaunchTime)
		collected = append(collected, inst.ID)
	}
	g.mu.Lock()
	g.collected = append(g.collected, collected...)
	g.mu.Unlock()
	return collected, errors.Join(errs...)
}

// Reconcile runs CollectOrphans every Interval (default 2m).
func (g *GarbageCollector) Reconcile(ctx context.Context) (reconciler.Result, error) {
	if _, err := g.CollectOrphans(ctx); err != nil {
		return reconciler.Result{}, err
	}
	return reconciler.Result{RequeueAfter: lo.Ternary(g.Interval > 0, g.Interval, 2*time.Minute)}, nil
}

// Register wires the singleton into a manager.
func (g *GarbageCollector) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).Named(g.Name()).WatchesRawSource(singleton.Source()).Complete(singleton.AsReconciler(g))
}
