package simulation

import (
	"fmt"
	"sort"
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/fleet"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// collector gathers what the report needs while the simulation runs.
type collector struct {
	e         *engine
	allocGPUs int64
	alloc     []report.Point // GPUs requested by bound pods
	waits     []float64

	evictions, gpuEvictions int
	// gpuEvictionsByCause splits gpuEvictions by why the pod's node was
	// going (evictionCause).
	gpuEvictionsByCause map[string]int
	// gpuPodsEvicted counts the workload's GPU pods evicted at least once.
	gpuPodsEvicted int
	// byClass is the eviction model's account, by workload class.
	byClass      map[evictioncost.Class]*classLoss
	errors       map[string]int
	errorSamples []string
	// binds are the pod objects' stays on nodes, for cost allocation
	// (allocation.go); open ones by pod.
	binds    []bindInterval
	openBind map[*podState]int
}

func newCollector(e *engine) *collector {
	return &collector{e: e, errors: map[string]int{}, byClass: map[evictioncost.Class]*classLoss{}, gpuEvictionsByCause: map[string]int{}}
}

func (c *collector) now() time.Duration { return c.e.clk.Now().Sub(Epoch) }

func (c *collector) podArrived(*podState) {}

func (c *collector) podBound(ps *podState) {
	if g := ps.spec.GPUs(); g > 0 {
		c.allocGPUs += g
		c.alloc = append(c.alloc, report.Point{T: c.now(), V: float64(c.allocGPUs)})
	}
	c.bindStart(ps)
}

func (c *collector) podRunning(ps *podState) {
	c.waits = append(c.waits, ps.running.Sub(ps.created).Seconds())
}

func (c *collector) podGone(ps *podState) {
	if g := ps.spec.GPUs(); g > 0 && !ps.bound.IsZero() {
		c.allocGPUs -= g
		c.alloc = append(c.alloc, report.Point{T: c.now(), V: float64(c.allocGPUs)})
	}
	c.bindEnd(ps)
}

func (c *collector) podEvicted(ps *podState, cause string) {
	c.evictions++
	if ps.spec.GPUs() > 0 {
		c.gpuEvictions++
		c.gpuEvictionsByCause[cause]++
		if ps.evictions == 1 {
			c.gpuPodsEvicted++
		}
	}
}

// classLoss accumulates what evictions of one workload class cost.
type classLoss struct {
	evictions, gpuEvictions int
	lostGPUHours, rerunUSD  float64
	// delays are the completion delays (seconds) of batch pods that were
	// evicted and finished within the horizon.
	delays []float64
}

func (c *collector) class(cl evictioncost.Class) *classLoss {
	if c.byClass[cl] == nil {
		c.byClass[cl] = &classLoss{}
	}
	return c.byClass[cl]
}

// evictionLoss records an eviction: lost work on gpus GPUs priced at
// usdPerGPUHour.
func (c *collector) evictionLoss(cl evictioncost.Class, lost time.Duration, gpus int64, usdPerGPUHour float64) {
	l := c.class(cl)
	l.evictions++
	if gpus > 0 {
		l.gpuEvictions++
	}
	gh := lost.Hours() * float64(gpus)
	l.lostGPUHours += gh
	l.rerunUSD += gh * usdPerGPUHour
}

// podDeparted records a batch pod's completion delay when an eviction
// moved its end.
func (c *collector) podDeparted(ps *podState) {
	if ps.evictions == 0 || ps.spec.Deletion == workload.Forever {
		return
	}
	if p := c.e.profileOf(ps); p.Class == evictioncost.Batch {
		c.class(p.Class).delays = append(c.class(p.Class).delays, (c.now() - ps.spec.Deletion).Seconds())
	}
}

func (c *collector) controllerError(name string, err error) {
	c.errors[name]++
	if len(c.errorSamples) < 20 {
		c.errorSamples = append(c.errorSamples, fmt.Sprintf("%s at %s: %v", name, c.now(), err))
	}
}

// integrate returns ∫ f dt (in value-hours) of a step function over
// [0, end), f being 0 before its first point.
func integrate(pts []report.Point, end time.Duration) float64 {
	total := 0.0
	for i, p := range pts {
		if p.T >= end {
			break
		}
		next := end
		if i+1 < len(pts) && pts[i+1].T < end {
			next = pts[i+1].T
		}
		total += p.V * (next - p.T).Hours()
	}
	return total
}

// percentile returns the p-th percentile (nearest rank) of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// fleetSeries turns instance records into step functions of the hourly
// cost and the GPUs paid for.
func fleetSeries(recs []*fleet.Instance, end time.Time) (cost, gpus []report.Point) {
	type delta struct {
		t     time.Duration
		price float64
		gpus  int64
	}
	var ds []delta
	for _, r := range recs {
		ds = append(ds, delta{r.Start.Sub(Epoch), r.Price, r.GPUs})
		if !r.End.IsZero() && r.End.Before(end) {
			ds = append(ds, delta{r.End.Sub(Epoch), -r.Price, -r.GPUs})
		}
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].t < ds[j].t })
	var c float64
	var g int64
	for i, d := range ds {
		c += d.price
		g += d.gpus
		if i+1 < len(ds) && ds[i+1].t == d.t {
			continue
		}
		if c < 1e-9 {
			c = 0
		}
		cost = append(cost, report.Point{T: d.t, V: c})
		gpus = append(gpus, report.Point{T: d.t, V: float64(g)})
	}
	return cost, gpus
}

// requestedSeries is the step function of GPUs requested by pods alive in
// the workload (whatever the simulation did with them).
func requestedSeries(w *workload.Workload) []report.Point {
	type delta struct {
		t time.Duration
		g int64
	}
	var ds []delta
	for i := range w.Pods {
		p := &w.Pods[i]
		if g := p.GPUs(); g > 0 {
			ds = append(ds, delta{p.Arrival, g})
			if p.Deletion != workload.Forever {
				ds = append(ds, delta{p.Deletion, -g})
			}
		}
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].t < ds[j].t })
	var out []report.Point
	var g int64
	for i, d := range ds {
		g += d.g
		if i+1 < len(ds) && ds[i+1].t == d.t {
			continue
		}
		out = append(out, report.Point{T: d.t, V: float64(g)})
	}
	return out
}
