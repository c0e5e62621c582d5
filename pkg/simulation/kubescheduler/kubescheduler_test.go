package kubescheduler_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	ks "github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
)

func node(name, cpu, mem string, gpus int64, taints ...corev1.Taint) *corev1.Node {
	alloc := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods: resource.MustParse("110"),
	}
	if gpus > 0 {
		alloc[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status:     corev1.NodeStatus{Allocatable: alloc, Capacity: alloc},
	}
}

func pod(cpu, mem string, gpus int64) *corev1.Pod {
	req := corev1.ResourceList{}
	if cpu != "" {
		req[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		req[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	if gpus > 0 {
		req[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i", Resources: corev1.ResourceRequirements{Requests: req}}},
			Tolerations: []corev1.Toleration{{Key: string(v1alpha1.ResourceNVIDIAGPU), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}},
	}
}

func with[T any](v T, f func(T)) T { f(v); return v }

// Every expected score below is worked out by hand from the formulas of
// k8s.io/kubernetes v1.36.1 (see the package documentation).
func TestScores(t *testing.T) {
	gpuTaint := corev1.Taint{Key: string(v1alpha1.ResourceNVIDIAGPU), Effect: corev1.TaintEffectNoSchedule}
	preferNo := corev1.Taint{Key: "spot", Value: "true", Effect: corev1.TaintEffectPreferNoSchedule}
	cases := []struct {
		name    string
		profile ks.Profile
		pod     *corev1.Pod
		nodes   []*ks.NodeInfo
		want    []int64
		chosen  string
	}{{
		// a: fit (1000/4000, 4/16 free) 25, balanced with (.75,.75) and
		// without (.5,.5) both 100 -> 75, taints 100*3; b: fit 75.
		name: "least allocated spreads", profile: ks.ProfileDefault, pod: pod("1", "4Gi", 0),
		nodes: []*ks.NodeInfo{ks.NewNodeInfo(node("a", "4", "16Gi", 0), pod("2", "8Gi", 0)), ks.NewNodeInfo(node("b", "4", "16Gi", 0))},
		want:  []int64{25 + 75 + 300, 75 + 75 + 300}, chosen: "b",
	}, {
		name: "most allocated packs", profile: ks.ProfileBinPacking, pod: pod("1", "4Gi", 0),
		nodes: []*ks.NodeInfo{ks.NewNodeInfo(node("a", "4", "16Gi", 0), pod("2", "8Gi", 0)), ks.NewNodeInfo(node("b", "4", "16Gi", 0))},
		want:  []int64{75 + 75 + 300, 25 + 75 + 300}, chosen: "a",
	}, {
		// Pods without requests count 100m and 200Mi in NodeResourcesFit and
		// nothing in BalancedAllocation, which skips a best-effort pod.
		// a: cpu (1000-200)/1000 -> 80, mem (1000Mi-400Mi)/1000Mi -> 60: 70.
		// b: 90 and 80: 85.
		name: "best effort pods count at the defaults", profile: ks.ProfileDefault, pod: pod("", "", 0),
		nodes: []*ks.NodeInfo{ks.NewNodeInfo(node("a", "1", "1000Mi", 0), pod("", "", 0)), ks.NewNodeInfo(node("b", "1", "1000Mi", 0))},
		want:  []int64{70 + 300, 85 + 300}, chosen: "b",
	}, {
		// The GPU counts only in the bin-packing strategy. Pod 1 GPU, 1 cpu,
		// 4Gi. g8 (8 GPUs, 4 used; 32 cpu, 128Gi; 8 cpu, 32Gi used):
		// cpu 9/32 -> 28, mem 36/128 -> 28, gpu 5/8 -> 62:
		// (28+28+620)/12 = 56. Balanced: with (9/32, 36/128) equal -> 100,
		// without equal -> 100: 75.
		// g1 (1 GPU, none used; 8 cpu, 32Gi): cpu 1/8 -> 12, mem 12, gpu 100:
		// (12+12+1000)/12 = 85; balanced 75.
		name: "gpu weighs most when packing", profile: ks.ProfileBinPacking, pod: pod("1", "4Gi", 1),
		nodes: []*ks.NodeInfo{
			ks.NewNodeInfo(node("g1", "8", "32Gi", 1, gpuTaint)),
			ks.NewNodeInfo(node("g8", "32", "128Gi", 8, gpuTaint), pod("8", "32Gi", 4)),
		},
		want: []int64{85 + 75 + 300, 56 + 75 + 300}, chosen: "g1",
	}, {
		// Default profile on the same nodes: LeastAllocated over cpu and
		// memory only. g1: 7/8 -> 87 both: 87. g8: 23/32 -> 71 both: 71.
		name: "gpu ignored when spreading", profile: ks.ProfileDefault, pod: pod("1", "4Gi", 1),
		nodes: []*ks.NodeInfo{
			ks.NewNodeInfo(node("g1", "8", "32Gi", 1, gpuTaint)),
			ks.NewNodeInfo(node("g8", "32", "128Gi", 8, gpuTaint), pod("8", "32Gi", 4)),
		},
		want: []int64{87 + 75 + 300, 71 + 75 + 300}, chosen: "g1",
	}, {
		// Balanced: a has cpu 2/4 used, memory 0/16: without (.5, 0) std .25
		// -> 75; with the pod (1 cpu, 8Gi) (.75, .5) std .125 -> 87:
		// 50 + (50+87-75)/2 = 81. b empty: without 100, with (.25, .5) std
		// .125 -> 87: 50 + (50+87-100)/2 = 68.
		// Fit: a cpu 25, mem (16-8)/16 50: 37. b: 75, 50: 62.
		name: "balanced allocation rewards evening out", profile: ks.ProfileDefault, pod: pod("1", "8Gi", 0),
		nodes: []*ks.NodeInfo{ks.NewNodeInfo(node("a", "4", "16Gi", 0), pod("2", "", 0)), ks.NewNodeInfo(node("b", "4", "16Gi", 0))},
		// a's non-zero memory counts the 200Mi default: (16384-8192-200)/16384
		// -> 48: (25+48)/2 = 36.
		want: []int64{36 + 81 + 300, 62 + 68 + 300}, chosen: "b",
	}, {
		// One untolerated PreferNoSchedule taint on a: counts (1, 0),
		// reversed: a 0, b 100 (times 3).
		name: "prefer no schedule", profile: ks.ProfileDefault, pod: pod("1", "4Gi", 0),
		nodes: []*ks.NodeInfo{ks.NewNodeInfo(node("a", "4", "16Gi", 0, preferNo)), ks.NewNodeInfo(node("b", "4", "16Gi", 0))},
		want:  []int64{75 + 75 + 0, 75 + 75 + 300}, chosen: "b",
	}, {
		name: "tolerated prefer no schedule", profile: ks.ProfileDefault,
		pod: with(pod("1", "4Gi", 0), func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "spot", Operator: corev1.TolerationOpExists})
		}),
		nodes: []*ks.NodeInfo{ks.NewNodeInfo(node("a", "4", "16Gi", 0, preferNo)), ks.NewNodeInfo(node("b", "4", "16Gi", 0))},
		want:  []int64{75 + 75 + 300, 75 + 75 + 300}, chosen: "a",
	}, {
		// Preferred terms: a matches weight 10 and 30 (40), b matches 30:
		// normalized 100 and 75, times 2.
		name: "preferred node affinity", profile: ks.ProfileDefault,
		pod: with(pod("1", "4Gi", 0), func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
				{Weight: 10, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}},
				{Weight: 30, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpExists}}}},
			}}}
		}),
		nodes: []*ks.NodeInfo{ks.NewNodeInfo(node("b", "4", "16Gi", 0)), ks.NewNodeInfo(node("a", "4", "16Gi", 0))},
		want:  []int64{75 + 75 + 300 + 150, 75 + 75 + 300 + 200}, chosen: "a",
	}, {
		name: "ties go to the first name", profile: ks.ProfileDefault, pod: pod("1", "4Gi", 0),
		nodes: []*ks.NodeInfo{ks.NewNodeInfo(node("c", "4", "16Gi", 0)), ks.NewNodeInfo(node("b", "4", "16Gi", 0))},
		want:  []int64{450, 450}, chosen: "b",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := ks.NewPod(tc.pod)
			for _, ni := range tc.nodes {
				if !p.Fits(ni) {
					t.Fatalf("pod does not fit %s", ni.Node.Name)
				}
			}
			got := ks.Scores(tc.profile, p, tc.nodes)
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Errorf("score of %s = %d, want %d", tc.nodes[i].Node.Name, got[i], tc.want[i])
				}
			}
			res := ks.Schedule(tc.profile, p, tc.nodes)
			if res.Node == nil || res.Node.Node.Name != tc.chosen {
				t.Errorf("chose %v, want %s", res.Node, tc.chosen)
			}
		})
	}
}

func TestFilters(t *testing.T) {
	base := func() *corev1.Node { return node("n", "4", "16Gi", 2) }
	cases := []struct {
		name  string
		node  *corev1.Node
		pods  []*corev1.Pod
		pod   *corev1.Pod
		wants bool
	}{
		{"fits", base(), nil, pod("1", "1Gi", 2), true},
		{"gpus used", base(), []*corev1.Pod{pod("", "", 1)}, pod("1", "1Gi", 2), false},
		{"gpus missing", node("n", "4", "16Gi", 0), nil, pod("1", "1Gi", 1), false},
		{"cpu", base(), []*corev1.Pod{pod("3500m", "", 0)}, pod("1", "1Gi", 0), false},
		{"memory", base(), nil, pod("1", "17Gi", 0), false},
		{"defaults do not count in the filter", base(), []*corev1.Pod{pod("", "", 0)}, pod("4", "16Gi", 0), true},
		{"too many pods", with(base(), func(n *corev1.Node) { n.Status.Allocatable[corev1.ResourcePods] = resource.MustParse("1") }),
			[]*corev1.Pod{pod("", "", 0)}, pod("", "", 0), false},
		{"unschedulable", with(base(), func(n *corev1.Node) { n.Spec.Unschedulable = true }), nil, pod("", "", 0), false},
		{"unschedulable tolerated", with(base(), func(n *corev1.Node) { n.Spec.Unschedulable = true }), nil,
			with(pod("", "", 0), func(p *corev1.Pod) {
				p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists})
			}), true},
		{"no execute taint", with(base(), func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "karpenter.sh/unregistered", Effect: corev1.TaintEffectNoExecute}}
		}), nil, pod("", "", 0), false},
		{"prefer no schedule does not filter", with(base(), func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}}
		}), nil, pod("", "", 0), true},
		{"node selector", base(), nil, with(pod("", "", 0), func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"gpu": "a100"} }), false},
		{"node selector matches", with(base(), func(n *corev1.Node) { n.Labels["gpu"] = "a100" }), nil,
			with(pod("", "", 0), func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"gpu": "a100"} }), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ks.NewPod(tc.pod).Fits(ks.NewNodeInfo(tc.node, tc.pods...)); got != tc.wants {
				t.Errorf("Fits = %v, want %v", got, tc.wants)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	nodes := func() []*ks.NodeInfo {
		return []*ks.NodeInfo{ks.NewNodeInfo(node("a", "4", "16Gi", 0), pod("3", "", 0)), ks.NewNodeInfo(node("b", "4", "16Gi", 0)), ks.NewNodeInfo(node("c", "1", "1Gi", 0))}
	}
	t.Run("nominated node taken without scoring", func(t *testing.T) {
		p := pod("1", "1Gi", 0)
		p.Status.NominatedNodeName = "a"
		if res := ks.Schedule(ks.ProfileDefault, ks.NewPod(p), nodes()); res.Node == nil || res.Node.Node.Name != "a" || res.Scores != nil {
			t.Errorf("got %+v, want node a unscored", res)
		}
	})
	t.Run("nominated node that does not fit is ignored", func(t *testing.T) {
		p := pod("2", "1Gi", 0)
		p.Status.NominatedNodeName = "a"
		if res := ks.Schedule(ks.ProfileDefault, ks.NewPod(p), nodes()); res.Node == nil || res.Node.Node.Name != "b" {
			t.Errorf("got %+v, want b", res)
		}
	})
	t.Run("single feasible node", func(t *testing.T) {
		if res := ks.Schedule(ks.ProfileDefault, ks.NewPod(pod("2", "2Gi", 0)), nodes()); res.Node == nil || res.Node.Node.Name != "b" || res.Scores != nil {
			t.Errorf("got %+v, want b unscored", res)
		}
	})
	t.Run("none", func(t *testing.T) {
		if res := ks.Schedule(ks.ProfileDefault, ks.NewPod(pod("5", "", 0)), nodes()); res.Node != nil || res.Feasible != nil {
			t.Errorf("got %+v, want nothing", res)
		}
	})
	t.Run("reserve updates the node", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			profile ks.Profile
			want    []string
		}{
			{"spread", ks.ProfileDefault, []string{"a", "b", "a", "b"}},
			{"bin-packing", ks.ProfileBinPacking, []string{"a", "a", "a", "a"}},
		} {
			ns := []*ks.NodeInfo{ks.NewNodeInfo(node("a", "4", "16Gi", 0)), ks.NewNodeInfo(node("b", "4", "16Gi", 0))}
			var got []string
			for range 4 {
				p := ks.NewPod(pod("1", "1Gi", 0))
				res := ks.Schedule(tc.profile, p, ns)
				p.Reserve(res.Node)
				got = append(got, res.Node.Node.Name)
			}
			if !equal(got, tc.want) {
				t.Errorf("%s placed %v, want %v", tc.name, got, tc.want)
			}
		}
	})
	t.Run("bad preferred affinity fails the cycle", func(t *testing.T) {
		p := pod("1", "1Gi", 0)
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
			{Weight: 1, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "bad key!", Operator: corev1.NodeSelectorOpExists}}}},
		}}}
		if res := ks.Schedule(ks.ProfileDefault, ks.NewPod(p), nodes()); res.Err == nil || res.Node != nil {
			t.Errorf("got %+v, want an error", res)
		}
	})
}

// TestNominator: a pending pod nominated to a node holds its requests there
// against pods of equal or lower priority, not against higher ones, not
// against itself, and no longer once it is bound.
func TestNominator(t *testing.T) {
	withPriority := func(p *corev1.Pod, prio int32) *corev1.Pod { p.Spec.Priority = &prio; return p }
	// x (8 GPUs) is the emptier node, so spreading prefers it; y has 2 of
	// its 8 GPUs free.
	setup := func() (x, y *ks.NodeInfo, big *ks.Pod) {
		x = ks.NewNodeInfo(node("x", "64", "512Gi", 8))
		y = ks.NewNodeInfo(node("y", "64", "512Gi", 8), pod("8", "64Gi", 6))
		bigPod := pod("32", "256Gi", 7)
		bigPod.Name, bigPod.Status.NominatedNodeName = "big", "x"
		big = ks.NewPod(withPriority(bigPod, 0))
		x.Nominate(big)
		return x, y, big
	}
	cases := []struct {
		name     string
		priority int32
		gpus     int64
		want     string
	}{
		{"equal priority: the nominated pod's GPUs are held", 0, 2, "y"},
		{"lower priority: held too", -10, 2, "y"},
		{"higher priority: ignores the nomination", 10, 2, "x"},
		{"fits beside the nominated pod", 0, 1, "x"},
		{"fits nowhere but in the held share", 0, 3, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, y, _ := setup()
			res := ks.Schedule(ks.ProfileDefault, ks.NewPod(withPriority(pod("1", "8Gi", c.gpus), c.priority)), []*ks.NodeInfo{x, y})
			got := ""
			if res.Node != nil {
				got = res.Node.Node.Name
			}
			if got != c.want {
				t.Errorf("placed on %q, want %q", got, c.want)
			}
		})
	}
	t.Run("the nominated pod itself is not held against it", func(t *testing.T) {
		x, y, big := setup()
		if res := ks.Schedule(ks.ProfileDefault, big, []*ks.NodeInfo{x, y}); res.Node != x {
			t.Errorf("nominated pod placed on %v, want x", res.Node)
		}
	})
	t.Run("bound elsewhere, the nomination is released", func(t *testing.T) {
		x, y, big := setup()
		big.Reserve(ks.NewNodeInfo(node("z", "64", "512Gi", 8)))
		if x.Nominated() != 0 {
			t.Fatalf("x still has %d nominated pods", x.Nominated())
		}
		if res := ks.Schedule(ks.ProfileDefault, ks.NewPod(pod("1", "8Gi", 2)), []*ks.NodeInfo{x, y}); res.Node != x {
			t.Errorf("placed on %v, want x once the nomination is gone", res.Node)
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseProfile(t *testing.T) {
	for in, want := range map[string]ks.Profile{"": ks.ProfileDefault, "default": ks.ProfileDefault, "bin-packing": ks.ProfileBinPacking} {
		if got, err := ks.ParseProfile(in); err != nil || got != want {
			t.Errorf("ParseProfile(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ks.ParseProfile("most-allocated"); err == nil {
		t.Error("ParseProfile accepted an unknown profile")
	}
}
