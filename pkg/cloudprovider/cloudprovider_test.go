package cloudprovider_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
	fakefleet "github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

type env struct {
	ctx   context.Context
	clock *clocktesting.FakeClock
	fleet *fakefleet.Fleet
	cp    *gpucp.CloudProvider
	nc    *v1alpha1.GPUNodeClass
}

func newEnv(t *testing.T, opts fakefleet.Options) *env {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	opts.Clock = clk
	nc := &v1alpha1.GPUNodeClass{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}, Spec: v1alpha1.GPUNodeClassSpec{Role: "r"}}
	kube := fake.NewClientBuilder().WithObjects(nc).Build()
	fleet := fakefleet.NewFleet(opts)
	cp, err := gpucp.New(gpucp.Options{KubeClient: kube, Backend: fleet, Clock: clk, ClusterName: "unit"})
	if err != nil {
		t.Fatal(err)
	}
	return &env{ctx: context.Background(), clock: clk, fleet: fleet, cp: cp, nc: nc}
}

// nodeClaim asks for one GPU on amd64 with the given extra requirements.
func nodeClaim(reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodeClaim {
	return controlplane.GPUNodeClaim("nc-1", "gpu", 1, reqs...)
}

func TestLaunchOptionsOrder(t *testing.T) {
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, fakefleet.Options{
		CapacityTypes: []string{karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeSpot},
		Prices:        catalog.SpotFactor(catalog.NewOnDemandPrices(entries, "us-east-1"), 0.4),
		Reservations:  []catalog.Reservation{{ID: "cr-1", InstanceType: "g6.xlarge", Zone: "us-east-1b", Count: 1}},
	})
	its, err := e.cp.GetInstanceTypes(e.ctx, &karpv1.NodePool{Spec: karpv1.NodePoolSpec{Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{NodeClassRef: &karpv1.NodeClassReference{Name: "gpu"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := gpucp.LaunchOptions(nodeClaim(), its)
	if err != nil || len(opts) == 0 {
		t.Fatalf("LaunchOptions = %v, %v", opts, err)
	}
	if opts[0].CapacityType != karpv1.CapacityTypeReserved || opts[0].ReservationID != "cr-1" {
		t.Errorf("first option = %v, want the reservation cr-1 (reserved capacity is launched first)", opts[0])
	}
	rest := opts[1:]
	for i := 1; i < len(rest); i++ {
		if rest[i].Price < rest[i-1].Price {
			t.Fatalf("options not in price order at %d: %v before %v", i, rest[i-1], rest[i])
		}
	}
	if rest[0].CapacityType != karpv1.CapacityTypeSpot {
		t.Errorf("cheapest non-reserved option = %v, want spot (spot is 0.4x on-demand here)", rest[0])
	}
	for _, o := range opts {
		it, _ := lo.Find(its, func(it *karpcp.InstanceType) bool { return it.Name == o.InstanceType })
		if it.Requirements.Get(v1alpha1.LabelGPUCount).Len() != 1 {
			t.Errorf("option %v is not a GPU type", o)
		}
	}
}

func TestCreateFallsBackAndRemembersRefusals(t *testing.T) {
	e := newEnv(t, fakefleet.Options{Zones: []string{"us-east-1a"}})
	e.fleet.RefuseCapacity(fakefleet.Offering{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeOnDemand}, -1)
	refusals := func(it string) float64 {
		return testutil.ToFloat64(gpumetrics.CapacityErrors.WithLabelValues(it, "us-east-1a", karpv1.CapacityTypeOnDemand))
	}
	refusedBefore, launchedBefore := refusals("g4dn.xlarge"), refusals("g3s.xlarge")
	got, err := e.cp.Create(e.ctx, nodeClaim())
	if err != nil {
		t.Fatal(err)
	}
	if it := got.Labels[corev1.LabelInstanceTypeStable]; it != "g3s.xlarge" {
		t.Errorf("launched %s, want g3s.xlarge (next cheapest after the refused g4dn.xlarge)", it)
	}
	// karpenter_gpu_cloudprovider_capacity_errors_total counts the refusal,
	// for the refused offering only.
	if d := refusals("g4dn.xlarge") - refusedBefore; d != 1 {
		t.Errorf("capacity errors of the refused offering rose by %v, want 1", d)
	}
	if d := refusals("g3s.xlarge") - launchedBefore; d != 0 {
		t.Errorf("capacity errors of the launched offering rose by %v, want 0", d)
	}
	if !e.cp.Unavailable().IsUnavailable("g4dn.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand) {
		t.Error("refused offering not remembered")
	}
	e.clock.Step(gpucp.UnavailableOfferingsTTL + time.Second)
	if e.cp.Unavailable().IsUnavailable("g4dn.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand) {
		t.Error("refusal outlived its TTL")
	}
}

func TestCreateReturnsInsufficientCapacityWhenEverythingIsRefused(t *testing.T) {
	e := newEnv(t, fakefleet.Options{Zones: []string{"us-east-1a"}})
	nc := nodeClaim(karpv1.NodeSelectorRequirementWithMinValues{Key: corev1.LabelInstanceTypeStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"g4dn.xlarge", "g6.xlarge"}})
	for _, it := range []string{"g4dn.xlarge", "g6.xlarge"} {
		e.fleet.SetCapacity(fakefleet.Offering{InstanceType: it, Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeOnDemand}, 0)
	}
	_, err := e.cp.Create(e.ctx, nc)
	if !karpcp.IsInsufficientCapacityError(err) {
		t.Fatalf("err = %v, want InsufficientCapacityError", err)
	}
	// The next attempt must not call the cloud for the same offerings.
	before := e.fleet.Launches()
	_, err = e.cp.Create(e.ctx, nc)
	if !karpcp.IsInsufficientCapacityError(err) || e.fleet.Launches() != before {
		t.Fatalf("second create: err=%v launches %d→%d", err, before, e.fleet.Launches())
	}
	its, _ := e.cp.GetInstanceTypes(e.ctx, nil)
	g6, ok := lo.Find(its, func(it *karpcp.InstanceType) bool { return it.Name == "g6.xlarge" })
	if !ok || len(g6.Offerings) == 0 || len(g6.Offerings.Available()) != 0 {
		t.Errorf("refused type must stay listed with unavailable offerings")
	}
}

func TestCreateSurfacesAPIErrors(t *testing.T) {
	e := newEnv(t, fakefleet.Options{})
	e.fleet.InjectAPIError("Launch", context.DeadlineExceeded)
	_, err := e.cp.Create(e.ctx, nodeClaim())
	if err == nil || karpcp.IsInsufficientCapacityError(err) {
		t.Fatalf("err = %v, want a launch error that is not a capacity error", err)
	}
	if got, err := e.cp.Create(e.ctx, nodeClaim()); err != nil || got.Status.ProviderID == "" {
		t.Fatalf("retry after API error failed: %v", err)
	}
}

func TestGetListDelete(t *testing.T) {
	e := newEnv(t, fakefleet.Options{})
	got, err := e.cp.Create(e.ctx, nodeClaim())
	if err != nil {
		t.Fatal(err)
	}
	listed, err := e.cp.List(e.ctx)
	if err != nil || len(listed) != 1 || listed[0].Status.ProviderID != got.Status.ProviderID || listed[0].Name != "nc-1" {
		t.Fatalf("List = %v, %v", listed, err)
	}
	if g, err := e.cp.Get(e.ctx, got.Status.ProviderID); err != nil || g.Labels[v1alpha1.LabelGPUCount] != "1" {
		t.Fatalf("Get = %v, %v", g, err)
	}
	claim := nodeClaim()
	claim.Status.ProviderID = got.Status.ProviderID
	if err := e.cp.Delete(e.ctx, claim); err != nil {
		t.Fatal(err)
	}
	if err := e.cp.Delete(e.ctx, claim); !karpcp.IsNodeClaimNotFoundError(err) {
		t.Fatalf("second Delete = %v, want NodeClaimNotFound", err)
	}
	if _, err := e.cp.Get(e.ctx, got.Status.ProviderID); !karpcp.IsNodeClaimNotFoundError(err) {
		t.Fatalf("Get after delete = %v", err)
	}
}

func TestDriftOnLaunchRelevantChangesOnly(t *testing.T) {
	base := &v1alpha1.GPUNodeClass{Spec: v1alpha1.GPUNodeClassSpec{Role: "r"}}
	idle := base.DeepCopy()
	d := karpv1.MustParseNillableDuration("1h")
	idle.Spec.GPU.IdleAfter = &d
	ts := base.DeepCopy()
	ts.Spec.GPU.TimeSlicing = &v1alpha1.TimeSlicing{Replicas: 4}
	if gpucp.NodeClassHash(base) != gpucp.NodeClassHash(idle) {
		t.Error("idleAfter must not drift nodes")
	}
	if gpucp.NodeClassHash(base) == gpucp.NodeClassHash(ts) {
		t.Error("time-slicing change must drift nodes")
	}
	// A Quantity's value is unexported: hashed as a struct, 100Gi and 300Gi
	// were the same volume and a resize drifted nothing.
	vol := func(size string) *v1alpha1.GPUNodeClass {
		nc := base.DeepCopy()
		q := resource.MustParse(size)
		nc.Spec.BlockDeviceMappings = []v1alpha1.BlockDeviceMapping{{DeviceName: "/dev/xvda", RootVolume: true, EBS: &v1alpha1.BlockDevice{VolumeSize: &q}}}
		return nc
	}
	if gpucp.NodeClassHash(vol("100Gi")) == gpucp.NodeClassHash(vol("300Gi")) {
		t.Error("a root volume resize must drift nodes")
	}
}

func TestReservationLabelOnlyOnReservedLaunches(t *testing.T) {
	e := newEnv(t, fakefleet.Options{Reservations: []catalog.Reservation{{ID: "cr-1", InstanceType: "g6.xlarge", Zone: "us-east-1a", Count: 1}}})
	onDemand := nodeClaim(
		karpv1.NodeSelectorRequirementWithMinValues{Key: corev1.LabelInstanceTypeStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"g6.xlarge"}},
		karpv1.NodeSelectorRequirementWithMinValues{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}},
	)
	got, err := e.cp.Create(e.ctx, onDemand)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := got.Labels[v1alpha1.LabelCapacityReservationID]; ok {
		t.Errorf("on-demand launch labelled with reservation %q", id)
	}
	reserved := nodeClaim(karpv1.NodeSelectorRequirementWithMinValues{Key: corev1.LabelInstanceTypeStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"g6.xlarge"}})
	reserved.UID = "uid-2"
	got, err = e.cp.Create(e.ctx, reserved)
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels[karpv1.CapacityTypeLabelKey] != karpv1.CapacityTypeReserved || got.Labels[v1alpha1.LabelCapacityReservationID] != "cr-1" {
		t.Errorf("reserved launch labels = %v", got.Labels)
	}
}

// TestGetInstanceTypesOfOtherProvidersNodePools: a NodePool of
// Karpenter-AWS's EC2NodeClass has no instance types here and is no error
// (core's NodeOverlay controller asks for every NodePool's); a GPUNodeClass
// NodePool whose class is missing still is one.
func TestGetInstanceTypesOfOtherProvidersNodePools(t *testing.T) {
	e := newEnv(t, fakefleet.Options{})
	pool := func(group, kind, name string) *karpv1.NodePool {
		return &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: karpv1.NodePoolSpec{Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
			NodeClassRef: &karpv1.NodeClassReference{Group: group, Kind: kind, Name: name},
		}}}}
	}
	its, err := e.cp.GetInstanceTypes(e.ctx, pool(v1alpha1.AWSGroup, "EC2NodeClass", "default"))
	if err != nil || len(its) != 0 {
		t.Errorf("EC2NodeClass NodePool: %d instance types, error %v; want none, no error", len(its), err)
	}
	if its, err := e.cp.GetInstanceTypes(e.ctx, pool(v1alpha1.Group, "GPUNodeClass", "gpu")); err != nil || len(its) == 0 {
		t.Errorf("GPUNodeClass NodePool: %d instance types, error %v", len(its), err)
	}
	if _, err := e.cp.GetInstanceTypes(e.ctx, pool(v1alpha1.Group, "GPUNodeClass", "missing")); err == nil {
		t.Error("GPUNodeClass NodePool with a missing class: no error")
	}
}
