package pricing_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/pricing"
)

// entries is a two-type catalog with us-east-1 prices.
func entries() []catalog.Entry {
	return []catalog.Entry{
		{Name: "g4dn.xlarge", OnDemandPrices: map[string]float64{"us-east-1": 0.526}},
		{Name: "p4d.24xlarge", OnDemandPrices: map[string]float64{"us-east-1": 32.77}},
	}
}

func newProvider(t *testing.T, region string, withPricing bool) (*pricing.Provider, *fakeaws.Server, *clocktesting.FakeClock) {
	t.Helper()
	srv := awstest.Server(t, awstest.Inventory())
	clk := clocktesting.NewFakeClock(awstest.Epoch)
	srv.SetClock(clk.Now)
	clients := awstest.Clients(t, srv)
	o := pricing.Options{EC2: clients.EC2, Region: region, Entries: entries(), Clock: clk,
		OnDemandRefresh: 12 * time.Hour, SpotRefresh: time.Hour, RefreshRetry: time.Minute, CallTimeout: 5 * time.Second}
	if withPricing {
		o.Pricing = clients.Pricing
	}
	return pricing.NewProvider(o), srv, clk
}

func TestOnDemandMergesThePricingAPIIntoTheCatalog(t *testing.T) {
	p, srv, clk := newProvider(t, "us-east-1", true)
	ctx := context.Background()
	got := p.OnDemand(ctx)
	// The API's prices win; a catalog type the API did not price keeps
	// the catalog's.
	if got["g4dn.xlarge"] != 0.5 || got["g7e.xlarge"] != 1.5 || got["p4d.24xlarge"] != 32.77 {
		t.Errorf("on-demand prices = %v", got)
	}
	// Refreshed only when due; a failed refresh serves the last prices.
	srv.Fail("GetProducts", "AccessDeniedException", "injected", 100)
	clk.Step(13 * time.Hour)
	if again := p.OnDemand(ctx); !cmp.Equal(again, got) {
		t.Errorf("after a failed refresh = %v, want the last known %v", again, got)
	}
	if n := len(srv.Requests("GetProducts")); n < 2 {
		t.Errorf("%d GetProducts calls, want a refresh attempt after 12h", n)
	}
}

func TestOnDemandWithoutThePricingAPI(t *testing.T) {
	for _, tc := range []struct{ name, region string }{
		{"the catalog's prices of the region", "us-east-1"},
		{"us-east-1's for a region the catalog lacks", "ap-southeast-7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, srv, _ := newProvider(t, tc.region, false)
			if diff := cmp.Diff(map[string]float64{"g4dn.xlarge": 0.526, "p4d.24xlarge": 32.77}, p.OnDemand(context.Background())); diff != "" {
				t.Errorf("prices (-want +got):\n%s", diff)
			}
			if n := len(srv.Requests("")); n != 0 {
				t.Errorf("%d API calls, want none", n)
			}
		})
	}
}

func TestSpot(t *testing.T) {
	p, srv, clk := newProvider(t, "us-east-1", true)
	ctx := context.Background()
	want := map[string]float64{pricing.SpotKey("g4dn.xlarge", "us-east-1a"): 0.20, pricing.SpotKey("g4dn.xlarge", "us-east-1b"): 0.25}
	if diff := cmp.Diff(want, p.Spot(ctx)); diff != "" {
		t.Errorf("spot prices (-want +got):\n%s", diff)
	}
	srv.Throttle("DescribeSpotPriceHistory", 100)
	clk.Step(2 * time.Hour)
	if diff := cmp.Diff(want, p.Spot(ctx)); diff != "" {
		t.Errorf("spot prices after a throttled refresh (-want +got):\n%s", diff)
	}
}

func TestNoSpotPriceBeforeEC2ReportedOne(t *testing.T) {
	p, srv, _ := newProvider(t, "us-east-1", true)
	srv.Fail("DescribeSpotPriceHistory", "UnauthorizedOperation", "injected", 100)
	if got := p.Spot(context.Background()); len(got) != 0 {
		t.Errorf("spot prices = %v, want none", got)
	}
}
