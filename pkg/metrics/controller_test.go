package metrics

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// fakeCloudProvider serves fixed instance types; every other method of the
// interface panics (the controller must not call them).
type fakeCloudProvider struct {
	karpcp.CloudProvider
	byPool   map[string][]*karpcp.InstanceType // nil key: GetInstanceTypes(ctx, nil)
	defaults []*karpcp.InstanceType
	calls    int
}

func (f *fakeCloudProvider) GetInstanceTypes(_ context.Context, np *karpv1.NodePool) ([]*karpcp.InstanceType, error) {
	f.calls++
	if np == nil {
		return f.defaults, nil
	}
	its, ok := f.byPool[np.Name]
	if !ok {
		return nil, fmt.Errorf("GPUNodeClass of NodePool %q not found", np.Name)
	}
	return its, nil
}

type offer struct {
	zone, capacityType string
	price              float64
	available          bool
}

func instanceType(name string, offers ...offer) *karpcp.InstanceType {
	it := &karpcp.InstanceType{Name: name}
	for _, o := range offers {
		it.Offerings = append(it.Offerings, &karpcp.Offering{
			Requirements: scheduling.NewRequirements(
				scheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, o.capacityType),
				scheduling.NewRequirement(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, o.zone),
			),
			Price: o.price, Available: o.available,
		})
	}
	return it
}

type launched struct {
	name, pool, instanceType, zone, capacityType, gpuName string
	gpus                                                  int64
	registered                                            bool // a Node exists
	group                                                 string
	notLaunched                                           bool
}

func (l launched) objects() []client.Object {
	labels := map[string]string{
		karpv1.NodePoolLabelKey:        l.pool,
		corev1.LabelInstanceTypeStable: l.instanceType,
		corev1.LabelTopologyZone:       l.zone,
		karpv1.CapacityTypeLabelKey:    l.capacityType,
		v1alpha1.LabelGPUName:          l.gpuName,
		corev1.LabelHostname:           l.name,
	}
	if l.gpuName == "" {
		delete(labels, v1alpha1.LabelGPUName)
	}
	gpus := corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(l.gpus, resource.DecimalSI)}
	providerID := "fake://" + l.name
	nc := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: l.name, Labels: labels},
		Spec: karpv1.NodeClaimSpec{NodeClassRef: &karpv1.NodeClassReference{
			Group: or(l.group, v1alpha1.Group), Kind: "GPUNodeClass", Name: "default",
		}},
		Status: karpv1.NodeClaimStatus{ProviderID: providerID, Capacity: gpus},
	}
	if l.notLaunched {
		nc.Status.ProviderID = ""
	}
	objs := []client.Object{nc}
	if l.registered {
		nc.Status.NodeName = l.name
		objs = append(objs, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: l.name, Labels: labels},
			Spec:       corev1.NodeSpec{ProviderID: providerID},
			Status:     corev1.NodeStatus{Allocatable: gpus, Capacity: gpus},
		})
	}
	return objs
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

type podSpec struct {
	name, namespace, node string
	gpuRequests           int64
	gpuLimitsOnly         bool
	phase                 corev1.PodPhase
}

func pod(s podSpec) *corev1.Pod {
	q := *resource.NewQuantity(s.gpuRequests, resource.DecimalSI)
	rr := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}
	if s.gpuRequests > 0 {
		rr.Limits = corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: q}
		if !s.gpuLimitsOnly {
			rr.Requests[v1alpha1.ResourceNVIDIAGPU] = q
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace},
		Spec:       corev1.PodSpec{NodeName: s.node, Containers: []corev1.Container{{Name: "main", Image: "cuda", Resources: rr}}},
		Status:     corev1.PodStatus{Phase: corev1.PodPhase(or(string(s.phase), string(corev1.PodRunning)))},
	}
}

func nodePool(name string) *karpv1.NodePool {
	return &karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: karpv1.NodePoolSpec{Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
			NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: "default"},
		}}},
	}
}

func approx(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	g6x := instanceType("g6.xlarge",
		offer{"us-east-1a", karpv1.CapacityTypeOnDemand, 0.805, true},
		offer{"us-east-1b", karpv1.CapacityTypeSpot, 0.30, true},
	)
	g612x := instanceType("g6.12xlarge",
		offer{"us-east-1a", karpv1.CapacityTypeOnDemand, 4.6, false}, // ran out since launch: still priced
		offer{"us-east-1a", karpv1.CapacityTypeSpot, 1.9, true},
	)
	p5 := instanceType("p5.48xlarge", offer{"us-east-1a", karpv1.CapacityTypeOnDemand, 98.32, true})
	cp := &fakeCloudProvider{
		byPool:   map[string][]*karpcp.InstanceType{"gpu": {g6x, g612x}},
		defaults: []*karpcp.InstanceType{g6x, g612x, p5},
	}

	var objs []client.Object
	for _, l := range []launched{
		{name: "a", pool: "gpu", instanceType: "g6.12xlarge", zone: "us-east-1a", capacityType: karpv1.CapacityTypeOnDemand, gpuName: "l4", gpus: 4, registered: true},
		{name: "b", pool: "gpu", instanceType: "g6.xlarge", zone: "us-east-1b", capacityType: karpv1.CapacityTypeSpot, gpuName: "l4", gpus: 1, registered: true},
		// launched, not registered yet: billed, no pods
		{name: "c", pool: "gpu", instanceType: "g6.xlarge", zone: "us-east-1a", capacityType: karpv1.CapacityTypeOnDemand, gpuName: "l4", gpus: 1},
		// not launched: not billed
		{name: "d", pool: "gpu", instanceType: "g6.xlarge", zone: "us-east-1a", capacityType: karpv1.CapacityTypeOnDemand, gpuName: "l4", gpus: 1, notLaunched: true},
		// another provider's node class: ignored
		{name: "e", pool: "gpu", instanceType: "g6.xlarge", zone: "us-east-1a", capacityType: karpv1.CapacityTypeOnDemand, gpuName: "l4", gpus: 1, registered: true, group: "karpenter.k8s.aws"},
		// NodePool deleted: priced from the default instance types
		{name: "f", pool: "orphan", instanceType: "p5.48xlarge", zone: "us-east-1a", capacityType: karpv1.CapacityTypeOnDemand, gpuName: "h100", gpus: 8, registered: true},
		// unknown type: counted, unpriced
		{name: "g", pool: "gpu", instanceType: "m7i.large", zone: "us-east-1a", capacityType: karpv1.CapacityTypeOnDemand, registered: true},
	} {
		objs = append(objs, l.objects()...)
	}
	objs = append(objs, nodePool("gpu"),
		pod(podSpec{name: "train", namespace: "team-a", node: "a", gpuRequests: 2}),
		pod(podSpec{name: "infer", namespace: "team-b", node: "a", gpuRequests: 1, gpuLimitsOnly: true}),
		pod(podSpec{name: "done", namespace: "team-b", node: "a", gpuRequests: 1, phase: corev1.PodSucceeded}),
		pod(podSpec{name: "cpu", namespace: "team-b", node: "a"}),
		pod(podSpec{name: "small", namespace: "team-a", node: "b", gpuRequests: 1}),
		pod(podSpec{name: "pending", namespace: "team-a", gpuRequests: 1}),
		pod(podSpec{name: "big", namespace: "team-c", node: "f", gpuRequests: 8}),
		pod(podSpec{name: "elsewhere", namespace: "team-c", node: "e", gpuRequests: 1}),
	)
	kube := fake.NewClientBuilder().WithObjects(objs...).Build()
	c := NewController(Options{Clock: clock.NewFakeClock(time.Now()), KubeClient: kube, CloudProvider: cp})

	res, err := c.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != PollInterval {
		t.Errorf("RequeueAfter = %s, want %s", res.RequeueAfter, PollInterval)
	}
	od, spot := karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeSpot
	approx(t, "cost gpu/l4/on-demand", testutil.ToFloat64(FleetCostPerHour.WithLabelValues("gpu", "l4", od)), 4.6+0.805)
	approx(t, "cost gpu/l4/spot", testutil.ToFloat64(FleetCostPerHour.WithLabelValues("gpu", "l4", spot)), 0.30)
	approx(t, "cost orphan/h100/on-demand", testutil.ToFloat64(FleetCostPerHour.WithLabelValues("orphan", "h100", od)), 98.32)
	approx(t, "nodes gpu/l4/on-demand", testutil.ToFloat64(FleetNodes.WithLabelValues("gpu", "l4", od)), 2)
	approx(t, "nodes gpu/none/on-demand", testutil.ToFloat64(FleetNodes.WithLabelValues("gpu", NoGPU, od)), 1)
	approx(t, "unpriced gpu", testutil.ToFloat64(FleetUnpricedNodes.WithLabelValues("gpu")), 1)
	approx(t, "paid gpu/l4/on-demand", testutil.ToFloat64(GPUsPaid.WithLabelValues("gpu", "l4", od)), 5)
	approx(t, "paid gpu/l4/spot", testutil.ToFloat64(GPUsPaid.WithLabelValues("gpu", "l4", spot)), 1)
	approx(t, "paid orphan", testutil.ToFloat64(GPUsPaid.WithLabelValues("orphan", "h100", od)), 8)
	approx(t, "requested gpu/l4/on-demand", testutil.ToFloat64(GPUsRequested.WithLabelValues("gpu", "l4", od)), 3)
	approx(t, "requested gpu/l4/spot", testutil.ToFloat64(GPUsRequested.WithLabelValues("gpu", "l4", spot)), 1)
	approx(t, "requested gpu/none/on-demand", testutil.ToFloat64(GPUsRequested.WithLabelValues("gpu", NoGPU, od)), 0)
	approx(t, "namespace team-a", testutil.ToFloat64(NamespaceGPUCostPerHour.WithLabelValues("team-a")), 2*4.6/4+1*0.30/1)
	approx(t, "namespace team-b", testutil.ToFloat64(NamespaceGPUCostPerHour.WithLabelValues("team-b")), 1*4.6/4)
	approx(t, "namespace team-c", testutil.ToFloat64(NamespaceGPUCostPerHour.WithLabelValues("team-c")), 98.32)

	// Exact series: nothing for the unlaunched or foreign NodeClaims, and
	// the metric names and help texts as documented.
	if n := testutil.CollectAndCount(FleetCostPerHour); n != 3 {
		t.Errorf("cost series = %d, want 3", n)
	}
	if n := testutil.CollectAndCount(NamespaceGPUCostPerHour); n != 3 {
		t.Errorf("namespace series = %d, want 3", n)
	}
	if err := testutil.CollectAndCompare(GPUsPaid, strings.NewReader(`
# HELP karpenter_gpu_gpus_paid Allocatable accelerators (nvidia.com/gpu, amd.com/gpu, aws.amazon.com/neuron, habana.ai/gaudi) on the nodes karpenter-gpu launched, by NodePool, GPU model and capacity type.
# TYPE karpenter_gpu_gpus_paid gauge
karpenter_gpu_gpus_paid{capacity_type="on-demand",gpu_name="h100",nodepool="orphan"} 8
karpenter_gpu_gpus_paid{capacity_type="on-demand",gpu_name="l4",nodepool="gpu"} 5
karpenter_gpu_gpus_paid{capacity_type="on-demand",gpu_name="none",nodepool="gpu"} 0
karpenter_gpu_gpus_paid{capacity_type="spot",gpu_name="l4",nodepool="gpu"} 1
`)); err != nil {
		t.Error(err)
	}
	// Instance types are fetched once per NodePool (and once for the
	// defaults) per reconcile.
	if cp.calls != 2 {
		t.Errorf("GetInstanceTypes calls = %d, want 2", cp.calls)
	}

	// Series of nodes that went away disappear on the next reconcile.
	for _, name := range []string{"b", "f"} {
		if err := kube.Delete(ctx, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(FleetCostPerHour); n != 1 {
		t.Errorf("cost series after deletions = %d, want 1", n)
	}
	if n := testutil.CollectAndCount(GPUsRequested, "karpenter_gpu_gpus_requested"); n != 2 {
		t.Errorf("requested series after deletions = %d, want 2 (l4 and none on-demand)", n)
	}
	approx(t, "namespace team-a after deletions", testutil.ToFloat64(NamespaceGPUCostPerHour.WithLabelValues("team-a")), 2*4.6/4)
	if n := testutil.CollectAndCount(NamespaceGPUCostPerHour); n != 2 {
		t.Errorf("namespace series after deletions = %d, want 2", n)
	}
}

func TestPricingFallsBackWhenNodeClassIsMissing(t *testing.T) {
	ctx := context.Background()
	g6x := instanceType("g6.xlarge", offer{"us-east-1a", karpv1.CapacityTypeOnDemand, 0.805, true})
	cp := &fakeCloudProvider{byPool: map[string][]*karpcp.InstanceType{}, defaults: []*karpcp.InstanceType{g6x}}
	objs := launched{name: "a", pool: "broken", instanceType: "g6.xlarge", zone: "us-east-1a", capacityType: karpv1.CapacityTypeOnDemand, gpuName: "l4", gpus: 1, registered: true}.objects()
	kube := fake.NewClientBuilder().WithObjects(append(objs, nodePool("broken"))...).Build()
	if _, err := NewController(Options{Clock: clock.NewFakeClock(time.Now()), KubeClient: kube, CloudProvider: cp}).Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	approx(t, "cost", testutil.ToFloat64(FleetCostPerHour.WithLabelValues("broken", "l4", karpv1.CapacityTypeOnDemand)), 0.805)
	if n := testutil.CollectAndCount(FleetUnpricedNodes); n != 0 {
		t.Errorf("unpriced series = %d, want 0", n)
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h)
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || len(families[0].GetMetric()) != 1 {
		t.Fatalf("gathering %v: %v", h.Desc(), err)
	}
	return families[0].GetMetric()[0].GetHistogram().GetSampleCount()
}

func TestObservePacking(t *testing.T) {
	repacked := testutil.ToFloat64(PackingDecisions.WithLabelValues(PackingResultRepacked))
	kept := testutil.ToFloat64(PackingDecisions.WithLabelValues(PackingResultKept))
	savings := testutil.ToFloat64(PackingEstimatedSavingsPerHour)
	observed := histogramCount(t, ProvisioningDecisionSeconds)

	ObservePacking(10.5, 7.25, 40*time.Millisecond)
	ObservePacking(5, 5, 2*time.Millisecond)
	ObservePacking(3, 3.5, time.Millisecond) // never negative savings

	approx(t, "repacked", testutil.ToFloat64(PackingDecisions.WithLabelValues(PackingResultRepacked))-repacked, 1)
	approx(t, "kept", testutil.ToFloat64(PackingDecisions.WithLabelValues(PackingResultKept))-kept, 2)
	approx(t, "savings", testutil.ToFloat64(PackingEstimatedSavingsPerHour)-savings, 3.25)
	if got := histogramCount(t, ProvisioningDecisionSeconds) - observed; got != 3 {
		t.Errorf("decision latency observations = %d, want 3", got)
	}
}

// TestRegistered checks every metric is served by controller-runtime's
// registry under the documented names.
func TestRegistered(t *testing.T) {
	ObservePacking(1, 0.5, time.Millisecond)
	CapacityErrors.WithLabelValues("g6.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand).Inc()
	FleetCostPerHour.WithLabelValues("p", "l4", karpv1.CapacityTypeOnDemand).Set(1)
	FleetNodes.WithLabelValues("p", "l4", karpv1.CapacityTypeOnDemand).Set(1)
	FleetUnpricedNodes.WithLabelValues("p").Set(0)
	GPUsPaid.WithLabelValues("p", "l4", karpv1.CapacityTypeOnDemand).Set(1)
	GPUsRequested.WithLabelValues("p", "l4", karpv1.CapacityTypeOnDemand).Set(1)
	NamespaceGPUCostPerHour.WithLabelValues("ns").Set(1)
	names := []string{
		"karpenter_gpu_fleet_cost_per_hour", "karpenter_gpu_fleet_nodes", "karpenter_gpu_fleet_unpriced_nodes",
		"karpenter_gpu_gpus_paid", "karpenter_gpu_gpus_requested", "karpenter_gpu_namespace_gpu_cost_per_hour",
		"karpenter_gpu_cloudprovider_capacity_errors_total", "karpenter_gpu_packing_decisions_total",
		"karpenter_gpu_packing_estimated_savings_per_hour", "karpenter_gpu_provisioning_decision_seconds",
	}
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, n := range names {
		if !got[n] {
			t.Errorf("metric %s not registered on controller-runtime's registry", n)
		}
	}
}
