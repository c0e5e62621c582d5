package packing_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

func priced(ct, zone string, price float64, available bool) *cloudprovider.Offering {
	labels := map[string]string{karpv1.CapacityTypeLabelKey: ct, corev1.LabelTopologyZone: zone}
	o := &cloudprovider.Offering{Price: price, Available: available}
	if ct == karpv1.CapacityTypeReserved {
		labels[cloudprovider.ReservationIDLabel] = "cr-" + zone
		o.ReservationCapacity = 1
	}
	o.Requirements = kscheduling.NewLabelRequirements(labels)
	return o
}

func typeWith(name string, offerings ...*cloudprovider.Offering) *cloudprovider.InstanceType {
	return &cloudprovider.InstanceType{Name: name, Requirements: kscheduling.NewRequirements(), Offerings: offerings,
		Capacity: corev1.ResourceList{}, Overhead: &cloudprovider.InstanceTypeOverhead{}}
}

// The packer prices a NodeClaim at the offering the provider launches first:
// one rule (gpucp.CompareLaunch, "reserved first, then cheapest") for both.
func TestNodeClaimPriceIsTheProvidersFirstLaunch(t *testing.T) {
	const od, sp, rs = karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeSpot, karpv1.CapacityTypeReserved
	for _, tc := range []struct {
		name  string
		zones []string // the NodeClaim's zone requirement; nil = any
		types []*cloudprovider.InstanceType
		want  float64
	}{
		{"cheapest on-demand across types", nil, []*cloudprovider.InstanceType{
			typeWith("a", priced(od, "z1", 3, true)), typeWith("b", priced(od, "z1", 2, true))}, 2},
		{"spot cheaper than on-demand", nil, []*cloudprovider.InstanceType{
			typeWith("a", priced(od, "z1", 3, true), priced(sp, "z1", 1.2, true))}, 1.2},
		{"a reservation of another type before a cheaper spot", nil, []*cloudprovider.InstanceType{
			typeWith("a", priced(sp, "z1", 0.5, true)), typeWith("b", priced(rs, "z1", 4, true))}, 4},
		{"an unavailable offering is not launched", nil, []*cloudprovider.InstanceType{
			typeWith("a", priced(od, "z1", 1, false), priced(od, "z2", 2, true))}, 2},
		{"a reservation outside the NodeClaim's zones is not launched", []string{"z1"}, []*cloudprovider.InstanceType{
			typeWith("a", priced(rs, "z2", 4, true), priced(od, "z1", 2, true))}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs []karpv1.NodeSelectorRequirementWithMinValues
			if tc.zones != nil {
				reqs = append(reqs, karpv1.NodeSelectorRequirementWithMinValues{Key: corev1.LabelTopologyZone, Operator: corev1.NodeSelectorOpIn, Values: tc.zones})
			}
			nc := &scheduling.NodeClaim{}
			nc.InstanceTypeOptions = tc.types
			nc.Requirements = kscheduling.NewNodeSelectorRequirementsWithMinValues(reqs...)
			got := packing.NodeClaimPrice(nc)
			if got != tc.want {
				t.Errorf("NodeClaimPrice = %v, want %v", got, tc.want)
			}
			opts, err := gpucp.LaunchOptions(&karpv1.NodeClaim{Spec: karpv1.NodeClaimSpec{Requirements: reqs}}, tc.types)
			if err != nil || len(opts) == 0 {
				t.Fatalf("LaunchOptions = %v, %v", opts, err)
			}
			if opts[0].Price != got {
				t.Errorf("the provider launches %v first, the packer prices the NodeClaim at $%v", opts[0], got)
			}
		})
	}
}
