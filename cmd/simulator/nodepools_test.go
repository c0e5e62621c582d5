package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

const npdata = "testdata/nodepools"

// The cluster's NodePools change what the preview launches. Hand-checked on
// the catalog and examples/finops's price files: the cluster runs one
// 1-GPU pod (2 CPU, 8 GiB) and the manifest adds one more, so each policy
// runs one instance before and launches one more of the same type, the
// cheapest the NodePool admits that holds 1 GPU, 2 CPU and 8 GiB:
//   - the simulator's default NodePool (NVIDIA, amd64, on-demand):
//     g4dn.xlarge, $0.526/h (us-east-1; us-west-2 on-demand is $0.526 too);
//   - gpu-g6 (karpenter.k8s.aws/instance-family In [g6], on-demand; from
//     --nodepools or inside the --cluster List): g6.xlarge, $0.8048/h,
//     the smallest g6 (4 vCPU, 16 GiB, one L4);
//   - gpu-spot (capacity type spot only) with us-west-2 spot prices:
//     g4dn.xlarge spot at $0.198/h, us-west-2b's latest price (2a's is
//     $0.2104; the file's $9.99 rows are a day older, its $0.40 row is
//     Windows). Without spot prices it is an error naming gpu-spot.
func TestPreviewNodePools(t *testing.T) {
	pods, cluster, add := filepath.Join(npdata, "pods.json"), filepath.Join(npdata, "cluster.json"), filepath.Join(npdata, "embed.yaml")
	westPrices := []string{"--region", "us-west-2", "--prices", filepath.Join(ex, "ondemand-prices-us-west-2.json"), "--prices", filepath.Join(ex, "spot-prices-us-west-2.json")}
	for _, tc := range []struct {
		name     string
		args     []string
		typ, ct  string
		usd      float64
		poolNote string // "" when the default NodePool runs
	}{
		{"default NodePool", []string{"--cluster", pods}, "g4dn.xlarge", karpv1.CapacityTypeOnDemand, 0.526, ""},
		{"--nodepools g6 only", []string{"--cluster", pods, "--nodepools", filepath.Join(npdata, "nodepools-g6.yaml")}, "g6.xlarge", karpv1.CapacityTypeOnDemand, 0.8048, "gpu-g6"},
		{"g6 NodePool in the --cluster List", []string{"--cluster", cluster}, "g6.xlarge", karpv1.CapacityTypeOnDemand, 0.8048, "gpu-g6"},
		{"default NodePool, us-west-2 prices", append([]string{"--cluster", pods}, westPrices...), "g4dn.xlarge", karpv1.CapacityTypeOnDemand, 0.526, ""},
		{"--nodepools spot only, us-west-2 prices", append([]string{"--cluster", pods, "--nodepools", filepath.Join(npdata, "nodepools-spot.json")}, westPrices...), "g4dn.xlarge", karpv1.CapacityTypeSpot, 0.198, "gpu-spot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, out := previewJSON(t, append([]string{"--add", add}, tc.args...)...)
			for _, p := range got {
				if math.Abs(p.BeforeUSDPerHour-tc.usd) > 1e-6 || math.Abs(p.IncrementalUSDPerHour-tc.usd) > 1e-6 || p.GPUsAfter-p.GPUsBefore != 1 {
					t.Errorf("%s: before $%.4f/h, incremental $%.4f/h, +%v GPUs; want $%.4f, $%.4f, +1", p.Policy, p.BeforeUSDPerHour, p.IncrementalUSDPerHour, p.GPUsAfter-p.GPUsBefore, tc.usd, tc.usd)
				}
				if len(p.Launched) != 1 || p.Launched[0].Type != tc.typ || p.Launched[0].CapacityType != tc.ct {
					t.Errorf("%s launched %+v, want one %s %s", p.Policy, p.Launched, tc.typ, tc.ct)
				}
				for _, in := range p.Launched {
					if in.NodePool != orDefault(tc.poolNote, "gpu") {
						t.Errorf("%s launched in NodePool %q, want %q", p.Policy, in.NodePool, orDefault(tc.poolNote, "gpu"))
					}
				}
			}
			note := "NodePools of "
			if has := strings.Contains(out, note); has != (tc.poolNote != "") || (has && !strings.Contains(out, ": "+tc.poolNote+" (GPUNodeClass default), for both policies")) {
				t.Errorf("output, want a NodePools note naming %q: %v\n%s", tc.poolNote, tc.poolNote != "", out)
			}
			if strings.Contains(out, "ignored: karpenter.sh/v1 NodePool") {
				t.Errorf("the NodePool taken from the List is also listed as ignored:\n%s", out)
			}
		})
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// The main command takes the same NodePools: a snapshot of the cluster List
// with gpu-g6 runs its pod on a g6.xlarge under both policies.
func TestSimulateNodePools(t *testing.T) {
	jsonOut := filepath.Join(t.TempDir(), "r.json")
	var out, errOut bytes.Buffer
	if err := run([]string{"--trace", filepath.Join(npdata, "cluster.json"), "--compare", "--no-cache", "--quiet", "--json", jsonOut}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var c report.Comparison
	readJSON(t, jsonOut, &c)
	for _, r := range c.Results {
		if len(r.Instances) != 1 || r.Instances[0].Type != "g6.xlarge" || r.Instances[0].NodePool != "gpu-g6" {
			t.Errorf("%s: instances %+v, want one g6.xlarge of gpu-g6", r.Policy, r.Instances)
		}
	}
	err := run([]string{"--trace", "../../pkg/simulation/testdata/handchecked.yaml", "--nodepools", filepath.Join(npdata, "nodepools-g6.yaml"), "--quiet", "--no-cache"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "has NodePools of its own (g4dn); give the NodePools once") {
		t.Errorf("--nodepools on a scenario with NodePools: %v", err)
	}
}

// Bad NodePool input is an error naming the file (and line), the object and
// the field; it never panics and never runs.
func TestPreviewBadNodePools(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string { return writeTemp(t, dir, name, body) }
	pool := func(name, reqs string) string {
		return "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: " + name + "}\nspec:\n  template:\n    spec:\n" +
			"      nodeClassRef: {group: karpenter-gpu.io, kind: GPUNodeClass, name: default}\n      requirements: " + reqs + "\n"
	}
	class := func(name string) string {
		return "apiVersion: karpenter-gpu.io/v1alpha1\nkind: GPUNodeClass\nmetadata: {name: " + name + "}\n" +
			"spec: {role: R, subnetSelectorTerms: [{tags: {a: b}}], securityGroupSelectorTerms: [{tags: {a: b}}]}\n"
	}
	g6 := "[{key: karpenter.k8s.aws/instance-family, operator: In, values: [g6]}]"
	pods, add := filepath.Join(npdata, "pods.json"), filepath.Join(npdata, "embed.yaml")
	for _, tc := range []struct {
		name, file string
		extra      []string
		want       []string
	}{
		{"unknown field", write("unknown.yaml", strings.Replace(pool("a", g6), "requirements:", "requirement:", 1)), nil,
			[]string{"unknown.yaml:1: ", `NodePool "a": field "spec.template.spec.requirement": unknown field`}},
		{"v1beta1", write("beta.yaml", strings.Replace(pool("a", g6), "karpenter.sh/v1", "karpenter.sh/v1beta1", 1)), nil,
			[]string{"beta.yaml:1: ", `NodePool "a": field "apiVersion": karpenter.sh/v1beta1; the simulator reads karpenter.sh/v1`}},
		{"no name", write("noname.yaml", strings.Replace(pool("a", g6), "{name: a}", "{labels: {x: z}}", 1)), nil,
			[]string{"noname.yaml:1: ", `field "metadata.name": required`}},
		{"duplicate", write("dup.yaml", pool("a", g6)+"---\n"+pool("a", g6)), nil,
			[]string{"dup.yaml:10 document 2: ", `NodePool "a": field "metadata.name": duplicate NodePool "a" (also ` + filepath.Join(dir, "dup.yaml") + ":1 document 1)"}},
		{"type error in a List", write("type.json", `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"karpenter.sh/v1","kind":"NodePool","metadata":{"name":"x"},"spec":{"template":{"spec":{"nodeClassRef":{"group":"karpenter-gpu.io","kind":"GPUNodeClass","name":"default"},"requirements":[{"key":"kubernetes.io/arch","operator":"In","values":[5]}]}}}}]}`), nil,
			[]string{"type.json items[0]: ", `NodePool "x": field "spec.template.spec.requirements.0.values.0": expected string, got number`}},
		{"bad limit", write("limit.yaml", strings.Replace(pool("a", g6), "spec:\n", "spec:\n  limits: {nvidia.com/gpu: lots}\n", 1)), nil,
			[]string{"limit.yaml:1: ", `NodePool "a": field "spec.limits.nvidia.com/gpu": "lots" is not a quantity`}},
		{"terminationGracePeriod", write("tgp.yaml", pool("a", g6)+"      terminationGracePeriod: 1h\n"), nil,
			[]string{"tgp.yaml:1: ", `NodePool "a": field "spec.template.spec.terminationGracePeriod": not supported by the simulator`}},
		{"unknown operator", write("op.yaml", pool("a", "[{key: karpenter.k8s.aws/instance-family, operator: Inn, values: [g6]}]")), nil,
			[]string{"op.yaml:1: ", `NodePool "a": field "spec.template": `, "unsupported operator Inn"}},
		{"no catalog type", write("p9.yaml", pool("gpu-p9", "[{key: karpenter.k8s.aws/instance-family, operator: In, values: [p9]}]")), nil,
			[]string{"p9.yaml:1: ", `NodePool "gpu-p9": field "spec.template.spec.requirements": no instance type satisfies them`, "no type has karpenter.k8s.aws/instance-family In [p9]"}},
		{"no type satisfies them together", write("together.yaml", pool("mixed", "[{key: karpenter.k8s.aws/instance-family, operator: In, values: [g6]}, {key: karpenter-gpu.io/gpu-name, operator: In, values: [t4]}]")), nil,
			[]string{"together.yaml:1: ", `NodePool "mixed"`, "each requirement admits some type, but no type satisfies them all"}},
		{"spot without spot prices", filepath.Join(npdata, "nodepools-spot.json"), nil,
			[]string{"nodepools-spot.json items[0]: ", `NodePool "gpu-spot"`, "karpenter.sh/capacity-type In [spot] (the fleet offers on-demand; spot needs --prices"}},
		{"minValues", write("minv.yaml", pool("one-family", "[{key: karpenter.k8s.aws/instance-family, operator: In, values: [g6, p9], minValues: 2}]")), nil,
			[]string{"minv.yaml:1: ", `NodePool "one-family"`, "karpenter.k8s.aws/instance-family needs at least 2 values (minValues), the instance types the NodePool admits have 1 (g6)"}},
		{"missing GPUNodeClass", write("missing.yaml", strings.Replace(pool("a", g6), "name: default}", "name: big}", 1)+"---\n"+class("default")), nil,
			[]string{"missing.yaml:1 document 1: ", `NodePool "a": field "spec.template.spec.nodeClassRef.name": GPUNodeClass "big" is not among the GPUNodeClasses given (default)`}},
		{"two GPUNodeClasses", write("two.yaml", pool("a", g6)+"---\n"+strings.Replace(pool("b", g6), "name: default}", "name: other}", 1)+"---\n"+class("default")+"---\n"+class("other")), nil,
			[]string{"two.yaml: the NodePools use 2 GPUNodeClasses (default: a; other: b): the simulator runs one GPUNodeClass"}},
		{"bad YAML", write("bad.yaml", "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: a\n"), nil,
			[]string{"bad.yaml: document at line 1: yaml: line 3"}},
		{"not Kubernetes objects", write("pools.csv", "name,family\na,g6\n"), nil, []string{"pools.csv: not Kubernetes objects"}},
		{"no NodePool", pods, nil, []string{"pods.json: no NodePool (want `kubectl get nodepools -o json|yaml` output", `it holds v1 Pod "chat-5f7d9c8b4-q2w8r"`}},
		{"NodePools twice", filepath.Join(npdata, "nodepools-g6.yaml"), []string{"--cluster", filepath.Join(npdata, "cluster.json")},
			[]string{"cluster.json already holds 1 NodePool (e.g. gpu-g6); give the NodePools once"}},
		{"--capacity-types", filepath.Join(npdata, "nodepools-g6.yaml"), []string{"--capacity-types", "on-demand"},
			[]string{"--capacity-types sets the capacity types of the simulator's default NodePool; the NodePools of"}},
		{"missing file", filepath.Join(dir, "absent.yaml"), nil, []string{"absent.yaml: no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"preview", "--cluster", pods, "--add", add, "--nodepools", tc.file}
			var out, errOut bytes.Buffer
			err := run(append(args, tc.extra...), &out, &errOut)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v\nwant it to contain %q", err, w)
				}
			}
			if out.Len() > 0 {
				t.Errorf("a refused input printed a preview:\n%s", out.String())
			}
		})
	}
}

// A Karpenter-AWS NodePool (EC2NodeClass) runs on the GPUNodeClass, with a
// note; a GPUNodeClass given with the NodePools is the one simulated.
func TestClusterPoolsNodeClass(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pools.yaml")
	body := "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: aws}\nspec:\n  template:\n    spec:\n" +
		"      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}\n" +
		"---\napiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: gpu}\nspec:\n  template:\n    spec:\n" +
		"      nodeClassRef: {group: karpenter-gpu.io, kind: GPUNodeClass, name: l4}\n" +
		"---\napiVersion: karpenter-gpu.io/v1alpha1\nkind: GPUNodeClass\nmetadata: {name: l4, uid: 0f6c2a4e, resourceVersion: '9'}\n" +
		"spec: {role: R, subnetSelectorTerms: [{tags: {a: b}}], securityGroupSelectorTerms: [{tags: {a: b}}], kubelet: {maxPods: 17}}\nstatus: {conditions: []}\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := loadClusterPools("", file)
	if err != nil {
		t.Fatal(err)
	}
	w := &workload.Workload{Source: "test", NodeClass: workload.DefaultNodeClass(), NodePools: []*karpv1.NodePool{workload.DefaultNodePool()}}
	if err := c.apply(w); err != nil {
		t.Fatal(err)
	}
	if w.NodeClass.Name != "l4" || w.NodeClass.UID != "" || w.NodeClass.ResourceVersion != "" || *w.NodeClass.Spec.Kubelet.MaxPods != 17 {
		t.Errorf("node class %+v, want l4 with maxPods 17 and no server metadata", w.NodeClass.ObjectMeta)
	}
	for _, np := range w.NodePools {
		if ref := np.Spec.Template.Spec.NodeClassRef; ref.Name != "l4" || ref.Kind != "GPUNodeClass" {
			t.Errorf("NodePool %s refers to %+v", np.Name, ref)
		}
		// The CRD's defaults, as for a scenario's NodePools.
		if np.Spec.Disruption.ConsolidationPolicy != karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized || len(np.Spec.Disruption.Budgets) != 1 {
			t.Errorf("NodePool %s not defaulted: %+v", np.Name, np.Spec.Disruption)
		}
	}
	if !strings.Contains(strings.Join(w.Notes, "\n"), "NodePools aws (EC2NodeClass.karpenter.k8s.aws default) use another provider's node class: simulated with karpenter-gpu's GPUNodeClass l4") {
		t.Errorf("notes %q", w.Notes)
	}
}

// With the cluster's nodes, the NodePool most Karpenter nodes belong to
// goes first (the simulation starts them in the first NodePool); the
// Karpenter nodes of other NodePools are kept as they are.
func TestInitialNodePool(t *testing.T) {
	mk := func(name string) *karpv1.NodePool {
		np := workload.DefaultNodePool()
		np.Name = name
		return np
	}
	node := func(name, pool string) workload.ClusterNode {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		if pool != "" {
			n.Labels[karpv1.NodePoolLabelKey] = pool
		}
		return workload.ClusterNode{Node: n}
	}
	w := &workload.Workload{NodePools: []*karpv1.NodePool{mk("a"), mk("b"), mk("c")}}
	cn := &workload.ClusterNodes{Nodes: []workload.ClusterNode{node("n1", "b"), node("n2", "b"), node("n3", "a"), node("n4", "gone"), node("n5", "")}}
	keep := (&clusterPools{source: "pools.yaml"}).initialNodePool(w, cn)
	if names := poolNames(w); names != "b, a, c" {
		t.Errorf("NodePools in order %s, want b, a, c", names)
	}
	want := map[string]string{
		"n3": "its NodePool a is not b, the one NodePool the simulation starts the cluster's Karpenter nodes in",
		"n4": "its NodePool gone is not among the NodePools of pools.yaml",
	}
	if len(keep) != len(want) || keep["n3"] != want["n3"] || keep["n4"] != want["n4"] {
		t.Errorf("kept %v, want %v", keep, want)
	}
	if keep := (*clusterPools)(nil).initialNodePool(w, cn); keep != nil {
		t.Errorf("without cluster NodePools: kept %v", keep)
	}
}

// With the cluster's nodes (examples/finops: a Karpenter g4dn.12xlarge of
// NodePool gpu with one T4 free, and a CPU node), the cluster's NodePools
// decide what launches for the pod that fits on no node: finetune-0 takes
// the free T4; finetune-1 (g4dn only) launches a g4dn.xlarge ($0.526/h) in
// NodePool gpu, which also holds the 12xlarge the fleet starts from. With
// only gpu-g6, the 12xlarge (NodePool gpu, not given) is kept as it is and
// finetune-1 runs nowhere: the cluster's NodePools cannot launch a g4dn.
func TestPreviewNodePoolsOnClusterNodes(t *testing.T) {
	dir := t.TempDir()
	two := filepath.Join(dir, "pools.yaml")
	pool := func(name, family string) string {
		return "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: " + name + "}\nspec:\n  template:\n    spec:\n" +
			"      nodeClassRef: {group: karpenter-gpu.io, kind: GPUNodeClass, name: gpu}\n" +
			"      requirements: [{key: karpenter.k8s.aws/instance-family, operator: In, values: [" + family + "]}]\n"
	}
	if err := os.WriteFile(two, []byte(pool("gpu", "g4dn")+"---\n"+pool("a-g6", "g6")), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"preview", "--cluster", filepath.Join(ex, "cluster-pods.json"), "--nodes", filepath.Join(ex, "cluster-nodes.json"), "--add", filepath.Join(ex, "train-job.yaml")}
	for _, tc := range []struct {
		name, pools, baseline string
		launched              string // "" for none
		incremental           float64
		want                  string
	}{
		{"gpu and a-g6", two, baselineConsolidated, "g4dn.xlarge/gpu", 0.526, "NodePools of " + two + ": a-g6, gpu (GPUNodeClass gpu)"},
		{"gpu-g6 only", filepath.Join(npdata, "nodepools-g6.yaml"), baselineNodes, "", 0,
			"Karpenter node ip-10-0-0-1.ec2.internal kept as it is: its NodePool gpu is not among the NodePools of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jsonOut := filepath.Join(t.TempDir(), "p.json")
			var out, errOut bytes.Buffer
			if err := run(append(base, "--nodepools", tc.pools, "--json", jsonOut), &out, &errOut); err != nil {
				t.Fatalf("%v\n%s", err, errOut.String())
			}
			var got []PreviewResult
			readJSON(t, jsonOut, &got)
			for _, p := range got {
				var launched []string
				for _, in := range p.Launched {
					launched = append(launched, in.Type+"/"+in.NodePool)
				}
				if p.Baseline != tc.baseline || strings.Join(launched, ",") != tc.launched || math.Abs(p.IncrementalUSDPerHour-tc.incremental) > 1e-6 {
					t.Errorf("%s: baseline %q, launched %v, incremental $%.3f/h; want %q, %q, $%.3f/h", p.Policy, p.Baseline, launched, p.IncrementalUSDPerHour, tc.baseline, tc.launched, tc.incremental)
				}
				if tc.launched == "" && (len(p.AddedPodsPending) != 1 || p.AddedPodsPending[0].Name != "finetune-1") {
					t.Errorf("%s: pending %+v, want finetune-1", p.Policy, p.AddedPodsPending)
				}
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out.String())
			}
		})
	}
}
