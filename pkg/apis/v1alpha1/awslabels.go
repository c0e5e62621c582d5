package v1alpha1

import (
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
)

// Karpenter for AWS's well-known labels (github.com/aws/karpenter-provider-aws
// pkg/apis/v1, v1.15). karpenter-gpu's instance types carry the ones the
// catalog states with Karpenter-AWS's values, so pods and NodePools written
// for Karpenter-AWS (for example `karpenter.k8s.aws/instance-gpu-name: l4`)
// schedule on karpenter-gpu nodes unchanged.
const AWSGroup = "karpenter.k8s.aws"

// The Karpenter-AWS labels karpenter-gpu sets (AWSLabels).
const (
	AWSLabelInstanceCategory       = AWSGroup + "/instance-category"        // "g" of g6e.xlarge
	AWSLabelInstanceFamily         = AWSGroup + "/instance-family"          // "g6e"
	AWSLabelInstanceGeneration     = AWSGroup + "/instance-generation"      // "6"
	AWSLabelInstanceSize           = AWSGroup + "/instance-size"            // "xlarge"
	AWSLabelInstanceCapabilityFlex = AWSGroup + "/instance-capability-flex" // "false" (no "-flex" family)
	AWSLabelInstanceCPU            = AWSGroup + "/instance-cpu"             // vCPUs
	AWSLabelInstanceMemory         = AWSGroup + "/instance-memory"          // MiB
	AWSLabelInstanceLocalNVMe      = AWSGroup + "/instance-local-nvme"      // GiB, types with NVMe instance storage
	AWSLabelInstanceNetwork        = AWSGroup + "/instance-network-bandwidth"
	AWSLabelInstanceGPUName        = AWSGroup + "/instance-gpu-name"         // "l4", "h100", "gaudi-hl-205"
	AWSLabelInstanceGPUManufacture = AWSGroup + "/instance-gpu-manufacturer" // "nvidia", "amd", "habana"
	AWSLabelInstanceGPUCount       = AWSGroup + "/instance-gpu-count"
	AWSLabelInstanceGPUMemory      = AWSGroup + "/instance-gpu-memory" // MiB per GPU
	AWSLabelAcceleratorName        = AWSGroup + "/instance-accelerator-name"
	AWSLabelAcceleratorManufacture = AWSGroup + "/instance-accelerator-manufacturer" // "aws" (Neuron)
	AWSLabelAcceleratorCount       = AWSGroup + "/instance-accelerator-count"
)

// AWSLabels are the Karpenter-AWS well-known labels karpenter-gpu states,
// each defined on every instance type (DoesNotExist where the type has no
// value, as Karpenter-AWS does).
var AWSLabels = []string{
	AWSLabelInstanceCategory, AWSLabelInstanceFamily, AWSLabelInstanceGeneration, AWSLabelInstanceSize,
	AWSLabelInstanceCapabilityFlex, AWSLabelInstanceCPU, AWSLabelInstanceMemory, AWSLabelInstanceLocalNVMe,
	AWSLabelInstanceNetwork,
	AWSLabelInstanceGPUName, AWSLabelInstanceGPUManufacture, AWSLabelInstanceGPUCount, AWSLabelInstanceGPUMemory,
	AWSLabelAcceleratorName, AWSLabelAcceleratorManufacture, AWSLabelAcceleratorCount,
}

// AWSUnstatedLabels are Karpenter-AWS's other well-known labels: facts the
// catalog does not hold (hypervisor, CPU make and clock, EBS bandwidth,
// encryption in transit, zone ID, tenancy, placement groups) and
// Karpenter-AWS's own reservation labels (karpenter-gpu's reserved
// offerings carry karpenter-gpu.io/capacity-reservation-id). They are
// registered so that every instance type defines them as DoesNotExist: a pod
// or NodePool requiring one is not served by karpenter-gpu, instead of being
// given a node that only claims the label.
var AWSUnstatedLabels = []string{
	AWSGroup + "/instance-hypervisor",
	AWSGroup + "/instance-encryption-in-transit-supported",
	AWSGroup + "/instance-cpu-manufacturer",
	AWSGroup + "/instance-cpu-sustained-clock-speed-mhz",
	AWSGroup + "/instance-ebs-bandwidth",
	AWSGroup + "/instance-tenancy",
	AWSGroup + "/capacity-reservation-id",
	AWSGroup + "/capacity-reservation-type",
	AWSGroup + "/capacity-reservation-interruptible",
	AWSGroup + "/placement-group-id",
	AWSGroup + "/placement-group-partition",
	"topology.k8s.aws/zone-id",
}

func init() {
	// As Karpenter-AWS does: keys in its domain other than its well-known
	// labels are refused in NodePools (core's runtime validation) and never
	// derived onto nodes from pod requirements.
	karpv1.RestrictedLabelDomains = karpv1.RestrictedLabelDomains.Insert(AWSGroup)
	karpv1.WellKnownLabels = karpv1.WellKnownLabels.Insert(AWSLabels...).Insert(AWSUnstatedLabels...)
}
