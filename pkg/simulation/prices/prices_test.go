package prices

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

const examples = "../../../examples/finops"

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// examples/finops holds us-west-2 prices as the AWS CLI prints them: five
// g4dn on-demand prices (and a Windows row, skipped) from pricing
// get-products, and g4dn spot prices in us-west-2a/b from
// describe-spot-price-history (each with an older, higher price the newer
// one replaces, and a Windows row, skipped).
func TestAWSCLIPrices(t *testing.T) {
	tab, err := LoadFiles(filepath.Join(examples, "ondemand-prices-us-west-2.json"), filepath.Join(examples, "spot-prices-us-west-2.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tab.OnDemand["us-west-2"]["g4dn.xlarge"]; !near(got, 0.526) {
		t.Errorf("on-demand g4dn.xlarge %v, want 0.526 (the Linux row, not Windows' 0.71)", got)
	}
	if len(tab.OnDemand["us-west-2"]) != 5 {
		t.Errorf("on-demand types %v, want 5", tab.OnDemand["us-west-2"])
	}
	if got := tab.Spot["us-west-2"]["us-west-2a"]["g4dn.xlarge"]; !near(got, 0.2104) {
		t.Errorf("spot g4dn.xlarge in 2a %v, want the latest 0.2104", got)
	}
	src, err := tab.Source(Options{Region: "us-west-2", OnDemandDiscount: 0.28})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ, zone, ct string
		want          float64
		ok            bool
	}{
		{"g4dn.xlarge", "us-west-2a", karpv1.CapacityTypeOnDemand, 0.526 * 0.72, true},
		{"g4dn.12xlarge", "us-west-2b", karpv1.CapacityTypeOnDemand, 3.912 * 0.72, true},
		{"g4dn.xlarge", "us-west-2b", karpv1.CapacityTypeSpot, 0.198, true},
		{"g4dn.metal", "us-west-2a", karpv1.CapacityTypeSpot, 3.1296, true},
		{"g4dn.4xlarge", "us-west-2a", karpv1.CapacityTypeSpot, 0, false}, // no spot price: no spot offering
		{"g5.xlarge", "us-west-2a", karpv1.CapacityTypeOnDemand, 0, false},
	} {
		got, ok := src.Prices.Price(c.typ, c.zone, c.ct)
		if ok != c.ok || !near(got, c.want) {
			t.Errorf("%s %s %s: %v %v, want %v %v", c.typ, c.zone, c.ct, got, ok, c.want, c.ok)
		}
	}
	if strings.Join(src.Zones, ",") != "us-west-2a,us-west-2b" || strings.Join(src.CapacityTypes, ",") != "on-demand,spot" {
		t.Errorf("zones %v, capacity types %v", src.Zones, src.CapacityTypes)
	}
	// A spot discount applies to spot only.
	src, _ = tab.Source(Options{Region: "us-west-2", SpotDiscount: 0.1})
	if got, _ := src.Prices.Price("g4dn.xlarge", "us-west-2b", karpv1.CapacityTypeSpot); !near(got, 0.198*0.9) {
		t.Errorf("discounted spot %v, want %v", got, 0.198*0.9)
	}
	if got, _ := src.Prices.Price("g4dn.xlarge", "us-west-2b", karpv1.CapacityTypeOnDemand); !near(got, 0.526) {
		t.Errorf("on-demand %v, want undiscounted 0.526", got)
	}
}

// A region neither the files nor the catalog price is an error naming it
// and what the files hold; the embedded catalog prices us-east-1.
func TestRegionWithoutPrices(t *testing.T) {
	tab, err := LoadFiles(filepath.Join(examples, "spot-prices-us-west-2.json"))
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	_, err = tab.Source(Options{Region: "eu-central-1", Entries: entries})
	if err == nil || !strings.Contains(err.Error(), `region "eu-central-1"`) || !strings.Contains(err.Error(), "us-west-2 (spot)") {
		t.Fatalf("error %v, want one naming the region and the prices the files have", err)
	}
	src, err := NewTable().Source(Options{Region: "us-east-1", Entries: entries, OnDemandDiscount: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := src.Prices.Price("g4dn.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand); !ok || !near(got, 0.263) {
		t.Errorf("catalog g4dn.xlarge at 50%% off: %v %v, want 0.263", got, ok)
	}
}

func TestBadPriceFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"spot.json", `{"SpotPriceHistory":[{"AvailabilityZone":"us-west-2a","InstanceType":"g5.xlarge","ProductDescription":"Linux/UNIX","SpotPrice":"free","Timestamp":"2026-11-30T12:00:00+00:00"}]}`,
			`SpotPriceHistory[0] (g5.xlarge us-west-2a): field "SpotPrice": "free" is not a positive price`},
		{"zone.json", `{"SpotPriceHistory":[{"AvailabilityZone":"west","InstanceType":"g5.xlarge","ProductDescription":"Linux/UNIX","SpotPrice":"0.4"}]}`,
			`field "AvailabilityZone": "west" is not an availability zone`},
		{"product.json", `{"PriceList":["{\"product\":{\"attributes\":{\"instanceType\":\"g5.xlarge\",\"operatingSystem\":\"Linux\",\"tenancy\":\"Shared\",\"preInstalledSw\":\"NA\"}},\"terms\":{}}"]}`,
			`PriceList[0] (g5.xlarge ): field "product.attributes.regionCode": required`},
		{"other.json", `{"Reservations":[]}`, "neither `aws ec2 describe-spot-price-history`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFiles(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %v, want %q with the file name", err, tc.want)
			}
		})
	}
}
