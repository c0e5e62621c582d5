// Package pricing holds the on-demand and spot prices of the region:
// on-demand from the embedded catalog refreshed by the Pricing API
// (GetProducts), spot from DescribeSpotPriceHistory.
package pricing

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	pricingtypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"
	"github.com/samber/lo"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/pricelist"
)

// SpotKey is the key of a type's spot price in a zone.
func SpotKey(instanceType, zone string) string { return instanceType + "/" + zone }

// Provider holds on-demand and spot prices. On-demand starts from the
// embedded catalog (us-east-1's column for regions the catalog lacks, a
// better estimate than no price) and is refreshed from the Pricing API; spot
// starts empty (no spot offering until EC2 reported a price) and is
// refreshed from DescribeSpotPriceHistory. Refreshes merge into the old
// prices, so a type missing from one answer keeps its last known price, and
// a price is never 0.
type Provider struct {
	opts Options
	od   *awsutil.Refreshed[map[string]float64]
	spot *awsutil.Refreshed[map[string]float64]
	base map[string]float64
}

// Options configure a Provider.
type Options struct {
	// Pricing refreshes on-demand prices; nil keeps the catalog's.
	Pricing pricing.GetProductsAPIClient
	EC2     ec2.DescribeSpotPriceHistoryAPIClient
	Region  string
	// Entries are the catalog entries whose prices are the base.
	Entries []catalog.Entry
	Clock   clock.Clock
	// OnDemandRefresh and SpotRefresh are how long prices are trusted;
	// RefreshRetry how long a failed refresh waits before the next.
	OnDemandRefresh, SpotRefresh, RefreshRetry time.Duration
	CallTimeout                                time.Duration
}

// NewProvider returns a Provider; it makes no API call.
func NewProvider(o Options) *Provider {
	base := catalog.NewOnDemandPrices(o.Entries, o.Region)
	if len(base) == 0 {
		base = catalog.NewOnDemandPrices(o.Entries, "us-east-1")
	}
	return &Provider{
		opts: o,
		od:   awsutil.NewRefreshed[map[string]float64](o.Clock, o.OnDemandRefresh, o.RefreshRetry),
		spot: awsutil.NewRefreshed[map[string]float64](o.Clock, o.SpotRefresh, o.RefreshRetry),
		base: base,
	}
}

// OnDemand returns the on-demand price of each type, refreshed when due;
// a failed refresh serves the last known prices.
func (p *Provider) OnDemand(ctx context.Context) map[string]float64 {
	if p.opts.Pricing == nil {
		return p.base
	}
	v, ok, err := p.od.Get(ctx, func(ctx context.Context, old map[string]float64, ok bool) (map[string]float64, error) {
		fresh, err := p.fetchOnDemand(ctx)
		if err != nil {
			return nil, err
		}
		merged := maps.Clone(lo.Ternary(ok, old, p.base))
		maps.Copy(merged, fresh)
		return merged, nil
	})
	if err != nil {
		log.FromContext(ctx).Error(err, "refreshing on-demand prices; serving the last known ones")
	}
	return lo.Ternary(ok, v, p.base)
}

// fetchOnDemand reads Linux, shared-tenancy, on-demand hourly prices of the
// region from the Pricing API.
func (p *Provider) fetchOnDemand(ctx context.Context) (map[string]float64, error) {
	filter := func(field, value string) pricingtypes.Filter {
		return pricingtypes.Filter{Type: pricingtypes.FilterTypeTermMatch, Field: aws.String(field), Value: aws.String(value)}
	}
	in := &pricing.GetProductsInput{
		ServiceCode: aws.String("AmazonEC2"),
		Filters: []pricingtypes.Filter{
			filter("regionCode", p.opts.Region),
		},
		MaxResults: aws.Int32(100),
	}
	for _, a := range pricelist.NodeAttributes {
		in.Filters = append(in.Filters, filter(a.Name, a.Value))
	}
	in.Filters = append(in.Filters, filter("marketoption", "OnDemand"))
	prices := map[string]float64{}
	pager := pricing.NewGetProductsPaginator(p.opts.Pricing, in)
	if err := awsutil.EachPage(ctx, p.opts.CallTimeout, pager, func(out *pricing.GetProductsOutput) {
		for _, doc := range out.PriceList {
			if it, price, ok := parsePriceListItem(doc); ok {
				prices[it] = price
			}
		}
	}); err != nil {
		return nil, fmt.Errorf("getting EC2 products from the Pricing API, %w", err)
	}
	if len(prices) == 0 {
		return nil, fmt.Errorf("the Pricing API returned no on-demand price for %s", p.opts.Region)
	}
	return prices, nil
}

// priceListItem is the part of a Pricing API product document we read.
// parsePriceListItem is the instance type and hourly on-demand price of a
// product document (pricelist); ok is false for anything else.
func parsePriceListItem(doc string) (string, float64, bool) {
	p, err := pricelist.Parse(doc)
	if err != nil || p.InstanceType() == "" {
		return "", 0, false
	}
	price, found, err := p.HourlyUSD()
	if err != nil || !found || price <= 0 {
		return "", 0, false
	}
	return p.InstanceType(), price, true
}

// Spot returns the spot price of each type and zone (SpotKey), refreshed
// when due; a failed refresh serves the last known prices.
func (p *Provider) Spot(ctx context.Context) map[string]float64 {
	v, _, err := p.spot.Get(ctx, func(ctx context.Context, old map[string]float64, ok bool) (map[string]float64, error) {
		fresh, err := p.fetchSpot(ctx)
		if err != nil {
			return nil, err
		}
		merged := maps.Clone(old)
		if merged == nil {
			merged = map[string]float64{}
		}
		maps.Copy(merged, fresh)
		return merged, nil
	})
	if err != nil {
		log.FromContext(ctx).Error(err, "refreshing spot prices; serving the last known ones")
	}
	return v
}

// fetchSpot reads the current spot price of every type and zone.
func (p *Provider) fetchSpot(ctx context.Context) (map[string]float64, error) {
	type stamped struct {
		price float64
		at    time.Time
	}
	latest := map[string]stamped{}
	pager := ec2.NewDescribeSpotPriceHistoryPaginator(p.opts.EC2, &ec2.DescribeSpotPriceHistoryInput{
		ProductDescriptions: []string{"Linux/UNIX", "Linux/UNIX (Amazon VPC)"},
		StartTime:           lo.ToPtr(p.opts.Clock.Now()),
		MaxResults:          aws.Int32(1000),
	})
	if err := awsutil.EachPage(ctx, p.opts.CallTimeout, pager, func(out *ec2.DescribeSpotPriceHistoryOutput) {
		for _, sp := range out.SpotPriceHistory {
			v, err := strconv.ParseFloat(lo.FromPtr(sp.SpotPrice), 64)
			if err != nil || v <= 0 {
				continue
			}
			k := SpotKey(string(sp.InstanceType), lo.FromPtr(sp.AvailabilityZone))
			at := lo.FromPtr(sp.Timestamp)
			if cur, ok := latest[k]; !ok || at.After(cur.at) {
				latest[k] = stamped{v, at}
			}
		}
	}); err != nil {
		return nil, fmt.Errorf("describing spot price history, %w", err)
	}
	return lo.MapValues(latest, func(s stamped, _ string) float64 { return s.price }), nil
}
