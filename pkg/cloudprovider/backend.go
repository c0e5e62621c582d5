package cloudprovider

import (
	"context"
	"errors"
	"fmt"
	"time"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

// Backend is the cloud API the provider launches through. It is deliberately
// small: the provider owns every decision (which offering, in which order,
// what to remember about refusals); a backend only executes calls and reports
// what the cloud said. providers/fake and providers/aws implement it.
type Backend interface {
	// Name identifies the backend in logs and metrics ("fake", "aws").
	Name() string
	// Offerings describes where and how a node class can launch: zones,
	// capacity types, prices and capacity reservations. The provider turns it
	// into Karpenter offerings with the catalog.
	Offerings(ctx context.Context, nodeClass *v1alpha1.GPUNodeClass) (*OfferingInfo, error)
	// Launch starts one instance from the first option the cloud accepts.
	// Options arrive cheapest first. Refused options are reported in
	// LaunchResult.Refused; a nil Instance with a nil error means every option
	// was refused for capacity.
	Launch(ctx context.Context, req *LaunchRequest) (*LaunchResult, error)
	// Get returns an instance by ID, or an error satisfying IsNotFound.
	Get(ctx context.Context, id string) (*Instance, error)
	// List returns every instance this backend launched for the cluster.
	List(ctx context.Context) ([]*Instance, error)
	// Terminate starts termination; terminating an instance that is gone
	// returns an error satisfying IsNotFound.
	Terminate(ctx context.Context, id string) error
	// ProviderID and InstanceID map between instance IDs and node provider IDs.
	ProviderID(inst *Instance) string
	InstanceID(providerID string) (string, error)
}

// OfferingInfo is what a backend knows about the offerings of a node class.
type OfferingInfo struct {
	Zones         []string
	CapacityTypes []string
	// Prices returns the price of each offering; nil means on-demand prices
	// from the catalog for Region.
	Prices       catalog.PriceSource
	Region       string
	Reservations []catalog.Reservation
	// Entries overrides the catalog entries (for example merged with the
	// cloud's DescribeInstanceTypes); nil keeps the provider's catalog.
	Entries []catalog.Entry
}

// LaunchOption is one offering the provider is willing to launch.
type LaunchOption struct {
	InstanceType  string
	Zone          string
	CapacityType  string
	ReservationID string
	Price         float64
}

func (o LaunchOption) String() string {
	return fmt.Sprintf("%s/%s/%s", o.InstanceType, o.Zone, o.CapacityType)
}

// LaunchRequest asks a backend for one instance.
type LaunchRequest struct {
	NodeClaim *karpv1.NodeClaim
	NodeClass *v1alpha1.GPUNodeClass
	// Options in the order the provider prefers them (reserved first, then
	// by price).
	Options []LaunchOption
	// Tags the instance must carry so List/garbage collection can find it.
	Tags map[string]string
	// ClientToken makes the launch idempotent across controller restarts.
	ClientToken string
}

// LaunchResult is the outcome of a launch.
type LaunchResult struct {
	Instance *Instance
	// Refused lists options the cloud refused for capacity; the provider
	// remembers them as unavailable.
	Refused []LaunchOption
}

// InstanceState is the lifecycle state of an instance.
type InstanceState string

const (
	InstanceStatePending    InstanceState = "pending"
	InstanceStateRunning    InstanceState = "running"
	InstanceStateTerminated InstanceState = "terminated"
)

// Instance is a cloud instance as the provider sees it.
type Instance struct {
	ID            string
	InstanceType  string
	Zone          string
	CapacityType  string
	ReservationID string
	ImageID       string
	State         InstanceState
	LaunchTime    time.Time
	Tags          map[string]string
}

// NotFoundError is returned by backends for an instance that does not exist.
type NotFoundError struct{ ID string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("instance %q not found", e.ID) }

// IsNotFound reports whether err says an instance does not exist.
func IsNotFound(err error) bool {
	var nf *NotFoundError
	return errors.As(err, &nf)
}

// Tag keys set on every instance so List and garbage collection can map
// instances back to NodeClaims.
const (
	TagNodeClaim = v1alpha1.Group + "/nodeclaim"
	TagNodePool  = karpv1.NodePoolLabelKey
	TagNodeClass = v1alpha1.Group + "/gpunodeclass"
	TagCluster   = v1alpha1.Group + "/cluster"
)
