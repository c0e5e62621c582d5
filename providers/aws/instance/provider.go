// Package instance launches, finds, lists and terminates the cluster's EC2
// instances: one instant CreateFleet per kind of capacity over the
// provider's ordered options (batched across identical concurrent
// launches), whole-gang fleets, and DescribeInstances/TerminateInstances.
package instance

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"k8s.io/utils/clock"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/capacityreservation"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/launchtemplate"
)

// EC2API is the EC2 calls the provider makes.
type EC2API interface {
	ec2.DescribeInstancesAPIClient
	CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, optFns ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	// Placement groups of gangs (gang_batch.go).
	CreatePlacementGroup(ctx context.Context, in *ec2.CreatePlacementGroupInput, optFns ...func(*ec2.Options)) (*ec2.CreatePlacementGroupOutput, error)
	DescribePlacementGroups(ctx context.Context, in *ec2.DescribePlacementGroupsInput, optFns ...func(*ec2.Options)) (*ec2.DescribePlacementGroupsOutput, error)
	DeletePlacementGroup(ctx context.Context, in *ec2.DeletePlacementGroupInput, optFns ...func(*ec2.Options)) (*ec2.DeletePlacementGroupOutput, error)
}

// Subnets is what a launch asks of the subnets.
type Subnets interface {
	// InZone returns the node class's subnets of a zone, best first.
	InZone(nc *v1alpha1.GPUNodeClass, zone string) []string
	// ZoneOf returns the zone of a subnet.
	ZoneOf(id string) string
}

// Templates is what a launch asks of the launch templates.
type Templates interface {
	Spec(nc *v1alpha1.GPUNodeClass, nodeClaim *karpv1.NodeClaim, imageID, reservationID string, capacityBlock bool) (*launchtemplate.Spec, error)
	Ensure(ctx context.Context, spec *launchtemplate.Spec) (string, error)
	Forget(name string)
}

// InstanceTypes is what a launch asks of the instance types.
type InstanceTypes interface {
	Get(ctx context.Context, name string) (catalog.Entry, bool)
}

// Reservations is what a launch asks of the capacity reservations.
type Reservations interface {
	Get(ctx context.Context, id string) (capacityreservation.Reservation, bool)
	// Invalidate is called when a launch took a reservation's seat.
	Invalidate()
}

// Options configure a Provider. Durations left zero take the defaults of
// the aws package's Options (which fills them).
type Options struct {
	EC2           EC2API
	ClusterName   string
	Clock         clock.Clock
	Subnets       Subnets
	Templates     Templates
	InstanceTypes InstanceTypes
	Reservations  Reservations
	// MaxConcurrentLaunches bounds the launches in flight.
	MaxConcurrentLaunches int
	CallTimeout           time.Duration
	LaunchTimeout         time.Duration
	// BatchIdle is how long identical concurrent launches wait for one
	// another (negative: no batching); BatchMax bounds the wait.
	BatchIdle, BatchMax time.Duration
	// GangWait is how long the launches of a gang attempt wait for the rest
	// of the gang (0: DefaultGangWait).
	GangWait time.Duration
}

// Provider launches and manages instances.
type Provider struct {
	opts        Options
	launchSlots chan struct{}
	// started is when this provider (this controller process) started: a
	// NodeClaim created before may have been launched by a previous process.
	started time.Time
	batcher *fleetBatcher
	gangs   *gangCollector
}

// NewProvider returns a Provider; it makes no API call.
func NewProvider(o Options) *Provider {
	p := &Provider{opts: o, launchSlots: make(chan struct{}, max(o.MaxConcurrentLaunches, 1)), started: o.Clock.Now()}
	idle := o.BatchIdle
	if idle == 0 {
		idle = DefaultBatchIdle
	}
	maxWait := o.BatchMax
	if maxWait <= 0 {
		maxWait = DefaultBatchMax
	}
	p.batcher = newFleetBatcher(p, idle, maxWait)
	p.gangs = newGangCollector(p, o.GangWait)
	return p
}

// Tag sets tags on an instance (a NodeClaim tag a batched launch could not
// set).
func (p *Provider) Tag(ctx context.Context, id string, tags map[string]string) error {
	return p.batcher.tag(ctx, id, tags)
}
