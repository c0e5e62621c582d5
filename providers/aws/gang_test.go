package aws_test

import (
	"testing"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

// Gang launches through the real SDK against the in-process EC2 endpoint:
// one CreateFleet with MinTargetCapacity, SingleAvailabilityZone and
// SingleInstanceType; the endpoint refuses partial fleets whole.
func TestLaunchGang(t *testing.T) {
	p5 := func(zone string) cloudprovider.LaunchOption {
		return cloudprovider.LaunchOption{InstanceType: "p5.48xlarge", Zone: zone, CapacityType: karpv1.CapacityTypeOnDemand, Price: 55.04}
	}
	options := []cloudprovider.LaunchOption{p5("us-east-1a"), p5("us-east-1b"), p5("us-east-1c")}
	off := func(zone string) fakeaws.Offering {
		return fakeaws.Offering{InstanceType: "p5.48xlarge", Zone: zone, CapacityType: fakeaws.OnDemand}
	}
	tests := []struct {
		name      string
		capacity  map[string]int // zone -> room
		placement int            // placement group room; 0 = unlimited
		count     int
		wantZone  string // "" = refused
	}{
		{name: "room everywhere: the first zone", count: 4, wantZone: "us-east-1a"},
		{name: "1a holds 3 of 4: the whole gang in 1b", capacity: map[string]int{"us-east-1a": 3}, count: 4, wantZone: "us-east-1b"},
		{name: "no zone holds 4: refused whole", capacity: map[string]int{"us-east-1a": 3, "us-east-1b": 3, "us-east-1c": 2}, count: 4},
		{name: "placement group full: refused whole", placement: 2, count: 4},
		{name: "placement group with room", placement: 8, count: 4, wantZone: "us-east-1a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, inventory())
			nc := e.resolved(nodeClass())
			for z, n := range tt.capacity {
				e.srv.SetCapacity(off(z), n)
			}
			group := ""
			if tt.placement > 0 {
				group = "gang-pg"
				e.srv.SetPlacementGroupCapacity(group, tt.placement)
			}
			res, err := e.backend.LaunchGang(e.ctx, awsbackend.GangRequest{NodeClass: nc, NodeClaim: claim("gang", 8), Options: options,
				Count: tt.count, PlacementGroup: group, ClientToken: "gang-" + t.Name()})
			fleets := e.srv.Requests("CreateFleet")
			if len(fleets) != 1 {
				t.Fatalf("CreateFleet calls = %d, want 1", len(fleets))
			}
			form := fleets[0].Form
			for k, want := range map[string]string{
				"TargetCapacitySpecification.TotalTargetCapacity": "4",
				"OnDemandOptions.MinTargetCapacity":               "4",
				"OnDemandOptions.SingleAvailabilityZone":          "true",
				"OnDemandOptions.SingleInstanceType":              "true",
			} {
				if got := form.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if group != "" && form.Get("LaunchTemplateConfigs.1.Overrides.1.Placement.GroupName") != group {
				t.Errorf("overrides do not name the placement group: %v", form)
			}
			live := e.srv.LiveInstances()
			if tt.wantZone == "" {
				if !awsbackend.IsGangCapacityError(err) {
					t.Fatalf("err = %v, want a gang capacity error", err)
				}
				if len(live) != 0 {
					t.Fatalf("%d instances left after a refused gang, want 0", len(live))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Instances) != tt.count || len(live) != tt.count {
				t.Fatalf("launched %d (live %d), want %d", len(res.Instances), len(live), tt.count)
			}
			for _, i := range res.Instances {
				if i.Zone != tt.wantZone || i.InstanceType != "p5.48xlarge" {
					t.Errorf("instance %s in %s (%s), want p5.48xlarge in %s", i.ID, i.Zone, i.InstanceType, tt.wantZone)
				}
				if group != "" && e.srv.PlacementGroupOf(i.ID) != group {
					t.Errorf("instance %s not in placement group %s", i.ID, group)
				}
			}
		})
	}
}

func TestLaunchGangValidates(t *testing.T) {
	e := newEnv(t, inventory())
	nc := e.resolved(nodeClass())
	opt := cloudprovider.LaunchOption{InstanceType: "p5.48xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeOnDemand}
	spot := cloudprovider.LaunchOption{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeSpot}
	for name, req := range map[string]awsbackend.GangRequest{
		"no node class":      {NodeClaim: claim("g", 8), Options: []cloudprovider.LaunchOption{opt}, Count: 2},
		"zero count":         {NodeClass: nc, NodeClaim: claim("g", 8), Options: []cloudprovider.LaunchOption{opt}},
		"no options":         {NodeClass: nc, NodeClaim: claim("g", 8), Count: 2},
		"two capacity types": {NodeClass: nc, NodeClaim: claim("g", 1), Options: []cloudprovider.LaunchOption{opt, spot}, Count: 2},
	} {
		if _, err := e.backend.LaunchGang(e.ctx, req); err == nil || awsbackend.IsGangCapacityError(err) {
			t.Errorf("%s: err = %v, want a validation error", name, err)
		}
	}
	if n := len(e.srv.Requests("CreateFleet")); n != 0 {
		t.Errorf("invalid gangs made %d CreateFleet calls", n)
	}
}
