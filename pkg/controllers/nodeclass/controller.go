// Package nodeclass reconciles GPUNodeClass status: it resolves what the
// backend needs (subnets, security groups, images, instance profile) and sets
// the Ready condition that Karpenter's NodePool readiness mirrors. A NodePool
// is only used for provisioning once its GPUNodeClass is Ready.
package nodeclass

import (
	"context"
	"time"

	"github.com/awslabs/operatorpkg/reasonable"
	"k8s.io/apimachinery/pkg/api/equality"
	controllerruntime "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// Resolver is implemented by backends that resolve cloud resources for a
// node class (providers/aws). It fills nodeClass.Status and sets the
// sub-conditions; an error means the resolution could not be attempted.
type Resolver interface {
	Resolve(ctx context.Context, nodeClass *v1alpha1.GPUNodeClass) error
}

// Controller sets GPUNodeClass status.
type Controller struct {
	kubeClient client.Client
	backend    cloudprovider.Backend
}

// NewController returns the GPUNodeClass status controller.
func NewController(kubeClient client.Client, backend cloudprovider.Backend) *Controller {
	return &Controller{kubeClient: kubeClient, backend: backend}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "gpunodeclass.status" }

// Reconcile resolves the node class and patches its status when it changed.
func (c *Controller) Reconcile(ctx context.Context, nc *v1alpha1.GPUNodeClass) (reconcile.Result, error) {
	stored := nc.DeepCopy()
	conds := nc.StatusConditions()
	if r, ok := c.backend.(Resolver); ok {
		if err := r.Resolve(ctx, nc); err != nil {
			return reconcile.Result{}, err
		}
	} else if _, err := c.backend.Offerings(ctx, nc); err != nil {
		// Backends without cloud-side resources (the fake fleet) are ready
		// as soon as they can describe offerings.
		conds.SetFalse(v1alpha1.ConditionTypeSubnetsReady, "OfferingsUnavailable", err.Error())
	} else {
		for _, t := range []string{v1alpha1.ConditionTypeSubnetsReady, v1alpha1.ConditionTypeSecurityGroupsReady, v1alpha1.ConditionTypeAMIsReady, v1alpha1.ConditionTypeInstanceProfileReady} {
			conds.SetTrue(t)
		}
	}
	if !equality.Semantic.DeepEqual(stored.Status, nc.Status) {
		if err := c.kubeClient.Status().Patch(ctx, nc, client.MergeFrom(stored)); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
	}
	// Re-resolve periodically: subnets, images and reservations change.
	return reconcile.Result{RequeueAfter: 5 * time.Minute}, nil
}

// Register wires the controller into a manager.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).
		Named(c.Name()).
		For(&v1alpha1.GPUNodeClass{}).
		WithOptions(controller.Options{RateLimiter: reasonable.RateLimiter(), MaxConcurrentReconciles: 4}).
		Complete(reconcile.AsReconciler(m.GetClient(), c))
}
