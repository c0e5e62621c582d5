package fake_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/samber/lo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

// gangRequests are the launch requests of a gang attempt's NodeClaims, as
// the provider makes them: labelled with the gang, each with its own
// NodeClaim tag and client token.
func gangRequests(gang string, size, members int, nodeClass *v1alpha1.GPUNodeClass, options ...cloudprovider.LaunchOption) []*cloudprovider.LaunchRequest {
	var out []*cloudprovider.LaunchRequest
	for i := range members {
		name := fmt.Sprintf("%s-%d", gang, i)
		nc := &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name),
			Labels:      map[string]string{cloudprovider.LabelGangRequest: gang, cloudprovider.LabelGangAttempt: "1"},
			Annotations: map[string]string{cloudprovider.AnnotationGangSize: strconv.Itoa(size)}}}
		out = append(out, &cloudprovider.LaunchRequest{NodeClaim: nc, NodeClass: nodeClass, Options: options,
			Tags: map[string]string{cloudprovider.TagNodeClaim: name, cloudprovider.TagCluster: "test"}, ClientToken: string(nc.UID)})
	}
	return out
}

type launchOutcome struct {
	res *cloudprovider.LaunchResult
	err error
}

// launchAll launches every request concurrently, as core's NodeClaim
// lifecycle does.
func launchAll(f *fake.Fleet, reqs []*cloudprovider.LaunchRequest) []launchOutcome {
	out := make([]launchOutcome, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			res, err := f.Launch(context.Background(), r)
			out[i] = launchOutcome{res, err}
		})
	}
	wg.Wait()
	return out
}

func TestGangLaunchAllOrNothing(t *testing.T) {
	const od = karpv1.CapacityTypeOnDemand
	p4dA, p4dB := opt("p4d.24xlarge", "us-east-1a", od), opt("p4d.24xlarge", "us-east-1b", od)
	g6A := opt("g6.xlarge", "us-east-1a", od)
	named := &v1alpha1.GPUNodeClass{}
	named.Spec.Gang = v1alpha1.GangOptions{PlacementGroup: v1alpha1.GangPlacementCluster, PlacementGroupName: lo.ToPtr("team-pg")}
	none := &v1alpha1.GPUNodeClass{}
	none.Spec.Gang.PlacementGroup = v1alpha1.GangPlacementNone
	gangPG := fake.GangPlacementGroupName(cloudprovider.Gang{Key: "gang/1"})
	for _, tc := range []struct {
		name      string
		options   []cloudprovider.LaunchOption
		nodeClass *v1alpha1.GPUNodeClass
		capacity  map[fake.Offering]int
		placement map[string]int
		wantZone  string // "" : refused whole
	}{
		{name: "the whole gang in the one zone that holds it",
			options: []cloudprovider.LaunchOption{p4dA, p4dB}, capacity: map[fake.Offering]int{{"p4d.24xlarge", "us-east-1a", od}: 3}, wantZone: "us-east-1b"},
		{name: "no zone holds the gang: refused whole, nothing launched",
			options: []cloudprovider.LaunchOption{p4dA, p4dB}, capacity: map[fake.Offering]int{{"p4d.24xlarge", "us-east-1a", od}: 3, {"p4d.24xlarge", "us-east-1b", od}: 2}},
		{name: "the gang's own placement group (EFA types) is full: refused whole",
			options: []cloudprovider.LaunchOption{p4dA}, placement: map[string]int{gangPG: 3}},
		{name: "the node class's placement group is full: refused whole",
			options: []cloudprovider.LaunchOption{p4dA}, nodeClass: named, placement: map[string]int{"team-pg": 2}},
		{name: "placement None: a full gang group does not bind",
			options: []cloudprovider.LaunchOption{p4dA}, nodeClass: none, placement: map[string]int{gangPG: 0}, wantZone: "us-east-1a"},
		{name: "no EFA: no placement group of the gang's own",
			options: []cloudprovider.LaunchOption{g6A}, placement: map[string]int{gangPG: 0}, wantZone: "us-east-1a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fake.NewFleet(fake.Options{Seed: 1, Capacity: tc.capacity, GangWait: time.Minute})
			for pg, n := range tc.placement {
				f.SetPlacementGroupCapacity(pg, n)
			}
			reqs := gangRequests("gang", 4, 4, tc.nodeClass, tc.options...)
			got := launchAll(f, reqs)
			launched, refused := f.GroupCounts()
			if tc.wantZone == "" {
				for i, o := range got {
					if o.err != nil || o.res == nil || o.res.Instance != nil {
						t.Fatalf("member %d: %+v, %v; want refused for capacity", i, o.res, o.err)
					}
					if !slices.Equal(o.res.Refused, tc.options) {
						t.Errorf("member %d refused %v, want every option %v", i, o.res.Refused, tc.options)
					}
				}
				if n := len(running(t, f)); n != 0 {
					t.Fatalf("%d instances running after a refused gang", n)
				}
				if launched != 0 || refused != 1 {
					t.Errorf("groups launched %d, refused %d; want one refusal", launched, refused)
				}
				return
			}
			ids := map[string]bool{}
			for i, o := range got {
				if o.err != nil || o.res == nil || o.res.Instance == nil {
					t.Fatalf("member %d: %+v, %v; want an instance", i, o.res, o.err)
				}
				inst := o.res.Instance
				if inst.Zone != tc.wantZone {
					t.Errorf("member %d in %s, want %s", i, inst.Zone, tc.wantZone)
				}
				if inst.Tags[cloudprovider.TagNodeClaim] != reqs[i].NodeClaim.Name {
					t.Errorf("member %d's instance tagged %q, want its own NodeClaim %q", i, inst.Tags[cloudprovider.TagNodeClaim], reqs[i].NodeClaim.Name)
				}
				ids[inst.ID] = true
			}
			if len(ids) != 4 || len(running(t, f)) != 4 {
				t.Fatalf("%d distinct instances, %d running; want 4", len(ids), len(running(t, f)))
			}
			if launched != 1 || refused != 0 {
				t.Errorf("groups launched %d, refused %d; want one group for the gang", launched, refused)
			}
			// A member's launch retried (its client token) is its instance.
			again, err := f.Launch(context.Background(), reqs[2])
			if err != nil || again.Instance == nil || again.Instance.ID != got[2].res.Instance.ID {
				t.Errorf("relaunching member 2 = %+v, %v; want its instance %s", again, err, got[2].res.Instance.ID)
			}
			if len(running(t, f)) != 4 {
				t.Errorf("a retried member launched another instance")
			}
		})
	}
}

// A gang tries reserved capacity first, as one group; refused whole there,
// it falls to on-demand together.
func TestGangLaunchReservedFirst(t *testing.T) {
	const od, rsv = karpv1.CapacityTypeOnDemand, karpv1.CapacityTypeReserved
	reserved := cloudprovider.LaunchOption{InstanceType: "p5.48xlarge", Zone: "us-east-1a", CapacityType: rsv, ReservationID: "cr-1"}
	onDemand := opt("p5.48xlarge", "us-east-1a", od)
	for _, tc := range []struct {
		name     string
		reserved int
		wantType string
	}{
		{"the reservation holds the gang", 4, rsv},
		{"the reservation holds 3 of 4: the gang goes on-demand whole", 3, od},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fake.NewFleet(fake.Options{Seed: 1, GangWait: time.Minute,
				Reservations: []catalog.Reservation{{ID: "cr-1", InstanceType: "p5.48xlarge", Zone: "us-east-1a", Count: tc.reserved}}})
			got := launchAll(f, gangRequests("gang", 4, 4, nil, reserved, onDemand))
			for i, o := range got {
				if o.err != nil || o.res.Instance == nil {
					t.Fatalf("member %d: %+v, %v", i, o.res, o.err)
				}
				if o.res.Instance.CapacityType != tc.wantType {
					t.Errorf("member %d launched %s, want %s", i, o.res.Instance.CapacityType, tc.wantType)
				}
				if refusedReserved := slices.Contains(o.res.Refused, reserved); refusedReserved != (tc.wantType == od) {
					t.Errorf("member %d: reserved option refused = %v", i, refusedReserved)
				}
			}
			if n := len(running(t, f)); n != 4 {
				t.Fatalf("%d instances running, want 4 (nothing partial of the reserved try)", n)
			}
		})
	}
}

// Members that never all arrive launch, after the wait, as a gang of
// their own; without GangWait members launch one by one.
func TestGangLaunchStragglersAndOptIn(t *testing.T) {
	p4d := opt("p4d.24xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand)
	f := fake.NewFleet(fake.Options{Seed: 1, GangWait: 100 * time.Millisecond})
	start := time.Now()
	got := launchAll(f, gangRequests("gang", 4, 2, nil, p4d))
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("two of four members launched after %s, before the gang's wait", time.Since(start))
	}
	for i, o := range got {
		if o.err != nil || o.res.Instance == nil {
			t.Fatalf("member %d: %+v, %v", i, o.res, o.err)
		}
	}
	if launched, _ := f.GroupCounts(); launched != 1 {
		t.Errorf("%d groups launched, want the two members as one", launched)
	}

	off := fake.NewFleet(fake.Options{Seed: 1})
	for i, o := range launchAll(off, gangRequests("gang", 4, 4, nil, p4d)) {
		if o.err != nil || o.res.Instance == nil {
			t.Fatalf("member %d without GangWait: %+v, %v", i, o.res, o.err)
		}
	}
	if launched, _ := off.GroupCounts(); launched != 0 {
		t.Errorf("without GangWait %d group launches, want members one by one", launched)
	}
	if n := len(running(t, off)); n != 4 {
		t.Errorf("%d running without GangWait, want 4", n)
	}
}

// waits reports each gang member that waits in the fleet's gather.
type waits chan struct{}

func (w waits) Waiting() { w <- struct{}{} }
func (w waits) Resumed() {}

// FlushGangs launches the members that wait, as one group, at once (not
// after GangWait), and which member gets which instance does not depend
// on the order they came in: a caller that hands members over itself (the
// simulator) gets repeatable runs.
func TestFlushGangs(t *testing.T) {
	p4d := opt("p4d.24xlarge", "us-east-1a", karpv1.CapacityTypeOnDemand)
	launch := func(reverse bool) map[string]string {
		f := fake.NewFleet(fake.Options{Seed: 1, GangWait: time.Hour})
		reqs := gangRequests("gang", 4, 3, nil, p4d)
		if reverse {
			slices.Reverse(reqs)
		}
		w := make(waits, len(reqs))
		ctx := gather.WithObserver(context.Background(), w)
		out := make(chan launchOutcome, len(reqs))
		for _, r := range reqs {
			go func() {
				res, err := f.Launch(ctx, r)
				out <- launchOutcome{res, err}
			}()
			<-w // one after another: each waits before the next comes
		}
		start := time.Now()
		f.FlushGangs()
		got := map[string]string{}
		for range reqs {
			o := <-out
			if o.err != nil || o.res.Instance == nil {
				t.Fatalf("member: %+v, %v", o.res, o.err)
			}
			got[o.res.Instance.Tags[cloudprovider.TagNodeClaim]] = o.res.Instance.ID
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("flushed members answered after %s", d)
		}
		if launched, _ := f.GroupCounts(); launched != 1 {
			t.Errorf("%d group launches, want the 3 waiting members as one", launched)
		}
		return got
	}
	inOrder, reversed := launch(false), launch(true)
	if len(inOrder) != 3 || !maps.Equal(inOrder, reversed) {
		t.Errorf("instances by member: %v in order, %v reversed; want 3, the same", inOrder, reversed)
	}
	fake.NewFleet(fake.Options{Seed: 1}).FlushGangs() // without GangWait: nothing to flush
}
