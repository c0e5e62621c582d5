package provisioning_test

import (
	"context"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

// inPool pins a pod to a NodePool.
func inPool(name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{karpv1.NodePoolLabelKey: name}
	}
}

// withHostPort gives a pod a host port, a constraint the packer leaves to
// core (packing.Unmodelled).
func withHostPort(p *corev1.Pod) {
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 8080}}
}

// The pods of each batch are Alibaba-like GPU shapes (direct_test.go's
// burst); core's first-fit leaves room the packer reclaims on them, so a
// batch free of unmodelled constraints is repacked more cheaply.
func TestRefineResults(t *testing.T) {
	type pools struct{ gpu, cpu, hostPorts bool }
	for _, tc := range []struct {
		name string
		// the cluster's NodePools: "gpu", "cpu" (untainted, no NVIDIA types),
		// "ports" (a second GPU pool whose pods carry host ports)
		pools pools
		// pods: GPU burst in "gpu", CPU pods, GPU pods with host ports in "ports"
		gpuPods, cpuPods, portPods int
		// mutate the packer's inputs or context before RefineResults
		dropPool string // a NodePool missing from Options.NodePools
		cancel   bool
		// expectations
		wantRepacked  int                 // Decision.PodsRepacked
		wantUnchanged map[string][]string // pool -> reasons in Decision.Unchanged
	}{
		{name: "GPU batch is repacked more cheaply", pools: pools{gpu: true},
			gpuPods: 40, wantRepacked: 40},
		{name: "CPU NodeClaims pass through beside repacked GPU ones", pools: pools{gpu: true, cpu: true},
			gpuPods: 40, cpuPods: 12, wantRepacked: 40},
		{name: "unmodelled constraints are left to core, per NodePool", pools: pools{gpu: true, hostPorts: true},
			gpuPods: 40, portPods: 6, wantRepacked: 40,
			wantUnchanged: map[string][]string{"ports": {"host ports"}}},
		{name: "a NodePool missing from the inputs keeps core's NodeClaims", pools: pools{gpu: true},
			gpuPods: 40, dropPool: "gpu",
			wantUnchanged: map[string][]string{"gpu": {"NodePool not in Options.NodePools"}}},
		{name: "a done context keeps core's NodeClaims", pools: pools{gpu: true, cpu: true},
			gpuPods: 40, cpuPods: 4, cancel: true,
			wantUnchanged: map[string][]string{"gpu": {"context done before packing"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var nps []*karpv1.NodePool
			if tc.pools.gpu {
				nps = append(nps, gpuPool("gpu", 0))
			}
			if tc.pools.cpu {
				nps = append(nps, cpuPool("cpu"))
			}
			if tc.pools.hostPorts {
				nps = append(nps, gpuPool("ports", 0))
			}
			e := newEnv(t, nps...)
			gpuPods := burst(e, tc.gpuPods, 7, inPool("gpu"))
			var cpuPods, portPods []*corev1.Pod
			for range tc.cpuPods {
				cpuPods = append(cpuPods, e.pod(1500, 4096, 0, inPool("cpu")))
			}
			portPods = burst(e, tc.portPods, 8, inPool("ports"), withHostPort)
			all := slices.Concat(gpuPods, cpuPods, portPods)
			e.addPods(t, all...)

			core, err := e.prov.Schedule(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			assertAllPlacedOnce(t, all, core)
			opts, err := e.refiner.Inputs(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.dropPool != "" {
				opts.NodePools = lo.Reject(opts.NodePools, func(np *karpv1.NodePool, _ int) bool { return np.Name == tc.dropPool })
			}
			ctx := e.ctx
			if tc.cancel {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				cancel()
			}
			before := snapshot(core)

			out, d := provisioning.RefineResults(ctx, &core, opts)

			if got := snapshot(core); !slices.Equal(got, before) {
				t.Fatalf("RefineResults modified its input:\n before %v\n after  %v", before, got)
			}
			assertAllPlacedOnce(t, all, *out)

			// The Decision counts what happened.
			var coreGPU []*scheduling.NodeClaim
			for _, nc := range core.NewNodeClaims {
				if lo.ContainsBy(nc.Pods, v1alpha1.UsesAccelerator) {
					coreGPU = append(coreGPU, nc)
				}
			}
			outGPU := lo.Filter(out.NewNodeClaims, func(nc *scheduling.NodeClaim, _ int) bool {
				return lo.ContainsBy(nc.Pods, v1alpha1.UsesAccelerator)
			})
			if d.PodsConsidered != tc.gpuPods+tc.portPods {
				t.Errorf("PodsConsidered = %d, want the %d GPU pods", d.PodsConsidered, tc.gpuPods+tc.portPods)
			}
			if d.PodsRepacked != tc.wantRepacked {
				t.Errorf("PodsRepacked = %d, want %d (decision: %s)", d.PodsRepacked, tc.wantRepacked, d)
			}
			if d.NodeClaimsBefore != len(core.NewNodeClaims) || d.NodeClaimsAfter != len(out.NewNodeClaims) {
				t.Errorf("NodeClaims %d -> %d in the decision, %d -> %d returned", d.NodeClaimsBefore, d.NodeClaimsAfter, len(core.NewNodeClaims), len(out.NewNodeClaims))
			}
			if !near(d.CoreCost, price(coreGPU)) || !near(d.PackedCost, price(outGPU)) {
				t.Errorf("decision $/h %.4f -> %.4f, core's GPU NodeClaims cost %.4f, returned %.4f", d.CoreCost, d.PackedCost, price(coreGPU), price(outGPU))
			}
			if d.Direct {
				t.Error("RefineResults decision marked Direct")
			}
			switch {
			case tc.wantRepacked > 0 && d.PackedCost >= d.CoreCost-1e-6:
				t.Errorf("repacked fleet $%.4f/h is not cheaper than core's $%.4f/h", d.PackedCost, d.CoreCost)
			case tc.wantRepacked == 0 && !near(d.PackedCost, d.CoreCost):
				t.Errorf("nothing repacked, yet $/h %.4f -> %.4f", d.CoreCost, d.PackedCost)
			}

			// Unchanged NodeClaims are core's own, counted per pool and
			// reason; CPU NodeClaims are core's own and not counted.
			gotUnchanged := map[string][]string{}
			for _, u := range d.Unchanged {
				gotUnchanged[u.NodePool] = append(gotUnchanged[u.NodePool], u.Reason)
				claims := lo.Filter(core.NewNodeClaims, func(nc *scheduling.NodeClaim, _ int) bool { return nc.NodePoolName == u.NodePool })
				pods := lo.SumBy(claims, func(nc *scheduling.NodeClaim) int { return len(nc.Pods) })
				if u.NodeClaims != len(claims) || u.Pods != pods {
					t.Errorf("unchanged %s: %d NodeClaims, %d pods; core made %d with %d pods", u.NodePool, u.NodeClaims, u.Pods, len(claims), pods)
				}
				for _, nc := range claims {
					if !slices.Contains(out.NewNodeClaims, nc) {
						t.Errorf("unchanged %s: core's NodeClaim with %d pods not returned as it was", u.NodePool, len(nc.Pods))
					}
				}
			}
			if !equalReasons(gotUnchanged, tc.wantUnchanged) {
				t.Errorf("unchanged = %v, want %v", gotUnchanged, tc.wantUnchanged)
			}
			for _, nc := range core.NewNodeClaims {
				if nc.NodePoolName == "cpu" && !slices.Contains(out.NewNodeClaims, nc) {
					t.Errorf("CPU NodeClaim with %d pods not returned as core made it", len(nc.Pods))
				}
			}
			// Repacked NodeClaims are new, and hold only their pool's pods.
			for _, nc := range out.NewNodeClaims {
				if slices.Contains(core.NewNodeClaims, nc) {
					continue
				}
				if _, kept := gotUnchanged[nc.NodePoolName]; kept {
					t.Errorf("new NodeClaim in pool %s, which was left unchanged", nc.NodePoolName)
				}
				for _, p := range nc.Pods {
					if p.Spec.NodeSelector[karpv1.NodePoolLabelKey] != nc.NodePoolName {
						t.Errorf("pod %s of pool %s on a new NodeClaim of pool %s", p.Name, p.Spec.NodeSelector[karpv1.NodePoolLabelKey], nc.NodePoolName)
					}
				}
			}
		})
	}
}

// Results core could not place stay in the refined results: pod errors and
// existing nodes are passed through, and nil results give nil.
func TestRefineResultsPassesThrough(t *testing.T) {
	if out, d := provisioning.RefineResults(context.Background(), nil, packing.Options{}); out != nil || d.NodeClaimsBefore != 0 || d.PodsConsidered != 0 {
		t.Fatalf("nil results: got %v, %+v", out, d)
	}
	e := newEnv(t, gpuPool("gpu", 0))
	pods := burst(e, 20, 9)
	// No type in the catalog has 64 GPUs.
	huge := e.pod(1000, 1024, 64)
	e.addPods(t, append(pods, huge)...)
	core, err := e.prov.Schedule(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// core lists the pods itself: pod errors are keyed by its pointers.
	if !hasError(core, huge.Name) {
		t.Fatalf("core placed a 64-GPU pod; the test needs a pod error")
	}
	opts, err := e.refiner.Inputs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, d := provisioning.RefineResults(e.ctx, &core, opts)
	if !hasError(*out, huge.Name) || len(out.PodErrors) != len(core.PodErrors) {
		t.Errorf("pod errors %v, want core's %v", out.PodErrors, core.PodErrors)
	}
	if d.PodsRepacked != len(pods) {
		t.Errorf("PodsRepacked = %d, want %d", d.PodsRepacked, len(pods))
	}
	assertAllPlacedOnce(t, pods, *out)
}

func hasError(r scheduling.Results, pod string) bool {
	return lo.ContainsBy(lo.Keys(r.PodErrors), func(p *corev1.Pod) bool { return p.Name == pod })
}

// snapshot renders results' NodeClaims (identity, pool, pods, options) so a
// change to the input is seen.
func snapshot(r scheduling.Results) []string {
	var out []string
	for _, nc := range r.NewNodeClaims {
		s := nc.NodePoolName
		for _, p := range nc.Pods {
			s += " " + p.Name
		}
		for _, it := range nc.InstanceTypeOptions {
			s += " " + it.Name
		}
		out = append(out, s)
	}
	return out
}

func price(ncs []*scheduling.NodeClaim) float64 {
	return lo.SumBy(ncs, packing.NodeClaimPrice)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func equalReasons(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// NodeClaims core pinned to a capacity reservation stay as core made them
// (the same objects), the pods core could not reserve for stay its pod
// errors, and nothing returned counts on more reserved seats than the
// reservation has.
func TestRefineResultsKeepsReservedNodeClaims(t *testing.T) {
	const seats = 2
	e := newEnv(t, gpuPool("gpu", 0))
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	e.cp.InstanceTypes, _ = catalog.NewInstanceTypes(entries, catalog.Options{Region: "us-east-1", Zones: []string{"us-east-1a", "us-east-1b"},
		CapacityTypes: []string{karpv1.CapacityTypeOnDemand},
		Reservations:  []catalog.Reservation{{ID: "cr-1", InstanceType: "g4dn.xlarge", Zone: "us-east-1a", Count: seats}}})
	var pods []*corev1.Pod
	for range 6 {
		pods = append(pods, e.pod(3000, 12288, 1))
	}
	e.addPods(t, pods...)
	core, err := e.prov.Schedule(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	pinned := lo.CountBy(core.NewNodeClaims, func(nc *scheduling.NodeClaim) bool {
		return packing.Unmodelled(nc) == "pinned to a capacity reservation"
	})
	t.Logf("core: %d NodeClaims, %d pinned to cr-1", len(core.NewNodeClaims), pinned)
	if pinned == 0 {
		t.Fatalf("core pinned no NodeClaim to the reservation; the test needs some")
	}
	opts, err := e.refiner.Inputs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, d := provisioning.RefineResults(e.ctx, &core, opts)
	if got, want := placed(*out), placed(core); !maps.Equal(got, want) {
		t.Errorf("placed %v, core placed %v", got, want)
	}
	if len(out.PodErrors) != len(core.PodErrors) {
		t.Errorf("%d pod errors, core had %d", len(out.PodErrors), len(core.PodErrors))
	}
	for _, nc := range core.NewNodeClaims {
		if !slices.Contains(out.NewNodeClaims, nc) {
			t.Errorf("core's pinned NodeClaim with %d pods not returned as it was", len(nc.Pods))
		}
	}
	if !slices.ContainsFunc(d.Unchanged, func(u provisioning.Unchanged) bool {
		return u.Reason == "pinned to a capacity reservation" && u.NodeClaims == pinned
	}) {
		t.Errorf("unchanged %+v, want the %d pinned NodeClaims kept", d.Unchanged, pinned)
	}
	mayReserve := lo.CountBy(out.NewNodeClaims, func(nc *scheduling.NodeClaim) bool {
		if !nc.Requirements.Get(karpv1.CapacityTypeLabelKey).Has(karpv1.CapacityTypeReserved) {
			return false
		}
		return lo.ContainsBy(nc.InstanceTypeOptions, func(it *cloudprovider.InstanceType) bool {
			return lo.ContainsBy(it.Offerings.Available(), func(o *cloudprovider.Offering) bool {
				return o.CapacityType() == karpv1.CapacityTypeReserved && nc.Requirements.IsCompatible(o.Requirements, kscheduling.AllowUndefinedWellKnownLabels)
			})
		})
	})
	if mayReserve > seats {
		t.Errorf("%d NodeClaims may launch into a reservation of %d seats (decision: %s)", mayReserve, seats, d)
	}
}
