package aws

import (
	"context"
	"errors"

	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/subnet"
)

// StatusReconciler resolves one concern of a GPUNodeClass into its status:
// it sets its status field and its condition. An unresolvable concern is a
// False condition with a reason, not an error; an error means the cloud
// could not be asked, and then the last resolved field is kept (only the
// condition changes) so launches go on with it.
type StatusReconciler interface {
	Reconcile(ctx context.Context, nc *v1alpha1.GPUNodeClass) error
}

// Resolve implements nodeclass.Resolver: it runs the status reconcilers in
// sequence (subnets, security groups, images, instance profile), each
// whatever the others did, and returns their errors joined (the controller
// then retries with backoff).
func (b *Backend) Resolve(ctx context.Context, nc *v1alpha1.GPUNodeClass) error {
	var errs []error
	for _, r := range b.reconcilers {
		if err := r.Reconcile(ctx, nc); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		log.FromContext(ctx).Error(errors.Join(errs...), "resolving GPUNodeClass", "gpunodeclass", nc.Name)
	}
	return errors.Join(errs...)
}

// settle records one concern's answer in the status: err keeps the stored
// field (launches go on with it) and sets the condition False with reason
// failed; an empty answer clears the field (set(false)) and sets it False
// with reason notFound and msg; an answer sets the field (set(true)) and
// the condition True.
func settle(nc *v1alpha1.GPUNodeClass, condition, failed, notFound, msg string, err error, empty bool, set func(found bool)) error {
	conds := nc.StatusConditions()
	switch {
	case err != nil:
		conds.SetFalse(condition, failed, err.Error())
		return err
	case empty:
		set(false)
		conds.SetFalse(condition, notFound, msg)
	default:
		set(true)
		conds.SetTrue(condition)
	}
	return nil
}

// SubnetReconciler sets status.subnets and SubnetsReady.
type SubnetReconciler struct {
	Subnets interface {
		List(ctx context.Context, nc *v1alpha1.GPUNodeClass) ([]subnet.Subnet, error)
	}
}

// Reconcile implements StatusReconciler.
func (r *SubnetReconciler) Reconcile(ctx context.Context, nc *v1alpha1.GPUNodeClass) error {
	subnets, err := r.Subnets.List(ctx, nc)
	return settle(nc, v1alpha1.ConditionTypeSubnetsReady, "SubnetsResolutionFailed", "SubnetsNotFound", "no subnet matches subnetSelectorTerms",
		err, len(subnets) == 0, func(found bool) {
			nc.Status.Subnets = nil
			if found {
				nc.Status.Subnets = lo.Map(subnets, func(s subnet.Subnet, _ int) v1alpha1.Subnet {
					return v1alpha1.Subnet{ID: s.ID, Zone: s.Zone, ZoneID: s.ZoneID}
				})
			}
		})
}

// SecurityGroupReconciler sets status.securityGroups and
// SecurityGroupsReady.
type SecurityGroupReconciler struct {
	SecurityGroups interface {
		List(ctx context.Context, nc *v1alpha1.GPUNodeClass) ([]v1alpha1.SecurityGroup, error)
	}
}

// Reconcile implements StatusReconciler.
func (r *SecurityGroupReconciler) Reconcile(ctx context.Context, nc *v1alpha1.GPUNodeClass) error {
	sgs, err := r.SecurityGroups.List(ctx, nc)
	return settle(nc, v1alpha1.ConditionTypeSecurityGroupsReady, "SecurityGroupsResolutionFailed", "SecurityGroupsNotFound", "no security group matches securityGroupSelectorTerms",
		err, len(sgs) == 0, func(found bool) { nc.Status.SecurityGroups = lo.Ternary(found, sgs, nil) })
}

// AMIReconciler sets status.amis and AMIsReady.
type AMIReconciler struct {
	AMIs interface {
		List(ctx context.Context, nc *v1alpha1.GPUNodeClass) (amis []v1alpha1.AMI, reason string, err error)
	}
}

// Reconcile implements StatusReconciler.
func (r *AMIReconciler) Reconcile(ctx context.Context, nc *v1alpha1.GPUNodeClass) error {
	amis, reason, err := r.AMIs.List(ctx, nc)
	return settle(nc, v1alpha1.ConditionTypeAMIsReady, "AMIResolutionFailed", "AMIsNotFound", reason,
		err, len(amis) == 0, func(found bool) { nc.Status.AMIs = lo.Ternary(found, amis, nil) })
}

// InstanceProfileReconciler sets status.instanceProfile and
// InstanceProfileReady.
type InstanceProfileReconciler struct {
	InstanceProfiles interface {
		Resolve(ctx context.Context, nc *v1alpha1.GPUNodeClass) (name, reason string, err error)
	}
}

// Reconcile implements StatusReconciler.
func (r *InstanceProfileReconciler) Reconcile(ctx context.Context, nc *v1alpha1.GPUNodeClass) error {
	profile, reason, err := r.InstanceProfiles.Resolve(ctx, nc)
	return settle(nc, v1alpha1.ConditionTypeInstanceProfileReady, "InstanceProfileResolutionFailed", "InstanceProfileNotFound", reason,
		err, profile == "", func(found bool) { nc.Status.InstanceProfile = profile })
}
