package packing_test

import (
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/trace"
)

// Trace batches: the GPU pods alive at each of the 7 busiest moments of the
// default list, and all GPU pods of the static multigpu50 list. Pods ask for
// num_gpu whole nvidia.com/gpu (gpu_milli < 1000 still takes one); gpu_spec
// is ignored (the trace's GPU models are not in the catalog). No daemonsets:
// node overhead is the kubelet/system reservation the catalog computes.
type batch struct {
	name string
	pods []*corev1.Pod
}

func traceBatches(t testing.TB, withMultiGPU50 bool) []batch {
	t.Helper()
	def, err := trace.Embedded(trace.DefaultPodList)
	if err != nil {
		t.Fatal(err)
	}
	var out []batch
	for i, m := range trace.BusiestMoments(def, 7) {
		out = append(out, batch{fmt.Sprintf("default #%d t=%ds", i+1, int64(m.Seconds())), tracePods(trace.AliveAt(def, m))})
	}
	if withMultiGPU50 {
		mg, err := trace.Embedded(trace.MultiGPU50PodList)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, batch{"multigpu50 (all)", tracePods(mg)})
	}
	return out
}

type costRow struct {
	name                     string
	pods                     int
	karpGPU, stock, bound    float64
	stockNCs, karpNCs        int
	solve, refine, boundTime time.Duration
	method                   string
}

func measureBatch(t testing.TB, b batch) costRow {
	t.Helper()
	ctx := testContext()
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	run := solveAndRefine(t, ctx, nps(np), its, b.pods, nil)
	if len(run.core.PodErrors) > 0 {
		t.Fatalf("%s: core could not schedule %d pods", b.name, len(run.core.PodErrors))
	}
	start := time.Now()
	bound := lpBound(b.pods, its, nil, np)
	return costRow{name: b.name, pods: len(b.pods), karpGPU: run.refinedCost, stock: run.coreCost, bound: bound.Cost,
		stockNCs: len(run.core.NewNodeClaims), karpNCs: len(run.refined.NewNodeClaims),
		solve: run.solveTime, refine: run.refineTime, boundTime: time.Since(start), method: string(bound.Method)}
}

// printCostTable writes the table and returns the mean ratios
// karpenter-gpu/bound and karpenter-gpu/stock.
func printCostTable(w io.Writer, rows []costRow) (meanBound, meanStock float64) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "batch\tGPU pods\tstock NCs\tkarpenter-gpu NCs\tstock $/h\tkarpenter-gpu $/h\tLP bound $/h\tkg/bound\tstock/bound\tkg/stock\tSolve\tRefine\tLP\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s %s\t\n", r.name, r.pods, r.stockNCs, r.karpNCs,
			r.stock, r.karpGPU, r.bound, r.karpGPU/r.bound, r.stock/r.bound, r.karpGPU/r.stock,
			r.solve.Round(time.Millisecond), r.refine.Round(time.Millisecond), r.boundTime.Round(time.Millisecond), r.method)
		meanBound += r.karpGPU / r.bound
		meanStock += r.karpGPU / r.stock
	}
	meanBound /= float64(len(rows))
	meanStock /= float64(len(rows))
	fmt.Fprintf(tw, "mean\t\t\t\t\t\t\t%.3f\t\t%.3f\t\t\t\t\n", meanBound, meanStock)
	tw.Flush()
	return meanBound, meanStock
}

// TestTraceFleetCost prints the fleet-cost table for the 7 busiest moments
// of the default trace and checks the targets: karpenter-gpu ≤ 1.03× the
// LP bound and ≤ 0.75× stock core, on average. (The benchmark
// BenchmarkTraceFleetCost adds the 8k-pod multigpu50 batch.)
func TestTraceFleetCost(t *testing.T) {
	var rows []costRow
	for _, b := range traceBatches(t, false) {
		rows = append(rows, measureBatch(t, b))
	}
	var sb strings.Builder
	meanBound, meanStock := printCostTable(&sb, rows)
	t.Log("\n" + sb.String())
	for _, r := range rows {
		if r.karpGPU > r.stock+1e-6 || r.karpGPU < r.bound-1e-6 {
			t.Errorf("%s: karpenter-gpu $%.2f outside [bound $%.2f, stock $%.2f]", r.name, r.karpGPU, r.bound, r.stock)
		}
	}
	if meanBound > 1.03 {
		t.Errorf("mean karpenter-gpu/bound %.3f > 1.03", meanBound)
	}
	if meanStock > 0.75 {
		t.Errorf("mean karpenter-gpu/stock %.3f > 0.75", meanStock)
	}
}

// BenchmarkTraceFleetCost: fleet $/h of karpenter-gpu (core's Solve then
// Refine), of stock core (Solve alone, each NodeClaim at its cheapest
// launchable type) and the LP bound, on every trace batch. Run with
// -benchtime=1x; the table goes to stdout.
func BenchmarkTraceFleetCost(b *testing.B) {
	batches := traceBatches(b, true)
	for i := 0; i < b.N; i++ {
		var rows []costRow
		for _, bt := range batches {
			rows = append(rows, measureBatch(b, bt))
		}
		meanBound, meanStock := printCostTable(os.Stdout, rows)
		b.ReportMetric(meanBound, "kg/bound")
		b.ReportMetric(meanStock, "kg/stock")
	}
}

// decisionBatch draws n pending GPU pods (1/2/4/8 GPUs) with the shapes of
// the multigpu50 list, seeded.
func decisionBatch(tb testing.TB, n int) []*corev1.Pod {
	mg, err := trace.Embedded(trace.MultiGPU50PodList)
	if err != nil {
		tb.Fatal(err)
	}
	shapes := trace.GPUPods(mg)
	r := rand.New(rand.NewSource(int64(n)))
	var pods []*corev1.Pod
	for len(pods) < n {
		p := shapes[r.Intn(len(shapes))]
		pods = append(pods, gpuPod(p.CPUMilli, p.MemoryMiB, p.GPUs))
	}
	return pods
}

// packOnly runs the pure packer on the batch: aggregation into shapes, type
// options from the catalog, Pack.
func packOnly(pods []*corev1.Pod, its []*cloudprovider.InstanceType, np *karpv1.NodePool) packing.Plan {
	items, types := packInput(pods, its, np)
	return packing.Pack(items, types, packing.PackOptions{})
}

// packInput is Pack's input for pods on the pool's types: one item per
// pod shape, one option per type at its price.
func packInput(pods []*corev1.Pod, its []*cloudprovider.InstanceType, np *karpv1.NodePool) ([]packing.Item, []packing.TypeOption) {
	var items []packing.Item
	for _, c := range countedShapes(pods) {
		items = append(items, packing.Item{Requests: c.requests, Count: c.count})
	}
	var types []packing.TypeOption
	for _, t := range poolTypes(its, np) {
		types = append(types, packing.TypeOption{Name: t.Name, Allocatable: t.Allocatable(), Capacity: t.Capacity, Price: t.price})
	}
	return items, types
}

// BenchmarkDecision times one provisioning decision for 1,000 / 5,000 /
// 10,000 pending GPU pods over the full catalog: core's Solve alone, Refine
// on its result, and Pack alone. Run with -benchtime=1x.
func BenchmarkDecision(b *testing.B) {
	for _, n := range []int{1000, 5000, 10000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			pods := decisionBatch(b, n)
			ctx := testContext()
			its := catalogTypes(b)
			np := gpuNodePool("gpu")
			for i := 0; i < b.N; i++ {
				run := solveAndRefine(b, ctx, nps(np), its, pods, nil)
				start := time.Now()
				plan := packOnly(pods, its, np)
				packTime := time.Since(start)
				b.ReportMetric(run.solveTime.Seconds(), "solve-s")
				b.ReportMetric(run.refineTime.Seconds(), "refine-s")
				b.ReportMetric((run.solveTime + run.refineTime).Seconds(), "solve+refine-s")
				b.ReportMetric(packTime.Seconds(), "pack-s")
				b.ReportMetric(run.coreCost, "stock-$/h")
				b.ReportMetric(run.refinedCost, "kg-$/h")
				b.ReportMetric(plan.Cost, "pack-$/h")
				fmt.Printf("decision %5d pods: Solve %v, Refine %v (Solve+Refine %v), Pack alone %v; stock $%.2f/h (%d NCs), karpenter-gpu $%.2f/h (%d NCs), Pack $%.2f/h (%d nodes); %s\n",
					n, run.solveTime.Round(time.Millisecond), run.refineTime.Round(time.Millisecond), (run.solveTime + run.refineTime).Round(time.Millisecond),
					packTime.Round(time.Millisecond), run.coreCost, len(run.core.NewNodeClaims), run.refinedCost, len(run.refined.NewNodeClaims), plan.Cost, plan.NodeCount(), run.decision)
			}
		})
	}
}

// BenchmarkPackPods times the direct path (no core Solve): PackPods builds
// the NodeClaims for 1,000 / 5,000 / 10,000 pending GPU pods.
func BenchmarkPackPods(b *testing.B) {
	for _, n := range []int{1000, 5000, 10000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			pods := decisionBatch(b, n)
			its := catalogTypes(b)
			np := gpuNodePool("gpu")
			for i := 0; i < b.N; i++ {
				start := time.Now()
				plan := packing.PackPods(np, its, pods, packing.Options{})
				d := time.Since(start)
				if len(plan.Rejected) > 0 {
					b.Fatalf("%d pods rejected", len(plan.Rejected))
				}
				b.ReportMetric(d.Seconds(), "packpods-s")
				b.ReportMetric(plan.Cost, "$/h")
				fmt.Printf("PackPods %5d pods: %v, %d NodeClaims, $%.2f/h\n", n, d.Round(time.Millisecond), len(plan.NodeClaims), plan.Cost)
			}
		})
	}
}
