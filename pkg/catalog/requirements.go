package catalog

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// requirements describes the labels a node of this type will carry.
//
// Karpenter's Intersects skips keys an instance type does not define, so an
// undefined key matches every pod requirement on it: a type without a GPU
// that left gpu-count undefined would satisfy "gpu-count Gt 0". Hence every
// well-known key is defined, with DoesNotExist where the type has no value.
func requirements(e *Entry, region string, zones, capacityTypes, reservationIDs []string) scheduling.Requirements {
	in := func(key string, values ...string) *scheduling.Requirement {
		return scheduling.NewRequirement(key, corev1.NodeSelectorOpIn, values...)
	}
	itoa := func(v int64) string { return strconv.FormatInt(v, 10) }
	r := make(scheduling.Requirements, len(karpv1.WellKnownLabels)+2)
	add := func(req *scheduling.Requirement) { r[req.Key] = req }

	add(in(corev1.LabelInstanceTypeStable, e.Name))
	add(in(corev1.LabelArchStable, e.Arch))
	add(in(corev1.LabelOSStable, string(corev1.Linux)))
	// Zones and capacity types are those of all offerings, available or
	// not, so the requirements do not flap with transient capacity errors.
	add(in(corev1.LabelTopologyZone, zones...))
	add(in(karpv1.CapacityTypeLabelKey, capacityTypes...))
	if region != "" {
		add(in(corev1.LabelTopologyRegion, region))
	}
	add(in(v1alpha1.LabelInstanceFamily, e.Family))
	if e.Size != "" {
		add(in(v1alpha1.LabelInstanceSize, e.Size))
	}
	add(in(v1alpha1.LabelInstanceCPU, itoa(e.VCPU)))
	add(in(v1alpha1.LabelInstanceMemory, itoa(e.MemoryMiB)))
	// 0 is a fact too ("no EFA"), and lets pods say "efa-count Lt 1".
	add(in(v1alpha1.LabelEFACount, itoa(e.EFACount)))

	switch e.kind() {
	case kindGPU:
		add(in(v1alpha1.LabelGPUName, e.GPUName))
		add(in(v1alpha1.LabelGPUManufacturer, e.GPUManufacturer))
		add(in(v1alpha1.LabelGPUCount, itoa(e.GPUCount)))
		add(in(v1alpha1.LabelGPUMemory, itoa(e.GPUMemoryMiB)))
	case kindAccelerator:
		add(in(v1alpha1.LabelAcceleratorName, e.GPUName))
		add(in(v1alpha1.LabelAcceleratorCount, itoa(e.AcceleratorCount)))
	}

	addAWSLabels(e, add)

	// Reserved offerings carry their reservation ID; the type allows the IDs
	// of its reservations, or none.
	if cloudprovider.ReservationIDLabel != "" {
		if len(reservationIDs) > 0 {
			add(in(cloudprovider.ReservationIDLabel, reservationIDs...))
		} else {
			add(scheduling.NewRequirement(cloudprovider.ReservationIDLabel, corev1.NodeSelectorOpDoesNotExist))
		}
	}

	// Everything else the type does not set: GPU keys on accelerator types,
	// windows-build, labels registered by other packages, and so on.
	for _, key := range v1alpha1.WellKnownLabels {
		if !r.Has(key) {
			add(scheduling.NewRequirement(key, corev1.NodeSelectorOpDoesNotExist))
		}
	}
	for key := range karpv1.WellKnownLabels {
		if !r.Has(key) && !setByNodePool(key) {
			add(scheduling.NewRequirement(key, corev1.NodeSelectorOpDoesNotExist))
		}
	}
	return r
}

// setByNodePool reports well-known keys whose value comes from the NodePool,
// not the instance type. Karpenter puts "karpenter.sh/nodepool In [name]" (and
// the node class label) into every NodeClaim's requirements; DoesNotExist on
// the type would make every type incompatible.
func setByNodePool(key string) bool {
	if key == karpv1.NodePoolLabelKey {
		return true
	}
	// karpv1.NodeClassLabelKey has the shape "<group>/<lower-case kind>",
	// and node class kinds end in "nodeclass" by convention.
	_, name, _ := strings.Cut(key, "/")
	return strings.HasSuffix(name, "nodeclass")
}

// addAWSLabels states the type in Karpenter-AWS's well-known labels, with the
// values Karpenter-AWS gives them (the catalog's columns are its labels):
// family, size, category and generation from the name, vCPUs, memory, local
// NVMe and network bandwidth where stated, and its devices as instance-gpu-*
// (EC2 GPUs: NVIDIA, AMD and Habana Gaudi) or instance-accelerator-* (AWS
// Neuron). Keys without a value are left to the DoesNotExist pass.
func addAWSLabels(e *Entry, add func(*scheduling.Requirement)) {
	in := func(key string, values ...string) *scheduling.Requirement {
		return scheduling.NewRequirement(key, corev1.NodeSelectorOpIn, values...)
	}
	itoa := func(v int64) string { return strconv.FormatInt(v, 10) }
	add(in(v1alpha1.AWSLabelInstanceFamily, e.Family))
	if e.Size != "" {
		add(in(v1alpha1.AWSLabelInstanceSize, e.Size))
	}
	if category, generation, ok := categoryGeneration(e.Name); ok {
		add(in(v1alpha1.AWSLabelInstanceCategory, category))
		add(in(v1alpha1.AWSLabelInstanceGeneration, generation))
	}
	add(in(v1alpha1.AWSLabelInstanceCapabilityFlex, strconv.FormatBool(strings.Contains(e.Family, "-flex"))))
	add(in(v1alpha1.AWSLabelInstanceCPU, itoa(e.VCPU)))
	add(in(v1alpha1.AWSLabelInstanceMemory, itoa(e.MemoryMiB)))
	if e.LocalNVMeGiB > 0 {
		add(in(v1alpha1.AWSLabelInstanceLocalNVMe, itoa(e.LocalNVMeGiB)))
	}
	if e.NetworkBandwidthMbps > 0 {
		add(in(v1alpha1.AWSLabelInstanceNetwork, itoa(e.NetworkBandwidthMbps)))
	}
	if e.GPUName == "" || e.GPUCount <= 0 {
		return
	}
	if e.AcceleratorResource == v1alpha1.ResourceNeuron {
		add(in(v1alpha1.AWSLabelAcceleratorName, e.GPUName))
		add(in(v1alpha1.AWSLabelAcceleratorManufacture, e.GPUManufacturer))
		add(in(v1alpha1.AWSLabelAcceleratorCount, itoa(e.GPUCount)))
		return
	}
	add(in(v1alpha1.AWSLabelInstanceGPUName, e.GPUName))
	add(in(v1alpha1.AWSLabelInstanceGPUManufacture, e.GPUManufacturer))
	add(in(v1alpha1.AWSLabelInstanceGPUCount, itoa(e.GPUCount)))
	if e.GPUMemoryMiB > 0 {
		add(in(v1alpha1.AWSLabelInstanceGPUMemory, itoa(e.GPUMemoryMiB)))
	}
}

// categoryGeneration splits an EC2 instance type name as Karpenter-AWS's
// instance-category and instance-generation labels do: the leading letters,
// then the digits that follow (after a "-<n>tb" memory suffix of the u-*
// families), e.g. "g4dn.xlarge" -> "g", "4" and "p6e-gb200.36xlarge" -> "p", "6".
func categoryGeneration(name string) (category, generation string, ok bool) {
	family, _, found := strings.Cut(name, ".")
	if !found {
		return "", "", false
	}
	i := 0
	for i < len(family) && family[i] >= 'a' && family[i] <= 'z' {
		i++
	}
	category, rest := family[:i], family[i:]
	if strings.HasPrefix(rest, "-") {
		if j := strings.Index(rest, "tb"); j > 1 && allDigits(rest[1:j]) {
			rest = rest[j+2:]
		}
	}
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if category == "" || j == 0 {
		return "", "", false
	}
	return category, rest[:j], true
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}
