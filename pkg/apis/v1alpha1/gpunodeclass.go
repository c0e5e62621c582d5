package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
)

// GPUNodeClassSpec is the cloud-specific configuration of the instances that
// NodePools referencing this GPUNodeClass launch: networking, image, IAM,
// storage, kubelet settings and the GPU-specific lifecycle behaviour.
//
// +kubebuilder:validation:XValidation:message="exactly one of role or instanceProfile must be set",rule="has(self.role) != has(self.instanceProfile)"
// +kubebuilder:validation:XValidation:message="amiSelectorTerms is required when amiFamily is Custom",rule="!has(self.amiFamily) || self.amiFamily != 'Custom' || has(self.amiSelectorTerms)"
// +kubebuilder:validation:XValidation:message="an amiSelectorTerms alias must match amiFamily: al2023@... for AL2023, bottlerocket@... for Bottlerocket; amiFamily Custom cannot use an alias",rule="!has(self.amiSelectorTerms) || self.amiSelectorTerms.all(t, !has(t.alias) || ((!has(self.amiFamily) || self.amiFamily == 'AL2023') && t.alias.startsWith('al2023@')) || (has(self.amiFamily) && self.amiFamily == 'Bottlerocket' && t.alias.startsWith('bottlerocket@')))"
type GPUNodeClassSpec struct {
	// SubnetSelectorTerms select the subnets instances are launched into; a
	// subnet matching any term is used. Each term selects by tags (all must
	// match) or by id. Required; there is no default.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=30
	// +required
	SubnetSelectorTerms []SubnetSelectorTerm `json:"subnetSelectorTerms"`

	// SecurityGroupSelectorTerms select the security groups attached to
	// instances; groups matching any term are attached. Each term selects by
	// tags, id or name. Required; there is no default.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=30
	// +required
	SecurityGroupSelectorTerms []SecurityGroupSelectorTerm `json:"securityGroupSelectorTerms"`

	// AMIFamily selects the bootstrap format of the generated user data and the
	// image used when amiSelectorTerms is empty: AL2023 (the EKS-optimized
	// accelerated AL2023 image, the default) or Bottlerocket (the NVIDIA
	// variant). Custom generates no bootstrap and requires amiSelectorTerms.
	// Default: AL2023.
	// +kubebuilder:validation:Enum:={AL2023,Bottlerocket,Custom}
	// +kubebuilder:default=AL2023
	// +optional
	AMIFamily string `json:"amiFamily,omitempty"`

	// AMISelectorTerms select the images to launch; when empty, the latest
	// accelerated image of amiFamily is used (as if alias <family>@latest were
	// given). A term holding an alias must be the only term.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=30
	// +kubebuilder:validation:XValidation:message="a term with an alias must be the only amiSelectorTerm",rule="!self.exists(t, has(t.alias)) || self.size() == 1"
	// +optional
	AMISelectorTerms []AMISelectorTerm `json:"amiSelectorTerms,omitempty"`

	// Role is the IAM role name; the controller creates and manages an
	// instance profile for it. Exactly one of role and instanceProfile must be
	// set. No default.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Role string `json:"role,omitempty"`

	// InstanceProfile is the name of an existing, user-managed instance
	// profile. Exactly one of role and instanceProfile must be set. No default.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	InstanceProfile *string `json:"instanceProfile,omitempty"`

	// Tags are added to every instance, volume and network interface the
	// controller creates. Keys in the kubernetes.io/cluster/, karpenter.sh/ and
	// karpenter-gpu.io/ prefixes are set by the controller and rejected here;
	// so are karpenter.k8s.aws/ keys and eks:eks-cluster-name, Karpenter for
	// AWS's: its garbage collection takes instances tagged
	// karpenter.k8s.aws/ec2nodeclass for its own and terminates those without
	// one of its NodeClaims, and it deletes launch templates tagged
	// eks:eks-cluster-name.
	// Default: none.
	// +kubebuilder:validation:MaxProperties=50
	// +kubebuilder:validation:XValidation:message="empty tag keys aren't supported",rule="self.all(k, k != '')"
	// +kubebuilder:validation:XValidation:message="tag keys starting with 'kubernetes.io/cluster/' are set by the controller and cannot be specified",rule="self.all(k, !k.startsWith('kubernetes.io/cluster/'))"
	// +kubebuilder:validation:XValidation:message="tag keys starting with 'karpenter.sh/' are set by the controller and cannot be specified",rule="self.all(k, !k.startsWith('karpenter.sh/'))"
	// +kubebuilder:validation:XValidation:message="tag keys starting with 'karpenter-gpu.io/' are set by the controller and cannot be specified",rule="self.all(k, !k.startsWith('karpenter-gpu.io/'))"
	// +kubebuilder:validation:XValidation:message="tag keys starting with 'karpenter.k8s.aws/' belong to Karpenter for AWS and cannot be specified",rule="self.all(k, !k.startsWith('karpenter.k8s.aws/'))"
	// +kubebuilder:validation:XValidation:message="the tag key 'eks:eks-cluster-name' belongs to Karpenter for AWS and cannot be specified",rule="self.all(k, k != 'eks:eks-cluster-name')"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`

	// BlockDeviceMappings configure the instance's EBS volumes. GPU images
	// (CUDA, drivers, multi-GB model containers) need a large root volume:
	// when empty, the controller uses a single 200Gi gp3 encrypted root volume
	// (DefaultRootVolumeSize / DefaultRootVolumeType). At most one mapping may
	// be the rootVolume.
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:message="at most one blockDeviceMapping can set rootVolume",rule="self.filter(x, has(x.rootVolume) && x.rootVolume).size() <= 1"
	// +optional
	BlockDeviceMappings []BlockDeviceMapping `json:"blockDeviceMappings,omitempty"`

	// Kubelet overrides kubelet settings written into the bootstrap
	// configuration. Unset fields keep the image's defaults (maxPods is
	// derived from the instance type's network limits).
	// +optional
	Kubelet *KubeletConfiguration `json:"kubelet,omitempty"`

	// UserData is appended to the generated bootstrap (for AL2023 as an extra
	// MIME part, for Bottlerocket merged TOML); with amiFamily Custom it is used
	// as-is. Default: none.
	// +optional
	UserData *string `json:"userData,omitempty"`

	// MetadataOptions configure the instance metadata service. Default:
	// httpTokens required (IMDSv2) and a hop limit of 1, so pods cannot reach
	// the node's credentials.
	// +kubebuilder:default={}
	// +optional
	MetadataOptions *MetadataOptions `json:"metadataOptions,omitempty"`

	// AssociatePublicIPAddress overrides the subnet's public-IP behaviour for
	// the primary network interface. Default: the subnet's setting.
	// +optional
	AssociatePublicIPAddress *bool `json:"associatePublicIPAddress,omitempty"`

	// DetailedMonitoring enables 1-minute instance monitoring. Default: false.
	// +optional
	DetailedMonitoring *bool `json:"detailedMonitoring,omitempty"`

	// GPU holds GPU-specific node behaviour: tainting, device-plugin sharing,
	// idle reclamation, startup checks and disruption protection. Defaults to
	// {} so every inner default applies.
	// +kubebuilder:default={}
	// +optional
	GPU GPUOptions `json:"gpu,omitempty"`

	// Gang configures the placement of all-or-nothing gangs launched for
	// ProvisioningRequests (a cluster placement group per gang of
	// EFA-capable types by default). Defaults to {} so every inner default
	// applies.
	// +kubebuilder:default={}
	// +optional
	Gang GangOptions `json:"gang,omitempty"`
}

// SubnetSelectorTerm selects subnets by tags or by id (exactly one).
// +kubebuilder:validation:XValidation:message="each subnetSelectorTerm must set exactly one of tags or id",rule="has(self.tags) != has(self.id)"
type SubnetSelectorTerm struct {
	// Tags select subnets carrying all of these tags. A value of "*" matches
	// any value of the key.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:message="empty tag keys or values aren't supported",rule="self.all(k, k != '' && self[k] != '')"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// ID is a subnet id.
	// +kubebuilder:validation:Pattern="^subnet-[0-9a-z]+$"
	// +optional
	ID string `json:"id,omitempty"`
}

// SecurityGroupSelectorTerm selects security groups by tags, id or name
// (exactly one).
// +kubebuilder:validation:XValidation:message="each securityGroupSelectorTerm must set exactly one of tags, id or name",rule="(has(self.tags) ? 1 : 0) + (has(self.id) ? 1 : 0) + (has(self.name) ? 1 : 0) == 1"
type SecurityGroupSelectorTerm struct {
	// Tags select security groups carrying all of these tags. A value of "*"
	// matches any value of the key.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:message="empty tag keys or values aren't supported",rule="self.all(k, k != '' && self[k] != '')"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// ID is a security group id.
	// +kubebuilder:validation:Pattern="^sg-[0-9a-z]+$"
	// +optional
	ID string `json:"id,omitempty"`
	// Name is a security group name (the group-name, not the Name tag).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Name string `json:"name,omitempty"`
}

// AMISelectorTerm selects images by alias, id, or any combination of name,
// tags and owner. Alias and id cannot be combined with other fields.
// +kubebuilder:validation:XValidation:message="each amiSelectorTerm must set at least one of alias, id, name or tags",rule="has(self.alias) || has(self.id) || has(self.name) || has(self.tags)"
// +kubebuilder:validation:XValidation:message="'alias' cannot be combined with other fields in an amiSelectorTerm",rule="!has(self.alias) || !(has(self.id) || has(self.name) || has(self.tags) || has(self.owner))"
// +kubebuilder:validation:XValidation:message="'id' cannot be combined with other fields in an amiSelectorTerm",rule="!has(self.id) || !(has(self.alias) || has(self.name) || has(self.tags) || has(self.owner))"
type AMISelectorTerm struct {
	// Alias selects the accelerated image of a family at a version:
	// <family>@<version>, with family al2023 or bottlerocket and version
	// "latest" or a pinned release (e.g. al2023@v20250101,
	// bottlerocket@v1.30.0). The family must match amiFamily.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern="^(al2023|bottlerocket)@(latest|v[0-9][0-9A-Za-z.-]*)$"
	// +optional
	Alias string `json:"alias,omitempty"`
	// ID is an image id.
	// +kubebuilder:validation:Pattern="^ami-[0-9a-z]+$"
	// +optional
	ID string `json:"id,omitempty"`
	// Name selects images by name; wildcards (*) are allowed.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Name string `json:"name,omitempty"`
	// Tags select images carrying all of these tags.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:message="empty tag keys or values aren't supported",rule="self.all(k, k != '' && self[k] != '')"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// Owner restricts name/tags matches to an account id or alias (e.g.
	// "amazon", "self"). Default: "self" and "amazon".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Owner string `json:"owner,omitempty"`
}

// BlockDeviceMapping attaches an EBS volume to the instance.
type BlockDeviceMapping struct {
	// DeviceName is the device the volume is exposed as (e.g. /dev/xvda).
	// +kubebuilder:validation:Pattern="^/dev/[a-z0-9]+$"
	// +required
	DeviceName string `json:"deviceName"`
	// RootVolume marks the mapping that holds the root filesystem (the image's
	// root device name is used). At most one mapping may set it. Default: false.
	// +optional
	RootVolume bool `json:"rootVolume,omitempty"`
	// EBS configures the volume.
	// +required
	EBS *BlockDevice `json:"ebs"`
}

// BlockDevice is an EBS volume.
// +kubebuilder:validation:XValidation:message="iops is only supported for gp3, io1 and io2 volumes",rule="!has(self.iops) || !has(self.volumeType) || self.volumeType in ['gp3', 'io1', 'io2']"
// +kubebuilder:validation:XValidation:message="throughput is only supported for gp3 volumes",rule="!has(self.throughput) || !has(self.volumeType) || self.volumeType == 'gp3'"
// +kubebuilder:validation:XValidation:message="volumeSize or snapshotID must be set",rule="has(self.volumeSize) || has(self.snapshotID)"
type BlockDevice struct {
	// VolumeSize is the size of the volume in G/Gi/T/Ti (e.g. 200Gi).
	// Default: the snapshot's size when snapshotID is set.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:Pattern="^[1-9][0-9]*(Gi|G|Ti|T)$"
	// +optional
	VolumeSize *resource.Quantity `json:"volumeSize,omitempty" hash:"string"`
	// VolumeType is the EBS volume type. Default: gp3.
	// +kubebuilder:validation:Enum:={gp2,gp3,io1,io2,st1,sc1,standard}
	// +kubebuilder:default=gp3
	// +optional
	VolumeType string `json:"volumeType,omitempty"`
	// IOPS is the provisioned IOPS (gp3, io1, io2). Default: the volume
	// type's baseline (3000 for gp3).
	// +kubebuilder:validation:Minimum=100
	// +optional
	IOPS *int64 `json:"iops,omitempty"`
	// Throughput is the provisioned throughput in MiB/s (gp3 only).
	// Default: 125.
	// +kubebuilder:validation:Minimum=125
	// +optional
	Throughput *int64 `json:"throughput,omitempty"`
	// Encrypted encrypts the volume. Default: true.
	// +optional
	Encrypted *bool `json:"encrypted,omitempty"`
	// KMSKeyID is the KMS key used for encryption. Default: the account's
	// default EBS key.
	// +kubebuilder:validation:MinLength=1
	// +optional
	KMSKeyID *string `json:"kmsKeyID,omitempty"`
	// DeleteOnTermination deletes the volume with the instance. Default: true.
	// +optional
	DeleteOnTermination *bool `json:"deleteOnTermination,omitempty"`
	// SnapshotID creates the volume from a snapshot (e.g. a pre-pulled model
	// cache). Default: none.
	// +kubebuilder:validation:Pattern="^snap-[0-9a-z]+$"
	// +optional
	SnapshotID *string `json:"snapshotID,omitempty"`
}

// KubeletConfiguration overrides kubelet settings. Unset fields keep the
// image's defaults.
type KubeletConfiguration struct {
	// MaxPods caps the pods on the node. Default: derived from the instance
	// type's network limits.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxPods *int32 `json:"maxPods,omitempty"`
	// PodsPerCore caps pods per vCPU (the lower of this and maxPods applies).
	// Default: no per-core cap.
	// +kubebuilder:validation:Minimum=0
	// +optional
	PodsPerCore *int32 `json:"podsPerCore,omitempty"`
	// SystemReserved reserves resources for system daemons. Keys: cpu,
	// memory, ephemeral-storage, pid. Default: none.
	// +kubebuilder:validation:XValidation:message="valid keys for systemReserved are ['cpu','memory','ephemeral-storage','pid']",rule="self.all(x, x in ['cpu', 'memory', 'ephemeral-storage', 'pid'])"
	// +kubebuilder:validation:XValidation:message="systemReserved values cannot be negative",rule="self.all(x, !self[x].startsWith('-'))"
	// +optional
	SystemReserved map[string]string `json:"systemReserved,omitempty"`
	// KubeReserved reserves resources for Kubernetes daemons. Keys: cpu,
	// memory, ephemeral-storage, pid. Default: computed from the instance
	// type's size.
	// +kubebuilder:validation:XValidation:message="valid keys for kubeReserved are ['cpu','memory','ephemeral-storage','pid']",rule="self.all(x, x in ['cpu', 'memory', 'ephemeral-storage', 'pid'])"
	// +kubebuilder:validation:XValidation:message="kubeReserved values cannot be negative",rule="self.all(x, !self[x].startsWith('-'))"
	// +optional
	KubeReserved map[string]string `json:"kubeReserved,omitempty"`
	// EvictionHard are hard eviction thresholds by signal (e.g.
	// memory.available: 500Mi, nodefs.available: 10%). Default: the kubelet's
	// (memory.available 100Mi, nodefs.available 10%, ...).
	// +kubebuilder:validation:XValidation:message="valid keys for evictionHard are ['memory.available','nodefs.available','nodefs.inodesFree','imagefs.available','imagefs.inodesFree','containerfs.available','containerfs.inodesFree','pid.available']",rule="self.all(x, x in ['memory.available', 'nodefs.available', 'nodefs.inodesFree', 'imagefs.available', 'imagefs.inodesFree', 'containerfs.available', 'containerfs.inodesFree', 'pid.available'])"
	// +optional
	EvictionHard map[string]string `json:"evictionHard,omitempty"`
	// ClusterDNS are the DNS server IPs pods are given. Default: the cluster's
	// kube-dns service IP.
	// +kubebuilder:validation:MaxItems=3
	// +optional
	ClusterDNS []string `json:"clusterDNS,omitempty"`
}

// MetadataOptions configure the instance metadata service.
type MetadataOptions struct {
	// HTTPTokens is "required" (IMDSv2 only) or "optional". Default: required.
	// +kubebuilder:validation:Enum:={required,optional}
	// +kubebuilder:default=required
	// +optional
	HTTPTokens *string `json:"httpTokens,omitempty"`
	// HTTPPutResponseHopLimit is the IMDS response hop limit; 1 keeps the
	// node's credentials out of reach of pods on the pod network. Default: 1.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +kubebuilder:default=1
	// +optional
	HTTPPutResponseHopLimit *int64 `json:"httpPutResponseHopLimit,omitempty"`
}

// GPUOptions hold GPU-specific node behaviour.
type GPUOptions struct {
	// Taint taints GPU nodes with <accelerator resource>=true:NoSchedule (e.g.
	// nvidia.com/gpu=true:NoSchedule, aws.amazon.com/neuron=true:NoSchedule)
	// so pods that don't tolerate it, i.e. CPU-only pods, stay off expensive
	// accelerator nodes. Set false to opt out. Default: true.
	// +kubebuilder:default=true
	// +optional
	Taint *bool `json:"taint,omitempty"`

	// TimeSlicing configures the device plugin's time-slicing: each physical
	// GPU is advertised as replicas schedulable GPUs, so the node offers
	// count*replicas. Default: unset (no sharing, replicas 1).
	// +optional
	TimeSlicing *TimeSlicing `json:"timeSlicing,omitempty"`

	// MIGStrategy is the NVIDIA device plugin's MIG strategy: none (whole
	// GPUs), single (every GPU split into identical MIG devices advertised as
	// nvidia.com/gpu) or mixed (MIG devices advertised as
	// nvidia.com/mig-<profile>). Default: none.
	// +kubebuilder:validation:Enum:={none,single,mixed}
	// +kubebuilder:default=none
	// +optional
	MIGStrategy string `json:"migStrategy,omitempty"`

	// IdleAfter removes a GPU node on which no pod has requested an
	// accelerator for this long, even if CPU-only pods keep it otherwise busy.
	// "Never" disables it. Default: 10m.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Pattern=`^(([0-9]+(s|m|h))+|Never)$`
	// +kubebuilder:validation:Type="string"
	// +kubebuilder:validation:Schemaless
	// +optional
	IdleAfter *karpv1.NillableDuration `json:"idleAfter,omitempty"`

	// StartupTimeout replaces a node whose device plugin has not advertised
	// its GPUs this long after the node registered (broken driver, bad image,
	// faulty GPU). Default: 15m.
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:Pattern=`^([0-9]+(s|m|h))+$`
	// +kubebuilder:validation:Type="string"
	// +optional
	StartupTimeout *metav1.Duration `json:"startupTimeout,omitempty"`

	// Disruption limits how cost consolidation treats nodes running GPU pods.
	// Defaults to {} so the inner defaults apply.
	// +kubebuilder:default={}
	// +optional
	Disruption *GPUDisruption `json:"disruption,omitempty"`
}

// TimeSlicing configures device-plugin time-slicing.
type TimeSlicing struct {
	// Replicas is how many schedulable GPUs each physical GPU is advertised
	// as.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +required
	Replicas int32 `json:"replicas"`
}

// GPUDisruption limits cost consolidation of nodes running GPU pods.
// +kubebuilder:validation:XValidation:rule="!(has(self.protectRunningGPUPods) && has(self.protection))",message="set protection or the deprecated protectRunningGPUPods, not both"
type GPUDisruption struct {
	// Protection says how nodes running GPU pods are shielded from
	// voluntary disruption (cost consolidation, drift); karpenter-gpu sets
	// karpenter.sh/do-not-disrupt on a node while it is protected.
	//   - BreakEven (default): protected while the money the node has
	//     wasted since it became reclaimable (its price minus what a
	//     right-sized set of nodes for its pods would cost) is below
	//     breakEvenPercent % of what evicting its GPU pods would cost (work
	//     lost since their last checkpoint, or a replica's restart); past
	//     that it is released to consolidation.
	//   - Always: protected while any GPU pod runs on it.
	//   - Never: core's consolidation alone.
	// Expiry, spot interruption and repair still apply; a user's own
	// do-not-disrupt and PodDisruptionBudgets always win.
	// +kubebuilder:validation:Enum=BreakEven;Always;Never
	// +optional
	Protection *string `json:"protection,omitempty"`
	// BreakEvenPercent scales the break-even rule: a node is released once
	// its wasted money reaches this percentage of its GPU pods' eviction
	// cost (100 = the ski-rental break-even point). Default 300. Measured
	// over the bundled trace's 149 days at Karpenter's cadence with no
	// per-pod cost (designs/online.md), 300 % costs 0.966x stock Karpenter
	// with 30 % of its GPU-pod evictions; 1000 % costs 0.972x with 18 %,
	// and 30 % costs 0.959x with 1.5 times its evictions.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	// +optional
	BreakEvenPercent *int32 `json:"breakEvenPercent,omitempty"`
	// EvictionCostPerPod is a fixed cost in US dollars added to the
	// eviction-cost estimate of every GPU pod on the node (not to pods whose
	// karpenter-gpu.io/eviction-cost annotation fixes their cost): what an
	// interruption costs beyond the lost GPU work (an alert, a retry, a
	// reloaded model's cold cache). A service replica's restart costs cents
	// of GPU time, so break-even alone releases its node within the hour; a
	// per-pod cost makes the rule weigh how many pods a release evicts.
	// Default "0.3" ("0" turns it off). Measured over the bundled trace's
	// 149 days at Karpenter's cadence (designs/online.md), "0.3" evicts 9 %
	// of stock Karpenter's GPU pods for 0.979x its cost, where "0" evicts
	// 30 % for 0.966x.
	// +kubebuilder:validation:Pattern=`^[0-9]{1,6}(\.[0-9]{1,6})?$`
	// +optional
	EvictionCostPerPod *string `json:"evictionCostPerPod,omitempty"`
	// ProtectRunningGPUPods is the earlier form of protection: true means
	// Always (never evict GPU work for cost), false means Never. When unset,
	// protection applies.
	// +optional
	ProtectRunningGPUPods *bool `json:"protectRunningGPUPods,omitempty"`
	// DrainByAttrition soft-cordons a node while the break-even rule finds
	// it reclaimable: karpenter-gpu adds the PreferNoSchedule taint
	// karpenter-gpu.io/draining, so kube-scheduler places new pods on other
	// nodes and the node may empty by itself, with no eviction. The
	// provisioning loop lifts the taint (for UncordonHoldOff) whenever a
	// pending pod would otherwise need new capacity that the node could
	// hold, so the cordon never causes a launch. BreakEven protection only.
	// +optional
	DrainByAttrition *bool `json:"drainByAttrition,omitempty"`
	// Repack lets karpenter-gpu replace nodes released by the break-even
	// rule with the packer's cheapest set of new nodes for their pods when
	// it costs less by a margin, in moves core's consolidation never makes:
	// one node split into several, or several released nodes merged. The
	// new nodes are launched and Ready before an old node's NodeClaim is
	// deleted (core's termination then drains it within
	// PodDisruptionBudgets); the old nodes of a merge are deleted as the
	// NodePool's disruption budget allows. BreakEven protection only.
	// Default: true.
	// +optional
	Repack *bool `json:"repack,omitempty"`
}

// Protection modes of spec.gpu.disruption.protection.
const (
	ProtectionBreakEven = "BreakEven"
	ProtectionAlways    = "Always"
	ProtectionNever     = "Never"
)

// GPUNodeClass is the karpenter-gpu.io NodeClass: the cloud and GPU
// configuration NodePools reference via spec.template.spec.nodeClassRef.
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=gpunodeclasses,scope=Cluster,categories=karpenter,shortName={gpunc,gpuncs}
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Role",type="string",JSONPath=".spec.role",priority=1
type GPUNodeClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec GPUNodeClassSpec `json:"spec"`
	// +optional
	Status GPUNodeClassStatus `json:"status,omitempty"`
}

// GPUNodeClassList is a list of GPUNodeClasses.
// +kubebuilder:object:root=true
type GPUNodeClassList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GPUNodeClass `json:"items"`
}
