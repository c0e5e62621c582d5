// Package subnet resolves a GPUNodeClass's subnetSelectorTerms with
// DescribeSubnets and remembers each subnet's free addresses, so launches
// try the subnet of a zone with the most room first.
package subnet

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// Subnet is what resolution learned about a subnet beyond the status.
type Subnet struct {
	ID, Zone, ZoneID string
	FreeIPs          int32
}

// Options configure a Provider.
type Options struct {
	EC2         ec2.DescribeSubnetsAPIClient
	CallTimeout time.Duration
}

// Provider resolves subnets and remembers their details.
type Provider struct {
	ec2     ec2.DescribeSubnetsAPIClient
	timeout time.Duration

	mu    sync.Mutex
	known map[string]Subnet
}

// NewProvider returns a Provider.
func NewProvider(o Options) *Provider {
	return &Provider{ec2: o.EC2, timeout: o.CallTimeout, known: map[string]Subnet{}}
}

// List returns the available subnets matching the node class's selector
// terms (an ID, or tags with "*" for any value), by zone, most free
// addresses first.
func (p *Provider) List(ctx context.Context, nc *v1alpha1.GPUNodeClass) ([]Subnet, error) {
	found := map[string]Subnet{}
	for _, term := range nc.Spec.SubnetSelectorTerms {
		filters := awsutil.TermFilters("subnet-id", term.ID, "", "", term.Tags)
		if filters == nil {
			continue
		}
		pager := ec2.NewDescribeSubnetsPaginator(p.ec2, &ec2.DescribeSubnetsInput{Filters: filters, MaxResults: aws.Int32(1000)})
		if err := awsutil.EachPage(ctx, p.timeout, pager, func(out *ec2.DescribeSubnetsOutput) {
			for _, s := range out.Subnets {
				if s.State != "" && s.State != ec2types.SubnetStateAvailable {
					continue
				}
				d := Subnet{ID: lo.FromPtr(s.SubnetId), Zone: lo.FromPtr(s.AvailabilityZone), ZoneID: lo.FromPtr(s.AvailabilityZoneId), FreeIPs: lo.FromPtr(s.AvailableIpAddressCount)}
				found[d.ID] = d
			}
		}); err != nil {
			return nil, fmt.Errorf("describing subnets, %w", err)
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
	p.mu.Lock()
	for _, s := range out {
		p.known[s.ID] = s
	}
	p.mu.Unlock()
	return out, nil
}

// InZone returns the node class's resolved subnets of a zone, most free
// addresses first (as last listed).
func (p *Provider) InZone(nc *v1alpha1.GPUNodeClass, zone string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	subnets := lo.Filter(nc.Status.Subnets, func(s v1alpha1.Subnet, _ int) bool { return s.Zone == zone })
	sort.SliceStable(subnets, func(i, j int) bool { return p.known[subnets[i].ID].FreeIPs > p.known[subnets[j].ID].FreeIPs })
	return lo.Map(subnets, func(s v1alpha1.Subnet, _ int) string { return s.ID })
}

// ZoneOf returns the zone of a listed subnet, or "".
func (p *Provider) ZoneOf(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.known[id].Zone
}

// Zones returns the zones of the node class's resolved subnets.
func Zones(nc *v1alpha1.GPUNodeClass) []string {
	zones := lo.Uniq(lo.Map(nc.Status.Subnets, func(s v1alpha1.Subnet, _ int) string { return s.Zone }))
	sort.Strings(zones)
	return zones
}
