// Package aws is the EC2 backend of karpenter-gpu. It executes what the
// provider (pkg/cloudprovider) decided: it resolves a GPUNodeClass's subnets,
// security groups, images and instance profile (Resolve, one
// StatusReconciler per concern), dry-runs a launch (Validate), describes
// where and at what price a node class can launch (Offerings), launches an
// instance through an instant EC2 Fleet over the provider's ordered options
// (Launch), and finds, lists and terminates the instances it launched.
//
// Each concern is a subpackage with its own Provider, as in
// karpenter-provider-aws: subnet, securitygroup, ami, instanceprofile,
// pricing, instancetype, capacityreservation, offering, launchtemplate and
// instance; Backend assembles them (NewBackend) and delegates.
//
// Every call goes through aws-sdk-go-v2 clients; tests point them at the
// in-process server in providers/aws/fakeaws through BaseEndpoint.
package aws

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	awspricing "github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/samber/lo"
	"k8s.io/utils/clock"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/ami"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/capacityreservation"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instance"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instanceprofile"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instancetype"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/launchtemplate"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/offering"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/pricing"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/securitygroup"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/subnet"
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
	Pricing *awspricing.Client
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
	// GangWait is how long the launches of a gang attempt (NodeClaims a
	// ProvisioningRequest created together) wait for the rest of the gang
	// before one all-or-nothing CreateFleet launches them (default 10s).
	GangWait time.Duration
}

// Backend implements cloudprovider.Backend, nodeclass.Resolver and
// nodeclass.Validator on EC2. It assembles one provider per concern (the
// subpackages of providers/aws) and delegates to them.
type Backend struct {
	opts  Options
	clock clock.Clock

	subnets          *subnet.Provider
	securityGroups   *securitygroup.Provider
	amis             *ami.Provider
	instanceProfiles *instanceprofile.Provider
	prices           *pricing.Provider
	types            *instancetype.Provider
	reservations     *capacityreservation.Provider
	offerings        *offering.Provider
	templates        *launchtemplate.Provider
	instances        *instance.Provider
	// reconcilers resolve the GPUNodeClass status, one concern each, in
	// this order (Resolve).
	reconcilers []StatusReconciler
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
	b := &Backend{opts: opts, clock: clk}
	b.subnets = subnet.NewProvider(subnet.Options{EC2: opts.EC2, CallTimeout: opts.CallTimeout})
	b.securityGroups = securitygroup.NewProvider(securitygroup.Options{EC2: opts.EC2, CallTimeout: opts.CallTimeout})
	b.types = instancetype.NewProvider(instancetype.Options{EC2: opts.EC2, Entries: entries, DisableDiscovery: opts.DisableInstanceTypeDiscovery,
		Clock: clk, Refresh: opts.InstanceTypeRefresh, RefreshRetry: opts.RefreshRetry, CallTimeout: opts.CallTimeout})
	b.amis = ami.NewProvider(ami.Options{EC2: opts.EC2, SSM: opts.SSM, KubernetesVersion: opts.KubernetesVersion, InstanceTypes: b.types,
		Clock: clk, Refresh: opts.ImageRefresh, RefreshRetry: opts.RefreshRetry, CallTimeout: opts.CallTimeout})
	ipOpts := instanceprofile.Options{ClusterName: opts.ClusterName, Region: opts.Region, CallTimeout: opts.CallTimeout}
	if opts.IAM != nil { // a nil *iam.Client must stay a nil interface
		ipOpts.IAM = opts.IAM
	}
	b.instanceProfiles = instanceprofile.NewProvider(ipOpts)
	priceOpts := pricing.Options{EC2: opts.EC2, Region: opts.Region, Entries: entries, Clock: clk,
		OnDemandRefresh: opts.OnDemandPriceRefresh, SpotRefresh: opts.SpotPriceRefresh, RefreshRetry: opts.RefreshRetry, CallTimeout: opts.CallTimeout}
	if opts.Pricing != nil {
		priceOpts.Pricing = opts.Pricing
	}
	b.prices = pricing.NewProvider(priceOpts)
	b.reservations = capacityreservation.NewProvider(capacityreservation.Options{EC2: opts.EC2, Tags: opts.CapacityReservationTags,
		Clock: clk, Refresh: opts.ReservationRefresh, RefreshRetry: opts.RefreshRetry, CallTimeout: opts.CallTimeout})
	b.offerings = offering.NewProvider(offering.Options{EC2: opts.EC2, Region: opts.Region, InstanceTypes: b.types, Prices: b.prices,
		Reservations: b.reservations, Clock: clk, RefreshRetry: opts.RefreshRetry, CallTimeout: opts.CallTimeout})
	b.templates = launchtemplate.NewProvider(launchtemplate.Options{EC2: opts.EC2, ClusterName: opts.ClusterName,
		ClusterEndpoint: opts.ClusterEndpoint, ClusterCABundle: opts.ClusterCABundle, ClusterCIDR: opts.ClusterCIDR, ClusterDNS: opts.ClusterDNS,
		Images: b.amis, Clock: clk, TTL: opts.LaunchTemplateTTL, CallTimeout: opts.CallTimeout})
	b.instances = instance.NewProvider(instance.Options{EC2: opts.EC2, ClusterName: opts.ClusterName, Clock: clk,
		Subnets: b.subnets, Templates: b.templates, InstanceTypes: b.types, Reservations: b.reservations,
		MaxConcurrentLaunches: opts.MaxConcurrentLaunches, CallTimeout: opts.CallTimeout, LaunchTimeout: opts.LaunchTimeout,
		BatchIdle: opts.BatchIdle, BatchMax: opts.BatchMax, GangWait: opts.GangWait})
	b.reconcilers = []StatusReconciler{
		&SubnetReconciler{Subnets: b.subnets},
		&SecurityGroupReconciler{SecurityGroups: b.securityGroups},
		&AMIReconciler{AMIs: b.amis},
		&InstanceProfileReconciler{InstanceProfiles: b.instanceProfiles},
	}
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

// Offerings implements cloudprovider.Backend (offering.Provider).
func (b *Backend) Offerings(ctx context.Context, nc *v1alpha1.GPUNodeClass) (*cloudprovider.OfferingInfo, error) {
	return b.offerings.Offerings(ctx, nc)
}

// Launch implements cloudprovider.Backend (instance.Provider).
func (b *Backend) Launch(ctx context.Context, req *cloudprovider.LaunchRequest) (*cloudprovider.LaunchResult, error) {
	return b.instances.Launch(ctx, req)
}

// LaunchGang launches a gang all at once or not at all (instance.Provider).
func (b *Backend) LaunchGang(ctx context.Context, req GangRequest) (*GangResult, error) {
	return b.instances.LaunchGang(ctx, req)
}

// Get implements cloudprovider.Backend.
func (b *Backend) Get(ctx context.Context, id string) (*cloudprovider.Instance, error) {
	return b.instances.Get(ctx, id)
}

// List implements cloudprovider.Backend: every instance of this cluster not
// yet terminated that is tagged with a NodeClaim.
func (b *Backend) List(ctx context.Context) ([]*cloudprovider.Instance, error) {
	return b.instances.List(ctx)
}

// Terminate implements cloudprovider.Backend.
func (b *Backend) Terminate(ctx context.Context, id string) error {
	return b.instances.Terminate(ctx, id)
}

// Gang launches (instance.Provider.LaunchGang); see designs/gang.md.
type (
	GangRequest       = instance.GangRequest
	GangResult        = instance.GangResult
	GangCapacityError = instance.GangCapacityError
)

// IsGangCapacityError reports whether err is a whole-gang refusal.
func IsGangCapacityError(err error) bool { return instance.IsGangCapacityError(err) }

// RestartLookupWindow: see instance.RestartLookupWindow.
const RestartLookupWindow = instance.RestartLookupWindow
