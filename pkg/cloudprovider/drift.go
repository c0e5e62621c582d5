package cloudprovider

import (
	"context"
	"fmt"

	"github.com/mitchellh/hashstructure/v2"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// AnnotationNodeClassHash records, on each NodeClaim, the hash of the
// GPUNodeClass fields its instance was launched with.
const AnnotationNodeClassHash = v1alpha1.Group + "/gpunodeclass-hash"

// DriftReasonNodeClass is reported when launch-relevant GPUNodeClass fields
// changed since the node launched (new AMI family, user data, kubelet, GPU
// sharing...). Core then rotates the node replace-first within budgets.
const DriftReasonNodeClass karpcp.DriftReason = "GPUNodeClassDrifted"

// launchSpec is the part of a GPUNodeClass that shapes an instance. Idle and
// disruption settings are left out on purpose: changing them must not
// replace running GPU nodes.
type launchSpec struct {
	AMIFamily           string
	AMISelectorTerms    []v1alpha1.AMISelectorTerm
	Role                string
	InstanceProfile     *string
	Tags                map[string]string
	BlockDeviceMappings []v1alpha1.BlockDeviceMapping
	Kubelet             *v1alpha1.KubeletConfiguration
	UserData            *string
	MetadataOptions     *v1alpha1.MetadataOptions
	TimeSlicing         int32
	MIGStrategy         string
	GPUTaint            bool
}

// NodeClassHash hashes the launch-relevant fields of a node class.
func NodeClassHash(nc *v1alpha1.GPUNodeClass) string {
	spec := launchSpec{
		AMIFamily:           nc.AMIFamilyOrDefault(),
		AMISelectorTerms:    nc.Spec.AMISelectorTerms,
		Role:                nc.Spec.Role,
		InstanceProfile:     nc.Spec.InstanceProfile,
		Tags:                nc.Spec.Tags,
		BlockDeviceMappings: nc.Spec.BlockDeviceMappings,
		Kubelet:             nc.Spec.Kubelet,
		UserData:            nc.Spec.UserData,
		MetadataOptions:     nc.Spec.MetadataOptions,
		TimeSlicing:         nc.TimeSlicingReplicas(),
		MIGStrategy:         nc.MIGStrategy(),
		GPUTaint:            nc.GPUTaintEnabled(),
	}
	h, err := hashstructure.Hash(spec, hashstructure.FormatV2, &hashstructure.HashOptions{SlicesAsSets: true, IgnoreZeroValue: true, ZeroNil: true})
	if err != nil {
		// Hashing plain structs cannot fail; an empty hash disables drift
		// for this node class rather than replacing every node.
		return ""
	}
	return fmt.Sprint(h)
}

// IsDrifted implements CloudProvider.
func (c *CloudProvider) IsDrifted(ctx context.Context, nodeClaim *karpv1.NodeClaim) (karpcp.DriftReason, error) {
	launched, ok := nodeClaim.Annotations[AnnotationNodeClassHash]
	if !ok || launched == "" {
		return "", nil
	}
	nodeClass, err := c.resolveNodeClass(ctx, nodeClaim.Spec.NodeClassRef)
	if err != nil {
		return "", fmt.Errorf("resolving GPUNodeClass, %w", err)
	}
	if current := NodeClassHash(nodeClass); current != "" && current != launched {
		return DriftReasonNodeClass, nil
	}
	return "", nil
}
