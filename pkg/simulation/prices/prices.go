// Package prices reads the prices a user has from the AWS CLI, for the
// simulator's --prices: the JSON of `aws ec2 describe-spot-price-history`
// (spot prices per instance type and availability zone) and of
// `aws pricing get-products --service-code AmazonEC2` (on-demand prices per
// instance type and region), for any region, with discounts for savings
// plans or an enterprise discount. Files are recognised by content.
package prices

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/pricelist"
)

// Table holds hourly USD prices by region.
type Table struct {
	// OnDemand: region -> instance type -> price.
	OnDemand map[string]map[string]float64
	// Spot: region -> zone -> instance type -> price (the latest of the
	// history).
	Spot map[string]map[string]map[string]float64
	// Sources name the files read.
	Sources []string

	spotAt map[string]time.Time // region/zone/type -> timestamp of the price kept
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{OnDemand: map[string]map[string]float64{}, Spot: map[string]map[string]map[string]float64{}, spotAt: map[string]time.Time{}}
}

// LoadFiles reads price files into one table.
func LoadFiles(paths ...string) (*Table, error) {
	t := NewTable()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if err := t.Add(b, p); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// spotHistory is describe-spot-price-history's output.
type spotHistory struct {
	SpotPriceHistory []struct {
		AvailabilityZone   string `json:"AvailabilityZone"`
		InstanceType       string `json:"InstanceType"`
		ProductDescription string `json:"ProductDescription"`
		SpotPrice          string `json:"SpotPrice"`
		Timestamp          string `json:"Timestamp"`
	} `json:"SpotPriceHistory"`
}

// getProducts is pricing get-products' output: PriceList holds each product
// as a JSON document in a string.
type getProducts struct {
	PriceList     []string `json:"PriceList"`
	FormatVersion string   `json:"FormatVersion"`
}

// Add reads one file's JSON (source names it in errors).
func (t *Table) Add(b []byte, source string) error {
	var head map[string]json.RawMessage
	if err := json.Unmarshal(b, &head); err != nil {
		return fmt.Errorf("%s: not JSON from the AWS CLI: %v", source, err)
	}
	t.Sources = append(t.Sources, source)
	switch {
	case head["SpotPriceHistory"] != nil:
		return t.addSpot(b, source)
	case head["PriceList"] != nil:
		return t.addProducts(b, source)
	}
	return fmt.Errorf("%s: neither `aws ec2 describe-spot-price-history` (SpotPriceHistory) nor `aws pricing get-products` (PriceList) output", source)
}

func (t *Table) addSpot(b []byte, source string) error {
	var h spotHistory
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&h); err != nil {
		return fmt.Errorf("%s: field \"SpotPriceHistory\": %v", source, err)
	}
	if len(h.SpotPriceHistory) == 0 {
		return fmt.Errorf("%s: field \"SpotPriceHistory\": empty", source)
	}
	for i, e := range h.SpotPriceHistory {
		at := func(field string) string {
			return fmt.Sprintf("%s: SpotPriceHistory[%d] (%s %s): field %q", source, i, e.InstanceType, e.AvailabilityZone, field)
		}
		if !strings.HasPrefix(e.ProductDescription, "Linux/UNIX") {
			continue // Windows, SUSE, RHEL: not what nodes run
		}
		if e.InstanceType == "" {
			return fmt.Errorf("%s: required", at("InstanceType"))
		}
		region := regionOfZone(e.AvailabilityZone)
		if region == "" {
			return fmt.Errorf("%s: %q is not an availability zone", at("AvailabilityZone"), e.AvailabilityZone)
		}
		p, err := strconv.ParseFloat(e.SpotPrice, 64)
		if err != nil || p <= 0 {
			return fmt.Errorf("%s: %q is not a positive price", at("SpotPrice"), e.SpotPrice)
		}
		ts, err := time.Parse(time.RFC3339, e.Timestamp)
		if err != nil && e.Timestamp != "" {
			return fmt.Errorf("%s: %v", at("Timestamp"), err)
		}
		key := region + "/" + e.AvailabilityZone + "/" + e.InstanceType
		if prev, ok := t.spotAt[key]; ok && prev.After(ts) {
			continue // keep the latest price
		}
		t.spotAt[key] = ts
		if t.Spot[region] == nil {
			t.Spot[region] = map[string]map[string]float64{}
		}
		if t.Spot[region][e.AvailabilityZone] == nil {
			t.Spot[region][e.AvailabilityZone] = map[string]float64{}
		}
		t.Spot[region][e.AvailabilityZone][e.InstanceType] = p
	}
	return nil
}

// regionOfZone: us-east-1a -> us-east-1 (local zones, us-west-2-lax-1a ->
// us-west-2).
func regionOfZone(zone string) string {
	parts := strings.Split(zone, "-")
	if len(parts) < 3 {
		return ""
	}
	num := parts[2]
	i := 0
	for i < len(num) && num[i] >= '0' && num[i] <= '9' {
		i++
	}
	if i == 0 || i == len(num) && len(parts) == 3 {
		return ""
	}
	return strings.Join(parts[:2], "-") + "-" + num[:i]
}

func (t *Table) addProducts(b []byte, source string) error {
	var g getProducts
	if err := json.Unmarshal(b, &g); err != nil {
		return fmt.Errorf("%s: field \"PriceList\": %v", source, err)
	}
	if len(g.PriceList) == 0 {
		return fmt.Errorf("%s: field \"PriceList\": empty", source)
	}
	for i, doc := range g.PriceList {
		p, err := pricelist.Parse(doc)
		if err != nil {
			return fmt.Errorf("%s: PriceList[%d]: not a product document: %v", source, i, err)
		}
		a := p.Product.Attributes
		at := func(field string) string {
			return fmt.Sprintf("%s: PriceList[%d] (%s %s): field %q", source, i, a["instanceType"], a["regionCode"], field)
		}
		// What a Karpenter node is billed (pricelist.NodeAttributes).
		if p.InstanceType() == "" || !p.BilledAsNode() {
			continue
		}
		region := a["regionCode"]
		if region == "" {
			return fmt.Errorf("%s: required (a product without its region)", at("product.attributes.regionCode"))
		}
		price, found, err := p.HourlyUSD()
		if err != nil {
			return fmt.Errorf("%s: %v", at("terms.OnDemand.priceDimensions.pricePerUnit.USD"), err)
		}
		if !found {
			return fmt.Errorf("%s: no hourly USD price", at("terms.OnDemand"))
		}
		if price <= 0 {
			continue // free-tier or reserved-only rows
		}
		if t.OnDemand[region] == nil {
			t.OnDemand[region] = map[string]float64{}
		}
		t.OnDemand[region][a["instanceType"]] = price
	}
	return nil
}

// Options say how a table prices a simulation.
type Options struct {
	Region string
	// OnDemandDiscount and SpotDiscount are fractions off the list prices
	// (0.28: a 28% savings plan or EDP discount).
	OnDemandDiscount, SpotDiscount float64
	// Entries are the catalog's types: on-demand prices of Region the table
	// lacks come from them (the embedded catalog holds us-east-1's).
	Entries []catalog.Entry
}

// Source is what the simulator's fleet offers and at which price.
type Source struct {
	Prices        catalog.PriceSource
	Zones         []string
	CapacityTypes []string
	// Describe says where prices come from, for the report.
	Describe string
}

// Source prices Region: spot offerings where the table has spot prices
// (per zone), on-demand from the table or else the catalog, discounts
// applied. A region without any price is an error.
func (t *Table) Source(o Options) (*Source, error) {
	if o.OnDemandDiscount < 0 || o.OnDemandDiscount >= 1 || o.SpotDiscount < 0 || o.SpotDiscount >= 1 {
		return nil, fmt.Errorf("discounts must be in [0, 1): on-demand %v, spot %v", o.OnDemandDiscount, o.SpotDiscount)
	}
	static := catalog.StaticPrices{}
	od := 0
	for _, e := range o.Entries {
		if p, ok := e.OnDemandPrices[o.Region]; ok && p > 0 {
			static[catalog.PriceKey{InstanceType: e.Name, CapacityType: karpv1.CapacityTypeOnDemand}] = p * (1 - o.OnDemandDiscount)
			od++
		}
	}
	fromTable := 0
	for typ, p := range t.OnDemand[o.Region] {
		static[catalog.PriceKey{InstanceType: typ, CapacityType: karpv1.CapacityTypeOnDemand}] = p * (1 - o.OnDemandDiscount)
		fromTable++
	}
	var zones []string
	spot := 0
	for zone, types := range t.Spot[o.Region] {
		zones = append(zones, zone)
		for typ, p := range types {
			static[catalog.PriceKey{InstanceType: typ, Zone: zone, CapacityType: karpv1.CapacityTypeSpot}] = p * (1 - o.SpotDiscount)
			spot++
		}
	}
	sort.Strings(zones)
	if len(static) == 0 {
		var have []string
		for r := range t.OnDemand {
			have = append(have, r+" (on-demand)")
		}
		for r := range t.Spot {
			have = append(have, r+" (spot)")
		}
		sort.Strings(have)
		return nil, fmt.Errorf("region %q: no price in %s nor in the catalog (prices for: %s)", o.Region, strings.Join(t.Sources, ", "), strings.Join(have, ", "))
	}
	s := &Source{Prices: static, Zones: zones, CapacityTypes: []string{karpv1.CapacityTypeOnDemand}}
	if spot > 0 {
		s.CapacityTypes = append(s.CapacityTypes, karpv1.CapacityTypeSpot)
	}
	s.Describe = fmt.Sprintf("%s: %d on-demand prices from %s, %d from the catalog; %d spot prices in %d zones", o.Region,
		fromTable, strings.Join(t.Sources, ", "), od, spot, len(zones))
	if o.OnDemandDiscount > 0 || o.SpotDiscount > 0 {
		s.Describe += fmt.Sprintf("; discounts: on-demand %.1f%%, spot %.1f%%", 100*o.OnDemandDiscount, 100*o.SpotDiscount)
	}
	return s, nil
}
