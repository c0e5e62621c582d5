package idlegpu

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog/catalogtest"
)

// countingProvider answers GetInstanceTypes with a real catalog (or err)
// and counts the calls per NodePool; the poll asks nothing else of it.
type countingProvider struct {
	karpcp.CloudProvider
	its   []*karpcp.InstanceType
	err   error
	calls map[string]int
}

func (p *countingProvider) GetInstanceTypes(_ context.Context, np *karpv1.NodePool) ([]*karpcp.InstanceType, error) {
	p.calls[np.Name]++
	return p.its, p.err
}

// TestInstanceTypesOncePerPoll: within a poll the cloud provider is asked
// once per NodePool however many nodes are judged (its answer, error
// included, is reused); a new poll asks again, so a price refresh or an
// offering marked unavailable is seen at the next poll.
func TestInstanceTypesOncePerPoll(t *testing.T) {
	cp := &countingProvider{calls: map[string]int{},
		its: catalogtest.InstanceTypes(t, catalog.Options{Region: "us-east-1", Zones: []string{"us-east-1a"}, CapacityTypes: []string{karpv1.CapacityTypeOnDemand}})}
	c := newTestController()
	c.cloudProvider = cp
	ctx := context.Background()
	a := test.NodePool(karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "a"}})
	b := test.NodePool(karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "b"}})

	for range 3 {
		its, err := c.instanceTypes(ctx, a)
		if err != nil || len(its) != len(cp.its) || &its[0] != &cp.its[0] {
			t.Fatalf("got %d instance types, %v; want the provider's %d", len(its), err, len(cp.its))
		}
	}
	if _, err := c.instanceTypes(ctx, b); err != nil {
		t.Fatal(err)
	}
	if cp.calls["a"] != 1 || cp.calls["b"] != 1 {
		t.Fatalf("one poll asked %v; want each NodePool once", cp.calls)
	}

	c.newPoll()
	cp.err = errors.New("throttled")
	for range 2 {
		if _, err := c.instanceTypes(ctx, a); !errors.Is(err, cp.err) {
			t.Fatalf("got %v, want the provider's error", err)
		}
	}
	if cp.calls["a"] != 2 {
		t.Fatalf("the second poll asked %d times in all; want 2 (once more, its error reused)", cp.calls["a"])
	}

	c.newPoll()
	cp.err = nil
	if _, err := c.instanceTypes(ctx, a); err != nil || cp.calls["a"] != 3 {
		t.Fatalf("a poll after an error: %v after %d calls; want an answer from a third call", err, cp.calls["a"])
	}
}
