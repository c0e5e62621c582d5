package fake_test

import (
	"context"
	"errors"
	"testing"

	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

func running(t *testing.T, f *fake.Fleet) []*cloudprovider.Instance {
	t.Helper()
	all, err := f.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return lo.Filter(all, func(i *cloudprovider.Instance, _ int) bool { return i.State != cloudprovider.InstanceStateTerminated })
}

func TestLaunchGroupAllOrNothing(t *testing.T) {
	const od = "on-demand"
	// p5 has room for 3 in a, 4 in b; g6e is unlimited in c.
	capacity := map[fake.Offering]int{
		{"p5.48xlarge", "us-east-1a", od}: 3,
		{"p5.48xlarge", "us-east-1b", od}: 4,
		{"p5.48xlarge", "us-east-1c", od}: 0,
	}
	p5 := []cloudprovider.LaunchOption{opt("p5.48xlarge", "us-east-1a", od), opt("p5.48xlarge", "us-east-1b", od), opt("p5.48xlarge", "us-east-1c", od)}
	tests := []struct {
		name      string
		req       fake.GroupRequest
		placement map[string]int
		refuse    []fake.Offering
		wantN     int
		wantZones []string // distinct zones of the launched group
		wantErr   bool
	}{
		{name: "single zone: a has 3, so the 4-node group goes to b whole",
			req: fake.GroupRequest{Options: p5, TargetCapacity: 4, SingleAvailabilityZone: true}, wantN: 4, wantZones: []string{"us-east-1b"}},
		{name: "across zones, all or nothing: a then b",
			req: fake.GroupRequest{Options: p5, TargetCapacity: 5}, wantN: 5, wantZones: []string{"us-east-1a", "us-east-1b"}},
		{name: "single zone: no zone holds 5, nothing launched",
			req: fake.GroupRequest{Options: p5, TargetCapacity: 5, SingleAvailabilityZone: true}, wantErr: true},
		{name: "MinTargetCapacity below target: a partial fleet is allowed",
			req: fake.GroupRequest{Options: p5, TargetCapacity: 6, MinTargetCapacity: 4, SingleAvailabilityZone: true}, wantN: 4, wantZones: []string{"us-east-1b"}},
		{name: "an injected refusal empties b for the call",
			req:    fake.GroupRequest{Options: p5, TargetCapacity: 4, SingleAvailabilityZone: true},
			refuse: []fake.Offering{{"p5.48xlarge", "us-east-1b", od}}, wantErr: true},
		{name: "placement group full: refused whole",
			req:       fake.GroupRequest{Options: p5, TargetCapacity: 4, SingleAvailabilityZone: true, PlacementGroup: "pg-1"},
			placement: map[string]int{"pg-1": 2}, wantErr: true},
		{name: "single instance type: the type with room wins",
			req: fake.GroupRequest{Options: append([]cloudprovider.LaunchOption{opt("p5.48xlarge", "us-east-1a", od)}, opt("p4d.24xlarge", "us-east-1a", od)),
				TargetCapacity: 4, SingleAvailabilityZone: true, SingleInstanceType: true}, wantN: 4, wantZones: []string{"us-east-1a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.NewFleet(fake.Options{Capacity: lo.Assign(capacity)})
			for name, n := range tt.placement {
				f.SetPlacementGroupCapacity(name, n)
			}
			for _, off := range tt.refuse {
				f.RefuseCapacity(off, 1)
			}
			res, err := f.LaunchGroup(context.Background(), tt.req)
			if tt.wantErr {
				if !fake.IsGroupCapacityError(err) {
					t.Fatalf("err = %v, want a group capacity error", err)
				}
				if n := len(running(t, f)); n != 0 {
					t.Fatalf("%d instances running after a refused group, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Instances) != tt.wantN || len(running(t, f)) != tt.wantN {
				t.Fatalf("launched %d (running %d), want %d", len(res.Instances), len(running(t, f)), tt.wantN)
			}
			zones := lo.Uniq(lo.Map(res.Instances, func(i *cloudprovider.Instance, _ int) string { return i.Zone }))
			if !lo.ElementsMatch(zones, tt.wantZones) {
				t.Errorf("zones %v, want %v", zones, tt.wantZones)
			}
			if tt.req.SingleInstanceType && len(lo.Uniq(lo.Map(res.Instances, func(i *cloudprovider.Instance, _ int) string { return i.InstanceType }))) != 1 {
				t.Errorf("more than one instance type under SingleInstanceType")
			}
		})
	}
}

func TestLaunchGroupIdempotentAndValidated(t *testing.T) {
	f := fake.NewFleet(fake.Options{})
	req := fake.GroupRequest{Options: []cloudprovider.LaunchOption{opt("g6.xlarge", "us-east-1a", "on-demand")}, TargetCapacity: 3, ClientToken: "gang-1"}
	a, err := f.LaunchGroup(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.LaunchGroup(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if f.Launches() != 3 || len(b.Instances) != 3 || a.Instances[0].ID != b.Instances[0].ID {
		t.Fatalf("a repeated token launched again: %d launches", f.Launches())
	}
	for _, bad := range []fake.GroupRequest{
		{Options: req.Options, TargetCapacity: 0},
		{Options: req.Options, TargetCapacity: 2, MinTargetCapacity: 3},
		{TargetCapacity: 1},
	} {
		if _, err := f.LaunchGroup(context.Background(), bad); err == nil || fake.IsGroupCapacityError(err) {
			t.Errorf("LaunchGroup(%+v) = %v, want a validation error", bad, err)
		}
	}
	f.InjectAPIError("LaunchGroup", errors.New("throttled"))
	if _, err := f.LaunchGroup(context.Background(), fake.GroupRequest{Options: req.Options, TargetCapacity: 1}); err == nil {
		t.Fatal("injected API error not returned")
	}
	if launched, refused := f.GroupCounts(); launched != 1 || refused != 0 {
		t.Errorf("GroupCounts = %d, %d; want 1, 0", launched, refused)
	}
}
