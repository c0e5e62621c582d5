package v1alpha1

import (
	"github.com/awslabs/operatorpkg/status"
	corev1 "k8s.io/api/core/v1"
)

// Condition types of a GPUNodeClass. Ready (status.ConditionReady) is the root
// and is True only when all of the others are True.
const (
	ConditionTypeSubnetsReady         = "SubnetsReady"
	ConditionTypeSecurityGroupsReady  = "SecurityGroupsReady"
	ConditionTypeAMIsReady            = "AMIsReady"
	ConditionTypeInstanceProfileReady = "InstanceProfileReady"
	// ConditionTypeReady is status.ConditionReady, re-exported for callers.
	ConditionTypeReady = status.ConditionReady
)

// Subnet is a subnet resolved from subnetSelectorTerms.
type Subnet struct {
	// ID of the subnet.
	// +required
	ID string `json:"id"`
	// Zone is the availability zone name of the subnet.
	// +required
	Zone string `json:"zone"`
	// ZoneID is the availability zone id of the subnet.
	// +optional
	ZoneID string `json:"zoneID,omitempty"`
}

// SecurityGroup is a security group resolved from securityGroupSelectorTerms.
type SecurityGroup struct {
	// ID of the security group.
	// +required
	ID string `json:"id"`
	// Name of the security group.
	// +optional
	Name string `json:"name,omitempty"`
}

// AMI is an image resolved from amiSelectorTerms (or the amiFamily default).
type AMI struct {
	// ID of the image.
	// +required
	ID string `json:"id"`
	// Name of the image.
	// +optional
	Name string `json:"name,omitempty"`
	// Requirements an instance type must satisfy to use this image (e.g.
	// kubernetes.io/arch, or GPU/accelerator presence for variant images).
	// +required
	Requirements []corev1.NodeSelectorRequirement `json:"requirements"`
}

// GPUNodeClassStatus is the resolved state of a GPUNodeClass.
type GPUNodeClassStatus struct {
	// Subnets resolved from subnetSelectorTerms.
	// +optional
	Subnets []Subnet `json:"subnets,omitempty"`
	// SecurityGroups resolved from securityGroupSelectorTerms.
	// +optional
	SecurityGroups []SecurityGroup `json:"securityGroups,omitempty"`
	// AMIs resolved from amiSelectorTerms or the amiFamily default.
	// +optional
	AMIs []AMI `json:"amis,omitempty"`
	// InstanceProfile is the instance profile instances launch with: the
	// user's spec.instanceProfile or the one managed for spec.role.
	// +optional
	InstanceProfile string `json:"instanceProfile,omitempty"`
	// Conditions report readiness; Ready depends on all the others.
	// +optional
	Conditions []status.Condition `json:"conditions,omitempty"`
}

// StatusConditions returns the condition set with Ready as root and the
// subnet, security group, AMI and instance profile conditions as dependents.
func (in *GPUNodeClass) StatusConditions(opts ...status.ForOption) status.ConditionSet {
	return status.NewReadyConditions(
		ConditionTypeSubnetsReady,
		ConditionTypeSecurityGroupsReady,
		ConditionTypeAMIsReady,
		ConditionTypeInstanceProfileReady,
	).For(in, opts...)
}

// GetConditions implements status.Object.
func (in *GPUNodeClass) GetConditions() []status.Condition {
	return in.Status.Conditions
}

// SetConditions implements status.Object.
func (in *GPUNodeClass) SetConditions(conditions []status.Condition) {
	in.Status.Conditions = conditions
}
