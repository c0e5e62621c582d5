// Package options holds karpenter-gpu's own flags; every flag has an
// environment-variable twin, like core's.
package options

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	coreoptions "sigs.k8s.io/karpenter/pkg/operator/options"
	"sigs.k8s.io/karpenter/pkg/utils/env"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

func init() {
	coreoptions.Injectables = append(coreoptions.Injectables, &Options{})
}

type optionsKey struct{}

// Options are the provider's flags.
type Options struct {
	// Backend is the cloud the controller launches on: "aws" or "fake".
	Backend string
	// ClusterName tags instances and joins nodes to the cluster.
	ClusterName string
	// ClusterEndpoint is the API server URL nodes join.
	ClusterEndpoint string
	// Region overrides the region from the environment (AWS_REGION).
	Region string
	// Policy is "karpenter-gpu" (cost-optimal GPU packing) or "stock".
	Policy string
	// CatalogFile overrides the embedded instance catalog (CSV).
	CatalogFile string
	// FakeLaunchLatency and FakeRegistrationDelay shape the fake backend's
	// instances: pending time, then time until the Node registers.
	FakeLaunchLatency, FakeRegistrationDelay time.Duration
	// FakeGangWait is how long the fake backend gathers the launches of a
	// gang attempt (a best-effort-atomic ProvisioningRequest's NodeClaims)
	// into one all-or-nothing group launch, as the AWS backend does
	// (fake.Options.GangWait); 0 launches a gang's members one by one.
	FakeGangWait time.Duration
	// DirectPackingMinPods is the number of pending GPU pods the packer
	// models from which a provisioning batch skips core's Solve for new
	// capacity (0: the default, 100; negative: never).
	DirectPackingMinPods int
	// NominatePods sets status.nominatedNodeName on pending pods to the
	// node Karpenter planned them on (pkg/controllers/nomination; needs
	// kube-scheduler v1.35+ to be kept while the node starts).
	NominatePods bool
	ProvisioningRequestOptions
	// CheckpointInterval and RestartTime are the eviction-cost estimate's
	// defaults for GPU pods that do not state theirs (pkg/evictioncost):
	// how often batch pods checkpoint ("never": they restart from zero),
	// and how long a service replica takes to serve again.
	CheckpointInterval string
	RestartTime        time.Duration
	// RepeatEvictionWindow and RepeatEvictionMultiplier weigh moving a
	// workload again soon after it was displaced (evictioncost.Repeat);
	// the multiplier is a decimal string, read by Parse.
	RepeatEvictionWindow     time.Duration
	RepeatEvictionMultiplier string
	repeatMultiplier         float64
	// InterruptionQueue is the name of karpenter-gpu's own SQS interruption
	// queue (fed by EventBridge rules; pkg/controllers/interruption); empty
	// turns interruption handling off. Never Karpenter for AWS's queue.
	InterruptionQueue string
}

// ProvisioningRequestOptions are the ProvisioningRequest settings, which
// pkg/operator hands to the ProvisioningRequest controllers as they are.
type ProvisioningRequestOptions struct {
	// ProvisioningRequests serves autoscaling.x-k8s.io ProvisioningRequests
	// (designs/gang.md): "auto" when the CRD is installed, "true", "false"
	// ("" is off).
	ProvisioningRequests string
	// ProvisioningRequestBookingTTL is how long capacity found or launched
	// for a request is held for its pods.
	ProvisioningRequestBookingTTL time.Duration
	// ProvisioningRequestLaunchTimeout, ...MaxAttempts and ...RetryBackoff
	// drive a best-effort-atomic request's attempts: every node of an
	// attempt must register within the timeout or the attempt is rolled
	// back; the next follows after the backoff (doubled per attempt); after
	// MaxAttempts the request is Failed (0: provisioningrequest.Options'
	// defaults).
	ProvisioningRequestLaunchTimeout time.Duration
	ProvisioningRequestMaxAttempts   int
	ProvisioningRequestRetryBackoff  time.Duration
}

// AddFlags registers the flags.
func (o *Options) AddFlags(fs *coreoptions.FlagSet) {
	fs.StringVar(&o.Backend, "backend", env.WithDefaultString("BACKEND", "fake"), "Cloud backend: aws or fake (in-memory fleet for local and end-to-end runs)")
	fs.StringVar(&o.ClusterName, "cluster-name", env.WithDefaultString("CLUSTER_NAME", ""), "Cluster name, used to tag instances and join nodes")
	fs.StringVar(&o.ClusterEndpoint, "cluster-endpoint", env.WithDefaultString("CLUSTER_ENDPOINT", ""), "API server endpoint nodes join")
	fs.StringVar(&o.Region, "region", env.WithDefaultString("AWS_REGION", "us-east-1"), "Cloud region")
	fs.StringVar(&o.Policy, "policy", env.WithDefaultString("POLICY", "karpenter-gpu"), "Provisioning policy: karpenter-gpu (cost-optimal GPU packing) or stock (Karpenter core's decisions)")
	fs.DurationVar(&o.FakeLaunchLatency, "fake-launch-latency", env.WithDefaultDuration("FAKE_LAUNCH_LATENCY", 0), "With --backend=fake: how long instances stay pending")
	fs.DurationVar(&o.FakeRegistrationDelay, "fake-registration-delay", env.WithDefaultDuration("FAKE_REGISTRATION_DELAY", 2*time.Second), "With --backend=fake: how long after running an instance's Node registers")
	fs.DurationVar(&o.FakeGangWait, "fake-gang-wait", env.WithDefaultDuration("FAKE_GANG_WAIT", gather.DefaultGangWait), "With --backend=fake: how long the launches of a gang attempt (a best-effort-atomic ProvisioningRequest's NodeClaims) wait for the rest of the gang before launching as one all-or-nothing group in one zone, as on AWS; 0 launches them one by one")
	fs.IntVar(&o.DirectPackingMinPods, "direct-packing-min-pods", env.WithDefaultInt("DIRECT_PACKING_MIN_PODS", 0), "Pending GPU pods (that the packer models) from which a provisioning batch plans new capacity without core's Solve: 0 means 100, negative never (see designs/packing.md)")
	fs.BoolVarWithEnv(&o.NominatePods, "nominate-pods", "NOMINATE_PODS", true, "Set status.nominatedNodeName on each pending pod to the node Karpenter launched for it, so kube-scheduler binds it there and holds its share against other pods (KEP-5278; kube-scheduler v1.35+). false: kube-scheduler places pods on new nodes by its scores alone, as with stock Karpenter")
	fs.StringVar(&o.ProvisioningRequests, "provisioning-requests", env.WithDefaultString("PROVISIONING_REQUESTS", "auto"), "Serve ProvisioningRequests (autoscaling.x-k8s.io/v1, classes best-effort-atomic-scale-up and check-capacity): auto (when the CRD is installed), true or false")
	fs.DurationVar(&o.ProvisioningRequestBookingTTL, "provisioning-request-booking-ttl", env.WithDefaultDuration("PROVISIONING_REQUEST_BOOKING_TTL", 10*time.Minute), "How long capacity found or launched for a ProvisioningRequest is held for its pods before BookingExpired")
	fs.DurationVar(&o.ProvisioningRequestLaunchTimeout, "provisioning-request-launch-timeout", env.WithDefaultDuration("PROVISIONING_REQUEST_LAUNCH_TIMEOUT", 10*time.Minute), "Every node of a best-effort-atomic ProvisioningRequest attempt must register within it, or the attempt is rolled back (keep it under core's 15m registration timeout)")
	fs.IntVar(&o.ProvisioningRequestMaxAttempts, "provisioning-request-max-attempts", env.WithDefaultInt("PROVISIONING_REQUEST_MAX_ATTEMPTS", 3), "Attempts of a best-effort-atomic ProvisioningRequest before it is Failed (Kueue then retries with a new request)")
	fs.DurationVar(&o.ProvisioningRequestRetryBackoff, "provisioning-request-retry-backoff", env.WithDefaultDuration("PROVISIONING_REQUEST_RETRY_BACKOFF", 30*time.Second), "Wait after a failed attempt of a best-effort-atomic ProvisioningRequest, doubled per attempt up to 10m, plus up to a fifth")
	fs.StringVar(&o.CheckpointInterval, "default-checkpoint-interval", env.WithDefaultString("DEFAULT_CHECKPOINT_INTERVAL", "1h"), "Eviction-cost estimate: how often batch GPU pods checkpoint unless they say (annotation karpenter-gpu.io/checkpoint-interval); a duration or never")
	fs.DurationVar(&o.RestartTime, "default-restart-time", env.WithDefaultDuration("DEFAULT_RESTART_TIME", 5*time.Minute), "Eviction-cost estimate: how long a service GPU replica needs to serve again after an eviction unless it says (annotation karpenter-gpu.io/restart-time)")
	fs.DurationVar(&o.RepeatEvictionWindow, "repeat-eviction-window", env.WithDefaultDuration("REPEAT_EVICTION_WINDOW", 0), "Eviction-cost estimate: how long a workload (a pod's controller) whose GPU pod was displaced by a node released to consolidation or repacked is remembered; 0: off")
	fs.StringVar(&o.RepeatEvictionMultiplier, "repeat-eviction-multiplier", env.WithDefaultString("REPEAT_EVICTION_MULTIPLIER", "1"), "Eviction-cost estimate: the estimate of a remembered workload's GPU pods is multiplied by this (at most 1: off)")
	fs.StringVar(&o.InterruptionQueue, "interruption-queue", env.WithDefaultString("INTERRUPTION_QUEUE", ""), "With --backend=aws: name of karpenter-gpu's own SQS queue of EC2 interruption events (spot warnings, rebalance recommendations, state changes, AWS Health scheduled changes); a NodeClaim whose instance is interrupted is deleted and drained. Empty: off. Never the queue of Karpenter for AWS")
	fs.StringVar(&o.CatalogFile, "catalog-file", env.WithDefaultString("CATALOG_FILE", ""), "Instance catalog CSV overriding the embedded AWS accelerated-instance data")
}

// Parse parses and validates the flags.
func (o *Options) Parse(fs *coreoptions.FlagSet, args ...string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		return fmt.Errorf("parsing flags, %w", err)
	}
	if o.Backend != "aws" && o.Backend != "fake" {
		return fmt.Errorf("--backend must be aws or fake, got %q", o.Backend)
	}
	if o.Policy != "karpenter-gpu" && o.Policy != "stock" {
		return fmt.Errorf("--policy must be karpenter-gpu or stock, got %q", o.Policy)
	}
	if o.FakeGangWait < 0 {
		return fmt.Errorf("--fake-gang-wait must not be negative (0 turns gang launches off), got %s", o.FakeGangWait)
	}
	if o.ProvisioningRequests != "auto" && o.ProvisioningRequests != "true" && o.ProvisioningRequests != "false" {
		return fmt.Errorf("--provisioning-requests must be auto, true or false, got %q", o.ProvisioningRequests)
	}
	if o.ProvisioningRequestBookingTTL <= 0 {
		return fmt.Errorf("--provisioning-request-booking-ttl must be positive, got %s", o.ProvisioningRequestBookingTTL)
	}
	if o.ProvisioningRequestLaunchTimeout <= 0 {
		return fmt.Errorf("--provisioning-request-launch-timeout must be positive, got %s", o.ProvisioningRequestLaunchTimeout)
	}
	if o.ProvisioningRequestMaxAttempts < 1 {
		return fmt.Errorf("--provisioning-request-max-attempts must be at least 1, got %d", o.ProvisioningRequestMaxAttempts)
	}
	if o.ProvisioningRequestRetryBackoff <= 0 {
		return fmt.Errorf("--provisioning-request-retry-backoff must be positive, got %s", o.ProvisioningRequestRetryBackoff)
	}
	if _, err := evictioncost.ParseCheckpointInterval(o.CheckpointInterval); err != nil {
		return fmt.Errorf("--default-checkpoint-interval: %w", err)
	}
	if o.RestartTime <= 0 {
		return fmt.Errorf("--default-restart-time must be positive, got %s", o.RestartTime)
	}
	m, err := strconv.ParseFloat(o.RepeatEvictionMultiplier, 64)
	if err != nil {
		return fmt.Errorf("--repeat-eviction-multiplier: %q is not a number", o.RepeatEvictionMultiplier)
	}
	o.repeatMultiplier = m
	if err := o.Eviction().Repeat.Validate(); err != nil {
		return fmt.Errorf("--repeat-eviction-window/--repeat-eviction-multiplier: %w", err)
	}
	if o.InterruptionQueue != "" && o.Backend != "aws" {
		return fmt.Errorf("--interruption-queue needs --backend=aws (it is an SQS queue), got --backend=%s", o.Backend)
	}
	if o.Backend == "aws" && o.ClusterName == "" {
		return fmt.Errorf("--cluster-name is required with --backend=aws")
	}
	return nil
}

// Eviction is the eviction-cost model the options describe (Parse has
// validated them).
func (o *Options) Eviction() evictioncost.Model {
	ci, _ := evictioncost.ParseCheckpointInterval(o.CheckpointInterval)
	return evictioncost.Model{CheckpointInterval: ci, RestartTime: o.RestartTime,
		Repeat: evictioncost.Repeat{Window: o.RepeatEvictionWindow, Multiplier: o.repeatMultiplier}}
}

// ToContext stores the options in ctx.
func (o *Options) ToContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, optionsKey{}, o)
}

// FromContext returns the options stored in ctx.
func FromContext(ctx context.Context) *Options {
	o, _ := ctx.Value(optionsKey{}).(*Options)
	return o
}
