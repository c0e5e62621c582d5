package simulation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

func load(t *testing.T, name string, opts workload.TraceOptions) *workload.Workload {
	t.Helper()
	w, err := workload.LoadInput(filepath.Join("testdata", name), opts)
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return w
}

// scenario parses an inline scenario (name is its file name in errors) into
// a workload.
func scenario(t *testing.T, name, yaml string) *workload.Workload {
	t.Helper()
	s, err := workload.ParseScenario(strings.NewReader(yaml), name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Workload(workload.TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func run(t *testing.T, w *workload.Workload, mutate func(*Config)) *report.Result {
	t.Helper()
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := Run(context.Background(), w, cfg)
	if err != nil {
		t.Fatalf("simulating %s: %v", cfg.Policy, err)
	}
	if len(r.ControllerErrors) > 0 {
		t.Errorf("%s: controller errors %v: %v", cfg.Policy, r.ControllerErrors, r.ErrorSamples)
	}
	return r
}

// TestHandChecked replays testdata/handchecked.yaml: three pods arriving
// together at t=0 and leaving at t=1h, on the g4dn family. The batch closes
// at t=1s (core's 1s idle window), so instances launch at 1s, register at
// 1s+60s+90s, and run until the pods leave plus the time disruption takes
// to remove empty nodes (a 10s poll, 15s validation, drain; under
// karpenter-gpu also up to one 30s idle-GPU tick to lift its protection):
// at most two minutes, so each fleet's cost lies in
// [Σ price × 3599s, Σ price × 3720s].
//
// Stock (Karpenter core): the scheduler takes pods by CPU, descending. multi
// (24 CPU, 96Gi, 4 GPUs) opens a NodeClaim whose options are the g4dn types
// with 4+ GPUs: 12xlarge and metal. medium (1 GPU) still fits the NodeClaim
// on metal (8 GPUs), so core adds it, keeping only metal; small likewise.
// One g4dn.metal, $7.824/h, 8 GPU-hours paid for 6 requested.
//
// karpenter-gpu: the packer splits core's NodeClaim into the cheapest
// launches: multi on g4dn.12xlarge ($3.912), medium on g4dn.2xlarge ($0.752;
// 16Gi exceeds g4dn.xlarge's allocatable memory), small on g4dn.xlarge
// ($0.526): $5.190/h, 6 GPU-hours paid.
//
// Lower bound: GPUs bind, and per GPU g4dn.xlarge ($0.526) < 2xlarge
// ($0.752) < 12xlarge = metal ($0.978): small → xlarge, medium → 2xlarge
// (the cheapest type holding it), multi → 12xlarge (the cheapest with 4
// GPUs): $5.190/h over the hour the pods are alive.
func TestHandChecked(t *testing.T) {
	w := load(t, "handchecked.yaml", workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	for _, tc := range []struct {
		policy   Policy
		types    map[string]int // instances launched, by type
		usdPerHr float64
		gpus     float64
	}{
		{PolicyStock, map[string]int{"g4dn.metal": 1}, 7.824, 8},
		{PolicyKarpenterGPU, map[string]int{"g4dn.12xlarge": 1, "g4dn.2xlarge": 1, "g4dn.xlarge": 1}, 3.912 + 0.752 + 0.526, 6},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			// The bin-packing profile binds each pod to the node planned for
			// it; the default profile does not (TestHandCheckedDefaultProfile).
			r := run(t, w, func(c *Config) { c.Policy, c.SchedulerProfile = tc.policy, kubescheduler.ProfileBinPacking })
			launched := map[string]int{}
			for typ := range r.InstanceHoursByType {
				launched[typ]++
			}
			if fmt.Sprint(launched) != fmt.Sprint(tc.types) || r.Launches != len(tc.types) {
				t.Errorf("launched %v (%d launches), want %v", r.InstanceHoursByType, r.Launches, tc.types)
			}
			lo, hi := tc.usdPerHr*3599/3600, tc.usdPerHr*3720/3600
			if r.CostUSD < lo || r.CostUSD > hi {
				t.Errorf("cost $%.4f, want within [$%.4f, $%.4f]", r.CostUSD, lo, hi)
			}
			if r.GPUHoursPaid < tc.gpus*3599/3600 || r.GPUHoursPaid > tc.gpus*3720/3600 {
				t.Errorf("GPU-hours paid %.3f, want about %.0f", r.GPUHoursPaid, tc.gpus)
			}
			if math.Abs(r.GPUHoursRequested-6) > 1e-9 {
				t.Errorf("GPU-hours requested %.3f, want 6", r.GPUHoursRequested)
			}
			if math.Abs(r.LowerBoundUSD-5.19) > 1e-6 {
				t.Errorf("lower bound $%.4f, want $5.19", r.LowerBoundUSD)
			}
			if r.PodsUnschedulable != 0 || r.PodsNeverStarted != 0 || r.GPUPodEvictions != 0 {
				t.Errorf("unschedulable %d, never started %d, GPU evictions %d; want 0", r.PodsUnschedulable, r.PodsNeverStarted, r.GPUPodEvictions)
			}
			// Pods wait for the batch window (1s), launch (60s) and
			// registration (90s).
			if r.PodWaitSeconds.P50 != 151 || r.PodWaitSeconds.Max != 151 {
				t.Errorf("pod waits %+v, want 151s", r.PodWaitSeconds)
			}
			if len(r.FinalFleet) != 0 {
				t.Errorf("fleet left at the end: %v", r.FinalFleet)
			}
		})
	}
}

// normalized is a result's JSON without the fields that measure the
// machine rather than the simulation.
func normalized(t *testing.T, r *report.Result) string {
	t.Helper()
	c := *r
	c.WallSeconds, c.Profile = 0, nil
	b, err := json.MarshalIndent(&c, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeterminism(t *testing.T) {
	w := load(t, "churn.yaml", workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	for _, p := range []Policy{PolicyStock, PolicyKarpenterGPU} {
		t.Run(string(p), func(t *testing.T) {
			a := normalized(t, run(t, w, func(c *Config) { c.Policy, c.Seed = p, 7 }))
			b := normalized(t, run(t, w, func(c *Config) { c.Policy, c.Seed = p, 7 }))
			if a != b {
				t.Errorf("same seed, different reports:\n%s", firstDiff(a, b))
			}
		})
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(al), len(bl))
}

// TestIdlePollingEquivalence checks that skipping the idle-GPU
// controller's quiet ticks (idle.go) changes nothing: the report is the
// same as polling it every 30s. The workload empties GPU nodes, leaves
// CPU-only pods on GPU nodes (which that controller removes) and
// consolidates.
func TestIdlePollingEquivalence(t *testing.T) {
	w := load(t, "churn.yaml", workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	cpu := w.Pods[0]
	cpu.Name, cpu.Arrival, cpu.Deletion = "cpu-only", 30*time.Minute, 3*time.Hour
	cpu.Requests = corev1.ResourceList{corev1.ResourceCPU: cpu.Requests[corev1.ResourceCPU]}
	cpu.Tolerations = []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	w.Pods = append(w.Pods, cpu)
	w.SortPods()
	w.CPUPods = workload.CPUPodsGPUNodes
	skipping := run(t, w, nil)
	faithful := run(t, w, func(c *Config) { c.FaithfulPolling = true })
	// Reconcile counts differ by construction (fewer polls).
	skipping.Reconciles, faithful.Reconciles = 0, 0
	a, b := normalized(t, skipping), normalized(t, faithful)
	if a != b {
		t.Errorf("skipping quiet idle-GPU ticks changed the simulation:\n%s", firstDiff(a, b))
	}
}

// TestNominationPollingEquivalence checks that polling core's disruption
// controller only when the nominations its candidate filter looks at
// changed (engine.nominationsChanged) changes nothing: the report is the
// same as polling after every provisioning pass and at the end of every
// nomination window, under both policies, on workloads where pods wait for
// launching nodes, nodes are consolidated and drained, and pods are
// evicted. Each case must skip some polls, or it would check nothing.
func TestNominationPollingEquivalence(t *testing.T) {
	full, err := workload.DefaultInput(workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	if err != nil {
		t.Fatal(err)
	}
	// A day of the bundled trace on which a nomination window's end does
	// change stock's decisions: never polling on it changes the report.
	day, err := full.Slice(2700*time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		input   string
		policy  Policy
		horizon time.Duration
	}{
		{"churn.yaml", PolicyStock, 0},
		{"churn.yaml", PolicyKarpenterGPU, 0},
		{"eviction.yaml", PolicyStock, 0},
		{"repack.yaml", PolicyKarpenterGPU, 0},
		{"trace-2700h+24h", PolicyStock, 24 * time.Hour},
		{"trace-2700h+24h", PolicyKarpenterGPU, 24 * time.Hour},
	} {
		t.Run(tc.input+"/"+string(tc.policy), func(t *testing.T) {
			w := day
			if tc.horizon == 0 {
				w = load(t, tc.input, workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
			}
			skipping := run(t, w, func(c *Config) { c.Policy, c.Horizon = tc.policy, tc.horizon })
			every := run(t, w, func(c *Config) { c.Policy, c.Horizon, c.PollAfterEveryProvisioning = tc.policy, tc.horizon, true })
			if s, e := skipping.Profile["disruption"].Calls, every.Profile["disruption"].Calls; s >= e {
				t.Fatalf("no disruption poll skipped: %d polls, %d when polling after every provisioning pass", s, e)
			}
			skipping.Reconciles, every.Reconciles = 0, 0
			if a, b := normalized(t, skipping), normalized(t, every); a != b {
				t.Errorf("skipping polls on unchanged nominations changed the simulation:\n%s", firstDiff(a, b))
			}
		})
	}
}

// TestRecordedDecisionsEquivalence checks that recording a provisioning
// decision again while it provably still holds (provisionMemo) changes
// nothing: the report is the same as deciding in every batching window,
// under both policies, on workloads where pods wait for launching nodes,
// nodes are consolidated and drained, and pods are evicted. Each case
// must record some decisions again, or it would check nothing.
func TestRecordedDecisionsEquivalence(t *testing.T) {
	for _, tc := range []struct {
		input  string
		policy Policy
	}{
		{"churn.yaml", PolicyStock},
		{"churn.yaml", PolicyKarpenterGPU},
		{"eviction.yaml", PolicyStock},
		{"repack.yaml", PolicyKarpenterGPU},
	} {
		t.Run(tc.input+"/"+string(tc.policy), func(t *testing.T) {
			w := load(t, tc.input, workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
			recording := run(t, w, func(c *Config) { c.Policy = tc.policy })
			deciding := run(t, w, func(c *Config) { c.Policy, c.DecideEveryWindow = tc.policy, true })
			if n := recording.Profile["provisioning.recorded"].Calls; n == 0 {
				t.Fatalf("no decision was recorded again (provisioning %d calls)", recording.Profile["provisioning"].Calls)
			}
			if n := deciding.Profile["provisioning.recorded"].Calls; n != 0 {
				t.Fatalf("DecideEveryWindow recorded %d decisions again", n)
			}
			recording.Reconciles, deciding.Reconciles = 0, 0
			if a, b := normalized(t, recording), normalized(t, deciding); a != b {
				t.Errorf("recording decisions again changed the simulation:\n%s", firstDiff(a, b))
			}
		})
	}
}

// TestStockMatchesCore checks that the stock policy's first provisioning
// decision for a batch (the busiest moment of the default trace) is Karpenter
// core's: the NodeClaims of core's Provisioner.Schedule on the same pending
// pods, each launched on its cheapest option (what the provider does), hold
// the same pods as the nodes the simulation launched and bound them to.
func TestStockMatchesCore(t *testing.T) {
	full, err := workload.DefaultInput(workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	if err != nil {
		t.Fatal(err)
	}
	w := full.Snapshot(full.Busiest())
	cfg := DefaultConfig()
	cfg.Policy = PolicyStock
	cfg.Horizon = 3 * time.Minute // first batch at 1s, nodes up at 151s

	// Core alone: Schedule on the pending pods, cheapest option per NodeClaim.
	e, err := newEngine(context.Background(), w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.setup(); err != nil {
		t.Fatal(err)
	}
	for _, ps := range e.pods {
		if err := e.arrive(ps); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.settle(); err != nil { // kube-scheduler marks them unschedulable
		t.Fatal(err)
	}
	results, err := e.coreProv.Schedule(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(results.PodErrors) > 0 {
		t.Fatalf("core could not schedule %d pods", len(results.PodErrors))
	}
	var want []string
	for _, nc := range results.NewNodeClaims {
		want = append(want, placement(t, cheapest(t, nc), podNames(nc.Pods)))
	}
	sort.Strings(want)

	// The simulation.
	var log bytes.Buffer
	cfg.DebugLog = &log
	if _, err := Run(context.Background(), w, cfg); err != nil {
		t.Fatal(err)
	}
	// The simulation's first provisioning decision (the batch closes at 1s):
	// the NodeClaims it launched and the pods nominated to them.
	typeOf, podsOn := map[string]string{}, map[string][]string{}
	for _, line := range strings.Split(log.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 7 && f[0] == "1s" && f[1] == "launch":
			typeOf[f[6]] = f[3]
		case len(f) == 4 && f[0] == "1s" && f[1] == "nominated":
			podsOn[f[3]] = append(podsOn[f[3]], f[2])
		}
	}
	var got []string
	for node, pods := range podsOn {
		got = append(got, placement(t, typeOf[node], pods))
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("simulation placed\n  %s\ncore's scheduler placed\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(want) == 0 {
		t.Fatal("no NodeClaims")
	}
}

func placement(_ *testing.T, typ string, pods []string) string {
	sort.Strings(pods)
	return typ + ": " + strings.Join(pods, ",")
}

func podNames(pods []*corev1.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// cheapest is the instance type the provider launches for a NodeClaim of
// core's: its first launch option.
func cheapest(t *testing.T, nc *scheduling.NodeClaim) string {
	t.Helper()
	claim := nc.ToNodeClaim()
	opts, err := gpucp.LaunchOptions(claim, nc.InstanceTypeOptions)
	if err != nil || len(opts) == 0 {
		t.Fatalf("no launch option for core's NodeClaim: %v", err)
	}
	return opts[0].InstanceType
}

func TestUnschedulablePodsAreListed(t *testing.T) {
	w := load(t, "unschedulable.yaml", workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	r := run(t, w, nil)
	if r.PodsUnschedulable != 1 || len(r.UnschedulablePods) != 1 || r.UnschedulablePods[0].Name != "huge-0" {
		t.Fatalf("unschedulable %d %+v, want huge-0", r.PodsUnschedulable, r.UnschedulablePods)
	}
	if u := r.UnschedulablePods[0]; !strings.Contains(u.Origin, "unschedulable.yaml:") || u.Reason == "" {
		t.Errorf("unschedulable pod %+v lacks origin or reason", u)
	}
	if r.PodWaitSeconds.Count != 1 {
		t.Errorf("%d pods ran, want 1", r.PodWaitSeconds.Count)
	}
}

// TestFastReadsEquivalence checks that the in-memory API's fast read paths
// (cache.go: field indexes, kept-sorted keys, the simulator's own lists
// sharing the cache's objects) change nothing: every report field but wall
// time is the same as with reads served the straightforward way (each list
// scans, sorts and deep-copies its whole kind). The scenarios cover churn
// and consolidation, evictions, and gated pod groups (the binder writes the
// pods it reads).
func TestFastReadsEquivalence(t *testing.T) {
	for _, name := range []string{"churn.yaml", "eviction.yaml", "gang.yaml"} {
		w := load(t, name, workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
		for _, p := range []Policy{PolicyStock, PolicyKarpenterGPU} {
			t.Run(name+"/"+string(p), func(t *testing.T) {
				fast := normalized(t, run(t, w, func(c *Config) { c.Policy = p }))
				reference := normalized(t, run(t, w, func(c *Config) { c.Policy, c.ReferenceReads = p, true }))
				if fast != reference {
					t.Errorf("fast reads changed the simulation:\n%s", firstDiff(fast, reference))
				}
			})
		}
	}
}

// TestBoundDiskCache checks that a bound read from bound.Cache.Dir is
// the one computed: a run that solves it and stores it, and a run that
// reads it back, give the same report as a run without the cache.
func TestBoundDiskCache(t *testing.T) {
	w := load(t, "churn.yaml", workload.TraceOptions{GPUMap: workload.DefaultGPUMap()})
	dir := t.TempDir()
	withDir := func(c *Config) {
		c.LowerBound = bound.NewCache()
		c.LowerBound.Dir = dir
	}
	plain := normalized(t, run(t, w, nil))
	stored := normalized(t, run(t, w, withDir))
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("bound cache holds %d files, want 1", len(files))
	}
	read := normalized(t, run(t, w, withDir))
	for name, got := range map[string]string{"storing": stored, "reading": read} {
		if got != plain {
			t.Errorf("%s the bound changed the report:\n%s", name, firstDiff(got, plain))
		}
	}
	// The read run did read: a planted value comes back.
	b, err := os.ReadFile(files[0])
	sb := map[string]any{}
	if err == nil {
		err = json.Unmarshal(b, &sb)
	}
	if err != nil {
		t.Fatalf("the stored bound does not load: %v", err)
	}
	sb["usd"] = 12345
	if err := bound.StoreJSON(dir, strings.TrimSuffix(filepath.Base(files[0]), ".json"), sb); err != nil {
		t.Fatal(err)
	}
	if got := run(t, w, withDir).LowerBoundUSD; got != 12345 {
		t.Errorf("lower bound %v, want the planted 12345 read from the cache", got)
	}
}
