package pricelist_test

import (
	"strings"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/pricelist"
)

// doc is a product document of instance type it with attrs and one
// on-demand dimension (unit, USD price).
func doc(it, attrs, unit, usd string) string {
	return `{"product":{"productFamily":"Compute Instance","attributes":{"instanceType":"` + it + `"` + attrs + `}},` +
		`"terms":{"OnDemand":{"T":{"priceDimensions":{"D":{"unit":"` + unit + `","pricePerUnit":{"USD":"` + usd + `"}}}}}}}`
}

const node = `,"operatingSystem":"Linux","tenancy":"Shared","preInstalledSw":"NA","capacitystatus":"Used"`

func TestHourlyUSD(t *testing.T) {
	for _, tc := range []struct {
		name      string
		doc       string
		price     float64
		found     bool
		wantError string
	}{
		{name: "hourly", doc: doc("g5.xlarge", node, "Hrs", "1.006"), price: 1.006, found: true},
		{name: "another unit is not hourly", doc: doc("g5.xlarge", node, "Quantity", "1.006")},
		{name: "not a number", doc: doc("g5.xlarge", node, "Hrs", "n/a"), wantError: `"n/a" is not a price`},
		{name: "no terms", doc: `{"product":{"attributes":{"instanceType":"g5.xlarge"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := pricelist.Parse(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			price, found, err := p.HourlyUSD()
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("HourlyUSD() error = %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil || price != tc.price || found != tc.found {
				t.Errorf("HourlyUSD() = %v, %v, %v; want %v, %v, nil", price, found, err, tc.price, tc.found)
			}
		})
	}
}

func TestBilledAsNode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		attrs string
		want  bool
	}{
		{name: "Linux, shared, no software, used", attrs: node, want: true},
		{name: "no capacitystatus (older lists)", attrs: `,"operatingSystem":"Linux","tenancy":"Shared","preInstalledSw":"NA"`, want: true},
		{name: "unused reservation", attrs: `,"operatingSystem":"Linux","tenancy":"Shared","preInstalledSw":"NA","capacitystatus":"UnusedCapacityReservation"`},
		{name: "Windows", attrs: `,"operatingSystem":"Windows","tenancy":"Shared","preInstalledSw":"NA"`},
		{name: "dedicated", attrs: `,"operatingSystem":"Linux","tenancy":"Dedicated","preInstalledSw":"NA"`},
		{name: "SQL Server pre-installed", attrs: `,"operatingSystem":"Linux","tenancy":"Shared","preInstalledSw":"SQL Std"`},
		{name: "bring your own license", attrs: node + `,"licenseModel":"Bring your own license"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := pricelist.Parse(doc("g5.xlarge", tc.attrs, "Hrs", "1"))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.BilledAsNode(); got != tc.want {
				t.Errorf("BilledAsNode() = %v, want %v", got, tc.want)
			}
			if p.InstanceType() != "g5.xlarge" {
				t.Errorf("InstanceType() = %q", p.InstanceType())
			}
		})
	}
}
