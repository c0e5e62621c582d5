package aws

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// Offerings implements cloudprovider.Backend. Zones come from the node
// class's resolved subnets (all zones of the region for a nil node class);
// prices from the embedded table refreshed by the Pricing API (on-demand)
// and DescribeSpotPriceHistory (spot); reservations from
// DescribeCapacityReservations; entries from the catalog merged with
// DescribeInstanceTypes. A failed refresh serves the last known good data:
// Offerings only fails when it has nothing to offer from at all.
func (b *Backend) Offerings(ctx context.Context, nc *v1alpha1.GPUNodeClass) (*cloudprovider.OfferingInfo, error) {
	var zones []string
	if nc != nil {
		zones = zonesOf(nc)
	} else {
		var err error
		if zones, err = b.availabilityZones(ctx); err != nil {
			return nil, err
		}
	}
	logger := log.FromContext(ctx)
	entries, typeZones := b.types.current(ctx)
	od := b.prices.onDemand(ctx)
	spot := b.prices.spotPrices(ctx)
	reservations, err := b.reservations.current(ctx)
	if err != nil {
		logger.Error(err, "refreshing capacity reservations; serving the last known ones")
	}
	if nc != nil && len(nc.Status.AMIs) > 0 {
		// Offer only types the node class has an image for: an NVIDIA image
		// cannot boot an Inferentia node usefully, and a type no image fits
		// would be chosen and then fail to launch.
		entries = lo.Filter(entries, func(e catalog.Entry, _ int) bool { _, ok := amiFor(nc, &e); return ok })
	}
	known := lo.SliceToMap(entries, func(e catalog.Entry) (string, bool) { return e.Name, true })
	info := &cloudprovider.OfferingInfo{
		Zones:         zones,
		CapacityTypes: []string{karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeSpot},
		Region:        b.region(),
		Entries:       entries,
		Prices: catalog.PriceFunc(func(instanceType, zone, capacityType string) (float64, bool) {
			// Types EC2 does not offer in a zone get no price, hence no
			// offering there (launching them fails with Unsupported).
			if typeZones != nil && !typeZones[instanceType][zone] {
				return 0, false
			}
			var p float64
			var ok bool
			switch capacityType {
			case karpv1.CapacityTypeOnDemand:
				p, ok = od[instanceType]
			case karpv1.CapacityTypeSpot:
				p, ok = spot[spotKey(instanceType, zone)]
			}
			return p, ok && p > 0
		}),
	}
	for _, r := range reservations {
		if known[r.InstanceType] && lo.Contains(zones, r.Zone) {
			info.Reservations = append(info.Reservations, catalog.Reservation{ID: r.ID, InstanceType: r.InstanceType, Zone: r.Zone, Count: int(r.Available)})
		}
	}
	return info, nil
}

func (b *Backend) availabilityZones(ctx context.Context) ([]string, error) {
	zones, ok, err := b.zones.get(ctx, func(ctx context.Context, _ []string, _ bool) ([]string, error) {
		cctx, cancel := b.call(ctx)
		defer cancel()
		out, err := b.ec2.DescribeAvailabilityZones(cctx, &ec2.DescribeAvailabilityZonesInput{
			Filters: []ec2types.Filter{{Name: str("zone-type"), Values: []string{"availability-zone"}}},
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

// ---- capacity reservations -------------------------------------------------

// reservation is an active ODCR or capacity block.
type reservation struct {
	ID, InstanceType, Zone string
	Available              int32
	CapacityBlock          bool
}

type reservationBook struct {
	b *Backend
	r *refreshed[[]reservation]
}

func newReservationBook(b *Backend) *reservationBook {
	return &reservationBook{b: b, r: newRefreshed[[]reservation](b.clock, b.opts.ReservationRefresh, b.opts.RefreshRetry)}
}

func (rb *reservationBook) current(ctx context.Context) ([]reservation, error) {
	v, _, err := rb.r.get(ctx, func(ctx context.Context, _ []reservation, _ bool) ([]reservation, error) {
		return rb.fetch(ctx)
	})
	return v, err
}

// lookup returns a reservation by ID from the last refresh.
func (rb *reservationBook) lookup(ctx context.Context, id string) (reservation, bool) {
	rs, _ := rb.current(ctx)
	return lo.Find(rs, func(r reservation) bool { return r.ID == id })
}

func (rb *reservationBook) fetch(ctx context.Context) ([]reservation, error) {
	filters := []ec2types.Filter{
		{Name: str("state"), Values: []string{string(ec2types.CapacityReservationStateActive)}},
		{Name: str("instance-platform"), Values: []string{string(ec2types.CapacityReservationInstancePlatformLinuxUnix)}},
	}
	filters = append(filters, tagFilters(rb.b.opts.CapacityReservationTags)...)
	var out []reservation
	pager := ec2.NewDescribeCapacityReservationsPaginator(rb.b.ec2, &ec2.DescribeCapacityReservationsInput{Filters: filters, MaxResults: i32(1000)})
	for pager.HasMorePages() {
		cctx, cancel := rb.b.call(ctx)
		page, err := pager.NextPage(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("describing capacity reservations, %w", err)
		}
		for _, cr := range page.CapacityReservations {
			if cr.State != ec2types.CapacityReservationStateActive || cr.Tenancy == ec2types.CapacityReservationTenancyDedicated {
				continue
			}
			out = append(out, reservation{
				ID:            lo.FromPtr(cr.CapacityReservationId),
				InstanceType:  lo.FromPtr(cr.InstanceType),
				Zone:          lo.FromPtr(cr.AvailabilityZone),
				Available:     lo.FromPtr(cr.AvailableInstanceCount),
				CapacityBlock: cr.ReservationType == ec2types.CapacityReservationTypeCapacityBlock,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
