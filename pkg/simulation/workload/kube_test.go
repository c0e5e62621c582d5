package workload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

const examples = "../../../examples/finops"

// loadExample reads the example input name (under examples) with the
// default trace options.
func loadExample(t *testing.T, name string) *Workload {
	t.Helper()
	w, err := LoadInput(filepath.Join(examples, name), TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func q(s string) resource.Quantity { return resource.MustParse(s) }

func podsByKey(w *Workload) map[string]PodSpec {
	out := map[string]PodSpec{}
	for _, p := range w.Pods {
		out[p.Key()] = p
	}
	return out
}

func checkRequests(t *testing.T, p PodSpec, want map[corev1.ResourceName]string) {
	t.Helper()
	if len(p.Requests) != len(want) {
		t.Errorf("%s: requests %v, want %v", p.Key(), p.Requests, want)
	}
	for name, v := range want {
		got := p.Requests[name]
		if got.Cmp(q(v)) != 0 {
			t.Errorf("%s: request %s = %s, want %s", p.Key(), name, got.String(), v)
		}
	}
}

// The kubectl pod list of examples/finops, as JSON and as YAML (the same
// list through `kubectl -o yaml`'s shape): three GPU pods replayed, one
// DaemonSet pod, one completed pod and one CPU-only pod excluded, requests
// as the API server computes them (the web pods state only limits),
// namespaces, labels, selectors, tolerations, owners' classes and groups
// kept.
func TestKubectlPodList(t *testing.T) {
	js, err := os.ReadFile(filepath.Join(examples, "cluster-pods.json"))
	if err != nil {
		t.Fatal(err)
	}
	ys, err := sigsyaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	yamlPath := filepath.Join(t.TempDir(), "pods.txt") // detected by content, not by name
	if err := os.WriteFile(yamlPath, ys, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(examples, "cluster-pods.json"), yamlPath} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			w, err := LoadInput(path, TraceOptions{GPUMap: DefaultGPUMap()})
			if err != nil {
				t.Fatal(err)
			}
			pods := podsByKey(w)
			if len(pods) != 3 {
				t.Fatalf("pods %v, want 3", w.Pods)
			}
			train, web := pods["ml-research/train-x7k2p"], pods["inference/web-7d9f8c6b5-2xk4q"]
			checkRequests(t, train, map[corev1.ResourceName]string{"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"})
			checkRequests(t, web, map[corev1.ResourceName]string{"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"})
			if lim := web.Limits[corev1.ResourceCPU]; lim.Cmp(q("4")) != 0 {
				t.Errorf("web limits %v, want cpu 4", web.Limits)
			}
			if train.Annotations[evictioncost.AnnotationWorkloadClass] != "batch" || web.Annotations[evictioncost.AnnotationWorkloadClass] != "service" {
				t.Errorf("classes %q, %q; want batch (Job), service (ReplicaSet)", train.Annotations[evictioncost.AnnotationWorkloadClass], web.Annotations[evictioncost.AnnotationWorkloadClass])
			}
			if train.Group != "Job/train" || web.Group != "Deployment/web" {
				t.Errorf("groups %q, %q; want Job/train, Deployment/web", train.Group, web.Group)
			}
			if train.Labels["team"] != "research" || web.Labels["team"] != "serving" || train.Namespace != "ml-research" {
				t.Errorf("labels/namespace lost: %+v, %+v", train, web)
			}
			if train.NodeSelector["karpenter-gpu.io/instance-family"] != "g4dn" || len(train.Tolerations) != 1 || train.Tolerations[0].Key != "nvidia.com/gpu" {
				t.Errorf("selector/tolerations lost: %v %v", train.NodeSelector, train.Tolerations)
			}
			if train.Arrival != 0 || train.Deletion != Forever {
				t.Errorf("a pod list is a snapshot: arrival %s, deletion %s", train.Arrival, train.Deletion)
			}
			reasons := map[string]string{}
			for _, x := range w.Excluded {
				reasons[x.Name] = x.Reason
			}
			want := map[string]string{
				"kube-system/nvidia-device-plugin-daemonset-4kq2n": "DaemonSet pod",
				"ml-research/eval-5d2wz":                           "completed (phase Succeeded)",
				"monitoring/prometheus-0":                          "requests no GPU",
			}
			for k, v := range want {
				if !strings.Contains(reasons[k], v) {
					t.Errorf("excluded %s: %q, want %q", k, reasons[k], v)
				}
			}
			if len(w.Excluded) != 3 {
				t.Errorf("excluded %v, want 3", w.Excluded)
			}
		})
	}
}

// One manifest of each kind: a Deployment's and a StatefulSet's replicas
// (services), a Job's parallelism (not its completions) and a JobSet's
// replicated jobs × their parallelism (batch); the Service is ignored.
func TestManifests(t *testing.T) {
	w := loadExample(t, "manifests.yaml")
	count := map[string]int{}
	gpus := map[string]int64{}
	for _, p := range w.Pods {
		count[p.NamespaceOrDefault()+"/"+p.Group]++
		gpus[p.Group] += p.GPUs()
		class := p.Annotations[evictioncost.AnnotationWorkloadClass]
		wantClass := map[bool]string{true: "service", false: "batch"}[strings.HasPrefix(p.Group, "Deployment/") || strings.HasPrefix(p.Group, "StatefulSet/")]
		if class != wantClass {
			t.Errorf("%s (%s): class %q, want %q", p.Key(), p.Group, class, wantClass)
		}
	}
	want := map[string]int{"inference/Deployment/chat": 3, "inference/StatefulSet/vectordb": 2, "ml-research/Job/embed": 4, "ml-research/JobSet/pretrain": 4}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("pods per group %v, want %v", count, want)
	}
	if gpus["JobSet/pretrain"] != 16 || gpus["Job/embed"] != 4 {
		t.Errorf("GPUs %v, want JobSet/pretrain 16 (2 jobs × 2 pods × 4), Job/embed 4", gpus)
	}
	pods := podsByKey(w)
	checkRequests(t, pods["inference/vectordb-1"], map[corev1.ResourceName]string{"cpu": "8", "memory": "30Gi", "nvidia.com/gpu": "1"})
	checkRequests(t, pods["ml-research/embed-3"], map[corev1.ResourceName]string{"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"})
	if _, ok := pods["ml-research/pretrain-workers-1-1"]; !ok {
		t.Errorf("JobSet pods %v, want pretrain-workers-<job>-<pod>", count)
	}
	if len(w.Notes) == 0 || !strings.Contains(strings.Join(w.Notes, " "), "Service inference/chat") {
		t.Errorf("notes %v, want the ignored Service named", w.Notes)
	}
}

func TestBadKubeInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          []string // file, object, field, problem
	}{
		{"typo.json", `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"x"},"spec":{"containers":[{"name":"c","resource":{}}]}}]}`,
			[]string{"typo.json", "items[0]", "Pod x/a", `field "spec.containers[0].resource"`, "unknown field"}},
		{"replicas.yaml", "# comment\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: team-a}\nspec:\n  replicas: -2\n  selector: {matchLabels: {a: b}}\n  template:\n    spec: {containers: [{name: c, image: i}]}\n",
			[]string{"replicas.yaml:2:", "Deployment team-a/d", `field "spec.replicas"`, "negative"}},
		{"quantity.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: i, resources: {requests: {cpu: lots}}}]\n",
			[]string{"quantity.yaml:1:", `Pod "p"`, "quantities must match"}},
		{"dup.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i, resources: {limits: {nvidia.com/gpu: 1}}}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i, resources: {limits: {nvidia.com/gpu: 1}}}]}\n",
			[]string{"dup.yaml:6:", `Pod "p"`, `field "metadata.name"`, "already defined"}},
		{"jobset.yaml", "apiVersion: jobset.x-k8s.io/v1alpha2\nkind: JobSet\nmetadata: {name: js}\nspec: {}\n",
			[]string{"jobset.yaml:1:", `JobSet "js"`, `field "spec.replicatedJobs"`, "required"}},
		{"jobset-template.yaml", "apiVersion: jobset.x-k8s.io/v1alpha2\nkind: JobSet\nmetadata: {name: js}\nspec:\n  replicatedJobs:\n    - name: w\n      template: {spec: {paralelism: 2}}\n",
			[]string{"jobset-template.yaml:1:", `field "spec.replicatedJobs[0].template"`, "unknown field"}},
		{"nothing.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			[]string{"nothing.yaml", "no pod and no workload", "ConfigMap"}},
		{"cpu-only.json", `{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}}]}`,
			[]string{"cpu-only.json", "no pod to replay", "requests no GPU"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadInput(path, TraceOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// JobSets read through JobSet's Go types: replicas and groupName take the
// CRD's defaults when omitted (an explicit 0 makes no Job), the pods carry
// the labels and annotations the JobSet controller puts on them, exclusive
// placement (pod affinity the JobSet webhook adds) is noted as not
// simulated, and a misspelt JobSet field or another API version is an
// error naming it.
func TestJobSet(t *testing.T) {
	const gpuTemplate = "template: {spec: {parallelism: 2, template: {spec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]}}}}"
	head := "apiVersion: jobset.x-k8s.io/v1alpha2\nkind: JobSet\nmetadata: {name: js, namespace: ml}\n"
	for _, tc := range []struct {
		name, doc string
		// pods per replicated job, and the labels of pod <js>-<rj>-0-0
		wantPods        map[string]int
		wantLabels      map[string]string // as labels and annotations
		wantAnnotations map[string]string
		wantNote        string
		wantErr         []string
	}{
		{name: "replicas omitted: one Job", doc: head + "spec: {replicatedJobs: [{name: w, " + gpuTemplate + "}]}\n",
			wantPods: map[string]int{"w": 2},
			wantLabels: map[string]string{"jobset.sigs.k8s.io/jobset-name": "js", "jobset.sigs.k8s.io/replicatedjob-name": "w", "jobset.sigs.k8s.io/job-index": "0",
				"jobset.sigs.k8s.io/replicatedjob-replicas": "1", "jobset.sigs.k8s.io/global-replicas": "1", "jobset.sigs.k8s.io/group-name": "default", "jobset.sigs.k8s.io/group-replicas": "1"}},
		{name: "explicit zero replicas: no Job", doc: head + "spec: {replicatedJobs: [{name: w, replicas: 3, " + gpuTemplate + "}, {name: idle, replicas: 0, " + gpuTemplate + "}]}\n",
			wantPods:   map[string]int{"w": 6},
			wantLabels: map[string]string{"jobset.sigs.k8s.io/replicatedjob-replicas": "3", "jobset.sigs.k8s.io/global-replicas": "3"}},
		{name: "groups", doc: head + "spec: {replicatedJobs: [{name: w, groupName: g, replicas: 2, " + gpuTemplate + "}, {name: v, groupName: g, " + gpuTemplate + "}, {name: d, " + gpuTemplate + "}]}\n",
			wantPods:   map[string]int{"w": 4, "v": 2, "d": 2},
			wantLabels: map[string]string{"jobset.sigs.k8s.io/group-name": "g", "jobset.sigs.k8s.io/group-replicas": "3", "jobset.sigs.k8s.io/global-replicas": "4"}},
		{name: "exclusive placement", doc: "apiVersion: jobset.x-k8s.io/v1alpha2\nkind: JobSet\nmetadata: {name: js, namespace: ml, annotations: {alpha.jobset.sigs.k8s.io/exclusive-topology: topology.kubernetes.io/zone}}\nspec: {replicatedJobs: [{name: w, replicas: 2, " + gpuTemplate + "}]}\n",
			wantPods: map[string]int{"w": 4}, wantNote: "4 pods have inter-pod affinity",
			wantAnnotations: map[string]string{"alpha.jobset.sigs.k8s.io/exclusive-topology": "topology.kubernetes.io/zone"}},
		{name: "misspelt replicas", doc: head + "spec: {replicatedJobs: [{name: w, replica: 4, " + gpuTemplate + "}]}\n",
			wantErr: []string{"jobset.yaml:1:", "JobSet ml/js", `field "spec.replicatedJobs[0].replica"`, "unknown field", "sigs.k8s.io/jobset v"}},
		{name: "replicas of the wrong type", doc: head + "spec: {replicatedJobs: [{name: w, replicas: many, " + gpuTemplate + "}]}\n",
			wantErr: []string{"jobset.yaml:1:", "JobSet ml/js", `field "spec.replicatedJobs[0].replicas"`, "expected int32"}},
		{name: "negative replicas", doc: head + "spec: {replicatedJobs: [{name: w, replicas: -1, " + gpuTemplate + "}]}\n",
			wantErr: []string{"JobSet ml/js", `field "spec.replicatedJobs[0].replicas"`, "negative"}},
		{name: "another version", doc: "apiVersion: jobset.x-k8s.io/v1alpha1\nkind: JobSet\nmetadata: {name: js}\nspec: {replicatedJobs: [{name: w, " + gpuTemplate + "}]}\n",
			wantErr: []string{"jobset.yaml:1:", `JobSet "js"`, `field "apiVersion"`, "jobset.x-k8s.io/v1alpha2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := ParseKube([]byte(tc.doc), "jobset.yaml", TraceOptions{})
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; pods %d", len(objs.Pods))
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			var first *PodSpec
			for i, p := range objs.Pods {
				got[p.Labels["jobset.sigs.k8s.io/replicatedjob-name"]]++
				if p.Group != "JobSet/js" || p.Namespace != "ml" || p.Annotations[evictioncost.AnnotationWorkloadClass] != "batch" {
					t.Errorf("pod %s: group %q, namespace %q, class %q; want JobSet/js, ml, batch", p.Name, p.Group, p.Namespace, p.Annotations[evictioncost.AnnotationWorkloadClass])
				}
				if first == nil {
					first = &objs.Pods[i]
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantPods) {
				t.Errorf("pods per replicated job %v, want %v", got, tc.wantPods)
			}
			for k, v := range tc.wantLabels {
				if first.Labels[k] != v || first.Annotations[k] != v {
					t.Errorf("pod %s label %s = %q, annotation %q, want %q", first.Name, k, first.Labels[k], first.Annotations[k], v)
				}
			}
			for k, v := range tc.wantAnnotations {
				if first.Annotations[k] != v {
					t.Errorf("pod %s annotation %s = %q, want %q", first.Name, k, first.Annotations[k], v)
				}
			}
			if notes := strings.Join(objs.Notes, " "); !strings.Contains(notes, tc.wantNote) || (tc.wantNote == "" && notes != "") {
				t.Errorf("notes %q, want %q", notes, tc.wantNote)
			}
		})
	}
}
