package workload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzKube feeds the Kubernetes-object reader arbitrary bytes, seeded with
// the examples and malformed objects. Properties: no panic; an error names
// the source first; a workload that parses has pods with valid keys, each
// once, arriving at 0 and never leaving, and nodes with names and
// allocatable cpu, memory and pods.
func FuzzKube(f *testing.F) {
	for _, name := range []string{"cluster-pods.json", "cluster-nodes.json", "manifests.yaml", "train-job.yaml"} {
		b, err := os.ReadFile(filepath.Join(examples, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"apiVersion":"v1","kind":"List","items":[null]}`,
		`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"List","items":[]}]}`,
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 2147483647, template: {spec: {containers: []}}}\n",
		"apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {parallelism: -1, template: {spec: {containers: [{name: c}]}}}\n",
		"apiVersion: jobset.x-k8s.io/v1alpha2\nkind: JobSet\nmetadata: {name: js}\nspec: {replicatedJobs: [{name: w, replicas: 3, template: {spec: {template: {spec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 0.5}}}]}}}}}]}\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {karpenter-gpu.io/workload-class: maybe}}\nspec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}\n",
		"---\n---\n# nothing\n",
		"apiVersion: v1\nkind: Pod\n",
		"apiVersion: v1\nkind: NodeList\nitems: [{metadata: {name: n}, status: {allocatable: {cpu: '-1', memory: 1Gi, pods: '0'}}}, null]\n",
		`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Node","metadata":{"name":"n"}},{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"nodeName":"n","containers":[{"name":"c"}]}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<16 {
			return
		}
		objs, err := ParseKube(in, "fuzz.yaml", TraceOptions{})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not start with the source", err)
			}
			return
		}
		if len(objs.Pods) > 100000 {
			t.Skip("large expansion")
		}
		seen := map[string]bool{}
		for _, p := range objs.Pods {
			if p.Name == "" || seen[p.Key()] || p.Arrival != 0 || p.Deletion != Forever {
				t.Fatalf("pod %+v invalid or repeated", p)
			}
			seen[p.Key()] = true
		}
		for _, n := range objs.Nodes {
			if n.Node.Name == "" || n.Node.Status.Allocatable.Pods().Sign() <= 0 || n.Node.Status.Allocatable.Cpu().Sign() <= 0 {
				t.Fatalf("node %+v accepted", n.Node)
			}
		}
	})
}
