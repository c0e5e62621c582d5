package provisioning

import (
	"context"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/utils/pod"
)

// triggerRequeue is how often a trigger looks again at a pod or node that
// may still need capacity.
const triggerRequeue = 10 * time.Second

// registerTrigger wires the trigger r of objects like obj into m under
// name, with ten concurrent reconciles (as core's triggers).
func registerTrigger[T client.Object](m manager.Manager, name string, obj T, r reconcile.ObjectReconciler[T]) error {
	return controllerruntime.NewControllerManagedBy(m).
		Named(name).
		For(obj).
		WithOptions(controller.Options{MaxConcurrentReconciles: 10}).
		Complete(reconcile.AsReconciler(m.GetClient(), r))
}

// PodTrigger adds pending pods to the provisioning batch. It does what core's
// provisioner.trigger.pod does, for this controller's batcher (core's
// batcher is only drained by core's provisioner, which this project replaces).
type PodTrigger struct {
	provisioner *Controller
	cluster     *state.Cluster
}

// TriggerOptions are NewPodTrigger's and NewNodeTrigger's inputs.
type TriggerOptions struct {
	// Provisioner is the provisioning controller the triggers batch for.
	Provisioner *Controller
	// Cluster is core's cluster state; the pod trigger acknowledges the
	// pods it saw (core's pod-scheduling metrics).
	Cluster *state.Cluster
}

// NewPodTrigger returns the pod trigger.
func NewPodTrigger(o TriggerOptions) *PodTrigger {
	return &PodTrigger{provisioner: o.Provisioner, cluster: o.Cluster}
}

// Name is the controller's name.
func (c *PodTrigger) Name() string { return "karpenter-gpu.provisioner.trigger.pod" }

// Reconcile triggers a batch for a provisionable pod and requeues until it
// is no longer pending: a pod may need several loops while nodes come up.
func (c *PodTrigger) Reconcile(_ context.Context, p *corev1.Pod) (reconcile.Result, error) {
	if !pod.IsProvisionable(p) {
		return reconcile.Result{}, nil
	}
	c.provisioner.Trigger(p.UID)
	c.cluster.AckPods(p)
	return reconcile.Result{RequeueAfter: triggerRequeue}, nil
}

// Register wires the controller into a manager.
func (c *PodTrigger) Register(_ context.Context, m manager.Manager) error {
	return registerTrigger(m, c.Name(), &corev1.Pod{}, c)
}

// NodeTrigger re-provisions for pods of nodes being disrupted.
type NodeTrigger struct{ provisioner *Controller }

// NewNodeTrigger returns the node trigger.
func NewNodeTrigger(o TriggerOptions) *NodeTrigger {
	return &NodeTrigger{provisioner: o.Provisioner}
}

// Name is the controller's name.
func (c *NodeTrigger) Name() string { return "karpenter-gpu.provisioner.trigger.node" }

// Reconcile triggers a batch for a node carrying the disrupted taint.
func (c *NodeTrigger) Reconcile(_ context.Context, n *corev1.Node) (reconcile.Result, error) {
	if !lo.ContainsBy(n.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&karpv1.DisruptedNoScheduleTaint) }) {
		return reconcile.Result{}, nil
	}
	c.provisioner.Trigger(n.UID)
	return reconcile.Result{RequeueAfter: triggerRequeue}, nil
}

// Register wires the controller into a manager.
func (c *NodeTrigger) Register(_ context.Context, m manager.Manager) error {
	return registerTrigger(m, c.Name(), &corev1.Node{}, c)
}
