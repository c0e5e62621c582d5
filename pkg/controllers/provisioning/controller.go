// Package provisioning owns karpenter-gpu's provisioning loop. It replaces
// core's provisioner singleton (not its scheduler): each batch of pending
// pods goes through core's Provisioner.Schedule exactly as in stock
// Karpenter, then a Refiner (the GPU packer) may re-partition the GPU
// NodeClaims core proposed before they are created. CPU-only NodeClaims pass
// through unchanged, so CPU pods get exactly core's decisions. See
// designs/packing.md for why the refinement point was chosen.
package provisioning

import (
	"context"
	"fmt"
	"time"

	"github.com/awslabs/operatorpkg/reconciler"
	"github.com/awslabs/operatorpkg/singleton"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	coreprov "sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/metrics"
)

// Refiner rewrites the NodeClaims core's scheduler proposed for one batch.
// It must return every pod of the input exactly once and may only return
// NodeClaims it can prove fit; when in doubt it returns its input.
type Refiner interface {
	Refine(ctx context.Context, results scheduling.Results) scheduling.Results
}

// Controller is the provisioning singleton.
type Controller struct {
	provisioner *coreprov.Provisioner
	cluster     *state.Cluster
	batcher     *coreprov.Batcher[types.UID]
	refiner     Refiner
}

// NewController wraps core's provisioner; refiner may be nil (stock
// behaviour).
func NewController(clk clock.Clock, provisioner *coreprov.Provisioner, cluster *state.Cluster, refiner Refiner) *Controller {
	return &Controller{provisioner: provisioner, cluster: cluster, batcher: coreprov.NewBatcher[types.UID](clk), refiner: refiner}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "karpenter-gpu.provisioner" }

// Trigger adds a pending pod (or disrupted node) to the current batch.
func (c *Controller) Trigger(uid types.UID) { c.batcher.Trigger(uid) }

// Reconcile waits for a batch, then provisions for it.
func (c *Controller) Reconcile(ctx context.Context) (reconciler.Result, error) {
	if triggered := c.batcher.Wait(ctx); !triggered {
		return reconciler.Result{RequeueAfter: singleton.RequeueImmediately}, nil
	}
	// Deciding on a partial view of the cluster would launch duplicates.
	if !c.cluster.Synced(ctx) {
		return reconciler.Result{RequeueAfter: singleton.RequeueImmediately}, nil
	}
	if _, err := c.Provision(ctx); err != nil {
		return reconciler.Result{}, err
	}
	return reconciler.Result{RequeueAfter: singleton.RequeueImmediately}, nil
}

// Provision makes one provisioning decision for the currently pending pods
// and creates the NodeClaims. The simulator calls it directly at the end of
// each simulated batching window.
func (c *Controller) Provision(ctx context.Context) ([]string, error) {
	start := time.Now()
	results, err := c.provisioner.Schedule(ctx)
	if err != nil {
		return nil, fmt.Errorf("scheduling pending pods, %w", err)
	}
	if c.refiner != nil && len(results.NewNodeClaims) > 0 {
		results = c.refiner.Refine(ctx, results)
	}
	if len(results.NewNodeClaims) == 0 {
		return nil, nil
	}
	names, err := c.provisioner.CreateNodeClaims(ctx, results.NewNodeClaims, coreprov.WithReason(metrics.ProvisionedReason), coreprov.RecordPodNomination)
	log.FromContext(ctx).V(1).Info("provisioned", "nodeclaims", len(names), "duration", time.Since(start))
	return names, err
}

// Register wires the singleton into a manager.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).
		Named(c.Name()).
		WatchesRawSource(singleton.Source()).
		Complete(singleton.AsReconciler(c))
}
