package provisioningrequest

import (
	"context"
	"errors"
	"fmt"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
)

// errNotSynced: the cluster state has not seen every node and NodeClaim yet,
// so an answer now could count capacity twice or miss it.
var errNotSynced = errors.New("cluster state is not synced yet")

// placeOnExisting counts the pods Karpenter core's scheduler places on
// existing and in-flight nodes when it has no NodePool to launch from.
// Nodes booked for another request are left out: their room is promised.
func (c *Controller) placeOnExisting(ctx context.Context, pr *autoscalingv1.ProvisioningRequest, pods []*corev1.Pod) (int, error) {
	if !c.opts.Cluster.Synced(ctx) {
		return 0, errNotSynced
	}
	nodes := lo.Filter(c.opts.Cluster.DeepCopyNodes().Active(), func(n *state.StateNode, _ int) bool {
		return !bookedForOther(n, pr)
	})
	if len(nodes) == 0 || len(pods) == 0 {
		return 0, nil
	}
	daemons, err := c.packing.DaemonSetPods(ctx)
	if err != nil {
		return 0, fmt.Errorf("getting daemon pods, %w", err)
	}
	opts := []scheduling.Options{scheduling.DisableReservedCapacityFallback}
	topology, err := scheduling.NewTopology(ctx, c.kube, c.opts.Cluster, nodes, nil, nil, pods, opts...)
	if err != nil {
		return 0, fmt.Errorf("tracking topology counts, %w", err)
	}
	s := scheduling.NewScheduler(ctx, c.kube, nil, c.opts.Cluster, nodes, topology, nil, daemons, c.opts.Recorder, c.clock, nil, nil, opts...)
	results, err := s.Solve(ctx, pods)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return 0, err
	}
	return lo.SumBy(results.ExistingNodes, func(n *scheduling.ExistingNode) int { return len(n.Pods) }), nil
}

// bookedForOther reports whether a node is held for another request.
func bookedForOther(n *state.StateNode, pr *autoscalingv1.ProvisioningRequest) bool {
	owner := n.Labels()[LabelRequest]
	return owner != "" && owner != string(pr.UID) && n.Annotations()[karpv1.DoNotDisruptAnnotationKey] == "true"
}
