package idlegpu

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	podutils "sigs.k8s.io/karpenter/pkg/utils/pod"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
)

// gpuNode is an initialized GPU node managed by a GPUNodeClass.
type gpuNode struct {
	nodeClaim   *karpv1.NodeClaim
	node        *corev1.Node
	nodeClass   *v1alpha1.GPUNodeClass
	pods        []*corev1.Pod // active, non-daemonset-owned and daemonset pods alike
	gpus        int64
	hasGPUWork  bool
	initialized time.Time
}

type snapshot struct {
	gpuNodes  []gpuNode
	nodePools map[string]*karpv1.NodePool
	// poolNodes counts nodes per pool and those already being disrupted, to
	// apply budgets as core does.
	poolNodes, poolDisrupting map[string]int
	// repacking: some NodeClaim is being repacked or is a replacement
	// still held by its move (the repacker must run).
	repacking bool
}

func (c *Controller) snapshot(ctx context.Context) (*snapshot, error) {
	var ncs karpv1.NodeClaimList
	var nodes corev1.NodeList
	var pods corev1.PodList
	var pools karpv1.NodePoolList
	var classes v1alpha1.GPUNodeClassList
	for _, l := range []client.ObjectList{&ncs, &nodes, &pods, &pools, &classes} {
		var opts []client.ListOption
		if l != client.ObjectList(&pools) && l != client.ObjectList(&classes) {
			// The lists of the cluster's many objects may hand out a
			// cache's own: nothing in a poll changes one in place. Pods
			// are only read (the packer copies them); a Node or NodeClaim
			// written (protection, repack) gets new maps and slices, and a
			// patch fills the list's copy of the struct. (NodePools and
			// node classes, few, go on to the cloud provider and the
			// packer: copies.)
			opts = append(opts, client.UnsafeDisableDeepCopy)
		}
		if err := c.kubeClient.List(ctx, l, opts...); err != nil {
			return nil, fmt.Errorf("listing %T, %w", l, err)
		}
	}
	nodesByProviderID := lo.SliceToMap(nodes.Items, func(n corev1.Node) (string, *corev1.Node) { return n.Spec.ProviderID, &n })
	podsByNode := lo.GroupBy(lo.Filter(lo.ToSlicePtr(pods.Items), func(p *corev1.Pod, _ int) bool {
		return p.Spec.NodeName != "" && podutils.IsActive(p)
	}), func(p *corev1.Pod) string { return p.Spec.NodeName })
	classByName := lo.SliceToMap(classes.Items, func(nc v1alpha1.GPUNodeClass) (string, *v1alpha1.GPUNodeClass) { return nc.Name, &nc })
	s := &snapshot{
		nodePools:      lo.SliceToMap(pools.Items, func(np karpv1.NodePool) (string, *karpv1.NodePool) { return np.Name, &np }),
		poolNodes:      map[string]int{},
		poolDisrupting: map[string]int{},
	}
	for i := range ncs.Items {
		nc := &ncs.Items[i]
		s.repacking = s.repacking || repack.InFlight(nc) || repack.IsReplacement(nc)
		pool := nc.Labels[karpv1.NodePoolLabelKey]
		s.poolNodes[pool]++
		node := nodesByProviderID[nc.Status.ProviderID]
		if Disrupting(nc, node) {
			s.poolDisrupting[pool]++
			continue
		}
		class, gpus, initialized, ok := trackedGPUNode(nc, node, classByName)
		if !ok {
			continue
		}
		nodePods := podsByNode[node.Name]
		s.gpuNodes = append(s.gpuNodes, gpuNode{
			nodeClaim: nc, node: node, nodeClass: class, pods: nodePods, gpus: gpus,
			hasGPUWork:  lo.ContainsBy(nodePods, v1alpha1.UsesAccelerator),
			initialized: initialized,
		})
	}
	return s, nil
}

// Disrupting reports whether nc is on its way out: being deleted, or its
// node (nil if it has none) carries core's disrupted NoSchedule taint. The
// controller counts such nodes against their NodePool's disruption budget
// and does not track them.
func Disrupting(nc *karpv1.NodeClaim, node *corev1.Node) bool {
	return !nc.DeletionTimestamp.IsZero() || (node != nil && lo.ContainsBy(node.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&karpv1.DisruptedNoScheduleTaint) }))
}

// trackedGPUNode is the controller's choice of the GPU nodes it tracks: a
// NodeClaim not Disrupting, with a Node (node, nil if none), whose node
// class is a GPUNodeClass found in classes (by name), Initialized, with
// accelerators allocatable on the Node or, if it reports none, on the
// NodeClaim. It
// returns the node class, the GPU count and when the NodeClaim became
// initialized; ok is false for a node the controller does not track.
func trackedGPUNode(nc *karpv1.NodeClaim, node *corev1.Node, classes map[string]*v1alpha1.GPUNodeClass) (class *v1alpha1.GPUNodeClass, gpus int64, initialized time.Time, ok bool) {
	if Disrupting(nc, node) || nc.Spec.NodeClassRef == nil || nc.Spec.NodeClassRef.Group != v1alpha1.Group || node == nil {
		return nil, 0, time.Time{}, false
	}
	class, found := classes[nc.Spec.NodeClassRef.Name]
	cond := nc.StatusConditions().Get(karpv1.ConditionTypeInitialized)
	if !found || cond == nil || !cond.IsTrue() {
		return nil, 0, time.Time{}, false
	}
	gpus = v1alpha1.Accelerators(node.Status.Allocatable)
	if gpus == 0 {
		gpus = v1alpha1.Accelerators(nc.Status.Allocatable)
	}
	if gpus == 0 {
		return nil, 0, time.Time{}, false
	}
	return class, gpus, cond.LastTransitionTime.Time, true
}

// budgets returns how many more nodes each NodePool may lose now.
func (s *snapshot) budgets(clk clock.Clock) map[string]int {
	out := map[string]int{}
	for _, name := range slices.Sorted(maps.Keys(s.nodePools)) {
		allowed := s.nodePools[name].MustGetAllowedDisruptions(clk, s.poolNodes[name], BudgetReason)
		out[name] = allowed - s.poolDisrupting[name]
	}
	return out
}
