package orphans_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakecr "sigs.k8s.io/controller-runtime/pkg/client/fake"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

var epoch = time.Unix(1_700_000_000, 0)

// world is a fake fleet with instances launched at chosen ages, and the
// NodeClaims that refer to them.
type world struct {
	ctx    context.Context
	clk    *clocktesting.FakeClock
	fleet  *fake.Fleet
	ids    map[string]string // instance label -> ID
	claims []client.Object
}

func newWorld() *world {
	clk := clocktesting.NewFakeClock(epoch)
	return &world{ctx: context.Background(), clk: clk, fleet: fake.NewFleet(fake.Options{Clock: clk}), ids: map[string]string{}}
}

// launch starts an instance tagged with nodeClaim ("" for none) at the
// current fake time.
func (w *world) launch(t *testing.T, label, nodeClaim string) string {
	t.Helper()
	tags := map[string]string{}
	if nodeClaim != "" {
		tags[cloudprovider.TagNodeClaim] = nodeClaim
	}
	res, err := w.fleet.Launch(w.ctx, &cloudprovider.LaunchRequest{ClientToken: label, Tags: tags,
		Options: []cloudprovider.LaunchOption{{InstanceType: "g6.xlarge", Zone: "us-east-1a", CapacityType: karpv1.CapacityTypeOnDemand}}})
	if err != nil || res.Instance == nil {
		t.Fatalf("launching %s: %v", label, err)
	}
	w.ids[label] = res.Instance.ID
	return res.Instance.ID
}

// claim adds a NodeClaim named name that recorded the instance label ("" for
// one still launching).
func (w *world) claim(t *testing.T, name, label string) {
	t.Helper()
	nc := &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if label != "" {
		inst, err := w.fleet.Get(w.ctx, w.ids[label])
		if err != nil {
			t.Fatal(err)
		}
		nc.Status.ProviderID = w.fleet.ProviderID(inst)
	}
	w.claims = append(w.claims, nc)
}

func (w *world) kube() client.Client {
	return fakecr.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(w.claims...).Build()
}

func (w *world) labels(ids []string) []string {
	var out []string
	for label, id := range w.ids {
		if slices.Contains(ids, id) {
			out = append(out, label)
		}
	}
	slices.Sort(out)
	return out
}

func TestCollect(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup launches instances (old ones first, then the clock moves
		// past the grace period, then young ones) and adds NodeClaims.
		old, young    map[string]string // label -> NodeClaim tag
		claims        map[string]string // NodeClaim -> recorded instance label ("" = launching)
		wantCollected []string
	}{
		{name: "nothing to collect"},
		{name: "an old untagged instance is an orphan",
			old: map[string]string{"leaked": ""}, wantCollected: []string{"leaked"}},
		{name: "a young instance waits for the grace period",
			young: map[string]string{"young": ""}},
		{name: "an instance a NodeClaim recorded stays",
			old: map[string]string{"used": "nc-1"}, claims: map[string]string{"nc-1": "used"}},
		{name: "an instance tagged with a launching NodeClaim stays",
			old: map[string]string{"launching": "nc-1"}, claims: map[string]string{"nc-1": ""}},
		{name: "a NodeClaim's duplicate launch is an orphan",
			old: map[string]string{"used": "nc-1", "duplicate": "nc-1"}, claims: map[string]string{"nc-1": "used"}, wantCollected: []string{"duplicate"}},
		{name: "an instance whose NodeClaim is gone is an orphan",
			old: map[string]string{"gone": "nc-deleted", "used": "nc-1"}, claims: map[string]string{"nc-1": "used"}, wantCollected: []string{"gone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			for _, label := range slices.Sorted(maps.Keys(tc.old)) {
				w.launch(t, label, tc.old[label])
			}
			w.clk.Step(3 * time.Minute)
			for _, label := range slices.Sorted(maps.Keys(tc.young)) {
				w.launch(t, label, tc.young[label])
			}
			for _, name := range slices.Sorted(maps.Keys(tc.claims)) {
				w.claim(t, name, tc.claims[name])
			}
			c := orphans.NewController(w.fleet.OrphanOptions(orphans.Options{KubeClient: w.kube(), GracePeriod: 2 * time.Minute}))
			got, err := c.Collect(w.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if labels := w.labels(got); !slices.Equal(labels, tc.wantCollected) {
				t.Fatalf("collected %v, want %v", labels, tc.wantCollected)
			}
			for label, id := range w.ids {
				inst, err := w.fleet.Get(w.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if terminated := inst.State == cloudprovider.InstanceStateTerminated; terminated != slices.Contains(tc.wantCollected, label) {
					t.Errorf("instance %s terminated = %v", label, terminated)
				}
			}
			if !slices.Equal(w.labels(c.Collected()), tc.wantCollected) {
				t.Errorf("Collected() = %v, want %v", w.labels(c.Collected()), tc.wantCollected)
			}
		})
	}
}

// Retag repairs the NodeClaim tag of instances a NodeClaim recorded and
// leaves correct tags alone; without Retag nothing is tagged.
func TestRetag(t *testing.T) {
	w := newWorld()
	w.launch(t, "untagged", "")
	w.launch(t, "stale", "nc-old-name")
	w.launch(t, "correct", "nc-3")
	w.clk.Step(3 * time.Minute)
	w.claim(t, "nc-1", "untagged")
	w.claim(t, "nc-2", "stale")
	w.claim(t, "nc-3", "correct")
	kube := w.kube()
	var tagged []string
	retag := func(_ context.Context, id, nodeClaim string) error {
		tagged = append(tagged, id+"="+nodeClaim)
		return nil
	}
	c := orphans.NewController(w.fleet.OrphanOptions(orphans.Options{KubeClient: kube, Retag: retag}))
	if got, err := c.Collect(w.ctx); err != nil || len(got) != 0 {
		t.Fatalf("Collect = %v, %v; want nothing collected", got, err)
	}
	slices.Sort(tagged)
	want := []string{w.ids["stale"] + "=nc-2", w.ids["untagged"] + "=nc-1"}
	slices.Sort(want)
	if !slices.Equal(tagged, want) {
		t.Errorf("retagged %v, want %v", tagged, want)
	}

	failing := orphans.NewController(w.fleet.OrphanOptions(orphans.Options{KubeClient: kube,
		Retag: func(context.Context, string, string) error { return errors.New("tagging refused") }}))
	if _, err := failing.Collect(w.ctx); err == nil || !strings.Contains(err.Error(), "tagging refused") {
		t.Errorf("Collect with a failing Retag = %v, want the tagging error", err)
	}
}

// Sweep runs on every pass after the orphans are terminated (so what they
// held is free) and its error is reported with the pass's.
func TestSweep(t *testing.T) {
	w := newWorld()
	w.launch(t, "leaked", "")
	w.clk.Step(3 * time.Minute)
	var states []cloudprovider.InstanceState
	sweep := func(ctx context.Context) error {
		inst, err := w.fleet.Get(ctx, w.ids["leaked"])
		if err != nil {
			return err
		}
		states = append(states, inst.State)
		return errors.New("group in a bad state")
	}
	c := orphans.NewController(w.fleet.OrphanOptions(orphans.Options{KubeClient: w.kube(), Sweep: sweep}))
	got, err := c.Collect(w.ctx)
	if err == nil || !strings.Contains(err.Error(), "group in a bad state") {
		t.Errorf("Collect error = %v, want the sweep's", err)
	}
	if len(got) != 1 {
		t.Errorf("collected %v, want the orphan despite the sweep's error", got)
	}
	if _, err := c.Collect(w.ctx); err == nil {
		t.Error("second pass: no sweep error")
	}
	if !slices.Equal(states, []cloudprovider.InstanceState{cloudprovider.InstanceStateTerminated, cloudprovider.InstanceStateTerminated}) {
		t.Errorf("sweep saw the orphan %v, want terminated on each of two passes", states)
	}
}

// Errors from the cloud are reported, never swallowed; an orphan already
// gone counts as collected.
func TestCollectErrors(t *testing.T) {
	for _, tc := range []struct {
		name          string
		op            string
		err           error
		wantErr       string
		wantCollected int
	}{
		{"list fails", "List", errors.New("throttled"), "listing instances", 0},
		{"terminate fails", "Terminate", errors.New("unauthorized"), "terminating orphan", 0},
		{"orphan already gone", "Terminate", &cloudprovider.NotFoundError{ID: "x"}, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			w.launch(t, "leaked", "")
			w.clk.Step(3 * time.Minute)
			w.fleet.InjectAPIError(tc.op, tc.err)
			c := orphans.NewController(w.fleet.OrphanOptions(orphans.Options{KubeClient: w.kube()}))
			got, err := c.Collect(w.ctx)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Collect error = %v, want %q", err, tc.wantErr)
			}
			if len(got) != tc.wantCollected {
				t.Errorf("collected %v, want %d", got, tc.wantCollected)
			}
		})
	}
}

// Reconcile requeues after the interval and defaults it.
func TestReconcileInterval(t *testing.T) {
	w := newWorld()
	for _, tc := range []struct {
		interval, want time.Duration
	}{{0, orphans.DefaultInterval}, {5 * time.Second, 5 * time.Second}} {
		c := orphans.NewController(w.fleet.OrphanOptions(orphans.Options{KubeClient: w.kube(), Interval: tc.interval}))
		res, err := c.Reconcile(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter != tc.want {
			t.Errorf("Interval %s: RequeueAfter = %s, want %s", tc.interval, res.RequeueAfter, tc.want)
		}
	}
}
