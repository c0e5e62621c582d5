package aws

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// subnetDetail is what Resolve learned about a subnet beyond its status.
type subnetDetail struct {
	ID, Zone, ZoneID string
	FreeIPs          int32
}

// amiDetail is what Resolve learned about an image beyond its status.
type amiDetail struct {
	ID, Name, Arch, RootDevice string
}

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

func (b *Backend) resolveSubnets(ctx context.Context, nc *v1alpha1.GPUNodeClass) ([]subnetDetail, error) {
	found := map[string]subnetDetail{}
	for _, term := range nc.Spec.SubnetSelectorTerms {
		var filters []ec2types.Filter
		switch {
		case term.ID != "":
			filters = []ec2types.Filter{{Name: str("subnet-id"), Values: []string{term.ID}}}
		case len(term.Tags) > 0:
			filters = tagFilters(term.Tags)
		default:
			continue
		}
		pager := ec2.NewDescribeSubnetsPaginator(b.ec2, &ec2.DescribeSubnetsInput{Filters: filters, MaxResults: i32(1000)})
		for pager.HasMorePages() {
			cctx, cancel := b.call(ctx)
			out, err := pager.NextPage(cctx)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("describing subnets, %w", err)
			}
			for _, s := range out.Subnets {
				if s.State != "" && s.State != ec2types.SubnetStateAvailable {
					continue
				}
				d := subnetDetail{ID: lo.FromPtr(s.SubnetId), Zone: lo.FromPtr(s.AvailabilityZone), ZoneID: lo.FromPtr(s.AvailabilityZoneId), FreeIPs: lo.FromPtr(s.AvailableIpAddressCount)}
				found[d.ID] = d
			}
		}
	}
	out := lo.Values(found)
	// Most free addresses first: launches pick the first subnet of a zone.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Zone != out[j].Zone {
			return out[i].Zone < out[j].Zone
		}
		if out[i].FreeIPs != out[j].FreeIPs {
			return out[i].FreeIPs > out[j].FreeIPs
		}
		return out[i].ID < out[j].ID
	})
	b.mu.Lock()
	for _, s := range out {
		b.subnets[s.ID] = s
	}
	b.mu.Unlock()
	return out, nil
}

func (b *Backend) resolveSecurityGroups(ctx context.Context, nc *v1alpha1.GPUNodeClass) ([]v1alpha1.SecurityGroup, error) {
	found := map[string]v1alpha1.SecurityGroup{}
	for _, term := range nc.Spec.SecurityGroupSelectorTerms {
		var filters []ec2types.Filter
		switch {
		case term.ID != "":
			filters = []ec2types.Filter{{Name: str("group-id"), Values: []string{term.ID}}}
		case term.Name != "":
			filters = []ec2types.Filter{{Name: str("group-name"), Values: []string{term.Name}}}
		case len(term.Tags) > 0:
			filters = tagFilters(term.Tags)
		default:
			continue
		}
		pager := ec2.NewDescribeSecurityGroupsPaginator(b.ec2, &ec2.DescribeSecurityGroupsInput{Filters: filters, MaxResults: i32(1000)})
		for pager.HasMorePages() {
			cctx, cancel := b.call(ctx)
			out, err := pager.NextPage(cctx)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("describing security groups, %w", err)
			}
			for _, g := range out.SecurityGroups {
				found[lo.FromPtr(g.GroupId)] = v1alpha1.SecurityGroup{ID: lo.FromPtr(g.GroupId), Name: lo.FromPtr(g.GroupName)}
			}
		}
	}
	out := lo.Values(found)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// subnetsInZone returns the node class's subnets of a zone, most free
// addresses first.
func (b *Backend) subnetsInZone(nc *v1alpha1.GPUNodeClass, zone string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	subnets := lo.Filter(nc.Status.Subnets, func(s v1alpha1.Subnet, _ int) bool { return s.Zone == zone })
	sort.SliceStable(subnets, func(i, j int) bool { return b.subnets[subnets[i].ID].FreeIPs > b.subnets[subnets[j].ID].FreeIPs })
	return lo.Map(subnets, func(s v1alpha1.Subnet, _ int) string { return s.ID })
}

// zonesOf returns the zones of the node class's resolved subnets.
func zonesOf(nc *v1alpha1.GPUNodeClass) []string {
	zones := lo.Uniq(lo.Map(nc.Status.Subnets, func(s v1alpha1.Subnet, _ int) string { return s.Zone }))
	sort.Strings(zones)
	return zones
}

// instanceProfileName is the name of the profile managed for spec.role: one
// per cluster and role, so node classes sharing a role share a profile.
func (b *Backend) instanceProfileName(role string) string {
	name := fmt.Sprintf("%s_%s", b.opts.ClusterName, shortHash(b.opts.Region+"/"+role))
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+=,.@_-", r) {
			return r
		}
		return '-'
	}, lo.Substring(name, 0, 128))
}
