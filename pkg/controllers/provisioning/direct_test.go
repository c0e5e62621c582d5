package provisioning_test

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
)

// shapes are Alibaba-like GPU pod shapes: cpu milli, memory MiB, GPUs.
var shapes = [][3]int64{{4000, 16384, 1}, {8000, 30000, 1}, {12000, 60000, 2}, {16000, 64000, 4}, {32000, 120000, 4}, {64000, 400000, 8}, {2000, 8000, 1}}

func burst(e *env, n int, seed int64, mutate ...func(*corev1.Pod)) []*corev1.Pod {
	r := rand.New(rand.NewSource(seed))
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		s := shapes[r.Intn(len(shapes))]
		pods[i] = e.pod(s[0], s[1], s[2], mutate...)
	}
	return pods
}

// tookDirectPath reports whether any decision so far was the direct path's.
func tookDirectPath(e *env) bool {
	return lo.ContainsBy(e.refiner.Decisions(), func(d provisioning.Decision) bool { return d.Direct })
}

// A burst of GPU pods on an empty cluster: the direct path places every
// pod exactly once, on NodeClaims that cost no more than core's, and takes
// the direct path only from DirectMinPods pods.
func TestDirectPathBurst(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pods       int
		minPods    int
		wantDirect bool
	}{
		{"burst above the threshold", 200, 0, true},
		{"small batch stays on core's path", provisioning.DefaultDirectMinPods - 1, 0, false},
		{"direct path disabled", 200, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, gpuPool("gpu", 0))
			pods := burst(e, tc.pods, 1)
			e.addPods(t, pods...)
			got, err := e.controller(tc.minPods).Schedule(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := tookDirectPath(e); d != tc.wantDirect {
				t.Fatalf("direct path taken = %v, want %v", d, tc.wantDirect)
			}
			assertAllPlacedOnce(t, pods, got)

			stock := newEnv(t, gpuPool("gpu", 0))
			stock.addPods(t, burst(stock, tc.pods, 1)...)
			core, err := stock.prov.Schedule(stock.ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d pods: karpenter-gpu %d NodeClaims $%.2f/h, core %d NodeClaims $%.2f/h", tc.pods, len(got.NewNodeClaims), cost(got.NewNodeClaims), len(core.NewNodeClaims), cost(core.NewNodeClaims))
			if cost(got.NewNodeClaims) > cost(core.NewNodeClaims)+1e-6 {
				t.Errorf("karpenter-gpu fleet $%.4f/h costs more than core's $%.4f/h", cost(got.NewNodeClaims), cost(core.NewNodeClaims))
			}
			for _, nc := range got.NewNodeClaims {
				if len(nc.InstanceTypeOptions) == 0 || len(nc.InstanceTypeOptions) > scheduling.MaxInstanceTypes {
					t.Errorf("NodeClaim with %d instance type options", len(nc.InstanceTypeOptions))
				}
			}
		})
	}
}

// Pods still pending while their NodeClaims launch must land on that
// in-flight capacity, not on new NodeClaims: the next loop launches nothing.
func TestDirectPathUsesInFlightCapacity(t *testing.T) {
	e := newEnv(t, gpuPool("gpu", 0))
	pods := burst(e, 200, 2)
	e.addPods(t, pods...)
	c := e.controller(0)
	first, err := c.Schedule(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !tookDirectPath(e) || len(first.NewNodeClaims) == 0 {
		t.Fatalf("first loop: direct=%v, %d NodeClaims", tookDirectPath(e), len(first.NewNodeClaims))
	}
	e.launch(t, first)
	second, err := c.Schedule(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.NewNodeClaims) != 0 {
		t.Fatalf("second loop proposed %d new NodeClaims for pods already provided for (duplicate capacity)", len(second.NewNodeClaims))
	}
	assertAllPlacedOnce(t, pods, second)

	// A second burst: the first one's pods keep their capacity, the new
	// pods get new NodeClaims only.
	more := burst(e, 150, 3)
	e.addPods(t, more...)
	third, err := c.Schedule(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertAllPlacedOnce(t, append(pods, more...), third)
	// Existing and in-flight capacity is used exactly as core's scheduler
	// uses it for the same pending pods (core may move a first-burst pod
	// to new capacity when a larger new pod takes its place; so may we).
	core, err := e.prov.Schedule(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := onExisting(third), onExisting(core); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("pods on existing capacity differ from core's:\nkarpenter-gpu %v\ncore          %v", a, b)
	}
	if len(onExisting(third)) == 0 || len(third.NewNodeClaims) == 0 {
		t.Fatalf("want both existing and new capacity used, got %d pods on existing nodes, %d new NodeClaims", len(onExisting(third)), len(third.NewNodeClaims))
	}
}

// onExisting lists, sorted, "node/pod" for the pods placed on existing nodes.
func onExisting(r scheduling.Results) []string {
	var out []string
	for _, n := range r.ExistingNodes {
		for _, p := range n.Pods {
			out = append(out, n.Name()+"/"+p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// In a mixed batch the direct path takes only the GPU pods the packer
// models: CPU pods and GPU pods with topology spread get core's decisions,
// identical to stock Karpenter's on the same batch.
func TestDirectPathMixedBatch(t *testing.T) {
	build := func(e *env) []*corev1.Pod {
		pods := burst(e, 150, 4)
		for i := 0; i < 20; i++ {
			pods = append(pods, e.pod(int64(500+100*i), 1024, 0))
		}
		spread := func(p *corev1.Pod) {
			p.Labels = map[string]string{"app": "spread"}
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}}}}
		}
		for i := 0; i < 6; i++ {
			pods = append(pods, e.pod(4000, 16384, 1, spread))
		}
		return pods
	}
	e := newEnv(t, gpuPool("gpu", 0), cpuPool("cpu"))
	got := scheduleDirect(t, e, build(e))

	stock := newEnv(t, gpuPool("gpu", 0), cpuPool("cpu"))
	stock.addPods(t, build(stock)...)
	core, err := stock.prov.Schedule(stock.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := claimsOf(got, "cpu"), claimsOf(core, "cpu"); strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("CPU pods' NodeClaims differ from core's:\nkarpenter-gpu:\n%s\ncore:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	zones := map[string]int{}
	for _, nc := range got.NewNodeClaims {
		for _, p := range nc.Pods {
			if p.Labels["app"] == "spread" {
				zones[strings.Join(nc.Requirements.Get(corev1.LabelTopologyZone).Values(), ",")]++
			}
		}
	}
	if len(zones) != 2 || zones["us-east-1a"] != 3 || zones["us-east-1b"] != 3 {
		t.Errorf("spread pods by zone = %v, want 3 in each of the two zones (core's topology handling)", zones)
	}
}

// NodePools are tried by weight, as core tries its templates: pods go to
// the heaviest pool that can hold them, the others fall through.
func TestDirectPathNodePoolWeights(t *testing.T) {
	e := newEnv(t,
		gpuPool("t4-first", 50, karpv1.NodeSelectorRequirementWithMinValues{Key: v1alpha1.LabelGPUName, Operator: corev1.NodeSelectorOpIn, Values: []string{"t4"}}),
		gpuPool("any", 1))
	// Shapes a T4 type holds; the l40s pods cannot go to the first pool.
	var pods []*corev1.Pod
	for i := 0; i < 120; i++ {
		s := [][3]int64{{4000, 16384, 1}, {2000, 8000, 1}, {8000, 30000, 1}, {16000, 64000, 4}}[i%4]
		pods = append(pods, e.pod(s[0], s[1], s[2]))
	}
	l40s := func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{v1alpha1.LabelGPUName: "l40s"} }
	for i := 0; i < 10; i++ {
		pods = append(pods, e.pod(4000, 16384, 1, l40s))
	}
	got := scheduleDirect(t, e, pods)
	for _, nc := range got.NewNodeClaims {
		wantPool := "t4-first"
		for _, p := range nc.Pods {
			if p.Spec.NodeSelector[v1alpha1.LabelGPUName] == "l40s" {
				wantPool = "any"
			}
		}
		if nc.NodePoolName != wantPool {
			t.Errorf("NodeClaim with %d pods in pool %s, want %s", len(nc.Pods), nc.NodePoolName, wantPool)
		}
	}
}

// scheduleDirect adds pods, runs one loop, and checks it took the direct
// path and placed every pod exactly once.
func scheduleDirect(t *testing.T, e *env, pods []*corev1.Pod) scheduling.Results {
	t.Helper()
	e.addPods(t, pods...)
	got, err := e.controller(0).Schedule(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !tookDirectPath(e) {
		t.Fatal("direct path not taken")
	}
	assertAllPlacedOnce(t, pods, got)
	return got
}

func assertAllPlacedOnce(t *testing.T, pods []*corev1.Pod, r scheduling.Results) {
	t.Helper()
	got := placed(r)
	for _, p := range pods {
		if got[p.Name] != 1 {
			t.Fatalf("pod %s placed %d times (pod errors: %v)", p.Name, got[p.Name], r.PodErrors)
		}
	}
	if len(got) != len(pods) {
		t.Fatalf("%d pods placed, want %d", len(got), len(pods))
	}
}

// claimsOf renders a pool's new NodeClaims (pods and instance types) in a
// canonical order.
func claimsOf(r scheduling.Results, pool string) []string {
	var out []string
	for _, nc := range r.NewNodeClaims {
		if nc.NodePoolName != pool {
			continue
		}
		var pods, types []string
		for _, p := range nc.Pods {
			pods = append(pods, p.Name)
		}
		for _, it := range nc.InstanceTypeOptions {
			types = append(types, it.Name)
		}
		sort.Strings(pods)
		sort.Strings(types)
		out = append(out, fmt.Sprint(pods, types))
	}
	sort.Strings(out)
	return out
}

// BenchmarkProvisioningLoop times one provisioning decision for a burst of
// 1,000 / 5,000 / 10,000 pending GPU pods (1/2/4/8-GPU shapes) over the
// full catalog: karpenter-gpu's loop (direct path) and core's Schedule on
// the same batch. Core's takes minutes at 10,000 pods; run alone with
//
//	go test ./pkg/controllers/provisioning -run '^$' -bench ProvisioningLoop -benchtime 1x -timeout 60m
func BenchmarkProvisioningLoop(b *testing.B) {
	for _, n := range []int{1000, 5000, 10000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				e := newEnv(b, gpuPool("gpu", 0))
				e.addPods(b, burst(e, n, int64(n))...)
				start := time.Now()
				got, err := e.controller(0).Schedule(e.ctx)
				kg := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				start = time.Now()
				core, err := e.prov.Schedule(e.ctx)
				coreTime := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(kg.Seconds(), "karpenter-gpu-s")
				b.ReportMetric(coreTime.Seconds(), "core-s")
				fmt.Printf("provisioning loop %5d GPU pods: karpenter-gpu %v (%d NodeClaims, $%.2f/h), core Schedule %v (%d NodeClaims, $%.2f/h)\n",
					n, kg.Round(time.Millisecond), len(got.NewNodeClaims), cost(got.NewNodeClaims), coreTime.Round(time.Millisecond), len(core.NewNodeClaims), cost(core.NewNodeClaims))
			}
		})
	}
}
