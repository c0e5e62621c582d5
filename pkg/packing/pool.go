package packing

import (
	"fmt"
	"math"
	"sort"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/coremirror"
)

// class is a set of pods with identical node requirements; Pack co-locates
// pods of one class only.
type class struct {
	key  string
	reqs kscheduling.Requirements // template ∪ pod requirements
	// items: pods grouped by identical requests
	items    []Item
	itemPods [][]*corev1.Pod
	itemKey  map[string]int
}

// option is a TypeOption with what pack needs to turn it into a NodeClaim.
type option struct {
	it          *cloudprovider.InstanceType
	reserved    bool
	reservation []string // reservation IDs, for reserved options
}

// poolPacker packs pods for one NodePool: its template, its instance types
// as core pre-filters them, and their daemonset overhead.
type poolPacker struct {
	np        *karpv1.NodePool
	tmpl      *scheduling.NodeClaimTemplate
	taints    kscheduling.Taints
	poolTypes []*cloudprovider.InstanceType
	groups    []scheduling.DaemonOverheadGroup
	overhead  map[*cloudprovider.InstanceType]corev1.ResourceList
	opts      Options
}

func newPoolPacker(np *karpv1.NodePool, its []*cloudprovider.InstanceType, opts Options) (*poolPacker, string) {
	if np == nil {
		return nil, "NodePool not in Options.NodePools"
	}
	if len(its) == 0 {
		return nil, "no instance types in Options.InstanceTypes for the NodePool"
	}
	pp := &poolPacker{np: np, tmpl: scheduling.NewNodeClaimTemplate(np), opts: opts}
	if pp.tmpl.Requirements.HasMinValues() {
		return nil, "minValues on the NodePool requirements"
	}
	pp.taints = kscheduling.Taints(pp.tmpl.Spec.Taints)
	seen := map[string]bool{}
	for _, it := range its {
		if seen[it.Name] || it.Requirements.Intersects(pp.tmpl.Requirements) != nil || !it.Offerings.Available().HasCompatible(pp.tmpl.Requirements) {
			continue
		}
		seen[it.Name] = true
		pp.poolTypes = append(pp.poolTypes, it)
	}
	pp.groups, pp.overhead = coremirror.DaemonOverheadGroups(pp.tmpl, pp.poolTypes, opts.DaemonSetPods)
	return pp, ""
}

// replan is PackPods with Options.Proposed: it re-plans the pods of core's
// NodeClaims for one NodePool, or rejects them all with the reason to keep
// core's NodeClaims.
func replan(np *karpv1.NodePool, its []*cloudprovider.InstanceType, pods []*corev1.Pod, opts Options) PodsPlan {
	plan := PodsPlan{Rejected: map[*corev1.Pod]string{}}
	out, cost, reason := refinePool(np, its, pods, opts)
	if reason != "" {
		for _, p := range pods {
			plan.Rejected[p] = reason
		}
		return plan
	}
	plan.NodeClaims, plan.Cost = out, cost
	return plan
}

// refinePool repacks opts.Proposed, the NodeClaims of one NodePool, whose
// pods are pods. It returns the new NodeClaims and their cost, or a reason
// to keep core's.
func refinePool(np *karpv1.NodePool, its []*cloudprovider.InstanceType, pods []*corev1.Pod, opts Options) ([]*scheduling.NodeClaim, float64, string) {
	ncs := opts.Proposed
	onClaims := map[*corev1.Pod]bool{}
	for _, nc := range ncs {
		if reason := Unmodelled(nc); reason != "" {
			return nil, 0, reason
		}
		for _, p := range nc.Pods {
			onClaims[p] = true
		}
	}
	if len(onClaims) != len(pods) || !lo.EveryBy(pods, func(p *corev1.Pod) bool { return onClaims[p] }) {
		return nil, 0, "the pods are not those on Options.Proposed"
	}
	pp, reason := newPoolPacker(np, its, opts)
	if pp == nil {
		return nil, 0, reason
	}
	// Check that core's NodeClaims are what the packer would have built
	// from the template and pod requirements alone.
	coreCost := 0.0
	pods = nil // in core's order, as the NodeClaims hold them
	for _, nc := range ncs {
		expected := kscheduling.NewRequirements(pp.tmpl.Requirements.Values()...)
		for _, p := range nc.Pods {
			if err := pp.taints.ToleratesPod(p); err != nil {
				return nil, 0, "a pod does not tolerate the template taints"
			}
			expected.Add(podRequirements(p, opts.IgnorePreferences).Values()...)
		}
		if requirementsKey(expected, corev1.LabelHostname) != requirementsKey(nc.Requirements, corev1.LabelHostname) {
			return nil, 0, "requirements narrowed beyond template and pod requirements (topology, volumes or preferences)"
		}
		// The daemon overhead core added must be what this package computes
		// from Options.DaemonSetPods.
		implied := resources.Subtract(nc.Spec.Resources.Requests, resources.RequestsForPods(nc.Pods...))
		mine := minOverhead(pp.groups, nc.InstanceTypeOptions)
		if !resources.Fits(implied, mine) || !resources.Fits(mine, implied) {
			return nil, 0, "daemonset overhead differs from core's (Options.DaemonSetPods not those core used?)"
		}
		coreCost += NodeClaimPrice(nc)
		pods = append(pods, nc.Pods...)
	}
	out, packedCost, unplaced, reason := pp.pack(&ncs[0].NodeClaimTemplate, pods, opts.ReservationsHeld)
	if reason != "" {
		return nil, 0, reason
	}
	if len(unplaced) > 0 {
		return nil, 0, fmt.Sprintf("packer could not place %d pods (fit, limits or reservations)", len(unplaced))
	}
	if packedCost >= coreCost-priceEps {
		return nil, 0, fmt.Sprintf("core's packing is as cheap ($%.4f/h, packer $%.4f/h)", coreCost, packedCost)
	}
	return out, packedCost, ""
}

// pack packs pods (all tolerating the template and free of unmodelled
// constraints) into NodeClaims built from base. It returns the NodeClaims,
// their cost, the pods it could not place, or a reason it failed.
//
//nolint:gocyclo
func (pp *poolPacker) pack(base *scheduling.NodeClaimTemplate, pods []*corev1.Pod, reservedUsed map[string]int) ([]*scheduling.NodeClaim, float64, []*corev1.Pod, string) {
	np, opts, tmpl, poolTypes, overhead, groups, taints := pp.np, pp.opts, pp.tmpl, pp.poolTypes, pp.overhead, pp.groups, pp.taints
	classes := map[string]*class{}
	var classOrder []string
	for _, p := range pods {
		reqs := kscheduling.NewRequirements(tmpl.Requirements.Values()...)
		reqs.Add(podRequirements(p, opts.IgnorePreferences).Values()...)
		key := requirementsKey(reqs)
		c, ok := classes[key]
		if !ok {
			c = &class{key: key, reqs: reqs, itemKey: map[string]int{}}
			classes[key] = c
			classOrder = append(classOrder, key)
		}
		req := resources.RequestsForPods(p)
		rk := resourceKey(req)
		idx, ok := c.itemKey[rk]
		if !ok {
			idx = len(c.items)
			c.itemKey[rk] = idx
			c.items = append(c.items, Item{Requests: req})
			c.itemPods = append(c.itemPods, nil)
		}
		c.items[idx].Count++
		c.itemPods[idx] = append(c.itemPods[idx], p)
	}

	tolerance := opts.FallbackTolerance
	if tolerance == 0 {
		tolerance = DefaultFallbackTolerance
	}
	tolerance = math.Max(tolerance, 0)
	maxOptions := opts.MaxOptions
	if maxOptions <= 0 {
		maxOptions = DefaultMaxOptions
	}
	remaining, limited := opts.Remaining[np.Name]
	if limited {
		remaining = remaining.DeepCopy()
	}
	reservedLeft := map[string]int{}
	for _, it := range poolTypes {
		n, _, _ := reservedRoom(it, tmpl.Requirements)
		reservedLeft[it.Name] = max(n-reservedUsed[it.Name], 0)
	}

	var out []*scheduling.NodeClaim
	var unplaced []*corev1.Pod
	packedCost := 0.0
	for _, key := range classOrder {
		c := classes[key]
		var types []TypeOption
		var meta []option
		anyReserved := false
		// The class's types with a launchable offering that is not reserved,
		// at that price, in poolTypes' order (the fallbacks' candidates).
		var priced []pricedType
		for _, it := range poolTypes {
			if it.Requirements.Intersects(c.reqs) != nil {
				continue
			}
			alloc := resources.Subtract(it.Allocatable(), overhead[it])
			if n, ids, price := reservedRoom(it, c.reqs); n > 0 && reservedLeft[it.Name] > 0 {
				anyReserved = true
				types = append(types, TypeOption{Name: it.Name, Allocatable: alloc, Capacity: it.Capacity, Price: price, Limit: min(n, reservedLeft[it.Name])})
				meta = append(meta, option{it: it, reserved: true, reservation: ids})
			}
			if price, _, ok := launchPrice(it, c.reqs, false); ok {
				types = append(types, TypeOption{Name: it.Name, Allocatable: alloc, Capacity: it.Capacity, Price: price})
				meta = append(meta, option{it: it})
				priced = append(priced, pricedType{it, price})
			}
		}
		popts := PackOptions{}
		if limited {
			popts.Budget = remaining
		}
		plan := Pack(c.items, types, popts)
		// Hand out the actual pods; the unplaced ones are the last of each item.
		next := make([]int, len(c.items))
		for i, u := range plan.Unplaced {
			unplaced = append(unplaced, c.itemPods[i][len(c.itemPods[i])-u:]...)
		}
		for _, g := range plan.Nodes {
			chosen := meta[g.Option]
			price := types[g.Option].Price
			reqs := kscheduling.NewRequirements(c.reqs.Values()...)
			var launch []*cloudprovider.InstanceType
			if chosen.reserved {
				reservedLeft[chosen.it.Name] -= g.Count
				reqs[karpv1.CapacityTypeLabelKey] = kscheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeReserved)
				reqs.Add(kscheduling.NewRequirement(cloudprovider.ReservationIDLabel, corev1.NodeSelectorOpIn, chosen.reservation...))
				launch = []*cloudprovider.InstanceType{chosen.it}
			} else {
				if anyReserved {
					// Reserved capacity this plan did not budget for must not be
					// taken by this node.
					reqs.Add(kscheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpNotIn, karpv1.CapacityTypeReserved))
				}
				podReq := resources.Merge(requestsOf(c.items, g.Pods)...)
				launch = fallbackTypes(chosen.it, price, podReq, priced, overhead, tolerance, maxOptions, limited)
			}
			for n := 0; n < g.Count; n++ {
				var pods []*corev1.Pod
				for i, k := range g.Pods {
					pods = append(pods, c.itemPods[i][next[i]:next[i]+k]...)
					next[i] += k
				}
				nc := newNodeClaim(base, np, reqs, launch, groups, pods)
				if reason := validate(nc, taints, overhead, opts.IgnorePreferences); reason != "" {
					return nil, 0, nil, "validation of the repacked NodeClaims failed: " + reason
				}
				out = append(out, nc)
				packedCost += price
			}
			if limited {
				charge := maxCapacity(launch)
				for i := 0; i < g.Count; i++ {
					remaining = resources.Subtract(remaining, charge)
				}
			}
		}
	}
	if limited {
		for name, q := range remaining {
			if q.Sign() < 0 && opts.Remaining[np.Name] != nil {
				if orig, ok := opts.Remaining[np.Name][name]; ok && orig.Sign() >= 0 {
					return nil, 0, nil, fmt.Sprintf("repacked fleet would exceed the NodePool limit on %s", name)
				}
			}
		}
	}
	return out, packedCost, unplaced, ""
}

func requestsOf(items []Item, pods []int) []corev1.ResourceList {
	var out []corev1.ResourceList
	for i, k := range pods {
		for n := 0; n < k; n++ {
			out = append(out, items[i].Requests)
		}
	}
	return out
}

// pricedType is an instance type at its launch price (launchPrice).
type pricedType struct {
	it    *cloudprovider.InstanceType
	price float64
}

// fallbackTypes lists chosen and the other types that hold the node's pods
// (with their own daemon overhead) and cost at most price × (1+tolerance),
// cheapest first with chosen first among equals. The candidates are the
// class's types with a launchable offering that is not reserved, at its
// launch price under the class's requirements; the node's requirements add
// at most "not reserved" to those, which changes neither which types
// intersect them nor any such price. Under a limit, a fallback may not
// exceed chosen's capacity.
func fallbackTypes(chosen *cloudprovider.InstanceType, price float64, podReq corev1.ResourceList,
	candidates []pricedType, overhead map[*cloudprovider.InstanceType]corev1.ResourceList, tolerance float64, maxOptions int, limited bool) []*cloudprovider.InstanceType {
	cands := []pricedType{{chosen, price}}
	for _, c := range candidates {
		it, p := c.it, c.price
		if it == chosen || p < price-priceEps || p > price*(1+tolerance)+priceEps {
			continue
		}
		if !resources.Fits(resources.Merge(podReq, overhead[it]), it.Allocatable()) {
			continue
		}
		if limited && !resources.Fits(it.Capacity, chosen.Capacity) {
			continue
		}
		cands = append(cands, c)
	}
	sort.SliceStable(cands[1:], func(i, j int) bool {
		a, b := cands[1+i], cands[1+j]
		if a.price != b.price {
			return a.price < b.price
		}
		return a.it.Name < b.it.Name
	})
	out := make([]*cloudprovider.InstanceType, 0, min(len(cands), maxOptions))
	for _, c := range cands[:min(len(cands), maxOptions)] {
		out = append(out, c.it)
	}
	return out
}

func maxCapacity(its []*cloudprovider.InstanceType) corev1.ResourceList {
	var lists []corev1.ResourceList
	for _, it := range its {
		lists = append(lists, it.Capacity)
	}
	return resources.MaxResources(lists...)
}

// minOverhead is the daemon overhead core adds to a NodeClaim with these
// options: the minimum over the groups that still have one of them.
func minOverhead(groups []scheduling.DaemonOverheadGroup, its []*cloudprovider.InstanceType) corev1.ResourceList {
	in := map[*cloudprovider.InstanceType]bool{}
	for _, it := range its {
		in[it] = true
	}
	var out corev1.ResourceList
	found := false
	for _, g := range groups {
		has := false
		for _, it := range g.InstanceTypes {
			if in[it] {
				has = true
				break
			}
		}
		if !has {
			continue
		}
		if !found {
			out, found = g.DaemonOverhead, true
		} else {
			out = resources.MinResources(out, g.DaemonOverhead)
		}
	}
	if out == nil {
		out = corev1.ResourceList{}
	}
	return out
}

// newNodeClaim builds a scheduling.NodeClaim the way core's scheduler ends
// one: from a deep copy of the template core used, through the exported
// NewNodeClaim (so the daemon overhead groups are set) and
// FinalizeScheduling (which adds the minimum daemon overhead of the
// remaining types to Spec.Resources.Requests and drops the hostname
// placeholder). The topology and reservation manager stay nil: only
// CanAdd/Add use them, and they are never called after scheduling ended.
func newNodeClaim(base *scheduling.NodeClaimTemplate, np *karpv1.NodePool, reqs kscheduling.Requirements, its []*cloudprovider.InstanceType,
	groups []scheduling.DaemonOverheadGroup, pods []*corev1.Pod) *scheduling.NodeClaim {
	tmpl := &scheduling.NodeClaimTemplate{
		NodeClaim:         *base.NodeClaim.DeepCopy(),
		NodePoolName:      base.NodePoolName,
		NodePoolUUID:      base.NodePoolUUID,
		NodePoolWeight:    base.NodePoolWeight,
		IsStaticNodeClaim: base.IsStaticNodeClaim,
		Requirements:      kscheduling.NewRequirements(reqs.Values()...),
	}
	if tmpl.NodePoolUUID == "" {
		tmpl.NodePoolUUID = np.UID
	}
	// Only the daemon groups of the options matter to FinalizeScheduling.
	nc := scheduling.NewNodeClaim(tmpl, nil, groups, its, nil, scheduling.ReservedOfferingModeStrict, nil)
	nc.Pods = pods
	nc.Spec.Resources.Requests = resources.RequestsForPods(pods...)
	nc.FinalizeScheduling()
	return nc
}

// validate re-checks a built NodeClaim with core's own predicates.
func validate(nc *scheduling.NodeClaim, taints kscheduling.Taints, overhead map[*cloudprovider.InstanceType]corev1.ResourceList, ignorePreferences bool) string {
	if len(nc.InstanceTypeOptions) == 0 {
		return "no instance type"
	}
	podReq := resources.RequestsForPods(nc.Pods...)
	for _, it := range nc.InstanceTypeOptions {
		if err := it.Requirements.Intersects(nc.Requirements); err != nil {
			return fmt.Sprintf("%s incompatible: %v", it.Name, err)
		}
		if !it.Offerings.Launchable().HasCompatible(nc.Requirements) {
			return it.Name + " has no launchable offering"
		}
		if !resources.Fits(resources.Merge(podReq, overhead[it]), it.Allocatable()) {
			return it.Name + " does not hold the pods and daemon overhead"
		}
	}
	if !resources.Fits(podReq, nc.Spec.Resources.Requests) {
		return "requests below the pods' requests"
	}
	for _, p := range nc.Pods {
		if err := taints.ToleratesPod(p); err != nil {
			return err.Error()
		}
		if err := nc.Requirements.Compatible(podRequirements(p, ignorePreferences), kscheduling.AllowUndefinedWellKnownLabels); err != nil {
			return err.Error()
		}
	}
	return ""
}
