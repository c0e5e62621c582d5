package packing

import (
	"fmt"
	"math"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// Options are PackPods' inputs besides the NodePool, its instance types
// and the pods. NodePools and InstanceTypes are for callers that walk the
// NodePools (provisioning.PackPending, provisioning.RefineResults);
// PackPods uses its np and its. NodePools, InstanceTypes and DaemonSetPods
// must be the ones given to core's NewScheduler for the same loop.
type Options struct {
	NodePools     []*karpv1.NodePool
	InstanceTypes map[string][]*cloudprovider.InstanceType // by NodePool name
	DaemonSetPods []*corev1.Pod
	// Remaining is the capacity each NodePool may still add before this
	// batch (its limits minus what exists); a pool without an entry has
	// no limits. Every returned NodeClaim is charged with the largest
	// capacity among its instance-type options, as core charges.
	Remaining map[string]corev1.ResourceList
	// IgnorePreferences must match core's --preference-policy=Ignore.
	IgnorePreferences bool
	// FallbackTolerance: a repacked NodeClaim keeps as launch options the
	// types that hold its pods and cost at most (1+FallbackTolerance) ×
	// the chosen type, cheapest first, so a capacity error falls back to a
	// near-equal price. 0 means DefaultFallbackTolerance; negative keeps
	// only types priced exactly as the chosen one.
	FallbackTolerance float64
	// MaxOptions caps the instance types per repacked NodeClaim; 0 means
	// DefaultMaxOptions.
	MaxOptions int
	// Proposed, when not empty, are the NodeClaims core's scheduler
	// proposed for the NodePool in this batch, each free of what the packer
	// does not model (Unmodelled returns ""), and the pods given to PackPods
	// are exactly their pods. PackPods then re-plans those pods, reusing
	// the template core used, and answers with NodeClaims only when every
	// pod is placed and the plan is strictly cheaper than Proposed; else
	// every pod is Rejected with the reason to keep core's NodeClaims.
	Proposed []*scheduling.NodeClaim
	// ReservationsHeld counts, per instance type name, the reserved nodes
	// that NodeClaims kept as core made them may take; a re-plan leaves
	// them out of the reservations' room.
	ReservationsHeld map[string]int
}

const (
	DefaultFallbackTolerance = 0.10
	DefaultMaxOptions        = 20
)

// Unmodelled names the first constraint on nc, a NodeClaim core's
// scheduler proposed, that the packer does not model, or "": a NodeClaim
// with one stays as core made it (it is not given in Options.Proposed).
func Unmodelled(nc *scheduling.NodeClaim) string {
	switch {
	case nc.IsStaticNodeClaim:
		return "static NodePool"
	case nc.Requirements.HasMinValues():
		return "minValues on the requirements"
	case nc.Requirements.Has(cloudprovider.ReservationIDLabel) && nc.Requirements.Get(cloudprovider.ReservationIDLabel).Operator() == corev1.NodeSelectorOpIn:
		return "pinned to a capacity reservation"
	case nc.Annotations[karpv1.DRADriversAnnotationKey] != "":
		return "DRA devices allocated"
	}
	for _, p := range nc.Pods {
		if r := podUnsupported(p); r != "" {
			return r
		}
	}
	return ""
}

func podUnsupported(p *corev1.Pod) string {
	if a := p.Spec.Affinity; a != nil {
		if a.PodAffinity != nil && (len(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 || len(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0) {
			return "pod affinity"
		}
		if a.PodAntiAffinity != nil && (len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0) {
			return "pod anti-affinity"
		}
	}
	if len(p.Spec.TopologySpreadConstraints) > 0 {
		return "topology spread constraints"
	}
	if len(kscheduling.GetHostPorts(p)) > 0 {
		return "host ports"
	}
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil || v.Ephemeral != nil {
			return "persistent volumes"
		}
	}
	if len(p.Spec.ResourceClaims) > 0 {
		return "DRA resource claims"
	}
	return ""
}

func podRequirements(p *corev1.Pod, ignorePreferences bool) kscheduling.Requirements {
	if ignorePreferences {
		return kscheduling.NewStrictPodRequirements(p)
	}
	return kscheduling.NewPodRequirements(p)
}

// requirementsKey is a canonical, complete rendering of requirements
// (Requirements.String truncates value lists and hides restricted keys).
func requirementsKey(r kscheduling.Requirements, skip ...string) string {
	nsr := r.NodeSelectorRequirements()
	parts := make([]string, 0, len(nsr))
	for _, q := range nsr {
		if containsString(skip, q.Key) {
			continue
		}
		vals := append([]string(nil), q.Values...)
		sort.Strings(vals)
		mv := ""
		if q.MinValues != nil {
			mv = fmt.Sprintf("#%d", *q.MinValues)
		}
		parts = append(parts, fmt.Sprintf("%s %s %s%s", q.Key, q.Operator, strings.Join(vals, ","), mv))
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func resourceKey(rl corev1.ResourceList) string {
	parts := make([]string, 0, len(rl))
	for name, q := range rl {
		parts = append(parts, string(name)+"="+q.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// NodeClaimPrice is the hourly price nc launches at: the offering the
// provider launches first (gpucp.CompareLaunch: reserved first, then
// cheapest) among the launchable offerings, compatible with its
// requirements, of its instance-type options. 0 when nothing is launchable.
func NodeClaimPrice(nc *scheduling.NodeClaim) float64 {
	var offerings cloudprovider.Offerings
	for _, it := range nc.InstanceTypeOptions {
		offerings = append(offerings, launchable(it, nc.Requirements, true)...)
	}
	if o := gpucp.FirstLaunch(offerings); o != nil {
		return o.Price
	}
	return 0
}

// launchPrice is the price of the offering the provider would launch for
// it under reqs, by gpucp.CompareLaunch (a reserved offering with room
// first, else the cheapest launchable one). withReserved=false ignores
// reserved offerings.
func launchPrice(it *cloudprovider.InstanceType, reqs kscheduling.Requirements, withReserved bool) (price float64, reserved, ok bool) {
	o := gpucp.FirstLaunch(launchable(it, reqs, withReserved))
	if o == nil {
		return 0, false, false
	}
	return o.Price, o.CapacityType() == karpv1.CapacityTypeReserved, true
}

// launchable is it's launchable offerings compatible with reqs, reserved
// ones only if withReserved.
func launchable(it *cloudprovider.InstanceType, reqs kscheduling.Requirements, withReserved bool) cloudprovider.Offerings {
	var out cloudprovider.Offerings
	for _, o := range it.Offerings {
		if !o.Launchable() || !reqs.IsCompatible(o.Requirements, kscheduling.AllowUndefinedWellKnownLabels) ||
			(!withReserved && o.CapacityType() == karpv1.CapacityTypeReserved) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// reservedRoom sums the reservation capacity of it's launchable reserved
// offerings compatible with reqs, and lists their reservation IDs.
func reservedRoom(it *cloudprovider.InstanceType, reqs kscheduling.Requirements) (int, []string, float64) {
	n, price := 0, math.Inf(1)
	var ids []string
	for _, o := range it.Offerings {
		if o.CapacityType() != karpv1.CapacityTypeReserved || !o.Launchable() || !reqs.IsCompatible(o.Requirements, kscheduling.AllowUndefinedWellKnownLabels) {
			continue
		}
		n += o.ReservationCapacity
		ids = append(ids, o.ReservationID())
		price = math.Min(price, o.Price)
	}
	return n, ids, price
}
