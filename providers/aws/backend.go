// Package aws is the EC2 backend of karpenter-gpu. It executes what the
// provider (pkg/cloudprovider) decided: it resolves a GPUNodeClass's subnets,
// security groups, images and instance profile (Resolve), describes where and
// at what price a node class can launch (Offerings), launches an instance
// through an instant EC2 Fleet over the provider's ordered options (Launch),
// and finds, lists and terminates the instances it launched.
//
// Every call goes through aws-sdk-go-v2 clients; tests point them at the
// in-process server in providers/aws/fakeaws through BaseEndpoint.
package aws

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/samber/lo"
	"k8s.io/utils/clock"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// ProviderIDPrefix starts every provider ID this backend returns; the full
// form is aws:///<zone>/<instance-id>, as the AWS cloud controller sets it.
const ProviderIDPrefix = "aws:///"

// Defaults of Options fields left zero.
const (
	DefaultMaxConcurrentLaunches = 10
	DefaultCallTimeout           = 30 * time.Second
	DefaultLaunchTimeout         = 2 * time.Minute
	DefaultOnDemandPriceRefresh  = 12 * time.Hour
	DefaultSpotPriceRefresh      = time.Hour
	DefaultInstanceTypeRefresh   = 12 * time.Hour
	DefaultReservationRefresh    = time.Minute
	DefaultImageRefresh          = time.Hour
	// DefaultRefreshRetry is how long a failed refresh waits before the next
	// attempt; the last known good data is served meanwhile.
	DefaultRefreshRetry = time.Minute
	// DefaultLaunchTemplateTTL is how long a launch template is trusted to
	// exist without describing it again.
	DefaultLaunchTemplateTTL = 10 * time.Minute
)

// Options configures a Backend. EC2 and SSM are required; the region and
// clients come from LoadConfig/NewClients in production.
type Options struct {
	Region      string
	ClusterName string
	// ClusterEndpoint is the API server URL nodes join.
	ClusterEndpoint string
	// ClusterCABundle is the base64 PEM CA of the API server (nodeadm's
	// certificateAuthority, Bottlerocket's cluster-certificate).
	ClusterCABundle string
	// ClusterCIDR is the service CIDR (nodeadm's cidr); ClusterDNS the
	// kube-dns service IPs. Both optional.
	ClusterCIDR string
	ClusterDNS  []string
	// KubernetesVersion ("1.33") selects the SSM parameters of the EKS
	// accelerated images. Required unless every node class sets
	// amiSelectorTerms without an alias.
	KubernetesVersion string

	EC2 *ec2.Client
	SSM *ssm.Client
	// Pricing refreshes on-demand prices; nil keeps the embedded prices.
	Pricing *pricing.Client
	// IAM manages instance profiles for spec.role and verifies
	// spec.instanceProfile; nil accepts spec.instanceProfile as given and
	// reports spec.role as unresolvable.
	IAM   *iam.Client
	Clock clock.Clock

	// Entries is the instance catalog merged with DescribeInstanceTypes;
	// nil means the embedded catalog.
	Entries []catalog.Entry
	// DisableInstanceTypeDiscovery keeps Entries as they are (no
	// DescribeInstanceTypes/DescribeInstanceTypeOfferings).
	DisableInstanceTypeDiscovery bool
	// CapacityReservationTags restricts the reservations offered as
	// "reserved" capacity to those carrying all of these tags; empty means
	// every active reservation of the account in the node class's zones.
	CapacityReservationTags map[string]string

	MaxConcurrentLaunches int
	CallTimeout           time.Duration
	LaunchTimeout         time.Duration
	OnDemandPriceRefresh  time.Duration
	SpotPriceRefresh      time.Duration
	InstanceTypeRefresh   time.Duration
	ReservationRefresh    time.Duration
	ImageRefresh          time.Duration
	RefreshRetry          time.Duration
	LaunchTemplateTTL     time.Duration
	// BatchIdle is how long identical concurrent launches wait for one
	// another before one CreateFleet serves them all (default 35ms);
	// BatchMax bounds the wait (default 1s). A negative BatchIdle disables
	// batching.
	BatchIdle time.Duration
	BatchMax  time.Duration
}

// Backend implements cloudprovider.Backend and nodeclass.Resolver on EC2.
type Backend struct {
	opts        Options
	ec2         *ec2.Client
	ssm         *ssm.Client
	pricing     *pricing.Client
	iam         *iam.Client
	clock       clock.Clock
	launchSlots chan struct{}
	// started is when this backend (this controller process) started: a
	// NodeClaim created before may have been launched by a previous process.
	started time.Time

	prices       *priceBook
	types        *typeBook
	reservations *reservationBook
	images       *imageBook
	templates    *templateCache
	batcher      *fleetBatcher

	mu sync.Mutex
	// subnets and amis remember details Resolve saw that the status does
	// not hold (free IPs, root device names).
	subnets map[string]subnetDetail
	amis    map[string]amiDetail
	zones   *refreshed[[]string]
}

var _ cloudprovider.Backend = (*Backend)(nil)

// NewBackend returns a Backend. It makes no API call: prices, instance types
// and reservations load on first use and refresh in the background of calls.
func NewBackend(ctx context.Context, opts Options) (*Backend, error) {
	if opts.EC2 == nil || opts.SSM == nil {
		return nil, fmt.Errorf("aws: EC2 and SSM clients are required")
	}
	if opts.ClusterName == "" {
		return nil, fmt.Errorf("aws: ClusterName is required")
	}
	if opts.Region == "" {
		opts.Region = opts.EC2.Options().Region
	}
	if opts.Region == "" {
		return nil, fmt.Errorf("aws: Region is required")
	}
	opts.MaxConcurrentLaunches = lo.Ternary(opts.MaxConcurrentLaunches <= 0, DefaultMaxConcurrentLaunches, opts.MaxConcurrentLaunches)
	opts.CallTimeout = lo.Ternary(opts.CallTimeout <= 0, DefaultCallTimeout, opts.CallTimeout)
	opts.LaunchTimeout = lo.Ternary(opts.LaunchTimeout <= 0, DefaultLaunchTimeout, opts.LaunchTimeout)
	opts.OnDemandPriceRefresh = lo.Ternary(opts.OnDemandPriceRefresh <= 0, DefaultOnDemandPriceRefresh, opts.OnDemandPriceRefresh)
	opts.SpotPriceRefresh = lo.Ternary(opts.SpotPriceRefresh <= 0, DefaultSpotPriceRefresh, opts.SpotPriceRefresh)
	opts.InstanceTypeRefresh = lo.Ternary(opts.InstanceTypeRefresh <= 0, DefaultInstanceTypeRefresh, opts.InstanceTypeRefresh)
	opts.ReservationRefresh = lo.Ternary(opts.ReservationRefresh <= 0, DefaultReservationRefresh, opts.ReservationRefresh)
	opts.ImageRefresh = lo.Ternary(opts.ImageRefresh <= 0, DefaultImageRefresh, opts.ImageRefresh)
	opts.RefreshRetry = lo.Ternary(opts.RefreshRetry <= 0, DefaultRefreshRetry, opts.RefreshRetry)
	opts.LaunchTemplateTTL = lo.Ternary(opts.LaunchTemplateTTL <= 0, DefaultLaunchTemplateTTL, opts.LaunchTemplateTTL)
	clk := lo.Ternary[clock.Clock](opts.Clock == nil, clock.RealClock{}, opts.Clock)
	opts.Clock = clk
	entries := opts.Entries
	if entries == nil {
		var err error
		if entries, _, err = catalog.Embedded(); err != nil {
			return nil, fmt.Errorf("aws: loading embedded catalog, %w", err)
		}
	}
	b := &Backend{
		opts:        opts,
		ec2:         opts.EC2,
		ssm:         opts.SSM,
		pricing:     opts.Pricing,
		iam:         opts.IAM,
		clock:       clk,
		launchSlots: make(chan struct{}, opts.MaxConcurrentLaunches),
		started:     clk.Now(),
		subnets:     map[string]subnetDetail{},
		amis:        map[string]amiDetail{},
		zones:       newRefreshed[[]string](clk, time.Hour, opts.RefreshRetry),
	}
	b.prices = newPriceBook(b, entries)
	b.types = newTypeBook(b, entries)
	b.reservations = newReservationBook(b)
	b.images = newImageBook(b)
	b.templates = newTemplateCache(clk, opts.LaunchTemplateTTL)
	b.batcher = newFleetBatcher(b, lo.Ternary(opts.BatchIdle == 0, DefaultBatchIdle, opts.BatchIdle), lo.Ternary(opts.BatchMax <= 0, DefaultBatchMax, opts.BatchMax))
	return b, nil
}

// Name implements cloudprovider.Backend.
func (b *Backend) Name() string { return "aws" }

// ProviderID implements cloudprovider.Backend: aws:///<zone>/<instance-id>.
func (b *Backend) ProviderID(inst *cloudprovider.Instance) string {
	return fmt.Sprintf("%s%s/%s", ProviderIDPrefix, inst.Zone, inst.ID)
}

var providerIDPattern = regexp.MustCompile(`^aws:///[^/]*/(i-[0-9a-zA-Z]+)$`)

// InstanceID implements cloudprovider.Backend.
func (b *Backend) InstanceID(providerID string) (string, error) {
	m := providerIDPattern.FindStringSubmatch(providerID)
	if m == nil {
		return "", fmt.Errorf("provider ID %q is not of the form %s<zone>/<instance-id>", providerID, ProviderIDPrefix)
	}
	return m[1], nil
}

// call bounds one API call with the call timeout.
func (b *Backend) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.opts.CallTimeout)
}

// clusterTagKey is the tag the AWS cloud controller and load balancer
// controllers use to find a cluster's instances.
func (b *Backend) clusterTagKey() string { return "kubernetes.io/cluster/" + b.opts.ClusterName }

// region returns the configured region.
func (b *Backend) region() string { return b.opts.Region }

// ptr helpers kept short for the request builders.
var (
	str = awssdk.String
	i32 = awssdk.Int32
)
