package simulation

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/awslabs/operatorpkg/status"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/lowerbound"
)

// LowerBoundCache holds the lower bound of one workload; share one between
// the runs of a --compare (same workload, same catalog and NodePools), so
// it is computed once.
type LowerBoundCache struct {
	once   sync.Once
	done   chan struct{}
	usd    float64
	series []point
	err    error
	// solves is the number of LP solves; exactTime the share of the
	// simulated time whose bound was solved exactly.
	solves    int
	exactTime float64
}

// NewLowerBoundCache returns an empty cache.
func NewLowerBoundCache() *LowerBoundCache { return &LowerBoundCache{done: make(chan struct{})} }

// lbShape is a class of pods the LP treats alike: same requests and same
// placement constraints.
type lbShape struct {
	key      string
	requests corev1.ResourceList
	pod      *corev1.Pod
}

// startLowerBound starts computing the lower bound in the background (it
// depends only on the workload, the catalog and the NodePools, not on what
// the simulation does), once per cache.
func (e *engine) startLowerBound() error {
	if e.cfg.LowerBound == nil {
		e.cfg.LowerBound = NewLowerBoundCache()
	}
	c := e.cfg.LowerBound
	var setupErr error
	c.once.Do(func() {
		types, pools, err := e.boundTypes()
		if err != nil {
			setupErr = err
			c.err = err
			close(c.done)
			return
		}
		problem := e.boundProblem(types, pools)
		go func() {
			defer close(c.done)
			c.usd, c.series, c.solves = problem.integrate()
			c.exactTime = problem.exactTime
		}()
	})
	return setupErr
}

// lowerBound waits for the background computation: the bound in USD and
// its $/h as a step function.
func (e *engine) lowerBound() (float64, []point, error) {
	c := e.cfg.LowerBound
	<-c.done
	return c.usd, c.series, c.err
}

// boundProblem is the data of the integration: the shapes, the types, which
// shape may use which type, and the changes of the alive set.
type boundProblem struct {
	shapes  []lbShape
	types   []lowerbound.Type
	compat  [][]bool
	changes []boundChange
	end     time.Duration
	// exactShare of the time is solved exactly (see boundfill.go);
	// exactTime is the share that was.
	exactShare, exactTime float64
}

type boundChange struct {
	t     time.Duration
	shape int
	delta int
}

func (e *engine) boundProblem(types []boundType, pools map[string]*scheduling.NodeClaimTemplate) *boundProblem {
	bp := &boundProblem{end: e.horizon.Sub(Epoch), exactShare: e.cfg.LowerBoundExactShare}
	if bp.exactShare <= 0 {
		bp.exactShare = DefaultLowerBoundExactShare
	}
	shapeIdx := map[string]int{}
	podShape := make([]int, len(e.w.Pods))
	for i := range e.w.Pods {
		ps := &podState{spec: &e.w.Pods[i], name: e.w.Pods[i].Name}
		pod := e.podObject(ps)
		req := resources.RequestsForPods(pod)
		key := shapeKey(req, &e.w.Pods[i])
		j, ok := shapeIdx[key]
		if !ok {
			j = len(bp.shapes)
			shapeIdx[key] = j
			bp.shapes = append(bp.shapes, lbShape{key: key, requests: req, pod: pod})
		}
		podShape[i] = j
	}
	bp.compat = make([][]bool, len(bp.shapes))
	for s := range bp.shapes {
		bp.compat[s] = make([]bool, len(types))
		podReqs := kscheduling.NewStrictPodRequirements(bp.shapes[s].pod)
		for t, bt := range types {
			pool := pools[bt.pool]
			if err := kscheduling.Taints(pool.Spec.Taints).ToleratesPod(bp.shapes[s].pod); err != nil {
				continue
			}
			if pool.Requirements.Compatible(podReqs, kscheduling.AllowUndefinedWellKnownLabels) != nil {
				continue
			}
			if bt.reqs.Intersects(podReqs) != nil {
				continue
			}
			bp.compat[s][t] = true
		}
	}
	bp.types = make([]lowerbound.Type, len(types))
	for i, t := range types {
		bp.types[i] = lowerbound.Type{Name: fmt.Sprintf("%s/%s", t.pool, t.name), Allocatable: t.alloc, Price: t.price}
	}
	for i := range e.w.Pods {
		p := &e.w.Pods[i]
		if p.Arrival >= bp.end {
			continue
		}
		bp.changes = append(bp.changes, boundChange{p.Arrival, podShape[i], +1})
		if p.Deletion != Forever && p.Deletion < bp.end {
			bp.changes = append(bp.changes, boundChange{p.Deletion, podShape[i], -1})
		}
	}
	sort.SliceStable(bp.changes, func(i, j int) bool { return bp.changes[i].t < bp.changes[j].t })
	return bp
}

// integrate sweeps the change points of the alive set: the bound of each
// distinct multiset of alive shapes is solved once (in parallel), then
// integrated over time.
func (bp *boundProblem) integrate() (float64, []point, int) {
	type step struct {
		t, next time.Duration
		key     string
	}
	counts := make([]int, len(bp.shapes))
	multisets := map[string][]int{}
	var steps []step
	for i := 0; i < len(bp.changes); {
		t := bp.changes[i].t
		for ; i < len(bp.changes) && bp.changes[i].t == t; i++ {
			counts[bp.changes[i].shape] += bp.changes[i].delta
		}
		next := bp.end
		if i < len(bp.changes) {
			next = bp.changes[i].t
		}
		var key strings.Builder
		for s, n := range counts {
			if n > 0 {
				fmt.Fprintf(&key, "%d:%d,", s, n)
			}
		}
		k := key.String()
		if _, ok := multisets[k]; !ok {
			multisets[k] = append([]int(nil), counts...)
		}
		steps = append(steps, step{t, next, k})
	}
	duration := map[string]time.Duration{}
	for _, s := range steps {
		duration[s.key] += s.next - s.t
	}
	exact := exactKeys(duration, bp.exactShare)
	keys := make([]string, 0, len(exact))
	for k := range exact {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values := make([]float64, len(keys))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(1, runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				values[i] = bp.bound(multisets[keys[i]])
			}
		}()
	}
	for i := range keys {
		work <- i
	}
	close(work)
	wg.Wait()
	byKey := make(map[string]float64, len(keys))
	for i, k := range keys {
		byKey[k] = values[i]
	}
	// The other moments: the best solve-free bound, from the nearest
	// solved moments before and after (boundfill.go).
	cb := bp.cheapBound()
	prev, next := make([]int, len(steps)), make([]int, len(steps))
	last := -1
	for i, s := range steps {
		if exact[s.key] {
			last = i
		}
		prev[i] = last
	}
	last = -1
	for i := len(steps) - 1; i >= 0; i-- {
		if exact[steps[i].key] {
			last = i
		}
		next[i] = last
	}
	var series []point
	usd := 0.0
	var exactTime, total time.Duration
	for i, s := range steps {
		rate, ok := byKey[s.key]
		if ok {
			exactTime += s.next - s.t
		} else {
			counts := multisets[s.key]
			rate = cb.perResource(counts)
			for _, a := range []int{prev[i], next[i]} {
				if a >= 0 {
					rate = math.Max(rate, cb.fromAnchor(byKey[steps[a].key], multisets[steps[a].key], counts))
				}
			}
		}
		if math.IsNaN(rate) || rate < 0 {
			// Never report a broken bound as a number (and JSON has no NaN).
			rate = 0
		}
		total += s.next - s.t
		series = append(series, point{s.t, rate})
		usd += rate * (s.next - s.t).Hours()
	}
	bp.exactTime = 1
	if total > 0 {
		bp.exactTime = float64(exactTime) / float64(total)
	}
	return usd, series, len(keys)
}

func (bp *boundProblem) bound(counts []int) float64 {
	var idx []int
	for s, n := range counts {
		if n > 0 {
			idx = append(idx, s)
		}
	}
	if len(idx) == 0 {
		return 0
	}
	lbShapes := make([]lowerbound.Shape, len(idx))
	for i, s := range idx {
		lbShapes[i] = lowerbound.Shape{Requests: bp.shapes[s].requests, Count: counts[s]}
	}
	return lowerBound(lbShapes, bp.types, func(s, t int) bool { return bp.compat[idx[s]][t] })
}

func shapeKey(req corev1.ResourceList, p *PodSpec) string {
	var b strings.Builder
	names := make([]string, 0, len(req))
	for n := range req {
		names = append(names, string(n))
	}
	sort.Strings(names)
	for _, n := range names {
		q := req[corev1.ResourceName(n)]
		fmt.Fprintf(&b, "%s=%s;", n, q.String())
	}
	fmt.Fprintf(&b, "|%v|%v|%v", p.NodeSelector, p.Requirements, p.Tolerations)
	return b.String()
}

type boundType struct {
	pool, name string
	reqs       kscheduling.Requirements
	alloc      corev1.ResourceList
	price      float64
}

// boundTypes lists, per ready NodePool, the instance types core would
// consider (the pool's requirements intersect the type's, with an
// available compatible offering), priced at their cheapest such offering.
func (e *engine) boundTypes() ([]boundType, map[string]*scheduling.NodeClaimTemplate, error) {
	nps := &karpv1.NodePoolList{}
	if err := e.kube.List(e.ctx, nps); err != nil {
		return nil, nil, err
	}
	sort.Slice(nps.Items, func(i, j int) bool { return nps.Items[i].Name < nps.Items[j].Name })
	pools := map[string]*scheduling.NodeClaimTemplate{}
	var out []boundType
	for i := range nps.Items {
		np := &nps.Items[i]
		if !np.StatusConditions().IsTrue(status.ConditionReady) || np.Spec.Replicas != nil {
			continue
		}
		tmpl := scheduling.NewNodeClaimTemplate(np)
		pools[np.Name] = tmpl
		its, err := e.cp.GetInstanceTypes(e.ctx, np)
		if err != nil {
			return nil, nil, err
		}
		for _, it := range its {
			if it.Requirements.Intersects(tmpl.Requirements) != nil {
				continue
			}
			price := math.Inf(1)
			for _, o := range it.Offerings.Available().Compatible(tmpl.Requirements) {
				price = math.Min(price, o.Price)
			}
			if math.IsInf(price, 1) {
				continue
			}
			reqs := kscheduling.NewRequirements(it.Requirements.Values()...)
			out = append(out, boundType{pool: np.Name, name: it.Name, reqs: reqs, alloc: it.Allocatable(), price: price})
		}
	}
	return out, pools, nil
}
