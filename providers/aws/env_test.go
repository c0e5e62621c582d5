package aws_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
	"github.com/karpenter-gpu/karpenter-gpu/test/awsenv"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

const (
	k8sVersion = "1.33"
	cluster    = awstest.Cluster
	brNVx86    = "/aws/service/bottlerocket/aws-k8s-1.33-nvidia/x86_64/latest/image_id"
)

var epoch = awstest.Epoch

// inventory is awstest's small us-east-1 grown for the whole provider: a
// third zone (subnet-c in 1c, g4dn.xlarge spot there), g6.xlarge spot in 1a,
// g5.xlarge in 1b too, p5.48xlarge with a capacity block in 1a (and no
// other reservation but the untagged ODCR for g6.xlarge in 1b), the EKS
// images under their published names plus a Bottlerocket and two custom
// ones, the embedded catalog's on-demand prices and only the role
// KarpenterNodeRole.
func inventory() fakeaws.Inventory {
	inv := awstest.Inventory()
	disc := map[string]string{"karpenter.sh/discovery": cluster}
	inv.Subnets = append(inv.Subnets, fakeaws.Subnet{ID: "subnet-c", Zone: "us-east-1c", ZoneID: "use1-az3", VPC: "vpc-1", FreeIPs: 300, Tags: disc})
	inv.Images = []fakeaws.Image{
		{ID: "ami-nvx86", Name: "amazon-eks-node-al2023-x86_64-nvidia-1.33-v20260301", Arch: "x86_64", Owner: "amazon", Created: epoch},
		{ID: "ami-nvarm", Name: "amazon-eks-node-al2023-arm64-nvidia-1.33-v20260301", Arch: "arm64", Owner: "amazon", Created: epoch},
		{ID: "ami-neuron", Name: "amazon-eks-node-al2023-x86_64-neuron-1.33-v20260301", Arch: "x86_64", Owner: "amazon", Created: epoch},
		{ID: "ami-stdx86", Name: "amazon-eks-node-al2023-x86_64-standard-1.33-v20260301", Arch: "x86_64", Owner: "amazon", Created: epoch},
		{ID: "ami-brnv", Name: "bottlerocket-aws-k8s-1.33-nvidia-x86_64-v1.40.0", Arch: "x86_64", Owner: "amazon", Created: epoch},
		{ID: "ami-custom-old", Name: "team-gpu-2025", Arch: "x86_64", Created: epoch.Add(-48 * time.Hour), Tags: map[string]string{"team": "ml"}},
		{ID: "ami-custom-new", Name: "team-gpu-2026", Arch: "x86_64", Created: epoch.Add(-time.Hour), Tags: map[string]string{"team": "ml"}},
	}
	inv.InstanceTypes = append(inv.InstanceTypes, fakeaws.InstanceType{Name: "p5.48xlarge", Arch: "x86_64", VCPU: 192, MemoryMiB: 2097152,
		GPUName: "H100", GPUManufacturer: "NVIDIA", GPUCount: 8, GPUMemoryMiB: 81920, EFA: 32, ENIs: 64, IPsPerENI: 50})
	inv.TypeZones["g5.xlarge"] = []string{"us-east-1a", "us-east-1b"}
	inv.OnDemandPrices = map[string]float64{
		"g4dn.xlarge": 0.526, "g5.xlarge": 1.006, "g6.xlarge": 0.8048, "g5g.xlarge": 0.42, "p5.48xlarge": 55.04,
		"inf2.xlarge": 0.7582, "g7e.xlarge": 1.5,
	}
	inv.SpotPrices[fakeaws.Offering{InstanceType: "g4dn.xlarge", Zone: "us-east-1c", CapacityType: fakeaws.Spot}] = 0.30
	inv.SpotPrices[fakeaws.Offering{InstanceType: "g6.xlarge", Zone: "us-east-1a", CapacityType: fakeaws.Spot}] = 0.35
	inv.Reservations = []fakeaws.Reservation{
		{ID: "cr-odcr", InstanceType: "g6.xlarge", Zone: "us-east-1b", Total: 2, Available: 1},
		{ID: "cr-block", InstanceType: "p5.48xlarge", Zone: "us-east-1a", Total: 1, Available: 1, CapacityBlock: true},
	}
	inv.SSMParameters[brNVx86] = "ami-brnv"
	inv.Roles = []string{"KarpenterNodeRole"}
	return inv
}

type env struct {
	t       *testing.T
	ctx     context.Context
	clock   *clocktesting.FakeClock
	srv     *fakeaws.Server
	backend *awsbackend.Backend
	kube    client.Client
	cp      *gpucp.CloudProvider
}

type envOption func(*awsbackend.Options, *awsbackend.RetryOptions)

// newEnv starts the fake endpoint and builds the backend exactly as
// production does: LoadConfig (retryer), NewClients (SDK clients), with the
// endpoint overridden to the server and static credentials.
func newEnv(t *testing.T, inv fakeaws.Inventory, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(epoch)
	srv := fakeaws.New(inv)
	t.Cleanup(srv.Close)
	srv.SetClock(clk.Now)
	bo := awsbackend.Options{
		Region: "us-east-1", ClusterName: cluster, ClusterEndpoint: "https://api.unit.example", ClusterCABundle: "Q0E=",
		ClusterCIDR: "10.100.0.0/16", KubernetesVersion: k8sVersion, Clock: clk,
	}
	ro := awsbackend.RetryOptions{MaxAttempts: 5, MaxBackoff: 5 * time.Millisecond}
	for _, o := range opts {
		o(&bo, &ro)
	}
	clients, err := awsenv.Clients(ctx, srv, ro)
	if err != nil {
		t.Fatal(err)
	}
	bo.EC2, bo.SSM, bo.Pricing, bo.IAM = clients.EC2, clients.SSM, clients.Pricing, clients.IAM
	backend, err := awsbackend.NewBackend(ctx, bo)
	if err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientBuilder().WithStatusSubresource(&v1alpha1.GPUNodeClass{}).Build()
	cp, err := gpucp.New(gpucp.Options{KubeClient: kube, Backend: backend, Clock: clk, ClusterName: cluster})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, clock: clk, srv: srv, backend: backend, kube: kube, cp: cp}
}

// nodeClass is awstest's node class (the tagged subnets and groups,
// KarpenterNodeRole) tagging its resources team=ml.
func nodeClass(mods ...func(*v1alpha1.GPUNodeClass)) *v1alpha1.GPUNodeClass {
	nc := awstest.NodeClass()
	nc.Spec.Tags = map[string]string{"team": "ml"}
	for _, m := range mods {
		m(nc)
	}
	return nc
}

// resolved resolves nc through the backend and stores it for the provider.
// launch runs the provider's Create for nc, failing the test on an error.
func (e *env) launch(t *testing.T, nc *karpv1.NodeClaim) *karpv1.NodeClaim {
	t.Helper()
	got, err := e.cp.Create(e.ctx, nc)
	if err != nil {
		t.Fatalf("Create %s: %v", nc.Name, err)
	}
	return got
}

// resolvedEnv is newEnv on the inventory with nodeClass() resolved.
func resolvedEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, inventory())
	e.resolved(nodeClass())
	return e
}

func (e *env) resolved(nc *v1alpha1.GPUNodeClass) *v1alpha1.GPUNodeClass {
	e.t.Helper()
	if err := e.backend.Resolve(e.ctx, nc); err != nil {
		e.t.Fatalf("Resolve: %v", err)
	}
	if !nc.StatusConditions().Root().IsTrue() {
		e.t.Fatalf("node class not ready: %+v", nc.Status.Conditions)
	}
	if err := e.kube.Create(e.ctx, nc.DeepCopy()); err != nil {
		e.t.Fatal(err)
	}
	stored := &v1alpha1.GPUNodeClass{}
	if err := e.kube.Get(e.ctx, client.ObjectKeyFromObject(nc), stored); err != nil {
		e.t.Fatal(err)
	}
	stored.Status = nc.Status
	if err := e.kube.Status().Update(e.ctx, stored); err != nil {
		e.t.Fatal(err)
	}
	return stored
}

// claim is a NodeClaim for gpus NVIDIA GPUs on amd64 plus requirements.
func claim(name string, gpus int64, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodeClaim {
	return controlplane.GPUNodeClaim(name, "gpu-pool", gpus, reqs...)
}

func req(key string, op corev1.NodeSelectorOperator, values ...string) karpv1.NodeSelectorRequirementWithMinValues {
	return karpv1.NodeSelectorRequirementWithMinValues{Key: key, Operator: op, Values: values}
}

// collectOrphans runs the orphan collector (pkg/controllers/orphans) over
// the backend once, as cmd/controller wires it.
func (e *env) collectOrphans(grace time.Duration) ([]string, error) {
	return orphans.NewController(e.backend.OrphanOptions(orphans.Options{KubeClient: e.kube, GracePeriod: grace, Clock: e.clock})).Collect(e.ctx)
}
