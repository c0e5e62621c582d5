package provisioning

import (
	"context"
	"fmt"

	"sigs.k8s.io/karpenter/pkg/operator/options"
)

// ErrCapacityBufferUnsupported is returned by CheckFeatureGates when core's
// CapacityBuffer gate is on.
var ErrCapacityBufferUnsupported = fmt.Errorf("feature gate %s is not supported with policy karpenter-gpu: "+
	"this provisioning loop replaces core's, which keeps each CapacityBuffer's Provisioning condition and the "+
	"buffer pod counts that stop emptiness from removing buffer capacity; without them buffer nodes would be "+
	"launched and removed in a loop. Remove %s=true from FEATURE_GATES (or run --policy stock, core's loop)",
	options.CapacityBufferFeatureGate.Name, options.CapacityBufferFeatureGate.Name)

// CheckFeatureGates refuses core feature gates this loop does not implement
// as core's provisioner does. Core's Provisioner.Reconcile, under
// CapacityBuffer, patches every buffer's status and updates the cluster
// state's buffer pod counts from unexported helpers after each Schedule;
// reimplementing them would fork core's buffer semantics, so the gate is
// refused at startup instead.
func CheckFeatureGates(ctx context.Context) error {
	if options.FromContext(ctx).FeatureGates.CapacityBuffer {
		return ErrCapacityBufferUnsupported
	}
	return nil
}
