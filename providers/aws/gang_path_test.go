package aws_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instance"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// gangClaim is a NodeClaim of a gang attempt as the ProvisioningRequest
// controller creates it: the request and attempt labels, the gang size, the
// plan's instance type and zone.
func gangClaim(name, uid string, size int, instanceType, zone string) *karpv1.NodeClaim {
	nc := claim(name, 8,
		req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand),
		req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, instanceType),
		req(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, zone))
	nc.Labels[gpucp.LabelGangRequest] = uid
	nc.Labels[gpucp.LabelGangAttempt] = "1"
	nc.Annotations = map[string]string{gpucp.AnnotationGangSize: strconv.Itoa(size)}
	return nc
}

// gangClaims are n NodeClaims <prefix>-<i> of one attempt of a gang of size
// NodeClaims for the request uid, on instanceType in us-east-1b.
func gangClaims(prefix, uid string, n, size int, instanceType string) []*karpv1.NodeClaim {
	return lo.Times(n, func(i int) *karpv1.NodeClaim {
		return gangClaim(fmt.Sprintf("%s-%d", prefix, i), uid, size, instanceType, "us-east-1b")
	})
}

type createResult struct {
	name string
	nc   *karpv1.NodeClaim
	err  error
}

// createAll runs CloudProvider.Create for the claims at once, as core's
// NodeClaim lifecycle does for the NodeClaims the controller created.
func (e *env) createAll(claims []*karpv1.NodeClaim) []createResult {
	results := make([]createResult, len(claims))
	var wg sync.WaitGroup
	for i, c := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := e.cp.Create(e.ctx, c)
			results[i] = createResult{c.Name, nc, err}
		}()
	}
	wg.Wait()
	return results
}

// mustCreateAll is createAll failing the test on any error.
func (e *env) mustCreateAll(t *testing.T, claims []*karpv1.NodeClaim) []createResult {
	t.Helper()
	results := e.createAll(claims)
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("%s: %v", r.name, r.err)
		}
	}
	return results
}

// The controller's gang launch on the AWS backend: core launches each
// NodeClaim of the attempt through CloudProvider.Create; the backend
// gathers them into one instant CreateFleet with MinTargetCapacity equal to
// the gang, SingleAvailabilityZone and SingleInstanceType, through the real
// SDK against the in-process EC2 endpoint.
func TestGangOnTheControllerPath(t *testing.T) {
	const size = 4
	tests := []struct {
		name      string
		room      int  // p5.48xlarge on-demand room in us-east-1b; -1 unlimited
		ignoreMin bool // the endpoint answers partially
		arrive    int  // members that call Create (default size)
		wantFleet []string
		wantLive  int
	}{
		{name: "the gang launches whole from one fleet", room: -1, wantFleet: []string{"4"}, wantLive: size},
		{name: "room for 3 of 4: refused whole, nothing launched", room: 3, wantFleet: []string{"4"}},
		{name: "partial answer (the endpoint ignores the minimum): rolled back, 0 left", room: 3, ignoreMin: true, wantFleet: []string{"4"}},
		{name: "a member never arrives: those that did launch as a gang of their own", room: -1, arrive: 3, wantFleet: []string{"3"}, wantLive: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, inventory(), func(o *awsbackend.Options, _ *awsbackend.RetryOptions) { o.GangWait = 2 * time.Second })
			e.resolved(nodeClass())
			e.srv.SetCapacity(od("p5.48xlarge", "us-east-1b"), tt.room)
			e.srv.IgnoreMinTargetCapacity(tt.ignoreMin)
			claims := gangClaims("gang", "req-uid", lo.Ternary(tt.arrive > 0, tt.arrive, size), size, "p5.48xlarge")
			start := time.Now()
			results := e.createAll(claims)
			took := time.Since(start)

			fleets := e.srv.Requests("CreateFleet")
			if got := lo.Map(fleets, func(r fakeaws.Request, _ int) string {
				return r.Form.Get("TargetCapacitySpecification.TotalTargetCapacity")
			}); fmt.Sprint(got) != fmt.Sprint(tt.wantFleet) {
				t.Fatalf("CreateFleet calls with targets %v, want %v", got, tt.wantFleet)
			}
			form := fleets[0].Form
			for k, want := range map[string]string{
				"Type":                                   "instant",
				"OnDemandOptions.MinTargetCapacity":      tt.wantFleet[0],
				"OnDemandOptions.SingleAvailabilityZone": "true",
				"OnDemandOptions.SingleInstanceType":     "true",
			} {
				if got := form.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if form.Get("ClientToken") == "" {
				t.Error("the gang fleet has no client token (not idempotent)")
			}
			running := e.srv.LiveInstances()
			if len(running) != tt.wantLive {
				t.Fatalf("%d instances running, want %d", len(running), tt.wantLive)
			}
			if tt.wantLive == 0 {
				for _, r := range results {
					if !karpcp.IsInsufficientCapacityError(r.err) {
						t.Errorf("%s: err = %v, want insufficient capacity (core deletes the NodeClaim and the controller rolls the gang back)", r.name, r.err)
					}
				}
				if !e.cp.Unavailable().IsUnavailable("p5.48xlarge", "us-east-1b", karpv1.CapacityTypeOnDemand) {
					t.Error("the refused offering is not remembered: the retry would plan it again")
				}
				launched := len(e.srv.Instances())
				terminated := e.srv.Requests("TerminateInstances")
				if tt.ignoreMin {
					if launched != 3 || len(terminated) != 1 {
						t.Errorf("partial answer: %d launched, %d TerminateInstances calls; want 3 launched and terminated in one call", launched, len(terminated))
					}
				} else if launched != 0 {
					t.Errorf("EC2 refused the fleet but %d instances exist", launched)
				}
				return
			}
			byID := lo.SliceToMap(e.srv.Instances(), func(i fakeaws.Instance) (string, fakeaws.Instance) { return i.ID, i })
			for _, r := range results {
				if r.err != nil {
					t.Fatalf("%s: %v", r.name, r.err)
				}
				id, err := e.backend.InstanceID(r.nc.Status.ProviderID)
				if err != nil {
					t.Fatal(err)
				}
				inst := byID[id]
				if inst.Zone != "us-east-1b" || inst.InstanceType != "p5.48xlarge" || inst.Tags[gpucp.TagNodeClaim] != r.name {
					t.Errorf("%s got %s: %s in %s tagged %v", r.name, id, inst.InstanceType, inst.Zone, inst.Tags)
				}
			}
			if ids := lo.Uniq(lo.Map(results, func(r createResult, _ int) string { return r.nc.Status.ProviderID })); len(ids) != len(results) {
				t.Errorf("members share instances: %v", ids)
			}
			if tt.arrive > 0 && took < 2*time.Second {
				t.Errorf("an incomplete gang launched after %s, before the gang wait", took)
			}
			t.Logf("%s: %d CreateFleet, %d running, %s", tt.name, len(fleets), len(running), took.Round(time.Millisecond))
		})
	}
}

// A NodeClaim that is not part of a gang launches as before: no minimum.
func TestNonGangLaunchHasNoMinimum(t *testing.T) {
	e := resolvedEnv(t)
	nc := gangClaim("solo", "req-uid", 4, "p5.48xlarge", "us-east-1b")
	delete(nc.Annotations, gpucp.AnnotationGangSize)
	e.launch(t, nc)
	fleets := e.srv.Requests("CreateFleet")
	if len(fleets) != 1 || fleets[0].Form.Get("OnDemandOptions.MinTargetCapacity") != "" {
		t.Fatalf("CreateFleet %v, want one without MinTargetCapacity", lo.Map(fleets, func(r fakeaws.Request, _ int) string { return r.Form.Encode() }))
	}
}

// Capacity reservations first: a gang allowed reserved capacity launches
// from the reservation when it has a seat for every member, and when it has
// fewer, the reserved fleet is refused whole (no member takes a seat) and
// the gang launches whole on demand. Capacity blocks likewise.
func TestGangReservationsFirst(t *testing.T) {
	tests := []struct {
		name      string
		res       fakeaws.Reservation
		wantKinds []string // DefaultTargetCapacityType of each CreateFleet
		wantRes   int      // instances in the reservation
	}{
		{name: "an ODCR with a seat for each: the gang takes it",
			res: fakeaws.Reservation{ID: "cr-gang", InstanceType: "p5.48xlarge", Zone: "us-east-1b", Total: 4, Available: 4}, wantKinds: []string{"on-demand"}, wantRes: 4},
		{name: "an ODCR with 2 seats for 4: refused whole, the gang on demand",
			res: fakeaws.Reservation{ID: "cr-gang", InstanceType: "p5.48xlarge", Zone: "us-east-1b", Total: 4, Available: 2}, wantKinds: []string{"on-demand", "on-demand"}},
		{name: "a capacity block with a seat for each: the gang takes it",
			res: fakeaws.Reservation{ID: "cr-gang", InstanceType: "p5.48xlarge", Zone: "us-east-1b", Total: 4, Available: 4, CapacityBlock: true}, wantKinds: []string{"capacity-block"}, wantRes: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := inventory()
			inv.Reservations = []fakeaws.Reservation{tt.res}
			e := newEnv(t, inv, func(o *awsbackend.Options, _ *awsbackend.RetryOptions) { o.GangWait = 2 * time.Second })
			e.resolved(nodeClass())
			claims := gangClaims("gang", "req-uid", 4, 4, "p5.48xlarge")
			for _, c := range claims {
				c.Spec.Requirements[1] = req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeReserved, karpv1.CapacityTypeOnDemand)
			}
			results := e.mustCreateAll(t, claims)
			fleets := e.srv.Requests("CreateFleet")
			kinds := lo.Map(fleets, func(r fakeaws.Request, _ int) string {
				return r.Form.Get("TargetCapacitySpecification.DefaultTargetCapacityType")
			})
			if fmt.Sprint(kinds) != fmt.Sprint(tt.wantKinds) {
				t.Fatalf("CreateFleet kinds %v, want %v", kinds, tt.wantKinds)
			}
			for _, f := range fleets {
				if f.Form.Get("OnDemandOptions.MinTargetCapacity") != "4" || f.Form.Get("TargetCapacitySpecification.TotalTargetCapacity") != "4" {
					t.Errorf("fleet %s not all-or-nothing for 4: %v", f.Form.Get("TargetCapacitySpecification.DefaultTargetCapacityType"), f.Form)
				}
			}
			running := e.srv.LiveInstances()
			inRes := lo.CountBy(running, func(i fakeaws.Instance) bool { return i.ReservationID == tt.res.ID })
			if len(running) != 4 || inRes != tt.wantRes {
				t.Fatalf("%d running, %d in the reservation; want 4 and %d", len(running), inRes, tt.wantRes)
			}
			for i, f := range fleets {
				pg := f.Form.Get("LaunchTemplateConfigs.1.Overrides.1.Placement.GroupName")
				if reserved := i == 0; reserved && pg != "" {
					t.Errorf("the reserved fleet names placement group %q; reserved capacity is used where it was reserved", pg)
				} else if !reserved && pg == "" {
					t.Error("the on-demand fleet of an EFA gang names no placement group")
				}
			}
			if r, _ := e.srv.Reservation(tt.res.ID); r.Available != tt.res.Available-int32(tt.wantRes) {
				t.Errorf("reservation has %d seats left, want %d (a refused gang takes none)", r.Available, tt.res.Available-int32(tt.wantRes))
			}
			wantType := lo.Ternary(tt.wantRes > 0, karpv1.CapacityTypeReserved, karpv1.CapacityTypeOnDemand)
			for _, r := range results {
				if got := r.nc.Labels[karpv1.CapacityTypeLabelKey]; got != wantType {
					t.Errorf("%s launched as %s, want %s", r.name, got, wantType)
				}
			}
		})
	}
}

// A gang of EFA-capable instance types launches into a cluster placement
// group created for it; a gang of other types uses none; a full group
// refuses the gang whole; empty groups are deleted after the grace.
func TestGangPlacementGroup(t *testing.T) {
	launch := func(t *testing.T, e *env, uid, instanceType string, gpus int64) []createResult {
		t.Helper()
		claims := gangClaims(uid, uid, 4, 4, instanceType)
		for _, c := range claims {
			c.Spec.Resources.Requests[v1alpha1.ResourceNVIDIAGPU] = *resource.NewQuantity(gpus, resource.DecimalSI)
		}
		return e.createAll(claims)
	}
	// launched launches a gang that must launch.
	launched := func(t *testing.T, e *env, uid, instanceType string, gpus int64) {
		t.Helper()
		for _, r := range launch(t, e, uid, instanceType, gpus) {
			if r.err != nil {
				t.Fatal(r.err)
			}
		}
	}
	// noGroup checks that the launch created no placement group (for the
	// reason why) and that its fleet names none.
	noGroup := func(t *testing.T, e *env, why string) {
		t.Helper()
		if n := len(e.srv.Requests("CreatePlacementGroup")); n != 0 {
			t.Errorf("%d placement groups created %s", n, why)
		}
		if g := e.srv.Requests("CreateFleet")[0].Form.Get("LaunchTemplateConfigs.1.Overrides.1.Placement.GroupName"); g != "" {
			t.Errorf("fleet names placement group %q", g)
		}
	}
	groupOf := func(e *env, uid string) string {
		for name, pg := range e.srv.PlacementGroups() {
			if pg.Tags["karpenter-gpu.io/gang"] == uid+"/1" {
				return name
			}
		}
		return ""
	}
	t.Run("EFA types: one cluster group per gang, every instance in it", func(t *testing.T) {
		e := resolvedEnv(t)
		launched(t, e, "efa", "p5.48xlarge", 8)
		creates := e.srv.Requests("CreatePlacementGroup")
		if len(creates) != 1 || creates[0].Form.Get("Strategy") != "cluster" {
			t.Fatalf("CreatePlacementGroup %v, want one cluster group", lo.Map(creates, func(r fakeaws.Request, _ int) string { return r.Form.Encode() }))
		}
		name := groupOf(e, "efa")
		if pg := e.srv.PlacementGroups()[name]; name == "" || pg.Tags[gpucp.TagCluster] != cluster || pg.Tags[gpucp.TagNodeClass] != "gpu" {
			t.Fatalf("no group tagged with the cluster, the node class and the gang: %v", e.srv.PlacementGroups())
		}
		fleet := e.srv.Requests("CreateFleet")[0].Form
		if got := fleet.Get("LaunchTemplateConfigs.1.Overrides.1.Placement.GroupName"); got != name {
			t.Errorf("fleet overrides name placement group %q, want %q", got, name)
		}
		for _, i := range e.srv.LiveInstances() {
			if g := e.srv.PlacementGroupOf(i.ID); g != name {
				t.Errorf("instance %s in placement group %q, want %q", i.ID, g, name)
			}
		}
	})
	t.Run("types without EFA: no placement group", func(t *testing.T) {
		e := resolvedEnv(t)
		launched(t, e, "noefa", "g6.xlarge", 1)
		noGroup(t, e, "for g6.xlarge")
	})
	t.Run("node class placementGroup None: no group for an EFA gang", func(t *testing.T) {
		e := newEnv(t, inventory())
		e.resolved(nodeClass(func(nc *v1alpha1.GPUNodeClass) { nc.Spec.Gang.PlacementGroup = v1alpha1.GangPlacementNone }))
		launched(t, e, "none", "p5.48xlarge", 8)
		noGroup(t, e, "with placementGroup None")
	})
	t.Run("node class names its group: the gang launches into it, none created", func(t *testing.T) {
		e := newEnv(t, inventory())
		e.srv.SetPlacementGroupCapacity("team-pg", -1) // exists, unlimited
		e.resolved(nodeClass(func(nc *v1alpha1.GPUNodeClass) { nc.Spec.Gang.PlacementGroupName = lo.ToPtr("team-pg") }))
		launched(t, e, "named", "p5.48xlarge", 8)
		if n := len(e.srv.Requests("CreatePlacementGroup")); n != 0 {
			t.Errorf("%d placement groups created beside the node class's own", n)
		}
		for _, i := range e.srv.LiveInstances() {
			if g := e.srv.PlacementGroupOf(i.ID); g != "team-pg" {
				t.Errorf("instance %s in placement group %q, want team-pg", i.ID, g)
			}
		}
	})
	t.Run("a full placement group refuses the gang whole", func(t *testing.T) {
		e := resolvedEnv(t)
		name := "karpenter-gpu-" + awsutil.ShortHash(cluster+"/full/1")
		e.srv.SetPlacementGroupCapacity(name, 3)
		for _, r := range launch(t, e, "full", "p5.48xlarge", 8) {
			if !karpcp.IsInsufficientCapacityError(r.err) {
				t.Errorf("%s: %v, want insufficient capacity", r.name, r.err)
			}
		}
		if n := len(e.srv.Instances()); n != 0 {
			t.Errorf("%d instances started for a gang its placement group cannot hold", n)
		}
	})
	t.Run("empty groups are deleted after the grace, groups in use are kept", func(t *testing.T) {
		e := resolvedEnv(t)
		first := launch(t, e, "first", "p5.48xlarge", 8)
		second := launch(t, e, "second", "p5.48xlarge", 8)
		for _, r := range append(first, second...) {
			if r.err != nil {
				t.Fatal(r.err)
			}
		}
		for _, r := range first {
			if err := e.cp.Delete(e.ctx, r.nc); err != nil {
				t.Fatal(err)
			}
		}
		// DescribeInstances moves them on: shutting-down, then terminated.
		for range 2 {
			if _, err := e.backend.List(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Within the grace the collector keeps even the empty group.
		if _, err := e.collectOrphans(time.Hour); err != nil {
			t.Fatal(err)
		}
		if groupOf(e, "first") == "" {
			t.Errorf("the first gang's group was deleted within the grace: %v", lo.Keys(e.srv.PlacementGroups()))
		}
		e.clock.Step(instance.PlacementGroupGrace + time.Minute)
		// A gang launch no longer collects groups: the orphan collector is
		// the one path.
		for _, r := range launch(t, e, "third", "p5.48xlarge", 8) {
			if r.err != nil {
				t.Fatal(r.err)
			}
		}
		if n := len(e.srv.Requests("DeletePlacementGroup")); n != 0 || groupOf(e, "first") == "" {
			t.Fatalf("a launch deleted placement groups (%d DeletePlacementGroup calls)", n)
		}
		// The orphan collector as cmd/controller wires it (the grace of
		// instances is long: no instance is an orphan here).
		if _, err := e.collectOrphans(time.Hour); err != nil {
			t.Fatal(err)
		}
		if g := groupOf(e, "first"); g != "" {
			t.Errorf("the first gang's empty group %s was not deleted", g)
		}
		if groupOf(e, "second") == "" || groupOf(e, "third") == "" {
			t.Errorf("a group in use (or within the grace) was deleted: %v", lo.Keys(e.srv.PlacementGroups()))
		}
		// The second gang's instances have no NodeClaim (this store holds
		// none): with a short grace they are orphans. The pass terminates
		// them, but their group is deleted only once EC2 says they are gone.
		collected, err := e.collectOrphans(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(collected) != 4 {
			t.Fatalf("collected %d instances, want the second gang's 4", len(collected))
		}
		if groupOf(e, "second") == "" {
			t.Fatal("the second gang's group was deleted while its instances were shutting down")
		}
		for range 2 {
			if _, err := e.backend.List(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.collectOrphans(time.Minute); err != nil {
			t.Fatal(err)
		}
		if groupOf(e, "second") != "" || groupOf(e, "third") == "" {
			t.Errorf("after the second gang ended: groups %v, want only the third gang's", lo.Keys(e.srv.PlacementGroups()))
		}
	})
}

// EFA: a gang member of an EFA-capable type (or a NodeClaim that requests
// EFA devices) launches from a template with one EFA interface per network
// card, as many as the catalog gives the type; other launches have none.
func TestEFAInterfaces(t *testing.T) {
	templateOf := func(t *testing.T, e *env, fleet int) fakeaws.LaunchTemplate {
		t.Helper()
		name := e.srv.Requests("CreateFleet")[fleet].Form.Get("LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateName")
		lt, ok := e.srv.LaunchTemplates()[name]
		if !ok {
			t.Fatalf("fleet %d names launch template %q, which does not exist", fleet, name)
		}
		return lt
	}
	efaCount := func(lt fakeaws.LaunchTemplate) int {
		n := 0
		for k, v := range lt.Data {
			if strings.HasSuffix(k, ".InterfaceType") && v == "efa" {
				n++
			}
		}
		return n
	}
	t.Run("a p5 gang: 32 EFA interfaces, one per card, groups on the interfaces", func(t *testing.T) {
		e := resolvedEnv(t)
		e.mustCreateAll(t, gangClaims("efa", "efa", 2, 2, "p5.48xlarge"))
		lt := templateOf(t, e, 0)
		if n := efaCount(lt); n != 32 {
			t.Fatalf("%d EFA interfaces, want 32 (p5.48xlarge): %v", n, lt.Data)
		}
		for i := 1; i <= 32; i++ {
			card, dev := lt.Data[fmt.Sprintf("NetworkInterface.%d.NetworkCardIndex", i)], lt.Data[fmt.Sprintf("NetworkInterface.%d.DeviceIndex", i)]
			if card != fmt.Sprint(i-1) || dev != map[bool]string{true: "0", false: "1"}[i == 1] {
				t.Errorf("interface %d on card %s device %s", i, card, dev)
			}
			if lt.Data[fmt.Sprintf("NetworkInterface.%d.SecurityGroupId.1", i)] != "sg-nodes" {
				t.Errorf("interface %d carries no security group", i)
			}
		}
		if _, ok := lt.Data["SecurityGroupId.1"]; ok {
			t.Error("security groups both on the template and on its interfaces (EC2 refuses that)")
		}
	})
	t.Run("a g6 gang: none", func(t *testing.T) {
		e := resolvedEnv(t)
		claims := gangClaims("g6", "g6", 2, 2, "g6.xlarge")
		for _, c := range claims {
			c.Spec.Resources.Requests[v1alpha1.ResourceNVIDIAGPU] = resource.MustParse("1")
		}
		e.mustCreateAll(t, claims)
		if n := efaCount(templateOf(t, e, 0)); n != 0 {
			t.Errorf("%d EFA interfaces on g6.xlarge", n)
		}
	})
	t.Run("a lone p5: none, unless it requests EFA devices", func(t *testing.T) {
		e := resolvedEnv(t)
		plain := gangClaim("plain", "x", 2, "p5.48xlarge", "us-east-1b")
		delete(plain.Annotations, gpucp.AnnotationGangSize)
		wants := gangClaim("wants", "y", 2, "p5.48xlarge", "us-east-1b")
		delete(wants.Annotations, gpucp.AnnotationGangSize)
		wants.Spec.Resources.Requests[v1alpha1.ResourceEFA] = resource.MustParse("1")
		for i, nc := range []*karpv1.NodeClaim{plain, wants} {
			e.launch(t, nc)
			if n, want := efaCount(templateOf(t, e, i)), []int{0, 32}[i]; n != want {
				t.Errorf("%s: %d EFA interfaces, want %d", nc.Name, n, want)
			}
		}
	})
}
