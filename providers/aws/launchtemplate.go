package aws

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/clock"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// LaunchTemplatePrefix starts the name of every launch template this
// backend creates (names are content-addressed: prefix + hash of the data).
const LaunchTemplatePrefix = "karpenter-gpu/"

// templateSpec is everything a launch template holds. Templates are named by
// its hash, so equal specs share a template and any change (a new image, new
// user data, a reservation) gets a new one.
type templateSpec struct {
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

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}

func (s *templateSpec) name() string {
	raw, _ := json.Marshal(s)
	return LaunchTemplatePrefix + s.NodeClass + "/" + shortHash(string(raw))
}

// templateFor builds the launch template spec of a launch.
func (b *Backend) templateFor(nc *v1alpha1.GPUNodeClass, nodeClaim *karpv1.NodeClaim, imageID, reservationID string, capacityBlock bool) (*templateSpec, error) {
	bs := &bootstrap{
		ClusterName:     b.opts.ClusterName,
		ClusterEndpoint: b.opts.ClusterEndpoint,
		ClusterCA:       b.opts.ClusterCABundle,
		ClusterCIDR:     b.opts.ClusterCIDR,
		ClusterDNS:      b.opts.ClusterDNS,
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
	return &templateSpec{
		NodeClass:        nc.Name,
		ImageID:          imageID,
		UserData:         ud,
		InstanceProfile:  nc.Status.InstanceProfile,
		SecurityGroupIDs: lo.Map(nc.Status.SecurityGroups, func(g v1alpha1.SecurityGroup, _ int) string { return g.ID }),
		BlockDevices:     b.blockDevices(nc, family, imageID),
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
func (b *Backend) blockDevices(nc *v1alpha1.GPUNodeClass, family, imageID string) []blockDevice {
	root := lo.CoalesceOrEmpty(b.amiDetailOf(imageID).RootDevice, "/dev/xvda")
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

// ensureTemplate makes sure the template of spec exists and returns its name.
func (b *Backend) ensureTemplate(ctx context.Context, spec *templateSpec) (string, error) {
	name := spec.name()
	if b.templates.has(name) {
		return name, nil
	}
	unlock := b.templates.lock(name)
	defer unlock()
	if b.templates.has(name) {
		return name, nil
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	out, err := b.ec2.DescribeLaunchTemplates(cctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{name}})
	if err == nil && len(out.LaunchTemplates) > 0 {
		b.templates.add(name)
		return name, nil
	}
	if err != nil && !isNotFound(err) {
		return "", fmt.Errorf("describing launch template %s, %w", name, err)
	}
	_, err = b.ec2.CreateLaunchTemplate(cctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: str(name),
		LaunchTemplateData: b.templateData(spec),
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeLaunchTemplate,
			Tags:         toEC2Tags(b.ownedTags(map[string]string{cloudprovider.TagNodeClass: spec.NodeClass})),
		}},
	})
	if err != nil && errorCode(err) != "InvalidLaunchTemplateName.AlreadyExistsException" {
		return "", fmt.Errorf("creating launch template %s, %w", name, err)
	}
	b.templates.add(name)
	return name, nil
}

func (b *Backend) templateData(spec *templateSpec) *ec2types.RequestLaunchTemplateData {
	data := &ec2types.RequestLaunchTemplateData{
		ImageId:            str(spec.ImageID),
		UserData:           str(base64.StdEncoding.EncodeToString([]byte(spec.UserData))),
		IamInstanceProfile: &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: str(spec.InstanceProfile)},
		MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
			HttpEndpoint:            ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
			HttpTokens:              ec2types.LaunchTemplateHttpTokensState(spec.HTTPTokens),
			HttpPutResponseHopLimit: i32(int32(spec.HopLimit)),
		},
		Monitoring: &ec2types.LaunchTemplatesMonitoringRequest{Enabled: lo.ToPtr(spec.Monitoring)},
		BlockDeviceMappings: lo.Map(spec.BlockDevices, func(d blockDevice, _ int) ec2types.LaunchTemplateBlockDeviceMappingRequest {
			ebs := &ec2types.LaunchTemplateEbsBlockDeviceRequest{
				VolumeType:          ec2types.VolumeType(d.VolumeType),
				Encrypted:           lo.ToPtr(d.Encrypted),
				DeleteOnTermination: lo.ToPtr(d.DeleteOnTermination),
			}
			if d.VolumeSizeGiB > 0 {
				ebs.VolumeSize = i32(d.VolumeSizeGiB)
			}
			if d.IOPS > 0 {
				ebs.Iops = i32(d.IOPS)
			}
			if d.Throughput > 0 {
				ebs.Throughput = i32(d.Throughput)
			}
			if d.KMSKeyID != "" {
				ebs.KmsKeyId = str(d.KMSKeyID)
			}
			if d.SnapshotID != "" {
				ebs.SnapshotId = str(d.SnapshotID)
			}
			return ec2types.LaunchTemplateBlockDeviceMappingRequest{DeviceName: str(d.DeviceName), Ebs: ebs}
		}),
		TagSpecifications: []ec2types.LaunchTemplateTagSpecificationRequest{{
			ResourceType: ec2types.ResourceTypeNetworkInterface,
			Tags:         toEC2Tags(b.ownedTags(lo.Assign(spec.Tags, map[string]string{cloudprovider.TagNodeClass: spec.NodeClass}))),
		}},
	}
	if spec.PublicIP != nil {
		// A public-IP choice needs an explicit primary interface, which then
		// carries the security groups.
		data.NetworkInterfaces = []ec2types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{{
			DeviceIndex: i32(0), AssociatePublicIpAddress: spec.PublicIP, Groups: spec.SecurityGroupIDs, DeleteOnTermination: lo.ToPtr(true),
		}}
	} else {
		data.SecurityGroupIds = spec.SecurityGroupIDs
	}
	switch {
	case spec.ReservationID != "":
		data.CapacityReservationSpecification = &ec2types.LaunchTemplateCapacityReservationSpecificationRequest{
			CapacityReservationTarget: &ec2types.CapacityReservationTarget{CapacityReservationId: str(spec.ReservationID)},
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

// ownedTags adds the cluster ownership tags to tags.
func (b *Backend) ownedTags(tags map[string]string) map[string]string {
	return lo.Assign(tags, map[string]string{
		b.clusterTagKey():        "owned",
		cloudprovider.TagCluster: b.opts.ClusterName,
		"eks:eks-cluster-name":   b.opts.ClusterName,
	})
}

func toEC2Tags(tags map[string]string) []ec2types.Tag {
	keys := lo.Keys(tags)
	sort.Strings(keys)
	return lo.Map(keys, func(k string, _ int) ec2types.Tag { return ec2types.Tag{Key: str(k), Value: str(tags[k])} })
}
