package repack_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/test"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
)

func catalogTypes(t *testing.T) []*cloudprovider.InstanceType {
	t.Helper()
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	its, _ := catalog.NewInstanceTypes(entries, catalog.Options{Region: "us-east-1", Zones: []string{"us-east-1a"}, CapacityTypes: []string{karpv1.CapacityTypeOnDemand}})
	return its
}

func nodePool() *karpv1.NodePool {
	np := test.NodePool(karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}})
	np.Spec.Template.Spec.Requirements = []karpv1.NodeSelectorRequirementWithMinValues{
		{Key: v1alpha1.LabelGPUManufacturer, Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia"}},
		{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
	}
	np.Spec.Template.Spec.Taints = []corev1.Taint{{Key: v1alpha1.ResourceNVIDIAGPU, Effect: corev1.TaintEffectNoSchedule}}
	return np
}

var uid int

func pod(cpuMilli, memMiB, gpus int64) *corev1.Pod {
	uid++
	req := corev1.ResourceList{
		corev1.ResourceCPU:         *resource.NewMilliQuantity(cpuMilli, resource.DecimalSI),
		corev1.ResourceMemory:      *resource.NewQuantity(memMiB<<20, resource.BinarySI),
		v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI),
	}
	return test.Pod(test.PodOptions{
		ObjectMeta:           metav1.ObjectMeta{Name: fmt.Sprintf("p%d", uid), Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%d", uid))},
		NodeName:             "old-node",
		Tolerations:          []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists}},
		ResourceRequirements: corev1.ResourceRequirements{Requests: req, Limits: corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: req[v1alpha1.ResourceNVIDIAGPU]}},
	})
}

// nvidiaTypes are the amd64 NVIDIA types (the test NodePool's) with at
// least minGPUs GPUs.
func nvidiaTypes(its []*cloudprovider.InstanceType, minGPUs int64) []*cloudprovider.InstanceType {
	return lo.Filter(its, func(it *cloudprovider.InstanceType, _ int) bool {
		g := it.Capacity[v1alpha1.ResourceNVIDIAGPU]
		return g.Value() >= minGPUs && lo.Contains(it.Requirements.Get(corev1.LabelArchStable).Values(), "amd64") &&
			lo.Contains(it.Requirements.Get(v1alpha1.LabelGPUManufacturer).Values(), "nvidia")
	})
}

// priceOf is the cheapest offering's price of the named instance type.
func priceOf(t *testing.T, its []*cloudprovider.InstanceType, name string) float64 {
	t.Helper()
	it, ok := lo.Find(its, func(it *cloudprovider.InstanceType) bool { return it.Name == name })
	if !ok {
		t.Fatalf("no %s in the catalog", name)
	}
	return cheapest(it)
}

func cheapest(it *cloudprovider.InstanceType) float64 {
	return lo.MinBy(it.Offerings, func(a, b *cloudprovider.Offering) bool { return a.Price < b.Price }).Price
}

// TestPlanProperties: on random GPU nodes of the catalog left with random
// GPU pods that fit them, a move Plan proposes (1) lowers the hourly cost
// by at least the margin, (2) places every movable pod exactly once and no
// other pod, (3) puts on each replacement only pods that one of its
// instance-type options holds (requests within allocatable), and (4) has
// more than one replacement; and Plan proposes nothing for a node whose
// cheapest repacking is not cheaper.
func TestPlanProperties(t *testing.T) {
	its := catalogTypes(t)
	np := nodePool()
	multi := nvidiaTypes(its, 2)
	if len(multi) < 5 {
		t.Fatalf("catalog has %d multi-GPU NVIDIA amd64 types", len(multi))
	}
	rng := rand.New(rand.NewSource(7))
	moves, splits := 0, 0
	for trial := range 300 {
		node := multi[rng.Intn(len(multi))]
		price := cheapest(node)
		alloc := node.Allocatable()
		gpus := alloc[v1alpha1.ResourceNVIDIAGPU]
		var pods []*corev1.Pod
		used := corev1.ResourceList{}
		for range 1 + rng.Intn(int(gpus.Value())) {
			p := pod(int64(500+rng.Intn(8000)), int64(1024+rng.Intn(60000)), 1+int64(rng.Intn(2)))
			next := resources.Merge(used, resources.RequestsForPods(p))
			if !resources.Fits(next, alloc) {
				continue
			}
			used = next
			pods = append(pods, p)
		}
		// A daemonset pod rides along and must not be moved.
		ds := pod(100, 128, 0)
		ds.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "ds", UID: "ds", Controller: lo.ToPtr(true)}}
		move, why := repack.Plan(np, its, append(pods, ds), price)
		if why != "" {
			if len(move.NodeClaims) != 0 {
				t.Fatalf("trial %d: no move (%s) but %d NodeClaims", trial, why, len(move.NodeClaims))
			}
			continue
		}
		moves++
		if move.Cost > price*(1-repack.Margin)+1e-9 {
			t.Fatalf("trial %d: move to $%.3f/h from a $%.3f/h %s raises the cost or saves less than the margin", trial, move.Cost, price, node.Name)
		}
		if len(move.NodeClaims) < 2 {
			t.Fatalf("trial %d: a single replacement is core's move, not a repack", trial)
		}
		splits++
		seen := map[types.UID]int{}
		total := 0.0
		for _, nc := range move.NodeClaims {
			req := resources.RequestsForPods(nc.Pods...)
			fits := lo.Filter(nc.InstanceTypeOptions, func(it *cloudprovider.InstanceType, _ int) bool { return resources.Fits(req, it.Allocatable()) })
			if len(fits) == 0 {
				t.Fatalf("trial %d: no instance type option of a replacement holds its %d pods (%v)", trial, len(nc.Pods), req)
			}
			total += lo.Min(lo.Map(fits, func(it *cloudprovider.InstanceType, _ int) float64 { return cheapest(it) }))
			for _, p := range nc.Pods {
				seen[p.UID]++
			}
		}
		if total > price*(1-repack.Margin)+1e-9 {
			t.Fatalf("trial %d: replacements' cheapest options cost $%.3f/h, not below $%.3f/h", trial, total, price)
		}
		for _, p := range pods {
			if seen[p.UID] != 1 {
				t.Fatalf("trial %d: pod %s placed %d times", trial, p.Name, seen[p.UID])
			}
		}
		if seen[ds.UID] != 0 || len(seen) != len(pods) {
			t.Fatalf("trial %d: the move places pods that are not the node's movable pods", trial)
		}
	}
	if moves == 0 || splits == 0 {
		t.Fatalf("no trial produced a move: the property was never exercised")
	}
	t.Logf("%d of 300 random nodes get a repacking move", moves)
}

// TestPlanRefusals: the cases Plan must refuse, each for its reason.
func TestPlanRefusals(t *testing.T) {
	its := catalogTypes(t)
	np := nodePool()
	price := func(name string) float64 { return priceOf(t, its, name) }
	for _, tc := range []struct {
		name  string
		node  string
		pods  []*corev1.Pod
		split bool
	}{
		{"8-GPU node with two 1-GPU pods splits", "g6.48xlarge", []*corev1.Pod{pod(2000, 8192, 1), pod(2000, 8192, 1)}, true},
		{"one pod left: one smaller node is core's replace", "g6.48xlarge", []*corev1.Pod{pod(2000, 8192, 1)}, false},
		{"a full node is not repacked", "g4dn.12xlarge", []*corev1.Pod{pod(11000, 40000, 1), pod(11000, 40000, 1), pod(11000, 40000, 1), pod(11000, 40000, 1)}, false},
		{"no pods", "g6.48xlarge", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			move, why := repack.Plan(np, its, tc.pods, price(tc.node))
			if tc.split != (why == "") {
				t.Fatalf("split=%v, got reason %q and %d NodeClaims", tc.split, why, len(move.NodeClaims))
			}
		})
	}
}

// TestBestPrunes: a merge takes only the released nodes that pay for moving
// their pods. Each candidate holds 1-GPU pods; the move Best picks must
// evict exactly the pods of the nodes named, save at least Margin of their
// price, and every node it takes must save at least Margin of its own price
// on its own account (the merge without it saves that much less).
func TestBestPrunes(t *testing.T) {
	its := catalogTypes(t)
	np := nodePool()
	price := func(name string) float64 { return priceOf(t, its, name) }
	cand := func(name, it string, pods ...*corev1.Pod) repack.Candidate {
		return repack.Candidate{NodeClaim: &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}}, NodePool: np, Pods: pods, Price: price(it)}
	}
	for _, tc := range []struct {
		name  string
		cands []repack.Candidate
		want  []string // NodeClaims the move takes; nil: no move
	}{
		{"right-sized node left out of the merge", []repack.Candidate{
			cand("big-a", "g6.48xlarge", pod(2000, 8192, 1)),
			cand("big-b", "g6.48xlarge", pod(2000, 8192, 1)),
			cand("small", "g4dn.xlarge", pod(2000, 8192, 1)),
		}, []string{"big-a", "big-b"}},
		{"two stranded nodes merge", []repack.Candidate{
			cand("big-a", "g6.48xlarge", pod(2000, 8192, 1)),
			cand("big-b", "g6.48xlarge", pod(2000, 8192, 1)),
		}, []string{"big-a", "big-b"}},
		{"right-sized nodes only: no move", []repack.Candidate{
			cand("small-a", "g4dn.xlarge", pod(2000, 8192, 1)),
			cand("small-b", "g4dn.xlarge", pod(2000, 8192, 1)),
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			olds, move, ok := repack.Best(np, its, tc.cands)
			names := lo.Map(olds, func(c repack.Candidate, _ int) string { return c.NodeClaim.Name })
			if tc.want == nil {
				if ok {
					t.Fatalf("a move of %v onto %d nodes; want none", names, len(move.NodeClaims))
				}
				return
			}
			if !ok || !lo.ElementsMatch(names, tc.want) {
				t.Fatalf("move of %v (ok=%v); want %v", names, ok, tc.want)
			}
			if want := lo.SumBy(olds, func(c repack.Candidate) int { return len(c.Pods) }); len(move.Pods) != want {
				t.Errorf("the move evicts %d pods; want the %d of its nodes", len(move.Pods), want)
			}
			oldPrice := lo.SumBy(olds, func(c repack.Candidate) float64 { return c.Price })
			if move.Cost > oldPrice*(1-repack.Margin) {
				t.Errorf("replacements $%.3f/h against $%.3f/h: saves less than the margin", move.Cost, oldPrice)
			}
			if len(olds) < 2 {
				return
			}
			for i, c := range olds {
				rest := append(append([]repack.Candidate(nil), olds[:i]...), olds[i+1:]...)
				_, without, ok := repack.Best(np, its, rest)
				restSaving := 0.0
				if ok {
					restSaving = lo.SumBy(rest, func(c repack.Candidate) float64 { return c.Price }) - without.Cost
				}
				if share := (oldPrice - move.Cost - restSaving) / c.Price; share < repack.Margin-1e-9 {
					t.Errorf("%s saves %.1f%% of its price in the merge; want at least %.0f%%", c.NodeClaim.Name, share*100, repack.Margin*100)
				}
			}
		})
	}
}

// TestBestProperties: on random sets of released GPU nodes of the catalog
// (one to six, 1- to 8-GPU, each left with random pods that fit it), the
// move Best picks (a merge, pruned, or a split) takes only candidates,
// lowers the hourly cost of the nodes it takes by at least the margin,
// places every movable pod of those nodes exactly once and no other pod,
// and puts on each replacement only pods one of its options holds.
func TestBestProperties(t *testing.T) {
	its := catalogTypes(t)
	np := nodePool()
	gpuTypes := nvidiaTypes(its, 1)
	rng := rand.New(rand.NewSource(11))
	moves, merges := 0, 0
	for trial := range 120 {
		var cands []repack.Candidate
		for i := range 1 + rng.Intn(6) {
			node := gpuTypes[rng.Intn(len(gpuTypes))]
			alloc := node.Allocatable()
			gpus := alloc[v1alpha1.ResourceNVIDIAGPU]
			var pods []*corev1.Pod
			used := corev1.ResourceList{}
			for range 1 + rng.Intn(int(gpus.Value())) {
				p := pod(int64(500+rng.Intn(8000)), int64(1024+rng.Intn(60000)), 1)
				if next := resources.Merge(used, resources.RequestsForPods(p)); resources.Fits(next, alloc) {
					used, pods = next, append(pods, p)
				}
			}
			cands = append(cands, repack.Candidate{NodeClaim: &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i)}}, NodePool: np, Pods: pods, Price: cheapest(node)})
		}
		olds, move, ok := repack.Best(np, its, cands)
		if !ok {
			continue
		}
		moves++
		if len(olds) > 1 {
			merges++
		}
		oldPrice, want := 0.0, map[types.UID]bool{}
		for _, c := range olds {
			if !lo.ContainsBy(cands, func(k repack.Candidate) bool { return k.NodeClaim == c.NodeClaim }) {
				t.Fatalf("trial %d: the move takes %s, not a candidate", trial, c.NodeClaim.Name)
			}
			oldPrice += c.Price
			for _, p := range c.Pods {
				want[p.UID] = true
			}
		}
		if move.Cost > oldPrice*(1-repack.Margin)+1e-9 {
			t.Fatalf("trial %d: replacements $%.3f/h for nodes at $%.3f/h save less than the margin", trial, move.Cost, oldPrice)
		}
		seen := map[types.UID]int{}
		for _, nc := range move.NodeClaims {
			req := resources.RequestsForPods(nc.Pods...)
			if !lo.SomeBy(nc.InstanceTypeOptions, func(it *cloudprovider.InstanceType) bool { return resources.Fits(req, it.Allocatable()) }) {
				t.Fatalf("trial %d: no option of a replacement holds its %d pods", trial, len(nc.Pods))
			}
			for _, p := range nc.Pods {
				seen[p.UID]++
			}
		}
		for uid := range want {
			if seen[uid] != 1 {
				t.Fatalf("trial %d: pod %s placed %d times", trial, uid, seen[uid])
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("trial %d: the replacements hold %d pods, the nodes taken %d", trial, len(seen), len(want))
		}
	}
	if moves == 0 || merges == 0 {
		t.Fatalf("%d moves, %d merges: the properties were never exercised", moves, merges)
	}
	t.Logf("%d of 120 random candidate sets get a move, %d of them merges", moves, merges)
}
