package catalog

import (
	"fmt"
	"strings"
)

// supportedArchs are the kubernetes.io/arch values the catalog offers. Other
// values would produce nodes no AMI/bootstrap of ours can serve.
var supportedArchs = map[string]bool{"amd64": true, "arm64": true}

// incompleteReason returns why an entry cannot be turned into an instance
// type, or "" when it can. It is applied by Parse and again by
// NewInstanceTypes, because entries may also come from elsewhere (a backend
// merging live cloud data).
func incompleteReason(e *Entry) string {
	var missing []string
	if e.Arch == "" {
		missing = append(missing, "arch")
	}
	if e.VCPU <= 0 {
		missing = append(missing, "vcpu")
	}
	if e.MemoryMiB <= 0 {
		missing = append(missing, "memory_mib")
	}
	if e.MaxPods <= 0 {
		missing = append(missing, "max_pods")
	}
	if len(missing) > 0 {
		// Without these Karpenter cannot bin-pack (capacity needs cpu,
		// memory and pods), so the type is unusable rather than guessable.
		return "missing " + strings.Join(missing, ", ")
	}
	if !supportedArchs[e.Arch] {
		return fmt.Sprintf("unsupported arch %q", e.Arch)
	}
	named := e.GPUName != "" || e.GPUManufacturer != "" || e.GPUCount > 0
	if e.AcceleratorResource == "" {
		if named {
			// e.g. dl2q (Qualcomm AI100) or g6f (fractional L4, gpu_count 0):
			// pods could not request the device, and offering the type as
			// CPU-only would put general pods on accelerator hardware.
			return fmt.Sprintf("accelerator %q (gpu_count %d) has no Kubernetes extended resource", accelName(e), e.GPUCount)
		}
		if e.AcceleratorCount > 0 {
			return fmt.Sprintf("accelerator_count %d without accelerator_resource", e.AcceleratorCount)
		}
		return ""
	}
	k, ok := resourceKinds[e.AcceleratorResource]
	if !ok {
		return fmt.Sprintf("unsupported accelerator resource %q", e.AcceleratorResource)
	}
	if e.AcceleratorCount <= 0 {
		return fmt.Sprintf("accelerator resource %q with accelerator_count 0", e.AcceleratorResource)
	}
	if e.GPUName == "" {
		return fmt.Sprintf("accelerator resource %q without gpu_name", e.AcceleratorResource)
	}
	if k == kindGPU {
		// gpu-count and gpu-memory are the labels GPU pods select on; a
		// GPU type without them would silently dodge such selectors.
		if e.GPUCount <= 0 {
			return "GPU without gpu_count"
		}
		if e.GPUMemoryMiB <= 0 {
			return "GPU without gpu_memory_mib_per_gpu"
		}
		if e.GPUManufacturer == "" {
			return "GPU without gpu_manufacturer"
		}
	}
	return ""
}

func accelName(e *Entry) string {
	if e.GPUManufacturer != "" && e.GPUName != "" {
		return e.GPUManufacturer + " " + e.GPUName
	}
	return e.GPUManufacturer + e.GPUName
}
