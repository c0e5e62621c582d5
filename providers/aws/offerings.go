package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	pricingtypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"
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

// ---- prices ----------------------------------------------------------------

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

// ---- instance types --------------------------------------------------------

// typeData is the catalog merged with what EC2 reports for the region.
type typeData struct {
	entries []catalog.Entry
	zones   map[string]map[string]bool // type -> zones EC2 offers it in
}

// typeBook merges the embedded catalog with DescribeInstanceTypes, so GPU
// types released after this build appear without a release, and drops types
// the region does not have.
type typeBook struct {
	b    *Backend
	base []catalog.Entry
	r    *refreshed[typeData]
}

func newTypeBook(b *Backend, base []catalog.Entry) *typeBook {
	return &typeBook{b: b, base: base, r: newRefreshed[typeData](b.clock, b.opts.InstanceTypeRefresh, b.opts.RefreshRetry)}
}

// current returns the entries and, when known, the zones of each type.
func (tb *typeBook) current(ctx context.Context) ([]catalog.Entry, map[string]map[string]bool) {
	if tb.b.opts.DisableInstanceTypeDiscovery {
		return tb.base, nil
	}
	v, ok, err := tb.r.get(ctx, func(ctx context.Context, _ typeData, _ bool) (typeData, error) { return tb.fetch(ctx) })
	if err != nil {
		log.FromContext(ctx).Error(err, "refreshing instance types; serving the last known ones")
	}
	if !ok {
		return tb.base, nil
	}
	return v.entries, v.zones
}

// entry returns the current entry of a type.
func (tb *typeBook) entry(ctx context.Context, name string) (catalog.Entry, bool) {
	entries, _ := tb.current(ctx)
	return lo.Find(entries, func(e catalog.Entry) bool { return e.Name == name })
}

// acceleratorNames returns the names of the devices exposing resource.
func (tb *typeBook) acceleratorNames(resource string) []string {
	entries := tb.base
	tb.r.mu.Lock()
	if tb.r.ok {
		entries = tb.r.value.entries
	}
	tb.r.mu.Unlock()
	names := lo.Uniq(lo.FilterMap(entries, func(e catalog.Entry, _ int) (string, bool) {
		return e.GPUName, e.AcceleratorResource == resource && e.GPUName != ""
	}))
	sort.Strings(names)
	return names
}

func (tb *typeBook) fetch(ctx context.Context) (typeData, error) {
	var infos []ec2types.InstanceTypeInfo
	pager := ec2.NewDescribeInstanceTypesPaginator(tb.b.ec2, &ec2.DescribeInstanceTypesInput{MaxResults: i32(100)})
	for pager.HasMorePages() {
		cctx, cancel := tb.b.call(ctx)
		page, err := pager.NextPage(cctx)
		cancel()
		if err != nil {
			return typeData{}, fmt.Errorf("describing instance types, %w", err)
		}
		infos = append(infos, page.InstanceTypes...)
	}
	zones := map[string]map[string]bool{}
	opager := ec2.NewDescribeInstanceTypeOfferingsPaginator(tb.b.ec2, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: ec2types.LocationTypeAvailabilityZone, MaxResults: i32(1000),
	})
	for opager.HasMorePages() {
		cctx, cancel := tb.b.call(ctx)
		page, err := opager.NextPage(cctx)
		cancel()
		if err != nil {
			return typeData{}, fmt.Errorf("describing instance type offerings, %w", err)
		}
		for _, o := range page.InstanceTypeOfferings {
			it := string(o.InstanceType)
			if zones[it] == nil {
				zones[it] = map[string]bool{}
			}
			zones[it][lo.FromPtr(o.Location)] = true
		}
	}
	if len(infos) == 0 {
		return typeData{}, fmt.Errorf("DescribeInstanceTypes returned no instance type")
	}
	return typeData{entries: mergeEntries(tb.base, infos), zones: zones}, nil
}

// mergeEntries combines the catalog with DescribeInstanceTypes. A type in
// both keeps the catalog's curated accelerator facts (EC2 has reported GPU
// counts of 0 and wrong memory sizes for real types) and takes EC2's values
// only for facts the catalog leaves unstated. A type only EC2 knows is added
// when it has an accelerator the catalog can expose. A catalog type EC2 does
// not report does not exist in this region and is dropped.
func mergeEntries(base []catalog.Entry, infos []ec2types.InstanceTypeInfo) []catalog.Entry {
	byName := lo.SliceToMap(infos, func(i ec2types.InstanceTypeInfo) (string, ec2types.InstanceTypeInfo) {
		return string(i.InstanceType), i
	})
	var out []catalog.Entry
	seen := map[string]bool{}
	for _, e := range base {
		info, ok := byName[e.Name]
		if !ok {
			continue
		}
		seen[e.Name] = true
		fromEC2 := entryFromEC2(info)
		e.VCPU = lo.Ternary(e.VCPU > 0, e.VCPU, fromEC2.VCPU)
		e.MemoryMiB = lo.Ternary(e.MemoryMiB > 0, e.MemoryMiB, fromEC2.MemoryMiB)
		e.MaxPods = lo.Ternary(e.MaxPods > 0, e.MaxPods, fromEC2.MaxPods)
		e.EFACount = lo.Ternary(e.EFACount > 0, e.EFACount, fromEC2.EFACount)
		e.LocalNVMeGiB = lo.Ternary(e.LocalNVMeGiB > 0, e.LocalNVMeGiB, fromEC2.LocalNVMeGiB)
		e.GPUMemoryMiB = lo.Ternary(e.GPUMemoryMiB > 0, e.GPUMemoryMiB, fromEC2.GPUMemoryMiB)
		e.Arch = lo.Ternary(e.Arch != "", e.Arch, fromEC2.Arch)
		out = append(out, e)
	}
	names := lo.Keys(byName)
	sort.Strings(names)
	for _, name := range names {
		if seen[name] {
			continue
		}
		if e := entryFromEC2(byName[name]); e.AcceleratorResource != "" {
			out = append(out, e)
		}
	}
	return out
}

// acceleratorResources maps a device manufacturer to its extended resource.
var acceleratorResources = map[string]string{
	"nvidia": v1alpha1.ResourceNVIDIAGPU,
	"amd":    v1alpha1.ResourceAMDGPU,
	"habana": v1alpha1.ResourceGaudi,
}

// entryFromEC2 converts DescribeInstanceTypes facts into an entry with no
// price (the Pricing API or the catalog prices it).
func entryFromEC2(info ec2types.InstanceTypeInfo) catalog.Entry {
	name := string(info.InstanceType)
	family, size, _ := strings.Cut(name, ".")
	e := catalog.Entry{Name: name, Family: family, Size: size}
	if info.ProcessorInfo != nil {
		for _, a := range info.ProcessorInfo.SupportedArchitectures {
			if k := kubeArch(string(a)); k == "amd64" || k == "arm64" {
				e.Arch = k
				break
			}
		}
	}
	if info.VCpuInfo != nil {
		e.VCPU = int64(lo.FromPtr(info.VCpuInfo.DefaultVCpus))
	}
	if info.MemoryInfo != nil {
		e.MemoryMiB = lo.FromPtr(info.MemoryInfo.SizeInMiB)
	}
	if n := info.NetworkInfo; n != nil {
		enis, ips := int64(lo.FromPtr(n.MaximumNetworkInterfaces)), int64(lo.FromPtr(n.Ipv4AddressesPerInterface))
		if enis > 0 && ips > 1 {
			e.MaxPods = enis*(ips-1) + 2
		}
		if n.EfaInfo != nil {
			e.EFACount = int64(lo.FromPtr(n.EfaInfo.MaximumEfaInterfaces))
		}
	}
	if s := info.InstanceStorageInfo; s != nil {
		e.LocalNVMeGiB = lo.FromPtr(s.TotalSizeInGB)
	}
	if g := info.GpuInfo; g != nil && len(g.Gpus) > 0 {
		dev := g.Gpus[0]
		e.GPUManufacturer = strings.ToLower(lo.FromPtr(dev.Manufacturer))
		e.GPUName = kebab(lo.FromPtr(dev.Name))
		for _, d := range g.Gpus {
			e.GPUCount += int64(lo.FromPtr(d.Count))
		}
		if dev.MemoryInfo != nil {
			e.GPUMemoryMiB = int64(lo.FromPtr(dev.MemoryInfo.SizeInMiB))
		}
		// One kind of device per type; a GPU count of 0 (fractional GPUs)
		// leaves the type without a resource, which the catalog excludes.
		if r, ok := acceleratorResources[e.GPUManufacturer]; ok && len(g.Gpus) == 1 && e.GPUCount > 0 {
			e.AcceleratorResource, e.AcceleratorCount = r, e.GPUCount
		}
	} else if nn := info.NeuronInfo; nn != nil && len(nn.NeuronDevices) > 0 {
		dev := nn.NeuronDevices[0]
		e.GPUManufacturer = "aws"
		e.GPUName = kebab(lo.FromPtr(dev.Name))
		for _, d := range nn.NeuronDevices {
			e.GPUCount += int64(lo.FromPtr(d.Count))
		}
		if dev.MemoryInfo != nil {
			e.GPUMemoryMiB = int64(lo.FromPtr(dev.MemoryInfo.SizeInMiB))
		}
		if e.GPUCount > 0 {
			e.AcceleratorResource, e.AcceleratorCount = v1alpha1.ResourceNeuron, e.GPUCount
		}
	}
	return e
}

// kebab lower-cases a device name and replaces spaces ("Radeon Pro V520"
// becomes "radeon-pro-v520").
func kebab(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), "-")
}
