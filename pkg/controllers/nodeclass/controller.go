// Package nodeclass reconciles GPUNodeClass status: it resolves what the
// backend needs (subnets, security groups, images, instance profile),
// dry-runs a launch where the backend can (ValidationSucceeded), and sets
// the Ready condition that Karpenter's NodePool readiness mirrors. A NodePool
// is only used for provisioning once its GPUNodeClass is Ready.
package nodeclass

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/awslabs/operatorpkg/reasonable"
	"github.com/awslabs/operatorpkg/status"
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

// Validator is implemented by backends that can dry-run a launch for a
// resolved node class (providers/aws: CreateLaunchTemplate and
// RunInstances with DryRun). Validate returns nil when the cloud would
// accept the launch, an error implementing ValidationFailure when it
// refuses, and any other error when the answer is inconclusive (throttled,
// unreachable): then the condition keeps its last verdict and the node
// class is reconciled again with backoff.
type Validator interface {
	Validate(ctx context.Context, nodeClass *v1alpha1.GPUNodeClass) error
}

// ValidationFailure is a Validate verdict: the launch would be refused.
type ValidationFailure interface {
	error
	// ConditionReason is the reason of the ValidationSucceeded=False
	// condition (the cloud's error code, e.g. UnauthorizedOperation).
	ConditionReason() string
}

// ConditionTypeValidationSucceeded is True when the backend's dry-run launch
// for the resolved node class succeeded (as EC2NodeClass's condition of the
// same name). With a Validator backend, Ready depends on it.
const ConditionTypeValidationSucceeded = "ValidationSucceeded"

// Options are NewController's inputs.
type Options struct {
	KubeClient client.Client
	// Backend resolves and validates node classes when it implements
	// Resolver and Validator; any other backend makes node classes Ready
	// once it can describe their offerings.
	Backend cloudprovider.Backend
}

// Controller sets GPUNodeClass status.
type Controller struct {
	opts Options
}

// NewController returns the GPUNodeClass status controller.
func NewController(o Options) *Controller {
	return &Controller{opts: o}
}

// Name is the controller's name.
func (c *Controller) Name() string { return "gpunodeclass.status" }

// Reconcile resolves the node class and patches its status when it changed.
func (c *Controller) Reconcile(ctx context.Context, nc *v1alpha1.GPUNodeClass) (reconcile.Result, error) {
	stored := nc.DeepCopy()
	conds := nc.StatusConditions()
	var validateErr error
	if r, ok := c.opts.Backend.(Resolver); ok {
		if err := r.Resolve(ctx, nc); err != nil {
			return reconcile.Result{}, err
		}
		if v, ok := c.opts.Backend.(Validator); ok {
			validateErr = c.validate(ctx, v, nc)
		}
	} else if _, err := c.opts.Backend.Offerings(ctx, nc); err != nil {
		// Backends without cloud-side resources (the fake fleet) are ready
		// as soon as they can describe offerings.
		conds.SetFalse(v1alpha1.ConditionTypeSubnetsReady, "OfferingsUnavailable", err.Error())
	} else {
		for _, t := range []string{v1alpha1.ConditionTypeSubnetsReady, v1alpha1.ConditionTypeSecurityGroupsReady, v1alpha1.ConditionTypeAMIsReady, v1alpha1.ConditionTypeInstanceProfileReady} {
			conds.SetTrue(t)
		}
	}
	if !equality.Semantic.DeepEqual(stored.Status, nc.Status) {
		if err := c.opts.KubeClient.Status().Patch(ctx, nc, client.MergeFrom(stored)); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
	}
	if validateErr != nil {
		return reconcile.Result{}, validateErr
	}
	// Re-resolve periodically: subnets, images and reservations change.
	return reconcile.Result{RequeueAfter: 5 * time.Minute}, nil
}

// validate sets ValidationSucceeded from a dry run once every resolution
// condition is True, and makes Ready depend on it. It returns the
// inconclusive errors (the condition keeps its last verdict).
func (c *Controller) validate(ctx context.Context, v Validator, nc *v1alpha1.GPUNodeClass) error {
	conds := withValidation(nc)
	// Resolve recomputed Ready without ValidationSucceeded, and setting an
	// unchanged condition recomputes nothing: Ready is reconciled here.
	defer func() {
		if vc := conds.Get(ConditionTypeValidationSucceeded); vc != nil && !vc.IsTrue() && conds.Root().IsTrue() {
			conds.Set(status.Condition{Type: status.ConditionReady, Status: vc.Status, Reason: "UnhealthyDependents",
				Message: ConditionTypeValidationSucceeded + "=" + string(vc.Status)})
		}
	}()
	if !resolved(nc) {
		conds.SetUnknownWithReason(ConditionTypeValidationSucceeded, "AwaitingResolution", "validated once subnets, security groups, images and the instance profile are resolved")
		return nil
	}
	err := v.Validate(ctx, nc)
	var failure ValidationFailure
	switch {
	case err == nil:
		conds.SetTrue(ConditionTypeValidationSucceeded)
	case errors.As(err, &failure):
		conds.SetFalse(ConditionTypeValidationSucceeded, failure.ConditionReason(), failure.Error())
	default:
		if conds.Get(ConditionTypeValidationSucceeded) == nil {
			conds.SetUnknownWithReason(ConditionTypeValidationSucceeded, "ValidationInconclusive", err.Error())
		}
		return fmt.Errorf("validating GPUNodeClass %s, %w", nc.Name, err)
	}
	return nil
}

// resolutionConditions are the dependents of Ready that v1alpha1 declares.
var resolutionConditions = []string{v1alpha1.ConditionTypeSubnetsReady, v1alpha1.ConditionTypeSecurityGroupsReady,
	v1alpha1.ConditionTypeAMIsReady, v1alpha1.ConditionTypeInstanceProfileReady}

func resolved(nc *v1alpha1.GPUNodeClass) bool {
	conds := nc.StatusConditions()
	for _, t := range resolutionConditions {
		if cond := conds.Get(t); cond == nil || !cond.IsTrue() {
			return false
		}
	}
	return true
}

// withValidation is nc's condition set with ValidationSucceeded added to
// Ready's dependents (every dependent GPUNodeClass declares, plus any other
// it reports on the object).
func withValidation(nc *v1alpha1.GPUNodeClass) status.ConditionSet {
	base := nc.StatusConditions()
	deps := append([]string{}, resolutionConditions...)
	for _, cond := range nc.Status.Conditions {
		if base.IsDependentCondition(cond.Type) && !slices.Contains(deps, cond.Type) {
			deps = append(deps, cond.Type)
		}
	}
	return status.NewReadyConditions(append(deps, ConditionTypeValidationSucceeded)...).For(nc)
}

// Register wires the controller into a manager.
func (c *Controller) Register(_ context.Context, m manager.Manager) error {
	return controllerruntime.NewControllerManagedBy(m).
		Named(c.Name()).
		For(&v1alpha1.GPUNodeClass{}).
		WithOptions(controller.Options{RateLimiter: reasonable.RateLimiter(), MaxConcurrentReconciles: 4}).
		Complete(reconcile.AsReconciler(m.GetClient(), c))
}
