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
)

// combinedList writes what `kubectl get nodes,pods -A -o json` prints for
// the example cluster: one v1 List holding its nodes and its pods.
func combinedList(t *testing.T, dir string) string {
	t.Helper()
	var nodes, pods struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	for path, into := range map[string]any{"cluster-nodes.json": &nodes, "cluster-pods.json": &pods} {
		b, err := os.ReadFile(filepath.Join(ex, path))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatal(err)
		}
	}
	nodes.Items = append(nodes.Items, pods.Items...)
	b, err := json.Marshal(nodes)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nodes-and-pods.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// preview against the example cluster's actual nodes
// (examples/finops/cluster-nodes.json): ip-10-0-0-1 is a g4dn.12xlarge
// ($3.912/h on-demand in us-east-1) with 4 T4s, of which the bound train
// pod and the two web replicas (their GPU limit defaults their request)
// take 3; ip-10-0-0-2 is a CPU node (m5.large, not in the GPU catalog: no
// price) running Prometheus. Adding the two 1-GPU finetune workers puts
// finetune-0 on the free T4 and leaves finetune-1 to a new node: a
// g4dn.xlarge ($0.526/h) under both policies, GPUs 4 → 5. Adding one
// 1-GPU notebook fits on the free T4: nothing launches. The nodes may come
// as --nodes or inside the --cluster List.
func TestPreviewOnClusterNodes(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.yaml")
	if err := os.WriteFile(one, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: notebook, namespace: ml-research}\nspec:\n  nodeSelector: {karpenter-gpu.io/instance-family: g4dn}\n  containers: [{name: c, image: i, resources: {requests: {cpu: '1', memory: 4Gi}, limits: {nvidia.com/gpu: 1}}}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pods, nodes, list := filepath.Join(ex, "cluster-pods.json"), filepath.Join(ex, "cluster-nodes.json"), combinedList(t, dir)
	type want struct {
		after, incremental, gpusAfter float64
		placed                        []NodePlacement
		launched                      []string
		fits                          bool
	}
	node1 := "ip-10-0-0-1.ec2.internal"
	finetune := want{after: 4.438, incremental: 0.526, gpusAfter: 5,
		placed: []NodePlacement{{Pod: "ml-research/finetune-0", Node: node1, InstanceType: "g4dn.12xlarge"}}, launched: []string{"g4dn.xlarge"}}
	notebook := want{after: 3.912, gpusAfter: 4, placed: []NodePlacement{{Pod: "ml-research/notebook", Node: node1, InstanceType: "g4dn.12xlarge"}}, fits: true}
	for _, tc := range []struct {
		name string
		args []string
		want want
		text []string
	}{
		{"finetune, --nodes", []string{"--cluster", pods, "--nodes", nodes, "--add", filepath.Join(ex, "train-job.yaml")}, finetune,
			[]string{"ml-research/finetune-0 → ip-10-0-0-1.ec2.internal (g4dn.12xlarge)", "karpenter-gpu: launches 1 × g4dn.xlarge (on-demand, $0.526/h) for 1 pod",
				"stock: launches 1 × g4dn.xlarge (on-demand, $0.526/h) for 1 pod", "no price for ip-10-0-0-2.ec2.internal (m5.large on-demand)",
				"Note: 1 node of the cluster is Karpenter's (karpenter.sh/nodepool, e.g. ip-10-0-0-1.ec2.internal): Karpenter may consolidate it once the manifest runs, which this preview does not model"}},
		{"finetune, nodes in the List", []string{"--cluster", list, "--add", filepath.Join(ex, "train-job.yaml")}, finetune, nil},
		{"notebook, --nodes", []string{"--cluster", pods, "--nodes", nodes, "--add", one}, notebook,
			[]string{"karpenter-gpu: fits on the cluster's free capacity (no instance launched)", "stock: fits on the cluster's free capacity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, out := previewJSON(t, append([]string{"--consolidate=false"}, tc.args...)...)
			for _, p := range got {
				w := tc.want
				if p.Baseline != baselineNodes || math.Abs(p.BeforeUSDPerHour-3.912) > 1e-6 || math.Abs(p.AfterUSDPerHour-w.after) > 1e-6 ||
					math.Abs(p.IncrementalUSDPerHour-w.incremental) > 1e-6 || p.GPUsBefore != 4 || p.GPUsAfter != w.gpusAfter || p.FitsOnFreeCapacity != w.fits {
					t.Errorf("%s: baseline %q before %.3f after %.3f incremental %.3f GPUs %v→%v fits %v, want cluster nodes 3.912 %.3f %.3f 4→%v %v",
						p.Policy, p.Baseline, p.BeforeUSDPerHour, p.AfterUSDPerHour, p.IncrementalUSDPerHour, p.GPUsBefore, p.GPUsAfter, p.FitsOnFreeCapacity,
						w.after, w.incremental, w.gpusAfter, w.fits)
				}
				if diff := cmp.Diff(w.placed, p.OnClusterNodes); diff != "" {
					t.Errorf("%s: placed on the cluster's nodes (-want +got):\n%s", p.Policy, diff)
				}
				var launched []string
				for _, l := range p.Launched {
					launched = append(launched, l.Type)
				}
				if diff := cmp.Diff(w.launched, launched); diff != "" {
					t.Errorf("%s: launched (-want +got):\n%s", p.Policy, diff)
				}
				if len(p.AddedPodsPending) > 0 {
					t.Errorf("%s: pending %v", p.Policy, p.AddedPodsPending)
				}
			}
			for _, s := range tc.text {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

// Bad node input is refused naming the file, the object and the field.
func TestPreviewBadNodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string { return writeTemp(t, dir, name, body) }
	pods, nodes, add := filepath.Join(ex, "cluster-pods.json"), filepath.Join(ex, "cluster-nodes.json"), filepath.Join(ex, "train-job.yaml")
	node := func(name, alloc string) string {
		return "apiVersion: v1\nkind: Node\nmetadata: {name: " + name + "}\nstatus:\n  allocatable: {" + alloc + "}\n"
	}
	scenario := "../../pkg/simulation/testdata/handchecked.yaml"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no allocatable", []string{"--cluster", pods, "--nodes", write("n1.yaml", "apiVersion: v1\nkind: Node\nmetadata: {name: gpu-1}\n"), "--add", add},
			`n1.yaml:1: Node "gpu-1": field "status.allocatable": required`},
		{"no pods in allocatable", []string{"--cluster", pods, "--nodes", write("n2.yaml", node("gpu-1", "cpu: '4', memory: 16Gi")), "--add", add},
			`n2.yaml:1: Node "gpu-1": field "status.allocatable.pods": required and positive`},
		{"bad quantity", []string{"--cluster", pods, "--nodes", write("n3.yaml", node("gpu-1", "cpu: four, memory: 16Gi, pods: '10'")), "--add", add},
			`n3.yaml:1: Node "gpu-1"`},
		{"unknown field", []string{"--cluster", pods, "--nodes", write("n4.yaml", "apiVersion: v1\nkind: Node\nmetadata: {name: gpu-1}\nspec: {taint: []}\n"), "--add", add},
			`n4.yaml:1: Node "gpu-1": field "spec.taint": unknown field`},
		{"duplicate node", []string{"--cluster", pods, "--nodes", write("n5.yaml", node("gpu-1", "cpu: '4', memory: 16Gi, pods: '10'")+"---\n"+node("gpu-1", "cpu: '4', memory: 16Gi, pods: '10'")), "--add", add},
			`n5.yaml:7: Node "gpu-1": field "metadata.name": node gpu-1 already defined (` + filepath.Join(dir, "n5.yaml") + `:1 document 1)`},
		{"no node in --nodes", []string{"--cluster", pods, "--nodes", pods, "--add", add}, "cluster-pods.json: no Node (want `kubectl get nodes -o json|yaml` output)"},
		{"not Kubernetes objects", []string{"--cluster", pods, "--nodes", write("n6.csv", "a,b\n1,2\n"), "--add", add}, "n6.csv: not Kubernetes objects"},
		{"nodes twice", []string{"--cluster", combinedList(t, dir), "--nodes", nodes, "--add", add}, "nodes-and-pods.json already holds 2 Nodes (e.g. ip-10-0-0-1.ec2.internal); give the nodes once"},
		{"cluster not a pod list", []string{"--cluster", scenario, "--nodes", nodes, "--add", add}, "is not a Kubernetes pod list"},
		{"missing file", []string{"--cluster", pods, "--nodes", filepath.Join(dir, "absent.json"), "--add", add}, "absent.json: no such file"},
		{"cluster and prometheus", []string{"--cluster", pods, "--prometheus", "http://127.0.0.1:9", "--prometheus-start", "1h", "--add", add},
			"preview: --cluster and --prometheus are two inputs for the cluster's pods; give one"},
		{"nodes with prometheus", []string{"--prometheus", "http://127.0.0.1:9", "--prometheus-start", "1h", "--nodes", nodes, "--add", add},
			"preview: --nodes needs a kubectl pod list as --cluster"},
		{"no cluster", []string{"--add", add}, "preview: --cluster (or --prometheus) and --add are required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(append([]string{"preview"}, tc.args...), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// previewJSON runs simulator preview with args and returns its JSON
// results, one per policy, and what it printed.
func previewJSON(t *testing.T, args ...string) ([]PreviewResult, string) {
	t.Helper()
	jsonOut := filepath.Join(t.TempDir(), "preview.json")
	var out, errOut bytes.Buffer
	if err := run(append([]string{"preview", "--json", jsonOut}, args...), &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var got []PreviewResult
	readJSON(t, jsonOut, &got)
	if len(got) != 2 {
		t.Fatalf("%d results, want 2 (one per policy)", len(got))
	}
	return got, out.String()
}

// writeTemp writes body to dir/name and returns the path.
func writeTemp(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
