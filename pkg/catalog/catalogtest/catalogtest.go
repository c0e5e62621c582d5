// Package catalogtest holds the fixture unit tests price against: the
// embedded catalog's instance types.
package catalogtest

import (
	"testing"

	"sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

// InstanceTypes is the embedded catalog's instance types offered as opts
// says (region, zones, capacity types, reservations). The types the catalog
// excludes are left out, as the cloud provider leaves them out; a catalog
// that does not parse fails the test. Each call returns fresh objects.
func InstanceTypes(t testing.TB, opts catalog.Options) []*cloudprovider.InstanceType {
	t.Helper()
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	its, _ := catalog.NewInstanceTypes(entries, opts)
	return its
}
