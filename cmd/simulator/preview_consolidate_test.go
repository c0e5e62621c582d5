package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
)

// writeList writes objects as the v1 List kubectl prints.
func writeList(t *testing.T, path string, objs ...any) string {
	t.Helper()
	items := make([]json.RawMessage, 0, len(objs))
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, b)
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// g4dnNode is a node Karpenter launched (karpenter.sh/nodepool) of a g4dn
// type with its GPUs allocatable.
func g4dnNode(name, typ string, cpu, memory string, gpus int64) *corev1.Node {
	n := karpenterNode(name, typ, cpu, memory)
	n.Status.Allocatable[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
	return n
}

func karpenterNode(name, typ string, cpu, memory string) *corev1.Node {
	return &corev1.Node{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			corev1.LabelInstanceTypeStable: typ, corev1.LabelTopologyZone: "us-east-1a", karpv1.CapacityTypeLabelKey: karpv1.CapacityTypeOnDemand,
			karpv1.NodePoolLabelKey: "gpu", "karpenter-gpu.io/instance-family": strings.Split(typ, ".")[0]}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory),
			corev1.ResourcePods: resource.MustParse("29")}},
	}
}

// oneGPUPod is a running 1-GPU pod on a g4dn node (node "" for a manifest).
func oneGPUPod(name, node string) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml"},
		Spec: corev1.PodSpec{NodeName: node, NodeSelector: map[string]string{"karpenter-gpu.io/instance-family": "g4dn"},
			Containers: []corev1.Container{{Name: "c", Image: "i", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("4Gi")},
				Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("1")}}}}},
	}
	if node != "" {
		p.Status.Phase = corev1.PodRunning
	}
	return p
}

// preview --nodes with the cluster's Karpenter nodes consolidated
// (--consolidate, the default) against the nodes kept as they are
// (--consolidate=false), adding one 1-GPU g4dn pod:
//
//   - oversized: a g4dn.12xlarge ($3.912/h, 4 T4s) runs one 1-GPU pod. Kept
//     as it is, the new pod fits on a free T4: $3.912/h before and after.
//     Consolidated, both policies replace it by a g4dn.xlarge ($0.526/h,
//     the cheapest g4dn with a GPU) within the 90 minutes before the
//     manifest (--at 90m), which then needs a second g4dn.xlarge: $0.526 →
//     $1.052/h. Consolidation changes the answer. karpenter-gpu releases the
//     node at its batch pod's first checkpoint, an hour in: before that
//     the pod's lost work plus the default $0.3 per evicted pod, at 300 %,
//     outweighs what the node has wasted.
//   - full: a g4dn.xlarge runs one 1-GPU pod: nothing cheaper holds it,
//     the new pod launches a g4dn.xlarge either way: $0.526 → $1.052/h.
//   - a Karpenter node the simulated NodePool cannot launch: a g4ad.xlarge
//     (AMD, $0.379/h; the simulated node class has NVIDIA types only) is
//     kept as it is, the
//     g4dn.xlarge beside it is full: the new pod launches a g4dn.xlarge
//     either way, $0.905 → $1.431/h.
//   - a label of the cluster's NodePool: the g4dn.12xlarge carries team:
//     research, which its pod selects; the label goes on its NodeClaim, so
//     the pod runs there, and as the simulated NodePool launches no node
//     with it nothing replaces the node: the notebook takes a free T4,
//     $3.912/h before and after either way.
//   - a pod pinned to its node's name (kubernetes.io/hostname): no
//     simulated node has that name, so it does not run there, the node is
//     emptied and consolidated away, and the preview says the starting
//     fleet holds less than the cluster does.
//   - no Karpenter node the simulated NodePool can launch (only the AMD
//     g4ad.xlarge): the preview falls back to the nodes as they are and
//     says why.
//   - example cluster (examples/finops): its Karpenter g4dn.12xlarge runs
//     3 one-GPU pods; no cheaper single node holds them, so it stays and
//     the new pod takes its fourth T4 either way ($3.912/h before and
//     after); the m5.large (not a Karpenter node, no price) is kept as it
//     is.
func TestPreviewConsolidatesKarpenterNodes(t *testing.T) {
	dir := t.TempDir()
	add := writeList(t, filepath.Join(dir, "notebook.json"), oneGPUPod("notebook", ""))
	type want struct {
		before, after, incremental float64
		retired, launchedBefore    []string // by consolidation, before the manifest
		launched                   []string // for the manifest
		fits                       bool
		// nodesBaseline: no Karpenter node could start the fleet, so the
		// preview is on the nodes as they are even with --consolidate.
		nodesBaseline bool
	}
	for _, tc := range []struct {
		name               string
		cluster, nodes     string
		args               []string // more preview flags
		consolidated, kept want
		text               []string
	}{
		{name: "oversized",
			cluster:      writeList(t, filepath.Join(dir, "pods-big.json"), oneGPUPod("train-0", "gpu-big")),
			nodes:        writeList(t, filepath.Join(dir, "nodes-big.json"), g4dnNode("gpu-big", "g4dn.12xlarge", "47", "180Gi", 4)),
			args:         []string{"--at", "90m"},
			consolidated: want{before: 0.526, after: 1.052, incremental: 0.526, retired: []string{"g4dn.12xlarge"}, launchedBefore: []string{"g4dn.xlarge"}, launched: []string{"g4dn.xlarge"}},
			kept:         want{before: 3.912, after: 3.912, fits: true},
			text: []string{"Cluster nodes as they are: $3.912/h, of which Karpenter's (gpu-big) $3.912/h",
				"karpenter-gpu: consolidates the Karpenter nodes to $0.526/h before the manifest: retires 1 × g4dn.12xlarge (on-demand, $3.912/h); launches 1 × g4dn.xlarge (on-demand, $0.526/h)",
				"stock: the manifest launches 1 × g4dn.xlarge (on-demand, $0.526/h)"}},
		{name: "full",
			cluster:      writeList(t, filepath.Join(dir, "pods-full.json"), oneGPUPod("train-0", "gpu-small")),
			nodes:        writeList(t, filepath.Join(dir, "nodes-full.json"), g4dnNode("gpu-small", "g4dn.xlarge", "3920m", "14Gi", 1)),
			consolidated: want{before: 0.526, after: 1.052, incremental: 0.526, launched: []string{"g4dn.xlarge"}},
			kept:         want{before: 0.526, after: 1.052, incremental: 0.526, launched: []string{"g4dn.xlarge"}},
			text:         []string{"karpenter-gpu: keeps the Karpenter nodes as they are ($0.526/h)", "stock: keeps the Karpenter nodes as they are ($0.526/h)"}},
		{name: "a Karpenter node the simulated NodePool cannot launch",
			cluster: writeList(t, filepath.Join(dir, "pods-amd.json"), oneGPUPod("train-0", "gpu-small")),
			nodes: writeList(t, filepath.Join(dir, "nodes-amd.json"), g4dnNode("gpu-small", "g4dn.xlarge", "3920m", "14Gi", 1),
				func() *corev1.Node {
					n := karpenterNode("gpu-amd", "g4ad.xlarge", "3920m", "14Gi")
					n.Status.Allocatable["amd.com/gpu"] = resource.MustParse("1")
					return n
				}()),
			consolidated: want{before: 0.904530, after: 1.430530, incremental: 0.526, launched: []string{"g4dn.xlarge"}},
			kept:         want{before: 0.904530, after: 1.430530, incremental: 0.526, launched: []string{"g4dn.xlarge"}},
			text: []string{"Cluster nodes as they are: $0.905/h, of which Karpenter's (gpu-small) $0.526/h",
				"Note: Karpenter node gpu-amd kept as it is: g4ad.xlarge is not among the instance types of NodePool gpu's node class in us-east-1",
				"Karpenter's nodes (gpu-small) start each policy's fleet"}},
		{name: "a label of the cluster's NodePool",
			cluster: writeList(t, filepath.Join(dir, "pods-team.json"), func() *corev1.Pod {
				p := oneGPUPod("train-0", "gpu-team")
				p.Spec.NodeSelector["team"] = "research"
				return p
			}()),
			nodes: writeList(t, filepath.Join(dir, "nodes-team.json"), func() *corev1.Node {
				n := g4dnNode("gpu-team", "g4dn.12xlarge", "47", "180Gi", 4)
				n.Labels["team"] = "research"
				return n
			}()),
			consolidated: want{before: 3.912, after: 3.912, fits: true},
			kept:         want{before: 3.912, after: 3.912, fits: true},
			text:         []string{"karpenter-gpu: keeps the Karpenter nodes as they are ($3.912/h)", "stock: the manifest fits on free capacity"}},
		{name: "a pod pinned to its node's name",
			cluster: writeList(t, filepath.Join(dir, "pods-pinned.json"), func() *corev1.Pod {
				p := oneGPUPod("train-0", "gpu-small")
				p.Spec.NodeSelector[corev1.LabelHostname] = "gpu-small"
				return p
			}()),
			nodes:        writeList(t, filepath.Join(dir, "nodes-pinned.json"), g4dnNode("gpu-small", "g4dn.xlarge", "3920m", "14Gi", 1)),
			consolidated: want{before: 0, after: 0.526, incremental: 0.526, retired: []string{"g4dn.xlarge"}, launched: []string{"g4dn.xlarge"}},
			kept:         want{before: 0.526, after: 1.052, incremental: 0.526, launched: []string{"g4dn.xlarge"}},
			text: []string{"Note: under karpenter-gpu, 1 pod bound to the Karpenter nodes did not run in the simulation (e.g. train-0: ",
				"the starting fleet holds less than the cluster does"}},
		{name: "no Karpenter node the simulated NodePool can launch",
			cluster: writeList(t, filepath.Join(dir, "pods-amd-only.json"), oneGPUPod("train-0", "")),
			nodes: writeList(t, filepath.Join(dir, "nodes-amd-only.json"), func() *corev1.Node {
				n := karpenterNode("gpu-amd", "g4ad.xlarge", "3920m", "14Gi")
				n.Status.Allocatable["amd.com/gpu"] = resource.MustParse("1")
				return n
			}()),
			consolidated: want{before: 0.37853, after: 0.90453, incremental: 0.526, launched: []string{"g4dn.xlarge"}, nodesBaseline: true},
			kept:         want{before: 0.37853, after: 0.90453, incremental: 0.526, launched: []string{"g4dn.xlarge"}},
			text:         []string{"Note: Karpenter node gpu-amd kept as it is: g4ad.xlarge is not among the instance types"}},
		{name: "example cluster",
			cluster: filepath.Join(ex, "cluster-pods.json"), nodes: filepath.Join(ex, "cluster-nodes.json"),
			consolidated: want{before: 3.912, after: 3.912, fits: true},
			kept:         want{before: 3.912, after: 3.912, fits: true},
			text: []string{"karpenter-gpu: keeps the Karpenter nodes as they are ($3.912/h)",
				"Cluster nodes as they are: $3.912/h, of which Karpenter's (ip-10-0-0-1.ec2.internal) $3.912/h; no price for ip-10-0-0-2.ec2.internal (m5.large on-demand): counted as $0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, consolidate := range []bool{true, false} {
				jsonOut := filepath.Join(t.TempDir(), "preview.json")
				var out, errOut bytes.Buffer
				args := append([]string{"preview", "--json", jsonOut, "--cluster", tc.cluster, "--nodes", tc.nodes, "--add", add}, tc.args...)
				if !consolidate {
					args = append(args, "--consolidate=false")
				}
				if err := run(args, &out, &errOut); err != nil {
					t.Fatalf("%v\n%s", err, errOut.String())
				}
				var got []PreviewResult
				readJSON(t, jsonOut, &got)
				if len(got) != 2 {
					t.Fatalf("%d results, want 2", len(got))
				}
				w, baseline := tc.kept, baselineNodes
				if consolidate {
					w, baseline = tc.consolidated, lo.Ternary(tc.consolidated.nodesBaseline, baselineNodes, baselineConsolidated)
				}
				for _, p := range got {
					if p.Baseline != baseline || math.Abs(p.BeforeUSDPerHour-w.before) > 1e-6 || math.Abs(p.AfterUSDPerHour-w.after) > 1e-6 ||
						math.Abs(p.IncrementalUSDPerHour-w.incremental) > 1e-6 || p.FitsOnFreeCapacity != w.fits {
						t.Errorf("consolidate=%v %s: baseline %q before %.3f after %.3f incremental %.3f fits %v; want %q %.3f %.3f %.3f %v",
							consolidate, p.Policy, p.Baseline, p.BeforeUSDPerHour, p.AfterUSDPerHour, p.IncrementalUSDPerHour, p.FitsOnFreeCapacity,
							baseline, w.before, w.after, w.incremental, w.fits)
					}
					types := func(ins []report.InstanceRun) []string {
						var out []string
						for _, in := range ins {
							out = append(out, in.Type)
						}
						return out
					}
					if diff := cmp.Diff(w.launched, types(p.Launched)); diff != "" {
						t.Errorf("consolidate=%v %s: launched for the manifest (-want +got):\n%s", consolidate, p.Policy, diff)
					}
					if !consolidate || w.nodesBaseline {
						if p.Consolidation != nil {
							t.Errorf("%s: consolidation %+v with --consolidate=false", p.Policy, p.Consolidation)
						}
						continue
					}
					if p.Consolidation == nil {
						t.Fatalf("%s: no consolidation", p.Policy)
					}
					if diff := cmp.Diff(w.retired, types(p.Consolidation.Retired)); diff != "" {
						t.Errorf("%s: retired before the manifest (-want +got):\n%s", p.Policy, diff)
					}
					if diff := cmp.Diff(w.launchedBefore, types(p.Consolidation.Launched)); diff != "" {
						t.Errorf("%s: launched before the manifest (-want +got):\n%s", p.Policy, diff)
					}
					if len(p.AddedPodsPending) > 0 {
						t.Errorf("%s: pending %v", p.Policy, p.AddedPodsPending)
					}
				}
				if consolidate {
					for _, s := range tc.text {
						if !strings.Contains(out.String(), s) {
							t.Errorf("output lacks %q:\n%s", s, out.String())
						}
					}
				}
			}
		})
	}
}
