// Package provisioning owns karpenter-gpu's provisioning loop. It replaces
// core's provisioner singleton (not its scheduler): a batch of pending pods
// goes through core's Provisioner.Schedule exactly as in stock Karpenter,
// then a Refiner (the GPU packer) may re-partition the GPU NodeClaims core
// proposed before they are created. CPU-only NodeClaims pass through
// unchanged, so CPU pods get exactly core's decisions. A burst of GPU pods
// the packer models skips core's Solve for new capacity (direct.go). See
// designs/packing.md for why these integration points were chosen.
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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	coreprov "sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
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
	kube          client.Client
	recorder      events.Recorder
	clock         clock.Clock
	provisioner   *coreprov.Provisioner
	cluster       *state.Cluster
	batcher       *coreprov.Batcher[types.UID]
	refiner       Refiner
	directMinPods int
}

// Options are NewController's inputs.
type Options struct {
	Clock       clock.Clock
	KubeClient  client.Client
	Recorder    events.Recorder
	Provisioner *coreprov.Provisioner
	Cluster     *state.Cluster
	// Refiner may be nil (stock behaviour: core's decisions unchanged).
	// When it is a DirectPacker, large batches of pending GPU pods take
	// the direct path.
	Refiner Refiner
	// DirectMinPods is the number of packer-modelled pending pods from
	// which the direct path is taken: 0 means DefaultDirectMinPods,
	// negative never.
	DirectMinPods int
}

// NewController wraps core's provisioner.
func NewController(o Options) *Controller {
	min := o.DirectMinPods
	if min == 0 {
		min = DefaultDirectMinPods
	}
	return &Controller{kube: o.KubeClient, recorder: o.Recorder, clock: o.Clock, provisioner: o.Provisioner, cluster: o.Cluster,
		batcher: coreprov.NewBatcher[types.UID](o.Clock), refiner: o.Refiner, directMinPods: min}
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
	d, err := c.Decide(ctx)
	return d.Created, err
}

// Provisioned is one provisioning decision: where Schedule put the
// pending pods, and the NodeClaims created for them.
type Provisioned struct {
	Results scheduling.Results
	Created []string
}

// Decide is Provision, returning the decision's results as well.
func (c *Controller) Decide(ctx context.Context) (Provisioned, error) {
	start := time.Now()
	results, err := c.Schedule(ctx)
	if err != nil {
		return Provisioned{}, fmt.Errorf("scheduling pending pods, %w", err)
	}
	if len(results.NewNodeClaims) == 0 {
		return Provisioned{Results: results}, nil
	}
	names, err := c.provisioner.CreateNodeClaims(ctx, results.NewNodeClaims, coreprov.WithReason(metrics.ProvisionedReason), coreprov.RecordPodNomination)
	log.FromContext(ctx).V(1).Info("provisioned", "nodeclaims", len(names), "duration", time.Since(start))
	return Provisioned{Results: results, Created: names}, err
}

// Record marks in cluster state what a decision on results marks there
// after solving, as core's Schedule does: each pod's scheduling decision
// (its error, or the node it was placed on) and a nomination of every
// existing node that took pods. A decision that creates no NodeClaim
// leaves nothing else behind, so recording it again is deciding again on
// inputs that have not changed (the simulator relies on this).
func (c *Controller) Record(ctx context.Context, results scheduling.Results) {
	c.cluster.MarkPodSchedulingDecisions(ctx, realPodErrors(results.PodErrors), realPods(results.NodePoolToPodMapping()), realPods(results.ExistingNodeToPodMapping()))
	results.Record(ctx, c.recorder, c.cluster)
}

// Schedule decides where the pending pods go without creating anything: a
// burst of at least directMinPods GPU pods the packer models takes the
// direct path (direct.go); any other batch goes through core's Schedule,
// and the refiner then re-partitions the GPU NodeClaims core proposed.
func (c *Controller) Schedule(ctx context.Context) (scheduling.Results, error) {
	if packer, ok := c.refiner.(DirectPacker); ok && c.directMinPods > 0 {
		burst, err := c.isBurst(ctx, packer, c.directMinPods)
		if err != nil {
			return scheduling.Results{}, err
		}
		if burst {
			results, err := c.scheduleDirect(ctx, packer)
			if err != nil {
				return results, err
			}
			return c.unlessSoftCordoned(ctx, results)
		}
	}
	results, err := c.provisioner.Schedule(ctx)
	if err != nil {
		return results, err
	}
	if c.refiner != nil && len(results.NewNodeClaims) > 0 {
		results = c.refiner.Refine(ctx, results)
	}
	return c.unlessSoftCordoned(ctx, results)
}

// unlessSoftCordoned returns the results, or none when soft cordons had to
// be lifted for their new NodeClaims' pods (attrition.go).
func (c *Controller) unlessSoftCordoned(ctx context.Context, results scheduling.Results) (scheduling.Results, error) {
	if len(results.NewNodeClaims) == 0 {
		return results, nil
	}
	lifted, err := c.liftSoftCordons(ctx, results.NewNodeClaims)
	if err != nil {
		return scheduling.Results{}, err
	}
	if lifted > 0 {
		return scheduling.Results{}, nil
	}
	return results, nil
}

// Register wires the singleton into a manager.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).
		Named(c.Name()).
		WatchesRawSource(singleton.Source()).
		Complete(singleton.AsReconciler(c))
}
