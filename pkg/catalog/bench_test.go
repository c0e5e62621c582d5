package catalog_test

import (
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

// BenchmarkNewInstanceTypes measures a full rebuild, which a provider does
// whenever prices or availability change.
func BenchmarkNewInstanceTypes(b *testing.B) {
	entries := embedded(b)
	opts := catalog.Options{
		Region:        "us-east-1",
		Zones:         []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"},
		CapacityTypes: []string{"on-demand", "spot"},
		Prices:        catalog.SpotFactor(catalog.NewOnDemandPrices(entries, "us-east-1"), 0.35),
	}
	b.ReportAllocs()
	for b.Loop() {
		types, _ := catalog.NewInstanceTypes(entries, opts)
		if len(types) == 0 {
			b.Fatal("no types")
		}
	}
}
