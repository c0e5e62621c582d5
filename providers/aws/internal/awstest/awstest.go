// Package awstest gives the per-concern provider tests of providers/aws the
// production SDK clients (aws.LoadConfig with the package's retryer,
// aws.NewClients) pointed at an in-process fakeaws server, and a small
// us-east-1 inventory to run them against.
package awstest

import (
	"context"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/test/awsenv"
)

// Cluster is the cluster name of the inventory's discovery tags.
const Cluster = "unit"

// Epoch is the inventory's "now".
var Epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Server starts a fakeaws server on inv, closed when the test ends.
func Server(t testing.TB, inv fakeaws.Inventory) *fakeaws.Server {
	t.Helper()
	srv := fakeaws.New(inv)
	t.Cleanup(srv.Close)
	return srv
}

// Clients returns the production SDK clients pointed at srv, with static
// credentials and at most 3 quick attempts per call.
func Clients(t testing.TB, srv *fakeaws.Server) aws.Clients {
	t.Helper()
	return aws.NewClients(Config(t), srv.URL)
}

// Config is the production SDK configuration in us-east-1 as every AWS test
// builds it (awsenv.Config: static credentials, IMDS off), with at most 3
// quick attempts per call.
func Config(t testing.TB) awssdk.Config {
	t.Helper()
	cfg, err := awsenv.Config(context.Background(), aws.RetryOptions{MaxAttempts: 3, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Env is what a provider test runs against: a fakeaws server on its clock,
// the production clients pointed at it, and the embedded catalog.
type Env struct {
	Server  *fakeaws.Server
	Clock   *clocktesting.FakeClock
	Clients aws.Clients
	Catalog []catalog.Entry
}

// NewEnv starts a server on inv at Epoch, closed when the test ends.
func NewEnv(t testing.TB, inv fakeaws.Inventory) *Env {
	t.Helper()
	entries, _, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	srv := Server(t, inv)
	clk := clocktesting.NewFakeClock(Epoch)
	srv.SetClock(clk.Now)
	return &Env{Server: srv, Clock: clk, Clients: Clients(t, srv), Catalog: entries}
}

// Inventory is a small us-east-1: tagged subnets in two zones (two in 1a),
// an untagged one, two security groups, the EKS images and their SSM
// parameters, NVIDIA, Neuron and CPU types, prices and two reservations.
func Inventory() fakeaws.Inventory {
	disc := map[string]string{"karpenter.sh/discovery": Cluster}
	return fakeaws.Inventory{
		Region: "us-east-1",
		Subnets: []fakeaws.Subnet{
			{ID: "subnet-a1", Zone: "us-east-1a", ZoneID: "use1-az1", VPC: "vpc-1", FreeIPs: 100, Tags: disc},
			{ID: "subnet-a2", Zone: "us-east-1a", ZoneID: "use1-az1", VPC: "vpc-1", FreeIPs: 500, Tags: disc},
			{ID: "subnet-b", Zone: "us-east-1b", ZoneID: "use1-az2", VPC: "vpc-1", FreeIPs: 300, Tags: disc},
			{ID: "subnet-public", Zone: "us-east-1c", ZoneID: "use1-az3", VPC: "vpc-1", FreeIPs: 900, Tags: map[string]string{"tier": "public"}},
		},
		SecurityGroups: []fakeaws.SecurityGroup{
			{ID: "sg-nodes", Name: "nodes", VPC: "vpc-1", Tags: disc},
			{ID: "sg-extra", Name: "extra", VPC: "vpc-1", Tags: map[string]string{"team": "ml"}},
		},
		Images: []fakeaws.Image{
			{ID: "ami-nvx86", Name: "al2023-x86_64-nvidia", Arch: "x86_64", Owner: "amazon", Created: Epoch},
			{ID: "ami-nvarm", Name: "al2023-arm64-nvidia", Arch: "arm64", Owner: "amazon", Created: Epoch, RootDevice: "/dev/sda1"},
			{ID: "ami-neuron", Name: "al2023-x86_64-neuron", Arch: "x86_64", Owner: "amazon", Created: Epoch},
			{ID: "ami-stdx86", Name: "al2023-x86_64-standard", Arch: "x86_64", Owner: "amazon", Created: Epoch},
		},
		InstanceTypes: []fakeaws.InstanceType{
			{Name: "g4dn.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, GPUName: "T4", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 16384, ENIs: 3, IPsPerENI: 10},
			{Name: "g5.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, GPUName: "A10G", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 22888, ENIs: 4, IPsPerENI: 15},
			{Name: "g6.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, GPUName: "L4", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 22888, ENIs: 4, IPsPerENI: 15},
			{Name: "g5g.xlarge", Arch: "arm64", VCPU: 4, MemoryMiB: 8192, GPUName: "T4g", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 16384, ENIs: 4, IPsPerENI: 15},
			{Name: "inf2.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, NeuronName: "Inferentia2", NeuronCount: 1, ENIs: 4, IPsPerENI: 15},
			{Name: "g7e.xlarge", Arch: "x86_64", VCPU: 8, MemoryMiB: 65536, GPUName: "RTX PRO 6000", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 98304, ENIs: 4, IPsPerENI: 15},
			{Name: "m5.large", Arch: "x86_64", VCPU: 2, MemoryMiB: 8192, ENIs: 3, IPsPerENI: 10},
		},
		TypeZones: map[string][]string{"g5.xlarge": {"us-east-1a"}},
		OnDemandPrices: map[string]float64{
			"g4dn.xlarge": 0.5, "g5.xlarge": 1.0, "g6.xlarge": 0.8, "g5g.xlarge": 0.4, "inf2.xlarge": 0.75, "g7e.xlarge": 1.5,
		},
		SpotPrices: map[fakeaws.Offering]float64{
			{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", CapacityType: fakeaws.Spot}: 0.20,
			{InstanceType: "g4dn.xlarge", Zone: "us-east-1b", CapacityType: fakeaws.Spot}: 0.25,
		},
		Reservations: []fakeaws.Reservation{
			{ID: "cr-odcr", InstanceType: "g6.xlarge", Zone: "us-east-1b", Total: 2, Available: 1, Tags: map[string]string{"team": "ml"}},
			{ID: "cr-block", InstanceType: "g4dn.xlarge", Zone: "us-east-1a", Total: 1, Available: 1, CapacityBlock: true},
			{ID: "cr-expired", InstanceType: "g6.xlarge", Zone: "us-east-1a", Total: 1, Available: 1, State: "expired"},
		},
		SSMParameters: map[string]string{awsenv.SSMNVIDIAx86: "ami-nvx86", awsenv.SSMNVIDIAArm: "ami-nvarm", awsenv.SSMNeuron: "ami-neuron", awsenv.SSMStandardx86: "ami-stdx86"},
		Roles:         []string{"KarpenterNodeRole", "OtherRole"},
	}
}

// NodeClass selects the inventory's tagged subnets and security groups,
// with the role KarpenterNodeRole.
func NodeClass() *v1alpha1.GPUNodeClass {
	return &v1alpha1.GPUNodeClass{
		ObjectMeta: metav1.ObjectMeta{Name: "gpu", UID: "nc-uid", Generation: 1},
		Spec: v1alpha1.GPUNodeClassSpec{
			SubnetSelectorTerms:        []v1alpha1.SubnetSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": Cluster}}},
			SecurityGroupSelectorTerms: []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": Cluster}}},
			Role:                       "KarpenterNodeRole",
		},
	}
}
