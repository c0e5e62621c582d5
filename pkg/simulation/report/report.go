// Package report is the simulator's report: the result of one replay
// (Result), the --compare ratios, and its renderings: the terminal table,
// JSON, HTML with SVG charts, and the time-series and cost-allocation CSVs.
// The engine (pkg/simulation) fills a Result; nothing here runs a
// simulation.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// Result is the outcome of one simulation run. Its JSON form is the
// --json report (one object per policy).
type Result struct {
	Policy string `json:"policy"`
	Input  string `json:"input"`
	Seed   int64  `json:"seed"`
	// SimulatedHours is the horizon: costs run from 0 to it.
	SimulatedHours float64 `json:"simulated_hours"`

	CostUSD       float64 `json:"cost_usd"`
	LowerBoundUSD float64 `json:"lower_bound_usd"`
	// LowerBoundSolves counts the LP solves behind it;
	// LowerBoundExactTimeShare is the share of time solved exactly (the
	// rest has solve-free bounds, still valid).
	LowerBoundSolves         int     `json:"lower_bound_solves"`
	LowerBoundExactTimeShare float64 `json:"lower_bound_exact_time_share"`
	// CostOverLowerBound is cost_usd / lower_bound_usd.
	CostOverLowerBound float64 `json:"cost_over_lower_bound"`

	GPUHoursPaid      float64 `json:"gpu_hours_paid"`
	GPUHoursRequested float64 `json:"gpu_hours_requested"`
	// GPUHoursAllocated counts GPUs of pods bound to nodes.
	GPUHoursAllocated float64 `json:"gpu_hours_allocated"`
	// IdleGPUHours is paid minus allocated.
	IdleGPUHours float64 `json:"idle_gpu_hours"`

	PodsTotal int `json:"pods_total"`
	// PodsAliveAtStart and PodsArrived split PodsTotal when the run
	// replays a window of its input (--start/--duration).
	PodsAliveAtStart int `json:"pods_alive_at_start"`
	PodsArrived      int `json:"pods_arrived"`
	// PodsExcluded were left out of the replay (--cpu-pods=exclude), listed
	// in ExcludedPods.
	PodsExcluded int                    `json:"pods_excluded"`
	ExcludedPods []workload.ExcludedPod `json:"excluded_pods,omitempty"`
	CPUPods      string                 `json:"cpu_pods,omitempty"`
	GPUPodsTotal int                    `json:"gpu_pods_total"`
	// PodsUnschedulable never ran, and Karpenter's scheduler reported why
	// (no instance type or NodePool can hold them).
	PodsUnschedulable int                `json:"pods_unschedulable"`
	UnschedulablePods []UnschedulablePod `json:"unschedulable_pods"`
	// PodsNeverStarted never ran although nothing said they could not:
	// they left before the capacity launched for them was ready.
	PodsNeverStarted int         `json:"pods_never_started"`
	PodWaitSeconds   Percentiles `json:"pod_wait_seconds"`

	Launches int `json:"launches"`
	// Disruptions counts nodes disrupted by core's disruption controller
	// (by reason in DisruptionsByReason); commands may cover several.
	Disruptions         int            `json:"disruptions"`
	DisruptionsByReason map[string]int `json:"disruptions_by_reason"`
	DisruptionCommands  int            `json:"disruption_commands"`
	PodEvictions        int            `json:"pod_evictions"`
	// NodeClaimDeletions counts NodeClaims deleted, by the controller that
	// deleted them (disruption.queue for core's disruption,
	// karpenter-gpu.idlegpu for idle-GPU removals, karpenter-gpu.repack for
	// the old nodes of repacking moves, ...); IdleGPURemovals is the
	// idle-GPU controller's.
	NodeClaimDeletions map[string]int `json:"nodeclaim_deletions_by_controller"`
	IdleGPURemovals    int            `json:"idle_gpu_removals"`
	// SpotInterruptions counts spot instances reclaimed
	// (--spot-interruptions-per-day): their NodeClaims are deleted at the
	// notice.
	SpotInterruptions int `json:"spot_interruptions"`
	// Prices says where offering prices came from (--prices).
	Prices          string `json:"prices,omitempty"`
	GPUPodEvictions int    `json:"gpu_pod_evictions"`
	// GPUPodEvictionsByCause splits GPUPodEvictions by why the pod's node
	// was going: repack, core's disruption reason (underutilized, empty,
	// drifted, ...), or other (idle-GPU removal, spot interruption, expiry).
	GPUPodEvictionsByCause map[string]int `json:"gpu_pod_evictions_by_cause"`
	// GPUPodsEvicted counts the workload's GPU pods evicted at least once
	// (GPUPodEvictions counts every eviction of each).
	GPUPodsEvicted int `json:"gpu_pods_evicted"`
	// Evictions is the eviction model's account by workload class (batch,
	// service): evictions, GPU-hours of work lost, what re-running it costs
	// (at the evicted node's GPU price; the fleet cost already includes the
	// re-run batch work), and batch pods' completion delay.
	Evictions map[string]EvictionStats `json:"evictions_by_class"`
	// LostGPUHours and RerunUSD sum Evictions over the classes.
	LostGPUHours float64 `json:"lost_gpu_hours"`
	RerunUSD     float64 `json:"rerun_usd"`

	InstanceHoursByType map[string]float64 `json:"instance_hours_by_type"`
	CostUSDByType       map[string]float64 `json:"cost_usd_by_type"`
	// CostUSDByCapacityType splits cost_usd into on-demand and spot.
	CostUSDByCapacityType map[string]float64 `json:"cost_usd_by_capacity_type"`
	// Instances are every instance launched, in launch order.
	Instances []InstanceRun `json:"instances,omitempty"`
	// FinalFleet counts instances running at the end of the horizon.
	FinalFleet         map[string]int `json:"final_fleet"`
	FinalFleetUSDPerHr float64        `json:"final_fleet_usd_per_hour"`

	ProvisioningRuns int          `json:"provisioning_runs"`
	Packer           *PackerStats `json:"packer,omitempty"`

	GPUMapping       map[string]string `json:"gpu_mapping,omitempty"`
	GPUModelsIgnored bool              `json:"gpu_models_ignored"`

	Reconciles       int            `json:"reconciles"`
	ControllerErrors map[string]int `json:"controller_errors,omitempty"`
	ErrorSamples     []string       `json:"error_samples,omitempty"`
	Controllers      []string       `json:"controllers"`
	Settings         Settings       `json:"settings"`

	WallSeconds float64 `json:"wall_seconds"`
	// Cached is set when this (stock) result was read from the simulator's
	// cache instead of replayed; WallSeconds is then the original run's.
	Cached bool `json:"cached,omitempty"`
	// Profile is where the wall-clock time went, by controller or phase
	// (seconds, and calls).
	Profile map[string]PhaseTime `json:"profile"`

	// Series are the run's time series (step functions): fleet $/h, GPUs
	// paid, allocated and requested, and the lower bound's $/h.
	Series *Series `json:"time_series,omitempty"`

	// CostAllocation splits cost_usd by namespace, label (--group-by) and
	// pod group, with idle cost by NodePool (allocation.go).
	CostAllocation *CostAllocation `json:"cost_allocation,omitempty"`
	// Notes say what of the input the simulation left out or approximated.
	Notes []string `json:"notes,omitempty"`
	// Gangs is the account of all-or-nothing pod groups (gang.go), when
	// the input has any.
	Gangs *GangReport `json:"gangs,omitempty"`
}

// InstanceRun is one instance of the fleet: its offering and when it ran
// (hours since the start; EndHours is the horizon's when it still runs).
type InstanceRun struct {
	Type         string  `json:"type"`
	CapacityType string  `json:"capacity_type"`
	Zone         string  `json:"zone"`
	NodePool     string  `json:"nodepool"`
	USDPerHour   float64 `json:"usd_per_hour"`
	GPUs         int64   `json:"gpus"`
	StartHours   float64 `json:"start_hours"`
	EndHours     float64 `json:"end_hours"`
	Running      bool    `json:"running_at_end"`
}

// EvictionStats is what evictions of one workload class cost.
type EvictionStats struct {
	Evictions    int     `json:"evictions"`
	GPUEvictions int     `json:"gpu_pod_evictions"`
	LostGPUHours float64 `json:"lost_gpu_hours"`
	RerunUSD     float64 `json:"rerun_usd"`
	// CompletionDelaySeconds: extra time to completion of evicted batch
	// pods that finished within the horizon (p50, p95).
	CompletionDelaySeconds *Percentiles `json:"completion_delay_seconds,omitempty"`
}

// Settings echo the simulation's timing parameters.
type Settings struct {
	LaunchLatencySeconds     float64 `json:"launch_latency_seconds"`
	RegistrationDelaySeconds float64 `json:"registration_delay_seconds"`
	PodStartDelaySeconds     float64 `json:"pod_start_delay_seconds"`
	BatchIdleSeconds         float64 `json:"batch_idle_seconds"`
	BatchMaxSeconds          float64 `json:"batch_max_seconds"`
	// DisruptionIntervalSeconds is 10 (core's polling) unless
	// --disruption-interval approximated it.
	DisruptionIntervalSeconds float64  `json:"disruption_interval_seconds"`
	NodePools                 []string `json:"nodepools"`
	// SchedulerProfile is the kube-scheduler profile the binder scored
	// nodes with (default or bin-packing).
	SchedulerProfile string `json:"scheduler_profile"`
	// GPUDisruption is the GPUNodeClass's effective voluntary-disruption
	// settings, defaults applied (karpenter-gpu policy only).
	GPUDisruption *GPUDisruption `json:"gpu_disruption,omitempty"`
}

// GPUDisruption echoes the settings of karpenter-gpu's break-even rule a
// replay ran with.
type GPUDisruption struct {
	Protection         string  `json:"protection"`
	BreakEvenPercent   int32   `json:"break_even_percent"`
	EvictionCostPerPod float64 `json:"eviction_cost_per_pod_usd"`
	Repack             bool    `json:"repack"`
	DrainByAttrition   bool    `json:"drain_by_attrition"`
}

// PhaseTime is the wall-clock time spent in one phase.
type PhaseTime struct {
	Seconds float64 `json:"seconds"`
	Calls   int     `json:"calls"`
}

// UnschedulablePod is a pod that never ran, with Karpenter's reason.
type UnschedulablePod struct {
	Name   string `json:"name"`
	Origin string `json:"origin"`
	Reason string `json:"reason"`
}

// Percentiles of a distribution.
type Percentiles struct {
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Count int     `json:"count"`
}

// PackerStats sums the GPU packer's decisions (karpenter-gpu policy).
type PackerStats struct {
	Runs             int            `json:"runs"`
	PodsConsidered   int            `json:"pods_considered"`
	PodsRepacked     int            `json:"pods_repacked"`
	NodeClaimsBefore int            `json:"nodeclaims_before"`
	NodeClaimsAfter  int            `json:"nodeclaims_after"`
	CoreUSDPerHour   float64        `json:"core_usd_per_hour"`
	PackedUSDPerHour float64        `json:"packed_usd_per_hour"`
	Unchanged        map[string]int `json:"unchanged_pods_by_reason,omitempty"`
}

// Series are step functions of simulated time: each point is [hours since
// the start, value], the value holding until the next point.
type Series struct {
	Cost          []Point `json:"fleet_usd_per_hour"`
	GPUsPaid      []Point `json:"gpus_paid"`
	GPUsAllocated []Point `json:"gpus_allocated"`
	GPUsRequested []Point `json:"gpus_requested"`
	LowerBound    []Point `json:"lower_bound_usd_per_hour"`
}

// Comparison is the --compare report: both policies and their ratios.
type Comparison struct {
	Results []*Result `json:"results"`
	// Ratios are karpenter-gpu ÷ stock for the main figures.
	Ratios map[string]float64 `json:"ratios"`
}

// Compare computes the ratios of a karpenter-gpu and a stock result.
func Compare(gpu, stock *Result) *Comparison {
	ratio := func(a, b float64) float64 {
		if b == 0 {
			if a == 0 {
				return 1
			}
			return math.Inf(1)
		}
		return a / b
	}
	return &Comparison{
		Results: []*Result{gpu, stock},
		Ratios: map[string]float64{
			"cost_usd":                    ratio(gpu.CostUSD, stock.CostUSD),
			"gpu_hours_paid":              ratio(gpu.GPUHoursPaid, stock.GPUHoursPaid),
			"idle_gpu_hours":              ratio(gpu.IdleGPUHours, stock.IdleGPUHours),
			"cost_over_lower_bound_gpu":   gpu.CostOverLowerBound,
			"cost_over_lower_bound_stock": stock.CostOverLowerBound,
			"pod_wait_p95":                ratio(gpu.PodWaitSeconds.P95, stock.PodWaitSeconds.P95),
			"launches":                    ratio(float64(gpu.Launches), float64(stock.Launches)),
			"gpu_pod_evictions":           ratio(float64(gpu.GPUPodEvictions), float64(stock.GPUPodEvictions)),
			"lost_gpu_hours":              ratio(gpu.LostGPUHours, stock.LostGPUHours),
		},
	}
}

// WriteJSON writes v (a *Result or *Comparison) as indented JSON; infinite
// ratios are written as null.
func WriteJSON(w io.Writer, v any) error {
	if c, ok := v.(*Comparison); ok {
		for k, r := range c.Ratios {
			if math.IsInf(r, 0) || math.IsNaN(r) {
				c.Ratios[k] = -1
			}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// tableRows are the summary table's rows, header first: one column per
// result, and the ratio when there are two.
func tableRows(results ...*Result) [][]string {
	header := []string{"metric"}
	for _, r := range results {
		header = append(header, r.Policy)
	}
	if len(results) == 2 {
		header = append(header, "ratio")
	}
	rows := [][]string{header}
	row := func(name string, f func(*Result) float64, format string) {
		line := []string{name}
		for _, r := range results {
			line = append(line, fmt.Sprintf(format, f(r)))
		}
		if len(results) == 2 {
			a, b := f(results[0]), f(results[1])
			if b != 0 {
				line = append(line, fmt.Sprintf("%.3f", a/b))
			} else {
				line = append(line, "-")
			}
		}
		rows = append(rows, line)
	}
	row("cost_usd", func(r *Result) float64 { return r.CostUSD }, "%.2f")
	row("lower_bound_usd", func(r *Result) float64 { return r.LowerBoundUSD }, "%.2f")
	row("cost / lower bound", func(r *Result) float64 { return r.CostOverLowerBound }, "%.3f")
	row("gpu_hours_paid", func(r *Result) float64 { return r.GPUHoursPaid }, "%.1f")
	row("gpu_hours_requested", func(r *Result) float64 { return r.GPUHoursRequested }, "%.1f")
	row("gpu_hours_allocated", func(r *Result) float64 { return r.GPUHoursAllocated }, "%.1f")
	row("idle_gpu_hours", func(r *Result) float64 { return r.IdleGPUHours }, "%.1f")
	row("pods_total", func(r *Result) float64 { return float64(r.PodsTotal) }, "%.0f")
	row("pods_alive_at_start", func(r *Result) float64 { return float64(r.PodsAliveAtStart) }, "%.0f")
	row("pods_arrived", func(r *Result) float64 { return float64(r.PodsArrived) }, "%.0f")
	row("pods_excluded", func(r *Result) float64 { return float64(r.PodsExcluded) }, "%.0f")
	row("pods_unschedulable", func(r *Result) float64 { return float64(r.PodsUnschedulable) }, "%.0f")
	row("pods_never_started", func(r *Result) float64 { return float64(r.PodsNeverStarted) }, "%.0f")
	row("pod_wait_seconds p50", func(r *Result) float64 { return r.PodWaitSeconds.P50 }, "%.0f")
	row("pod_wait_seconds p95", func(r *Result) float64 { return r.PodWaitSeconds.P95 }, "%.0f")
	row("pod_wait_seconds p99", func(r *Result) float64 { return r.PodWaitSeconds.P99 }, "%.0f")
	row("launches", func(r *Result) float64 { return float64(r.Launches) }, "%.0f")
	row("disruptions", func(r *Result) float64 { return float64(r.Disruptions) }, "%.0f")
	row("idle_gpu_removals", func(r *Result) float64 { return float64(r.IdleGPURemovals) }, "%.0f")
	row("repacked nodes", func(r *Result) float64 { return float64(r.NodeClaimDeletions["karpenter-gpu.repack"]) }, "%.0f")
	row("spot_interruptions", func(r *Result) float64 { return float64(r.SpotInterruptions) }, "%.0f")
	row("gpu_pod_evictions", func(r *Result) float64 { return float64(r.GPUPodEvictions) }, "%.0f")
	for _, cl := range []string{"batch", "service"} {
		row("  "+cl+" evictions", func(r *Result) float64 { return float64(r.Evictions[cl].Evictions) }, "%.0f")
		row("  "+cl+" lost GPU-hours", func(r *Result) float64 { return r.Evictions[cl].LostGPUHours }, "%.2f")
		row("  "+cl+" re-run $", func(r *Result) float64 { return r.Evictions[cl].RerunUSD }, "%.2f")
	}
	row("  GPU pods evicted (once or more)", func(r *Result) float64 { return float64(r.GPUPodsEvicted) }, "%.0f")
	for _, cause := range []string{"repack", "underutilized", "empty", "drifted", "other"} {
		row("  evictions by "+cause, func(r *Result) float64 { return float64(r.GPUPodEvictionsByCause[cause]) }, "%.0f")
	}
	row("  batch completion delay p50 (s)", func(r *Result) float64 { return delay(r, 50) }, "%.0f")
	row("  batch completion delay p95 (s)", func(r *Result) float64 { return delay(r, 95) }, "%.0f")
	if lo.SomeBy(results, func(r *Result) bool { return r.Gangs != nil }) {
		gangRows(row)
	}
	row("final fleet $/h", func(r *Result) float64 { return r.FinalFleetUSDPerHr }, "%.3f")
	row("simulated hours", func(r *Result) float64 { return r.SimulatedHours }, "%.1f")
	row("wall_seconds", func(r *Result) float64 { return r.WallSeconds }, "%.1f")
	return rows
}

// WriteTable prints results side by side, with ratios when there are two.
func WriteTable(w io.Writer, results ...*Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, row := range tableRows(results...) {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		types := make([]string, 0, len(r.InstanceHoursByType))
		for t := range r.InstanceHoursByType {
			types = append(types, t)
		}
		sort.Strings(types)
		var parts []string
		for _, t := range types {
			parts = append(parts, fmt.Sprintf("%s %.1fh ($%.2f)", t, r.InstanceHoursByType[t], r.CostUSDByType[t]))
		}
		fmt.Fprintf(w, "\n%s instance hours: %s\n", r.Policy, strings.Join(parts, ", "))
		if len(r.CostUSDByCapacityType) > 1 {
			fmt.Fprintf(w, "%s cost by capacity type: %s\n", r.Policy, formatMoneyMap(r.CostUSDByCapacityType))
		}
		if len(r.UnschedulablePods) > 0 {
			fmt.Fprintf(w, "%s unschedulable pods (%d):\n", r.Policy, len(r.UnschedulablePods))
			for i, u := range r.UnschedulablePods {
				if i == 20 {
					fmt.Fprintf(w, "  ... and %d more (see --json)\n", len(r.UnschedulablePods)-20)
					break
				}
				fmt.Fprintf(w, "  %s (%s): %s\n", u.Name, u.Origin, u.Reason)
			}
		}
		if len(r.ControllerErrors) > 0 {
			fmt.Fprintf(w, "%s controller errors: %v\n", r.Policy, r.ControllerErrors)
			for _, s := range r.ErrorSamples {
				fmt.Fprintf(w, "  %s\n", s)
			}
		}
	}
	if err := writeAllocation(w, results...); err != nil {
		return err
	}
	if len(results) > 0 {
		for _, n := range results[0].Notes {
			fmt.Fprintf(w, "\nNote: %s\n", n)
		}
	}
	if len(results) > 0 && results[0].PodsExcluded > 0 {
		reasons := map[string]int{}
		for _, x := range results[0].ExcludedPods {
			reasons[x.Reason]++
		}
		var parts []string
		for _, k := range lo.Keys(reasons) {
			parts = append(parts, fmt.Sprintf("%d %s", reasons[k], k))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "\n%d pods excluded from the replay: %s (the GPU catalog offers no CPU capacity; --cpu-pods=gpu-nodes runs CPU-only pods on GPU nodes)\n", results[0].PodsExcluded, strings.Join(parts, ", "))
	}
	if len(results) > 0 && results[0].Prices != "" {
		fmt.Fprintf(w, "\nPrices: %s\n", results[0].Prices)
	}
	if len(results) > 0 && len(results[0].GPUMapping) > 0 {
		models := make([]string, 0, len(results[0].GPUMapping))
		for m := range results[0].GPUMapping {
			models = append(models, m)
		}
		sort.Strings(models)
		var parts []string
		for _, m := range models {
			parts = append(parts, m+" → "+results[0].GPUMapping[m])
		}
		fmt.Fprintf(w, "\nGPU model mapping: %s\n", strings.Join(parts, ", "))
	} else if len(results) > 0 && results[0].GPUModelsIgnored {
		fmt.Fprintf(w, "\nGPU model constraints of the trace ignored (--ignore-gpu-model)\n")
	}
	return nil
}

func formatMoneyMap(m map[string]float64) string {
	keys := lo.Keys(m)
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s $%.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func delay(r *Result, p int) float64 {
	d := r.Evictions["batch"].CompletionDelaySeconds
	if d == nil {
		return 0
	}
	if p == 50 {
		return d.P50
	}
	return d.P95
}

// Point is one step of a step function of simulated time.
type Point struct {
	T time.Duration // since Epoch
	V float64
}

// MarshalJSON writes [hours, value].
func (p Point) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]float64{p.T.Hours(), p.V})
}

// UnmarshalJSON reads [hours, value].
func (p *Point) UnmarshalJSON(b []byte) error {
	var v [2]float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	p.T, p.V = time.Duration(v[0]*float64(time.Hour)), v[1]
	return nil
}
