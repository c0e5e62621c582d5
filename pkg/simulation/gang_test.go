package simulation

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/samber/lo"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

// TestGangScenario replays testdata/gang.yaml (two training gangs and
// inference under a 32-GPU NodePool limit) under both policies. Stock
// launches what fits of a gang node by node: a train-a worker runs (and is
// paid for) while the other cannot launch, so it reports partial-gang
// GPU-hours. karpenter-gpu provisions each gang through the pod-group and
// ProvisioningRequest controllers all-or-nothing: train-a starts whole once
// the burst is gone, train-b (which never fits beside steady inference)
// never gets a node, and no gang is ever partial.
func TestGangScenario(t *testing.T) {
	w := load(t, "gang.yaml", workload.TraceOptions{})
	gpu := run(t, w, func(c *Config) { c.Horizon = 6 * time.Hour })
	stock := run(t, w, func(c *Config) { c.Policy = PolicyStock; c.Horizon = 6 * time.Hour })
	for _, r := range []*report.Result{gpu, stock} {
		if r.Gangs == nil || r.Gangs.Gangs != 2 || len(r.Gangs.ByGang) != 2 {
			t.Fatalf("%s: gang report %+v, want 2 gangs", r.Policy, r.Gangs)
		}
	}
	byName := func(r *report.Result, name string) report.GangRun {
		g, ok := lo.Find(r.Gangs.ByGang, func(g report.GangRun) bool { return g.Name == "default/"+name })
		if !ok {
			t.Fatalf("%s: no gang %s in %+v", r.Policy, name, r.Gangs.ByGang)
		}
		return g
	}

	// Stock: capacity trickles in, a gang runs partly and pays for it.
	if stock.Gangs.PartialGPUHours <= 0 || stock.Gangs.PartialUSD <= 0 {
		t.Errorf("stock: partial-gang GPU-hours %.2f ($%.2f), want > 0: core launches a gang's workers one by one within the limit", stock.Gangs.PartialGPUHours, stock.Gangs.PartialUSD)
	}
	if a := byName(stock, "train-a"); a.PartialHours <= 0 {
		t.Errorf("stock: train-a partial for %.2f h, want > 0 (one of its two workers fits beside the burst)", a.PartialHours)
	}

	// karpenter-gpu: all or nothing.
	if gpu.Gangs.PartialGPUHours != 0 || gpu.Gangs.PartialUSD != 0 || gpu.Gangs.PartialHours != 0 {
		t.Errorf("karpenter-gpu: partial-gang GPU-hours %.2f ($%.2f, %.2f h), want 0", gpu.Gangs.PartialGPUHours, gpu.Gangs.PartialUSD, gpu.Gangs.PartialHours)
	}
	a := byName(gpu, "train-a")
	if a.StartedHours == nil {
		t.Fatalf("karpenter-gpu: train-a never started; it fits once the burst (1h) is gone")
	}
	if *a.StartedHours < 1 {
		t.Errorf("karpenter-gpu: train-a started at %.2f h, before the burst left room for both workers (1 h)", *a.StartedHours)
	}
	if b := byName(gpu, "train-b"); b.StartedHours != nil || b.MaxRunning != 0 {
		t.Errorf("karpenter-gpu: train-b started at %v with %d running; 32 GPUs never fit beside 8 of steady inference", b.StartedHours, b.MaxRunning)
	}
	if gpu.Gangs.NeverStarted != 1 {
		t.Errorf("karpenter-gpu: %d gangs never started, want 1 (train-b)", gpu.Gangs.NeverStarted)
	}
	// Nothing launched for train-b: the only 8-GPU nodes are train-a's two.
	if n := lo.CountBy(gpu.Instances, func(i report.InstanceRun) bool { return i.GPUs == 8 }); n != 2 {
		t.Errorf("karpenter-gpu launched %d 8-GPU nodes, want 2 (train-a's workers, together)", n)
	}
	starts := lo.Uniq(lo.FilterMap(gpu.Instances, func(i report.InstanceRun, _ int) (float64, bool) { return i.StartHours, i.GPUs == 8 }))
	if len(starts) != 1 {
		t.Errorf("karpenter-gpu: train-a's nodes launched at %v, want one instant", starts)
	}
	if gpu.Gangs.GroupLaunches != 1 || stock.Gangs.GroupLaunches != 0 {
		t.Errorf("group launches: karpenter-gpu %d, stock %d; want train-a's one (the fleet launched it whole), none under stock", gpu.Gangs.GroupLaunches, stock.Gangs.GroupLaunches)
	}
	t.Logf("partial-gang GPU-hours: karpenter-gpu %.1f ($%.2f), stock %.1f ($%.2f); never started: %d vs %d; cost $%.2f vs $%.2f",
		gpu.Gangs.PartialGPUHours, gpu.Gangs.PartialUSD, stock.Gangs.PartialGPUHours, stock.Gangs.PartialUSD, gpu.Gangs.NeverStarted, stock.Gangs.NeverStarted, gpu.CostUSD, stock.CostUSD)
}

// TestGangMinMembers: a gang of 3 whose workers arrive 30 min apart and
// which runs with 2 (minMembers). Stock launches each worker as it arrives:
// the first runs alone (partial) until the second runs. karpenter-gpu
// requests capacity once two workers exist, starts them together, and the
// third gets a request of its own when it arrives (the gang is running, so
// it is never partial).
func TestGangMinMembers(t *testing.T) {
	w := scenario(t, "elastic.yaml", onDemandPool("{key: karpenter-gpu.io/instance-family, operator: In, values: [g6]}")+`podGroups:
  - name: elastic
    gang: true
    count: 3
    minMembers: 2
    interval: 30m
    duration: 2h
    requests: {cpu: "32", memory: 128Gi, nvidia.com/gpu: "8"}
`)
	gpu := run(t, w, func(c *Config) { c.Horizon = 4 * time.Hour })
	stock := run(t, w, func(c *Config) { c.Policy = PolicyStock; c.Horizon = 4 * time.Hour })
	for _, r := range []*report.Result{gpu, stock} {
		if r.Gangs == nil || len(r.Gangs.ByGang) != 1 || r.Gangs.ByGang[0].StartedHours == nil {
			t.Fatalf("%s: gang report %+v, want one started gang", r.Policy, r.Gangs)
		}
		if g := r.Gangs.ByGang[0]; g.MinMembers != 2 || g.Size != 3 {
			t.Fatalf("%s: gang %+v, want 3 pods, min 2", r.Policy, g)
		}
	}
	// The first worker (arrived at 0) runs alone until the second (30 min)
	// runs: about 30 min of 8 GPUs.
	if p := stock.Gangs.PartialGPUHours; p < 8*0.4 || p > 8*0.6 {
		t.Errorf("stock: partial-gang GPU-hours %.2f, want about 4 (one 8-GPU worker alone for ~30 min)", p)
	}
	if gpu.Gangs.PartialGPUHours != 0 {
		t.Errorf("karpenter-gpu: partial-gang GPU-hours %.2f, want 0", gpu.Gangs.PartialGPUHours)
	}
	if started := *gpu.Gangs.ByGang[0].StartedHours; started < 0.5 {
		t.Errorf("karpenter-gpu: the gang started at %.2f h, before its second worker arrived (0.5 h)", started)
	}
	// All three workers ran under both policies.
	for _, r := range []*report.Result{gpu, stock} {
		if n := lo.CountBy(r.Instances, func(i report.InstanceRun) bool { return i.GPUs == 8 }); n != 3 {
			t.Errorf("%s: %d 8-GPU nodes, want 3", r.Policy, n)
		}
		if r.PodsNeverStarted != 0 {
			t.Errorf("%s: %d pods never started", r.Policy, r.PodsNeverStarted)
		}
	}
}

// TestGangRefusedWhole: a gang of 4 × 8-GPU workers where the fleet has
// room for 3 g6.48xlarge per zone. The engine hands each attempt's 4
// launches to the fleet together (ganglaunch.go), which refuses the gang
// whole, attempt after attempt, in every zone: no instance of it ever
// launches and nothing is paid for. (Launched one NodeClaim at a time, 3
// of every attempt's 4 started before the 4th was refused and the
// controller rolled them back.)
func TestGangRefusedWhole(t *testing.T) {
	w := scenario(t, "scarce.yaml", onDemandPool("{key: node.kubernetes.io/instance-type, operator: In, values: [g6.48xlarge]}")+`podGroups:
  - name: train
    gang: true
    count: 4
    duration: 2h
    requests: {cpu: "32", memory: 128Gi, nvidia.com/gpu: "8"}
`)
	capacity := map[fake.Offering]int{}
	for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		capacity[fake.Offering{InstanceType: "g6.48xlarge", Zone: z, CapacityType: karpv1.CapacityTypeOnDemand}] = 3
	}
	r := run(t, w, func(c *Config) { c.Horizon = time.Hour; c.Capacity = capacity })
	if len(r.Instances) != 0 {
		t.Errorf("karpenter-gpu launched %d instances of a gang the fleet cannot hold whole, want 0: %+v", len(r.Instances), r.Instances)
	}
	if r.Gangs == nil || len(r.Gangs.ByGang) != 1 {
		t.Fatalf("gang report %+v, want one gang", r.Gangs)
	}
	if r.Gangs.GroupsRefused < 3 || r.Gangs.GroupLaunches != 0 {
		t.Errorf("%d group launches refused whole, %d launched; want one refused per attempt (at least one per zone), none launched", r.Gangs.GroupsRefused, r.Gangs.GroupLaunches)
	}
	if g := r.Gangs.ByGang[0]; g.StartedHours != nil || g.MaxRunning != 0 {
		t.Errorf("the gang started at %v with %d running; the fleet never holds it", g.StartedHours, g.MaxRunning)
	}
	if r.Gangs.PartialGPUHours != 0 || r.Gangs.PartialUSD != 0 || r.CostUSD != 0 {
		t.Errorf("partial-gang GPU-hours %.2f ($%.2f), fleet cost $%.2f; want 0: nothing of the gang ever ran", r.Gangs.PartialGPUHours, r.Gangs.PartialUSD, r.CostUSD)
	}
	if r.PodsNeverStarted != 4 {
		t.Errorf("%d pods never started, want the gang's 4", r.PodsNeverStarted)
	}
	t.Logf("%d group launches refused whole, %d instances launched, partial-gang GPU-hours %.1f", r.Gangs.GroupsRefused, len(r.Instances), r.Gangs.PartialGPUHours)
}

// onDemandPool is a scenario's nodePools: one on-demand GPU NodePool "gpu"
// that never expires, narrowed to the instances the requirement given (a
// YAML flow mapping) allows.
func onDemandPool(requirement string) string {
	return `nodePools:
  - metadata: {name: gpu}
    spec:
      template:
        spec:
          requirements:
            - ` + requirement + `
            - {key: karpenter.sh/capacity-type, operator: In, values: [on-demand]}
          expireAfter: Never
`
}

// A negative capacity is refused with the offering named.
func TestCapacityValidated(t *testing.T) {
	w := load(t, "gang.yaml", workload.TraceOptions{})
	cfg := DefaultConfig()
	cfg.Capacity = map[fake.Offering]int{{InstanceType: "g6.48xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeOnDemand}: -1}
	if _, err := Run(context.Background(), w, cfg); err == nil || !strings.Contains(err.Error(), "g6.48xlarge in us-east-1a") {
		t.Fatalf("err = %v, want an error naming the offering", err)
	}
}
