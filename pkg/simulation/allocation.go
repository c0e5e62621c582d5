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
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/awslabs/operatorpkg/status"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
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

// CostAllocation is the fleet cost by who spends it (JSON:
// cost_allocation).
type CostAllocation struct {
	Method string `json:"method"`
	// GroupBy is the pod label of ByLabel (--group-by).
	GroupBy      string  `json:"group_by,omitempty"`
	TotalUSD     float64 `json:"total_usd"`
	AllocatedUSD float64 `json:"allocated_usd"`
	IdleUSD      float64 `json:"idle_usd"`
	// Rows are sorted by cost, highest first.
	ByNamespace    []AllocationRow `json:"by_namespace"`
	ByLabel        []AllocationRow `json:"by_label,omitempty"`
	ByPodGroup     []AllocationRow `json:"by_pod_group"`
	IdleByNodePool []AllocationRow `json:"idle_by_nodepool"`
}

// AllocationRow is what one namespace, label value, pod group or NodePool
// (idle) spent.
type AllocationRow struct {
	Key               string  `json:"key"`
	Pods              int     `json:"pods"`
	GPUHoursRequested float64 `json:"gpu_hours_requested"`
	// GPUHoursAllocated is requested GPUs × time bound to a node.
	GPUHoursAllocated float64 `json:"gpu_hours_allocated"`
	CostUSD           float64 `json:"cost_usd"`
	// SharePercent of the fleet cost.
	SharePercent float64 `json:"share_percent"`
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
func (e *engine) costAllocation(recs []*instanceRecord, end time.Duration) *CostAllocation {
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
	ca := &CostAllocation{Method: allocationNote, GroupBy: e.cfg.GroupBy}
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
	rows := func(m map[string]*acc) []AllocationRow {
		out := make([]AllocationRow, 0, len(m))
		for k, a := range m {
			out = append(out, AllocationRow{Key: k, Pods: len(a.pods), GPUHoursRequested: a.req, GPUHoursAllocated: a.allocd, CostUSD: a.cost, SharePercent: share(a.cost, ca.TotalUSD)})
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
		ca.IdleByNodePool = append(ca.IdleByNodePool, AllocationRow{Key: pool, CostUSD: usd, SharePercent: share(usd, ca.TotalUSD)})
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

func sortRows(rows []AllocationRow) {
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

// AllocationTable is one dimension of the cost allocation side by side for
// every result: a header and rows of strings.
type AllocationTable struct {
	Title  string
	Header []string
	Rows   [][]string
}

// allocationTables renders the results' cost allocations: by namespace, by
// label, by pod group (the top 20; all are in the JSON and CSV) and idle by
// NodePool, one cost and share column per policy, and a total row that
// equals each policy's fleet cost.
func allocationTables(results ...*Result) []AllocationTable {
	if len(results) == 0 || results[0].CostAllocation == nil {
		return nil
	}
	dims := []struct {
		title string
		rows  func(*CostAllocation) []AllocationRow
		limit int
		idle  bool
	}{
		{"namespace", func(c *CostAllocation) []AllocationRow { return c.ByNamespace }, 0, false},
		{"label " + results[0].CostAllocation.GroupBy, func(c *CostAllocation) []AllocationRow { return c.ByLabel }, 0, false},
		{"pod group", func(c *CostAllocation) []AllocationRow { return c.ByPodGroup }, 20, false},
		{"idle by NodePool", func(c *CostAllocation) []AllocationRow { return c.IdleByNodePool }, 0, true},
	}
	var out []AllocationTable
	for _, d := range dims {
		if d.title == "label " && results[0].CostAllocation.GroupBy == "" || len(d.rows(results[0].CostAllocation)) == 0 {
			continue
		}
		header := []string{d.title}
		if !d.idle {
			header = append(header, "pods", "GPU-h requested")
		}
		for _, r := range results {
			header = append(header, r.Policy+" $", r.Policy+" %")
			if !d.idle {
				header = append(header, r.Policy+" GPU-h allocated")
			}
		}
		byKey := map[string][]*AllocationRow{}
		var keys []string
		for i, r := range results {
			if r.CostAllocation == nil {
				continue
			}
			for _, row := range d.rows(r.CostAllocation) {
				if byKey[row.Key] == nil {
					byKey[row.Key] = make([]*AllocationRow, len(results))
					keys = append(keys, row.Key) // first result's order: its cost, descending
				}
				row := row
				byKey[row.Key][i] = &row
			}
		}
		t := AllocationTable{Title: "By " + d.title, Header: header}
		if d.idle {
			t.Title = "Idle cost by NodePool"
		}
		for n, k := range keys {
			if d.limit > 0 && n == d.limit {
				t.Rows = append(t.Rows, []string{fmt.Sprintf("... %d more (see --json, --allocation-csv)", len(keys)-d.limit)})
				break
			}
			rs := byKey[k]
			first := lo.FromPtr(lo.FindOrElse(rs, nil, func(r *AllocationRow) bool { return r != nil }))
			line := []string{k}
			if !d.idle {
				line = append(line, fmt.Sprint(first.Pods), fmt.Sprintf("%.1f", first.GPUHoursRequested))
			}
			for _, r := range rs {
				r := lo.FromPtr(r)
				line = append(line, fmt.Sprintf("%.2f", r.CostUSD), fmt.Sprintf("%.1f", r.SharePercent))
				if !d.idle {
					line = append(line, fmt.Sprintf("%.1f", r.GPUHoursAllocated))
				}
			}
			t.Rows = append(t.Rows, line)
		}
		out = append(out, t)
	}
	// The whole: pods + idle = fleet.
	header := []string{"total"}
	for _, r := range results {
		header = append(header, r.Policy+" $")
	}
	total := AllocationTable{Title: "Total: pods + idle = fleet", Header: header}
	for _, name := range []string{"allocated to pods", "idle (NodePools)", "fleet cost"} {
		line := []string{name}
		for _, r := range results {
			c := r.CostAllocation
			line = append(line, fmt.Sprintf("%.2f", map[string]float64{"allocated to pods": c.AllocatedUSD, "idle (NodePools)": c.IdleUSD, "fleet cost": c.TotalUSD}[name]))
		}
		total.Rows = append(total.Rows, line)
	}
	return append(out, total)
}

// writeAllocation prints the cost allocation tables.
func writeAllocation(w io.Writer, results ...*Result) error {
	tables := allocationTables(results...)
	if len(tables) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nCost allocation: %s\n", results[0].CostAllocation.Method)
	for _, t := range tables {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.Join(t.Header, "\t")+"\t")
		for _, row := range t.Rows {
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// AllocationCSVHeader is the header of WriteAllocationCSV's output.
var AllocationCSVHeader = []string{"policy", "dimension", "key", "pods", "gpu_hours_requested", "gpu_hours_allocated", "cost_usd", "share_percent"}

// WriteAllocationCSV writes every row of the results' cost allocations:
// dimension namespace, label:<key>, pod_group or idle_nodepool.
func WriteAllocationCSV(w io.Writer, results ...*Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(AllocationCSVHeader); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
	for _, r := range results {
		c := r.CostAllocation
		if c == nil {
			return fmt.Errorf("%s: the result has no cost allocation", r.Policy)
		}
		for _, d := range []struct {
			name string
			rows []AllocationRow
		}{{"namespace", c.ByNamespace}, {"label:" + c.GroupBy, c.ByLabel}, {"pod_group", c.ByPodGroup}, {"idle_nodepool", c.IdleByNodePool}} {
			for _, row := range d.rows {
				if err := cw.Write([]string{r.Policy, d.name, row.Key, strconv.Itoa(row.Pods), f(row.GPUHoursRequested), f(row.GPUHoursAllocated), f(row.CostUSD), f(row.SharePercent)}); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
