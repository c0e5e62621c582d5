// Package envtest runs the provisioning suite of test/envtest once more with
// the AWS backend: a real kube-apiserver and etcd (KUBEBUILDER_ASSETS, built
// by tools/build-envtest.sh), Karpenter core's provisioner and NodeClaim
// lifecycle controller, the GPUNodeClass status controller, and the
// production aws-sdk-go-v2 clients pointed at the in-process fake EC2, SSM,
// IAM and Pricing endpoint (providers/aws/fakeaws) on 127.0.0.1.
package envtest_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/lifecycle"
	"sigs.k8s.io/karpenter/pkg/test"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/test/awsenv"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/coresuite"
)

const clusterName = "envtest"

var (
	ctx           context.Context
	env           *test.Environment
	srv           *fakeaws.Server
	backend       *awsbackend.Backend
	core          *coresuite.Core
	cloudProvider *gpucp.CloudProvider
	lifecycleCtrl *lifecycle.Controller
)

func TestAWSEnvtest(t *testing.T) {
	controlplane.RunSuite(t, &ctx, "karpenter-gpu envtest (AWS backend)")
}

var _ = BeforeSuite(func() {
	env, ctx = controlplane.NewCoreEnvironment(ctx)
	srv = fakeaws.New(inventory())
	srv.SetClock(env.Clock.Now)
	var err error
	backend, err = awsenv.NewBackend(ctx, srv, awsbackend.Options{
		Region: "us-east-1", ClusterName: clusterName, ClusterEndpoint: "https://api.envtest.example", ClusterCABundle: "Q0E=",
		KubernetesVersion: "1.33", Clock: env.Clock,
	})
	Expect(err).ToNot(HaveOccurred())
	core = coresuite.New(env, backend, clusterName)
	cloudProvider, lifecycleCtrl = core.CloudProvider, core.Lifecycle
})

var _ = AfterSuite(func() {
	srv.Close()
	Expect(controlplane.StopEnvironment(env)).To(Succeed())
})

var _ = AfterEach(func() { core.Reset(ctx) })

// inventory is a small us-east-1 with three zones and a few GPU types,
// on amd64 and arm64.
func inventory() fakeaws.Inventory {
	inv := awsenv.Inventory(clusterName, []fakeaws.InstanceType{
		{Name: "g4dn.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, GPUName: "T4", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 16384, ENIs: 3, IPsPerENI: 10},
		{Name: "g6.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, GPUName: "L4", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 22888, ENIs: 4, IPsPerENI: 15},
		{Name: "g6e.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 32768, GPUName: "L40S", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 45776, ENIs: 4, IPsPerENI: 15},
		{Name: "p5.48xlarge", Arch: "x86_64", VCPU: 192, MemoryMiB: 2097152, GPUName: "H100", GPUManufacturer: "NVIDIA", GPUCount: 8, GPUMemoryMiB: 81920, EFA: 32, ENIs: 64, IPsPerENI: 50},
		{Name: "g5g.xlarge", Arch: "arm64", VCPU: 4, MemoryMiB: 8192, GPUName: "T4g", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 16384, ENIs: 4, IPsPerENI: 15},
	}, map[string]float64{"g4dn.xlarge": 0.526, "g6.xlarge": 0.8048, "g6e.xlarge": 1.861, "p5.48xlarge": 55.04, "g5g.xlarge": 0.42})
	inv.Images = append(inv.Images, fakeaws.Image{ID: "ami-nvarm", Name: "al2023-nvidia-arm64", Arch: "arm64", Owner: "amazon", Created: time.Unix(1_700_000_000, 0)})
	inv.SSMParameters[awsenv.SSMNVIDIAArm] = "ami-nvarm"
	return inv
}
