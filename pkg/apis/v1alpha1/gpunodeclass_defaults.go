package v1alpha1

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Enum values of GPUNodeClassSpec fields.
const (
	AMIFamilyAL2023       = "AL2023"
	AMIFamilyBottlerocket = "Bottlerocket"
	AMIFamilyCustom       = "Custom"

	MIGStrategyNone   = "none"
	MIGStrategySingle = "single"
	MIGStrategyMixed  = "mixed"

	HTTPTokensRequired = "required"
	HTTPTokensOptional = "optional"

	VolumeTypeGP3 = "gp3"
)

// Defaults. The CRD applies the same values through API-server defaulting;
// the accessor methods below apply them again for objects that never went
// through the API server (unit tests, objects built in code).
const (
	DefaultAMIFamily           = AMIFamilyAL2023
	DefaultIdleAfter           = 10 * time.Minute
	DefaultStartupTimeout      = 15 * time.Minute
	DefaultGPUTaint            = true
	DefaultTimeSlicingReplicas = int32(1)
	DefaultMIGStrategy         = MIGStrategyNone
	DefaultProtection          = ProtectionBreakEven
	DefaultBreakEvenPercent    = int32(300)
	DefaultDrainByAttrition    = false
	DefaultRepack              = true
	// DefaultEvictionCostPerPod is the dollars added to every GPU pod's
	// eviction-cost estimate when gpu.disruption.evictionCostPerPod is
	// unset (designs/online.md, "Whole-trace sweep at Karpenter's cadence").
	DefaultEvictionCostPerPod      = 0.3
	DefaultHTTPTokens              = HTTPTokensRequired
	DefaultHTTPPutResponseHopLimit = int64(1)
	// DefaultRootVolumeType is the type of the root volume used when
	// blockDeviceMappings is empty (see DefaultRootVolumeSize).
	DefaultRootVolumeType = VolumeTypeGP3
)

// DefaultRootVolumeSize is the size of the encrypted gp3 root volume used when
// blockDeviceMappings is empty: GPU images, drivers and CUDA/model containers
// need far more than the usual 20Gi.
var DefaultRootVolumeSize = resource.MustParse("200Gi")

// AMIFamilyOrDefault returns spec.amiFamily, or AL2023 when empty.
func (in *GPUNodeClass) AMIFamilyOrDefault() string {
	if in.Spec.AMIFamily == "" {
		return DefaultAMIFamily
	}
	return in.Spec.AMIFamily
}

// IdleAfter returns how long a GPU node may go without a pod requesting an
// accelerator before it is removed. ok is false when idle removal is
// disabled ("Never"). Unset means the 10m default.
func (in *GPUNodeClass) IdleAfter() (d time.Duration, ok bool) {
	ia := in.Spec.GPU.IdleAfter
	if ia == nil {
		return DefaultIdleAfter, true
	}
	if ia.Duration == nil {
		return 0, false
	}
	return *ia.Duration, true
}

// StartupTimeout returns how long a registered node may take to advertise
// its GPUs before it is replaced. Unset or non-positive means the 15m default.
func (in *GPUNodeClass) StartupTimeout() time.Duration {
	st := in.Spec.GPU.StartupTimeout
	if st == nil || st.Duration <= 0 {
		return DefaultStartupTimeout
	}
	return st.Duration
}

// GPUTaintEnabled reports whether GPU nodes get the accelerator NoSchedule
// taint. Unset means true.
func (in *GPUNodeClass) GPUTaintEnabled() bool {
	if in.Spec.GPU.Taint == nil {
		return DefaultGPUTaint
	}
	return *in.Spec.GPU.Taint
}

// TimeSlicingReplicas returns how many schedulable GPUs each physical GPU is
// advertised as; 1 when time-slicing is not configured.
func (in *GPUNodeClass) TimeSlicingReplicas() int32 {
	ts := in.Spec.GPU.TimeSlicing
	if ts == nil || ts.Replicas < 1 {
		return DefaultTimeSlicingReplicas
	}
	return ts.Replicas
}

// MIGStrategy returns spec.gpu.migStrategy, or "none" when empty.
func (in *GPUNodeClass) MIGStrategy() string {
	if in.Spec.GPU.MIGStrategy == "" {
		return DefaultMIGStrategy
	}
	return in.Spec.GPU.MIGStrategy
}

// GPUWorkProtection returns how nodes running GPU pods are protected
// (ProtectionBreakEven, ProtectionAlways or ProtectionNever) and the
// break-even percentage. The deprecated protectRunningGPUPods wins when set
// (true: Always, false: Never); unset means BreakEven at
// DefaultBreakEvenPercent.
func (in *GPUNodeClass) GPUWorkProtection() (string, int32) {
	mode, percent := DefaultProtection, DefaultBreakEvenPercent
	d := in.Spec.GPU.Disruption
	if d == nil {
		return mode, percent
	}
	if d.BreakEvenPercent != nil {
		percent = *d.BreakEvenPercent
	}
	switch {
	case d.ProtectRunningGPUPods != nil && *d.ProtectRunningGPUPods:
		mode = ProtectionAlways
	case d.ProtectRunningGPUPods != nil:
		mode = ProtectionNever
	case d.Protection != nil && *d.Protection != "":
		mode = *d.Protection
	}
	return mode, percent
}

// DrainByAttrition says whether nodes the break-even rule finds
// reclaimable are soft-cordoned (default DefaultDrainByAttrition).
func (in *GPUNodeClass) DrainByAttrition() bool {
	if d := in.Spec.GPU.Disruption; d != nil && d.DrainByAttrition != nil {
		return *d.DrainByAttrition
	}
	return DefaultDrainByAttrition
}

// EvictionCostPerPod returns spec.gpu.disruption.evictionCostPerPod in
// dollars (DefaultEvictionCostPerPod when unset), or an error naming the
// field when it is not a non-negative decimal (the CRD refuses such a value
// at admission).
func (in *GPUNodeClass) EvictionCostPerPod() (float64, error) {
	d := in.Spec.GPU.Disruption
	if d == nil || d.EvictionCostPerPod == nil {
		return DefaultEvictionCostPerPod, nil
	}
	f, err := strconv.ParseFloat(*d.EvictionCostPerPod, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("GPUNodeClass %s: spec.gpu.disruption.evictionCostPerPod %q is not a non-negative number of dollars", in.Name, *d.EvictionCostPerPod)
	}
	return f, nil
}

// RepackEnabled says whether nodes released by the break-even rule may be
// split into the packer's cheaper set of new nodes (default DefaultRepack).
func (in *GPUNodeClass) RepackEnabled() bool {
	if d := in.Spec.GPU.Disruption; d != nil && d.Repack != nil {
		return *d.Repack
	}
	return DefaultRepack
}

// HTTPTokens returns spec.metadataOptions.httpTokens, or "required" when unset.
func (in *GPUNodeClass) HTTPTokens() string {
	mo := in.Spec.MetadataOptions
	if mo == nil || mo.HTTPTokens == nil || *mo.HTTPTokens == "" {
		return DefaultHTTPTokens
	}
	return *mo.HTTPTokens
}

// HTTPPutResponseHopLimit returns spec.metadataOptions.httpPutResponseHopLimit,
// or 1 when unset.
func (in *GPUNodeClass) HTTPPutResponseHopLimit() int64 {
	mo := in.Spec.MetadataOptions
	if mo == nil || mo.HTTPPutResponseHopLimit == nil {
		return DefaultHTTPPutResponseHopLimit
	}
	return *mo.HTTPPutResponseHopLimit
}
