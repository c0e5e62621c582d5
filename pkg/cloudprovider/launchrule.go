package cloudprovider

import (
	"cmp"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
)

// CompareLaunch is the launch-price rule, "reserved first, then cheapest",
// decided once for the provider (the order Create tries offerings in) and
// the packer (the price it plans a NodeClaim at): an offering in a capacity
// reservation with room goes before any other (it is already paid for, and
// Karpenter core assumes so, see Offerings.WorstLaunchPrice); otherwise the
// cheaper goes first, spot and on-demand competing on price alone. It
// returns a negative number when the offering (aCapacityType, aPrice)
// launches before (bCapacityType, bPrice), a positive one when after, 0 when
// the rule does not tell them apart.
func CompareLaunch(aCapacityType string, aPrice float64, bCapacityType string, bPrice float64) int {
	if ar, br := aCapacityType == karpv1.CapacityTypeReserved, bCapacityType == karpv1.CapacityTypeReserved; ar != br {
		if ar {
			return -1
		}
		return 1
	}
	return cmp.Compare(aPrice, bPrice)
}

// FirstLaunch is the offering of offerings the provider launches first by
// CompareLaunch, or nil for none. The caller filters the offerings (for
// example to the launchable ones compatible with a NodeClaim).
func FirstLaunch(offerings karpcp.Offerings) *karpcp.Offering {
	var first *karpcp.Offering
	for _, o := range offerings {
		if first == nil || CompareLaunch(o.CapacityType(), o.Price, first.CapacityType(), first.Price) < 0 {
			first = o
		}
	}
	return first
}
