// Package awsenv builds the AWS backend the way production does (LoadConfig
// with the backend's retryer, NewClients, NewBackend) against an in-process
// fakeaws endpoint, with static credentials and IMDS off, for every suite
// that runs the AWS backend: providers/aws's own tests, its envtest suite
// and the gang suites on EC2.
package awsenv

import (
	"context"
	"maps"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
)

// DefaultRetry is quick: a few attempts, millisecond backoffs.
var DefaultRetry = awsbackend.RetryOptions{MaxAttempts: 5, MaxBackoff: 5 * time.Millisecond}

// Clients are the production SDK clients pointed at srv, in us-east-1.
func Clients(ctx context.Context, srv *fakeaws.Server, retry awsbackend.RetryOptions) (awsbackend.Clients, error) {
	cfg, err := Config(ctx, retry)
	if err != nil {
		return awsbackend.Clients{}, err
	}
	return awsbackend.NewClients(cfg, srv.URL), nil
}

// Config is the production SDK configuration (LoadConfig with retry) in
// us-east-1, with static credentials and IMDS off, for clients of other
// services (SQS) pointed at a fakeaws server.
func Config(ctx context.Context, retry awsbackend.RetryOptions) (aws.Config, error) {
	return awsbackend.LoadConfig(ctx, awsbackend.ConfigOptions{
		Region: "us-east-1",
		Retry:  retry,
		Extra: []func(*config.LoadOptions) error{
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
			config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
		},
	})
}

// NewBackend is the backend of o with the production clients pointed at
// srv (DefaultRetry), whatever clients o names.
func NewBackend(ctx context.Context, srv *fakeaws.Server, o awsbackend.Options) (*awsbackend.Backend, error) {
	clients, err := Clients(ctx, srv, DefaultRetry)
	if err != nil {
		return nil, err
	}
	o.EC2, o.SSM, o.Pricing, o.IAM = clients.EC2, clients.SSM, clients.Pricing, clients.IAM
	return awsbackend.NewBackend(ctx, o)
}

// SSM parameters of the EKS AL2023 images for Kubernetes 1.33, which the
// backend resolves a GPUNodeClass's default image alias through.
const (
	SSMNVIDIAx86   = "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/nvidia/recommended/image_id"
	SSMNVIDIAArm   = "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/arm64/nvidia/recommended/image_id"
	SSMNeuron      = "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/neuron/recommended/image_id"
	SSMStandardx86 = "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/standard/recommended/image_id"
)

// Inventory is a us-east-1 that controlplane.DiscoveryGPUNodeClass(_,
// cluster) resolves in: a subnet in each of us-east-1a, b and c and a
// security group tagged karpenter.sh/discovery=cluster, the role
// KarpenterNodeRole-<cluster>, and the NVIDIA x86_64 image ami-nvx86 behind
// SSMNVIDIAx86. The instance types and their prices are types and prices.
func Inventory(cluster string, types []fakeaws.InstanceType, prices map[string]float64) fakeaws.Inventory {
	disc := map[string]string{"karpenter.sh/discovery": cluster}
	return fakeaws.Inventory{
		Region: "us-east-1",
		Subnets: []fakeaws.Subnet{
			{ID: "subnet-a", Zone: "us-east-1a", FreeIPs: 500, Tags: disc},
			{ID: "subnet-b", Zone: "us-east-1b", FreeIPs: 500, Tags: disc},
			{ID: "subnet-c", Zone: "us-east-1c", FreeIPs: 500, Tags: disc},
		},
		SecurityGroups: []fakeaws.SecurityGroup{{ID: "sg-nodes", Name: "nodes", Tags: disc}},
		Images:         []fakeaws.Image{{ID: "ami-nvx86", Name: "al2023-nvidia-x86_64", Arch: "x86_64", Owner: "amazon", Created: time.Unix(1_700_000_000, 0)}},
		InstanceTypes:  types,
		OnDemandPrices: maps.Clone(prices),
		SSMParameters:  map[string]string{SSMNVIDIAx86: "ami-nvx86"},
		Roles:          []string{"KarpenterNodeRole-" + cluster},
	}
}
