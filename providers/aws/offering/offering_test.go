package offering_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/capacityreservation"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instancetype"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/offering"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/pricing"
)

// newProvider assembles the offering provider from the real instance type,
// pricing and reservation providers, as aws.NewBackend does.
func newProvider(t *testing.T) (*offering.Provider, *fakeaws.Server) {
	t.Helper()
	e := awstest.NewEnv(t, awstest.Inventory())
	srv, clk, clients, base := e.Server, e.Clock, e.Clients, e.Catalog
	call := 5 * time.Second
	types := instancetype.NewProvider(instancetype.Options{EC2: clients.EC2, Entries: base, Clock: clk, Refresh: time.Hour, RefreshRetry: time.Minute, CallTimeout: call})
	prices := pricing.NewProvider(pricing.Options{Pricing: clients.Pricing, EC2: clients.EC2, Region: "us-east-1", Entries: base, Clock: clk,
		OnDemandRefresh: time.Hour, SpotRefresh: time.Hour, RefreshRetry: time.Minute, CallTimeout: call})
	reservations := capacityreservation.NewProvider(capacityreservation.Options{EC2: clients.EC2, Clock: clk, Refresh: time.Minute, RefreshRetry: time.Minute, CallTimeout: call})
	return offering.NewProvider(offering.Options{EC2: clients.EC2, Region: "us-east-1", InstanceTypes: types, Prices: prices, Reservations: reservations,
		Clock: clk, RefreshRetry: time.Minute, CallTimeout: call}), srv
}

// resolved is a node class with subnets in us-east-1a and 1b and the given
// images.
func resolved(amis ...v1alpha1.AMI) *v1alpha1.GPUNodeClass {
	nc := awstest.NodeClass()
	nc.Status.Subnets = []v1alpha1.Subnet{{ID: "subnet-b", Zone: "us-east-1b"}, {ID: "subnet-a1", Zone: "us-east-1a"}}
	nc.Status.AMIs = amis
	return nc
}

func nvidiaAMD64() v1alpha1.AMI {
	return v1alpha1.AMI{ID: "ami-nvx86", Requirements: []corev1.NodeSelectorRequirement{
		{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
		{Key: v1alpha1.LabelGPUManufacturer, Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia"}},
	}}
}

func TestOfferingsOfANodeClass(t *testing.T) {
	p, _ := newProvider(t)
	info, err := p.Offerings(context.Background(), resolved(nvidiaAMD64()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"us-east-1a", "us-east-1b"}, info.Zones); diff != "" {
		t.Errorf("zones (-want +got):\n%s", diff)
	}
	// Only NVIDIA amd64 types: the node class has no image for the others.
	if diff := cmp.Diff([]string{"g4dn.xlarge", "g5.xlarge", "g6.xlarge", "g7e.xlarge"}, lo.Map(info.Entries, func(e catalog.Entry, _ int) string { return e.Name })); diff != "" {
		t.Errorf("types (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		typ, zone, capacityType string
		want                    float64 // 0: no offering
	}{
		{"g6.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand, 0.8},
		{"g4dn.xlarge", "us-east-1b", karpv1.CapacityTypeSpot, 0.25},
		{"g6.xlarge", "us-east-1a", karpv1.CapacityTypeSpot, 0},     // EC2 reported no spot price
		{"g5.xlarge", "us-east-1b", karpv1.CapacityTypeOnDemand, 0}, // not offered in 1b
	} {
		got, ok := info.Prices.Price(tc.typ, tc.zone, tc.capacityType)
		if ok != (tc.want > 0) || got != tc.want {
			t.Errorf("price of %s/%s/%s = %v %v, want %v", tc.typ, tc.zone, tc.capacityType, got, ok, tc.want)
		}
	}
	// Reservations of listed types in the node class's zones.
	if diff := cmp.Diff([]catalog.Reservation{
		{ID: "cr-block", InstanceType: "g4dn.xlarge", Zone: "us-east-1a", Count: 1},
		{ID: "cr-odcr", InstanceType: "g6.xlarge", Zone: "us-east-1b", Count: 1},
	}, info.Reservations); diff != "" {
		t.Errorf("reservations (-want +got):\n%s", diff)
	}
}

func TestOfferingsWithoutANodeClassUseTheRegionsZones(t *testing.T) {
	p, srv := newProvider(t)
	info, err := p.Offerings(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"us-east-1a", "us-east-1b", "us-east-1c"}, info.Zones); diff != "" {
		t.Errorf("zones (-want +got):\n%s", diff)
	}
	if len(info.Entries) != 6 {
		t.Errorf("%d types, want every type of the region (6)", len(info.Entries))
	}
	// The zones are cached.
	if _, err := p.Offerings(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests("DescribeAvailabilityZones")); n != 1 {
		t.Errorf("%d DescribeAvailabilityZones calls, want 1", n)
	}
}

func TestOfferingsFailOnlyWithNothingToOffer(t *testing.T) {
	p, srv := newProvider(t)
	srv.Fail("DescribeAvailabilityZones", "UnauthorizedOperation", "injected", 100)
	if _, err := p.Offerings(context.Background(), nil); err == nil {
		t.Error("no error although the region's zones are unknown")
	}
	// A node class's zones need no call; failed refreshes serve what is known.
	srv.Fail("DescribeCapacityReservations", "UnauthorizedOperation", "injected", 100)
	info, err := p.Offerings(context.Background(), resolved(nvidiaAMD64()))
	if err != nil || len(info.Entries) == 0 || len(info.Reservations) != 0 {
		t.Errorf("Offerings = %+v, %v; want types without reservations", info, err)
	}
}
