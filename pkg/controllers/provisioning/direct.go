package provisioning

// The direct path: a burst of pending GPU pods is decided without core's
// Solve, whose cost grows faster than linearly with the number of new
// NodeClaims it builds (every pod is tried against every NodeClaim in
// flight). Core's scheduler still places pods on existing and in-flight
// nodes (that is cheap and keeps the no-duplicate guarantee), the GPU
// packer plans the new capacity, and every other pod goes through core's
// Solve as in stock Karpenter. See designs/packing.md.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	coreprov "sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	nodeutils "sigs.k8s.io/karpenter/pkg/utils/node"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/coremirror"
)

// DirectPacker is a Refiner that can also plan new capacity for pending GPU
// pods on its own (Packer).
type DirectPacker interface {
	Refiner
	// Models reports whether the packer places pod without core's Solve.
	Models(pod *corev1.Pod) bool
	// PackPending plans NodeClaims for pods no existing node holds and
	// returns the pods it leaves to core's scheduler.
	PackPending(ctx context.Context, pods []*corev1.Pod) ([]*scheduling.NodeClaim, []*corev1.Pod, error)
	// DaemonSetPods as core's provisioner gives them to its scheduler.
	DaemonSetPods(ctx context.Context) ([]*corev1.Pod, error)
}

// DefaultDirectMinPods is the smallest number of packer-modelled pending GPU
// pods for which the loop takes the direct path. Below it core's Solve is
// fast (well under a second) and running it keeps core's own choice as the
// reference the savings metric is measured against.
const DefaultDirectMinPods = 100

// isBurst reports whether at least minPods pending pods are ones the packer
// models. It runs on every loop, before core's Schedule, so it only lists
// pods (from the informer cache): no node copies, and none of
// GetPendingPods' side effects (events and scheduling marks for invalid
// pods), which core's Schedule would repeat.
func (c *Controller) isBurst(ctx context.Context, packer DirectPacker, minPods int) (bool, error) {
	pods, err := nodeutils.GetProvisionablePods(ctx, c.kube)
	if err != nil {
		return false, err
	}
	return lo.CountBy(pods, func(p *corev1.Pod) bool { return packer.Models(p) }) >= minPods, nil
}

// scheduleDirect decides for a burst (isBurst) on the direct path.
func (c *Controller) scheduleDirect(ctx context.Context, packer DirectPacker) (scheduling.Results, error) {
	// As core's Schedule: nodes before pods, so capacity is never overestimated.
	nodes := c.cluster.DeepCopyNodes()
	pending, err := c.provisioner.GetPendingPods(ctx)
	if err != nil {
		return scheduling.Results{}, err
	}
	deleting, err := nodes.Deleting().CurrentlyReschedulablePods(ctx, c.kube, c.clock, c.recorder)
	if err != nil {
		return scheduling.Results{}, err
	}
	pods := append(pending, deleting...)
	direct, rest := lo.FilterReject(pods, func(p *corev1.Pod, _ int) bool { return !coreprov.IsVirtualPod(p) && packer.Models(p) })
	start := time.Now()
	deletingUIDs := sets.New(lo.Map(deleting, func(p *corev1.Pod, _ int) types.UID { return p.UID })...)
	opts := coremirror.SchedulerOptions(ctx)

	// 1. Existing and in-flight nodes first, with core's scheduler and no
	// NodePools: it can only place pods on nodes that exist.
	existing, err := c.placeOnExisting(ctx, packer, direct, nodes.Active(), opts)
	if err != nil {
		return scheduling.Results{}, err
	}
	// 2. New capacity for the rest, by the packer.
	// (What is not on a node is unplaced, whether Solve returned an error
	// for it or stopped early.)
	onNodes := sets.New[types.NamespacedName]()
	for _, n := range existing.ExistingNodes {
		for _, p := range n.Pods {
			onNodes.Insert(client.ObjectKeyFromObject(p))
		}
	}
	unplaced := lo.Reject(direct, func(p *corev1.Pod, _ int) bool { return onNodes.Has(client.ObjectKeyFromObject(p)) })
	var newClaims []*scheduling.NodeClaim
	if len(unplaced) > 0 {
		var left []*corev1.Pod
		newClaims, left, err = packer.PackPending(ctx, unplaced)
		if err != nil {
			log.FromContext(ctx).Error(err, "packing pending GPU pods; leaving them to core's scheduler")
		}
		rest = append(rest, left...)
	}
	results := scheduling.Results{
		NewNodeClaims: newClaims,
		ExistingNodes: lo.Filter(existing.ExistingNodes, func(n *scheduling.ExistingNode, _ int) bool { return len(n.Pods) > 0 }),
		PodErrors:     map[*corev1.Pod]error{},
	}
	// 3. Everything else through core's Solve, refined as on the normal
	// path. Nodes that took pods in step 1 are left out of its view: their
	// remaining capacity is known only to step 1's scheduler, and a pod
	// core could put there would double-book it.
	if len(rest) > 0 {
		used := sets.New(lo.Map(results.ExistingNodes, func(n *scheduling.ExistingNode, _ int) string { return n.Name() })...)
		free := lo.Filter(nodes.Active(), func(n *state.StateNode, _ int) bool { return !used.Has(n.Name()) })
		core, err := c.solve(ctx, rest, free, deletingUIDs, opts)
		if err != nil {
			return scheduling.Results{}, err
		}
		if len(core.NewNodeClaims) > 0 {
			core = c.refiner.Refine(ctx, core)
		}
		results.NewNodeClaims = append(results.NewNodeClaims, core.NewNodeClaims...)
		results.ExistingNodes = append(results.ExistingNodes, core.ExistingNodes...)
		results.PodErrors = core.PodErrors
		results.DRAClaimAllocationMetadata = core.DRAClaimAllocationMetadata
	}
	results = results.TruncateInstanceTypes(ctx, scheduling.MaxInstanceTypes)
	c.Record(ctx, results)
	log.FromContext(ctx).WithValues("pods", len(pods), "direct", len(direct), "on-existing", len(direct)-len(unplaced),
		"nodeclaims", len(results.NewNodeClaims), "duration", time.Since(start)).Info("decided pending GPU pods on the direct path")
	return results, nil
}

// placeOnExisting runs core's scheduler over pods with no NodePools, so
// each pod lands on an existing or in-flight node that holds it or gets a
// pod error.
func (c *Controller) placeOnExisting(ctx context.Context, packer DirectPacker, pods []*corev1.Pod, nodes []*state.StateNode, opts []scheduling.Options) (scheduling.Results, error) {
	if len(nodes) == 0 || len(pods) == 0 {
		return scheduling.Results{}, nil // nothing placed; the caller packs the rest
	}
	daemons, err := packer.DaemonSetPods(ctx)
	if err != nil {
		return scheduling.Results{}, fmt.Errorf("getting daemon pods, %w", err)
	}
	topology, err := scheduling.NewTopology(ctx, c.kube, c.cluster, nodes, nil, nil, pods, opts...)
	if err != nil {
		return scheduling.Results{}, fmt.Errorf("tracking topology counts, %w", err)
	}
	s := scheduling.NewScheduler(ctx, c.kube, nil, c.cluster, nodes, topology, nil, daemons, c.recorder, c.clock, nil, nil, opts...)
	results, err := s.Solve(ctx, pods)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return scheduling.Results{}, err
	}
	return results, nil
}

// solve is core's Schedule for a given set of pods and nodes: the same
// scheduler construction, options and one-minute limit.
func (c *Controller) solve(ctx context.Context, pods []*corev1.Pod, nodes []*state.StateNode, deleting sets.Set[types.UID], opts []scheduling.Options) (scheduling.Results, error) {
	s, err := c.provisioner.NewScheduler(ctx, pods, nodes, deleting, opts...)
	if err != nil {
		if errors.Is(err, coreprov.ErrNodePoolsNotFound) {
			errs := map[*corev1.Pod]error{}
			for _, p := range pods {
				errs[p] = errors.New("no dynamic nodepools found")
			}
			return scheduling.Results{PodErrors: errs}, nil
		}
		return scheduling.Results{}, fmt.Errorf("creating scheduler, %w", err)
	}
	timeoutCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	results, err := s.Solve(timeoutCtx, pods)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return scheduling.Results{}, err
	}
	return results, nil
}

// realPodErrors and realPods drop capacity-buffer virtual pods, which never
// exist in the API server (as core's Schedule does before marking).
func realPodErrors(m map[*corev1.Pod]error) map[*corev1.Pod]error {
	return lo.PickBy(m, func(p *corev1.Pod, _ error) bool { return !coreprov.IsVirtualPod(p) })
}

func realPods(m map[string][]*corev1.Pod) map[string][]*corev1.Pod {
	out := map[string][]*corev1.Pod{}
	for k, pods := range m {
		if real := lo.Reject(pods, func(p *corev1.Pod, _ int) bool { return coreprov.IsVirtualPod(p) }); len(real) > 0 {
			out[k] = real
		}
	}
	return out
}
