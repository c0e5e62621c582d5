// Package offering describes where and at what price a GPUNodeClass can
// launch: the zones of its subnets, the instance types it has an image
// for, their on-demand and spot prices, and the capacity reservations in
// those zones (cloudprovider.Backend.Offerings).
package offering

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/ami"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/capacityreservation"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/pricing"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/subnet"
)

// InstanceTypes is what the provider asks of the instance types.
type InstanceTypes interface {
	List(ctx context.Context) ([]catalog.Entry, map[string]map[string]bool)
}

// Prices is what the provider asks of the prices.
type Prices interface {
	OnDemand(ctx context.Context) map[string]float64
	Spot(ctx context.Context) map[string]float64
}

// Reservations is what the provider asks of the capacity reservations.
type Reservations interface {
	List(ctx context.Context) ([]capacityreservation.Reservation, error)
}

// EC2API is the EC2 call the provider makes.
type EC2API interface {
	DescribeAvailabilityZones(ctx context.Context, in *ec2.DescribeAvailabilityZonesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error)
}

// Options configure a Provider.
type Options struct {
	// EC2 lists the region's zones for a nil node class.
	EC2           EC2API
	Region        string
	InstanceTypes InstanceTypes
	Prices        Prices
	Reservations  Reservations
	Clock         clock.Clock
	// RefreshRetry is how long a failed zone listing waits before the next.
	RefreshRetry time.Duration
	CallTimeout  time.Duration
}

// Provider assembles offerings.
type Provider struct {
	opts  Options
	zones *awsutil.Refreshed[[]string]
}

// NewProvider returns a Provider; it makes no API call.
func NewProvider(o Options) *Provider {
	return &Provider{opts: o, zones: awsutil.NewRefreshed[[]string](o.Clock, time.Hour, o.RefreshRetry)}
}

// Offerings is cloudprovider.Backend.Offerings. Zones come from the node
// class's resolved subnets (all zones of the region for a nil node class);
// prices from the embedded table refreshed by the Pricing API (on-demand)
// and DescribeSpotPriceHistory (spot); reservations from
// DescribeCapacityReservations; entries from the catalog merged with
// DescribeInstanceTypes. A failed refresh serves the last known good data:
// Offerings only fails when it has nothing to offer from at all.
func (p *Provider) Offerings(ctx context.Context, nc *v1alpha1.GPUNodeClass) (*cloudprovider.OfferingInfo, error) {
	var zones []string
	if nc != nil {
		zones = subnet.Zones(nc)
	} else {
		var err error
		if zones, err = p.availabilityZones(ctx); err != nil {
			return nil, err
		}
	}
	logger := log.FromContext(ctx)
	entries, typeZones := p.opts.InstanceTypes.List(ctx)
	od := p.opts.Prices.OnDemand(ctx)
	spot := p.opts.Prices.Spot(ctx)
	reservations, err := p.opts.Reservations.List(ctx)
	if err != nil {
		logger.Error(err, "refreshing capacity reservations; serving the last known ones")
	}
	if nc != nil && len(nc.Status.AMIs) > 0 {
		// Offer only types the node class has an image for: an NVIDIA image
		// cannot boot an Inferentia node usefully, and a type no image fits
		// would be chosen and then fail to launch.
		entries = lo.Filter(entries, func(e catalog.Entry, _ int) bool { _, ok := ami.For(nc, &e); return ok })
	}
	known := lo.SliceToMap(entries, func(e catalog.Entry) (string, bool) { return e.Name, true })
	info := &cloudprovider.OfferingInfo{
		Zones:         zones,
		CapacityTypes: []string{karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeSpot},
		Region:        p.opts.Region,
		Entries:       entries,
		Prices: catalog.PriceFunc(func(instanceType, zone, capacityType string) (float64, bool) {
			// Types EC2 does not offer in a zone get no price, hence no
			// offering there (launching them fails with Unsupported).
			if typeZones != nil && !typeZones[instanceType][zone] {
				return 0, false
			}
			var price float64
			var ok bool
			switch capacityType {
			case karpv1.CapacityTypeOnDemand:
				price, ok = od[instanceType]
			case karpv1.CapacityTypeSpot:
				price, ok = spot[pricing.SpotKey(instanceType, zone)]
			}
			return price, ok && price > 0
		}),
	}
	for _, r := range reservations {
		if known[r.InstanceType] && lo.Contains(zones, r.Zone) {
			info.Reservations = append(info.Reservations, catalog.Reservation{ID: r.ID, InstanceType: r.InstanceType, Zone: r.Zone, Count: int(r.Available)})
		}
	}
	return info, nil
}

func (p *Provider) availabilityZones(ctx context.Context) ([]string, error) {
	zones, ok, err := p.zones.Get(ctx, func(ctx context.Context, _ []string, _ bool) ([]string, error) {
		cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
		defer cancel()
		out, err := p.opts.EC2.DescribeAvailabilityZones(cctx, &ec2.DescribeAvailabilityZonesInput{
			Filters: []ec2types.Filter{{Name: aws.String("zone-type"), Values: []string{"availability-zone"}}},
		})
		if err != nil {
			return nil, fmt.Errorf("describing availability zones, %w", err)
		}
		zones := lo.FilterMap(out.AvailabilityZones, func(z ec2types.AvailabilityZone, _ int) (string, bool) {
			return lo.FromPtr(z.ZoneName), z.State == "" || z.State == ec2types.AvailabilityZoneStateAvailable
		})
		sort.Strings(zones)
		return zones, nil
	})
	if !ok {
		return nil, err
	}
	return zones, nil
}
