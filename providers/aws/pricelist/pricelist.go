// Package pricelist reads the AWS Pricing API's EC2 product documents (each
// string of GetProducts' PriceList, from the API or from `aws pricing
// get-products`): which products price a Karpenter node and what their
// hourly on-demand price is. It is the one rule of the AWS backend's
// pricing provider (providers/aws/pricing) and of the simulator's --prices
// (pkg/simulation/prices), and imports nothing but the standard library.
package pricelist

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Attribute is a product attribute and the value a node's product has.
type Attribute struct{ Name, Value string }

// NodeAttributes are what a Karpenter node is billed as: Linux, shared
// tenancy, no pre-installed software, capacity used (not an unused
// reservation). The pricing provider asks the API for them; the simulator
// keeps the products of a file that have them.
var NodeAttributes = []Attribute{
	{"operatingSystem", "Linux"}, {"tenancy", "Shared"}, {"preInstalledSw", "NA"}, {"capacitystatus", "Used"},
}

// Product is one product document.
type Product struct {
	Product struct {
		ProductFamily string            `json:"productFamily"`
		Attributes    map[string]string `json:"attributes"`
	} `json:"product"`
	Terms struct {
		OnDemand map[string]struct {
			PriceDimensions map[string]struct {
				Unit         string            `json:"unit"`
				PricePerUnit map[string]string `json:"pricePerUnit"`
			} `json:"priceDimensions"`
		} `json:"OnDemand"`
	} `json:"terms"`
}

// Parse reads one product document.
func Parse(doc string) (Product, error) {
	var p Product
	err := json.Unmarshal([]byte(doc), &p)
	return p, err
}

// InstanceType is the product's instance type ("" for other products).
func (p Product) InstanceType() string { return p.Product.Attributes["instanceType"] }

// BilledAsNode reports whether the product has NodeAttributes (a missing
// capacitystatus, as in older price lists, counts as used) and is not a
// bring-your-own-license product.
func (p Product) BilledAsNode() bool {
	a := p.Product.Attributes
	for _, want := range NodeAttributes {
		if got := a[want.Name]; got != want.Value && (want.Name != "capacitystatus" || got != "") {
			return false
		}
	}
	return a["licenseModel"] != "Bring your own license"
}

// HourlyUSD is the product's on-demand price per hour in USD: that of its
// on-demand price dimension billed in hours ("Hrs"). found is false when it
// has none; err names a USD price that is not a number. A product has one
// such dimension; were there several, the last one read counts.
func (p Product) HourlyUSD() (price float64, found bool, err error) {
	for _, term := range p.Terms.OnDemand {
		for _, dim := range term.PriceDimensions {
			if dim.Unit != "Hrs" {
				continue
			}
			v, err := strconv.ParseFloat(dim.PricePerUnit["USD"], 64)
			if err != nil {
				return 0, false, fmt.Errorf("%q is not a price", dim.PricePerUnit["USD"])
			}
			price, found = v, true
		}
	}
	return price, found, nil
}
