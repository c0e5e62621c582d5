package catalog

import (
	"math"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

const mi = 1 << 20

// capacity is the node's full resource list. Karpenter subtracts Overhead
// from it to get allocatable, and counts pods against "pods", so pods must be
// present or nothing fits.
func capacity(e *Entry, o *Options, pods int64) corev1.ResourceList {
	// The hypervisor hides part of the memory; the kubelet reports less than
	// the instance's nominal size. Rounding up the hidden part matches what
	// the AWS provider does and errs toward under-promising.
	hidden := int64(math.Ceil(float64(e.MemoryMiB) * o.memoryOverheadPercent()))
	storage := o.EphemeralStorage
	if storage.IsZero() {
		storage = resource.MustParse(DefaultEphemeralStorage)
	}
	c := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(e.VCPU, resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity((e.MemoryMiB-hidden)*mi, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(pods, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: storage.DeepCopy(),
	}
	if e.AcceleratorResource != "" {
		n := e.AcceleratorCount
		if e.AcceleratorResource == v1alpha1.ResourceNVIDIAGPU && o.TimeSlicingReplicas > 1 {
			n *= int64(o.TimeSlicingReplicas)
		}
		c[corev1.ResourceName(e.AcceleratorResource)] = *resource.NewQuantity(n, resource.DecimalSI)
	}
	if e.EFACount > 0 {
		c[v1alpha1.ResourceEFA] = *resource.NewQuantity(e.EFACount, resource.DecimalSI)
	}
	return c
}

// pods is the max-pods value the kubelet will run with.
func pods(e *Entry, o *Options) int64 {
	if o.MaxPods != nil && *o.MaxPods > 0 {
		return int64(*o.MaxPods)
	}
	return e.MaxPods
}

// cpuReserveBands is the EKS AMI kube-reserved CPU formula: a share of each
// band of cores, in basis points (1/100 %), applied in millicores.
var cpuReserveBands = []struct{ fromCore, toCore, basisPoints int64 }{
	{0, 1, 600},            // 6% of the first core
	{1, 2, 100},            // 1% of the second
	{2, 4, 50},             // 0.5% of cores 3-4
	{4, math.MaxInt32, 25}, // 0.25% of the rest
}

func kubeReservedCPUMillis(vcpu int64) int64 {
	var m int64
	for _, b := range cpuReserveBands {
		if vcpu <= b.fromCore {
			break
		}
		cores := min(vcpu, b.toCore) - b.fromCore
		m += cores * 1000 * b.basisPoints / 10000
	}
	return m
}

// overhead is kube-reserved + system-reserved + eviction threshold. It must
// be non-nil: Karpenter dereferences it when computing allocatable.
func overhead(e *Entry, o *Options, pods int64, capacity corev1.ResourceList) *cloudprovider.InstanceTypeOverhead {
	kube := corev1.ResourceList{
		corev1.ResourceCPU: *resource.NewMilliQuantity(kubeReservedCPUMillis(e.VCPU), resource.DecimalSI),
		// EKS AMI: 11Mi per pod the kubelet may run plus 255Mi fixed.
		corev1.ResourceMemory: *resource.NewQuantity((11*pods+255)*mi, resource.BinarySI),
	}
	applyReserved(kube, o.KubeReserved)
	system := corev1.ResourceList{} // none by default, as on the EKS AMI
	applyReserved(system, o.SystemReserved)
	eviction := corev1.ResourceList{
		corev1.ResourceMemory: *resource.NewQuantity(100*mi, resource.BinarySI), // kubelet memory.available<100Mi
	}
	for signal, v := range o.EvictionHard {
		name, ok := evictionSignals[signal]
		if !ok {
			continue
		}
		if q, ok := parseThreshold(v, capacity[name]); ok {
			eviction[name] = q
		}
	}
	return &cloudprovider.InstanceTypeOverhead{KubeReserved: kube, SystemReserved: system, EvictionThreshold: eviction}
}

// applyReserved replaces computed values with valid user overrides; invalid
// ones are skipped (Options.Validate reports them).
func applyReserved(dst corev1.ResourceList, overrides map[string]string) {
	for k, v := range overrides {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() < 0 {
			continue
		}
		dst[corev1.ResourceName(k)] = q
	}
}

// evictionSignals maps the kubelet eviction signals that reduce allocatable
// to the resource they reserve.
var evictionSignals = map[string]corev1.ResourceName{
	"memory.available": corev1.ResourceMemory,
	"nodefs.available": corev1.ResourceEphemeralStorage,
}

// parseThreshold reads a kubelet threshold: a quantity or a percentage of
// capacity.
func parseThreshold(v string, capacity resource.Quantity) (resource.Quantity, bool) {
	v = strings.TrimSpace(v)
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p < 0 || p > 100 || math.IsNaN(p) {
			return resource.Quantity{}, false
		}
		format := capacity.Format
		if format == "" {
			format = resource.BinarySI
		}
		return *resource.NewQuantity(int64(math.Ceil(float64(capacity.Value())*p/100)), format), true
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() < 0 {
		return resource.Quantity{}, false
	}
	return q, true
}
