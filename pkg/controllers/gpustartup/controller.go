// Package gpustartup replaces GPU nodes whose device plugin never advertises
// their accelerators. Karpenter core waits for every requested extended
// resource before it initializes a node and has no initialization timeout,
// so such a node stays uninitialized (and billing) forever while its pods
// wait on it. After the GPUNodeClass's startupTimeout this controller
// records why on the NodeClaim and deletes it; core then provisions again.
package gpustartup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
)

// AnnotationStartupFailure records on the NodeClaim why it was replaced.
const AnnotationStartupFailure = v1alpha1.Group + "/startup-failure"

// TimeoutsTotal counts GPU nodes replaced for never advertising accelerators.
var TimeoutsTotal = metrics.NewCounterVec("startup", "timeouts_total", "GPU nodes replaced because the device plugin never advertised their accelerators within startupTimeout.",
	metrics.LabelNodePool, metrics.LabelInstanceType)

// Controller watches NodeClaims.
type Controller struct {
	opts Options
}

// Options are NewController's inputs.
type Options struct {
	Clock      clock.Clock // nil means the real clock
	KubeClient client.Client
	Recorder   events.Recorder
}

// NewController returns the startup-timeout controller.
func NewController(o Options) *Controller {
	o.Clock = lo.Ternary[clock.Clock](o.Clock == nil, clock.RealClock{}, o.Clock)
	return &Controller{opts: o}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "karpenter-gpu.gpustartup" }

// Register wires the controller into a manager.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).Named(c.Name()).For(&karpv1.NodeClaim{}).Complete(reconcile.AsReconciler(m.GetClient(), c))
}

// Reconcile checks one NodeClaim and requeues until it initializes or times out.
func (c *Controller) Reconcile(ctx context.Context, nc *karpv1.NodeClaim) (reconcile.Result, error) {
	if !nc.DeletionTimestamp.IsZero() || nc.Spec.NodeClassRef == nil || nc.Spec.NodeClassRef.Group != v1alpha1.Group {
		return reconcile.Result{}, nil
	}
	registered := nc.StatusConditions().Get(karpv1.ConditionTypeRegistered)
	if registered == nil || !registered.IsTrue() || nc.StatusConditions().Get(karpv1.ConditionTypeInitialized).IsTrue() {
		return reconcile.Result{}, nil
	}
	missing := c.missingAccelerators(ctx, nc)
	if len(missing) == 0 {
		return reconcile.Result{}, nil
	}
	class := &v1alpha1.GPUNodeClass{}
	if err := c.opts.KubeClient.Get(ctx, client.ObjectKey{Name: nc.Spec.NodeClassRef.Name}, class); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	waited := c.opts.Clock.Since(registered.LastTransitionTime.Time)
	if remaining := class.StartupTimeout() - waited; remaining > 0 {
		return reconcile.Result{RequeueAfter: remaining}, nil
	}
	reason := fmt.Sprintf("node registered %s ago but never advertised %s (device plugin or driver not ready)", waited.Round(time.Second), strings.Join(missing, ", "))
	stored := nc.DeepCopy()
	nc.Annotations = lo.Assign(nc.Annotations, map[string]string{AnnotationStartupFailure: reason})
	if err := c.opts.KubeClient.Patch(ctx, nc, client.MergeFrom(stored)); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	c.opts.Recorder.Publish(events.Event{InvolvedObject: nc, Type: corev1.EventTypeWarning, Reason: "GPUStartupTimeout", Message: "Replacing node: " + reason, DedupeValues: []string{string(nc.UID)}})
	if err := c.opts.KubeClient.Delete(ctx, nc); client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, err
	}
	TimeoutsTotal.WithLabelValues(nc.Labels[karpv1.NodePoolLabelKey], nc.Labels[corev1.LabelInstanceTypeStable]).Inc()
	log.FromContext(ctx).Info("replacing GPU node that never advertised its accelerators", "NodeClaim", nc.Name, "reason", reason)
	return reconcile.Result{}, nil
}

// missingAccelerators lists accelerator resources the NodeClaim expects
// (from its launch capacity) that the Node does not advertise.
func (c *Controller) missingAccelerators(ctx context.Context, nc *karpv1.NodeClaim) []string {
	node := &corev1.Node{}
	if nc.Status.NodeName == "" || c.opts.KubeClient.Get(ctx, client.ObjectKey{Name: nc.Status.NodeName}, node) != nil {
		return nil
	}
	var missing []string
	for _, r := range v1alpha1.AcceleratorResources {
		want, ok := nc.Status.Capacity[r]
		if !ok || want.IsZero() {
			continue
		}
		if got := node.Status.Allocatable[r]; got.IsZero() {
			missing = append(missing, string(r))
		}
	}
	return missing
}
