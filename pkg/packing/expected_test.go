package packing_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

func bound(p *corev1.Pod) { p.Spec.NodeName = "node-a"; p.Status.Phase = corev1.PodRunning }

func onL4(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"karpenter-gpu.io/gpu-name": "l4"} }

func pods(n int, make func() *corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for i := 0; i < n; i++ {
		out = append(out, make())
	}
	return out
}

// roomFor reports whether every launch option of nc holds extra more pods
// like nc's first one besides nc's own.
func roomFor(nc *scheduling.NodeClaim, extra int) bool {
	req := resources.RequestsForPods(nc.Pods...)
	one := resources.RequestsForPods(nc.Pods[0])
	for i := 0; i < extra; i++ {
		req = resources.Merge(req, one)
	}
	for _, it := range nc.InstanceTypeOptions {
		if !resources.Fits(req, it.Allocatable()) {
			return false
		}
	}
	return true
}

// TestExpectedArrivals: expected pods (Options.Expected) make the packer
// buy room for them only when that room costs less now than their own
// capacity later, never launch a node for expected pods alone, and never
// leave a pending pod unplaced that the plain plan places.
func TestExpectedArrivals(t *testing.T) {
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	ten := func() *corev1.Pod { return gpuPod(10000, 8192, 1) }
	cases := []struct {
		name     string
		pending  []*corev1.Pod
		expected []*corev1.Pod
		// want: $/h of the NodeClaims, and how many expected pods each
		// NodeClaim's launch options keep room for.
		cost float64
		room int
	}{
		{name: "no expected pods: the cheapest set for the pending pods", pending: pods(3, ten),
			cost: 3 * 1.14},
		// 3 pending + 5 expected: one g4dn.metal ($7.824) beats 3 × g3.4xlarge
		// now ($3.42) plus the 5 later (g4dn.12xlarge + g3.4xlarge, $5.052).
		{name: "room for five expected pods of the shape", pending: pods(3, ten), expected: pods(5, func() *corev1.Pod { return gpuPod(10000, 8192, 1, bound) }),
			cost: 7.824, room: 5},
		// 1 pending + 1 expected: two g3.4xlarge either way, so no room is bought.
		{name: "room not cheaper", pending: pods(1, ten), expected: pods(1, func() *corev1.Pod { return gpuPod(10000, 8192, 1, bound) }),
			cost: 1.14},
		{name: "expected pods of other constraints are ignored", pending: pods(3, ten), expected: pods(5, func() *corev1.Pod { return gpuPod(10000, 8192, 1, bound, onL4) }),
			cost: 3 * 1.14},
		// 5 expected 8-vCPU pods alone: g4dn.12xlarge + g4dn.2xlarge ($4.664);
		// with them, two g4dn.12xlarge ($7.824 < $3.42 + $4.664), one of them
		// for expected pods only (not launched).
		{name: "expected pods of another size", pending: pods(3, ten), expected: pods(5, func() *corev1.Pod { return gpuPod(8000, 8192, 1, bound) }),
			cost: 3.912, room: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := packing.Options{Expected: map[string][]*corev1.Pod{np.Name: tc.expected}}
			plan := packing.PackPods(np, its, tc.pending, opts)
			if len(plan.Rejected) > 0 {
				t.Fatalf("rejected %v", plan.Rejected)
			}
			if abs(plan.Cost-tc.cost) > eps || abs(fleetCost(plan.NodeClaims)-plan.Cost) > eps {
				t.Fatalf("%d NodeClaims at $%.3f/h (plan says $%.3f), want $%.3f", len(plan.NodeClaims), fleetCost(plan.NodeClaims), plan.Cost, tc.cost)
			}
			onNodes := map[*corev1.Pod]bool{}
			for _, nc := range plan.NodeClaims {
				for _, p := range nc.Pods {
					if p.Spec.NodeName != "" {
						t.Fatalf("expected pod %s on a NodeClaim", p.Name)
					}
					onNodes[p] = true
				}
				if tc.room > 0 && !roomFor(nc, tc.room) {
					t.Errorf("%s: launch options %d lose the room for %d expected pods", nc.Pods[0].Name, len(nc.InstanceTypeOptions), tc.room)
				}
			}
			if len(onNodes) != len(tc.pending) {
				t.Fatalf("%d of %d pending pods placed", len(onNodes), len(tc.pending))
			}
		})
	}
}

// TestExpectedArrivalsRefine: on core's path the room plan replaces core's
// NodeClaims only when it beats them with the expected pods' capacity
// counted, and under a NodePool limit that leaves no room for the expected
// pods the pending ones are still all placed.
func TestExpectedArrivalsRefine(t *testing.T) {
	ctx := testContext()
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	pending := pods(3, func() *corev1.Pod { return gpuPod(10000, 8192, 1) })
	expected := pods(5, func() *corev1.Pod { return gpuPod(10000, 8192, 1, bound) })
	run := solveAndRefine(t, ctx, nps(np), its, pending, nil, func(o *packing.Options) {
		o.Expected = map[string][]*corev1.Pod{np.Name: expected}
	})
	checkFleet(t, run, nil)
	if len(run.refined.NewNodeClaims) != 1 || abs(run.refinedCost-7.824) > eps {
		t.Fatalf("refined to %d NodeClaims at $%.3f/h, want one g4dn.metal", len(run.refined.NewNodeClaims), run.refinedCost)
	}
	if !roomFor(run.refined.NewNodeClaims[0], 5) {
		t.Errorf("the NodeClaim's options lose the room for the expected pods")
	}
	if run.decision.RoomFor != 5 || abs(run.decision.RoomCost-(7.824-3*1.14)) > eps {
		t.Errorf("decision: room for %d expected pods at $%.3f/h, want 5 at $%.3f", run.decision.RoomFor, run.decision.RoomCost, 7.824-3*1.14)
	}

	// A limit of 48 vCPUs has no room for a g4dn.metal: the pending pods
	// still all get capacity.
	limited := func(o *packing.Options) {
		o.Expected = map[string][]*corev1.Pod{np.Name: expected}
		o.Remaining = map[string]corev1.ResourceList{np.Name: {corev1.ResourceCPU: resource.MustParse("48")}}
	}
	run = solveAndRefine(t, ctx, nps(np), its, pending, nil, limited)
	checkFleet(t, run, nil)
	placed := 0
	for _, nc := range run.refined.NewNodeClaims {
		placed += len(nc.Pods)
	}
	if placed != len(pending) {
		t.Fatalf("placed %d of %d pending pods under the limit", placed, len(pending))
	}
}
