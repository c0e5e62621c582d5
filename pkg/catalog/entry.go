// Package catalog turns a static table of accelerated instance types into
// Karpenter InstanceTypes: capacity, kubelet overhead, scheduling requirements
// (well-known labels) and priced offerings.
//
// The package holds facts only. Anything the table does not state (a missing
// vCPU count, a device without a Kubernetes resource, an unknown price) is
// reported as an Exclusion instead of being guessed, because a guessed value
// would be trusted by Karpenter's scheduler and its consolidation pricing.
package catalog

import (
	"maps"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Entry is one instance type as the data states it. Quantities are raw
// hardware values (not allocatable); a zero means "not stated".
type Entry struct {
	Name   string // e.g. "p5.48xlarge"
	Family string // e.g. "p5"
	Size   string // the part after the last "." of Name, e.g. "48xlarge"; "" when Name has no "."
	Arch   string // "amd64" or "arm64"

	VCPU      int64
	MemoryMiB int64

	// GPU* describe the device as the data labels it. For non-GPU
	// accelerators (Neuron, Gaudi) they hold the accelerator's name and count.
	GPUManufacturer string // lower case, e.g. "nvidia"
	GPUName         string // lower case, e.g. "h100", "l4", "a10g"
	GPUCount        int64
	GPUMemoryMiB    int64 // per device

	// AcceleratorResource is the extended resource the device plugin
	// advertises (one of the v1alpha1.Resource* names) and AcceleratorCount
	// its allocatable count.
	AcceleratorResource string
	AcceleratorCount    int64

	EFACount             int64
	NetworkBandwidthMbps int64
	LocalNVMeGiB         int64
	MaxPods              int64

	// OnDemandPrices maps a region (e.g. "us-east-1") to the hourly USD
	// on-demand price. Regions without a price are absent, never 0.
	OnDemandPrices map[string]float64
}

// Exclusion names an instance type the catalog refused to offer and why.
type Exclusion struct {
	Name   string
	Reason string
}

// kind classifies an entry by the extended resource it exposes, which decides
// whether it carries gpu-* or accelerator-* labels.
type kind int

const (
	kindCPU         kind = iota // no accelerator
	kindGPU                     // nvidia.com/gpu, amd.com/gpu: gpu-* labels
	kindAccelerator             // Neuron, Gaudi: accelerator-* labels, so GPU pods never land there
)

// resourceKinds lists the extended resources the catalog knows how to expose.
var resourceKinds = map[string]kind{
	v1alpha1.ResourceNVIDIAGPU: kindGPU,
	v1alpha1.ResourceAMDGPU:    kindGPU,
	v1alpha1.ResourceNeuron:    kindAccelerator,
	v1alpha1.ResourceGaudi:     kindAccelerator,
}

func (e *Entry) kind() kind {
	if e.AcceleratorResource == "" {
		return kindCPU
	}
	return resourceKinds[e.AcceleratorResource]
}

// clone returns a copy that shares no maps with e, so callers of Embedded
// cannot corrupt the cached parse.
func (e Entry) clone() Entry {
	e.OnDemandPrices = maps.Clone(e.OnDemandPrices)
	return e
}

func cloneEntries(in []Entry) []Entry {
	out := make([]Entry, len(in))
	for i := range in {
		out[i] = in[i].clone()
	}
	return out
}
