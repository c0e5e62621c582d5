package simulation

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/awslabs/operatorpkg/status"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/lowerbound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// DefaultLowerBoundExactShare is the share of simulated time whose bound is
// solved exactly by default.
const DefaultLowerBoundExactShare = bound.DefaultExactShare

// startLowerBound starts computing the lower bound in the background (it
// depends only on the workload, the catalog and the NodePools, not on what
// the simulation does), once per cache.
func (e *engine) startLowerBound() error {
	if e.cfg.LowerBound == nil {
		e.cfg.LowerBound = bound.NewCache()
	}
	return e.cfg.LowerBound.Start(func() (*bound.Problem, error) {
		types, pools, err := e.boundTypes()
		if err != nil {
			return nil, err
		}
		return e.boundProblem(types, pools), nil
	})
}

// lowerBound waits for the background computation: the bound in USD and
// its $/h as a step function.
func (e *engine) lowerBound() (float64, []report.Point, error) {
	usd, steps, err := e.cfg.LowerBound.Wait()
	var series []report.Point
	for _, s := range steps {
		series = append(series, report.Point{T: s.T, V: s.V})
	}
	return usd, series, err
}

// boundProblem is the workload's bound problem (pkg/simulation/bound): its
// pod shapes, the types each may use, and the changes of the alive set.
func (e *engine) boundProblem(types []boundType, pools map[string]*scheduling.NodeClaimTemplate) *bound.Problem {
	bp := &bound.Problem{End: e.horizon.Sub(Epoch), ExactShare: e.cfg.LowerBoundExactShare, Solve: lowerBound}
	shapeIdx := map[string]int{}
	var shapePods []*corev1.Pod
	podShape := make([]int, len(e.w.Pods))
	for i := range e.w.Pods {
		ps := &podState{spec: &e.w.Pods[i], name: e.w.Pods[i].Name}
		pod := e.podObject(ps)
		req := resources.RequestsForPods(pod)
		key := shapeKey(req, &e.w.Pods[i])
		j, ok := shapeIdx[key]
		if !ok {
			j = len(bp.Shapes)
			shapeIdx[key] = j
			bp.Shapes = append(bp.Shapes, bound.Shape{Key: key, Requests: req})
			shapePods = append(shapePods, pod)
		}
		podShape[i] = j
	}
	bp.Compat = make([][]bool, len(bp.Shapes))
	for s := range bp.Shapes {
		bp.Compat[s] = make([]bool, len(types))
		podReqs := kscheduling.NewStrictPodRequirements(shapePods[s])
		for t, bt := range types {
			pool := pools[bt.pool]
			if err := kscheduling.Taints(pool.Spec.Taints).ToleratesPod(shapePods[s]); err != nil {
				continue
			}
			if pool.Requirements.Compatible(podReqs, kscheduling.AllowUndefinedWellKnownLabels) != nil {
				continue
			}
			if bt.reqs.Intersects(podReqs) != nil {
				continue
			}
			bp.Compat[s][t] = true
		}
	}
	bp.Types = make([]lowerbound.Type, len(types))
	for i, t := range types {
		bp.Types[i] = lowerbound.Type{Name: fmt.Sprintf("%s/%s", t.pool, t.name), Allocatable: t.alloc, Price: t.price}
	}
	for i := range e.w.Pods {
		p := &e.w.Pods[i]
		if p.Arrival >= bp.End {
			continue
		}
		bp.Changes = append(bp.Changes, bound.Change{T: p.Arrival, Shape: podShape[i], Delta: +1})
		if p.Deletion != workload.Forever && p.Deletion < bp.End {
			bp.Changes = append(bp.Changes, bound.Change{T: p.Deletion, Shape: podShape[i], Delta: -1})
		}
	}
	sort.SliceStable(bp.Changes, func(i, j int) bool { return bp.Changes[i].T < bp.Changes[j].T })
	return bp
}

func shapeKey(req corev1.ResourceList, p *workload.PodSpec) string {
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
