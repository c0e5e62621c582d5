package aws_test

import (
	"slices"
	"testing"
	"time"

	"github.com/samber/lo"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

func price(t *testing.T, ps catalog.PriceSource, it, zone, ct string) (float64, bool) {
	t.Helper()
	return ps.Price(it, zone, ct)
}

// offerings resolves nc and returns the backend's offerings for it.
func (e *env) offerings(nc *v1alpha1.GPUNodeClass) *gpucp.OfferingInfo {
	e.t.Helper()
	if err := e.backend.Resolve(e.ctx, nc); err != nil {
		e.t.Fatal(err)
	}
	info, err := e.backend.Offerings(e.ctx, nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func TestOfferings(t *testing.T) {
	inv := inventory()
	inv.OnDemandPrices["g4dn.xlarge"] = 0.6 // the Pricing API disagrees with the embedded 0.526
	e := newEnv(t, inv)
	nc := nodeClass()
	info := e.offerings(nc)
	if !slices.Equal(info.Zones, []string{"us-east-1a", "us-east-1b", "us-east-1c"}) || info.Region != "us-east-1" {
		t.Errorf("zones = %v region = %s", info.Zones, info.Region)
	}
	checks := []struct {
		it, zone, ct string
		want         float64 // 0: no offering
	}{
		{"g4dn.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand, 0.6}, // refreshed from the Pricing API
		{"g4dn.xlarge", "us-east-1a", karpv1.CapacityTypeSpot, 0.20},    // spot price history
		{"g4dn.xlarge", "us-east-1c", karpv1.CapacityTypeSpot, 0.30},    // per zone
		{"g6.xlarge", "us-east-1b", karpv1.CapacityTypeSpot, 0},         // no spot history there: no spot offering, never 0
		{"g5.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand, 1.006}, // offered in 1a
		{"g5.xlarge", "us-east-1c", karpv1.CapacityTypeOnDemand, 0},     // EC2 does not offer g5.xlarge in 1c
		{"g7e.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand, 1.5},  // a type only EC2 and the Pricing API know
		{"m5.large", "us-east-1a", karpv1.CapacityTypeOnDemand, 0},      // not accelerated, not in the catalog: not offered
	}
	known := lo.SliceToMap(info.Entries, func(e catalog.Entry) (string, catalog.Entry) { return e.Name, e })
	for _, c := range checks {
		p, ok := price(t, info.Prices, c.it, c.zone, c.ct)
		if c.want == 0 {
			if ok && known[c.it].Name != "" {
				t.Errorf("%s/%s/%s priced %v, want no offering", c.it, c.zone, c.ct, p)
			}
			continue
		}
		if !ok || p != c.want {
			t.Errorf("%s/%s/%s = %v, %v; want %v", c.it, c.zone, c.ct, p, ok, c.want)
		}
	}
	g7e, ok := known["g7e.xlarge"]
	if !ok || g7e.AcceleratorResource != v1alpha1.ResourceNVIDIAGPU || g7e.GPUCount != 1 || g7e.GPUMemoryMiB != 98304 || g7e.GPUName != "rtx-pro-6000" || g7e.MaxPods != 58 {
		t.Errorf("g7e.xlarge entry = %+v", g7e)
	}
	if _, ok := known["g3s.xlarge"]; ok {
		t.Error("g3s.xlarge is in the catalog but not in this region; it must be dropped")
	}
	if p5 := known["p5.48xlarge"]; p5.EFACount != 32 || p5.GPUCount != 8 {
		t.Errorf("p5.48xlarge entry = %+v", p5)
	}
	if _, ok := known["inf2.xlarge"]; !ok {
		t.Error("inf2.xlarge dropped although the node class has a Neuron image")
	}
	rs := lo.SliceToMap(info.Reservations, func(r catalog.Reservation) (string, catalog.Reservation) { return r.ID, r })
	if r := rs["cr-odcr"]; r.InstanceType != "g6.xlarge" || r.Zone != "us-east-1b" || r.Count != 1 {
		t.Errorf("cr-odcr = %+v", r)
	}
	if r := rs["cr-block"]; r.InstanceType != "p5.48xlarge" || r.Count != 1 {
		t.Errorf("cr-block = %+v", r)
	}

	// The provider builds instance types from it: the reserved offering is
	// there with its capacity.
	its, excluded := catalog.NewInstanceTypes(info.Entries, catalog.Options{Region: info.Region, Zones: info.Zones, Prices: info.Prices, Reservations: info.Reservations})
	g6, ok := lo.Find(its, func(it *karpcp.InstanceType) bool { return it.Name == "g6.xlarge" })
	if !ok || len(g6.Offerings) == 0 {
		t.Fatalf("g6.xlarge missing: excluded %v", excluded)
	}
}

func TestOfferingsOnlyTypesWithAnImage(t *testing.T) {
	e := newEnv(t, inventory())
	nc := nodeClass(func(nc *v1alpha1.GPUNodeClass) {
		nc.Spec.AMIFamily = v1alpha1.AMIFamilyCustom
		nc.Spec.AMISelectorTerms = []v1alpha1.AMISelectorTerm{{ID: "ami-nvarm"}}
	})
	info := e.offerings(nc)
	names := lo.Map(info.Entries, func(e catalog.Entry, _ int) string { return e.Name })
	if !slices.Equal(names, []string{"g5g.xlarge"}) {
		t.Errorf("entries = %v, want only the arm64 type (the only image is arm64)", names)
	}
}

func TestPricesFallBackToLastKnownGood(t *testing.T) {
	e := newEnv(t, inventory(), func(o *awsbackend.Options, _ *awsbackend.RetryOptions) {
		o.OnDemandPriceRefresh, o.SpotPriceRefresh = time.Hour, time.Hour
	})
	nc := nodeClass()
	first := e.offerings(nc)
	// Every refresh fails from now on.
	e.clock.Step(2 * time.Hour)
	e.srv.Fail("GetProducts", "AccessDeniedException", "no pricing:GetProducts", 100)
	e.srv.Fail("DescribeSpotPriceHistory", "UnauthorizedOperation", "denied", 100)
	e.srv.Fail("DescribeInstanceTypes", "UnauthorizedOperation", "denied", 100)
	e.srv.Fail("DescribeCapacityReservations", "UnauthorizedOperation", "denied", 100)
	second, err := e.backend.Offerings(e.ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][3]string{{"g7e.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand}, {"g4dn.xlarge", "us-east-1b", karpv1.CapacityTypeSpot}} {
		a, aok := first.Prices.Price(c[0], c[1], c[2])
		b, bok := second.Prices.Price(c[0], c[1], c[2])
		if !aok || !bok || a != b || b <= 0 {
			t.Errorf("%v: %v,%v then %v,%v; want the last known price", c, a, aok, b, bok)
		}
	}
	if len(second.Reservations) != len(first.Reservations) || len(second.Entries) != len(first.Entries) {
		t.Errorf("reservations/entries changed on a failed refresh: %d/%d -> %d/%d", len(first.Reservations), len(first.Entries), len(second.Reservations), len(second.Entries))
	}
}

func TestPricesWithoutPricingAPIUseTheCatalog(t *testing.T) {
	inv := inventory()
	e := newEnv(t, inv, func(o *awsbackend.Options, _ *awsbackend.RetryOptions) { o.RefreshRetry = time.Hour })
	e.srv.Fail("GetProducts", "AccessDeniedException", "no pricing:GetProducts", 100)
	nc := nodeClass()
	info := e.offerings(nc)
	if p, ok := info.Prices.Price("g4dn.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand); !ok || p != 0.526 {
		t.Errorf("g4dn.xlarge on-demand = %v, %v; want the embedded 0.526", p, ok)
	}
	if p, ok := info.Prices.Price("g7e.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand); ok {
		t.Errorf("g7e.xlarge priced %v without any price source; an unknown price must mean no offering", p)
	}
	_ = fakeaws.OnDemand
}
