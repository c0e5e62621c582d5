package fake

import (
	"context"
	"strings"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// NodeLifecycle plays, for fake nodes in a real cluster, the parts of the
// kubelet and of kube-controller-manager's node-lifecycle controller that a
// fake node has nobody else to play (kube-controller-manager's node
// lifecycle would mark heartbeat-less fake nodes unreachable, so it is not
// run against them):
//   - the API server's TaintNodesByCondition admission puts
//     node.kubernetes.io/not-ready on every new Node; it is removed once the
//     node is Ready, as the node-lifecycle controller would;
//   - a pod being deleted on a fake node is removed at once, as the kubelet
//     confirms termination of a stopped container.
type NodeLifecycle struct {
	kubeClient client.Client
}

// NodeLifecycleOptions are NewNodeLifecycle's inputs.
type NodeLifecycleOptions struct {
	KubeClient client.Client
}

// NewNodeLifecycle returns the fake nodes' lifecycle controller.
func NewNodeLifecycle(o NodeLifecycleOptions) *NodeLifecycle {
	return &NodeLifecycle{kubeClient: o.KubeClient}
}

// Name is the controller's name.
func (n *NodeLifecycle) Name() string { return "fake.nodelifecycle" }

func isFakeNode(node *corev1.Node) bool {
	return strings.HasPrefix(node.Spec.ProviderID, ProviderIDPrefix)
}

// ReconcileNode lifts the not-ready taint of a Ready fake node.
func (n *NodeLifecycle) ReconcileNode(ctx context.Context, node *corev1.Node) (reconcile.Result, error) {
	ready, _ := lo.Find(node.Status.Conditions, func(c corev1.NodeCondition) bool { return c.Type == corev1.NodeReady })
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	if !isFakeNode(node) || ready.Status != corev1.ConditionTrue || !lo.ContainsBy(node.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&notReady) }) {
		return reconcile.Result{}, nil
	}
	stored := node.DeepCopy()
	node.Spec.Taints = lo.Reject(node.Spec.Taints, func(t corev1.Taint, _ int) bool { return t.MatchTaint(&notReady) })
	// A JSON merge patch replaces the whole taint list: without the
	// optimistic lock a stale cached node would put back taints another
	// writer (Karpenter's registration) has just removed. A conflict
	// requeues with the fresh node.
	return reconcile.Result{}, client.IgnoreNotFound(n.kubeClient.Patch(ctx, node, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{})))
}

// ReconcilePod completes the deletion of a pod on a fake node.
func (n *NodeLifecycle) ReconcilePod(ctx context.Context, pod *corev1.Pod) (reconcile.Result, error) {
	if pod.DeletionTimestamp.IsZero() || pod.Spec.NodeName == "" {
		return reconcile.Result{}, nil
	}
	node := &corev1.Node{}
	if err := n.kubeClient.Get(ctx, client.ObjectKey{Name: pod.Spec.NodeName}, node); err != nil || !isFakeNode(node) {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	return reconcile.Result{}, client.IgnoreNotFound(n.kubeClient.Delete(ctx, pod, client.GracePeriodSeconds(0)))
}

// Register wires both reconcilers into a manager.
func (n *NodeLifecycle) Register(_ context.Context, m manager.Manager) error {
	if err := controllerruntime.NewControllerManagedBy(m).Named(n.Name()).For(&corev1.Node{}).
		Complete(reconcile.AsReconciler(m.GetClient(), reconcilerFunc[*corev1.Node](n.ReconcileNode))); err != nil {
		return err
	}
	return controllerruntime.NewControllerManagedBy(m).Named(n.Name() + ".pods").For(&corev1.Pod{}).
		Complete(reconcile.AsReconciler(m.GetClient(), reconcilerFunc[*corev1.Pod](n.ReconcilePod)))
}
