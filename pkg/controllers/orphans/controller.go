// Package orphans is the one orphan collector for every backend: a
// singleton that terminates the cluster's instances no NodeClaim refers to
// (leaked by a controller crash between launch and the NodeClaim update, or
// duplicates of a launch whose answer was lost) by the rule of
// cloudprovider.Orphans, over a backend's list and terminate calls.
package orphans

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/awslabs/operatorpkg/reconciler"
	"github.com/awslabs/operatorpkg/singleton"
	"github.com/samber/lo"
	"k8s.io/utils/clock"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// DefaultInterval is how often the collector runs when Options.Interval is 0.
const DefaultInterval = 2 * time.Minute

// Instances is what the collector needs from a backend; every
// cloudprovider.Backend is one.
type Instances interface {
	// List returns the cluster's instances. A backend whose Backend.List
	// leaves out instances not yet tagged with their NodeClaim passes a
	// List that includes them, so they can be collected or repaired.
	List(ctx context.Context) ([]*cloudprovider.Instance, error)
	// Terminate starts termination; an instance that is gone returns an
	// error satisfying cloudprovider.IsNotFound.
	Terminate(ctx context.Context, id string) error
	ProviderID(inst *cloudprovider.Instance) string
}

// Options configure the collector.
type Options struct {
	KubeClient client.Client
	Instances  Instances
	Clock      clock.Clock // nil means the real clock
	// GracePeriod is how old an instance must be before it is collected; 0
	// means cloudprovider.DefaultOrphanGracePeriod.
	GracePeriod time.Duration
	// Interval between runs; 0 means DefaultInterval.
	Interval time.Duration
	// Retag, when set, repairs the NodeClaim name tag of an instance a
	// NodeClaim's provider ID refers to whose tag is missing or stale (a
	// batched launch whose tagging failed), so the backend's List finds it.
	Retag func(ctx context.Context, id, nodeClaim string) error
	// Sweep, when set, collects the other leaked resources of the backend
	// (AWS: the gang placement groups left empty). It runs on every pass,
	// after the orphans are terminated, so that what they held is free.
	Sweep func(ctx context.Context) error
}

// Controller is the orphan collector.
type Controller struct {
	opts Options

	mu        sync.Mutex
	collected []string
}

// NewController returns the orphan collector.
func NewController(o Options) *Controller {
	o.Clock = lo.Ternary[clock.Clock](o.Clock == nil, clock.RealClock{}, o.Clock)
	if o.GracePeriod <= 0 {
		o.GracePeriod = cloudprovider.DefaultOrphanGracePeriod
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	return &Controller{opts: o}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "karpenter-gpu.orphans" }

// Collected lists the instances terminated so far.
func (c *Controller) Collected() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.collected...)
}

// Collect terminates the orphans (cloudprovider.Orphans) older than the
// grace period, with Options.Retag repairs the NodeClaim tags of the
// instances NodeClaims refer to, and with Options.Sweep collects the
// backend's other leaked resources. It returns the IDs it terminated; an
// instance already gone counts as terminated.
func (c *Controller) Collect(ctx context.Context) ([]string, error) {
	// Instances first: a NodeClaim created after the NodeClaim list would
	// otherwise look absent for an instance launched in between.
	instances, err := c.opts.Instances.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing instances, %w", err)
	}
	claims := &karpv1.NodeClaimList{}
	if err := c.opts.KubeClient.List(ctx, claims); err != nil {
		return nil, fmt.Errorf("listing NodeClaims, %w", err)
	}
	orphans, owners := cloudprovider.Orphans(instances, claims.Items, c.opts.Instances.ProviderID, c.opts.Clock.Now(), c.opts.GracePeriod)
	var errs []error
	if c.opts.Retag != nil {
		for inst, name := range owners {
			if inst.State == cloudprovider.InstanceStateTerminated || inst.Tags[cloudprovider.TagNodeClaim] == name {
				continue
			}
			if err := c.opts.Retag(ctx, inst.ID, name); err != nil {
				errs = append(errs, fmt.Errorf("tagging instance %s with NodeClaim %s, %w", inst.ID, name, err))
				continue
			}
			log.FromContext(ctx).Info("tagged an instance with its NodeClaim", "instance", inst.ID, "nodeclaim", name)
		}
	}
	var collected []string
	for _, inst := range orphans {
		if err := c.opts.Instances.Terminate(ctx, inst.ID); err != nil && !cloudprovider.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("terminating orphan %s, %w", inst.ID, err))
			continue
		}
		log.FromContext(ctx).Info("terminated instance without a NodeClaim", "instance", inst.ID, "nodeclaim", inst.Tags[cloudprovider.TagNodeClaim], "launched", inst.LaunchTime)
		collected = append(collected, inst.ID)
	}
	c.mu.Lock()
	c.collected = append(c.collected, collected...)
	c.mu.Unlock()
	if c.opts.Sweep != nil {
		if err := c.opts.Sweep(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return collected, errors.Join(errs...)
}

// Reconcile runs Collect every Interval.
func (c *Controller) Reconcile(ctx context.Context) (reconciler.Result, error) {
	if _, err := c.Collect(ctx); err != nil {
		return reconciler.Result{}, err
	}
	return reconciler.Result{RequeueAfter: c.opts.Interval}, nil
}

// Register wires the singleton into a manager.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).Named(c.Name()).WatchesRawSource(singleton.Source()).Complete(singleton.AsReconciler(c))
}
