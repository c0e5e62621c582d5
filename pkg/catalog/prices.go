package catalog

import (
	"math"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
)

// PriceSource prices offerings.
type PriceSource interface {
	// Price returns the hourly USD price of an offering, false when none is known
	// (an offering without a known price is not created).
	Price(instanceType, zone, capacityType string) (float64, bool)
}

// PriceFunc adapts a function to PriceSource.
type PriceFunc func(instanceType, zone, capacityType string) (float64, bool)

// Price implements PriceSource.
func (f PriceFunc) Price(instanceType, zone, capacityType string) (float64, bool) {
	return f(instanceType, zone, capacityType)
}

// OnDemandPrices prices on-demand offerings from the entries' static price
// column for one region, the same in every zone. It knows no spot prices.
type OnDemandPrices map[string]float64 // instance type -> USD/hour

// NewOnDemandPrices collects the on-demand prices of region from entries.
func NewOnDemandPrices(entries []Entry, region string) OnDemandPrices {
	p := make(OnDemandPrices, len(entries))
	for i := range entries {
		if v, ok := entries[i].OnDemandPrices[region]; ok {
			p[entries[i].Name] = v
		}
	}
	return p
}

// Price implements PriceSource.
func (p OnDemandPrices) Price(instanceType, _, capacityType string) (float64, bool) {
	if capacityType != karpv1.CapacityTypeOnDemand {
		return 0, false
	}
	v, ok := p[instanceType]
	return v, ok
}

// PriceKey identifies an offering in StaticPrices. An empty Zone matches every
// zone that has no zone-specific entry.
type PriceKey struct {
	InstanceType, Zone, CapacityType string
}

// StaticPrices is a fixed price table, for tests and simulations.
type StaticPrices map[PriceKey]float64

// Price implements PriceSource.
func (p StaticPrices) Price(instanceType, zone, capacityType string) (float64, bool) {
	if v, ok := p[PriceKey{instanceType, zone, capacityType}]; ok {
		return v, true
	}
	v, ok := p[PriceKey{instanceType, "", capacityType}]
	return v, ok
}

// SpotFactor derives spot prices as factor × the on-demand price of base
// (e.g. 0.35); on-demand and other capacity types are answered by base
// unchanged. It exists because the data has no spot prices, yet simulations
// need spot to be cheaper than on-demand, as it is in practice.
func SpotFactor(base PriceSource, factor float64) PriceSource {
	return PriceFunc(func(instanceType, zone, capacityType string) (float64, bool) {
		if capacityType != karpv1.CapacityTypeSpot {
			return base.Price(instanceType, zone, capacityType)
		}
		od, ok := base.Price(instanceType, zone, karpv1.CapacityTypeOnDemand)
		if !ok {
			return 0, false
		}
		return od * factor, true
	})
}

// validPrice rejects prices that would corrupt Karpenter's cost ordering: a
// zero or negative price makes a type look free to consolidation.
func validPrice(p float64) bool {
	return p > 0 && !math.IsInf(p, 0) && !math.IsNaN(p)
}
