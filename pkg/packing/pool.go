package packing

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"
)

// class is a set of pods with identical node requirements; Pack co-locates
// pods of one class only.
type class struct {
	key    string
	reqs   kscheduling.Requirements // template ∪ pod requirements
	shapes []*shape                 // pods grouped by identical requests
	shape  map[string]*shape        // by resourceKey
}

// shape is the pods of a class with identical requests: those being packed
// and the expected ones (Options.Expected).
type shape struct {
	requests corev1.ResourceList
	pods     []*corev1.Pod
	expected []*corev1.Pod
}

// maxExpectedPerClass bounds the expected pods planned with a class, so a
// long arrival window over a busy shape cannot make the packer buy a large
// fleet of room for one pending pod.
const maxExpectedPerClass = 64

// items lists the class's shapes as Pack items with their pods in hand-out
// order (the pods being packed first, so Pack's unplaced pods, the last of
// each item, are expected ones first); withExpected adds the expected pods.
func (c *class) items(withExpected bool) ([]Item, [][]*corev1.Pod) {
	var items []Item
	var pods [][]*corev1.Pod
	for _, sh := range c.shapes {
		list := sh.pods
		if withExpected {
			list = append(slices.Clone(sh.pods), sh.expected...)
		}
		if len(list) == 0 {
			continue
		}
		items = append(items, Item{Requests: sh.requests, Count: len(list)})
		pods = append(pods, list)
	}
	return items, pods
}

// expectedItems lists the expected pods alone as Pack items.
func (c *class) expectedItems() []Item {
	var items []Item
	for _, sh := range c.shapes {
		if len(sh.expected) > 0 {
			items = append(items, Item{Requests: sh.requests, Count: len(sh.expected)})
		}
	}
	return items
}

// option is a TypeOption with what Refine needs to turn it into a NodeClaim.
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
	pp.groups, pp.overhead = daemonOverheadGroups(pp.tmpl, pp.poolTypes, opts.DaemonSetPods)
	return pp, ""
}

// refinePool repacks the NodeClaims of one NodePool. It returns the new
// NodeClaims, or a reason to keep core's.
func refinePool(np *karpv1.NodePool, its []*cloudprovider.InstanceType, ncs []*scheduling.NodeClaim, opts Options, reservedUsed map[string]int) (packResult, string) {
	pp, reason := newPoolPacker(np, its, opts)
	if pp == nil {
		return packResult{}, reason
	}
	// Check that core's NodeClaims are what the packer would have built
	// from the template and pod requirements alone.
	coreCost := 0.0
	var pods []*corev1.Pod
	for _, nc := range ncs {
		expected := kscheduling.NewRequirements(pp.tmpl.Requirements.Values()...)
		for _, p := range nc.Pods {
			if err := pp.taints.ToleratesPod(p); err != nil {
				return packResult{}, "a pod does not tolerate the template taints"
			}
			expected.Add(podRequirements(p, opts.IgnorePreferences).Values()...)
		}
		if requirementsKey(expected, corev1.LabelHostname) != requirementsKey(nc.Requirements, corev1.LabelHostname) {
			return packResult{}, "requirements narrowed beyond template and pod requirements (topology, volumes or preferences)"
		}
		// The daemon overhead core added must be what this package computes
		// from Options.DaemonSetPods.
		implied := resources.Subtract(nc.Spec.Resources.Requests, resources.RequestsForPods(nc.Pods...))
		mine := minOverhead(pp.groups, nc.InstanceTypeOptions)
		if !resources.Fits(implied, mine) || !resources.Fits(mine, implied) {
			return packResult{}, "daemonset overhead differs from core's (Options.DaemonSetPods not those core used?)"
		}
		coreCost += NodeClaimPrice(nc)
		pods = append(pods, nc.Pods...)
	}
	res, reason := pp.pack(&ncs[0].NodeClaimTemplate, pods, opts.Expected[np.Name], reservedUsed)
	if reason != "" {
		return packResult{}, reason
	}
	if len(res.unplaced) > 0 {
		return packResult{}, fmt.Sprintf("packer could not place %d pods (fit, limits or reservations)", len(res.unplaced))
	}
	// With expected pods, core's NodeClaims are worth their cost plus the
	// expected pods' own capacity (their room on core's nodes is not
	// credited).
	if res.value >= coreCost+res.expectedAlone-priceEps {
		return packResult{}, fmt.Sprintf("core's packing is as cheap ($%.4f/h, packer $%.4f/h)", coreCost, res.cost)
	}
	return res, ""
}

// packResult is pack's answer.
type packResult struct {
	nodeClaims []*scheduling.NodeClaim
	cost       float64 // $/h of nodeClaims
	// value is the plan judged with the expected pods: per class, the cost
	// of every node planned for pending and expected pods together where
	// that plan was taken (its nodes holding only expected pods are not
	// launched but counted), else the cost of the pending pods' nodes plus
	// the expected pods' own packing. Without expected pods it is cost.
	value float64
	// expectedAlone is what the expected pods cost packed alone: another
	// plan for the same pending pods is worth its cost plus this.
	expectedAlone float64
	// roomFor counts the expected pods the NodeClaims keep room for, and
	// roomCost is what the NodeClaims of those plans cost beyond the plain
	// plans for the same classes.
	roomFor  int
	roomCost float64
	unplaced []*corev1.Pod
}

// pack packs pods (all tolerating the template and free of unmodelled
// constraints) into NodeClaims built from base, and returns them with their
// cost and the pods it could not place, or a reason it failed.
//
// Expected pods (Options.Expected) stand for the next arrivals: per class
// that has pods to pack, the expected pods of that class are planned with
// them, and that plan is taken when it costs less than the pending pods'
// plan plus the expected pods packed alone (buying the room now is cheaper
// than buying it later) and places every pending pod the plain plan places.
// Then its nodes keep their type (and launch options) with room for the
// expected pods, and nodes holding only expected pods are not built.
//
//nolint:gocyclo
func (pp *poolPacker) pack(base *scheduling.NodeClaimTemplate, pods, expected []*corev1.Pod, reservedUsed map[string]int) (packResult, string) {
	np, opts, tmpl, poolTypes, overhead, groups, taints := pp.np, pp.opts, pp.tmpl, pp.poolTypes, pp.overhead, pp.groups, pp.taints
	var res packResult
	classes := map[string]*class{}
	var classOrder []string
	shapeOf := func(c *class, p *corev1.Pod) *shape {
		req := resources.RequestsForPods(p)
		rk := resourceKey(req)
		sh, ok := c.shape[rk]
		if !ok {
			sh = &shape{requests: req}
			c.shape[rk] = sh
			c.shapes = append(c.shapes, sh)
		}
		return sh
	}
	classKey := func(p *corev1.Pod) (string, kscheduling.Requirements) {
		reqs := kscheduling.NewRequirements(tmpl.Requirements.Values()...)
		reqs.Add(podRequirements(p, opts.IgnorePreferences).Values()...)
		return requirementsKey(reqs), reqs
	}
	for _, p := range pods {
		key, reqs := classKey(p)
		c, ok := classes[key]
		if !ok {
			c = &class{key: key, reqs: reqs, shape: map[string]*shape{}}
			classes[key] = c
			classOrder = append(classOrder, key)
		}
		sh := shapeOf(c, p)
		sh.pods = append(sh.pods, p)
	}
	isExpected := map[*corev1.Pod]bool{}
	perClass := map[string]int{}
	for _, p := range expected {
		if podUnsupported(p) != "" || taints.ToleratesPod(p) != nil {
			continue
		}
		key, _ := classKey(p)
		c, ok := classes[key]
		if !ok || perClass[key] >= maxExpectedPerClass {
			continue
		}
		perClass[key]++
		isExpected[p] = true
		sh := shapeOf(c, p)
		sh.expected = append(sh.expected, p)
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

	for _, key := range classOrder {
		c := classes[key]
		var types []TypeOption
		var meta []option
		anyReserved := false
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
			}
		}
		popts := PackOptions{}
		if limited {
			popts.Budget = remaining
		}
		items, itemPods := c.items(false)
		plan := Pack(items, types, popts)
		plain := -1.0 // the plain plan's cost when the room plan is taken
		value := plan.Cost
		if perClass[key] > 0 {
			alone := Pack(c.expectedItems(), types, popts)
			res.expectedAlone += alone.Cost
			value += alone.Cost
			wItems, wPods := c.items(true)
			with := Pack(wItems, types, popts)
			if with.Cost < value-priceEps && pendingUnplaced(with, wPods, isExpected) <= plan.UnplacedCount() {
				plain = plan.Cost
				items, itemPods, plan, value = wItems, wPods, with, with.Cost
			}
		}
		res.value += value
		classCost := res.cost
		// Hand out the actual pods; the unplaced ones are the last of each item.
		next := make([]int, len(items))
		for i, u := range plan.Unplaced {
			res.unplaced = append(res.unplaced, lo.Reject(itemPods[i][len(itemPods[i])-u:], func(p *corev1.Pod, _ int) bool { return isExpected[p] })...)
		}
		for _, g := range plan.Nodes {
			chosen := meta[g.Option]
			price := types[g.Option].Price
			reqs := kscheduling.NewRequirements(c.reqs.Values()...)
			var launch []*cloudprovider.InstanceType
			if chosen.reserved {
				reqs[karpv1.CapacityTypeLabelKey] = kscheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeReserved)
				reqs.Add(kscheduling.NewRequirement(cloudprovider.ReservationIDLabel, corev1.NodeSelectorOpIn, chosen.reservation...))
				launch = []*cloudprovider.InstanceType{chosen.it}
			} else {
				if anyReserved {
					// Reserved capacity this plan did not budget for must not be
					// taken by this node.
					reqs.Add(kscheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpNotIn, karpv1.CapacityTypeReserved))
				}
				// Launch options hold the node's planned pods, expected ones
				// included, so the room planned for them stays.
				podReq := resources.Merge(requestsOf(items, g.Pods)...)
				launch = fallbackTypes(chosen.it, price, podReq, reqs, poolTypes, overhead, tolerance, maxOptions, limited)
			}
			for n := 0; n < g.Count; n++ {
				var pods, room []*corev1.Pod
				for i, k := range g.Pods {
					planned := itemPods[i][next[i] : next[i]+k]
					next[i] += k
					pods = append(pods, lo.Reject(planned, func(p *corev1.Pod, _ int) bool { return isExpected[p] })...)
					room = append(room, lo.Filter(planned, func(p *corev1.Pod, _ int) bool { return isExpected[p] })...)
				}
				if len(pods) == 0 {
					continue // room for expected pods only: not launched
				}
				res.roomFor += len(room)
				nc := newNodeClaim(base, np, reqs, launch, groups, pods)
				if reason := validate(nc, taints, overhead, opts.IgnorePreferences); reason != "" {
					return packResult{}, "validation of the repacked NodeClaims failed: " + reason
				}
				res.nodeClaims = append(res.nodeClaims, nc)
				res.cost += price
				if chosen.reserved {
					reservedLeft[chosen.it.Name]--
				}
				if limited {
					remaining = resources.Subtract(remaining, maxCapacity(launch))
				}
			}
		}
		if plain >= 0 {
			res.roomCost += res.cost - classCost - plain
		}
	}
	if limited {
		for name, q := range remaining {
			if q.Sign() < 0 && opts.Remaining[np.Name] != nil {
				if orig, ok := opts.Remaining[np.Name][name]; ok && orig.Sign() >= 0 {
					return packResult{}, fmt.Sprintf("repacked fleet would exceed the NodePool limit on %s", name)
				}
			}
		}
	}
	return res, ""
}

// pendingUnplaced counts the pods a plan leaves unplaced that are not
// expected ones (Pack's unplaced pods are the last of each item).
func pendingUnplaced(plan Plan, itemPods [][]*corev1.Pod, isExpected map[*corev1.Pod]bool) int {
	n := 0
	for i, u := range plan.Unplaced {
		n += lo.CountBy(itemPods[i][len(itemPods[i])-u:], func(p *corev1.Pod) bool { return !isExpected[p] })
	}
	return n
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

// fallbackTypes lists chosen and the other types that hold the node's pods
// (with their own daemon overhead), have a launchable offering under reqs
// and cost at most price × (1+tolerance), cheapest first with chosen first
// among equals. Under a limit, a fallback may not exceed chosen's capacity.
func fallbackTypes(chosen *cloudprovider.InstanceType, price float64, podReq corev1.ResourceList, reqs kscheduling.Requirements,
	poolTypes []*cloudprovider.InstanceType, overhead map[*cloudprovider.InstanceType]corev1.ResourceList, tolerance float64, maxOptions int, limited bool) []*cloudprovider.InstanceType {
	type cand struct {
		it    *cloudprovider.InstanceType
		price float64
	}
	cands := []cand{{chosen, price}}
	for _, it := range poolTypes {
		if it == chosen || it.Requirements.Intersects(reqs) != nil {
			continue
		}
		p, _, ok := launchPrice(it, reqs, false)
		if !ok || p < price-priceEps || p > price*(1+tolerance)+priceEps {
			continue
		}
		if !resources.Fits(resources.Merge(podReq, overhead[it]), it.Allocatable()) {
			continue
		}
		if limited && !resources.Fits(it.Capacity, chosen.Capacity) {
			continue
		}
		cands = append(cands, cand{it, p})
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
