package capacityreservation_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/capacityreservation"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
)

func newProvider(t *testing.T, tags map[string]string) (*capacityreservation.Provider, *fakeaws.Server, *clocktesting.FakeClock) {
	t.Helper()
	srv := awstest.Server(t, awstest.Inventory())
	clk := clocktesting.NewFakeClock(awstest.Epoch)
	p := capacityreservation.NewProvider(capacityreservation.Options{EC2: awstest.Clients(t, srv).EC2, Tags: tags, Clock: clk,
		Refresh: time.Minute, RefreshRetry: 10 * time.Second, CallTimeout: 5 * time.Second})
	return p, srv, clk
}

var (
	odcr  = capacityreservation.Reservation{ID: "cr-odcr", InstanceType: "g6.xlarge", Zone: "us-east-1b", Available: 1}
	block = capacityreservation.Reservation{ID: "cr-block", InstanceType: "g4dn.xlarge", Zone: "us-east-1a", Available: 1, CapacityBlock: true}
)

func TestList(t *testing.T) {
	for _, tc := range []struct {
		name string
		tags map[string]string
		want []capacityreservation.Reservation
	}{
		{"active ones, by ID", nil, []capacityreservation.Reservation{block, odcr}},
		{"only those with the tags", map[string]string{"team": "ml"}, []capacityreservation.Reservation{odcr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, _ := newProvider(t, tc.tags)
			got, err := p.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("reservations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGetAndInvalidate(t *testing.T) {
	p, srv, _ := newProvider(t, nil)
	ctx := context.Background()
	if got, ok := p.Get(ctx, "cr-block"); !ok || got != block {
		t.Fatalf("Get(cr-block) = %+v, %v", got, ok)
	}
	if _, ok := p.Get(ctx, "cr-expired"); ok {
		t.Error("an expired reservation was found")
	}
	if n := len(srv.Requests("DescribeCapacityReservations")); n != 1 {
		t.Errorf("%d calls for two Gets within the refresh interval, want 1", n)
	}
	p.Invalidate()
	if _, err := p.List(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests("DescribeCapacityReservations")); n != 2 {
		t.Errorf("%d calls after Invalidate, want 2", n)
	}
}

func TestFailedRefreshServesTheLastKnown(t *testing.T) {
	p, srv, clk := newProvider(t, nil)
	ctx := context.Background()
	if _, err := p.List(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Fail("DescribeCapacityReservations", "UnauthorizedOperation", "injected", 100)
	clk.Step(2 * time.Minute)
	got, err := p.List(ctx)
	if err == nil {
		t.Error("a failed refresh returned no error")
	}
	if diff := cmp.Diff([]capacityreservation.Reservation{block, odcr}, got); diff != "" {
		t.Errorf("reservations after a failed refresh (-want +got):\n%s", diff)
	}
}
