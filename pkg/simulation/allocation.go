package simulation

// Cost allocation: who spends the fleet's cost. Each instance's cost is
// split as OpenCost splits a node's: its hourly price is divided into CPU,
// memory and GPU parts in proportion to OpenCost's default relative prices
// of the node's allocatable resources ($0.031611 per vCPU-hour, $0.004237
// per GiB-hour, $0.95 per GPU-hour), and each part among the pods bound to
// the node by their requested share of it (the simulator has no usage, so
// requests are what is charged). What no pod requests — unrequested
// resources, and the time an instance is up with no pod on it (booting,
// draining, waiting to be consolidated) — is idle cost, attributed to the
// instance's NodePool. Pods + idle = the fleet cost, per instance and in
// total.

import (
	"math"
	"sort"
	"time"

	"github.com/awslabs/operatorpkg/status"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/fleet"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// OpenCost's default relative prices, used only to split a node's price
// between its resources (the split, not the total, depends on them).
const (
	unitCPUHour    = 0.031611 // per vCPU
	unitGiBHour    = 0.004237 // per GiB of memory
	unitGPUHour    = 0.95     // per GPU (or other accelerator)
	noLabelValue   = "<none>"
	allocationNote = "node cost split by requested share (OpenCost's method: CPU, memory and GPU parts of each node's price by OpenCost's default relative prices); unrequested capacity and empty time are idle cost, attributed to the NodePool"
)

// bindInterval is one pod object's stay on a node.
type bindInterval struct {
	ps         *podState
	node       string
	start, end time.Duration // end < 0 while bound
}

func (c *collector) bindStart(ps *podState) {
	if c.openBind == nil {
		c.openBind = map[*podState]int{}
	}
	if _, open := c.openBind[ps]; open {
		return
	}
	c.openBind[ps] = len(c.binds)
	c.binds = append(c.binds, bindInterval{ps: ps, node: ps.node, start: c.now(), end: -1})
}

func (c *collector) bindEnd(ps *podState) {
	if i, open := c.openBind[ps]; open {
		c.binds[i].end = c.now()
		delete(c.openBind, ps)
	}
}

// nodeParts is an instance's price split by resource ($/h per unit of
// allocatable).
type nodeParts struct {
	perCPU, perGiB, perGPU float64
}

func partsOf(price float64, alloc corev1.ResourceList) nodeParts {
	cpu := alloc.Cpu().AsApproximateFloat64()
	gib := alloc.Memory().AsApproximateFloat64() / (1 << 30)
	gpu := float64(v1alpha1.Accelerators(alloc))
	base := cpu*unitCPUHour + gib*unitGiBHour + gpu*unitGPUHour
	if base <= 0 {
		return nodeParts{}
	}
	scale := price / base
	return nodeParts{perCPU: unitCPUHour * scale, perGiB: unitGiBHour * scale, perGPU: unitGPUHour * scale}
}

// rate is what a pod's requests cost per hour on a node (capped at each
// resource's allocatable, so a pod never pays more than the node).
func (n nodeParts) rate(req, alloc corev1.ResourceList) float64 {
	cpu := math.Min(req.Cpu().AsApproximateFloat64(), alloc.Cpu().AsApproximateFloat64())
	gib := math.Min(req.Memory().AsApproximateFloat64(), alloc.Memory().AsApproximateFloat64()) / (1 << 30)
	gpu := math.Min(float64(v1alpha1.Accelerators(req)), float64(v1alpha1.Accelerators(alloc)))
	return cpu*n.perCPU + gib*n.perGiB + gpu*n.perGPU
}

// allocatable returns each instance type's allocatable resources as the
// cloud provider states them, per NodePool.
func (e *engine) allocatable() map[string]corev1.ResourceList {
	out := map[string]corev1.ResourceList{}
	nps := &karpv1.NodePoolList{}
	if err := e.kube.List(e.ctx, nps); err != nil {
		return out
	}
	sort.Slice(nps.Items, func(i, j int) bool { return nps.Items[i].Name < nps.Items[j].Name })
	for i := range nps.Items {
		if !nps.Items[i].StatusConditions().IsTrue(status.ConditionReady) {
			continue
		}
		its, err := e.cp.GetInstanceTypes(e.ctx, &nps.Items[i])
		if err != nil {
			continue
		}
		for _, it := range its {
			if _, ok := out[it.Name]; !ok {
				out[it.Name] = it.Allocatable()
			}
		}
	}
	return out
}

// costAllocation splits the fleet cost (instances over [0, end)) among the
// pods bound to each instance and the NodePools' idle capacity.
func (e *engine) costAllocation(recs []*fleet.Instance, end time.Duration) *report.CostAllocation {
	alloc := e.allocatable()
	type acc struct {
		pods              map[*podState]bool
		req, allocd, cost float64
	}
	byPod := map[*podState]float64{}
	idle := map[string]float64{}
	byNode := map[string][]bindInterval{}
	for _, b := range e.metrics.binds {
		byNode[b.node] = append(byNode[b.node], b)
	}
	ca := &report.CostAllocation{Method: allocationNote, GroupBy: e.cfg.GroupBy}
	for _, rec := range recs {
		start := rec.Start.Sub(Epoch)
		stop := end
		if !rec.End.IsZero() && rec.End.Sub(Epoch) < end {
			stop = rec.End.Sub(Epoch)
		}
		if stop <= start {
			continue
		}
		total := rec.Price * (stop - start).Hours()
		ca.TotalUSD += total
		a, known := alloc[rec.Type]
		parts := partsOf(rec.Price, a)
		charged := 0.0
		if known {
			for _, b := range byNode[rec.NodeClaim] {
				bs, be := max(b.start, start), stop
				if b.end >= 0 && b.end < be {
					be = b.end
				}
				if be <= bs {
					continue
				}
				c := parts.rate(b.ps.spec.Requests, a) * (be - bs).Hours()
				byPod[b.ps] += c
				charged += c
			}
		}
		if charged > total {
			// Requests above allocatable cannot be bound; guard rounding.
			for _, b := range byNode[rec.NodeClaim] {
				byPod[b.ps] *= total / charged
			}
			charged = total
		}
		ca.AllocatedUSD += charged
		pool := rec.NodePool
		if pool == "" {
			pool = "<unknown>"
		}
		idle[pool] += total - charged
	}
	ca.IdleUSD = ca.TotalUSD - ca.AllocatedUSD
	groups := map[string]map[string]*acc{"ns": {}, "label": {}, "group": {}}
	allocated := map[*podState]float64{}
	for _, b := range e.metrics.binds {
		be := end
		if b.end >= 0 && b.end < be {
			be = b.end
		}
		if be > b.start {
			allocated[b.ps] += float64(b.ps.spec.GPUs()) * (be - b.start).Hours()
		}
	}
	add := func(dim, key string, ps *podState) {
		a := groups[dim][key]
		if a == nil {
			a = &acc{pods: map[*podState]bool{}}
			groups[dim][key] = a
		}
		a.pods[ps] = true
		a.req += requestedGPUHours(ps.spec, end)
		a.allocd += allocated[ps]
		a.cost += byPod[ps]
	}
	for _, ps := range e.pods {
		if ps.spec.Arrival >= end {
			continue
		}
		ns := ps.spec.NamespaceOrDefault()
		add("ns", ns, ps)
		if e.cfg.GroupBy != "" {
			v := ps.spec.Labels[e.cfg.GroupBy]
			if v == "" {
				v = noLabelValue
			}
			add("label", v, ps)
		}
		g := ps.spec.Group
		if g == "" {
			g = "Pod/" + ps.spec.Name
		}
		add("group", ns+"/"+g, ps)
	}
	rows := func(m map[string]*acc) []report.AllocationRow {
		out := make([]report.AllocationRow, 0, len(m))
		for k, a := range m {
			out = append(out, report.AllocationRow{Key: k, Pods: len(a.pods), GPUHoursRequested: a.req, GPUHoursAllocated: a.allocd, CostUSD: a.cost, SharePercent: share(a.cost, ca.TotalUSD)})
		}
		sortRows(out)
		return out
	}
	ca.ByNamespace = rows(groups["ns"])
	if e.cfg.GroupBy != "" {
		ca.ByLabel = rows(groups["label"])
	}
	ca.ByPodGroup = rows(groups["group"])
	for pool, usd := range idle {
		ca.IdleByNodePool = append(ca.IdleByNodePool, report.AllocationRow{Key: pool, CostUSD: usd, SharePercent: share(usd, ca.TotalUSD)})
	}
	sortRows(ca.IdleByNodePool)
	return ca
}

func share(part, total float64) float64 {
	if total <= 0 {
		return 0
	}
	return 100 * part / total
}

func sortRows(rows []report.AllocationRow) {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].CostUSD != rows[j].CostUSD {
			return rows[i].CostUSD > rows[j].CostUSD
		}
		return rows[i].Key < rows[j].Key
	})
}

// requestedGPUHours is the pod's GPUs over its life in [0, end), as the
// workload states it.
func requestedGPUHours(p *workload.PodSpec, end time.Duration) float64 {
	stop := end
	if p.Deletion != workload.Forever && p.Deletion < end {
		stop = p.Deletion
	}
	if stop <= p.Arrival {
		return 0
	}
	return float64(p.GPUs()) * (stop - p.Arrival).Hours()
}
