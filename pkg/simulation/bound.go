package simulation

import (
	"fmt"
	"math"
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

// LowerBoundCache memoises the fluid LP bound by the multiset of pod
// shapes alive; share one between the runs of a --compare (same workload,
// same catalog).
type LowerBoundCache struct {
	mu     sync.Mutex
	byKey  map[string]float64
	series []point
	usd    float64
	done   bool
	solves int
}

// NewLowerBoundCache returns an empty cache.
func NewLowerBoundCache() *LowerBoundCache { return &LowerBoundCache{byKey: map[string]float64{}} }

// lbShape is a class of pods the LP treats alike: same requests and same
// placement constraints.
type lbShape struct {
	key      string
	requests corev1.ResourceList
	pod      *corev1.Pod
}

// lowerBound integrates over the horizon the fluid LP bound of the pods
// alive (by the workload's times): at each change of the alive set, the
// cheapest fractional fleet of the NodePools' instance types that could
// hold them (pkg/packing/lowerbound). It returns the bound in USD and the
// bound's $/h as a step function.
func (e *engine) lowerBound() (float64, []point, error) {
	c := e.cfg.LowerBound
	if c == nil {
		c = NewLowerBoundCache()
		e.cfg.LowerBound = c
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return c.usd, c.series, nil
	}
	types, pools, err := e.boundTypes()
	if err != nil {
		return 0, nil, err
	}
	// Shapes.
	shapeIdx := map[string]int{}
	var shapes []lbShape
	podShape := make([]int, len(e.w.Pods))
	for i := range e.w.Pods {
		ps := &podState{spec: &e.w.Pods[i], name: e.w.Pods[i].Name}
		pod := e.podObject(ps)
		req := resources.RequestsForPods(pod)
		key := shapeKey(req, &e.w.Pods[i])
		j, ok := shapeIdx[key]
		if !ok {
			j = len(shapes)
			shapeIdx[key] = j
			shapes = append(shapes, lbShape{key: key, requests: req, pod: pod})
		}
		podShape[i] = j
	}
	compat := make([][]bool, len(shapes))
	for s := range shapes {
		compat[s] = make([]bool, len(types))
		podReqs := kscheduling.NewStrictPodRequirements(shapes[s].pod)
		for t, bt := range types {
			pool := pools[bt.pool]
			if err := kscheduling.Taints(pool.Spec.Taints).ToleratesPod(shapes[s].pod); err != nil {
				continue
			}
			if pool.Requirements.Compatible(podReqs, kscheduling.AllowUndefinedWellKnownLabels) != nil {
				continue
			}
			if bt.reqs.Intersects(podReqs) != nil {
				continue
			}
			compat[s][t] = true
		}
	}
	lbTypes := make([]lowerbound.Type, len(types))
	for i, t := range types {
		lbTypes[i] = lowerbound.Type{Name: fmt.Sprintf("%s/%s", t.pool, t.name), Allocatable: t.alloc, Price: t.price}
	}
	// Sweep the change points of the alive set.
	type change struct {
		t     time.Duration
		shape int
		delta int
	}
	end := e.horizon.Sub(Epoch)
	var changes []change
	for i := range e.w.Pods {
		p := &e.w.Pods[i]
		if p.Arrival >= end {
			continue
		}
		changes = append(changes, change{p.Arrival, podShape[i], +1})
		if p.Deletion != Forever && p.Deletion < end {
			changes = append(changes, change{p.Deletion, podShape[i], -1})
		}
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].t < changes[j].t })
	counts := make([]int, len(shapes))
	var series []point
	usd := 0.0
	for i := 0; i < len(changes); {
		t := changes[i].t
		for ; i < len(changes) && changes[i].t == t; i++ {
			counts[changes[i].shape] += changes[i].delta
		}
		next := end
		if i < len(changes) {
			next = changes[i].t
		}
		rate := c.bound(counts, shapes, lbTypes, compat)
		series = append(series, point{t, rate})
		usd += rate * (next - t).Hours()
	}
	c.usd, c.series, c.done = usd, series, true
	return usd, series, nil
}

func (c *LowerBoundCache) bound(counts []int, shapes []lbShape, types []lowerbound.Type, compat [][]bool) float64 {
	var key strings.Builder
	var idx []int
	for s, n := range counts {
		if n > 0 {
			fmt.Fprintf(&key, "%d:%d,", s, n)
			idx = append(idx, s)
		}
	}
	if len(idx) == 0 {
		return 0
	}
	if v, ok := c.byKey[key.String()]; ok {
		return v
	}
	lbShapes := make([]lowerbound.Shape, len(idx))
	for i, s := range idx {
		lbShapes[i] = lowerbound.Shape{Requests: shapes[s].requests, Count: counts[s]}
	}
	v, _ := lowerBound(lbShapes, types, func(s, t int) bool { return compat[idx[s]][t] })
	c.byKey[key.String()] = v
	c.solves++
	return v
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
