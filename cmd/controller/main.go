// Command controller runs Karpenter core's operator and controllers with the
// karpenter-gpu cloud provider and controllers (see pkg/operator).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/awslabs/operatorpkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	coreoperator "sigs.k8s.io/karpenter/pkg/operator"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/interruption"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator/options"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/sqs"
)

func main() {
	ctx, op := coreoperator.NewOperator()
	opts := options.FromContext(ctx)
	backend, extra, err := newBackend(ctx, opts, op)
	if err != nil {
		log.FromContext(ctx).Error(err, "creating backend")
		os.Exit(1)
	}
	var entries []catalog.Entry
	if opts.CatalogFile != "" {
		if entries, _, err = catalog.LoadFile(opts.CatalogFile); err != nil {
			log.FromContext(ctx).Error(err, "loading catalog")
			os.Exit(1)
		}
	}
	// The provider with core's decorators and repair-policy matcher, built
	// as the simulator builds it (operator.NewCloudProvider).
	cloudProvider, err := operator.NewCloudProvider(ctx, operator.CloudProviderOptions{
		Provider:          gpucp.Options{KubeClient: op.GetClient(), Backend: backend, Clock: op.Clock, Entries: entries, ClusterName: opts.ClusterName},
		InstanceTypeStore: op.InstanceTypeStore,
	})
	if err != nil {
		log.FromContext(ctx).Error(err, "creating cloud provider")
		os.Exit(1)
	}
	queue, err := newInterruptionQueue(ctx, opts)
	if err != nil {
		log.FromContext(ctx).Error(err, "creating interruption queue")
		os.Exit(1)
	}
	cluster := cloudProvider.NewCluster(op.Clock, op.GetClient())
	ctrls, err := operator.NewControllers(ctx, operator.Options{
		Manager: op.Manager, Clock: op.Clock, KubeClient: op.GetClient(), Recorder: op.EventRecorder,
		CloudProvider: cloudProvider.Decorated, Undecorated: cloudProvider.Undecorated, Backend: backend, Cluster: cluster,
		InstanceTypeStore: cloudProvider.InstanceTypeStore, Policy: operator.Policy(opts.Policy), DirectMinPods: opts.DirectPackingMinPods, NominatePods: opts.NominatePods,
		ProvisioningRequestOptions: opts.ProvisioningRequestOptions,
		Eviction:                   opts.Eviction(),
		InterruptionQueue:          queue, InterruptionUnavailable: cloudProvider.Provider.Unavailable(),
	})
	if err != nil {
		log.FromContext(ctx).Error(err, "assembling controllers")
		os.Exit(1)
	}
	ctrls.All = append(ctrls.All, extra...)
	op.WithControllers(ctx, ctrls.All...).Start(ctx)
}

// newInterruptionQueue returns karpenter-gpu's SQS interruption queue, nil
// when none is configured (options.Parse allows one with the AWS backend
// only).
func newInterruptionQueue(ctx context.Context, opts *options.Options) (interruption.Queue, error) {
	if opts.InterruptionQueue == "" {
		return nil, nil
	}
	cfg, err := awsbackend.LoadConfig(ctx, awsbackend.ConfigOptions{Region: opts.Region})
	if err != nil {
		return nil, err
	}
	q, err := sqs.New(sqs.Options{Client: sqs.NewClient(cfg, ""), QueueName: opts.InterruptionQueue})
	if err != nil {
		return nil, err // not a nil *sqs.Queue in a non-nil interface
	}
	return q, nil
}

// newBackend returns the backend opts selects and the controllers that come
// with it: the orphan collector over the backend's instances (leaked by a
// crash between launch and NodeClaim update) and, for the fake cloud, its
// kubelets (operator.NewFakeBackend).
func newBackend(ctx context.Context, opts *options.Options, op *coreoperator.Operator) (gpucp.Backend, []controller.Controller, error) {
	switch opts.Backend {
	case "aws":
		cfg, err := awsbackend.LoadConfig(ctx, awsbackend.ConfigOptions{Region: opts.Region})
		if err != nil {
			return nil, nil, err
		}
		clients := awsbackend.NewClients(cfg, "")
		version, err := awsbackend.KubernetesVersion(op.KubernetesInterface.Discovery())
		if err != nil {
			return nil, nil, err
		}
		ca, err := awsbackend.CABundle(op.GetConfig())
		if err != nil {
			return nil, nil, err
		}
		b, err := awsbackend.NewBackend(ctx, awsbackend.Options{Region: cfg.Region, ClusterName: opts.ClusterName,
			ClusterEndpoint: opts.ClusterEndpoint, ClusterCABundle: ca, KubernetesVersion: version,
			EC2: clients.EC2, SSM: clients.SSM, Pricing: clients.Pricing, IAM: clients.IAM, Clock: op.Clock})
		if err != nil {
			return nil, nil, err
		}
		return b, []controller.Controller{orphans.NewController(b.OrphanOptions(orphans.Options{KubeClient: op.GetClient(), Clock: op.Clock}))}, nil
	case "fake":
		b := operator.NewFakeBackend(opts, op.GetClient(), op.Clock)
		return b.Fleet, b.Controllers, nil
	default:
		return nil, nil, fmt.Errorf("backend %q is not available in this build", opts.Backend)
	}
}
