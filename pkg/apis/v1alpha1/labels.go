package v1alpha1

import (
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
)

// Group is the API group of karpenter-gpu's own resources and the domain of
// its well-known node labels.
const Group = "karpenter-gpu.io"

// Well-known node labels. Every GPUNodeClass-managed instance type defines all
// of them (GPU keys as DoesNotExist on types without a GPU), so a pod or
// NodePool can ask for "any GPU with at least 40 GiB" with
// `karpenter-gpu.io/gpu-memory Gt 40959`.
const (
	LabelGPUName         = Group + "/gpu-name"         // e.g. "h100", "l4"
	LabelGPUManufacturer = Group + "/gpu-manufacturer" // e.g. "nvidia"
	LabelGPUCount        = Group + "/gpu-count"        // GPUs on the instance
	LabelGPUMemory       = Group + "/gpu-memory"       // MiB per GPU
	LabelInstanceFamily  = Group + "/instance-family"  // e.g. "g6"
	LabelInstanceSize    = Group + "/instance-size"    // e.g. "2xlarge"
	LabelInstanceCPU     = Group + "/instance-cpu"     // vCPUs
	LabelInstanceMemory  = Group + "/instance-memory"  // MiB
	// LabelAcceleratorName/Count describe non-GPU accelerators (Inferentia,
	// Trainium, Gaudi) so they can be selected without matching GPU pods.
	LabelAcceleratorName  = Group + "/accelerator-name"
	LabelAcceleratorCount = Group + "/accelerator-count"
	LabelEFACount         = Group + "/efa-count"
	// LabelCapacityReservationID is set on reserved offerings (ODCR and
	// capacity blocks); it is core's cloudprovider.ReservationIDLabel.
	LabelCapacityReservationID = Group + "/capacity-reservation-id"
)

// GPU resource names the catalog exposes as extended resources.
const (
	ResourceNVIDIAGPU = "nvidia.com/gpu"
	ResourceAMDGPU    = "amd.com/gpu"
	ResourceNeuron    = "aws.amazon.com/neuron"
	ResourceGaudi     = "habana.ai/gaudi"
	ResourceEFA       = "vpc.amazonaws.com/efa"
)

// GPULabels are the keys that only GPU instance types define; a type without
// a GPU carries DoesNotExist for each.
var GPULabels = []string{LabelGPUName, LabelGPUManufacturer, LabelGPUCount, LabelGPUMemory}

// AcceleratorLabels are defined only on types with a non-GPU accelerator.
var AcceleratorLabels = []string{LabelAcceleratorName, LabelAcceleratorCount}

// WellKnownLabels lists every label this provider registers with Karpenter.
var WellKnownLabels = append(append([]string{
	LabelInstanceFamily, LabelInstanceSize, LabelInstanceCPU, LabelInstanceMemory, LabelEFACount, LabelCapacityReservationID,
}, GPULabels...), AcceleratorLabels...)

func init() {
	// Karpenter v1.15.0 has no registration function: providers extend the
	// package-level sets before any controller starts (see research notes §7).
	karpv1.RestrictedLabelDomains = karpv1.RestrictedLabelDomains.Insert(Group)
	karpv1.WellKnownLabels = karpv1.WellKnownLabels.Insert(WellKnownLabels...)
	// Core tells reserved offerings apart by this label (one reservation
	// must not be over-launched from two NodePools).
	cloudprovider.ReservationIDLabel = LabelCapacityReservationID
	cloudprovider.ReservedCapacityLabels.Insert(LabelCapacityReservationID)
}

// LabelNodeClass is the label Karpenter core puts on every NodeClaim and Node
// it launches for a GPUNodeClass (karpv1.NodeClassLabelKey), valued with the
// GPUNodeClass name. Core also copies it into NodeClaim spec.requirements;
// core's karpenter.sh CRDs accept it (they do not restrict karpenter-gpu.io:
// core's runtime NodePool validation does, against RestrictedLabelDomains).
const LabelNodeClass = Group + "/gpunodeclass"
