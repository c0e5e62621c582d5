package simulation

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// CheckNodePools refuses exactly the NodePools the fleet can launch
// nothing for, naming each, and passes those it can.
func TestCheckNodePools(t *testing.T) {
	pool := func(name string, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
		np := workload.DefaultNodePool()
		np.Name = name
		np.Spec.Template.Spec.Requirements = reqs
		return np
	}
	in := func(key string, values ...string) karpv1.NodeSelectorRequirementWithMinValues {
		return karpv1.NodeSelectorRequirementWithMinValues{Key: key, Operator: corev1.NodeSelectorOpIn, Values: values}
	}
	def := DefaultConfig()
	withSpot := DefaultConfig()
	withSpot.CapacityTypes = []string{karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeSpot}
	withSpot.Prices = catalog.StaticPrices{
		{InstanceType: "g6.xlarge", CapacityType: karpv1.CapacityTypeOnDemand}: 0.8048,
		{InstanceType: "g6.xlarge", CapacityType: karpv1.CapacityTypeSpot}:     0.35,
	}
	for _, tc := range []struct {
		name  string
		pools []*karpv1.NodePool
		cfg   Config
		bad   []string // refused NodePools
		want  string
	}{
		{"default NodePool", []*karpv1.NodePool{workload.DefaultNodePool()}, def, nil, ""},
		{"g6 family", []*karpv1.NodePool{pool("g6", in("karpenter.k8s.aws/instance-family", "g6"))}, def, nil, ""},
		{"no such family", []*karpv1.NodePool{pool("ok", in("karpenter-gpu.io/instance-family", "g5")), pool("p9", in("karpenter-gpu.io/instance-family", "p9"))}, def,
			[]string{"p9"}, "no type has karpenter-gpu.io/instance-family In [p9]"},
		{"spot without spot offerings", []*karpv1.NodePool{pool("spot", in(karpv1.CapacityTypeLabelKey, karpv1.CapacityTypeSpot))}, def,
			[]string{"spot"}, "the fleet offers on-demand; spot needs --prices"},
		{"spot with spot prices", []*karpv1.NodePool{pool("spot", in(karpv1.CapacityTypeLabelKey, karpv1.CapacityTypeSpot))}, withSpot, nil, ""},
		{"a family the price table leaves unpriced", []*karpv1.NodePool{pool("g5spot", in(karpv1.CapacityTypeLabelKey, karpv1.CapacityTypeSpot), in("karpenter-gpu.io/instance-family", "g5"))}, withSpot,
			[]string{"g5spot"}, "karpenter-gpu.io/instance-family In [g5]"},
		{"zone outside the fleet", []*karpv1.NodePool{pool("west", in(corev1.LabelTopologyZone, "us-west-2a"))}, def,
			[]string{"west"}, "zones come from --zones or the zones of --prices"},
		{"together", []*karpv1.NodePool{pool("mixed", in("karpenter-gpu.io/instance-family", "g6"), in("karpenter-gpu.io/gpu-name", "t4"))}, def,
			[]string{"mixed"}, "each requirement admits some type, but no type satisfies them all"},
		{"runtime validation", []*karpv1.NodePool{pool("restricted", in(karpv1.NodePoolLabelKey, "x"))}, def,
			[]string{"restricted"}, `field "spec.template"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNodePools(tc.pools, tc.cfg)
			var refused []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var npe *NodePoolError
					if !errors.As(e, &npe) {
						t.Fatalf("error %v is not a NodePoolError", e)
					}
					refused = append(refused, npe.NodePool)
				}
			}
			if strings.Join(refused, ",") != strings.Join(tc.bad, ",") {
				t.Errorf("refused %v, want %v (error: %v)", refused, tc.bad, err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
