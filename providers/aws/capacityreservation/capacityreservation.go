// Package capacityreservation lists the account's active on-demand capacity
// reservations and capacity blocks (DescribeCapacityReservations), offered
// as "reserved" capacity.
package capacityreservation

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

	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// Reservation is an active ODCR or capacity block.
type Reservation struct {
	ID, InstanceType, Zone string
	Available              int32
	CapacityBlock          bool
}

// Options configure a Provider.
type Options struct {
	EC2 ec2.DescribeCapacityReservationsAPIClient
	// Tags restricts the reservations to those carrying all of these tags;
	// empty means every active reservation of the account.
	Tags  map[string]string
	Clock clock.Clock
	// Refresh is how long the list is trusted; RefreshRetry how long a
	// failed refresh waits before the next.
	Refresh, RefreshRetry time.Duration
	CallTimeout           time.Duration
}

// Provider lists the account's active Linux reservations.
type Provider struct {
	opts Options
	r    *awsutil.Refreshed[[]Reservation]
}

// NewProvider returns a Provider; it makes no API call.
func NewProvider(o Options) *Provider {
	return &Provider{opts: o, r: awsutil.NewRefreshed[[]Reservation](o.Clock, o.Refresh, o.RefreshRetry)}
}

// List returns the reservations, refreshed when due; on a failed refresh
// it returns the last known ones with the error.
func (p *Provider) List(ctx context.Context) ([]Reservation, error) {
	v, _, err := p.r.Get(ctx, func(ctx context.Context, _ []Reservation, _ bool) ([]Reservation, error) {
		return p.fetch(ctx)
	})
	return v, err
}

// Get returns a reservation by ID.
func (p *Provider) Get(ctx context.Context, id string) (Reservation, bool) {
	rs, _ := p.List(ctx)
	return lo.Find(rs, func(r Reservation) bool { return r.ID == id })
}

func (p *Provider) fetch(ctx context.Context) ([]Reservation, error) {
	filters := []ec2types.Filter{
		{Name: aws.String("state"), Values: []string{string(ec2types.CapacityReservationStateActive)}},
		{Name: aws.String("instance-platform"), Values: []string{string(ec2types.CapacityReservationInstancePlatformLinuxUnix)}},
	}
	filters = append(filters, awsutil.TagFilters(p.opts.Tags)...)
	var out []Reservation
	pager := ec2.NewDescribeCapacityReservationsPaginator(p.opts.EC2, &ec2.DescribeCapacityReservationsInput{Filters: filters, MaxResults: aws.Int32(1000)})
	if err := awsutil.EachPage(ctx, p.opts.CallTimeout, pager, func(page *ec2.DescribeCapacityReservationsOutput) {
		for _, cr := range page.CapacityReservations {
			if cr.State != ec2types.CapacityReservationStateActive || cr.Tenancy == ec2types.CapacityReservationTenancyDedicated {
				continue
			}
			out = append(out, Reservation{
				ID:            lo.FromPtr(cr.CapacityReservationId),
				InstanceType:  lo.FromPtr(cr.InstanceType),
				Zone:          lo.FromPtr(cr.AvailabilityZone),
				Available:     lo.FromPtr(cr.AvailableInstanceCount),
				CapacityBlock: cr.ReservationType == ec2types.CapacityReservationTypeCapacityBlock,
			})
		}
	}); err != nil {
		return nil, fmt.Errorf("describing capacity reservations, %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Invalidate makes the next List ask EC2 again (a launch took a seat).
func (p *Provider) Invalidate() { p.r.Invalidate() }
