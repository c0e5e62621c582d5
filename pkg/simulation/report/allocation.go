package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/samber/lo"
)

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
