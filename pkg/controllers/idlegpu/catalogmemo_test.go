package idlegpu

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog/catalogtest"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
)

// TestCatalogKeyMemoIsExact: the catalog key memoised across polls is
// always the key repack.CatalogKey computes afresh, whatever changed
// between polls: nothing, an offering's price, availability or reservation
// capacity in place, a new instance-type slice or objects, the NodePool's
// spec or UID.
func TestCatalogKeyMemoIsExact(t *testing.T) {
	build := func() []*karpcp.InstanceType {
		return catalogtest.InstanceTypes(t, catalog.Options{Region: "us-east-1", Zones: []string{"us-east-1a", "us-east-1b"},
			CapacityTypes: []string{karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeSpot}})
	}
	its := build()
	np := test.NodePool(karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "gpu", UID: "u"}})
	c := newTestController()
	seen := map[string]bool{}
	check := func(step string) {
		t.Helper()
		c.newPoll()
		got, want := c.catalogKey(np, its), repack.CatalogKey(np, its)
		if got != want {
			t.Fatalf("%s: memoised key %s, fresh key %s", step, got, want)
		}
		seen[got] = true
	}
	check("first poll")
	check("unchanged")
	if len(seen) != 1 {
		t.Fatalf("an unchanged catalog changed keys")
	}
	o := its[0].Offerings[0]
	o.Price *= 2
	check("price changed in place")
	o.Available = !o.Available
	check("availability changed in place")
	o.ReservationCapacity++
	check("reservation capacity changed in place")
	its = build()
	check("a new catalog (fresh objects)")
	its = slices.Clone(its[1:])
	check("an instance type dropped")
	its[0] = build()[0]
	check("an instance type replaced in place")
	np.Spec.Weight = new(int32)
	*np.Spec.Weight = 7
	check("the NodePool's spec changed")
	np.UID = "v"
	check("the NodePool recreated")
	// Nine steps, eight catalogs: the fresh one is the first poll's.
	if len(seen) != 8 {
		t.Fatalf("%d distinct keys over 8 distinct catalogs", len(seen))
	}
}
