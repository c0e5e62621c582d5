// Package idlegpu removes GPU nodes that run no GPU work. Karpenter core only
// removes a node that is empty or whose pods fit elsewhere more cheaply, so a
// GPU node kept alive by a few CPU pods or daemonsets keeps billing at GPU
// prices. This controller deletes such a node's NodeClaim once no pod has
// requested an accelerator on it for the GPUNodeClass's idleAfter; core's
// termination then drains it gracefully (PodDisruptionBudgets, eviction,
// terminationGracePeriod). Budgets and do-not-disrupt are checked here with
// core's own helpers, because core applies neither to provider deletions.
package idlegpu

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/awslabs/operatorpkg/reconciler"
	"github.com/awslabs/operatorpkg/singleton"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	coreprov "sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/utils/pdb"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/guard"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
)

// PollInterval is how often GPU nodes are checked.
const PollInterval = 30 * time.Second

// BudgetReason is the NodePool disruption-budget reason idle-GPU removals
// count against: an idle GPU node is underutilized at GPU prices.
const BudgetReason = karpv1.DisruptionReasonUnderutilized

// Controller is the idle-GPU singleton.
type Controller struct {
	clk           clock.Clock
	kubeClient    client.Client
	recorder      events.Recorder
	cloudProvider karpcp.CloudProvider
	eviction      evictioncost.Model
	started       time.Time

	mu sync.Mutex
	// lastGPUWork is when each NodeClaim was last seen running a GPU pod. It
	// is in memory on purpose: after a restart every node's timer restarts,
	// which can only delay a removal, never hasten it.
	lastGPUWork map[string]time.Time
	// idleDue is when each GPU node without GPU work at the last poll
	// reaches its node class's idleAfter (NextCheck).
	idleDue map[string]time.Time
	// ledgers are the break-even accounts of protected nodes, by
	// NodeClaim (in memory: a restart starts them again, which can only
	// delay a release); rightSizedCache memoises the packer by catalog
	// and pod shapes, with this poll's catalog keys by NodePool (and the
	// last ones computed, with their inputs) and the pod shape hashes of
	// this poll and the last (breakeven.go).
	ledgers                  map[string]*ledger
	rightSizedCache          map[string]float64
	catalogKeys              map[string]string
	pollInstanceTypes        map[string]polledInstanceTypes
	catalogMemo              map[string]*catalogMemo
	podShapes, lastPodShapes map[types.UID]podShape
	// repacker runs repacking moves on released nodes (nil: none).
	repacker *repack.Repacker
	// merge is each NodePool's merge factor of the current poll, and
	// fleetLedgers the break-even accounts of the fleet's waste (fleet.go).
	merge        map[string]float64
	fleetLedgers map[string]*ledger
	// work is what each tracked node ran at the last poll, and displaced
	// when each workload last had a pod displaced by a voluntary
	// disruption (repeat.go; in memory: a restart forgets, which can only
	// hasten a later move, as without the rule).
	work      map[string]nodeWork
	displaced map[string]time.Time
}

// Options configure the controller.
type Options struct {
	Clock      clock.Clock
	KubeClient client.Client
	Recorder   events.Recorder
	// CloudProvider prices nodes and their right-sized replacements for
	// break-even protection.
	CloudProvider karpcp.CloudProvider
	// Eviction holds the defaults of the eviction-cost estimate (pods
	// override them with karpenter-gpu.io annotations).
	Eviction evictioncost.Model
	// Provisioner, when set, lets released nodes of GPUNodeClasses with
	// gpu.disruption.repack be split into the packer's cheaper set of new
	// nodes (pkg/controllers/repack); nil disables repacking.
	Provisioner *coreprov.Provisioner
}

// NewController returns the idle-GPU controller.
func NewController(o Options) *Controller {
	c := &Controller{clk: o.Clock, kubeClient: o.KubeClient, recorder: o.Recorder, cloudProvider: o.CloudProvider, eviction: o.Eviction,
		started: o.Clock.Now(), lastGPUWork: map[string]time.Time{}, idleDue: map[string]time.Time{}, ledgers: map[string]*ledger{}, fleetLedgers: map[string]*ledger{}, rightSizedCache: map[string]float64{},
		work: map[string]nodeWork{}, displaced: map[string]time.Time{}}
	if o.Provisioner != nil {
		c.repacker = repack.New(repack.Options{Clock: o.Clock, KubeClient: o.KubeClient, Recorder: o.Recorder, CloudProvider: o.CloudProvider, Provisioner: o.Provisioner})
	}
	return c
}

// Name is the controller's name.
func (c *Controller) Name() string { return "karpenter-gpu.idlegpu" }

// Register wires the singleton into a manager.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).Named(c.Name()).WatchesRawSource(singleton.Source()).Complete(singleton.AsReconciler(c))
}

// Reconcile removes idle GPU nodes, within budgets.
func (c *Controller) Reconcile(ctx context.Context) (reconciler.Result, error) {
	c.newPoll()
	snap, err := c.snapshot(ctx)
	if err != nil {
		return reconciler.Result{}, err
	}
	limits, err := pdb.NewLimits(ctx, c.kubeClient)
	if err != nil {
		return reconciler.Result{}, fmt.Errorf("listing PodDisruptionBudgets, %w", err)
	}
	budgets := snap.budgets(c.clk)
	c.forgetGone(snap)
	merge := c.fleetFactors(ctx, snap)
	c.mu.Lock()
	c.merge = merge
	c.mu.Unlock()
	var candidates []repack.Candidate
	for _, gn := range snap.gpuNodes {
		np := snap.nodePools[gn.nodeClaim.Labels[karpv1.NodePoolLabelKey]]
		l, e, err := c.protect(ctx, gn, np)
		if err != nil {
			return reconciler.Result{}, err
		}
		c.noteWork(gn, l)
		if mode, _ := gn.nodeClass.GPUWorkProtection(); l != nil && (l.released || c.fleetReleased(gn.nodeClaim.Name)) && mode == v1alpha1.ProtectionBreakEven && gn.nodeClass.RepackEnabled() && np != nil {
			candidates = append(candidates, repack.Candidate{NodeClaim: gn.nodeClaim, Node: gn.node, NodePool: np, Pods: gn.pods, Price: e.price})
		}
		idleFor, idle := c.idleFor(gn)
		if !idle {
			continue
		}
		if reason, blocked := c.blocked(gn, limits); blocked {
			c.recorder.Publish(blockedEvent(gn.nodeClaim, reason))
			continue
		}
		pool := gn.nodeClaim.Labels[karpv1.NodePoolLabelKey]
		if budgets[pool] <= 0 {
			c.recorder.Publish(blockedEvent(gn.nodeClaim, fmt.Sprintf("NodePool %q disruption budget allows no more %s disruptions", pool, BudgetReason)))
			continue
		}
		if err := c.kubeClient.Delete(ctx, gn.nodeClaim); client.IgnoreNotFound(err) != nil {
			return reconciler.Result{}, fmt.Errorf("deleting idle GPU NodeClaim %s, %w", gn.nodeClaim.Name, err)
		}
		budgets[pool]--
		gpuHours := float64(gn.gpus) * idleFor.Hours()
		RemovalsTotal.WithLabelValues(pool, gn.nodeClaim.Labels[corev1.LabelInstanceTypeStable]).Inc()
		IdleGPUHoursReclaimed.WithLabelValues(pool).Add(gpuHours)
		c.recorder.Publish(removedEvent(gn.nodeClaim, gn.gpus, idleFor))
		log.FromContext(ctx).Info("removing idle GPU node", "NodeClaim", gn.nodeClaim.Name, "gpus", gn.gpus, "idle", idleFor.String(), "idle-gpu-hours", gpuHours)
	}
	// The repacker lists the cluster again; only when a node class asks for
	// repacking or a move is in flight (not on every default poll).
	if c.repacker != nil && (snap.repacking || lo.SomeBy(snap.gpuNodes, func(gn gpuNode) bool { return gn.nodeClass.RepackEnabled() })) {
		if err := c.repacker.Reconcile(ctx, candidates, budgets); err != nil {
			return reconciler.Result{}, err
		}
	}
	return reconciler.Result{RequeueAfter: PollInterval}, nil
}

// forgetGone drops the accounts and gauges of nodes that are no longer GPU
// nodes of the snapshot.
func (c *Controller) forgetGone(snap *snapshot) {
	live := lo.SliceToMap(snap.gpuNodes, func(gn gpuNode) (string, string) {
		return gn.nodeClaim.Name, gn.nodeClaim.Labels[karpv1.NodePoolLabelKey]
	})
	c.noteDisplaced(live)
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.fleetLedgers {
		if _, ok := live[name]; !ok {
			delete(c.fleetLedgers, name)
		}
	}
	for name := range c.ledgers {
		if _, ok := live[name]; !ok {
			delete(c.ledgers, name)
			NodeWastedUSD.DeletePartialMatch(map[string]string{gpumetrics.LabelNodeClaim: name})
			NodeEvictionCostUSD.DeletePartialMatch(map[string]string{gpumetrics.LabelNodeClaim: name})
		}
	}
}

// idleFor updates the node's last GPU work time and reports how long it has
// had none, and whether that exceeds its node class's idleAfter.
func (c *Controller) idleFor(gn gpuNode) (time.Duration, bool) {
	now := c.clk.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if gn.hasGPUWork {
		c.lastGPUWork[gn.nodeClaim.Name] = now
		return 0, false
	}
	last, ok := c.lastGPUWork[gn.nodeClaim.Name]
	if !ok {
		// Never seen with GPU work: count from initialization, but not from
		// before this controller started (its memory was empty then).
		last = lo.Latest(gn.initialized, c.started)
		c.lastGPUWork[gn.nodeClaim.Name] = last
	}
	idleAfter, enabled := gn.nodeClass.IdleAfter()
	if enabled {
		c.idleDue[gn.nodeClaim.Name] = last.Add(idleAfter)
	}
	return now.Sub(last), enabled && now.Sub(last) >= idleAfter
}

// blocked applies the same protections core applies to its own
// disruptions (pkg/controllers/guard).
func (c *Controller) blocked(gn gpuNode, limits pdb.Limits) (string, bool) {
	return guard.Blocked(c.clk, c.recorder, limits, gn.nodeClaim, gn.node, gn.pods)
}
