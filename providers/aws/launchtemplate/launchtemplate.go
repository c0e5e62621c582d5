// Package launchtemplate builds and ensures the EC2 launch templates a
// GPUNodeClass launches with: content-addressed (the name is a hash of the
// data), created on demand and cached, with the node's user data
// (AL2023 nodeadm, Bottlerocket TOML or custom).
package launchtemplate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/clock"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// LaunchTemplatePrefix starts the name of every launch template this
// backend creates (names are content-addressed: prefix + hash of the data).
const LaunchTemplatePrefix = "karpenter-gpu/"

// Spec is everything a launch template holds. Templates are named by
// its hash, so equal specs share a template and any change (a new image, new
// user data, a reservation) gets a new one.
type Spec struct {
	NodeClass        string
	ImageID          string
	UserData         string
	InstanceProfile  string
	SecurityGroupIDs []string
	BlockDevices     []blockDevice
	HTTPTokens       string
	HopLimit         int64
	Monitoring       bool
	PublicIP         *bool
	ReservationID    string
	CapacityBlock    bool
	Tags             map[string]string
	// EFAInterfaces attaches that many EFA network interfaces, one per
	// network card (the first is the primary interface); 0 attaches none
	// and leaves the template's name as before EFA support.
	EFAInterfaces int `json:"EFAInterfaces,omitempty"`
}

type blockDevice struct {
	DeviceName          string
	VolumeSizeGiB       int32 // 0 = the snapshot's size
	VolumeType          string
	IOPS, Throughput    int32
	Encrypted           bool
	KMSKeyID            string
	DeleteOnTermination bool
	SnapshotID          string
}

// Name is the template's content-addressed name.
func (s *Spec) Name() string {
	raw, _ := json.Marshal(s)
	return LaunchTemplatePrefix + s.NodeClass + "/" + awsutil.ShortHash(string(raw))
}

// Options configure a Provider.
type Options struct {
	EC2         EC2API
	ClusterName string
	// ClusterEndpoint is the API server URL nodes join.
	ClusterEndpoint string
	// ClusterCABundle is the base64 PEM CA of the API server.
	ClusterCABundle string
	// ClusterCIDR is the service CIDR; ClusterDNS the kube-dns service IPs.
	ClusterCIDR string
	ClusterDNS  []string
	// Images names the root device of an image.
	Images Images
	Clock  clock.Clock
	// TTL is how long a template is trusted to exist without describing
	// it again.
	TTL         time.Duration
	CallTimeout time.Duration
}

// EC2API is the EC2 calls the provider makes.
type EC2API interface {
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	CreateLaunchTemplate(ctx context.Context, in *ec2.CreateLaunchTemplateInput, optFns ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
}

// Images is what the provider asks of the images.
type Images interface {
	// RootDevice is the root device name of an image, "" when unknown.
	RootDevice(id string) string
}

// Provider builds and ensures launch templates.
type Provider struct {
	opts      Options
	templates *templateCache
}

// NewProvider returns a Provider.
func NewProvider(o Options) *Provider {
	return &Provider{opts: o, templates: newTemplateCache(o.Clock, o.TTL)}
}

// Spec builds the launch template spec of a launch: the node class's image,
// user data (with the NodeClaim's labels and taints, when given), profile,
// security groups, block devices and metadata options, and the reservation
// it targets.
func (p *Provider) Spec(nc *v1alpha1.GPUNodeClass, nodeClaim *karpv1.NodeClaim, imageID, reservationID string, capacityBlock bool) (*Spec, error) {
	bs := &bootstrap{
		ClusterName:     p.opts.ClusterName,
		ClusterEndpoint: p.opts.ClusterEndpoint,
		ClusterCA:       p.opts.ClusterCABundle,
		ClusterCIDR:     p.opts.ClusterCIDR,
		ClusterDNS:      p.opts.ClusterDNS,
		Kubelet:         nc.Spec.Kubelet,
		CustomUserData:  lo.FromPtr(nc.Spec.UserData),
	}
	if nodeClaim != nil {
		bs.Labels = nodeClaim.Labels
		bs.Taints = append(append(bs.Taints, nodeClaim.Spec.Taints...), nodeClaim.Spec.StartupTaints...)
	}
	family := nc.AMIFamilyOrDefault()
	ud, err := bs.userData(family)
	if err != nil {
		return nil, err
	}
	return &Spec{
		NodeClass:        nc.Name,
		ImageID:          imageID,
		UserData:         ud,
		InstanceProfile:  nc.Status.InstanceProfile,
		SecurityGroupIDs: lo.Map(nc.Status.SecurityGroups, func(g v1alpha1.SecurityGroup, _ int) string { return g.ID }),
		BlockDevices:     p.blockDevices(nc, family, imageID),
		HTTPTokens:       nc.HTTPTokens(),
		HopLimit:         nc.HTTPPutResponseHopLimit(),
		Monitoring:       lo.FromPtr(nc.Spec.DetailedMonitoring),
		PublicIP:         nc.Spec.AssociatePublicIPAddress,
		ReservationID:    reservationID,
		CapacityBlock:    capacityBlock,
		Tags:             nc.Spec.Tags,
	}, nil
}

// blockDevices returns the node class's mappings, or the GPU default: a
// 200Gi encrypted gp3 root volume (Bottlerocket keeps its small OS volume
// and gets the 200Gi data volume, where images and containers live).
func (p *Provider) blockDevices(nc *v1alpha1.GPUNodeClass, family, imageID string) []blockDevice {
	root := lo.CoalesceOrEmpty(p.opts.Images.RootDevice(imageID), "/dev/xvda")
	if len(nc.Spec.BlockDeviceMappings) == 0 {
		def := blockDevice{DeviceName: root, VolumeSizeGiB: gib(v1alpha1.DefaultRootVolumeSize, 200), VolumeType: v1alpha1.DefaultRootVolumeType, Encrypted: true, DeleteOnTermination: true}
		if family == v1alpha1.AMIFamilyBottlerocket {
			os := blockDevice{DeviceName: root, VolumeType: v1alpha1.DefaultRootVolumeType, Encrypted: true, DeleteOnTermination: true}
			def.DeviceName = "/dev/xvdb"
			return []blockDevice{os, def}
		}
		return []blockDevice{def}
	}
	return lo.Map(nc.Spec.BlockDeviceMappings, func(m v1alpha1.BlockDeviceMapping, _ int) blockDevice {
		d := blockDevice{DeviceName: lo.Ternary(m.RootVolume, root, m.DeviceName), VolumeType: v1alpha1.DefaultRootVolumeType, Encrypted: true, DeleteOnTermination: true}
		if e := m.EBS; e != nil {
			if e.VolumeSize != nil {
				d.VolumeSizeGiB = gib(*e.VolumeSize, 0)
			}
			d.VolumeType = lo.CoalesceOrEmpty(e.VolumeType, d.VolumeType)
			d.IOPS = int32(lo.FromPtr(e.IOPS))
			d.Throughput = int32(lo.FromPtr(e.Throughput))
			d.Encrypted = lo.FromPtrOr(e.Encrypted, true)
			d.KMSKeyID = lo.FromPtr(e.KMSKeyID)
			d.DeleteOnTermination = lo.FromPtrOr(e.DeleteOnTermination, true)
			d.SnapshotID = lo.FromPtr(e.SnapshotID)
		}
		return d
	})
}

// gib converts a quantity to whole GiB, rounding up (EBS sizes are GiB).
func gib(q resource.Quantity, def int32) int32 {
	v := q.Value()
	if v <= 0 {
		return def
	}
	return int32((v + (1 << 30) - 1) >> 30)
}

// templateCache remembers launch templates known to exist.
type templateCache struct {
	clock clock.Clock
	ttl   time.Duration
	mu    sync.Mutex
	known map[string]time.Time // name -> trusted until
	locks map[string]*sync.Mutex
}

func newTemplateCache(clk clock.Clock, ttl time.Duration) *templateCache {
	return &templateCache{clock: clk, ttl: ttl, known: map[string]time.Time{}, locks: map[string]*sync.Mutex{}}
}

func (c *templateCache) has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clock.Now().Before(c.known[name])
}

func (c *templateCache) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.known[name] = c.clock.Now().Add(c.ttl)
}

func (c *templateCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.known, name)
}

// lock serializes the creation of one template.
func (c *templateCache) lock(name string) func() {
	c.mu.Lock()
	l, ok := c.locks[name]
	if !ok {
		l = &sync.Mutex{}
		c.locks[name] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Ensure makes sure the template of spec exists and returns its name.
func (p *Provider) Ensure(ctx context.Context, spec *Spec) (string, error) {
	name := spec.Name()
	if p.templates.has(name) {
		return name, nil
	}
	unlock := p.templates.lock(name)
	defer unlock()
	if p.templates.has(name) {
		return name, nil
	}
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	out, err := p.opts.EC2.DescribeLaunchTemplates(cctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{name}})
	if err == nil && len(out.LaunchTemplates) > 0 {
		p.templates.add(name)
		return name, nil
	}
	if err != nil && !awsutil.IsNotFound(err) {
		return "", fmt.Errorf("describing launch template %s, %w", name, err)
	}
	_, err = p.opts.EC2.CreateLaunchTemplate(cctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name),
		LaunchTemplateData: p.Data(spec),
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeLaunchTemplate,
			Tags:         awsutil.ToEC2Tags(awsutil.OwnedTags(p.opts.ClusterName, map[string]string{cloudprovider.TagNodeClass: spec.NodeClass})),
		}},
	})
	if err != nil && awsutil.ErrorCode(err) != "InvalidLaunchTemplateName.AlreadyExistsException" {
		return "", fmt.Errorf("creating launch template %s, %w", name, err)
	}
	p.templates.add(name)
	return name, nil
}

// Data is the launch template data of spec.
func (p *Provider) Data(spec *Spec) *ec2types.RequestLaunchTemplateData {
	data := &ec2types.RequestLaunchTemplateData{
		ImageId:            aws.String(spec.ImageID),
		UserData:           aws.String(base64.StdEncoding.EncodeToString([]byte(spec.UserData))),
		IamInstanceProfile: &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: aws.String(spec.InstanceProfile)},
		MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
			HttpEndpoint:            ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
			HttpTokens:              ec2types.LaunchTemplateHttpTokensState(spec.HTTPTokens),
			HttpPutResponseHopLimit: aws.Int32(int32(spec.HopLimit)),
		},
		Monitoring: &ec2types.LaunchTemplatesMonitoringRequest{Enabled: lo.ToPtr(spec.Monitoring)},
		BlockDeviceMappings: lo.Map(spec.BlockDevices, func(d blockDevice, _ int) ec2types.LaunchTemplateBlockDeviceMappingRequest {
			ebs := &ec2types.LaunchTemplateEbsBlockDeviceRequest{
				VolumeType:          ec2types.VolumeType(d.VolumeType),
				Encrypted:           lo.ToPtr(d.Encrypted),
				DeleteOnTermination: lo.ToPtr(d.DeleteOnTermination),
			}
			if d.VolumeSizeGiB > 0 {
				ebs.VolumeSize = aws.Int32(d.VolumeSizeGiB)
			}
			if d.IOPS > 0 {
				ebs.Iops = aws.Int32(d.IOPS)
			}
			if d.Throughput > 0 {
				ebs.Throughput = aws.Int32(d.Throughput)
			}
			if d.KMSKeyID != "" {
				ebs.KmsKeyId = aws.String(d.KMSKeyID)
			}
			if d.SnapshotID != "" {
				ebs.SnapshotId = aws.String(d.SnapshotID)
			}
			return ec2types.LaunchTemplateBlockDeviceMappingRequest{DeviceName: aws.String(d.DeviceName), Ebs: ebs}
		}),
		TagSpecifications: []ec2types.LaunchTemplateTagSpecificationRequest{{
			ResourceType: ec2types.ResourceTypeNetworkInterface,
			Tags:         awsutil.ToEC2Tags(awsutil.OwnedTags(p.opts.ClusterName, lo.Assign(spec.Tags, map[string]string{cloudprovider.TagNodeClass: spec.NodeClass}))),
		}},
	}
	if spec.EFAInterfaces > 0 {
		// EFA: an interface on each network card, the first the primary
		// (device 0), the others device 1 of their card; the interfaces
		// carry the security groups.
		for i := range spec.EFAInterfaces {
			nic := ec2types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{
				NetworkCardIndex: aws.Int32(int32(i)), DeviceIndex: aws.Int32(int32(min(i, 1))), InterfaceType: aws.String("efa"),
				Groups: spec.SecurityGroupIDs, DeleteOnTermination: lo.ToPtr(true),
			}
			if i == 0 {
				nic.AssociatePublicIpAddress = spec.PublicIP
			}
			data.NetworkInterfaces = append(data.NetworkInterfaces, nic)
		}
	} else if spec.PublicIP != nil {
		// A public-IP choice needs an explicit primary interface, which then
		// carries the security groups.
		data.NetworkInterfaces = []ec2types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{{
			DeviceIndex: aws.Int32(0), AssociatePublicIpAddress: spec.PublicIP, Groups: spec.SecurityGroupIDs, DeleteOnTermination: lo.ToPtr(true),
		}}
	} else {
		data.SecurityGroupIds = spec.SecurityGroupIDs
	}
	switch {
	case spec.ReservationID != "":
		data.CapacityReservationSpecification = &ec2types.LaunchTemplateCapacityReservationSpecificationRequest{
			CapacityReservationTarget: &ec2types.CapacityReservationTarget{CapacityReservationId: aws.String(spec.ReservationID)},
		}
		if spec.CapacityBlock {
			data.InstanceMarketOptions = &ec2types.LaunchTemplateInstanceMarketOptionsRequest{MarketType: ec2types.MarketTypeCapacityBlock}
		}
	default:
		// Reservations are offered as "reserved" capacity and launched
		// first when they have room; on-demand and spot launches must not
		// silently consume an open reservation the provider counts.
		data.CapacityReservationSpecification = &ec2types.LaunchTemplateCapacityReservationSpecificationRequest{
			CapacityReservationPreference: ec2types.CapacityReservationPreferenceNone,
		}
	}
	return data
}

// Forget makes the next Ensure of a template describe it again (EC2 said it
// is gone).
func (p *Provider) Forget(name string) { p.templates.forget(name) }
