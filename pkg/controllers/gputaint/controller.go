// Package gputaint keeps CPU-only pods off GPU nodes. A CPU pod that lands on
// a GPU node keeps it alive at GPU prices; Karpenter's scheduler only knows
// the taints of a NodePool's template, so the taint must be there, not only
// on the Node. For every NodePool whose GPUNodeClass has gpu.taint (the
// default), this controller adds nvidia.com/gpu=true:NoSchedule to the
// template. GPU pods tolerate it through the ExtendedResourceToleration
// admission plugin or an explicit toleration. Opt out with gpu.taint: false
// (the controller then leaves the template alone; it never removes a taint).
package gputaint

import (
	"context"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Taint is the taint GPU NodePools carry.
var Taint = corev1.Taint{Key: v1alpha1.ResourceNVIDIAGPU, Value: "true", Effect: corev1.TaintEffectNoSchedule}

// Controller reconciles NodePools.
type Controller struct {
	opts Options
}

// Options are NewController's inputs.
type Options struct {
	KubeClient client.Client
	Recorder   events.Recorder
}

// NewController returns the GPU-taint controller.
func NewController(o Options) *Controller {
	return &Controller{opts: o}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "karpenter-gpu.gputaint" }

// Reconcile adds the GPU taint to a NodePool's template when its node class
// asks for it.
func (c *Controller) Reconcile(ctx context.Context, np *karpv1.NodePool) (reconcile.Result, error) {
	ref := np.Spec.Template.Spec.NodeClassRef
	if ref == nil || ref.Group != v1alpha1.Group {
		return reconcile.Result{}, nil
	}
	class := &v1alpha1.GPUNodeClass{}
	if err := c.opts.KubeClient.Get(ctx, client.ObjectKey{Name: ref.Name}, class); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !class.GPUTaintEnabled() || lo.ContainsBy(np.Spec.Template.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&Taint) }) {
		return reconcile.Result{}, nil
	}
	stored := np.DeepCopy()
	np.Spec.Template.Spec.Taints = append(np.Spec.Template.Spec.Taints, Taint)
	if err := c.opts.KubeClient.Patch(ctx, np, client.MergeFrom(stored)); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	c.opts.Recorder.Publish(events.Event{InvolvedObject: np, Type: corev1.EventTypeNormal, Reason: "GPUTaintAdded",
		Message: "Added nvidia.com/gpu=true:NoSchedule so CPU-only pods stay off GPU nodes (set gpu.taint: false on the GPUNodeClass to opt out)", DedupeValues: []string{string(np.UID)}})
	return reconcile.Result{}, nil
}

// Register wires the controller into a manager; node class changes requeue
// the NodePools that use them.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).
		Named(c.Name()).
		For(&karpv1.NodePool{}).
		Watches(&v1alpha1.GPUNodeClass{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return NodePoolsForNodeClass(ctx, c.opts.KubeClient, o.GetName())
		})).
		Complete(reconcile.AsReconciler(m.GetClient(), c))
}

// NodePoolsForNodeClass is the controller's watch mapping for GPUNodeClasses
// (used by Register, and by the simulator's watch dispatch): a change to the
// GPUNodeClass named name requeues the NodePools whose template names it
// (the spec.template.spec.nodeClassRef.name field index). opts are added to
// the List (a caller that only reads the result may pass
// client.UnsafeDisableDeepCopy). A failed List maps to nothing.
func NodePoolsForNodeClass(ctx context.Context, kubeClient client.Client, name string, opts ...client.ListOption) []reconcile.Request {
	var pools karpv1.NodePoolList
	if err := kubeClient.List(ctx, &pools, append([]client.ListOption{client.MatchingFields{"spec.template.spec.nodeClassRef.name": name}}, opts...)...); err != nil {
		return nil
	}
	return lo.Map(pools.Items, func(np karpv1.NodePool, _ int) reconcile.Request {
		return reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&np)}
	})
}
