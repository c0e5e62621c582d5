package cloudprovider_test

import (
	"cmp"
	"testing"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/scheduling"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

const (
	reserved = karpv1.CapacityTypeReserved
	spot     = karpv1.CapacityTypeSpot
	onDemand = karpv1.CapacityTypeOnDemand
)

func TestCompareLaunch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		aCT    string
		aPrice float64
		bCT    string
		bPrice float64
		want   int
	}{
		{"reserved before a cheaper on-demand", reserved, 5, onDemand, 1, -1},
		{"reserved before a cheaper spot", reserved, 5, spot, 0.5, -1},
		{"on-demand after reserved", onDemand, 1, reserved, 5, 1},
		{"cheaper spot before on-demand", spot, 0.4, onDemand, 1, -1},
		{"cheaper on-demand before spot", onDemand, 0.3, spot, 0.4, -1},
		{"spot and on-demand at one price tie", spot, 1, onDemand, 1, 0},
		{"cheaper of two reservations first", reserved, 1, reserved, 2, -1},
		{"equal", onDemand, 2, onDemand, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gpucp.CompareLaunch(tc.aCT, tc.aPrice, tc.bCT, tc.bPrice); cmp.Compare(got, 0) != tc.want {
				t.Errorf("CompareLaunch = %d, want sign %d", got, tc.want)
			}
			if got := gpucp.CompareLaunch(tc.bCT, tc.bPrice, tc.aCT, tc.aPrice); cmp.Compare(got, 0) != -tc.want {
				t.Errorf("CompareLaunch swapped = %d, want sign %d (antisymmetric)", got, -tc.want)
			}
		})
	}
}

func offering(ct, zone string, price float64) *karpcp.Offering {
	labels := map[string]string{karpv1.CapacityTypeLabelKey: ct, corev1.LabelTopologyZone: zone}
	o := &karpcp.Offering{Price: price, Available: true}
	if ct == reserved {
		labels[karpcp.ReservationIDLabel] = "cr-" + zone
		o.ReservationCapacity = 1
	}
	o.Requirements = scheduling.NewLabelRequirements(labels)
	return o
}

// FirstLaunch is the option Create tries first: the provider's launch order
// and the rule agree on every case.
func TestFirstLaunchIsTheFirstLaunchOption(t *testing.T) {
	for _, tc := range []struct {
		name      string
		offerings karpcp.Offerings
		want      int // index of the first launch, -1 for none
	}{
		{"none", nil, -1},
		{"cheapest on-demand", karpcp.Offerings{offering(onDemand, "a", 2), offering(onDemand, "b", 1)}, 1},
		{"spot cheaper than on-demand", karpcp.Offerings{offering(onDemand, "a", 1), offering(spot, "a", 0.4)}, 1},
		{"reservation despite a cheaper spot", karpcp.Offerings{offering(spot, "a", 0.1), offering(reserved, "b", 3)}, 1},
		{"cheaper of two reservations", karpcp.Offerings{offering(reserved, "a", 3), offering(reserved, "b", 2), offering(onDemand, "a", 1)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := gpucp.FirstLaunch(tc.offerings)
			if tc.want < 0 {
				if got != nil {
					t.Fatalf("FirstLaunch = %v, want none", got)
				}
				return
			}
			if got != tc.offerings[tc.want] {
				t.Fatalf("FirstLaunch = %s/%s $%.2f, want offering %d", got.CapacityType(), got.Zone(), got.Price, tc.want)
			}
			it := &karpcp.InstanceType{Name: "t", Requirements: scheduling.NewRequirements(), Offerings: tc.offerings,
				Capacity: corev1.ResourceList{}, Overhead: &karpcp.InstanceTypeOverhead{}}
			opts, err := gpucp.LaunchOptions(&karpv1.NodeClaim{}, []*karpcp.InstanceType{it})
			if err != nil || len(opts) == 0 {
				t.Fatalf("LaunchOptions = %v, %v", opts, err)
			}
			if opts[0].CapacityType != got.CapacityType() || opts[0].Zone != got.Zone() || opts[0].Price != got.Price {
				t.Errorf("Create tries %v first, FirstLaunch says %s/%s $%.2f", opts[0], got.Zone(), got.CapacityType(), got.Price)
			}
		})
	}
}
