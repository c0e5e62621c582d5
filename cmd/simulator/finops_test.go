package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

const ex = "../../examples/finops"

// preview on the hand-checked cluster of examples/finops (train on a
// g4dn.xlarge, two web replicas on g4dn.2xlarges under karpenter-gpu:
// $2.030/h; one g4dn.12xlarge with a GPU free under stock: $3.912/h):
// adding the two 1-GPU finetune workers launches two g4dn.xlarges
// (+$1.052/h) under karpenter-gpu, whose nodes are full, but only one under
// stock (+$0.526/h): the other lands on the 12xlarge's free GPU. A single
// 1-GPU pod fits stock's free capacity and launches nothing there.
func TestPreview(t *testing.T) {
	dir := t.TempDir()
	jsonOut := filepath.Join(dir, "preview.json")
	var out, errOut bytes.Buffer
	if err := run([]string{"preview", "--cluster", filepath.Join(ex, "cluster-pods.json"), "--add", filepath.Join(ex, "train-job.yaml"), "--json", jsonOut}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var got []PreviewResult
	readJSON(t, jsonOut, &got)
	want := map[string][5]float64{ // before, after, incremental $/h, +GPUs, launches
		"karpenter-gpu": {2.030, 3.082, 1.052, 2, 2},
		"stock":         {3.912, 4.438, 0.526, 1, 1},
	}
	for _, p := range got {
		w := want[p.Policy]
		if math.Abs(p.BeforeUSDPerHour-w[0]) > 1e-6 || math.Abs(p.AfterUSDPerHour-w[1]) > 1e-6 || math.Abs(p.IncrementalUSDPerHour-w[2]) > 1e-6 ||
			p.GPUsAfter-p.GPUsBefore != w[3] || len(p.Launched) != int(w[4]) || p.FitsOnFreeCapacity {
			t.Errorf("%s: %+v, want before/after/incremental/+GPUs/launches %v", p.Policy, p, w)
		}
		for _, l := range p.Launched {
			if l.Type != "g4dn.xlarge" {
				t.Errorf("%s launched %s, want g4dn.xlarge", p.Policy, l.Type)
			}
		}
	}
	if len(got) != 2 || !strings.Contains(out.String(), "+1.052") || !strings.Contains(out.String(), "stock: launches 1 × g4dn.xlarge (on-demand, $0.526/h)") {
		t.Errorf("preview output:\n%s", out.String())
	}

	one := filepath.Join(dir, "one.yaml")
	if err := os.WriteFile(one, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: notebook, namespace: ml-research}\nspec:\n  nodeSelector: {karpenter-gpu.io/instance-family: g4dn}\n  containers: [{name: c, image: i, resources: {requests: {cpu: '1', memory: 4Gi}, limits: {nvidia.com/gpu: 1}}}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run([]string{"preview", "--cluster", filepath.Join(ex, "cluster-pods.json"), "--add", one}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "stock: fits on existing free capacity") || !strings.Contains(out.String(), "karpenter-gpu: launches 1 × g4dn.xlarge") {
		t.Errorf("preview of one pod:\n%s", out.String())
	}
}

// The report of a pod list with --group-by: the JSON's cost allocation and
// the allocation CSV add up to each policy's fleet cost.
func TestReportAllocationJSONAndCSV(t *testing.T) {
	dir := t.TempDir()
	jsonOut, csvOut, htmlOut := filepath.Join(dir, "r.json"), filepath.Join(dir, "a.csv"), filepath.Join(dir, "r.html")
	var out, errOut bytes.Buffer
	args := []string{"--trace", filepath.Join(ex, "cluster-pods.json"), "--compare", "--no-cache", "--quiet", "--scheduler-profile", "bin-packing",
		"--group-by", "team", "--json", jsonOut, "--allocation-csv", csvOut, "--html", htmlOut}
	if err := run(args, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var c report.Comparison
	readJSON(t, jsonOut, &c)
	f, _ := os.Open(csvOut)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{} // policy/dimension -> $
	for _, row := range rows[1:] {
		v, _ := strconv.ParseFloat(row[6], 64)
		sums[row[0]+"/"+row[1]] += v
	}
	for _, r := range c.Results {
		ca := r.CostAllocation
		if ca == nil || ca.GroupBy != "team" || len(ca.ByLabel) != 2 {
			t.Fatalf("%s: allocation %+v", r.Policy, ca)
		}
		for _, dim := range []string{"namespace", "label:team", "pod_group"} {
			if got := sums[r.Policy+"/"+dim] + sums[r.Policy+"/idle_nodepool"]; math.Abs(got-r.CostUSD) > 0.01 {
				t.Errorf("%s: CSV %s + idle = $%.4f, fleet $%.4f", r.Policy, dim, got, r.CostUSD)
			}
		}
	}
	html, _ := os.ReadFile(htmlOut)
	for _, s := range []string{"<h2>Cost allocation</h2>", "<h3>By namespace</h3>", "<h3>By label team</h3>", `<th scope="row">inference/Deployment/web</th>`, "<h3>Idle cost by NodePool</h3>"} {
		if !strings.Contains(string(html), s) {
			t.Errorf("HTML report lacks %q", s)
		}
	}
	for _, s := range []string{"inference", "serving", "inference/Deployment/web", "idle by NodePool", "fleet cost"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("terminal report lacks %q:\n%s", s, out.String())
		}
	}
}

// Prices: a region the catalog does not price needs price files; with them,
// the default NodePool runs at their on-demand prices less the discount;
// spot needs spot prices.
func TestPricesFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	trace := filepath.Join(ex, "cluster-pods.json")
	err := run([]string{"--trace", trace, "--region", "us-west-2", "--quiet", "--no-cache"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `region "us-west-2"`) || !strings.Contains(err.Error(), "--prices") {
		t.Errorf("us-west-2 without prices: %v, want an error naming the region and --prices", err)
	}
	err = run([]string{"--trace", trace, "--region", "eu-central-1", "--prices", filepath.Join(ex, "spot-prices-us-west-2.json"), "--quiet"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `region "eu-central-1"`) {
		t.Errorf("eu-central-1 with us-west-2 prices: %v, want an error naming the region", err)
	}
	err = run([]string{"--trace", trace, "--capacity-types", "spot", "--quiet"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "spot prices") {
		t.Errorf("spot without spot prices: %v", err)
	}
	err = run([]string{"--trace", "../../pkg/simulation/testdata/handchecked.yaml", "--capacity-types", "on-demand", "--quiet"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "NodePools (g4dn) state their own") {
		t.Errorf("--capacity-types on a scenario with its own NodePools: %v", err)
	}
	dir := t.TempDir()
	jsonOut := filepath.Join(dir, "r.json")
	out.Reset()
	if err := run([]string{"--trace", trace, "--region", "us-west-2", "--prices", filepath.Join(ex, "ondemand-prices-us-west-2.json"), "--prices", filepath.Join(ex, "spot-prices-us-west-2.json"),
		"--discount", "28", "--capacity-types", "spot", "--scheduler-profile", "bin-packing", "--policy", "karpenter-gpu", "--quiet", "--json", jsonOut}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var r report.Result
	readJSON(t, jsonOut, &r)
	// Spot g4dn.xlarge $0.198 (us-west-2b) + two g4dn.2xlarge at $0.295 (2b).
	want := (0.198 + 2*0.295) * 3599 / 3600
	if math.Abs(r.CostUSD-want) > 1e-6 || math.Abs(r.CostUSDByCapacityType["spot"]-want) > 1e-6 {
		t.Errorf("cost $%.6f by capacity type %v, want $%.6f all spot", r.CostUSD, r.CostUSDByCapacityType, want)
	}
	if !strings.Contains(r.Prices, "discounts: on-demand 28.0%") || !strings.Contains(out.String(), "Prices: us-west-2") {
		t.Errorf("prices description %q", r.Prices)
	}
}

// The stock cache key changes with everything FinOps adds to a run: prices,
// interruption rate, allocation label.
func TestStockKeyCoversFinOps(t *testing.T) {
	w, err := workload.LoadInput(filepath.Join(ex, "cluster-pods.json"), workload.TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := simulation.DefaultConfig()
	key := func(mutate func(*simulation.Config)) string {
		c := base
		mutate(&c)
		k, err := stockKey(w, c)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k0 := key(func(*simulation.Config) {})
	for name, m := range map[string]func(*simulation.Config){
		"prices": func(c *simulation.Config) {
			c.Prices = catalog.StaticPrices{{InstanceType: "g4dn.xlarge", CapacityType: "on-demand"}: 0.4}
		},
		"other prices": func(c *simulation.Config) {
			c.Prices = catalog.StaticPrices{{InstanceType: "g4dn.xlarge", CapacityType: "on-demand"}: 0.5}
		},
		"interruptions": func(c *simulation.Config) { c.SpotInterruptionsPerDay = 1 },
		"group-by":      func(c *simulation.Config) { c.GroupBy = "team" },
	} {
		if key(m) == k0 {
			t.Errorf("%s: same stock cache key", name)
		}
	}
	if key(func(*simulation.Config) {}) != k0 {
		t.Errorf("the key is not deterministic")
	}
}

// readJSON decodes the JSON file at path into v.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
