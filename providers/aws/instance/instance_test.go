package instance_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/samber/lo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/ami"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/capacityreservation"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instance"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instancetype"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/launchtemplate"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/subnet"
)

type env struct {
	ctx   context.Context
	srv   *fakeaws.Server
	clock *clocktesting.FakeClock
	p     *instance.Provider
	nc    *v1alpha1.GPUNodeClass
}

// newEnv assembles the instance provider from the real subnet, image,
// instance type, reservation and launch template providers (as
// aws.NewBackend does) and resolves a node class with them.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := awstest.NewEnv(t, awstest.Inventory())
	srv, clk, clients, base := e.Server, e.Clock, e.Clients, e.Catalog
	call := 5 * time.Second
	subnets := subnet.NewProvider(subnet.Options{EC2: clients.EC2, CallTimeout: call})
	types := instancetype.NewProvider(instancetype.Options{EC2: clients.EC2, Entries: base, Clock: clk, Refresh: time.Hour, RefreshRetry: time.Minute, CallTimeout: call})
	images := ami.NewProvider(ami.Options{EC2: clients.EC2, SSM: clients.SSM, KubernetesVersion: "1.33", InstanceTypes: types, Clock: clk,
		Refresh: time.Hour, RefreshRetry: time.Minute, CallTimeout: call})
	reservations := capacityreservation.NewProvider(capacityreservation.Options{EC2: clients.EC2, Clock: clk, Refresh: time.Minute, RefreshRetry: time.Minute, CallTimeout: call})
	templates := launchtemplate.NewProvider(launchtemplate.Options{EC2: clients.EC2, ClusterName: awstest.Cluster, ClusterEndpoint: "https://api.unit.example",
		ClusterCABundle: "Q0E=", Images: images, Clock: clk, TTL: 10 * time.Minute, CallTimeout: call})
	p := instance.NewProvider(instance.Options{EC2: clients.EC2, ClusterName: awstest.Cluster, Clock: clk, Subnets: subnets, Templates: templates,
		InstanceTypes: types, Reservations: reservations, MaxConcurrentLaunches: 4, CallTimeout: call, LaunchTimeout: time.Minute, BatchIdle: -1})

	nc := awstest.NodeClass()
	found, err := subnets.List(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	nc.Status.Subnets = lo.Map(found, func(s subnet.Subnet, _ int) v1alpha1.Subnet { return v1alpha1.Subnet{ID: s.ID, Zone: s.Zone} })
	if nc.Status.AMIs, _, err = images.List(ctx, nc); err != nil {
		t.Fatal(err)
	}
	nc.Status.SecurityGroups = []v1alpha1.SecurityGroup{{ID: "sg-nodes"}}
	nc.Status.InstanceProfile = "profile"
	return &env{ctx: ctx, srv: srv, clock: clk, p: p, nc: nc}
}

func (e *env) request(name string, options ...cloudprovider.LaunchOption) *cloudprovider.LaunchRequest {
	return &cloudprovider.LaunchRequest{
		NodeClaim: &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, UID: k8stypes.UID("uid-" + name), CreationTimestamp: metav1.NewTime(e.clock.Now().Add(time.Hour))}},
		NodeClass: e.nc, Options: options, ClientToken: "token-" + name,
		Tags: map[string]string{cloudprovider.TagNodeClaim: name, "Name": name, cloudprovider.TagCluster: awstest.Cluster},
	}
}

func od(typ, zone string) cloudprovider.LaunchOption {
	return cloudprovider.LaunchOption{InstanceType: typ, Zone: zone, CapacityType: karpv1.CapacityTypeOnDemand}
}

func TestLaunchTakesTheFirstOptionWithCapacity(t *testing.T) {
	e := newEnv(t)
	// The cheapest option (on-demand fleets take the lowest price) has no
	// capacity in either of the zone's subnets.
	e.srv.InsufficientCapacity(fakeaws.Offering{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", CapacityType: fakeaws.OnDemand}, "")
	res, err := e.p.Launch(e.ctx, e.request("a", od("g4dn.xlarge", "us-east-1a"), od("g6.xlarge", "us-east-1a")))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cloudprovider.LaunchOption{od("g4dn.xlarge", "us-east-1a")}, res.Refused); diff != "" {
		t.Errorf("refused (-want +got):\n%s", diff)
	}
	inst := res.Instance
	if inst == nil || inst.InstanceType != "g6.xlarge" || inst.Zone != "us-east-1a" || inst.ImageID != "ami-nvx86" || inst.Tags[cloudprovider.TagNodeClaim] != "a" {
		t.Fatalf("instance %+v", inst)
	}
	// It launched in the zone's subnet with the most free addresses.
	got, _ := lo.Find(e.srv.Instances(), func(i fakeaws.Instance) bool { return i.ID == inst.ID })
	if got.SubnetID != "subnet-a2" {
		t.Errorf("subnet %s, want subnet-a2 (most free addresses)", got.SubnetID)
	}
}

func TestLaunchRefusesEveryOptionWithoutCapacity(t *testing.T) {
	e := newEnv(t)
	e.srv.InsufficientCapacity(fakeaws.Offering{InstanceType: "g6.xlarge", Zone: "us-east-1b", CapacityType: fakeaws.OnDemand}, "")
	res, err := e.p.Launch(e.ctx, e.request("a", od("g6.xlarge", "us-east-1b")))
	if err != nil || res.Instance != nil || len(res.Refused) != 1 {
		t.Fatalf("Launch = %+v, %v; want the option refused, no error", res, err)
	}
}

func TestLaunchNeedsAResolvedNodeClass(t *testing.T) {
	e := newEnv(t)
	e.nc.Status.SecurityGroups = nil
	if diff := cmp.Diff([]string{"security groups"}, instance.Unresolved(e.nc)); diff != "" {
		t.Errorf("Unresolved (-want +got):\n%s", diff)
	}
	if _, err := e.p.Launch(e.ctx, e.request("a", od("g6.xlarge", "us-east-1a"))); err == nil {
		t.Fatal("launched with an unresolved node class")
	}
	if n := len(e.srv.Requests("CreateFleet")); n != 0 {
		t.Errorf("%d CreateFleet calls, want 0", n)
	}
}

func TestGetListTagTerminate(t *testing.T) {
	e := newEnv(t)
	res, err := e.p.Launch(e.ctx, e.request("a", od("g4dn.xlarge", "us-east-1b")))
	if err != nil || res.Instance == nil {
		t.Fatalf("Launch: %+v, %v", res, err)
	}
	id := res.Instance.ID
	// An instance of the cluster not tagged with a NodeClaim (a batched
	// launch whose tagging failed) and one of another cluster.
	untagged := e.srv.AddInstance(fakeaws.Instance{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", State: "running", Tags: map[string]string{cloudprovider.TagCluster: awstest.Cluster}})
	e.srv.AddInstance(fakeaws.Instance{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", State: "running", Tags: map[string]string{cloudprovider.TagCluster: "other", cloudprovider.TagNodeClaim: "x"}})
	ids := func(list func(context.Context) ([]*cloudprovider.Instance, error)) []string {
		t.Helper()
		insts, err := list(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return lo.Map(insts, func(i *cloudprovider.Instance, _ int) string { return i.ID })
	}
	if diff := cmp.Diff([]string{id}, ids(e.p.List)); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if got := ids(e.p.ListAll); !cmp.Equal(got, lo.Ternary(id < untagged, []string{id, untagged}, []string{untagged, id})) {
		t.Errorf("ListAll = %v, want %s and %s", got, id, untagged)
	}
	if err := e.p.Tag(e.ctx, untagged, map[string]string{cloudprovider.TagNodeClaim: "b"}); err != nil {
		t.Fatal(err)
	}
	if got := ids(e.p.List); len(got) != 2 {
		t.Errorf("List after tagging = %v, want both of the cluster's", got)
	}
	inst, err := e.p.Get(e.ctx, id)
	if err != nil || inst.InstanceType != "g4dn.xlarge" || inst.Zone != "us-east-1b" || inst.CapacityType != karpv1.CapacityTypeOnDemand {
		t.Fatalf("Get = %+v, %v", inst, err)
	}
	if err := e.p.Terminate(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	e.clock.Step(time.Minute) // shutting-down, then terminated
	if _, err := e.p.Get(e.ctx, id); err == nil {
		if inst, _ := e.p.Get(e.ctx, id); inst.State != cloudprovider.InstanceStateTerminated {
			t.Errorf("state after Terminate = %s", inst.State)
		}
	}
	if err := e.p.Terminate(e.ctx, id); !cloudprovider.IsNotFound(err) {
		t.Errorf("second Terminate = %v, want NotFound", err)
	}
	if _, err := e.p.Get(e.ctx, "i-doesnotexist"); !cloudprovider.IsNotFound(err) {
		t.Errorf("Get of an unknown instance = %v, want NotFound", err)
	}
}
