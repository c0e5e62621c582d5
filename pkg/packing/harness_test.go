package packing_test

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	fakecr "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/fake"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/operator/injection"
	"sigs.k8s.io/karpenter/pkg/operator/logging"
	"sigs.k8s.io/karpenter/pkg/operator/options"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/test"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/lowerbound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/trace"
)

func init() {
	log.SetLogger(logging.NopLogger)
}

const gpu = corev1.ResourceName(v1alpha1.ResourceNVIDIAGPU)

var zones = []string{"us-east-1a", "us-east-1b"}

// catalogTypes is the embedded catalog in us-east-1, on-demand.
func catalogTypes(t testing.TB) []*cloudprovider.InstanceType {
	t.Helper()
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	its, _ := catalog.NewInstanceTypes(entries, catalog.Options{Region: "us-east-1", Zones: zones, CapacityTypes: []string{karpv1.CapacityTypeOnDemand}})
	return its
}

// gpuNodePool restricts a pool to amd64 NVIDIA types, as the benchmarks do.
func gpuNodePool(name string, extra ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
	np := test.NodePool(karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: karpv1.NodePoolSpec{
			Limits: karpv1.Limits{corev1.ResourceCPU: resource.MustParse("100000000"), corev1.ResourceMemory: resource.MustParse("1000000000Gi")},
		},
	})
	np.Spec.Template.Spec.Requirements = append([]karpv1.NodeSelectorRequirementWithMinValues{
		{Key: v1alpha1.LabelGPUManufacturer, Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia"}},
		{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
	}, extra...)
	np.Spec.Limits = nil
	return np
}

var uidSeq int

// gpuPod is a pending pod with a unique name asking for cpuMilli, memMiB
// and gpus NVIDIA GPUs, changed by mutate (a nil mutate is skipped).
func gpuPod(cpuMilli, memMiB, gpus int64, mutate ...func(*corev1.Pod)) *corev1.Pod {
	uidSeq++
	req := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(cpuMilli, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memMiB<<20, resource.BinarySI),
	}
	lim := corev1.ResourceList{}
	if gpus > 0 {
		req[gpu] = *resource.NewQuantity(gpus, resource.DecimalSI)
		lim[gpu] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", uidSeq), Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%d", uidSeq))},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}},
	}
	for _, m := range mutate {
		if m != nil {
			m(p)
		}
	}
	return p
}

// gpuPods is n gpuPod(cpuMilli, memMiB, gpus, mutate...).
func gpuPods(n int, cpuMilli, memMiB, gpus int64, mutate ...func(*corev1.Pod)) []*corev1.Pod {
	return lo.Times(n, func(int) *corev1.Pod { return gpuPod(cpuMilli, memMiB, gpus, mutate...) })
}

// tracePods maps trace pods onto nvidia.com/gpu requests: num_gpu whole
// GPUs (gpu_milli < 1000 still takes one); gpu_spec is ignored.
func tracePods(pods []trace.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if !p.IsGPU() {
			continue
		}
		out = append(out, gpuPod(p.CPUMilli, p.MemoryMiB, p.GPUs))
	}
	return out
}

// gpuFleet is the setting of the whole-batch tests: a test context, the
// embedded catalog's types, the GPU NodePool "gpu" and one 200m/256Mi
// daemonset pod.
func gpuFleet(t testing.TB) (context.Context, []*cloudprovider.InstanceType, *karpv1.NodePool, []*corev1.Pod) {
	t.Helper()
	return testContext(), catalogTypes(t), gpuNodePool("gpu"), []*corev1.Pod{daemonPod(200, 256)}
}

func daemonPod(cpuMilli, memMiB int64) *corev1.Pod {
	p := gpuPod(cpuMilli, memMiB, 0)
	p.Name = "daemon-" + p.Name
	p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	return p
}

func testContext() context.Context {
	return options.ToContext(injection.WithControllerName(context.Background(), "provisioner"), test.Options())
}

// run is one provisioning decision: core's Solve, then RefineResults.
type run struct {
	core        *scheduling.Results
	refined     *scheduling.Results
	decision    provisioning.Decision
	solveTime   time.Duration
	refineTime  time.Duration
	coreCost    float64
	refinedCost float64
	opts        packing.Options
}

func solveAndRefine(t testing.TB, ctx context.Context, nps []*karpv1.NodePool, its []*cloudprovider.InstanceType, pods, daemons []*corev1.Pod, mutateOpts ...func(*packing.Options)) run {
	t.Helper()
	itsByPool := map[string][]*cloudprovider.InstanceType{}
	for _, np := range nps {
		itsByPool[np.Name] = its
	}
	client := fakecr.NewFakeClient()
	clk := &clock.RealClock{}
	cp := fake.NewCloudProvider()
	cp.InstanceTypes = its
	cluster := state.NewCluster(clk, client, cp)
	topology, err := scheduling.NewTopology(ctx, client, cluster, nil, nps, itsByPool, pods)
	if err != nil {
		t.Fatal(err)
	}
	s := scheduling.NewScheduler(ctx, client, nps, cluster, nil, topology, itsByPool, daemons,
		events.NewRecorder(&record.FakeRecorder{}), clk, nil, nil, scheduling.DisableReservedCapacityFallback, scheduling.NumConcurrentReconciles(2))
	start := time.Now()
	results, err := s.Solve(ctx, pods)
	solveTime := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	results = results.TruncateInstanceTypes(ctx, scheduling.MaxInstanceTypes)
	core := results
	// Refine must not modify its input: keep core's view separately.
	coreCost := fleetCost(core.NewNodeClaims)
	opts := packing.Options{NodePools: nps, InstanceTypes: itsByPool, DaemonSetPods: daemons}
	for _, m := range mutateOpts {
		m(&opts)
	}
	start = time.Now()
	refined, d := provisioning.RefineResults(ctx, &results, opts)
	refineTime := time.Since(start)
	return run{core: &core, refined: refined, decision: d, solveTime: solveTime, refineTime: refineTime,
		coreCost: coreCost, refinedCost: fleetCost(refined.NewNodeClaims), opts: opts}
}

func fleetCost(ncs []*scheduling.NodeClaim) float64 {
	c := 0.0
	for _, nc := range ncs {
		c += packing.NodeClaimPrice(nc)
	}
	return c
}

// lpBound is the fluid bound for the pods over the pool's types, with the
// same daemon overhead.
func lpBound(pods []*corev1.Pod, its []*cloudprovider.InstanceType, daemonOverhead corev1.ResourceList, np *karpv1.NodePool) lowerbound.Result {
	var shapes []lowerbound.Shape
	for _, c := range countedShapes(pods) {
		shapes = append(shapes, lowerbound.Shape{Requests: c.requests, Count: c.count})
	}
	var lts []lowerbound.Type
	for _, t := range poolTypes(its, np) {
		lts = append(lts, lowerbound.Type{Name: t.Name, Allocatable: resources.Subtract(t.Allocatable(), daemonOverhead), Price: t.price})
	}
	return lowerbound.Bound(shapes, lts, lowerbound.Options{})
}

// countedShape is pods with the same requests.
type countedShape struct {
	requests corev1.ResourceList
	count    int
}

// countedShapes groups the pods by CPU, memory and GPU requests, in the
// order the groups are first seen.
func countedShapes(pods []*corev1.Pod) []countedShape {
	idx := map[string]int{}
	var out []countedShape
	for _, p := range pods {
		req := resources.RequestsForPods(p)
		k := fmt.Sprint(req.Cpu().MilliValue(), req.Memory().Value(), req.Name(gpu, resource.DecimalSI).Value())
		if i, ok := idx[k]; ok {
			out[i].count++
			continue
		}
		idx[k] = len(out)
		out = append(out, countedShape{requests: req, count: 1})
	}
	return out
}

// pricedType is an instance type and its cheapest launchable offering in a
// pool.
type pricedType struct {
	*cloudprovider.InstanceType
	price float64
}

// poolTypes are the types of its the pool np may launch, each with its
// cheapest launchable offering the pool allows; types without one are left
// out.
func poolTypes(its []*cloudprovider.InstanceType, np *karpv1.NodePool) []pricedType {
	reqs := scheduling.NewNodeClaimTemplate(np).Requirements
	var out []pricedType
	for _, it := range its {
		if it.Requirements.Intersects(reqs) != nil {
			continue
		}
		price := math.Inf(1)
		for _, o := range it.Offerings.Launchable() {
			if reqs.IsCompatible(o.Requirements, kscheduling.AllowUndefinedWellKnownLabels) {
				price = math.Min(price, o.Price)
			}
		}
		if !math.IsInf(price, 1) {
			out = append(out, pricedType{InstanceType: it, price: price})
		}
	}
	return out
}

// randomBatch draws GPU pods with 1/2/4/8 GPUs and Alibaba-like CPU and
// memory per GPU.
func randomBatch(r *rand.Rand, n int) []*corev1.Pod {
	var pods []*corev1.Pod
	gpus := []int64{1, 1, 1, 1, 2, 2, 4, 8}
	for i := 0; i < n; i++ {
		g := gpus[r.Intn(len(gpus))]
		cpuPerGPU := []int64{2000, 4000, 6000, 8000, 12000}[r.Intn(5)]
		memPerGPU := []int64{8192, 12288, 16384, 24576, 32768}[r.Intn(5)]
		cpu := min(cpuPerGPU*g, 88000)
		mem := min(memPerGPU*g, 600000)
		pods = append(pods, gpuPod(cpu, mem, g))
	}
	return pods
}

func typeByName(its []*cloudprovider.InstanceType) map[string]*cloudprovider.InstanceType {
	m := map[string]*cloudprovider.InstanceType{}
	for _, it := range its {
		m[it.Name] = it
	}
	return m
}

func sortedNames(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func nps(np ...*karpv1.NodePool) []*karpv1.NodePool { return np }
