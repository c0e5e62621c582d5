package catalog_test

import (
	"math"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/scheduling"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

var zones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

func embedded(t testing.TB) []catalog.Entry {
	t.Helper()
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func defaultOptions() catalog.Options {
	return catalog.Options{Region: "us-east-1", Zones: zones, CapacityTypes: []string{"on-demand", "spot"}}
}

// build returns the embedded catalog's types by name.
func build(t *testing.T, opts catalog.Options) (map[string]*cloudprovider.InstanceType, []catalog.Exclusion) {
	t.Helper()
	its, excluded := catalog.NewInstanceTypes(embedded(t), opts)
	byName := map[string]*cloudprovider.InstanceType{}
	for _, it := range its {
		byName[it.Name] = it
	}
	return byName, excluded
}

// label returns the single value an instance type's requirement pins a key to.
func label(t *testing.T, it *cloudprovider.InstanceType, key string) string {
	t.Helper()
	r := it.Requirements.Get(key)
	if r.Operator() != corev1.NodeSelectorOpIn || r.Len() != 1 {
		t.Fatalf("%s: requirement %s is not a single value", it.Name, r)
	}
	return r.Any()
}

func req(key string, op corev1.NodeSelectorOperator, values ...string) scheduling.Requirements {
	return scheduling.NewRequirements(scheduling.NewRequirement(key, op, values...))
}

// compatible mirrors Karpenter's scheduler: instance type requirements must
// intersect the pod/NodeClaim requirements.
func compatible(it *cloudprovider.InstanceType, reqs scheduling.Requirements) bool {
	return it.Requirements.Intersects(reqs) == nil &&
		it.Requirements.Compatible(reqs, scheduling.AllowUndefinedWellKnownLabels) == nil
}

func qty(s string) resource.Quantity { return resource.MustParse(s) }

func TestP5(t *testing.T) {
	types, _ := build(t, defaultOptions())
	p5 := types["p5.48xlarge"]
	if p5 == nil {
		t.Fatal("p5.48xlarge missing")
	}
	if got := p5.Capacity[v1alpha1.ResourceNVIDIAGPU]; got.Value() != 8 {
		t.Errorf("nvidia.com/gpu = %s, want 8", got.String())
	}
	if got := p5.Capacity[v1alpha1.ResourceEFA]; got.Value() != 32 {
		t.Errorf("efa = %s, want 32", got.String())
	}
	if got := p5.Capacity[corev1.ResourcePods]; got.Value() != 100 {
		t.Errorf("pods = %s, want 100", got.String())
	}
	for key, want := range map[string]string{
		v1alpha1.LabelGPUName:          "h100",
		v1alpha1.LabelGPUManufacturer:  "nvidia",
		v1alpha1.LabelGPUCount:         "8",
		v1alpha1.LabelGPUMemory:        "81920",
		v1alpha1.LabelInstanceFamily:   "p5",
		v1alpha1.LabelInstanceSize:     "48xlarge",
		v1alpha1.LabelInstanceCPU:      "192",
		v1alpha1.LabelInstanceMemory:   "2097152",
		v1alpha1.LabelEFACount:         "32",
		corev1.LabelInstanceTypeStable: "p5.48xlarge",
		corev1.LabelArchStable:         "amd64",
		corev1.LabelOSStable:           "linux",
		corev1.LabelTopologyRegion:     "us-east-1",
	} {
		if got := label(t, p5, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	for _, key := range v1alpha1.AcceleratorLabels {
		if op := p5.Requirements.Get(key).Operator(); op != corev1.NodeSelectorOpDoesNotExist {
			t.Errorf("%s: operator %s, want DoesNotExist", key, op)
		}
	}
	raw := qty("2097152Mi")
	capMem := p5.Capacity[corev1.ResourceMemory]
	allocMem := p5.Allocatable()[corev1.ResourceMemory]
	if !(allocMem.Cmp(capMem) < 0 && capMem.Cmp(raw) < 0) {
		t.Errorf("want allocatable %s < capacity %s < raw %s", allocMem.String(), capMem.String(), raw.String())
	}
	// 7.5% VM overhead, rounded up: 2097152 - ceil(157286.4) = 1939865 Mi.
	if want := qty("1939865Mi"); capMem.Cmp(want) != 0 {
		t.Errorf("capacity memory = %s, want %s", capMem.String(), want.String())
	}
	// No spot prices in the data, so only on-demand offerings, one per zone.
	if len(p5.Offerings) != len(zones) {
		t.Errorf("offerings = %d, want %d", len(p5.Offerings), len(zones))
	}
	if price, ok := p5.OfferingPrice("us-east-1b", "on-demand"); !ok || price != 55.04 {
		t.Errorf("on-demand price = %v %v, want 55.04", price, ok)
	}
	if got := p5.Requirements.Get(karpv1.CapacityTypeLabelKey).Values(); len(got) != 1 || got[0] != "on-demand" {
		t.Errorf("capacity types = %v, want [on-demand]", got)
	}
}

func TestEveryWellKnownLabelIsDefined(t *testing.T) {
	types, _ := build(t, defaultOptions())
	for _, it := range types {
		for key := range karpv1.WellKnownLabels {
			if key == karpv1.NodePoolLabelKey {
				continue // comes from the NodePool, see setByNodePool
			}
			if !it.Requirements.Has(key) {
				t.Errorf("%s: well-known label %s undefined", it.Name, key)
			}
		}
		if op := it.Requirements.Get(karpv1.NodePoolLabelKey).Operator(); op != corev1.NodeSelectorOpExists {
			t.Errorf("%s: nodepool label must stay undefined, got %s", it.Name, op)
		}
		if it.Overhead == nil {
			t.Errorf("%s: nil overhead", it.Name)
		}
		for _, o := range it.Offerings {
			if !o.Requirements.Has(corev1.LabelTopologyZone) || !o.Requirements.Has(karpv1.CapacityTypeLabelKey) {
				t.Errorf("%s: offering without zone/capacity type: %s", it.Name, o.Requirements)
			}
			if !(o.Price > 0) {
				t.Errorf("%s: offering priced %v", it.Name, o.Price)
			}
		}
		for name, q := range it.Allocatable() {
			if q.Sign() < 0 {
				t.Errorf("%s: negative allocatable %s=%s", it.Name, name, q.String())
			}
		}
	}
}

func TestNodePoolRequirementsStayCompatible(t *testing.T) {
	// Karpenter adds "karpenter.sh/nodepool In [name]" to every NodeClaim.
	types, _ := build(t, defaultOptions())
	reqs := req(karpv1.NodePoolLabelKey, corev1.NodeSelectorOpIn, "gpu")
	for _, it := range types {
		if !compatible(it, reqs) {
			t.Errorf("%s: incompatible with its NodePool label", it.Name)
		}
	}
}

func TestCPUOnlyRequestAvoidsAccelerators(t *testing.T) {
	types, _ := build(t, defaultOptions())
	entries := map[string]catalog.Entry{}
	for _, e := range embedded(t) {
		entries[e.Name] = e
	}
	noGPU := req(v1alpha1.LabelGPUCount, corev1.NodeSelectorOpDoesNotExist)
	anyGPU := req(v1alpha1.LabelGPUCount, corev1.NodeSelectorOpGt, "0")
	for name, it := range types {
		isGPU := strings.HasSuffix(entries[name].AcceleratorResource, "/gpu")
		if got := compatible(it, noGPU); got == isGPU {
			t.Errorf("%s: compatible with gpu-count DoesNotExist = %v, want %v", name, got, !isGPU)
		}
		if got := compatible(it, anyGPU); got != isGPU {
			t.Errorf("%s: compatible with gpu-count Gt 0 = %v, want %v", name, got, isGPU)
		}
	}
	// Neuron and Gaudi types answer to accelerator-* instead.
	if !compatible(types["inf2.xlarge"], req(v1alpha1.LabelAcceleratorName, corev1.NodeSelectorOpIn, "inferentia2")) {
		t.Error("inf2.xlarge does not match accelerator-name=inferentia2")
	}
	if !compatible(types["dl1.24xlarge"], req(v1alpha1.LabelAcceleratorCount, corev1.NodeSelectorOpIn, "8")) {
		t.Error("dl1.24xlarge does not match accelerator-count=8")
	}
}

func TestGPUMemorySelector(t *testing.T) {
	types, _ := build(t, defaultOptions())
	big := req(v1alpha1.LabelGPUMemory, corev1.NodeSelectorOpGt, "40959")
	want := map[string]bool{}
	for _, e := range embedded(t) {
		if types[e.Name] != nil && strings.HasSuffix(e.AcceleratorResource, "/gpu") && e.GPUMemoryMiB > 40959 {
			want[e.Name] = true
		}
	}
	for _, name := range []string{"p4d.24xlarge", "p5.48xlarge", "g6e.xlarge", "g7e.48xlarge", "p6-b300.48xlarge"} {
		if !want[name] {
			t.Errorf("expected %s among the >40GiB types", name)
		}
	}
	for name, it := range types {
		if got := compatible(it, big); got != want[name] {
			t.Errorf("%s: compatible with gpu-memory Gt 40959 = %v, want %v", name, got, want[name])
		}
	}
}

func TestUnpricedTypesAreExcluded(t *testing.T) {
	types, excluded := build(t, defaultOptions())
	reasons := map[string]string{}
	_, parseExcluded, _ := catalog.Embedded()
	for _, x := range append(parseExcluded, excluded...) {
		if x.Reason == "" {
			t.Errorf("%s excluded without reason", x.Name)
		}
		t.Logf("excluded %s: %s", x.Name, x.Reason)
		reasons[x.Name] = x.Reason
	}
	for _, name := range []string{"p5e.48xlarge", "trn2.48xlarge"} {
		if types[name] != nil {
			t.Errorf("%s offered without a price", name)
		}
		if !strings.Contains(reasons[name], "price") {
			t.Errorf("%s: reason %q does not mention the price", name, reasons[name])
		}
	}
	// Another price source can price them.
	opts := defaultOptions()
	opts.Prices = catalog.StaticPrices{{InstanceType: "p5e.48xlarge", CapacityType: "on-demand"}: 70}
	types, _ = build(t, opts)
	if it := types["p5e.48xlarge"]; it == nil || len(it.Offerings) != len(zones) || it.Offerings[0].Price != 70 {
		t.Errorf("p5e.48xlarge with a static price: %+v", it)
	}
	if len(types) != 1 {
		t.Errorf("a price source that prices one type gave %d types", len(types))
	}
	// A region without prices yields no types rather than free ones.
	opts = defaultOptions()
	opts.Region = "eu-west-1"
	if types, excluded := build(t, opts); len(types) != 0 || len(excluded) != 88 {
		t.Errorf("eu-west-1: %d types, %d excluded; want 0 and 88", len(types), len(excluded))
	}
}

func TestUnavailableOfferingsAreKept(t *testing.T) {
	opts := defaultOptions()
	opts.Unavailable = func(it, zone, ct string) bool {
		return it == "p5.48xlarge" && zone == "us-east-1a" && ct == "on-demand"
	}
	types, _ := build(t, opts)
	p5 := types["p5.48xlarge"]
	if len(p5.Offerings) != len(zones) {
		t.Fatalf("offerings = %d, want %d", len(p5.Offerings), len(zones))
	}
	for _, o := range p5.Offerings {
		if want := o.Zone() != "us-east-1a"; o.Available != want {
			t.Errorf("%s/%s: Available = %v, want %v", o.Zone(), o.CapacityType(), o.Available, want)
		}
	}
	if !p5.Requirements.Get(corev1.LabelTopologyZone).Has("us-east-1a") {
		t.Error("zone requirement lost the unavailable zone")
	}
	if len(p5.Offerings.Available()) != 2 {
		t.Errorf("available offerings = %d, want 2", len(p5.Offerings.Available()))
	}
	if p4 := types["p4d.24xlarge"]; len(p4.Offerings.Available()) != len(zones) {
		t.Error("another type was marked unavailable")
	}
}

func TestReservation(t *testing.T) {
	// The lead registers the reservation label as well-known; do the same
	// here so Karpenter's offering compatibility check accepts it.

	if cloudprovider.ReservationIDLabel != catalog.LabelCapacityReservationID {
		t.Fatalf("ReservationIDLabel = %q", cloudprovider.ReservationIDLabel)
	}
	opts := defaultOptions()
	opts.Reservations = []catalog.Reservation{
		{ID: "cr-1", InstanceType: "p5.48xlarge", Zone: "us-east-1b", Count: 2},
		{ID: "cb-2", InstanceType: "p5e.48xlarge", Zone: "us-east-1c", Count: 1, Price: 31.46},
		{ID: "cr-3", InstanceType: "x9.large", Zone: "us-east-1a", Count: 1},
		{ID: "cr-4", InstanceType: "p5.48xlarge", Zone: "eu-west-1a", Count: 1},
		{ID: "cr-5", InstanceType: "trn2.48xlarge", Zone: "us-east-1a", Count: 1}, // no price anywhere
	}
	types, excluded := build(t, opts)

	p5 := types["p5.48xlarge"]
	var reserved *cloudprovider.Offering
	for _, o := range p5.Offerings {
		if o.CapacityType() == karpv1.CapacityTypeReserved {
			if reserved != nil {
				t.Fatal("more than one reserved offering")
			}
			reserved = o
		} else if op := o.Requirements.Get(cloudprovider.ReservationIDLabel).Operator(); op != corev1.NodeSelectorOpDoesNotExist {
			t.Errorf("%s offering: reservation id operator %s, want DoesNotExist", o.CapacityType(), op)
		}
	}
	if reserved == nil {
		t.Fatal("no reserved offering")
	}
	if reserved.ReservationCapacity != 2 || reserved.ReservationID() != "cr-1" || reserved.Zone() != "us-east-1b" || !reserved.Available {
		t.Errorf("reserved offering = %+v", reserved)
	}
	if !(reserved.Price > 0 && reserved.Price < 55.04/1000) {
		t.Errorf("reserved price %v, want a tiny positive fraction of on-demand", reserved.Price)
	}
	if !p5.Requirements.Get(karpv1.CapacityTypeLabelKey).Has(karpv1.CapacityTypeReserved) ||
		!p5.Requirements.Get(cloudprovider.ReservationIDLabel).Has("cr-1") {
		t.Errorf("type requirements miss the reservation: %s", p5.Requirements)
	}
	// Karpenter's scheduler: a reserved NodeClaim finds the reserved offering only.
	nc := scheduling.NewRequirements(
		scheduling.NewRequirement(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeReserved),
	)
	if got := p5.Offerings.Compatible(nc); len(got) != 1 || got[0] != reserved {
		t.Errorf("offerings compatible with reserved: %d", len(got))
	}
	if !nc.IsCompatible(reserved.Requirements, scheduling.AllowUndefinedWellKnownLabels) {
		t.Error("reserved offering not compatible as in Karpenter's fits()")
	}

	// A reservation with its own price makes an otherwise unpriced type usable.
	p5e := types["p5e.48xlarge"]
	if p5e == nil || len(p5e.Offerings) != 1 || p5e.Offerings[0].Price != 31.46 || p5e.Offerings[0].ReservationCapacity != 1 {
		t.Errorf("p5e.48xlarge with a capacity block: %+v", p5e)
	}
	reasons := map[string]string{}
	for _, x := range excluded {
		reasons[x.Name] += x.Reason + ";"
	}
	if !strings.Contains(reasons["x9.large"], `"cr-3" ignored: instance type not in the catalog`) {
		t.Errorf("x9.large: %q", reasons["x9.large"])
	}
	if !strings.Contains(reasons["p5.48xlarge"], `"cr-4" ignored: zone eu-west-1a is not offered`) {
		t.Errorf("p5.48xlarge: %q", reasons["p5.48xlarge"])
	}
	if types["trn2.48xlarge"] != nil || !strings.Contains(reasons["trn2.48xlarge"], `"cr-5" ignored: it has no price`) {
		t.Errorf("trn2.48xlarge: %q", reasons["trn2.48xlarge"])
	}

	// A full reservation is kept but is not launchable.
	opts.Reservations = []catalog.Reservation{{ID: "cr-1", InstanceType: "p5.48xlarge", Zone: "us-east-1b", Count: 0}}
	types, _ = build(t, opts)
	for _, o := range types["p5.48xlarge"].Offerings {
		if o.CapacityType() == karpv1.CapacityTypeReserved && (o.Launchable() || !o.Available) {
			t.Errorf("full reservation: launchable=%v available=%v", o.Launchable(), o.Available)
		}
	}
}

func TestTimeSlicing(t *testing.T) {
	opts := defaultOptions()
	opts.TimeSlicingReplicas = 2
	sliced, _ := build(t, opts)
	plain, _ := build(t, defaultOptions())
	for _, tc := range []struct {
		name, resource string
		factor         int64
	}{
		{"p5.48xlarge", v1alpha1.ResourceNVIDIAGPU, 2},
		{"g6.xlarge", v1alpha1.ResourceNVIDIAGPU, 2},
		{"g4ad.xlarge", v1alpha1.ResourceAMDGPU, 1}, // time-slicing is an NVIDIA device plugin feature
		{"inf2.xlarge", v1alpha1.ResourceNeuron, 1},
	} {
		got := sliced[tc.name].Capacity[corev1.ResourceName(tc.resource)]
		base := plain[tc.name].Capacity[corev1.ResourceName(tc.resource)]
		if got.Value() != base.Value()*tc.factor || base.Value() == 0 {
			t.Errorf("%s: %s = %d, want %d×%d", tc.name, tc.resource, got.Value(), base.Value(), tc.factor)
		}
		if label(t, sliced[tc.name], v1alpha1.LabelInstanceCPU) != label(t, plain[tc.name], v1alpha1.LabelInstanceCPU) {
			t.Errorf("%s: labels changed", tc.name)
		}
	}
	if label(t, sliced["p5.48xlarge"], v1alpha1.LabelGPUCount) != "8" {
		t.Error("gpu-count label must stay the physical count")
	}
}

func TestOverhead(t *testing.T) {
	types, _ := build(t, defaultOptions())
	for _, tc := range []struct {
		name, cpu, memory string
	}{
		// 60m + 10m + 2×5m + (192-4)×2.5m = 550m; 11Mi×100 pods + 255Mi.
		{"p5.48xlarge", "550m", "1355Mi"},
		// 60m + 10m + 2×5m; 11Mi×58 + 255Mi.
		{"g6.xlarge", "80m", "893Mi"},
		// 80m + 4×2.5m; 11Mi×58 + 255Mi.
		{"g6.2xlarge", "90m", "893Mi"},
	} {
		o := types[tc.name].Overhead
		if got := o.KubeReserved[corev1.ResourceCPU]; got.Cmp(qty(tc.cpu)) != 0 {
			t.Errorf("%s: kube-reserved cpu %s, want %s", tc.name, got.String(), tc.cpu)
		}
		if got := o.KubeReserved[corev1.ResourceMemory]; got.Cmp(qty(tc.memory)) != 0 {
			t.Errorf("%s: kube-reserved memory %s, want %s", tc.name, got.String(), tc.memory)
		}
		if got := o.EvictionThreshold[corev1.ResourceMemory]; got.Cmp(qty("100Mi")) != 0 {
			t.Errorf("%s: eviction %s, want 100Mi", tc.name, got.String())
		}
		if len(o.SystemReserved) != 0 {
			t.Errorf("%s: system-reserved %v, want none", tc.name, o.SystemReserved)
		}
		if got := types[tc.name].Capacity[corev1.ResourceEphemeralStorage]; got.Cmp(qty("20Gi")) != 0 {
			t.Errorf("%s: ephemeral-storage %s, want 20Gi", tc.name, got.String())
		}
	}

	// Overrides replace computed values per resource only.
	opts := defaultOptions()
	opts.MaxPods = ptr(int32(50))
	opts.KubeReserved = map[string]string{"cpu": "1"}
	opts.SystemReserved = map[string]string{"memory": "1Gi"}
	opts.EvictionHard = map[string]string{"nodefs.available": "10%", "memory.available": "500Mi"}
	opts.VMMemoryOverheadPercent = -1 // none
	opts.EphemeralStorage = qty("200Gi")
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	types, _ = build(t, opts)
	p5 := types["p5.48xlarge"]
	o := p5.Overhead
	for _, tc := range []struct {
		what string
		got  resource.Quantity
		want string
	}{
		{"pods", p5.Capacity[corev1.ResourcePods], "50"},
		{"kube cpu", o.KubeReserved[corev1.ResourceCPU], "1"},
		{"kube memory", o.KubeReserved[corev1.ResourceMemory], "805Mi"}, // 11×50+255
		{"system memory", o.SystemReserved[corev1.ResourceMemory], "1Gi"},
		{"eviction memory", o.EvictionThreshold[corev1.ResourceMemory], "500Mi"},
		{"eviction nodefs", o.EvictionThreshold[corev1.ResourceEphemeralStorage], "20Gi"},
		{"capacity memory", p5.Capacity[corev1.ResourceMemory], "2097152Mi"},
		{"allocatable memory", p5.Allocatable()[corev1.ResourceMemory], "2094823Mi"}, // 2097152-805-1024-500
	} {
		if tc.got.Cmp(qty(tc.want)) != 0 {
			t.Errorf("%s = %s, want %s", tc.what, tc.got.String(), tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	opts := defaultOptions()
	if err := opts.Validate(); err != nil {
		t.Errorf("default options: %v", err)
	}
	opts.MaxPods = ptr(int32(0))
	opts.KubeReserved = map[string]string{"cpu": "lots"}
	opts.EvictionHard = map[string]string{"memory.available": "150%", "imagefs.available": "1Gi"}
	opts.CapacityTypes = []string{"reserved"}
	opts.VMMemoryOverheadPercent = 1.5
	err := opts.Validate()
	for _, want := range []string{"maxPods", "kubeReserved[cpu]", "evictionHard[memory.available]", "evictionHard[imagefs.available]", `"reserved"`, "vmMemoryOverheadPercent"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
	// NewInstanceTypes keeps computed values for invalid overrides.
	opts.CapacityTypes = nil
	types, _ := build(t, opts)
	if got := types["p5.48xlarge"].Overhead.KubeReserved[corev1.ResourceCPU]; got.Cmp(qty("550m")) != 0 {
		t.Errorf("invalid override changed cpu to %s", got.String())
	}
}

func TestSpotFactor(t *testing.T) {
	opts := defaultOptions()
	opts.Prices = catalog.SpotFactor(catalog.NewOnDemandPrices(embedded(t), "us-east-1"), 0.4)
	types, _ := build(t, opts)
	p5 := types["p5.48xlarge"]
	od, _ := p5.OfferingPrice("us-east-1a", "on-demand")
	spot, ok := p5.OfferingPrice("us-east-1a", "spot")
	if !ok || math.Abs(spot-0.4*od) > 1e-9 || od != 55.04 {
		t.Errorf("spot %v (ok=%v), on-demand %v", spot, ok, od)
	}
	if len(p5.Offerings) != 2*len(zones) {
		t.Errorf("offerings = %d, want %d", len(p5.Offerings), 2*len(zones))
	}
	// Only spot requested: on-demand offerings are not created.
	opts.CapacityTypes = []string{"spot"}
	types, _ = build(t, opts)
	if got := types["p5.48xlarge"].Requirements.Get(karpv1.CapacityTypeLabelKey).Values(); len(got) != 1 || got[0] != "spot" {
		t.Errorf("capacity types = %v", got)
	}
}

func TestFreshObjectsPerCall(t *testing.T) {
	a, _ := build(t, defaultOptions())
	b, _ := build(t, defaultOptions())
	a["p5.48xlarge"].Capacity[corev1.ResourcePods] = qty("1")
	a["p5.48xlarge"].Offerings[0].Available = false
	a["p5.48xlarge"].Requirements.Get(corev1.LabelTopologyZone).Insert("elsewhere")
	if got := b["p5.48xlarge"].Capacity[corev1.ResourcePods]; got.Value() != 100 {
		t.Error("capacity shared between calls")
	}
	if !b["p5.48xlarge"].Offerings[0].Available || b["p5.48xlarge"].Requirements.Get(corev1.LabelTopologyZone).Has("elsewhere") {
		t.Error("offerings or requirements shared between calls")
	}
}

func TestNoZonesNoTypes(t *testing.T) {
	opts := defaultOptions()
	opts.Zones = nil
	types, excluded := build(t, opts)
	if len(types) != 0 || len(excluded) == 0 || !strings.Contains(excluded[0].Reason, "no zones") {
		t.Errorf("%d types, exclusions %v", len(types), excluded[:1])
	}
}

func ptr[T any](v T) *T { return &v }
