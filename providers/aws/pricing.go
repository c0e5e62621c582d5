package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	pricingtypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"
	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

func spotKey(instanceType, zone string) string { return instanceType + "/" + zone }

// priceBook holds on-demand and spot prices. On-demand starts from the
// embedded catalog (us-east-1's column for regions the catalog lacks, a
// better estimate than no price) and is refreshed from the Pricing API; spot
// starts empty (no spot offering until EC2 reported a price) and is
// refreshed from DescribeSpotPriceHistory. Refreshes merge into the old
// prices, so a type missing from one answer keeps its last known price, and
// a price is never 0.
type priceBook struct {
	b    *Backend
	od   *refreshed[map[string]float64]
	spot *refreshed[map[string]float64]
	base map[string]float64
}

func newPriceBook(b *Backend, entries []catalog.Entry) *priceBook {
	base := catalog.NewOnDemandPrices(entries, b.region())
	if len(base) == 0 {
		base = catalog.NewOnDemandPrices(entries, "us-east-1")
	}
	return &priceBook{
		b:    b,
		od:   newRefreshed[map[string]float64](b.clock, b.opts.OnDemandPriceRefresh, b.opts.RefreshRetry),
		spot: newRefreshed[map[string]float64](b.clock, b.opts.SpotPriceRefresh, b.opts.RefreshRetry),
		base: base,
	}
}

func (p *priceBook) onDemand(ctx context.Context) map[string]float64 {
	if p.b.pricing == nil {
		return p.base
	}
	v, ok, err := p.od.get(ctx, func(ctx context.Context, old map[string]float64, ok bool) (map[string]float64, error) {
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
func (p *priceBook) fetchOnDemand(ctx context.Context) (map[string]float64, error) {
	filter := func(field, value string) pricingtypes.Filter {
		return pricingtypes.Filter{Type: pricingtypes.FilterTypeTermMatch, Field: str(field), Value: str(value)}
	}
	in := &pricing.GetProductsInput{
		ServiceCode: str("AmazonEC2"),
		Filters: []pricingtypes.Filter{
			filter("regionCode", p.b.region()), filter("operatingSystem", "Linux"), filter("tenancy", "Shared"),
			filter("preInstalledSw", "NA"), filter("capacitystatus", "Used"), filter("marketoption", "OnDemand"),
		},
		MaxResults: i32(100),
	}
	prices := map[string]float64{}
	pager := pricing.NewGetProductsPaginator(p.b.pricing, in)
	for pager.HasMorePages() {
		cctx, cancel := p.b.call(ctx)
		out, err := pager.NextPage(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("getting EC2 products from the Pricing API, %w", err)
		}
		for _, doc := range out.PriceList {
			if it, price, ok := parsePriceListItem(doc); ok {
				prices[it] = price
			}
		}
	}
	if len(prices) == 0 {
		return nil, fmt.Errorf("the Pricing API returned no on-demand price for %s", p.b.region())
	}
	return prices, nil
}

// priceListItem is the part of a Pricing API product document we read.
type priceListItem struct {
	Product struct {
		Attributes struct {
			InstanceType string `json:"instanceType"`
		} `json:"attributes"`
	} `json:"product"`
	Terms struct {
		OnDemand map[string]struct {
			PriceDimensions map[string]struct {
				Unit         string            `json:"unit"`
				PricePerUnit map[string]string `json:"pricePerUnit"`
			} `json:"priceDimensions"`
		} `json:"OnDemand"`
	} `json:"terms"`
}

func parsePriceListItem(doc string) (string, float64, bool) {
	var item priceListItem
	if err := json.Unmarshal([]byte(doc), &item); err != nil || item.Product.Attributes.InstanceType == "" {
		return "", 0, false
	}
	for _, term := range item.Terms.OnDemand {
		for _, dim := range term.PriceDimensions {
			if v, err := strconv.ParseFloat(dim.PricePerUnit["USD"], 64); err == nil && v > 0 {
				return item.Product.Attributes.InstanceType, v, true
			}
		}
	}
	return "", 0, false
}

func (p *priceBook) spotPrices(ctx context.Context) map[string]float64 {
	v, _, err := p.spot.get(ctx, func(ctx context.Context, old map[string]float64, ok bool) (map[string]float64, error) {
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
func (p *priceBook) fetchSpot(ctx context.Context) (map[string]float64, error) {
	type stamped struct {
		price float64
		at    time.Time
	}
	latest := map[string]stamped{}
	pager := ec2.NewDescribeSpotPriceHistoryPaginator(p.b.ec2, &ec2.DescribeSpotPriceHistoryInput{
		ProductDescriptions: []string{"Linux/UNIX", "Linux/UNIX (Amazon VPC)"},
		StartTime:           lo.ToPtr(p.b.clock.Now()),
		MaxResults:          i32(1000),
	})
	for pager.HasMorePages() {
		cctx, cancel := p.b.call(ctx)
		out, err := pager.NextPage(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("describing spot price history, %w", err)
		}
		for _, sp := range out.SpotPriceHistory {
			v, err := strconv.ParseFloat(lo.FromPtr(sp.SpotPrice), 64)
			if err != nil || v <= 0 {
				continue
			}
			k := spotKey(string(sp.InstanceType), lo.FromPtr(sp.AvailabilityZone))
			at := lo.FromPtr(sp.Timestamp)
			if cur, ok := latest[k]; !ok || at.After(cur.at) {
				latest[k] = stamped{v, at}
			}
		}
	}
	return lo.MapValues(latest, func(s stamped, _ string) float64 { return s.price }), nil
}
