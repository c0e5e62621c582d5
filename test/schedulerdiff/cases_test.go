package schedulerdiff_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	ks "github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
)

// clusterCase is one randomized small cluster: nodes, the pods already
// bound to them, and the pods to schedule in turn.
type clusterCase struct {
	index   int
	nodes   []*corev1.Node
	bound   map[string][]*corev1.Pod
	pending []*corev1.Pod
	// nominated are pods that stay pending (they select a node label no
	// node has) with status.nominatedNodeName set to the node they are
	// listed under, as an external component (Karpenter) sets it
	// (KEP-5278): kube-scheduler's nominator holds their requests there.
	nominated map[string][]*corev1.Pod
}

// neverPreempts returns a PriorityClass of value 0 (the pending pods'
// priority: the nominator holds a nominated pod's share against pods of
// equal or lower priority) whose pods never preempt, creating it once.
func neverPreempts(ctx context.Context, t *testing.T, kube client.Client) string {
	t.Helper()
	never := corev1.PreemptNever
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "schedulerdiff-never-preempts"}, Value: 0, PreemptionPolicy: &never}
	err := kube.Create(ctx, pc)
	if apierrors.IsAlreadyExists(err) {
		return pc.Name
	}
	if err != nil {
		t.Fatalf("creating %s: %v", pc.Name, err)
	}
	// The API server's Priority admission plugin reads PriorityClasses
	// from an informer: a pod naming the class just created can be
	// refused ("no PriorityClass with name ...") until the informer has
	// it. A dry-run create tells when admission sees it.
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "priorityclass-probe", Namespace: namespace},
		Spec: corev1.PodSpec{
			PriorityClassName: pc.Name,
			Containers:        []corev1.Container{{Name: "c", Image: "pause"}},
		},
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := kube.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if apierrors.IsForbidden(err) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		t.Fatalf("waiting for admission to see %s: %v", pc.Name, err)
	}
	return pc.Name
}

// nowhereLabel is the node label nominated pods select and no node has.
const nowhereLabel = "schedulerdiff/nowhere"

type nodeTemplate struct {
	milliCPU, memMi, gpus int64
	model                 string
}

// Node sizes of GPU clusters: CPU nodes (small ones, where the
// scheduler's 100m / 200Mi stand-ins for missing requests weigh), and 1-,
// 4- and 8-GPU nodes.
var templates = []nodeTemplate{
	{2000, 4096, 0, ""}, {4000, 16384, 0, ""}, {16000, 65536, 0, ""}, {8000, 32768, 1, "l4"},
	{32000, 131072, 4, "l4"}, {48000, 196608, 4, "a100"}, {96000, 786432, 8, "a100"},
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

func chance(rng *rand.Rand, p float64) bool { return rng.Float64() < p }

func requests(milliCPU, memMi, gpus int64) corev1.ResourceList {
	r := corev1.ResourceList{}
	if milliCPU >= 0 {
		r[corev1.ResourceCPU] = *resource.NewMilliQuantity(milliCPU, resource.DecimalSI)
	}
	if memMi >= 0 {
		r[corev1.ResourceMemory] = *resource.NewQuantity(memMi*1024*1024, resource.BinarySI)
	}
	if gpus > 0 {
		r[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	return r
}

func newPod(name string, reqs corev1.ResourceList) *corev1.Pod {
	var limits corev1.ResourceList
	if gpus, ok := reqs[v1alpha1.ResourceNVIDIAGPU]; ok {
		// Extended resources cannot be overcommitted: limits must equal requests.
		limits = corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: gpus}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "workload", Resources: corev1.ResourceRequirements{Requests: reqs, Limits: limits}}},
			TerminationGracePeriodSeconds: new(int64)},
	}
}

func generate(rng *rand.Rand, index int) *clusterCase {
	c := &clusterCase{index: index, bound: map[string][]*corev1.Pod{}}
	for n := range 3 + rng.IntN(5) {
		tpl := templates[rng.IntN(len(templates))]
		name := fmt.Sprintf("c%02d-n%d", index, n)
		cpu, mem := tpl.milliCPU-int64(rng.IntN(4))*70, tpl.memMi-int64(rng.IntN(4))*300
		alloc := corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(cpu, resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(mem*1024*1024, resource.BinarySI),
			corev1.ResourcePods:   *resource.NewQuantity(pick[int64](rng, 110, 110, 110, 110, 110, 110, 110, 110, 2, 3), resource.DecimalSI),
		}
		labels := map[string]string{corev1.LabelHostname: name, "tier": pick(rng, "gold", "silver")}
		var taints []corev1.Taint
		if tpl.gpus > 0 {
			alloc[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(tpl.gpus, resource.DecimalSI)
			labels["gpu.model"] = tpl.model
			if chance(rng, 0.7) {
				taints = append(taints, corev1.Taint{Key: string(v1alpha1.ResourceNVIDIAGPU), Effect: corev1.TaintEffectNoSchedule})
			}
		}
		if chance(rng, 0.35) {
			taints = append(taints, corev1.Taint{Key: "spot", Value: "true", Effect: corev1.TaintEffectPreferNoSchedule})
		}
		if chance(rng, 0.2) {
			taints = append(taints, corev1.Taint{Key: "maintenance", Value: "soon", Effect: corev1.TaintEffectPreferNoSchedule})
		}
		if chance(rng, 0.08) {
			taints = append(taints, corev1.Taint{Key: "dedicated", Value: "infer", Effect: corev1.TaintEffectNoSchedule})
		}
		c.nodes = append(c.nodes, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.NodeSpec{Taints: taints},
			Status: corev1.NodeStatus{Capacity: alloc, Allocatable: alloc,
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}},
		})
		// Partial occupancy: pods already bound, within the node's capacity.
		freeCPU, freeMem, freeGPU := cpu, mem, tpl.gpus
		for k := range rng.IntN(4) {
			podName := fmt.Sprintf("%s-bound-%d", name, k)
			if chance(rng, 0.3) {
				c.bound[name] = append(c.bound[name], newPod(podName, nil)) // best effort
				continue
			}
			pc, pm := int64(rng.IntN(int(freeCPU/2/50+1)))*50, int64(rng.IntN(int(freeMem/2/64+1)))*64
			var pg int64
			if freeGPU > 0 && chance(rng, 0.6) {
				pg = 1 + int64(rng.IntN(int(freeGPU)))
			}
			freeCPU, freeMem, freeGPU = freeCPU-pc, freeMem-pm, freeGPU-pg
			c.bound[name] = append(c.bound[name], newPod(podName, requests(pc, pm, pg)))
		}
	}
	for range podsPerCase {
		gpus := pick[int64](rng, 0, 0, 1, 1, 1, 2, 4, 8)
		reqs := requests(pick[int64](rng, -1, -1, 100, 500, 1000, 1500, 2000, 3500, 6000, 12000), pick[int64](rng, -1, -1, 256, 1024, 2048, 4096, 8192, 24576, 65536), gpus)
		p := newPod("", reqs)
		if chance(rng, 0.1) {
			// Limits only: the API server defaults the requests to them.
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Limits: reqs}
		}
		if chance(rng, map[bool]float64{true: 0.9, false: 0.4}[gpus > 0]) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: string(v1alpha1.ResourceNVIDIAGPU), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		}
		if chance(rng, 0.3) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "spot", Operator: corev1.TolerationOpEqual, Value: "true",
				Effect: pick(rng, corev1.TaintEffectPreferNoSchedule, "")})
		}
		if chance(rng, 0.1) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists})
		}
		if chance(rng, 0.1) {
			p.Spec.NodeSelector = pick(rng, map[string]string{"tier": "gold"}, map[string]string{"gpu.model": "a100"})
		}
		if chance(rng, 0.35) {
			terms := []corev1.PreferredSchedulingTerm{
				{Weight: 1 + rng.Int32N(100), Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "tier", Operator: corev1.NodeSelectorOpIn, Values: []string{"gold"}}}}},
				{Weight: 1 + rng.Int32N(100), Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "gpu.model", Operator: corev1.NodeSelectorOpIn, Values: []string{pick(rng, "a100", "l4")}}}}},
				{Weight: 1 + rng.Int32N(100), Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "tier", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"silver"}}}}},
			}
			rng.Shuffle(len(terms), func(i, j int) { terms[i], terms[j] = terms[j], terms[i] })
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: terms[:1+rng.IntN(2)]}}
		}
		c.pending = append(c.pending, p)
	}
	return c
}

// createNode creates a Ready node with exactly the given taints: the API
// server's TaintNodesByCondition admission adds node.kubernetes.io/not-ready
// on creation, which the node lifecycle controller would lift (none runs
// here).
func createNode(ctx context.Context, t *testing.T, kube client.Client, n *corev1.Node) *corev1.Node {
	t.Helper()
	taints := n.Spec.Taints
	if err := kube.Create(ctx, n); err != nil {
		t.Fatalf("creating node %s: %v", n.Name, err)
	}
	n.Spec.Taints = taints
	if err := kube.Update(ctx, n); err != nil {
		t.Fatalf("updating node %s: %v", n.Name, err)
	}
	return n
}

// create writes the case to the API server, waits until kube-scheduler has
// seen all of it, and returns the nodes as the simulator's kube-scheduler
// sees them.
func (c *clusterCase) create(ctx context.Context, t *testing.T, kube client.Client) []*ks.NodeInfo {
	t.Helper()
	var infos []*ks.NodeInfo
	for _, n := range c.nodes {
		n = createNode(ctx, t, kube, n.DeepCopy())
		var pods []*corev1.Pod
		for _, p := range c.bound[n.Name] {
			p = p.DeepCopy()
			p.Spec.NodeName = n.Name
			if err := kube.Create(ctx, p); err != nil {
				t.Fatalf("creating %s: %v", p.Name, err)
			}
			pods = append(pods, p)
		}
		infos = append(infos, ks.NewNodeInfo(n, pods...))
	}
	for _, ni := range infos {
		for _, p := range c.nominated[ni.Node.Name] {
			p = p.DeepCopy()
			p.Spec.NodeSelector = map[string]string{nowhereLabel: "true"}
			// kube-scheduler v1.36 clears an external nomination after a
			// failed cycle whose preemption finds no victims (karpenter-gpu
			// sets it again while the node starts, pkg/controllers/
			// nomination); a pod that never preempts keeps it, so the case
			// does not depend on when the scheduler retries the pod.
			p.Spec.PriorityClassName = neverPreempts(ctx, t, kube)
			if err := kube.Create(ctx, p); err != nil {
				t.Fatalf("creating %s: %v", p.Name, err)
			}
			// The API server drops status on create: the nomination is a
			// status write, as Karpenter's would be.
			stored := p.DeepCopy()
			p.Status.NominatedNodeName = ni.Node.Name
			if err := kube.Status().Patch(ctx, p, client.MergeFrom(stored)); err != nil {
				t.Fatalf("nominating %s: %v", p.Name, err)
			}
			ni.Nominate(ks.NewPod(p))
		}
	}
	// The probe: a node created last, which only the probe pod tolerates.
	// Once kube-scheduler binds the probe pod there, its node informer has
	// seen every node before the probe node and its pod informer every pod
	// before the probe pod: the case is in its cache.
	probeName := fmt.Sprintf("c%02d-probe", c.index)
	probe := createNode(ctx, t, kube, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: probeName, Labels: map[string]string{corev1.LabelHostname: probeName}},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: probeTaint, Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	})
	pp := newPod(probeName, nil)
	pp.Spec.NodeSelector = map[string]string{corev1.LabelHostname: probeName}
	pp.Spec.Tolerations = []corev1.Toleration{{Key: probeTaint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	if err := kube.Create(ctx, pp); err != nil {
		t.Fatal(err)
	}
	// The probe may find its node still not-ready (the taint's removal not
	// seen yet) and be retried: wait for the binding.
	if got := waitScheduled(ctx, t, kube, probeName, true); got != probeName {
		t.Fatalf("probe pod bound to %q, want %s", got, probeName)
	}
	infos = append(infos, ks.NewNodeInfo(probe, pp))
	ks.SortByName(infos)
	// kube-scheduler has tried the nominated pods by now (they were
	// created before the probe): it must have kept their nominations
	// (KEP-5278, v1.35+), or the case would not test what it says.
	for node, pods := range c.nominated {
		for _, p := range pods {
			got := &corev1.Pod{}
			if err := kube.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
				t.Fatal(err)
			}
			if got.Spec.NodeName != "" || got.Status.NominatedNodeName != node {
				t.Fatalf("nominated pod %s: bound to %q, nominatedNodeName %q; want pending and nominated to %s (kube-scheduler cleared an external nomination)",
					p.Name, got.Spec.NodeName, got.Status.NominatedNodeName, node)
			}
		}
	}
	return infos
}

// handCases are clusters built so that one detail of the scoring decides:
// random clusters seldom hinge on it. Each runs under the profile given.
func handCases() []struct {
	profile ks.Profile
	c       *clusterCase
} {
	ready := func(name string, milliCPU, memMi, gpus int64, taints ...corev1.Taint) *corev1.Node {
		alloc := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110"),
			corev1.ResourceCPU: *resource.NewMilliQuantity(milliCPU, resource.DecimalSI), corev1.ResourceMemory: *resource.NewQuantity(memMi<<20, resource.BinarySI)}
		if gpus > 0 {
			alloc[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
		}
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}, Spec: corev1.NodeSpec{Taints: taints},
			Status: corev1.NodeStatus{Capacity: alloc, Allocatable: alloc, Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	}
	gpuPod := func(name string, milliCPU, memMi, gpus int64) *corev1.Pod {
		p := newPod(name, requests(milliCPU, memMi, gpus))
		p.Spec.Tolerations = []corev1.Toleration{{Key: string(v1alpha1.ResourceNVIDIAGPU), Operator: corev1.TolerationOpExists}}
		return p
	}
	prefer := func(key string) corev1.Taint {
		return corev1.Taint{Key: key, Value: "x", Effect: corev1.TaintEffectPreferNoSchedule}
	}
	var out []struct {
		profile ks.Profile
		c       *clusterCase
	}
	add := func(profile ks.Profile, c *clusterCase) {
		out = append(out, struct {
			profile ks.Profile
			c       *clusterCase
		}{profile, c})
	}
	for i, profile := range ks.Profiles {
		// Pods without requests count 100m and 200Mi: a holds three of them
		// (300m, 600Mi), b one pod asking 150m and 300Mi. Spreading picks
		// b, packing a; counting missing requests as zero would reverse
		// both.
		ix := 200 + i
		add(profile, &clusterCase{index: ix,
			nodes: []*corev1.Node{ready(fmt.Sprintf("c%d-a", ix), 2000, 4096, 0), ready(fmt.Sprintf("c%d-b", ix), 2000, 4096, 0)},
			bound: map[string][]*corev1.Pod{
				fmt.Sprintf("c%d-a", ix): {newPod(fmt.Sprintf("c%d-a-0", ix), nil), newPod(fmt.Sprintf("c%d-a-1", ix), nil), newPod(fmt.Sprintf("c%d-a-2", ix), nil)},
				fmt.Sprintf("c%d-b", ix): {newPod(fmt.Sprintf("c%d-b-0", ix), requests(150, 300, 0))},
			},
			pending: []*corev1.Pod{newPod("", nil)},
		})
		// GPU use against cpu and memory use: x has 6 of 8 GPUs in use and
		// little cpu or memory, y 2 of 8 GPUs and most of its cpu and
		// memory. Packing with the GPU weighted 10 picks x; with the GPU
		// weighted like cpu and memory it would pick y.
		ix = 210 + i
		add(profile, &clusterCase{index: ix,
			nodes: []*corev1.Node{ready(fmt.Sprintf("c%d-x", ix), 96000, 786432, 8), ready(fmt.Sprintf("c%d-y", ix), 96000, 786432, 8)},
			bound: map[string][]*corev1.Pod{
				fmt.Sprintf("c%d-x", ix): {gpuPod(fmt.Sprintf("c%d-x-0", ix), 1000, 1024, 6)},
				fmt.Sprintf("c%d-y", ix): {gpuPod(fmt.Sprintf("c%d-y-0", ix), 90000, 720000, 2)},
			},
			pending: []*corev1.Pod{gpuPod("", 1000, 1024, 1)},
		})
		// A nominated pod: x (8 GPUs, empty) holds a pending pod's 7 GPUs
		// against the pod scheduled, which asks 2 and goes to y (2 of 8
		// free) although spreading prefers the emptier x; a pod asking 1
		// still fits beside the nominated one, and x's score ignores it.
		for j, gpus := range []int64{2, 1} {
			ix = 230 + 2*i + j
			x, y := fmt.Sprintf("c%d-x", ix), fmt.Sprintf("c%d-y", ix)
			add(profile, &clusterCase{index: ix,
				nodes:     []*corev1.Node{ready(x, 96000, 786432, 8), ready(y, 96000, 786432, 8)},
				bound:     map[string][]*corev1.Pod{y: {gpuPod(fmt.Sprintf("c%d-y-0", ix), 8000, 65536, 6)}},
				nominated: map[string][]*corev1.Pod{x: {gpuPod(fmt.Sprintf("c%d-x-nominated", ix), 32000, 262144, 7)}},
				pending:   []*corev1.Pod{gpuPod("", 1000, 8192, gpus)},
			})
		}
		// PreferNoSchedule: two untolerated taints on p, one on q, none on
		// r (the fullest): normalised 0, 50, 100 points, times 3.
		ix = 220 + i
		add(profile, &clusterCase{index: ix,
			nodes: []*corev1.Node{
				ready(fmt.Sprintf("c%d-p", ix), 8000, 32768, 0, prefer("spot"), prefer("maintenance")),
				ready(fmt.Sprintf("c%d-q", ix), 8000, 32768, 0, prefer("spot")),
				ready(fmt.Sprintf("c%d-r", ix), 8000, 32768, 0),
			},
			bound:   map[string][]*corev1.Pod{fmt.Sprintf("c%d-r", ix): {newPod(fmt.Sprintf("c%d-r-0", ix), requests(6000, 24000, 0))}},
			pending: []*corev1.Pod{newPod("", requests(1000, 2048, 0))},
		})
	}
	return out
}
