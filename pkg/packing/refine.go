package packing

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// Options are the inputs Refine needs besides core's results. NodePools,
// InstanceTypes and DaemonSetPods must be the ones given to core's
// NewScheduler for the same loop.
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
}

const (
	DefaultFallbackTolerance = 0.10
	DefaultMaxOptions        = 20
)

// Decision explains what Refine did.
type Decision struct {
	PodsConsidered   int // pods on core's GPU NodeClaims
	PodsRepacked     int // of those, pods on NodeClaims Refine replaced
	NodeClaimsBefore int // all NodeClaims core proposed
	NodeClaimsAfter  int // all NodeClaims returned
	// CoreCost and PackedCost are the $/h of the GPU NodeClaims before and
	// after, each NodeClaim priced at its cheapest launchable offering.
	CoreCost, PackedCost float64
	Unchanged            []Unchanged
	// Direct marks a decision of the direct path (PackPods through
	// provisioning.PackPending): core's
	// scheduler did not run for these pods, so CoreCost is unknown (0).
	Direct   bool
	Duration time.Duration
}

// Unchanged records NodeClaims left exactly as core made them.
type Unchanged struct {
	NodePool   string
	NodeClaims int
	Pods       int
	Reason     string
}

func (d Decision) String() string {
	var b strings.Builder
	if d.Direct {
		fmt.Fprintf(&b, "direct: gpu pods %d (placed %d), nodeclaims %d, $/h %.4f in %s", d.PodsConsidered, d.PodsRepacked, d.NodeClaimsAfter, d.PackedCost, d.Duration)
		return b.String()
	}
	fmt.Fprintf(&b, "gpu pods %d (repacked %d), nodeclaims %d -> %d, $/h %.4f -> %.4f in %s",
		d.PodsConsidered, d.PodsRepacked, d.NodeClaimsBefore, d.NodeClaimsAfter, d.CoreCost, d.PackedCost, d.Duration)
	for _, u := range d.Unchanged {
		fmt.Fprintf(&b, "; unchanged %s: %d nodeclaims, %d pods: %s", u.NodePool, u.NodeClaims, u.Pods, u.Reason)
	}
	return b.String()
}

// Refine re-partitions the GPU NodeClaims core's scheduler proposed into
// the cheapest set of launches it can find, and returns new Results (the
// input is not modified; ExistingNodes and PodErrors are shared).
//
// Per NodePool, the pods of core's GPU NodeClaims whose constraints the
// packer models (node selector, required and preferred node affinity as
// core applied them, taints of the template, resource requests plus
// daemonset overhead) are packed again with Pack over the pool's instance
// types. NodeClaims that carry anything else (pod affinity or
// anti-affinity, topology spread, host ports, persistent volumes, DRA,
// minValues, a capacity reservation, requirements narrowed by topology) are
// left exactly as core made them, with the reason in Decision.Unchanged. A
// pool's repacked set replaces core's only when it is strictly cheaper.
func Refine(ctx context.Context, results *scheduling.Results, opts Options) (*scheduling.Results, Decision) {
	start := time.Now()
	var d Decision
	if results == nil {
		return nil, d
	}
	out := *results
	out.NewNodeClaims = nil
	d.NodeClaimsBefore = len(results.NewNodeClaims)

	byPool := map[string][]*scheduling.NodeClaim{}
	var poolOrder []string
	unchanged := map[string]map[string][]*scheduling.NodeClaim{} // pool -> reason -> ncs
	keep := func(nc *scheduling.NodeClaim, reason string) {
		if unchanged[nc.NodePoolName] == nil {
			unchanged[nc.NodePoolName] = map[string][]*scheduling.NodeClaim{}
		}
		unchanged[nc.NodePoolName][reason] = append(unchanged[nc.NodePoolName][reason], nc)
	}
	var gpuClaims []*scheduling.NodeClaim
	for _, nc := range results.NewNodeClaims {
		if !hasAccelerator(nc.Pods) {
			out.NewNodeClaims = append(out.NewNodeClaims, nc)
			continue
		}
		gpuClaims = append(gpuClaims, nc)
		d.PodsConsidered += len(nc.Pods)
		d.CoreCost += NodeClaimPrice(nc)
		if reason := claimUnsupported(nc, opts.IgnorePreferences); reason != "" {
			keep(nc, reason)
			continue
		}
		if _, ok := byPool[nc.NodePoolName]; !ok {
			poolOrder = append(poolOrder, nc.NodePoolName)
		}
		byPool[nc.NodePoolName] = append(byPool[nc.NodePoolName], nc)
	}

	pools := map[string]*karpv1.NodePool{}
	for _, np := range opts.NodePools {
		pools[np.Name] = np
	}
	reservedUsed := reservationsHeldBy(unchanged)
	for _, name := range poolOrder {
		if ctx.Err() != nil {
			for _, nc := range byPool[name] {
				keep(nc, "context done before packing")
			}
			continue
		}
		ncs := byPool[name]
		repacked, reason := refinePool(pools[name], opts.InstanceTypes[name], ncs, opts, reservedUsed)
		if reason != "" {
			for _, nc := range ncs {
				keep(nc, reason)
			}
			continue
		}
		for _, nc := range ncs {
			d.PodsRepacked += len(nc.Pods)
		}
		out.NewNodeClaims = append(out.NewNodeClaims, repacked...)
		for _, nc := range repacked {
			d.PackedCost += NodeClaimPrice(nc)
		}
	}
	// Unchanged GPU NodeClaims keep core's order among themselves.
	for _, nc := range gpuClaims {
		if isKept(unchanged, nc) {
			out.NewNodeClaims = append(out.NewNodeClaims, nc)
			d.PackedCost += NodeClaimPrice(nc)
		}
	}
	for _, pool := range sortedKeys(unchanged) {
		for _, reason := range sortedKeys(unchanged[pool]) {
			u := Unchanged{NodePool: pool, Reason: reason}
			for _, nc := range unchanged[pool][reason] {
				u.NodeClaims++
				u.Pods += len(nc.Pods)
			}
			d.Unchanged = append(d.Unchanged, u)
		}
	}
	d.NodeClaimsAfter = len(out.NewNodeClaims)
	d.Duration = time.Since(start)
	return &out, d
}

func isKept(unchanged map[string]map[string][]*scheduling.NodeClaim, nc *scheduling.NodeClaim) bool {
	for _, list := range unchanged[nc.NodePoolName] {
		for _, k := range list {
			if k == nc {
				return true
			}
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func hasAccelerator(pods []*corev1.Pod) bool {
	return lo.ContainsBy(pods, v1alpha1.UsesAccelerator)
}

// claimUnsupported names the first constraint on nc the packer does not
// model, or "".
func claimUnsupported(nc *scheduling.NodeClaim, ignorePreferences bool) string {
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

// reservationsHeldBy counts, per instance type name, the nodes that
// unchanged NodeClaims pinned to reservations may take.
func reservationsHeldBy(unchanged map[string]map[string][]*scheduling.NodeClaim) map[string]int {
	held := map[string]int{}
	for _, byReason := range unchanged {
		for _, list := range byReason {
			for _, nc := range list {
				if !nc.Requirements.Has(cloudprovider.ReservationIDLabel) {
					continue
				}
				for _, it := range nc.InstanceTypeOptions {
					held[it.Name]++
				}
			}
		}
	}
	return held
}
