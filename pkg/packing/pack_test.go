package packing_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/packingtest"
)

// req is a pod's requests: cpu CPUs, memGi GiB, one pod, gpus NVIDIA GPUs.
var req = packingtest.Resources

func alloc(cpu, memGi, gpus, pods int64) corev1.ResourceList {
	r := req(cpu, memGi, gpus)
	r[corev1.ResourcePods] = *resource.NewQuantity(pods, resource.DecimalSI)
	return r
}

func TestPack(t *testing.T) {
	g1 := packing.TypeOption{Name: "g1", Allocatable: alloc(4, 16, 1, 30), Capacity: alloc(4, 16, 1, 30), Price: 0.5}
	g4 := packing.TypeOption{Name: "g4", Allocatable: alloc(48, 192, 4, 200), Capacity: alloc(48, 192, 4, 200), Price: 4}
	g8 := packing.TypeOption{Name: "g8", Allocatable: alloc(96, 768, 8, 200), Capacity: alloc(96, 768, 8, 200), Price: 3.5}
	tests := []struct {
		name     string
		items    []packing.Item
		types    []packing.TypeOption
		budget   corev1.ResourceList
		cost     float64
		nodes    int
		unplaced int
	}{
		{name: "empty", items: nil, types: []packing.TypeOption{g1}, cost: 0},
		{name: "no types", items: []packing.Item{{Requests: req(1, 1, 1), Count: 2}}, unplaced: 2},
		{name: "1-GPU pods on 1-GPU types", items: []packing.Item{{Requests: req(2, 8, 1), Count: 3}}, types: []packing.TypeOption{g1, g4, g8}, cost: 1.5, nodes: 3},
		{name: "8 1-GPU pods: one 8-GPU node is cheaper", items: []packing.Item{{Requests: req(2, 8, 1), Count: 8}}, types: []packing.TypeOption{g1, g4, g8}, cost: 3.5, nodes: 1},
		{name: "9 pods: 8-GPU node plus a 1-GPU node", items: []packing.Item{{Requests: req(2, 8, 1), Count: 9}}, types: []packing.TypeOption{g1, g4, g8}, cost: 4, nodes: 2},
		{name: "CPU-heavy 1-GPU pods skip the small type", items: []packing.Item{{Requests: req(8, 8, 1), Count: 2}}, types: []packing.TypeOption{g1, g4, g8}, cost: 3.5, nodes: 1},
		{name: "pod too large", items: []packing.Item{{Requests: req(1, 1, 16), Count: 1}, {Requests: req(1, 1, 1), Count: 1}}, types: []packing.TypeOption{g1, g8}, cost: 0.5, nodes: 1, unplaced: 1},
		{name: "budget forbids the 8-GPU type", items: []packing.Item{{Requests: req(2, 8, 1), Count: 8}}, types: []packing.TypeOption{g1, g8},
			budget: corev1.ResourceList{gpu: resource.MustParse("7")}, cost: 3.5, nodes: 7, unplaced: 1},
		{name: "limit on an option", items: []packing.Item{{Requests: req(2, 8, 1), Count: 3}}, types: []packing.TypeOption{{Name: "r", Allocatable: g1.Allocatable, Price: 0.01, Limit: 2}, g1}, cost: 0.52, nodes: 3},
		{name: "zero count and negative count", items: []packing.Item{{Requests: req(2, 8, 1), Count: 0}, {Requests: req(2, 8, 1), Count: -3}}, types: []packing.TypeOption{g1}, cost: 0},
		{name: "NaN price ignored", items: []packing.Item{{Requests: req(2, 8, 1), Count: 1}}, types: []packing.TypeOption{{Name: "nan", Allocatable: g8.Allocatable, Price: math.NaN()}, g1}, cost: 0.5, nodes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := packing.Pack(tt.items, tt.types, packing.PackOptions{Budget: tt.budget})
			if math.Abs(plan.Cost-tt.cost) > 1e-9 || plan.NodeCount() != tt.nodes || plan.UnplacedCount() != tt.unplaced {
				t.Errorf("cost %v nodes %d unplaced %d, want %v %d %d; plan %+v", plan.Cost, plan.NodeCount(), plan.UnplacedCount(), tt.cost, tt.nodes, tt.unplaced, plan)
			}
			checkPlan(t, tt.items, tt.types, plan)
		})
	}
}

// checkPlan: every node holds its pods, every pod is placed once or
// reported unplaced, limits hold.
func checkPlan(t *testing.T, items []packing.Item, types []packing.TypeOption, plan packing.Plan) {
	t.Helper()
	placed := make([]int, len(items))
	used := map[int]int{}
	for _, n := range plan.Nodes {
		load := corev1.ResourceList{}
		for i, k := range n.Pods {
			placed[i] += k * n.Count
			for name, q := range items[i].Requests {
				v := load[name]
				for j := 0; j < k; j++ {
					v.Add(q)
				}
				load[name] = v
			}
		}
		for name, q := range load {
			a := types[n.Option].Allocatable[name]
			if q.Cmp(a) > 0 {
				t.Errorf("node %s overfull on %s: %s > %s", types[n.Option].Name, name, q.String(), a.String())
			}
		}
		used[n.Option] += n.Count
	}
	for i := range items {
		if placed[i]+plan.Unplaced[i] != max(items[i].Count, 0) {
			t.Errorf("item %d: placed %d + unplaced %d != %d", i, placed[i], plan.Unplaced[i], items[i].Count)
		}
	}
	for o, n := range used {
		if types[o].Limit > 0 && n > types[o].Limit {
			t.Errorf("option %s used %d times, limit %d", types[o].Name, n, types[o].Limit)
		}
	}
}

// TestPackImprovesOnGreedy: over random instances the improved plan is
// never worse than the greedy alone and always valid.
func TestPackImprovesOnGreedy(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	improvesOnGreedy := func(t *testing.T, items []packing.Item, types []packing.TypeOption) {
		t.Helper()
		greedy := packing.Pack(items, types, packing.PackOptions{NoImprove: true})
		improved := packing.Pack(items, types, packing.PackOptions{})
		checkPlan(t, items, types, greedy)
		checkPlan(t, items, types, improved)
		if improved.Cost > greedy.Cost+1e-9 {
			t.Errorf("improved %v > greedy %v", improved.Cost, greedy.Cost)
		}
		if improved.UnplacedCount() > 0 {
			t.Errorf("%d unplaced", improved.UnplacedCount())
		}
	}
	for i := 0; i < 20; i++ {
		items, types := packInput(randomBatch(r, 1+r.Intn(200)), its, np)
		t.Run(fmt.Sprintf("random %d", i), func(t *testing.T) { improvesOnGreedy(t, items, types) })
	}
	improvesOnGreedy(t, []packing.Item{{Requests: req(3, 12, 1), Count: 7}, {Requests: req(10, 40, 2), Count: 3}, {Requests: req(40, 300, 8), Count: 1}},
		[]packing.TypeOption{
			{Name: "a", Allocatable: alloc(4, 16, 1, 30), Price: 0.53},
			{Name: "b", Allocatable: alloc(48, 192, 4, 200), Price: 3.9},
			{Name: "c", Allocatable: alloc(96, 768, 8, 200), Price: 7.1},
			{Name: "d", Allocatable: alloc(16, 64, 2, 100), Price: 1.9},
		})
}
