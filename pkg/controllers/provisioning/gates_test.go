package provisioning_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/samber/lo"
	"sigs.k8s.io/karpenter/pkg/operator/options"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
)

// TestCheckFeatureGates: every core gate but CapacityBuffer is accepted;
// CapacityBuffer is refused with an error naming the gate and the way out.
func TestCheckFeatureGates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		gates   test.FeatureGates
		refused bool
	}{
		{name: "core defaults", gates: test.FeatureGates{}},
		{name: "every other gate on", gates: test.FeatureGates{NodeRepair: lo.ToPtr(true), ReservedCapacity: lo.ToPtr(true),
			SpotToSpotConsolidation: lo.ToPtr(true), NodeOverlay: lo.ToPtr(true), StaticCapacity: lo.ToPtr(true)}},
		{name: "CapacityBuffer explicitly off", gates: test.FeatureGates{CapacityBuffer: lo.ToPtr(false)}},
		{name: "CapacityBuffer on", gates: test.FeatureGates{CapacityBuffer: lo.ToPtr(true)}, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := options.ToContext(context.Background(), test.Options(test.OptionsFields{FeatureGates: tc.gates}))
			err := provisioning.CheckFeatureGates(ctx)
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, provisioning.ErrCapacityBufferUnsupported) {
				t.Fatalf("got %v, want ErrCapacityBufferUnsupported", err)
			}
			for _, want := range []string{"CapacityBuffer", "FEATURE_GATES", "--policy stock"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}
