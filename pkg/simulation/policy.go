package simulation

// This file is where the simulator meets pkg/packing: the controller's
// packer as the karpenter-gpu policy's refiner, and the fluid LP lower bound.

import (
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/state"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/lowerbound"
)

// Policy selects whose provisioning decisions a simulation runs.
type Policy string

const (
	// PolicyKarpenterGPU is core's scheduler followed by the GPU packer
	// (and karpenter-gpu's own controllers).
	PolicyKarpenterGPU Policy = "karpenter-gpu"
	// PolicyStock is Karpenter core's decisions alone (refiner nil).
	PolicyStock Policy = "stock"
)

// ParsePolicy validates a --policy value.
func ParsePolicy(s string) (Policy, error) {
	switch Policy(s) {
	case PolicyKarpenterGPU, PolicyStock:
		return Policy(s), nil
	}
	return "", fmt.Errorf("unknown policy %q (want %s or %s)", s, PolicyKarpenterGPU, PolicyStock)
}

// refinerFor returns the provisioning refiner of a policy: nil (core's
// decisions unchanged) for stock, else the controller's GPU packer
// (provisioning.NewPacker), keeping its decisions for the report.
func refinerFor(p Policy, kube client.Client, cp karpcp.CloudProvider, cluster *state.Cluster) *provisioning.Packer {
	if p == PolicyStock {
		return nil
	}
	return provisioning.NewPacker(provisioning.PackerOptions{KubeClient: kube, CloudProvider: cp, Cluster: cluster, KeepDecisions: true})
}

// lowerBound is the fluid LP bound ($/h) of shapes over types, from
// pkg/packing/lowerbound.
func lowerBound(shapes []lowerbound.Shape, types []lowerbound.Type, compatible func(shape, typ int) bool) float64 {
	return lowerbound.Bound(shapes, types, lowerbound.Options{Compatible: compatible}).Cost
}
