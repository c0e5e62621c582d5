package simulation

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/prices"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

const finopsExamples = "../../examples/finops"

func sumRows(rows []report.AllocationRow) (usd, req, alloc float64) {
	for _, r := range rows {
		usd += r.CostUSD
		req += r.GPUHoursRequested
		alloc += r.GPUHoursAllocated
	}
	return usd, req, alloc
}

func row(rows []report.AllocationRow, key string) report.AllocationRow {
	for _, r := range rows {
		if r.Key == key {
			return r
		}
	}
	return report.AllocationRow{Key: key + " (missing)"}
}

// The kubectl pod list of examples/finops (all on g4dn): train (2 CPU,
// 8 GiB, 1 GPU) in ml-research, team research; two web replicas (4 CPU,
// 16 GiB, 1 GPU) in inference, team serving. Pods never leave; the horizon
// is 1h; instances launch at 1s and pods bind at 151s (TestHandChecked's
// timing).
//
// karpenter-gpu: train on g4dn.xlarge ($0.526), each web on g4dn.2xlarge
// ($0.752; 16 GiB exceeds the xlarge's allocatable): $2.030/h. Stock:
// core's scheduler puts the three pods on one NodeClaim, a g4dn.12xlarge
// ($3.912/h, 4 GPUs, one unused).
//
// Allocation: a pod pays its node's GPU part at least (OpenCost's relative
// prices: GPU $0.95 of at most 4×$0.031611 + 16×$0.004237 + $0.95 = $1.1443
// per hour of a g4dn.xlarge's units, so ≥ 83.0% of its price) and at most
// the whole node, from 151s on; the 150s every node runs empty are idle.
func TestCostAllocationPodList(t *testing.T) {
	w, err := workload.LoadInput(filepath.Join(finopsExamples, "cluster-pods.json"), workload.TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bound := 3449.0 / 3600 // hours bound: 151s to 1h
	for _, tc := range []struct {
		policy  Policy
		usdPerH float64
	}{{PolicyKarpenterGPU, 0.526 + 2*0.752}, {PolicyStock, 3.912}} {
		t.Run(string(tc.policy), func(t *testing.T) {
			r := run(t, w, func(c *Config) {
				c.Policy, c.SchedulerProfile, c.GroupBy = tc.policy, kubescheduler.ProfileBinPacking, "team"
			})
			if want := tc.usdPerH * 3599 / 3600; math.Abs(r.CostUSD-want) > 1e-6 {
				t.Fatalf("cost $%.6f, want $%.6f", r.CostUSD, want)
			}
			ca := r.CostAllocation
			if ca == nil {
				t.Fatal("no cost allocation")
			}
			if math.Abs(ca.TotalUSD-r.CostUSD) > 0.01 || math.Abs(ca.AllocatedUSD+ca.IdleUSD-r.CostUSD) > 0.01 {
				t.Errorf("allocated $%.4f + idle $%.4f, total $%.4f; fleet $%.4f", ca.AllocatedUSD, ca.IdleUSD, ca.TotalUSD, r.CostUSD)
			}
			idle, _, _ := sumRows(ca.IdleByNodePool)
			if math.Abs(idle-ca.IdleUSD) > 0.01 || len(ca.IdleByNodePool) != 1 || ca.IdleByNodePool[0].Key != "gpu" {
				t.Errorf("idle by NodePool %+v, want all of $%.4f on gpu", ca.IdleByNodePool, ca.IdleUSD)
			}
			for name, rows := range map[string][]report.AllocationRow{"namespace": ca.ByNamespace, "label": ca.ByLabel, "pod group": ca.ByPodGroup} {
				usd, req, alloc := sumRows(rows)
				if math.Abs(usd-ca.AllocatedUSD) > 0.01 || math.Abs(usd+ca.IdleUSD-r.CostUSD) > 0.01 {
					t.Errorf("by %s: $%.4f + idle $%.4f, want the fleet's $%.4f", name, usd, ca.IdleUSD, r.CostUSD)
				}
				if math.Abs(req-3) > 1e-9 || math.Abs(alloc-3*bound) > 1e-6 {
					t.Errorf("by %s: GPU-hours requested %.4f, allocated %.4f; want 3, %.4f", name, req, alloc, 3*bound)
				}
			}
			inf, ml := row(ca.ByNamespace, "inference"), row(ca.ByNamespace, "ml-research")
			if inf.Pods != 2 || ml.Pods != 1 || math.Abs(inf.GPUHoursRequested-2) > 1e-9 || math.Abs(ml.GPUHoursAllocated-bound) > 1e-6 {
				t.Errorf("namespaces %+v %+v", inf, ml)
			}
			if s := row(ca.ByLabel, "serving"); s.CostUSD != inf.CostUSD || s.Pods != 2 {
				t.Errorf("label team=serving %+v, want the inference namespace's %+v", s, inf)
			}
			if g := row(ca.ByPodGroup, "inference/Deployment/web"); g.CostUSD != inf.CostUSD {
				t.Errorf("pod group Deployment/web %+v", g)
			}
			if tc.policy == PolicyKarpenterGPU {
				lo, hi := 0.526*0.830*bound, 0.526*bound
				if ml.CostUSD < lo || ml.CostUSD > hi {
					t.Errorf("ml-research $%.4f, want within [$%.4f, $%.4f] (its g4dn.xlarge's GPU part to the whole node)", ml.CostUSD, lo, hi)
				}
				if ca.IdleUSD < tc.usdPerH*150/3600 {
					t.Errorf("idle $%.4f, want at least the 150 s every node ran empty ($%.4f)", ca.IdleUSD, tc.usdPerH*150/3600)
				}
			} else {
				// The unused GPU of the g4dn.12xlarge: a GPU part of at least
				// $3.912 × 0.95 / (48×0.031611 + 192×0.004237 + 4×0.95) per hour.
				gpuPart := 3.912 * 0.95 / (48*0.031611 + 192*0.004237 + 4*0.95)
				if ca.IdleUSD < gpuPart*bound+3.912*150/3600 {
					t.Errorf("idle $%.4f, want at least one GPU's part ($%.4f) plus the empty 150 s", ca.IdleUSD, gpuPart*bound+3.912*150/3600)
				}
			}
		})
	}
}

// Spot prices from describe-spot-price-history make spot offerings: the
// spot NodePool's pod runs on the cheapest one (g4dn.xlarge in us-west-2b,
// $0.198/h) for its 4 hours. With spot interruptions, each notice deletes
// the NodeClaim, the pod is evicted and replaced on a new instance, and
// every instance is billed until it is reclaimed or removed.
func TestSpotPricesAndInterruptions(t *testing.T) {
	tab, err := prices.LoadFiles(filepath.Join(finopsExamples, "spot-prices-us-west-2.json"), filepath.Join(finopsExamples, "ondemand-prices-us-west-2.json"))
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	src, err := tab.Source(prices.Options{Region: "us-west-2", Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	w := load(t, "spot.yaml", workload.TraceOptions{})
	cfgFor := func(rate float64) func(*Config) {
		return func(c *Config) {
			c.Region, c.Prices, c.Zones, c.CapacityTypes, c.SpotInterruptionsPerDay = "us-west-2", src.Prices, src.Zones, src.CapacityTypes, rate
			c.Seed = 2
		}
	}
	calm := run(t, w, cfgFor(0))
	if calm.Launches != 1 || len(calm.Instances) != 1 || calm.Instances[0].Type != "g4dn.xlarge" || calm.Instances[0].Zone != "us-west-2b" || calm.Instances[0].CapacityType != "spot" {
		t.Fatalf("instances %+v, want one spot g4dn.xlarge in us-west-2b", calm.Instances)
	}
	if lo, hi := 0.198*(4-1.0/3600), 0.198*(4+2.0/60); calm.CostUSD < lo || calm.CostUSD > hi || math.Abs(calm.CostUSDByCapacityType["spot"]-calm.CostUSD) > 1e-9 {
		t.Errorf("cost $%.4f (spot $%.4f), want spot only within [$%.4f, $%.4f]", calm.CostUSD, calm.CostUSDByCapacityType["spot"], lo, hi)
	}
	if calm.SpotInterruptions != 0 || calm.GPUPodEvictions != 0 {
		t.Errorf("interruptions %d, evictions %d without a rate", calm.SpotInterruptions, calm.GPUPodEvictions)
	}
	// 12 per day: a mean instance life of 2 hours.
	r := run(t, w, cfgFor(12))
	if r.SpotInterruptions == 0 {
		t.Fatal("no interruption at 12 per day over 4 hours (seed 2)")
	}
	if r.NodeClaimDeletions["spot-interruption"] != r.SpotInterruptions {
		t.Errorf("NodeClaims deleted at a notice %v, want %d", r.NodeClaimDeletions, r.SpotInterruptions)
	}
	if r.GPUPodEvictions == 0 || r.Launches < 2 {
		t.Errorf("evictions %d, launches %d: the pod should be evicted and its replacement launched", r.GPUPodEvictions, r.Launches)
	}
	if r.PodsUnschedulable != 0 || r.CostUSD <= 0 || math.Abs(r.CostAllocation.AllocatedUSD+r.CostAllocation.IdleUSD-r.CostUSD) > 0.01 {
		t.Errorf("unschedulable %d, cost $%.4f, allocation %+v", r.PodsUnschedulable, r.CostUSD, r.CostAllocation)
	}
	t.Logf("12/day: %d interruptions, %d launches, $%.4f (calm $%.4f), lost GPU-h %.3f", r.SpotInterruptions, r.Launches, r.CostUSD, calm.CostUSD, r.LostGPUHours)
}

// A spot-only NodePool without spot prices (the embedded catalog has none)
// is an error when it is the only NodePool, and a note naming it when another
// NodePool can launch — never pods left unschedulable with core's generic
// message and nothing said.
func TestSpotWithoutSpotPrices(t *testing.T) {
	w := load(t, "spot.yaml", workload.TraceOptions{})
	_, err := Run(context.Background(), w, DefaultConfig())
	if err == nil || !strings.Contains(err.Error(), `region "us-east-1"`) || !strings.Contains(err.Error(), "--prices") {
		t.Fatalf("error %v, want one naming the region and --prices", err)
	}
	both := *w
	both.NodePools = append(append([]*karpv1.NodePool{}, w.NodePools...), workload.DefaultNodePool())
	r := run(t, &both, nil)
	if !strings.Contains(strings.Join(r.Notes, "\n"), `NodePool "spot" can launch nothing priced in us-east-1`) {
		t.Errorf("notes %v, want the spot NodePool named", r.Notes)
	}
	if r.PodsUnschedulable != 0 || r.Launches != 1 || r.CostUSDByCapacityType["on-demand"] <= 0 {
		t.Errorf("unschedulable %d, launches %d, cost %v: the on-demand NodePool should run the pod", r.PodsUnschedulable, r.Launches, r.CostUSDByCapacityType)
	}
}
