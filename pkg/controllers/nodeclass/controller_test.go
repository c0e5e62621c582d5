package nodeclass_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/awslabs/operatorpkg/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nodeclass"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

var _ nodeclass.ValidationFailure = &awsbackend.ValidationError{}
var _ nodeclass.Validator = &awsbackend.Backend{}

func startAPIServer(t *testing.T) client.Client {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); dir == "" || err != nil {
			t.Fatalf("envtest binary %q not found in KUBEBUILDER_ASSETS=%q; run `make envtest-bin` (tools/build-envtest.sh) or `make test`", bin, dir)
		}
	}
	env := &envtest.Environment{CRDs: apis.CRDs}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// awsBackend is the production AWS backend (real SDK clients) against the
// in-process EC2/IAM/SSM endpoint.
func awsBackend(t *testing.T, srv *fakeaws.Server) *awsbackend.Backend {
	t.Helper()
	ctx := context.Background()
	cfg, err := awsbackend.LoadConfig(ctx, awsbackend.ConfigOptions{
		Region: "us-east-1",
		Retry:  awsbackend.RetryOptions{MaxAttempts: 3, MaxBackoff: 5 * time.Millisecond},
		Extra: []func(*config.LoadOptions) error{
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
			config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	clients := awsbackend.NewClients(cfg, srv.URL)
	b, err := awsbackend.NewBackend(ctx, awsbackend.Options{Region: "us-east-1", ClusterName: "unit",
		ClusterEndpoint: "https://api.unit.example", ClusterCABundle: "Q0E=", ClusterCIDR: "10.100.0.0/16", KubernetesVersion: "1.33",
		EC2: clients.EC2, SSM: clients.SSM, Pricing: clients.Pricing, IAM: clients.IAM})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func inventory() fakeaws.Inventory {
	disc := map[string]string{"karpenter.sh/discovery": "unit"}
	return fakeaws.Inventory{
		Region:         "us-east-1",
		Subnets:        []fakeaws.Subnet{{ID: "subnet-a", Zone: "us-east-1a", ZoneID: "use1-az1", VPC: "vpc-1", FreeIPs: 100, Tags: disc}},
		SecurityGroups: []fakeaws.SecurityGroup{{ID: "sg-nodes", Name: "nodes", VPC: "vpc-1", Tags: disc}},
		Images:         []fakeaws.Image{{ID: "ami-nvx86", Name: "al2023-nvidia-x86_64", Arch: "x86_64", Owner: "amazon", Created: time.Unix(1_700_000_000, 0)}},
		InstanceTypes: []fakeaws.InstanceType{{Name: "g4dn.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, GPUName: "T4",
			GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 16384, ENIs: 3, IPsPerENI: 10}},
		OnDemandPrices: map[string]float64{"g4dn.xlarge": 0.526},
		SSMParameters:  map[string]string{"/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/nvidia/recommended/image_id": "ami-nvx86"},
		Roles:          []string{"KarpenterNodeRole"},
	}
}

// TestValidationSucceededCondition reconciles a GPUNodeClass on a real API
// server with the AWS backend: the dry-run verdict becomes the
// ValidationSucceeded condition and gates Ready; an inconclusive dry run
// (throttled) keeps the last verdict and returns an error for a retry.
func TestValidationSucceededCondition(t *testing.T) {
	kube := startAPIServer(t)
	srv := fakeaws.New(inventory())
	t.Cleanup(srv.Close)
	ctrl := nodeclass.NewController(nodeclass.Options{KubeClient: kube, Backend: awsBackend(t, srv)})
	ctx := context.Background()

	nc := &v1alpha1.GPUNodeClass{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}, Spec: v1alpha1.GPUNodeClassSpec{
		SubnetSelectorTerms:        []v1alpha1.SubnetSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": "unit"}}},
		SecurityGroupSelectorTerms: []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": "unit"}}},
		Role:                       "KarpenterNodeRole",
	}}
	if err := kube.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	reconcile := func() (*v1alpha1.GPUNodeClass, error) {
		t.Helper()
		cur := &v1alpha1.GPUNodeClass{}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(nc), cur); err != nil {
			t.Fatal(err)
		}
		_, err := ctrl.Reconcile(ctx, cur)
		stored := &v1alpha1.GPUNodeClass{}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(nc), stored); err != nil {
			t.Fatal(err)
		}
		return stored, err
	}
	expect := func(nc *v1alpha1.GPUNodeClass, validation, ready metav1.ConditionStatus, reason string) {
		t.Helper()
		conds := nc.StatusConditions()
		v := conds.Get(nodeclass.ConditionTypeValidationSucceeded)
		if v == nil || v.Status != validation || (reason != "" && v.Reason != reason) {
			t.Fatalf("ValidationSucceeded %+v, want %s %s", v, validation, reason)
		}
		if r := conds.Get(status.ConditionReady); r == nil || r.Status != ready {
			t.Fatalf("Ready %+v, want %s (conditions %+v)", r, ready, nc.Status.Conditions)
		}
	}

	got, err := reconcile()
	if err != nil {
		t.Fatal(err)
	}
	expect(got, metav1.ConditionTrue, metav1.ConditionTrue, "")
	if n := len(srv.Requests("RunInstances")); n != 1 {
		t.Fatalf("%d RunInstances dry runs, want 1", n)
	}

	// The controller's role loses ec2:RunInstances (or iam:PassRole).
	srv.Fail("RunInstances", "UnauthorizedOperation", "You are not authorized to perform this operation.", 1)
	got, err = reconcile()
	if err != nil {
		t.Fatal(err)
	}
	expect(got, metav1.ConditionFalse, metav1.ConditionFalse, "UnauthorizedOperation")

	// Throttled: no verdict; the last one stays and Ready stays False.
	srv.Throttle("RunInstances", 10)
	got, err = reconcile()
	if err == nil {
		t.Fatal("throttled dry run: no error, want one for a retry")
	}
	expect(got, metav1.ConditionFalse, metav1.ConditionFalse, "UnauthorizedOperation")

	// Permission restored.
	srv.ClearFaults()
	got, err = reconcile()
	if err != nil {
		t.Fatal(err)
	}
	expect(got, metav1.ConditionTrue, metav1.ConditionTrue, "")
}
