package packing

import (
	"math"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// Item is one pod shape of a packing problem: Count pods with identical
// Requests (as resources.RequestsForPods computes them, so "pods: 1"
// included). All items of one Pack call may share a node; pods that must not
// share one belong in separate calls.
type Item struct {
	Requests corev1.ResourceList
	Count    int
}

// TypeOption is one way to launch a node: an instance type at a price.
// The same instance type may appear twice, e.g. once for its reserved
// offerings (with a Limit) and once for on-demand/spot.
type TypeOption struct {
	Name string
	// Allocatable is what pods may use: the type's allocatable minus the
	// daemonset overhead on it.
	Allocatable corev1.ResourceList
	// Capacity is charged against PackOptions.Budget (NodePool limits
	// count instance capacity); nil charges nothing.
	Capacity corev1.ResourceList
	// Price is the hourly price of the offering that would be launched.
	Price float64
	// Limit caps how many nodes may use this option; 0 means no cap.
	Limit int
}

// PackOptions tune Pack.
type PackOptions struct {
	// Budget bounds the summed Capacity of all nodes, per resource (the
	// remaining NodePool limits); nil means no bound.
	Budget corev1.ResourceList
	// ValueResources are the resources whose quantity makes a pod "useful"
	// when ranking types by price per unit absorbed. Nil means
	// v1alpha1.AcceleratorResources.
	ValueResources []corev1.ResourceName
	// NoImprove skips the improvement passes (greedy only); for
	// comparisons.
	NoImprove bool
}

// Node is a group of identical nodes in a Plan.
type Node struct {
	Option int   // index into the types passed to Pack
	Pods   []int // pods per item index on each node
	Count  int   // how many such nodes
}

// Plan is Pack's answer.
type Plan struct {
	Nodes    []Node
	Cost     float64 // Σ price × count
	Unplaced []int   // pods per item that no option could take (fit, limits, budget)
}

// NodeCount is the number of nodes in the plan.
func (p Plan) NodeCount() int {
	n := 0
	for _, g := range p.Nodes {
		n += g.Count
	}
	return n
}

// UnplacedCount is the number of pods left out.
func (p Plan) UnplacedCount() int {
	n := 0
	for _, u := range p.Unplaced {
		n += u
	}
	return n
}

const priceEps = 1e-9

// Pack partitions the items into nodes of the given options, aiming at the
// lowest total price. It is a heuristic: a greedy pass that repeatedly opens
// the option with the lowest price per useful unit (GPU) it absorbs, filled
// largest-first, followed by improvement passes that replace each node by the
// cheapest option that holds its pods, merge pairs of nodes into one cheaper
// node, and split nodes into cheaper sets. Identical shapes and identical
// nodes are handled in bulk, so the work grows with the number of distinct
// shapes and node kinds, not with the number of pods.
//
// Pack never fails: pods no option can take (or that limits and budget
// exclude) are reported in Plan.Unplaced.
func Pack(items []Item, types []TypeOption, opts PackOptions) Plan {
	p := newProblem(items, types, opts)
	best := p.greedy(slices.Clone(p.count), false)
	if !opts.NoImprove {
		p.improve(&best)
		// A second start: every pod on the cheapest option that holds it
		// alone, then the same improvement (merging does the packing).
		alt := p.greedy(slices.Clone(p.count), true)
		p.improve(&alt)
		if alt.cost(p) < best.cost(p)-priceEps && alt.unplaced() <= best.unplaced() {
			best = alt
		}
	}
	return best.plan(p)
}

// problem holds the items and options as integer vectors (milli-units)
// over the resources that occur.
type problem struct {
	res     []corev1.ResourceName
	req     [][]int64 // item × resource
	count   []int
	val     []float64
	order   []int     // items, most valuable (largest) first
	alloc   [][]int64 // option × resource
	capv    [][]int64 // option × resource
	price   []float64
	limit   []int
	budget  []int64  // per resource; math.MaxInt64 = unbounded
	fits    [][]bool // item × option: one pod fits an empty node
	byPrice []int    // finite-price options, cheapest first
}

func milli(q resource.Quantity) int64 { return q.MilliValue() }

func newProblem(items []Item, types []TypeOption, opts PackOptions) *problem {
	p := &problem{}
	idx := map[corev1.ResourceName]int{}
	add := func(rl corev1.ResourceList) {
		for name := range rl {
			if _, ok := idx[name]; !ok {
				idx[name] = len(p.res)
				p.res = append(p.res, name)
			}
		}
	}
	for _, it := range items {
		add(it.Requests)
	}
	for _, t := range types {
		add(t.Allocatable)
		add(t.Capacity)
	}
	add(opts.Budget)
	vec := func(rl corev1.ResourceList) []int64 {
		v := make([]int64, len(p.res))
		for name, q := range rl {
			v[idx[name]] = milli(q)
		}
		return v
	}
	valueRes := opts.ValueResources
	if valueRes == nil {
		valueRes = v1alpha1.AcceleratorResources
	}
	for _, it := range items {
		p.req = append(p.req, vec(it.Requests))
		p.count = append(p.count, max(it.Count, 0))
		var v float64
		for _, r := range valueRes {
			if q, ok := it.Requests[r]; ok {
				v += q.AsApproximateFloat64()
			}
		}
		// Tie-breakers, so CPU-only pods rank by size too and, between
		// equal GPU counts, absorbing more CPU and memory scores better.
		cpu := it.Requests[corev1.ResourceCPU]
		mem := it.Requests[corev1.ResourceMemory]
		v += 1e-4*cpu.AsApproximateFloat64() + 1e-5*mem.AsApproximateFloat64()/(1<<30)
		p.val = append(p.val, v)
	}
	for _, t := range types {
		a := vec(t.Allocatable)
		for i := range a {
			a[i] = max(a[i], 0)
		}
		p.alloc = append(p.alloc, a)
		p.capv = append(p.capv, vec(t.Capacity))
		price := t.Price
		if math.IsNaN(price) || price < 0 {
			price = math.Inf(1)
		}
		p.price = append(p.price, price)
		p.limit = append(p.limit, t.Limit)
	}
	p.budget = make([]int64, len(p.res))
	for i := range p.budget {
		p.budget[i] = math.MaxInt64
	}
	for name, q := range opts.Budget {
		p.budget[idx[name]] = milli(q)
	}
	p.order = make([]int, len(items))
	for i := range p.order {
		p.order[i] = i
	}
	cpuIdx, hasCPU := idx[corev1.ResourceCPU]
	memIdx, hasMem := idx[corev1.ResourceMemory]
	sort.SliceStable(p.order, func(a, b int) bool {
		i, j := p.order[a], p.order[b]
		if p.val[i] != p.val[j] {
			return p.val[i] > p.val[j]
		}
		if hasCPU && p.req[i][cpuIdx] != p.req[j][cpuIdx] {
			return p.req[i][cpuIdx] > p.req[j][cpuIdx]
		}
		if hasMem && p.req[i][memIdx] != p.req[j][memIdx] {
			return p.req[i][memIdx] > p.req[j][memIdx]
		}
		return i < j
	})
	for t := range types {
		if !math.IsInf(p.price[t], 1) {
			p.byPrice = append(p.byPrice, t)
		}
	}
	sort.SliceStable(p.byPrice, func(a, b int) bool { return p.price[p.byPrice[a]] < p.price[p.byPrice[b]] })
	p.fits = make([][]bool, len(items))
	for i := range items {
		p.fits[i] = make([]bool, len(types))
		for t := range types {
			p.fits[i][t] = !math.IsInf(p.price[t], 1) && leq(p.req[i], p.alloc[t])
		}
	}
	return p
}

func leq(a, b []int64) bool {
	for r := range a {
		if a[r] > b[r] {
			return false
		}
	}
	return true
}

// state is a plan under construction.
type state struct {
	nodes    []Node
	left     []int   // unplaced pods per item
	used     []int   // nodes per option
	usedCap  []int64 // Σ capacity per resource
	hasLimit bool
}

func (s *state) cost(p *problem) float64 {
	c := 0.0
	for _, n := range s.nodes {
		if n.Count > 0 {
			c += p.price[n.Option] * float64(n.Count)
		}
	}
	return c
}

func (s *state) unplaced() int {
	n := 0
	for _, l := range s.left {
		n += l
	}
	return n
}

func (s *state) plan(p *problem) Plan {
	out := Plan{Unplaced: slices.Clone(s.left)}
	for _, n := range s.nodes {
		if n.Count > 0 {
			out.Nodes = append(out.Nodes, n)
		}
	}
	sort.SliceStable(out.Nodes, func(i, j int) bool { return p.price[out.Nodes[i].Option] < p.price[out.Nodes[j].Option] })
	out.Cost = s.cost(p)
	return out
}

// room is how many more nodes of option t the limits and budget allow.
func (p *problem) room(s *state, t int) int {
	n := math.MaxInt
	if p.limit[t] > 0 {
		n = p.limit[t] - s.used[t]
	}
	for r, b := range p.budget {
		if b == math.MaxInt64 || p.capv[t][r] <= 0 {
			continue
		}
		free := b - s.usedCap[r]
		if free < 0 {
			return 0
		}
		n = min(n, int(min(free/p.capv[t][r], math.MaxInt32)))
	}
	return max(n, 0)
}

// swapFits reports whether replacing k nodes of each option in out by k
// nodes of option in keeps limits and budget.
func (p *problem) swapFits(s *state, k int, in int, out ...int) bool {
	if p.limit[in] > 0 {
		n := s.used[in] + k
		for _, o := range out {
			if o == in {
				n -= k
			}
		}
		if n > p.limit[in] {
			return false
		}
	}
	for r, b := range p.budget {
		if b == math.MaxInt64 {
			continue
		}
		v := s.usedCap[r] + int64(k)*p.capv[in][r]
		for _, o := range out {
			v -= int64(k) * p.capv[o][r]
		}
		if v > b && int64(k)*p.capv[in][r] > 0 {
			return false
		}
	}
	return true
}

func (p *problem) use(s *state, t, k int) {
	s.used[t] += k
	for r := range s.usedCap {
		s.usedCap[r] += int64(k) * p.capv[t][r]
	}
}

// fill packs the left pods into one empty node of option t, most
// valuable first, and returns the pods taken per item and their value.
func (p *problem) fill(t int, left []int, taken []int) ([]int, float64) {
	free := slices.Clone(p.alloc[t])
	clear(taken)
	value := 0.0
	for _, i := range p.order {
		if left[i] == 0 || !p.fits[i][t] {
			continue
		}
		k := left[i]
		for r, q := range p.req[i] {
			if q > 0 {
				k = min(k, int(min(free[r]/q, math.MaxInt32)))
			}
		}
		if k <= 0 {
			continue
		}
		taken[i] = k
		for r, q := range p.req[i] {
			free[r] -= int64(k) * q
		}
		value += float64(k) * p.val[i]
	}
	return taken, value
}

// greedy opens nodes until every pod is placed or nothing fits. By default
// it opens the option with the lowest price per useful unit its fill
// absorbs; with single it puts the most valuable pod left alone on the
// cheapest option that holds it (the merge pass then does the packing).
func (p *problem) greedy(left []int, single bool) state {
	s := state{left: left, used: make([]int, len(p.price)), usedCap: make([]int64, len(p.res))}
	taken := make([]int, len(left))
	bestTaken := make([]int, len(left))
	for {
		best, bestScore, bestValue := -1, math.Inf(1), 0.0
		for t := range p.price {
			if math.IsInf(p.price[t], 1) || p.room(&s, t) == 0 {
				continue
			}
			var value float64
			if single {
				taken, value = p.fillFirst(t, left, taken)
			} else {
				taken, value = p.fill(t, left, taken)
			}
			if value <= 0 {
				continue
			}
			sc := p.price[t] / value
			if single {
				sc = p.price[t]
			}
			if sc < bestScore-priceEps || (math.Abs(sc-bestScore) <= priceEps && (value > bestValue || (value == bestValue && p.price[t] < p.price[best]))) {
				best, bestScore, bestValue = t, sc, value
				copy(bestTaken, taken)
			}
		}
		if best < 0 {
			return s
		}
		// Open as many identical nodes as the same fill allows: the pods
		// left are unchanged apart from what the fill takes.
		k := math.MaxInt
		for i, n := range bestTaken {
			if n > 0 {
				k = min(k, left[i]/n)
			}
		}
		k = min(k, p.room(&s, best))
		s.nodes = append(s.nodes, Node{Option: best, Pods: slices.Clone(bestTaken), Count: k})
		for i, n := range bestTaken {
			left[i] -= n * k
		}
		p.use(&s, best, k)
	}
}

// fillFirst puts only pods of the first (most valuable) item left that fits
// option t, as many as fit.
func (p *problem) fillFirst(t int, left []int, taken []int) ([]int, float64) {
	clear(taken)
	for _, i := range p.order {
		if left[i] == 0 || !p.fits[i][t] {
			continue
		}
		taken[i] = 1
		return taken, p.val[i]
	}
	return taken, 0
}

// load is the summed request of a node's pods.
func (p *problem) load(pods []int) []int64 {
	l := make([]int64, len(p.res))
	for i, n := range pods {
		if n == 0 {
			continue
		}
		for r, q := range p.req[i] {
			l[r] += int64(n) * q
		}
	}
	return l
}

// cheapestHolding returns the cheapest option, priced below maxPrice, whose
// allocatable holds load and that may replace k nodes of the options in out;
// -1 if none.
func (p *problem) cheapestHolding(s *state, load []int64, pods []int, maxPrice float64, k int, out ...int) int {
	for _, t := range p.byPrice {
		if p.price[t] >= maxPrice-priceEps {
			return -1
		}
		if leq(load, p.alloc[t]) && p.allFit(pods, t) && p.swapFits(s, k, t, out...) {
			return t
		}
	}
	return -1
}

func (p *problem) allFit(pods []int, t int) bool {
	for i, n := range pods {
		if n > 0 && !p.fits[i][t] {
			return false
		}
	}
	return true
}

// improve runs the improvement passes until none helps (bounded).
func (p *problem) improve(s *state) {
	for round := 0; round < 20; round++ {
		changed := p.downsize(s)
		changed = p.merge(s) || changed
		changed = p.split(s) || changed
		changed = p.downsize(s) || changed
		p.compact(s)
		if !changed {
			return
		}
	}
}

// downsize replaces each node by the cheapest option that holds its pods.
func (p *problem) downsize(s *state) bool {
	changed := false
	for gi := range s.nodes {
		g := &s.nodes[gi]
		if g.Count == 0 {
			continue
		}
		t := p.cheapestHolding(s, p.load(g.Pods), g.Pods, p.price[g.Option], g.Count, g.Option)
		if t >= 0 {
			p.use(s, g.Option, -g.Count)
			p.use(s, t, g.Count)
			g.Option = t
			changed = true
		}
	}
	return changed
}

// merge replaces pairs of nodes by one node when that is cheaper.
func (p *problem) merge(s *state) bool {
	changed := false
	for a := 0; a < len(s.nodes); a++ {
		for b := a; b < len(s.nodes); b++ {
			ga, gb := &s.nodes[a], &s.nodes[b]
			k := min(ga.Count, gb.Count)
			if a == b {
				k = ga.Count / 2
			}
			if k <= 0 {
				continue
			}
			pods := make([]int, len(ga.Pods))
			for i := range pods {
				pods[i] = ga.Pods[i] + gb.Pods[i]
			}
			before := p.price[ga.Option] + p.price[gb.Option]
			t := p.cheapestHolding(s, p.load(pods), pods, before, k, ga.Option, gb.Option)
			if t < 0 {
				continue
			}
			p.use(s, ga.Option, -k)
			p.use(s, gb.Option, -k)
			p.use(s, t, k)
			if a == b {
				ga.Count -= 2 * k
			} else {
				ga.Count -= k
				gb.Count -= k
			}
			s.nodes = append(s.nodes, Node{Option: t, Pods: pods, Count: k})
			changed = true
		}
	}
	return changed
}

// split re-packs each node's pods on their own; if that costs less than
// the node, the node is replaced by the re-packed set.
func (p *problem) split(s *state) bool {
	changed := false
	n := len(s.nodes)
	for gi := 0; gi < n; gi++ {
		g := s.nodes[gi]
		if g.Count == 0 {
			continue
		}
		// Free this group's budget while re-packing one copy of it.
		p.use(s, g.Option, -g.Count)
		sub := p.greedyWithin(s, g.Pods, g.Count)
		if sub == nil || sub.cost(p) >= p.price[g.Option]-priceEps {
			p.use(s, g.Option, g.Count)
			continue
		}
		s.nodes[gi].Count = 0
		for _, sn := range sub.nodes {
			if sn.Count == 0 {
				continue
			}
			sn.Count *= g.Count
			p.use(s, sn.Option, sn.Count)
			s.nodes = append(s.nodes, sn)
		}
		changed = true
	}
	return changed
}

// greedyWithin packs one copy of pods with the greedy and downsizing,
// checking that copies times the result fits limits and budget given s.
// It returns nil when the pods cannot all be placed.
func (p *problem) greedyWithin(s *state, pods []int, copies int) *state {
	sub := p.greedy(slices.Clone(pods), false)
	if sub.unplaced() > 0 {
		return nil
	}
	p.downsize(&sub)
	// Check limits and budget for copies × sub on top of s.
	need := make([]int, len(p.price))
	for _, n := range sub.nodes {
		need[n.Option] += n.Count * copies
	}
	for t, k := range need {
		if k > 0 && p.limit[t] > 0 && s.used[t]+k > p.limit[t] {
			return nil
		}
	}
	for r, b := range p.budget {
		if b == math.MaxInt64 {
			continue
		}
		v := s.usedCap[r]
		for t, k := range need {
			v += int64(k) * p.capv[t][r]
		}
		if v > b {
			return nil
		}
	}
	return &sub
}

// compact drops empty groups and joins groups with the same option and pods.
func (p *problem) compact(s *state) {
	out := s.nodes[:0]
	for _, n := range s.nodes {
		if n.Count <= 0 {
			continue
		}
		joined := false
		for i := range out {
			if out[i].Option == n.Option && slices.Equal(out[i].Pods, n.Pods) {
				out[i].Count += n.Count
				joined = true
				break
			}
		}
		if !joined {
			out = append(out, n)
		}
	}
	s.nodes = out
}
