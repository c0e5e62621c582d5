package aws_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

// restartEnv is a fake endpoint and API server shared by successive
// controller processes (chaosStacks).
type restartEnv struct {
	t    *testing.T
	clk  *clocktesting.FakeClock
	srv  *fakeaws.Server
	kube client.Client
}

func newRestartEnv(t *testing.T) (*restartEnv, *chaosStack) {
	clk := clocktesting.NewFakeClock(epoch)
	srv := fakeaws.New(inventory())
	t.Cleanup(srv.Close)
	srv.SetClock(clk.Now)
	re := &restartEnv{t: t, clk: clk, srv: srv, kube: fake.NewClientBuilder().WithStatusSubresource(&v1alpha1.GPUNodeClass{}).Build()}
	st := newChaosStack(t, 1, srv, clk, re.kube)
	(&env{t: t, ctx: context.Background(), clock: clk, srv: srv, backend: st.backend, kube: re.kube, cp: st.cp}).resolved(nodeClass())
	return re, st
}

// stored creates a NodeClaim in the API server, stamped now.
func (re *restartEnv) stored(nc *karpv1.NodeClaim) *karpv1.NodeClaim {
	nc.CreationTimestamp = metav1.NewTime(re.clk.Now())
	if err := re.kube.Create(context.Background(), nc.DeepCopy()); err != nil {
		re.t.Fatal(err)
	}
	return nc
}

// restart kills the process st and starts the next one, 30 seconds later,
// on the same endpoint and API server.
func (re *restartEnv) restart(st *chaosStack) *chaosStack {
	st.dead.Store(true)
	re.clk.Step(30 * time.Second)
	return newChaosStack(re.t, st.n+1, re.srv, re.clk, re.kube)
}

// launch runs the process's Create for a copy of nc, failing the test on
// an error.
func (st *chaosStack) launch(t *testing.T, nc *karpv1.NodeClaim) *karpv1.NodeClaim {
	t.Helper()
	out, err := st.cp.Create(context.Background(), nc.DeepCopy())
	if err != nil {
		t.Fatalf("Create %s: %v", nc.Name, err)
	}
	return out
}

func liveTagged(srv *fakeaws.Server, name string) []fakeaws.Instance {
	return lo.Filter(srv.Instances(), func(i fakeaws.Instance, _ int) bool {
		return i.Tags[gpucp.TagNodeClaim] == name && (i.State == "pending" || i.State == "running")
	})
}

// A controller dies after a batched launch and before the NodeClaims'
// status updates. The next process re-creates one of them alone: the batch's
// client token is not its own, yet it gets the instance already launched.
func TestRecreateAfterRestartReturnsTheBatchedInstance(t *testing.T) {
	re, st := newRestartEnv(t)
	odG4 := []karpv1.NodeSelectorRequirementWithMinValues{
		req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand),
		req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "g4dn.xlarge"),
	}
	a, b := re.stored(claim("a", 1, odG4...)), re.stored(claim("b", 1, odG4...))
	got := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nc := range []*karpv1.NodeClaim{a, b} {
		wg.Go(func() {
			out, err := st.cp.Create(context.Background(), nc.DeepCopy())
			if err != nil {
				t.Errorf("Create %s: %v", nc.Name, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			got[nc.Name] = out.Status.ProviderID
		})
	}
	wg.Wait()
	fleets := re.srv.Requests("CreateFleet")
	if len(fleets) != 1 || fleets[0].Form.Get("TargetCapacitySpecification.TotalTargetCapacity") != "2" {
		t.Fatalf("%d CreateFleet requests, want one batch of 2", len(fleets))
	}
	// The process dies; neither result was recorded.
	st2 := re.restart(st)
	out := st2.launch(t, a)
	if out.Status.ProviderID != got["a"] {
		t.Errorf("re-created a on %s, want the instance launched before the restart, %s", out.Status.ProviderID, got["a"])
	}
	if n := len(re.srv.Requests("CreateFleet")); n != 1 {
		t.Errorf("%d CreateFleet requests after the restart, want none", n-1)
	}
	if n := len(liveTagged(re.srv, "a")); n != 1 {
		t.Errorf("%d live instances tagged a, want 1", n)
	}
	// A NodeClaim created well after the process started is not looked up.
	re.clk.Step(awsbackend.RestartLookupWindow + time.Second)
	c := re.stored(claim("c", 1, odG4...))
	before := len(re.srv.Requests("DescribeInstances"))
	st2.launch(t, c)
	if n := len(re.srv.Requests("DescribeInstances")) - before; n != 0 {
		t.Errorf("a new NodeClaim's launch described instances %d times, want 0", n)
	}
}

// After a restart, the instance found for a NodeClaim is on an offering the
// provider no longer offers: the last seat of a reservation, which the
// instance itself took. The provider only accepts instances on its options,
// so the instance is terminated and the NodeClaim launched anew; never two.
func TestRecreateAfterRestartOnAFullReservation(t *testing.T) {
	re, st := newRestartEnv(t)
	r := re.stored(claim("r", 1, req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "g6.xlarge")))
	first := st.launch(t, r)
	if first.Labels[karpv1.CapacityTypeLabelKey] != karpv1.CapacityTypeReserved {
		t.Fatalf("first launch %v, want the ODCR", first.Labels)
	}
	second := re.restart(st).launch(t, r)
	live := liveTagged(re.srv, "r")
	if len(live) != 1 || second.Status.ProviderID == first.Status.ProviderID {
		t.Errorf("after the restart: %d live instances tagged r, launched on %s (first %s); want one new instance", len(live), second.Status.ProviderID, first.Status.ProviderID)
	}
	if res, _ := re.srv.Reservation("cr-odcr"); res.Available != 1 {
		t.Errorf("reservation has %d seats available, want the terminated instance's seat back (1)", res.Available)
	}
}

// The collector: a duplicate of a NodeClaim that recorded another instance
// goes; an instance of a NodeClaim still launching stays; an instance a
// NodeClaim uses but whose NodeClaim tag was lost is tagged again.
func TestCollectOrphansDuplicatesAndLostTags(t *testing.T) {
	e := resolvedEnv(t)
	old := epoch.Add(-10 * time.Minute)
	add := func(tags map[string]string) string {
		return e.srv.AddInstance(fakeaws.Instance{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", LaunchTime: old,
			Tags: lo.Assign(map[string]string{gpucp.TagCluster: cluster}, tags)})
	}
	used := add(map[string]string{gpucp.TagNodeClaim: "dup"})
	duplicate := add(map[string]string{gpucp.TagNodeClaim: "dup"})
	launching := add(map[string]string{gpucp.TagNodeClaim: "launching"})
	untagged := add(nil)
	for name, id := range map[string]string{"dup": used, "launching": "", "untagged": untagged} {
		nc := claim(name, 1)
		if id != "" {
			nc.Status.ProviderID = "aws:///us-east-1a/" + id
		}
		if err := e.kube.Create(e.ctx, nc); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.collectOrphans(gpucp.DefaultOrphanGracePeriod)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{duplicate}) {
		t.Errorf("collected %v, want only the duplicate %s (used %s, launching %s, untagged %s stay)", got, duplicate, used, launching, untagged)
	}
	for _, i := range e.srv.Instances() {
		if i.ID == untagged && (i.Tags[gpucp.TagNodeClaim] != "untagged" || i.Tags["Name"] != "untagged") {
			t.Errorf("instance %s used by NodeClaim untagged has tags %v", i.ID, i.Tags)
		}
	}
	list, err := e.backend.List(e.ctx)
	if err != nil || !lo.ContainsBy(list, func(i *gpucp.Instance) bool { return i.ID == untagged }) {
		t.Errorf("List after re-tagging = %d instances, %v; want %s among them", len(list), err, untagged)
	}
}
