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

// SubnetReconciler sets status.subnets and SubnetsReady.
type SubnetReconciler struct {
	Subnets interface {
		List(ctx context.Context, nc *v1alpha1.GPUNodeClass) ([]subnet.Subnet, error)
	}
}

// Reconcile implements StatusReconciler.
func (r *SubnetReconciler) Reconcile(ctx context.Context, nc *v1alpha1.GPUNodeClass) error {
	conds := nc.StatusConditions()
	subnets, err := r.Subnets.List(ctx, nc)
	switch {
	case err != nil:
		conds.SetFalse(v1alpha1.ConditionTypeSubnetsReady, "SubnetsResolutionFailed", err.Error())
		return err
	case len(subnets) == 0:
		nc.Status.Subnets = nil
		conds.SetFalse(v1alpha1.ConditionTypeSubnetsReady, "SubnetsNotFound", "no subnet matches subnetSelectorTerms")
	default:
		nc.Status.Subnets = lo.Map(subnets, func(s subnet.Subnet, _ int) v1alpha1.Subnet {
			return v1alpha1.Subnet{ID: s.ID, Zone: s.Zone, ZoneID: s.ZoneID}
		})
		conds.SetTrue(v1alpha1.ConditionTypeSubnetsReady)
	}
	return nil
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
	conds := nc.StatusConditions()
	sgs, err := r.SecurityGroups.List(ctx, nc)
	switch {
	case err != nil:
		conds.SetFalse(v1alpha1.ConditionTypeSecurityGroupsReady, "SecurityGroupsResolutionFailed", err.Error())
		return err
	case len(sgs) == 0:
		nc.Status.SecurityGroups = nil
		conds.SetFalse(v1alpha1.ConditionTypeSecurityGroupsReady, "SecurityGroupsNotFound", "no security group matches securityGroupSelectorTerms")
	default:
		nc.Status.SecurityGroups = sgs
		conds.SetTrue(v1alpha1.ConditionTypeSecurityGroupsReady)
	}
	return nil
}

// AMIReconciler sets status.amis and AMIsReady.
type AMIReconciler struct {
	AMIs interface {
		List(ctx context.Context, nc *v1alpha1.GPUNodeClass) (amis []v1alpha1.AMI, reason string, err error)
	}
}

// Reconcile implements StatusReconciler.
func (r *AMIReconciler) Reconcile(ctx context.Context, nc *v1alpha1.GPUNodeClass) error {
	conds := nc.StatusConditions()
	amis, reason, err := r.AMIs.List(ctx, nc)
	switch {
	case err != nil:
		conds.SetFalse(v1alpha1.ConditionTypeAMIsReady, "AMIResolutionFailed", err.Error())
		return err
	case len(amis) == 0:
		nc.Status.AMIs = nil
		conds.SetFalse(v1alpha1.ConditionTypeAMIsReady, "AMIsNotFound", reason)
	default:
		nc.Status.AMIs = amis
		conds.SetTrue(v1alpha1.ConditionTypeAMIsReady)
	}
	return nil
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
	conds := nc.StatusConditions()
	profile, reason, err := r.InstanceProfiles.Resolve(ctx, nc)
	switch {
	case err != nil:
		conds.SetFalse(v1alpha1.ConditionTypeInstanceProfileReady, "InstanceProfileResolutionFailed", err.Error())
		return err
	case profile == "":
		nc.Status.InstanceProfile = ""
		conds.SetFalse(v1alpha1.ConditionTypeInstanceProfileReady, "InstanceProfileNotFound", reason)
	default:
		nc.Status.InstanceProfile = profile
		conds.SetTrue(v1alpha1.ConditionTypeInstanceProfileReady)
	}
	return nil
}
