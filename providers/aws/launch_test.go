package aws_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/test/awsenv"
)

func od(it, zone string) fakeaws.Offering {
	return fakeaws.Offering{InstanceType: it, Zone: zone, CapacityType: fakeaws.OnDemand}
}

// TestCreateThroughProvider launches NodeClaims through the provider's
// Create (the same path Karpenter core's lifecycle controller takes) and
// checks the chosen offering, the NodeClaim the provider returns, the
// instance in EC2 and the CreateFleet request.
func TestCreateThroughProvider(t *testing.T) {
	type want struct {
		instanceType, zone, capacityType, reservation string
		fleetCapacityType, allocationStrategy         string
		refused                                       []fakeaws.Offering
		ice                                           bool
	}
	cases := []struct {
		name  string
		claim *karpv1.NodeClaim
		setup func(*env)
		want  want
	}{
		{
			name:  "on-demand: cheapest type and zone",
			claim: claim("od", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand)),
			want:  want{instanceType: "g4dn.xlarge", capacityType: karpv1.CapacityTypeOnDemand, fleetCapacityType: "on-demand", allocationStrategy: "lowest-price"},
		},
		{
			name:  "spot: cheapest spot zone, price-capacity-optimized",
			claim: claim("spot", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeSpot)),
			want:  want{instanceType: "g4dn.xlarge", zone: "us-east-1a", capacityType: karpv1.CapacityTypeSpot, fleetCapacityType: "spot", allocationStrategy: "price-capacity-optimized"},
		},
		{
			name:  "reserved ODCR is used first",
			claim: claim("reserved", 1),
			want:  want{instanceType: "g6.xlarge", zone: "us-east-1b", capacityType: karpv1.CapacityTypeReserved, reservation: "cr-odcr", fleetCapacityType: "on-demand", allocationStrategy: "lowest-price"},
		},
		{
			name:  "capacity block for an 8-GPU claim",
			claim: claim("block", 8),
			want:  want{instanceType: "p5.48xlarge", zone: "us-east-1a", capacityType: karpv1.CapacityTypeReserved, reservation: "cr-block", fleetCapacityType: "capacity-block"},
		},
		{
			name:  "insufficient capacity on some overrides: those are refused, the next launches",
			claim: claim("ice", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand)),
			setup: func(e *env) {
				e.srv.InsufficientCapacity(od("g4dn.xlarge", "us-east-1a"), "")
				e.srv.InsufficientCapacity(od("g4dn.xlarge", "us-east-1b"), "")
			},
			want: want{instanceType: "g4dn.xlarge", zone: "us-east-1c", capacityType: karpv1.CapacityTypeOnDemand, fleetCapacityType: "on-demand", allocationStrategy: "lowest-price",
				refused: []fakeaws.Offering{od("g4dn.xlarge", "us-east-1a"), od("g4dn.xlarge", "us-east-1b")}},
		},
		{
			name:  "capacity exhausted by a limit, not an injected error",
			claim: claim("limit", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand), req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "g4dn.xlarge", "g6.xlarge"), req(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, "us-east-1a")),
			setup: func(e *env) { e.srv.SetCapacity(od("g4dn.xlarge", "us-east-1a"), 0) },
			want: want{instanceType: "g6.xlarge", zone: "us-east-1a", capacityType: karpv1.CapacityTypeOnDemand, fleetCapacityType: "on-demand", allocationStrategy: "lowest-price",
				refused: []fakeaws.Offering{od("g4dn.xlarge", "us-east-1a")}},
		},
		{
			name:  "everything refused: insufficient capacity error",
			claim: claim("none", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand), req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "g5.xlarge")),
			setup: func(e *env) {
				e.srv.InsufficientCapacity(od("g5.xlarge", "us-east-1a"), "")
				e.srv.InsufficientCapacity(od("g5.xlarge", "us-east-1b"), "InsufficientInstanceCapacity")
			},
			want: want{ice: true, refused: []fakeaws.Offering{od("g5.xlarge", "us-east-1a"), od("g5.xlarge", "us-east-1b")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, inventory())
			nc := e.resolved(nodeClass())
			if tc.setup != nil {
				tc.setup(e)
			}
			got, err := e.cp.Create(e.ctx, tc.claim)
			for _, o := range tc.want.refused {
				if !e.cp.Unavailable().IsUnavailable(o.InstanceType, o.Zone, karpv1.CapacityTypeOnDemand) {
					t.Errorf("refused offering %v not marked unavailable", o)
				}
			}
			for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
				for _, it := range []string{"g4dn.xlarge", "g5.xlarge", "g6.xlarge"} {
					o := od(it, z)
					if !lo.Contains(tc.want.refused, o) && e.cp.Unavailable().IsUnavailable(it, z, karpv1.CapacityTypeOnDemand) {
						t.Errorf("offering %v marked unavailable although EC2 did not refuse it", o)
					}
				}
			}
			if tc.want.ice {
				if !karpcp.IsInsufficientCapacityError(err) {
					t.Fatalf("Create error = %v, want an insufficient capacity error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			w := tc.want
			if l := got.Labels; l[corev1.LabelInstanceTypeStable] != w.instanceType || l[karpv1.CapacityTypeLabelKey] != w.capacityType ||
				(w.zone != "" && l[corev1.LabelTopologyZone] != w.zone) || (w.reservation != "" && l[v1alpha1.LabelCapacityReservationID] != w.reservation) {
				t.Errorf("labels = type %s zone %s capacity %s reservation %q, want %s %s %s %q", l[corev1.LabelInstanceTypeStable], l[corev1.LabelTopologyZone],
					l[karpv1.CapacityTypeLabelKey], l[v1alpha1.LabelCapacityReservationID], w.instanceType, w.zone, w.capacityType, w.reservation)
			}
			insts := e.srv.Instances()
			if len(insts) != 1 {
				t.Fatalf("EC2 has %d instances, want 1", len(insts))
			}
			inst := insts[0]
			wantPID := fmt.Sprintf("aws:///%s/%s", inst.Zone, inst.ID)
			if got.Status.ProviderID != wantPID {
				t.Errorf("provider ID = %s, want %s", got.Status.ProviderID, wantPID)
			}
			if inst.InstanceType != w.instanceType || inst.Zone != got.Labels[corev1.LabelTopologyZone] || inst.ReservationID != w.reservation ||
				(inst.Lifecycle == "spot") != (w.capacityType == karpv1.CapacityTypeSpot) {
				t.Errorf("EC2 instance = %+v, does not match the NodeClaim", inst)
			}
			if inst.Tags[gpucp.TagNodeClaim] != tc.claim.Name || inst.Tags[gpucp.TagCluster] != cluster || inst.Tags["kubernetes.io/cluster/"+cluster] != "owned" || inst.Tags["team"] != "ml" {
				t.Errorf("instance tags = %v", inst.Tags)
			}
			if got.Status.ImageID != "ami-nvx86" || inst.ImageID != "ami-nvx86" {
				t.Errorf("image = %s / %s, want ami-nvx86", got.Status.ImageID, inst.ImageID)
			}
			gpus := got.Status.Allocatable[v1alpha1.ResourceNVIDIAGPU]
			if gpus.Value() < 1 {
				t.Errorf("allocatable GPUs = %v", gpus.String())
			}
			fleets := e.srv.Requests("CreateFleet")
			last := fleets[len(fleets)-1].Form
			if last.Get("Type") != "instant" || last.Get("TargetCapacitySpecification.DefaultTargetCapacityType") != w.fleetCapacityType ||
				last.Get("TargetCapacitySpecification.TotalTargetCapacity") != "1" {
				t.Errorf("CreateFleet = %v", last)
			}
			strategy := lo.CoalesceOrEmpty(last.Get("SpotOptions.AllocationStrategy"), last.Get("OnDemandOptions.AllocationStrategy"))
			if strategy != w.allocationStrategy {
				t.Errorf("allocation strategy = %q, want %q", strategy, w.allocationStrategy)
			}
			if last.Get("ClientToken") == "" {
				t.Error("CreateFleet without a client token")
			}
			lt := e.srv.LaunchTemplates()[inst.LaunchTemplate]
			if w.reservation != "" {
				if lt.Data["CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId"] != w.reservation {
					t.Errorf("launch template does not target %s: %v", w.reservation, lt.Data)
				}
				if r, _ := e.srv.Reservation(w.reservation); r.Available != 0 {
					t.Errorf("reservation %s has %d available after the launch, want 0", w.reservation, r.Available)
				}
				if (lt.Data["InstanceMarketOptions.MarketType"] == "capacity-block") != (w.fleetCapacityType == "capacity-block") {
					t.Errorf("launch template market type = %q", lt.Data["InstanceMarketOptions.MarketType"])
				}
			} else if lt.Data["CapacityReservationSpecification.CapacityReservationPreference"] != "none" {
				t.Errorf("on-demand/spot launch template may consume open reservations: %v", lt.Data)
			}
			_ = nc
		})
	}
}

// TestLaunchRefusesExactlyTheFailedOverrides calls Launch with handmade
// options and checks LaunchResult.Refused option by option, including
// options whose zone has two subnets.
func TestLaunchRefusesExactlyTheFailedOverrides(t *testing.T) {
	e := newEnv(t, inventory())
	nc := e.resolved(nodeClass())
	e.srv.InsufficientCapacity(od("g4dn.xlarge", "us-east-1a"), "InsufficientInstanceCapacity")
	e.srv.InsufficientCapacity(od("g4dn.xlarge", "us-east-1b"), "Unsupported")
	opts := []gpucp.LaunchOption{
		{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeOnDemand, Price: 0.526},
		{InstanceType: "g4dn.xlarge", Zone: "us-east-1b", CapacityType: karpv1.CapacityTypeOnDemand, Price: 0.526},
		{InstanceType: "g6.xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeOnDemand, Price: 0.8048},
		{InstanceType: "g5.xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeOnDemand, Price: 1.006},
	}
	res, err := e.backend.Launch(e.ctx, &gpucp.LaunchRequest{NodeClaim: claim("x", 1), NodeClass: nc, Options: opts, Tags: map[string]string{gpucp.TagNodeClaim: "x", gpucp.TagCluster: cluster}, ClientToken: "uid-x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Instance == nil || res.Instance.InstanceType != "g6.xlarge" || res.Instance.Zone != "us-east-1a" {
		t.Fatalf("instance = %+v, want g6.xlarge in us-east-1a", res.Instance)
	}
	if !slices.Equal(lo.Map(res.Refused, func(o gpucp.LaunchOption, _ int) string { return o.String() }),
		[]string{"g4dn.xlarge/us-east-1a/on-demand", "g4dn.xlarge/us-east-1b/on-demand"}) {
		t.Errorf("refused = %v, want exactly the two g4dn.xlarge options", res.Refused)
	}
	// Both subnets of us-east-1a were offered for each option there, the
	// one with more free addresses first.
	form := e.srv.Requests("CreateFleet")[0].Form
	var subnets []string
	for i := 1; ; i++ {
		it := form.Get(fmt.Sprintf("LaunchTemplateConfigs.1.Overrides.%d.InstanceType", i))
		if it == "" {
			break
		}
		if it == "g4dn.xlarge" && form.Get(fmt.Sprintf("LaunchTemplateConfigs.1.Overrides.%d.AvailabilityZone", i)) == "us-east-1a" {
			subnets = append(subnets, form.Get(fmt.Sprintf("LaunchTemplateConfigs.1.Overrides.%d.SubnetId", i)))
		}
	}
	if !slices.Equal(subnets, []string{"subnet-a2", "subnet-a1"}) {
		t.Errorf("g4dn.xlarge/us-east-1a overrides use subnets %v, want [subnet-a2 subnet-a1]", subnets)
	}
}

// TestLaunchFallsBackAcrossFleetKinds: a full reservation is refused, then
// the on-demand fleet launches.
func TestLaunchFallsBackAcrossFleetKinds(t *testing.T) {
	e := resolvedEnv(t)
	e.srv.InsufficientCapacity(fakeaws.Offering{InstanceType: "g6.xlarge", Zone: "us-east-1b", CapacityType: fakeaws.Reserved}, "ReservationCapacityExceeded")
	got := e.launch(t, claim("fallback", 1, req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "g6.xlarge")))
	if got.Labels[karpv1.CapacityTypeLabelKey] == karpv1.CapacityTypeReserved {
		t.Fatalf("launched into the refused reservation: %v", got.Labels)
	}
	if !e.cp.Unavailable().IsUnavailable("g6.xlarge", "us-east-1b", karpv1.CapacityTypeReserved) {
		t.Error("refused reservation not marked unavailable")
	}
	kinds := lo.Map(e.srv.Requests("CreateFleet"), func(r fakeaws.Request, _ int) string {
		return r.Form.Get("TargetCapacitySpecification.DefaultTargetCapacityType")
	})
	if len(kinds) < 2 || kinds[0] != "on-demand" {
		t.Errorf("fleet kinds = %v, want the reservation (on-demand + target) first, then a fallback", kinds)
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	cases := []struct {
		name      string
		action    string
		throttles int
		do        func(*env, *v1alpha1.GPUNodeClass) error
		wantErr   bool
	}{
		{name: "CreateFleet throttled then launches", action: "CreateFleet", throttles: 3, do: func(e *env, _ *v1alpha1.GPUNodeClass) error {
			_, err := e.cp.Create(e.ctx, claim("t", 1))
			return err
		}},
		{name: "DescribeInstances throttled then lists", action: "DescribeInstances", throttles: 2, do: func(e *env, _ *v1alpha1.GPUNodeClass) error {
			_, err := e.backend.List(e.ctx)
			return err
		}},
		{name: "GetParameter (SSM, JSON protocol) throttled then resolves", action: "GetParameter", throttles: 2, do: func(e *env, _ *v1alpha1.GPUNodeClass) error {
			nc := nodeClass()
			nc.Name = "other"
			e.backend.Resolve(e.ctx, nc) //nolint:errcheck // conditions are checked instead
			if !nc.StatusConditions().Get(v1alpha1.ConditionTypeAMIsReady).IsTrue() {
				return fmt.Errorf("AMIs not resolved: %+v", nc.Status.Conditions)
			}
			return nil
		}},
		{name: "throttled past the retry budget fails without refusing offerings", action: "CreateFleet", throttles: 50, wantErr: true, do: func(e *env, _ *v1alpha1.GPUNodeClass) error {
			_, err := e.cp.Create(e.ctx, claim("t", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand)))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv := inventory()
			e := newEnv(t, inv)
			nc := e.resolved(nodeClass())
			e.srv.ResetRequests()
			if tc.action == "GetParameter" {
				// Image parameters are cached; use a fresh backend cache by
				// asking for another family.
				e.srv.SetSSMParameter(awsenv.SSMNVIDIAx86, "ami-nvx86")
			}
			e.srv.Throttle(tc.action, tc.throttles)
			if tc.action == "GetParameter" {
				e.clock.Step(2 * 60 * 60 * 1e9) // past the image refresh interval
			}
			err := tc.do(e, nc)
			if tc.wantErr {
				if err == nil {
					t.Fatal("succeeded although every attempt was throttled")
				}
				if karpcp.IsInsufficientCapacityError(err) {
					t.Errorf("throttling reported as insufficient capacity: %v", err)
				}
				if n := len(e.srv.Requests(tc.action)); n != 5 {
					t.Errorf("%s called %d times, want 5 (MaxAttempts)", tc.action, n)
				}
				if e.cp.Unavailable().IsUnavailable("g4dn.xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand) {
					t.Error("throttling marked an offering unavailable")
				}
				return
			}
			if err != nil {
				t.Fatalf("%v", err)
			}
			if n := len(e.srv.Requests(tc.action)); n < tc.throttles+1 {
				t.Errorf("%s called %d times, want at least %d (retries)", tc.action, n, tc.throttles+1)
			}
		})
	}
}

func TestLaunchIsIdempotentPerNodeClaim(t *testing.T) {
	e := newEnv(t, inventory())
	nc := e.resolved(nodeClass())
	r := &gpucp.LaunchRequest{NodeClaim: claim("idem", 1), NodeClass: nc, ClientToken: "uid-idem",
		Options: []gpucp.LaunchOption{{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeOnDemand}},
		Tags:    map[string]string{gpucp.TagNodeClaim: "idem", gpucp.TagCluster: cluster}}
	a, err := e.backend.Launch(e.ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.backend.Launch(e.ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if a.Instance.ID != b.Instance.ID || len(e.srv.Instances()) != 1 {
		t.Errorf("relaunch gave %s then %s (%d instances), want one instance", a.Instance.ID, b.Instance.ID, len(e.srv.Instances()))
	}
}

func TestLaunchTemplateRecreatedAfterDeletion(t *testing.T) {
	e := resolvedEnv(t)
	e.launch(t, claim("one", 1))
	e.srv.DeleteLaunchTemplates()
	if _, err := e.cp.Create(e.ctx, claim("two", 1)); err != nil {
		t.Fatalf("launch after the template was deleted: %v", err)
	}
	if len(e.srv.LaunchTemplates()) == 0 {
		t.Error("launch template not recreated")
	}
}

func TestLaunchTemplate(t *testing.T) {
	e := newEnv(t, inventory())
	nc := e.resolved(nodeClass(func(nc *v1alpha1.GPUNodeClass) { nc.Spec.DetailedMonitoring = lo.ToPtr(true) }))
	e.launch(t, claim("lt", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand)))
	inst := e.srv.Instances()[0]
	lt := e.srv.LaunchTemplates()[inst.LaunchTemplate]
	wantData := map[string]string{
		"ImageId":                                 "ami-nvx86",
		"IamInstanceProfile.Name":                 nc.Status.InstanceProfile,
		"SecurityGroupId.1":                       "sg-nodes",
		"MetadataOptions.HttpTokens":              "required",
		"MetadataOptions.HttpPutResponseHopLimit": "1",
		"MetadataOptions.HttpEndpoint":            "enabled",
		"BlockDeviceMapping.1.DeviceName":         "/dev/xvda",
		"BlockDeviceMapping.1.Ebs.VolumeSize":     "200",
		"BlockDeviceMapping.1.Ebs.VolumeType":     "gp3",
		"BlockDeviceMapping.1.Ebs.Encrypted":      "true",
		"Monitoring.Enabled":                      "true",
	}
	for k, v := range wantData {
		if lt.Data[k] != v {
			t.Errorf("launch template %s = %q, want %q", k, lt.Data[k], v)
		}
	}
	if !strings.HasPrefix(lt.Name, "karpenter-gpu/gpu/") || lt.Tags[gpucp.TagCluster] != cluster || lt.Tags[gpucp.TagNodeClass] != "gpu" {
		t.Errorf("launch template %s tags %v", lt.Name, lt.Tags)
	}
	ud, err := base64.StdEncoding.DecodeString(lt.Data["UserData"])
	if err != nil || !strings.Contains(string(ud), "karpenter.sh/unregistered") {
		t.Errorf("user data lacks the unregistered taint: %s", ud)
	}
	// Same node class and image: the template is reused, not recreated.
	e.launch(t, claim("lt2", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand)))
	if n := len(e.srv.Requests("CreateLaunchTemplate")); n != 1 {
		t.Errorf("CreateLaunchTemplate called %d times, want 1", n)
	}
}

func TestGetListTerminate(t *testing.T) {
	e := resolvedEnv(t)
	nc := e.launch(t, claim("life", 1))
	got, err := e.cp.Get(e.ctx, nc.Status.ProviderID)
	if err != nil || got.Name != "life" || got.Labels[corev1.LabelInstanceTypeStable] != nc.Labels[corev1.LabelInstanceTypeStable] ||
		got.Labels[karpv1.CapacityTypeLabelKey] != nc.Labels[karpv1.CapacityTypeLabelKey] {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	list, err := e.cp.List(e.ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %d, %v", len(list), err)
	}
	if err := e.cp.Delete(e.ctx, nc); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if st := e.srv.Instances()[0].State; st != "shutting-down" {
		t.Errorf("instance state after Delete = %s", st)
	}
	if _, err := e.cp.Get(e.ctx, nc.Status.ProviderID); !karpcp.IsNodeClaimNotFoundError(err) {
		t.Errorf("Get after Delete = %v, want NodeClaim not found", err)
	}
	if err := e.cp.Delete(e.ctx, nc); !karpcp.IsNodeClaimNotFoundError(err) {
		t.Errorf("second Delete = %v, want NodeClaim not found", err)
	}
	var nf *gpucp.NotFoundError
	if err := e.backend.Terminate(e.ctx, "i-00000000000000999"); !errors.As(err, &nf) {
		t.Errorf("Terminate unknown = %v, want NotFoundError", err)
	}
	if _, err := e.backend.Get(e.ctx, "i-00000000000000999"); !errors.As(err, &nf) {
		t.Errorf("Get unknown = %v, want NotFoundError", err)
	}
	if list, _ := e.cp.List(e.ctx); len(list) != 0 {
		t.Errorf("List after termination = %d, want 0", len(list))
	}
}

func TestListPaginates(t *testing.T) {
	e := newEnv(t, inventory())
	var want []string
	for i := range 7 {
		want = append(want, e.srv.AddInstance(fakeaws.Instance{InstanceType: "g4dn.xlarge", Zone: "us-east-1a",
			Tags: map[string]string{gpucp.TagCluster: cluster, gpucp.TagNodeClaim: fmt.Sprintf("nc-%d", i)}}))
	}
	e.srv.AddInstance(fakeaws.Instance{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", Tags: map[string]string{gpucp.TagCluster: "other", gpucp.TagNodeClaim: "x"}})
	e.srv.AddInstance(fakeaws.Instance{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", State: "terminated", Tags: map[string]string{gpucp.TagCluster: cluster, gpucp.TagNodeClaim: "gone"}})
	e.srv.SetPageSize(2)
	got, err := e.backend.List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := lo.Map(got, func(i *gpucp.Instance, _ int) string { return i.ID })
	sort.Strings(want)
	if !slices.Equal(ids, want) {
		t.Errorf("List = %v, want %v", ids, want)
	}
	if n := len(e.srv.Requests("DescribeInstances")); n != 4 {
		t.Errorf("DescribeInstances called %d times, want 4 pages of 2", n)
	}
}

func TestCollectOrphans(t *testing.T) {
	e := resolvedEnv(t)
	claimed := e.launch(t, claim("claimed", 1))
	claimed.Spec = claim("claimed", 1).Spec
	if err := e.kube.Create(e.ctx, claimed); err != nil {
		t.Fatal(err)
	}
	old := epoch.Add(-10 * 60 * 1e9)
	orphan := e.srv.AddInstance(fakeaws.Instance{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", LaunchTime: old,
		Tags: map[string]string{gpucp.TagCluster: cluster, gpucp.TagNodeClaim: "crashed"}})
	young := e.srv.AddInstance(fakeaws.Instance{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", LaunchTime: epoch,
		Tags: map[string]string{gpucp.TagCluster: cluster, gpucp.TagNodeClaim: "launching"}})
	foreign := e.srv.AddInstance(fakeaws.Instance{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", LaunchTime: old,
		Tags: map[string]string{gpucp.TagCluster: "other", gpucp.TagNodeClaim: "theirs"}})
	e.clock.Step(60 * 1e9)
	got, err := e.collectOrphans(2 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{orphan}) {
		t.Errorf("collected %v, want only %s (young %s and foreign %s must stay)", got, orphan, young, foreign)
	}
	for _, i := range e.srv.Instances() {
		terminated := i.State == "shutting-down" || i.State == "terminated"
		if terminated != (i.ID == orphan) {
			t.Errorf("instance %s (%s) state %s", i.ID, i.Tags[gpucp.TagNodeClaim], i.State)
		}
	}
}

func TestProviderIDRoundTrip(t *testing.T) {
	e := newEnv(t, inventory())
	pid := e.backend.ProviderID(&gpucp.Instance{ID: "i-0abc", Zone: "us-east-1b"})
	if pid != "aws:///us-east-1b/i-0abc" {
		t.Errorf("ProviderID = %s", pid)
	}
	if id, err := e.backend.InstanceID(pid); err != nil || id != "i-0abc" {
		t.Errorf("InstanceID(%s) = %s, %v", pid, id, err)
	}
	for _, bad := range []string{"fake://us-east-1b/i-0abc", "aws:///us-east-1b/", "aws:///us-east-1b/sg-1"} {
		if _, err := e.backend.InstanceID(bad); err == nil {
			t.Errorf("InstanceID(%s) accepted", bad)
		}
	}
}
