package instancetype_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/samber/lo"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instancetype"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
)

func newProvider(t *testing.T, disable bool) (*instancetype.Provider, *fakeaws.Server, *clocktesting.FakeClock, []catalog.Entry) {
	t.Helper()
	base, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	srv := awstest.Server(t, awstest.Inventory())
	srv.SetPageSize(2)
	clk := clocktesting.NewFakeClock(awstest.Epoch)
	p := instancetype.NewProvider(instancetype.Options{EC2: awstest.Clients(t, srv).EC2, Entries: base, DisableDiscovery: disable,
		Clock: clk, Refresh: 12 * time.Hour, RefreshRetry: time.Minute, CallTimeout: 5 * time.Second})
	return p, srv, clk, base
}

func names(entries []catalog.Entry) []string {
	return lo.Map(entries, func(e catalog.Entry, _ int) string { return e.Name })
}

func TestListMergesEC2IntoTheCatalog(t *testing.T) {
	p, _, _, base := newProvider(t, false)
	ctx := context.Background()
	entries, zones := p.List(ctx)
	// Catalog types the region offers, then GPU types only EC2 knows; the
	// region's other catalog types and EC2's CPU-only types are dropped.
	if diff := cmp.Diff([]string{"g4dn.xlarge", "g5.xlarge", "g5g.xlarge", "g6.xlarge", "inf2.xlarge", "g7e.xlarge"}, names(entries)); diff != "" {
		t.Errorf("types (-want +got):\n%s", diff)
	}
	g7e, ok := p.Get(ctx, "g7e.xlarge")
	if !ok || g7e.GPUName != "rtx-pro-6000" || g7e.AcceleratorResource != v1alpha1.ResourceNVIDIAGPU || g7e.AcceleratorCount != 1 || g7e.MaxPods != 4*14+2 {
		t.Errorf("g7e.xlarge from EC2 = %+v", g7e)
	}
	// The catalog's curated facts win over EC2's.
	g6, _ := p.Get(ctx, "g6.xlarge")
	cat, _ := lo.Find(base, func(e catalog.Entry) bool { return e.Name == "g6.xlarge" })
	if g6.GPUMemoryMiB != cat.GPUMemoryMiB {
		t.Errorf("g6.xlarge GPU memory %d, want the catalog's %d", g6.GPUMemoryMiB, cat.GPUMemoryMiB)
	}
	if diff := cmp.Diff(map[string]bool{"us-east-1a": true}, zones["g5.xlarge"]); diff != "" {
		t.Errorf("zones of g5.xlarge (-want +got):\n%s", diff)
	}
	if !zones["g6.xlarge"]["us-east-1c"] {
		t.Errorf("zones of g6.xlarge = %v, want every zone", zones["g6.xlarge"])
	}
	if _, ok := p.Get(ctx, "p5.48xlarge"); ok {
		t.Error("p5.48xlarge listed although the region does not offer it")
	}
	if diff := cmp.Diff([]string{"inferentia2"}, p.AcceleratorNames(v1alpha1.ResourceNeuron)); diff != "" {
		t.Errorf("Neuron devices (-want +got):\n%s", diff)
	}
}

func TestListServesTheLastKnownTypes(t *testing.T) {
	p, srv, clk, base := newProvider(t, false)
	ctx := context.Background()
	srv.Fail("DescribeInstanceTypes", "UnauthorizedOperation", "injected", 100)
	entries, zones := p.List(ctx)
	if len(entries) != len(base) || zones != nil {
		t.Fatalf("List before any answer = %d types, zones %v; want the catalog", len(entries), zones)
	}
	srv.ClearFaults()
	clk.Step(time.Minute)
	first, _ := p.List(ctx)
	srv.Throttle("DescribeInstanceTypeOfferings", 100)
	clk.Step(13 * time.Hour)
	if again, _ := p.List(ctx); !cmp.Equal(names(again), names(first)) {
		t.Errorf("after a failed refresh = %v, want the last known %v", names(again), names(first))
	}
}

func TestDisabledDiscoveryMakesNoCall(t *testing.T) {
	p, srv, _, base := newProvider(t, true)
	if entries, zones := p.List(context.Background()); len(entries) != len(base) || zones != nil {
		t.Errorf("List = %d types, zones %v; want the catalog as is", len(entries), zones)
	}
	if n := len(srv.Requests("")); n != 0 {
		t.Errorf("%d API calls, want none", n)
	}
}
