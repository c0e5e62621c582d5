package packing_test

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	kscheduling "sigs.k8s.io/karpenter/pkg/scheduling"
	"sigs.k8s.io/karpenter/pkg/utils/resources"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

const eps = 1e-6

// checkFleet asserts property (a) on every NodeClaim of r.refined and that
// the refined results hold exactly core's pods.
func checkFleet(t *testing.T, r run, daemons []*corev1.Pod) {
	t.Helper()
	want := map[string]int{}
	for _, nc := range r.core.NewNodeClaims {
		for _, p := range nc.Pods {
			want[string(p.UID)]++
		}
	}
	got := map[string]int{}
	for _, nc := range r.refined.NewNodeClaims {
		for _, p := range nc.Pods {
			got[string(p.UID)]++
		}
		if len(nc.InstanceTypeOptions) == 0 {
			t.Fatalf("NodeClaim without options")
		}
		// The type the provider launches first: cheapest launchable.
		opts := append(cloudprovider.InstanceTypes(nil), nc.InstanceTypeOptions...).OrderByPrice(nc.Requirements)
		first := opts[0]
		podReq := resources.RequestsForPods(nc.Pods...)
		daemonReq := corev1.ResourceList{}
		if len(daemons) > 0 {
			daemonReq = resources.RequestsForPods(daemons...)
		}
		if !resources.Fits(resources.Merge(podReq, daemonReq), first.Allocatable()) {
			t.Errorf("pods %v + daemons do not fit %s allocatable %v", podReq, first.Name, first.Allocatable())
		}
		if !resources.Fits(resources.Merge(podReq, daemonReq), nc.Spec.Resources.Requests) || !resources.Fits(nc.Spec.Resources.Requests, resources.Merge(podReq, daemonReq)) {
			t.Errorf("Spec.Resources.Requests %v, want pods + daemons %v", nc.Spec.Resources.Requests, resources.Merge(podReq, daemonReq))
		}
		if err := first.Requirements.Intersects(nc.Requirements); err != nil {
			t.Errorf("%s incompatible with the NodeClaim: %v", first.Name, err)
		}
		for _, p := range nc.Pods {
			if err := nc.Requirements.Compatible(kscheduling.NewPodRequirements(p), kscheduling.AllowUndefinedWellKnownLabels); err != nil {
				t.Errorf("pod %s: %v", p.Name, err)
			}
			if err := first.Requirements.Intersects(kscheduling.NewPodRequirements(p)); err != nil {
				t.Errorf("pod %s on %s: %v", p.Name, first.Name, err)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("refined results hold %d pods, core's %d", len(got), len(want))
	}
	for uid, n := range got {
		if n != 1 || want[uid] != 1 {
			t.Fatalf("pod %s placed %d times (core %d)", uid, n, want[uid])
		}
	}
}

// TestRefineProperties: for random batches of GPU pods over the real
// catalog, (a) every pod fits its node and satisfies its requirements,
// (b) the fleet never costs more than core's, (c) it never costs less than
// the LP lower bound.
func TestRefineProperties(t *testing.T) {
	ctx, its, np, daemons := gpuFleet(t)
	r := rand.New(rand.NewSource(42))
	for i := 0; i < 12; i++ {
		n := 1 + r.Intn(60)
		pods := randomBatch(r, n)
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			run := solveAndRefine(t, ctx, nps(np), its, pods, daemons)
			if len(run.core.PodErrors) > 0 {
				t.Fatalf("core failed %d pods", len(run.core.PodErrors))
			}
			checkFleet(t, run, daemons)
			if run.refinedCost > run.coreCost+eps {
				t.Errorf("refined $%.4f > core $%.4f", run.refinedCost, run.coreCost)
			}
			bound := lpBound(pods, its, resources.RequestsForPods(daemons...), np)
			if bound.Method != "lp" {
				t.Errorf("bound method %s: %v", bound.Method, bound.SolverErr)
			}
			if run.refinedCost < bound.Cost-eps {
				t.Errorf("refined $%.4f below the lower bound $%.4f", run.refinedCost, bound.Cost)
			}
			if run.decision.PackedCost > run.decision.CoreCost+eps || abs(run.decision.PackedCost-run.refinedCost) > eps {
				t.Errorf("decision costs %v inconsistent with fleet $%.4f", run.decision, run.refinedCost)
			}
			t.Logf("%d pods: core $%.2f, refined $%.2f, bound $%.2f (%.3f×)", n, run.coreCost, run.refinedCost, bound.Cost, run.refinedCost/bound.Cost)
		})
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func gpuCount(it *cloudprovider.InstanceType) int64 {
	q := it.Capacity[gpu]
	return q.Value()
}

// TestOneGPUPodsLandOnOneGPUTypes: 1-GPU pods must not share 8-GPU
// machines when 1-GPU machines are cheaper per GPU.
func TestOneGPUPodsLandOnOneGPUTypes(t *testing.T) {
	ctx := testContext()
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	pods := gpuPods(24, 3000, 12288, 1)
	run := solveAndRefine(t, ctx, nps(np), its, pods, nil)
	checkFleet(t, run, nil)
	for _, nc := range run.refined.NewNodeClaims {
		first := append(cloudprovider.InstanceTypes(nil), nc.InstanceTypeOptions...).OrderByPrice(nc.Requirements)[0]
		if gpuCount(first) != 1 || len(nc.Pods) != 1 {
			t.Errorf("NodeClaim with %d pods on %s (%d GPUs)", len(nc.Pods), first.Name, gpuCount(first))
		}
	}
	if run.refinedCost >= run.coreCost {
		t.Errorf("no saving: core $%.2f, refined $%.2f", run.coreCost, run.refinedCost)
	}
	t.Logf("core %d NodeClaims $%.2f/h, refined %d $%.2f/h", len(run.core.NewNodeClaims), run.coreCost, len(run.refined.NewNodeClaims), run.refinedCost)
}

// TestRefineRespectsGPUMemoryGt: "any GPU with at least 40 GiB" via Gt.
func TestRefineRespectsGPUMemoryGt(t *testing.T) {
	ctx := testContext()
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	bigGPU := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: v1alpha1.LabelGPUMemory, Operator: corev1.NodeSelectorOpGt, Values: []string{"40959"}}}}}}}}
	}
	var pods []*corev1.Pod
	for i := 0; i < 6; i++ {
		pods = append(pods, gpuPod(4000, 16384, 1, bigGPU), gpuPod(4000, 16384, 1))
	}
	run := solveAndRefine(t, ctx, nps(np), its, pods, nil)
	checkFleet(t, run, nil)
	for _, nc := range run.refined.NewNodeClaims {
		needsBig := false
		for _, p := range nc.Pods {
			needsBig = needsBig || p.Spec.Affinity != nil
		}
		for _, it := range nc.InstanceTypeOptions {
			mem, _ := strconv.Atoi(it.Requirements.Get(v1alpha1.LabelGPUMemory).Any())
			if needsBig && mem <= 40959 {
				t.Errorf("pod needing >40 GiB GPUs may launch on %s (%d MiB)", it.Name, mem)
			}
		}
	}
	if run.refinedCost > run.coreCost+eps {
		t.Errorf("refined $%.2f > core $%.2f", run.refinedCost, run.coreCost)
	}
}

// TestRefineLeavesUnmodelledConstraints: NodeClaims whose pods carry
// constraints the packer does not model come back untouched.
func TestRefineLeavesUnmodelledConstraints(t *testing.T) {
	tsc := func(p *corev1.Pod) {
		p.Labels = map[string]string{"app": "spread"}
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone,
			WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1LabelSelector}}
	}
	anti := func(p *corev1.Pod) {
		p.Labels = map[string]string{"app": "spread"}
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
			{LabelSelector: &metav1LabelSelector, TopologyKey: corev1.LabelHostname}}}}
	}
	hostPort := func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
	}
	minValues := 2
	tests := []struct {
		name   string
		np     *karpv1.NodePool
		mutate func(*corev1.Pod)
		reason string
	}{
		{"topology spread", gpuNodePool("gpu"), tsc, "topology spread"},
		{"pod anti-affinity", gpuNodePool("gpu"), anti, "pod anti-affinity"},
		{"host ports", gpuNodePool("gpu"), hostPort, "host ports"},
		{"minValues", gpuNodePool("gpu", karpv1.NodeSelectorRequirementWithMinValues{Key: v1alpha1.LabelInstanceFamily, Operator: corev1.NodeSelectorOpExists, MinValues: &minValues}), nil, "minValues"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext()
			its := catalogTypes(t)
			pods := gpuPods(4, 4000, 16384, 1, tt.mutate)
			run := solveAndRefine(t, ctx, nps(tt.np), its, pods, nil)
			if len(run.refined.NewNodeClaims) != len(run.core.NewNodeClaims) {
				t.Fatalf("NodeClaims %d -> %d", len(run.core.NewNodeClaims), len(run.refined.NewNodeClaims))
			}
			for i := range run.core.NewNodeClaims {
				if run.refined.NewNodeClaims[i] != run.core.NewNodeClaims[i] {
					t.Errorf("NodeClaim %d replaced", i)
				}
			}
			if len(run.decision.Unchanged) == 0 || !strings.Contains(run.decision.Unchanged[0].Reason, tt.reason) {
				t.Errorf("decision %v, want reason %q", run.decision, tt.reason)
			}
		})
	}
}

// TestRefineCPUPodsUntouched: CPU-only NodeClaims pass through as core made
// them, next to repacked GPU ones.
func TestRefineCPUPodsUntouched(t *testing.T) {
	ctx := testContext()
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	pods := append([]*corev1.Pod{gpuPod(500, 512, 0)}, gpuPods(8, 2000, 8192, 1)...)
	run := solveAndRefine(t, ctx, nps(np), its, pods, nil)
	checkFleet(t, run, nil)
	cpuOnly := func(nc *scheduling.NodeClaim) bool {
		for _, p := range nc.Pods {
			if q, ok := resources.RequestsForPods(p)[gpu]; ok && q.Sign() > 0 {
				return false
			}
		}
		return true
	}
	var coreCPU, refinedCPU []*scheduling.NodeClaim
	for _, nc := range run.core.NewNodeClaims {
		if cpuOnly(nc) {
			coreCPU = append(coreCPU, nc)
		}
	}
	for _, nc := range run.refined.NewNodeClaims {
		if cpuOnly(nc) {
			refinedCPU = append(refinedCPU, nc)
		}
	}
	if len(coreCPU) != len(refinedCPU) {
		t.Fatalf("CPU NodeClaims %d -> %d", len(coreCPU), len(refinedCPU))
	}
	for i := range coreCPU {
		if coreCPU[i] != refinedCPU[i] {
			t.Errorf("CPU NodeClaim %d changed", i)
		}
	}
}

// TestRefineRespectsLimits: with a GPU limit the repacked fleet, charged
// with the largest option of each NodeClaim, stays within it.
func TestRefineRespectsLimits(t *testing.T) {
	ctx := testContext()
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	limit := corev1.ResourceList{gpu: resource.MustParse("12")}
	np.Spec.Limits = karpv1.Limits(limit)
	pods := gpuPods(10, 3000, 12288, 1)
	run := solveAndRefine(t, ctx, nps(np), its, pods, nil, func(o *packing.Options) {
		o.Remaining = map[string]corev1.ResourceList{np.Name: limit}
	})
	checkFleet(t, run, nil)
	var charged int64
	for _, nc := range run.refined.NewNodeClaims {
		var m int64
		for _, it := range nc.InstanceTypeOptions {
			m = max(m, gpuCount(it))
		}
		charged += m
	}
	if charged > 12 {
		t.Errorf("fleet may launch %d GPUs, limit 12; %v", charged, run.decision)
	}
	if run.refinedCost > run.coreCost+eps {
		t.Errorf("refined $%.2f > core $%.2f", run.refinedCost, run.coreCost)
	}
}

// TestToNodeClaim: the NodeClaims Refine returns turn into NodeClaim
// objects through core's own ToNodeClaim with the chosen type first, the
// capacity types of its offerings and the pods' plus daemons' requests.
func TestToNodeClaim(t *testing.T) {
	ctx := testContext()
	its := catalogTypes(t)
	np := gpuNodePool("gpu")
	daemons := []*corev1.Pod{daemonPod(300, 512)}
	pods := gpuPods(5, 4000, 16384, 1)
	run := solveAndRefine(t, ctx, nps(np), its, pods, daemons)
	if run.decision.PodsRepacked == 0 {
		t.Fatalf("nothing repacked: %v", run.decision)
	}
	for _, nc := range run.refined.NewNodeClaims {
		want := resources.Merge(resources.RequestsForPods(nc.Pods...), resources.RequestsForPods(daemons...))
		obj := nc.ToNodeClaim()
		if !resources.Fits(want, obj.Spec.Resources.Requests) || !resources.Fits(obj.Spec.Resources.Requests, want) {
			t.Errorf("requests %v, want %v", obj.Spec.Resources.Requests, want)
		}
		if obj.Labels[karpv1.NodePoolLabelKey] != np.Name || obj.GenerateName != np.Name+"-" {
			t.Errorf("labels %v generateName %q", obj.Labels, obj.GenerateName)
		}
		reqs := kscheduling.NewNodeSelectorRequirementsWithMinValues(obj.Spec.Requirements...)
		if reqs.Has(karpv1.NodeRegisteredLabelKey) || reqs.Has(corev1.LabelHostname) {
			t.Errorf("simulation-only requirement leaked: %v", reqs)
		}
		itReq := reqs.Get(corev1.LabelInstanceTypeStable)
		if itReq.Len() != len(nc.InstanceTypeOptions) || !itReq.Has(nc.InstanceTypeOptions[0].Name) {
			t.Errorf("instance-type requirement %v, options %d", itReq, len(nc.InstanceTypeOptions))
		}
		if ct := reqs.Get(karpv1.CapacityTypeLabelKey); !ct.Has(karpv1.CapacityTypeOnDemand) {
			t.Errorf("capacity types %v", ct)
		}
	}
}

var metav1LabelSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}}

// TestPackPods: the direct path packs a batch without core's scheduler into
// NodeClaims that pass the same checks, at no more than core's cost, and
// hands unmodelled pods back.
func TestPackPods(t *testing.T) {
	ctx, its, np, daemons := gpuFleet(t)
	pods := randomBatch(rand.New(rand.NewSource(5)), 40)
	spread := gpuPod(1000, 1024, 1, func(p *corev1.Pod) {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname,
			WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1LabelSelector}}
	})
	huge := gpuPod(1000, 1024, 64)
	plan := packing.PackPods(np, its, append(append([]*corev1.Pod{}, pods...), spread, huge), packing.Options{DaemonSetPods: daemons})
	if len(plan.Rejected) != 2 || plan.Rejected[spread] == "" || plan.Rejected[huge] == "" {
		t.Fatalf("rejected %v", plan.Rejected)
	}
	run := solveAndRefine(t, ctx, nps(np), its, pods, daemons)
	direct := run
	direct.refined = &scheduling.Results{NewNodeClaims: plan.NodeClaims}
	checkFleet(t, direct, daemons)
	if cost := fleetCost(plan.NodeClaims); abs(cost-plan.Cost) > eps || cost > run.coreCost+eps {
		t.Errorf("direct $%.2f (plan says $%.2f), core $%.2f", cost, plan.Cost, run.coreCost)
	}
	for _, nc := range plan.NodeClaims {
		if nc.Annotations[karpv1.NodeClaimMinValuesRelaxedAnnotationKey] != "false" {
			t.Errorf("annotations %v", nc.Annotations)
		}
	}
	t.Logf("direct $%.2f, Solve+Refine $%.2f, core $%.2f", plan.Cost, run.refinedCost, run.coreCost)
}

// TestPackPodsProposed: with Options.Proposed, PackPods re-plans core's
// NodeClaims into what the batch walk (RefineResults) launches, refuses
// pods that are not exactly theirs, and keeps core's when they are as
// cheap as it gets.
func TestPackPodsProposed(t *testing.T) {
	ctx, its, np, daemons := gpuFleet(t)
	pods := randomBatch(rand.New(rand.NewSource(7)), 30)
	run := solveAndRefine(t, ctx, nps(np), its, pods, daemons)
	if run.decision.PodsRepacked != len(pods) {
		t.Fatalf("the batch was not repacked: %v", run.decision)
	}
	proposed := run.core.NewNodeClaims
	var onCore []*corev1.Pod
	for _, nc := range proposed {
		onCore = append(onCore, nc.Pods...)
	}
	opts := run.opts
	opts.Proposed = proposed
	plan := packing.PackPods(np, its, onCore, opts)
	if len(plan.Rejected) != 0 || len(plan.NodeClaims) != len(run.refined.NewNodeClaims) || abs(fleetCost(plan.NodeClaims)-run.refinedCost) > eps {
		t.Fatalf("re-plan: %d NodeClaims $%.4f, rejected %v; the batch walk launched %d at $%.4f",
			len(plan.NodeClaims), fleetCost(plan.NodeClaims), plan.Rejected, len(run.refined.NewNodeClaims), run.refinedCost)
	}
	// A pod short: nothing is planned, every pod stays on core's NodeClaims.
	short := onCore[1:]
	plan = packing.PackPods(np, its, short, opts)
	if len(plan.NodeClaims) != 0 || len(plan.Rejected) != len(short) || !strings.Contains(plan.Rejected[short[0]], "not those on Options.Proposed") {
		t.Fatalf("pods short of Proposed: %d NodeClaims, rejected %d: %q", len(plan.NodeClaims), len(plan.Rejected), plan.Rejected[short[0]])
	}
	// Re-planning the packer's own plan finds nothing cheaper.
	opts.Proposed = run.refined.NewNodeClaims
	plan = packing.PackPods(np, its, onCore, opts)
	if len(plan.NodeClaims) != 0 || !strings.Contains(plan.Rejected[onCore[0]], "as cheap") {
		t.Fatalf("re-plan of the packed fleet: %d NodeClaims, reason %q", len(plan.NodeClaims), plan.Rejected[onCore[0]])
	}
}

// TestRefineReservations: NodeClaims core pinned to a capacity reservation
// stay as they are, and the repacked ones cannot launch into reserved
// capacity beyond what is left.
func TestRefineReservations(t *testing.T) {
	ctx := testContext()
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	its, _ := catalog.NewInstanceTypes(entries, catalog.Options{Region: "us-east-1", Zones: zones, CapacityTypes: []string{karpv1.CapacityTypeOnDemand},
		Reservations: []catalog.Reservation{{ID: "cr-1", InstanceType: "g4dn.xlarge", Zone: zones[0], Count: 2}}})
	np := gpuNodePool("gpu")
	pods := gpuPods(6, 3000, 12288, 1)
	run := solveAndRefine(t, ctx, nps(np), its, pods, nil)
	checkFleet(t, run, nil)
	if run.refinedCost > run.coreCost+eps {
		t.Errorf("refined $%.4f > core $%.4f", run.refinedCost, run.coreCost)
	}
	canReserve := 0
	for _, nc := range run.refined.NewNodeClaims {
		ct := nc.Requirements.Get(karpv1.CapacityTypeLabelKey)
		if ct.Has(karpv1.CapacityTypeReserved) {
			for _, it := range nc.InstanceTypeOptions {
				if _, reserved, _ := launchPriceForTest(it, nc.Requirements); reserved {
					canReserve++
					break
				}
			}
		}
	}
	if canReserve > 2 {
		t.Errorf("%d NodeClaims may launch into a reservation of 2; %v", canReserve, run.decision)
	}
	t.Logf("core %d NCs (%d pod errors), refined %d, may reserve %d; %v", len(run.core.NewNodeClaims), len(run.core.PodErrors), len(run.refined.NewNodeClaims), canReserve, run.decision)
}

func launchPriceForTest(it *cloudprovider.InstanceType, reqs kscheduling.Requirements) (float64, bool, bool) {
	for _, o := range it.Offerings.Launchable() {
		if o.CapacityType() == karpv1.CapacityTypeReserved && reqs.IsCompatible(o.Requirements, kscheduling.AllowUndefinedWellKnownLabels) {
			return o.Price, true, true
		}
	}
	return 0, false, false
}
