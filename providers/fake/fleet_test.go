package fake_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

func opt(it, zone, ct string) cloudprovider.LaunchOption {
	return cloudprovider.LaunchOption{InstanceType: it, Zone: zone, CapacityType: ct}
}

func TestLaunchWalksOptionsAndReportsRefusals(t *testing.T) {
	f := fake.NewFleet(fake.Options{Capacity: map[fake.Offering]int{{"g6.xlarge", "us-east-1a", "on-demand"}: 1}})
	ctx := context.Background()
	req := &cloudprovider.LaunchRequest{Options: []cloudprovider.LaunchOption{opt("g6.xlarge", "us-east-1a", "on-demand"), opt("g5.xlarge", "us-east-1a", "on-demand")}}
	tests := []struct {
		name        string
		wantType    string
		wantRefused int
	}{
		{"first option has room", "g6.xlarge", 0},
		{"first option full: falls to the second and reports the first", "g5.xlarge", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.Launch(ctx, req)
			if err != nil || res.Instance == nil {
				t.Fatalf("Launch = %+v, %v", res, err)
			}
			if res.Instance.InstanceType != tt.wantType || len(res.Refused) != tt.wantRefused {
				t.Errorf("got %s with %d refused, want %s with %d", res.Instance.InstanceType, len(res.Refused), tt.wantType, tt.wantRefused)
			}
		})
	}
}

func TestLaunchIsIdempotentPerClientToken(t *testing.T) {
	f := fake.NewFleet(fake.Options{})
	req := &cloudprovider.LaunchRequest{ClientToken: "nodeclaim-uid", Options: []cloudprovider.LaunchOption{opt("g6.xlarge", "us-east-1a", "on-demand")}}
	a, _ := f.Launch(context.Background(), req)
	b, _ := f.Launch(context.Background(), req)
	if a.Instance.ID != b.Instance.ID || f.Launches() != 1 {
		t.Fatalf("a retried launch with the same token created a second instance (%s, %s, %d launches)", a.Instance.ID, b.Instance.ID, f.Launches())
	}
}

func TestLaunchLatencyAndTermination(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	f := fake.NewFleet(fake.Options{Clock: clk, LaunchLatency: time.Minute})
	ctx := context.Background()
	res, _ := f.Launch(ctx, &cloudprovider.LaunchRequest{Options: []cloudprovider.LaunchOption{opt("g6.xlarge", "us-east-1a", "on-demand")}})
	if got, _ := f.Get(ctx, res.Instance.ID); got.State != cloudprovider.InstanceStatePending {
		t.Errorf("state = %s before launch latency, want pending", got.State)
	}
	clk.Step(time.Minute)
	if got, _ := f.Get(ctx, res.Instance.ID); got.State != cloudprovider.InstanceStateRunning {
		t.Errorf("state = %s after launch latency, want running", got.State)
	}
	if err := f.Terminate(ctx, res.Instance.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.Terminate(ctx, res.Instance.ID); !cloudprovider.IsNotFound(err) {
		t.Errorf("second terminate = %v, want not found", err)
	}
	if _, err := f.Get(ctx, "i-unknown"); !cloudprovider.IsNotFound(err) {
		t.Errorf("Get unknown = %v, want not found", err)
	}
}

func TestSpotInterruptionsAreDeterministicUnderSeed(t *testing.T) {
	run := func(seed int64) []string {
		f := fake.NewFleet(fake.Options{Seed: seed, CapacityTypes: []string{karpv1.CapacityTypeSpot}})
		for i := 0; i < 10; i++ {
			if _, err := f.Launch(context.Background(), &cloudprovider.LaunchRequest{Options: []cloudprovider.LaunchOption{opt("g6.xlarge", "us-east-1a", "spot")}}); err != nil {
				t.Fatal(err)
			}
		}
		return f.InterruptRandom(3)
	}
	a, b := run(7), run(7)
	if len(a) != 3 || !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed gave %v and %v", a, b)
	}
}

func TestInjectedAPIErrorsAreConsumedInOrder(t *testing.T) {
	f := fake.NewFleet(fake.Options{})
	f.InjectAPIError("List", context.DeadlineExceeded)
	if _, err := f.List(context.Background()); err == nil {
		t.Fatal("expected the injected error")
	}
	if _, err := f.List(context.Background()); err != nil {
		t.Fatalf("error not consumed: %v", err)
	}
}

func TestProviderIDRoundTrip(t *testing.T) {
	f := fake.NewFleet(fake.Options{})
	id, err := f.InstanceID(f.ProviderID(&cloudprovider.Instance{ID: "i-1", Zone: "us-east-1a"}))
	if err != nil || id != "i-1" {
		t.Fatalf("round trip = %q, %v", id, err)
	}
	for _, bad := range []string{"", "aws:///us-east-1a/i-1", "fake://us-east-1a/"} {
		if _, err := f.InstanceID(bad); err == nil {
			t.Errorf("InstanceID(%q) accepted", bad)
		}
	}
}

// Spot instances get an interruption time drawn at the configured rate:
// the mean lifetime of many is 1/rate days, on-demand ones get none, and a
// rate changes no instance ID (its own random stream).
func TestSpotInterruptionSchedule(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	launch := func(rate float64, ct string, n int) (*fake.Fleet, []string) {
		f := fake.NewFleet(fake.Options{Clock: clk, Seed: 3, CapacityTypes: []string{"on-demand", "spot"}, SpotInterruptionsPerDay: rate})
		var ids []string
		for i := 0; i < n; i++ {
			res, err := f.Launch(context.Background(), &cloudprovider.LaunchRequest{Options: []cloudprovider.LaunchOption{{InstanceType: "g5.xlarge", Zone: "us-east-1a", CapacityType: ct}}})
			if err != nil || res.Instance == nil {
				t.Fatalf("launch: %v", err)
			}
			ids = append(ids, res.Instance.ID)
		}
		return f, ids
	}
	f, spotIDs := launch(0.5, "spot", 2000)
	sched := f.SpotInterruptions()
	if len(sched) != 2000 {
		t.Fatalf("%d interruptions scheduled for 2000 spot instances", len(sched))
	}
	var sum time.Duration
	for i, s := range sched {
		sum += s.At.Sub(time.Unix(0, 0))
		if i > 0 && s.At.Before(sched[i-1].At) {
			t.Fatalf("not sorted by time")
		}
	}
	// Mean of 2000 exponentials with mean 2 days: within 10% (5 sigma is
	// 11%, the seed is fixed).
	if mean := sum.Hours() / 24 / 2000; math.Abs(mean-2) > 0.2 {
		t.Errorf("mean lifetime %.3f days, want about 2 (0.5 interruptions per day)", mean)
	}
	if !f.Interrupt(sched[0].InstanceID) || len(f.SpotInterruptions()) != 1999 {
		t.Errorf("a terminated instance stays scheduled")
	}
	od, _ := launch(0.5, "on-demand", 10)
	if n := len(od.SpotInterruptions()); n != 0 {
		t.Errorf("%d interruptions for on-demand instances", n)
	}
	_, noRate := launch(0, "spot", 2000)
	if fmt.Sprint(noRate) != fmt.Sprint(spotIDs) {
		t.Errorf("the interruption rate changed instance IDs")
	}
}
