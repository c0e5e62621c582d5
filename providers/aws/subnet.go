package aws

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// subnetDetail is what Resolve learned about a subnet beyond its status.
type subnetDetail struct {
	ID, Zone, ZoneID string
	FreeIPs          int32
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

func (b *Backend) zoneOfSubnet(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subnets[id].Zone
}
