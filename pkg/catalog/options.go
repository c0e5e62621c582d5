package catalog

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Reservation is a capacity reservation (ODCR or capacity block). Each one
// becomes a "reserved" offering in its zone.
type Reservation struct {
	ID           string
	InstanceType string
	Zone         string
	Count        int // instances that can still launch into it; <=0 keeps the offering but makes it unlaunchable
	// Price is the hourly USD price Karpenter should compare. When 0 the
	// on-demand price of the type divided by ReservedPriceDivisor is used, so
	// a reservation is preferred over everything else but reservations keep
	// the relative order of their types.
	Price float64
}

// ReservedPriceDivisor scales an on-demand price into the price of a reserved
// offering that states none. Reserved capacity is already paid for, so it
// should win every cost comparison, but a non-zero price keeps ordering
// between reserved types meaningful (the AWS provider uses the same idea).
const ReservedPriceDivisor = 10_000_000

// Defaults for Options fields left zero.
const (
	DefaultVMMemoryOverheadPercent = 0.075
	// DefaultEphemeralStorage is the root volume size Karpenter's AWS provider
	// assumes when a node class sets none. Local NVMe is not counted: it is
	// only ephemeral storage when the node bootstrap formats it (RAID0).
	DefaultEphemeralStorage = "20Gi"
)

// Options control how entries become instance types. They mirror what a
// GPUNodeClass and its backend know: where to offer, at what price, and the
// kubelet settings that change allocatable.
type Options struct {
	Region string   // e.g. "us-east-1": which on-demand price column to use by default
	Zones  []string // zones to offer in
	// CapacityTypes to offer: "on-demand" and/or "spot"; empty means both.
	// "reserved" offerings come from Reservations only, other values are ignored.
	CapacityTypes []string
	Prices        PriceSource // nil = on-demand prices from the entries for Region, no spot
	Reservations  []Reservation
	// Unavailable marks offerings the cloud recently refused; nil = all
	// available. Such offerings are kept with Available=false, because a
	// dropped offering looks like a vanished type to drift and consolidation.
	Unavailable func(instanceType, zone, capacityType string) bool
	// VMMemoryOverheadPercent is the share of memory the hypervisor and
	// firmware hide from the OS. 0 means DefaultVMMemoryOverheadPercent; a
	// negative value means none.
	VMMemoryOverheadPercent float64

	// Kubelet overrides (from the GPUNodeClass). Keys of KubeReserved and
	// SystemReserved are resource names ("cpu", "memory", "ephemeral-storage");
	// keys of EvictionHard are kubelet signals ("memory.available",
	// "nodefs.available") with a quantity or a percentage of capacity. A set
	// key replaces the computed value for that resource only.
	MaxPods                                    *int32
	KubeReserved, SystemReserved, EvictionHard map[string]string

	// TimeSlicingReplicas > 1 multiplies the advertised nvidia.com/gpu count,
	// as the NVIDIA device plugin does with time-slicing. Labels keep the
	// physical GPU count.
	TimeSlicingReplicas int32

	// EphemeralStorage is the node's ephemeral-storage capacity (root volume);
	// zero means DefaultEphemeralStorage.
	EphemeralStorage resource.Quantity
}

// Validate reports option values NewInstanceTypes would ignore. NewInstanceTypes
// itself does not fail on them (it keeps the computed values), so callers
// should validate node class input once and surface the error.
func (o *Options) Validate() error {
	var errs []error
	if o.VMMemoryOverheadPercent >= 1 {
		errs = append(errs, fmt.Errorf("vmMemoryOverheadPercent %v must be below 1", o.VMMemoryOverheadPercent))
	}
	if o.MaxPods != nil && *o.MaxPods <= 0 {
		errs = append(errs, fmt.Errorf("maxPods %d must be positive", *o.MaxPods))
	}
	for _, m := range []struct {
		name string
		kv   map[string]string
	}{{"kubeReserved", o.KubeReserved}, {"systemReserved", o.SystemReserved}} {
		for k, v := range m.kv {
			if q, err := resource.ParseQuantity(v); err != nil || q.Sign() < 0 {
				errs = append(errs, fmt.Errorf("%s[%s]: invalid quantity %q", m.name, k, v))
			}
		}
	}
	for k, v := range o.EvictionHard {
		if _, ok := evictionSignals[k]; !ok {
			errs = append(errs, fmt.Errorf("evictionHard[%s]: unsupported signal (want one of memory.available, nodefs.available)", k))
			continue
		}
		if _, ok := parseThreshold(v, resource.MustParse("1Gi")); !ok {
			errs = append(errs, fmt.Errorf("evictionHard[%s]: invalid threshold %q", k, v))
		}
	}
	for _, r := range o.Reservations {
		if r.ID == "" || r.InstanceType == "" || r.Zone == "" {
			errs = append(errs, fmt.Errorf("reservation %+v: id, instance type and zone are required", r))
		}
	}
	for _, ct := range o.CapacityTypes {
		if !offerableCapacityTypes[ct] {
			errs = append(errs, fmt.Errorf("capacity type %q is not one of on-demand, spot", ct))
		}
	}
	if strings.TrimSpace(o.Region) == "" && o.Prices == nil && len(o.Reservations) == 0 {
		errs = append(errs, errors.New("no region and no price source: no offering can be priced"))
	}
	return errors.Join(errs...)
}

func (o *Options) memoryOverheadPercent() float64 {
	switch p := o.VMMemoryOverheadPercent; {
	case p == 0 || p >= 1:
		return DefaultVMMemoryOverheadPercent
	case p < 0:
		return 0
	default:
		return p
	}
}
