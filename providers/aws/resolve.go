package aws

import (
	"context"
	"errors"
	"sort"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Resolve implements nodeclass.Resolver: it resolves the node class's
// subnets, security groups, images and instance profile into its status and
// sets one condition per part. Unresolvable parts are reported as False
// conditions with a reason, not as errors; an error is returned only when
// EC2 could not be asked (the controller then retries with backoff).
func (b *Backend) Resolve(ctx context.Context, nc *v1alpha1.GPUNodeClass) error {
	conds := nc.StatusConditions()
	var errs []error

	subnets, err := b.resolveSubnets(ctx, nc)
	switch {
	case err != nil:
		errs = append(errs, err)
		conds.SetFalse(v1alpha1.ConditionTypeSubnetsReady, "SubnetsResolutionFailed", err.Error())
	case len(subnets) == 0:
		nc.Status.Subnets = nil
		conds.SetFalse(v1alpha1.ConditionTypeSubnetsReady, "SubnetsNotFound", "no subnet matches subnetSelectorTerms")
	default:
		nc.Status.Subnets = lo.Map(subnets, func(s subnetDetail, _ int) v1alpha1.Subnet {
			return v1alpha1.Subnet{ID: s.ID, Zone: s.Zone, ZoneID: s.ZoneID}
		})
		conds.SetTrue(v1alpha1.ConditionTypeSubnetsReady)
	}

	sgs, err := b.resolveSecurityGroups(ctx, nc)
	switch {
	case err != nil:
		errs = append(errs, err)
		conds.SetFalse(v1alpha1.ConditionTypeSecurityGroupsReady, "SecurityGroupsResolutionFailed", err.Error())
	case len(sgs) == 0:
		nc.Status.SecurityGroups = nil
		conds.SetFalse(v1alpha1.ConditionTypeSecurityGroupsReady, "SecurityGroupsNotFound", "no security group matches securityGroupSelectorTerms")
	default:
		nc.Status.SecurityGroups = sgs
		conds.SetTrue(v1alpha1.ConditionTypeSecurityGroupsReady)
	}

	amis, reason, err := b.resolveAMIs(ctx, nc)
	switch {
	case err != nil:
		errs = append(errs, err)
		conds.SetFalse(v1alpha1.ConditionTypeAMIsReady, "AMIResolutionFailed", err.Error())
	case len(amis) == 0:
		nc.Status.AMIs = nil
		conds.SetFalse(v1alpha1.ConditionTypeAMIsReady, "AMIsNotFound", reason)
	default:
		nc.Status.AMIs = amis
		conds.SetTrue(v1alpha1.ConditionTypeAMIsReady)
	}

	profile, reason, err := b.resolveInstanceProfile(ctx, nc)
	switch {
	case err != nil:
		errs = append(errs, err)
		conds.SetFalse(v1alpha1.ConditionTypeInstanceProfileReady, "InstanceProfileResolutionFailed", err.Error())
	case profile == "":
		nc.Status.InstanceProfile = ""
		conds.SetFalse(v1alpha1.ConditionTypeInstanceProfileReady, "InstanceProfileNotFound", reason)
	default:
		nc.Status.InstanceProfile = profile
		conds.SetTrue(v1alpha1.ConditionTypeInstanceProfileReady)
	}
	if len(errs) > 0 {
		log.FromContext(ctx).Error(errors.Join(errs...), "resolving GPUNodeClass", "gpunodeclass", nc.Name)
	}
	// Transient API failures keep the last good status (only the condition
	// changes) and are retried by the controller.
	return errors.Join(errs...)
}

// tagFilters turns selector tags into EC2 filters; "*" matches any value.
func tagFilters(tags map[string]string) []ec2types.Filter {
	keys := lo.Keys(tags)
	sort.Strings(keys)
	return lo.Map(keys, func(k string, _ int) ec2types.Filter {
		if tags[k] == "*" {
			return ec2types.Filter{Name: str("tag-key"), Values: []string{k}}
		}
		return ec2types.Filter{Name: str("tag:" + k), Values: []string{tags[k]}}
	})
}
