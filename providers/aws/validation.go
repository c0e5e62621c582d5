package aws

// Dry-run validation of a resolved GPUNodeClass: the launch template and an
// instance launch are sent to EC2 with DryRun set, so a missing IAM
// permission (ec2:CreateLaunchTemplate, ec2:RunInstances with the
// cluster's tags, iam:PassRole on the node role, KMS on an encrypted
// volume's key) or a parameter EC2 refuses shows on the GPUNodeClass
// (condition ValidationSucceeded) instead of at the first launch, as
// Karpenter-AWS's EC2NodeClass does.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/instance"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// DryRunSucceeded is the error code EC2 answers a dry run that would have
// succeeded with.
const DryRunSucceeded = "DryRunOperation"

// Instance types the launch dry run asks for, by architecture: the
// smallest current NVIDIA types, launched in every commercial region.
var validationInstanceTypes = map[string]string{"amd64": "g4dn.xlarge", "arm64": "g5g.xlarge"}

// ValidationError is a dry run EC2 refused: the node class cannot launch
// as configured. Reason is EC2's error code (UnauthorizedOperation,
// InvalidParameterValue, ...).
type ValidationError struct {
	Operation, Reason, Message string
}

// ConditionReason is the reason of GPUNodeClass's ValidationSucceeded=False
// (nodeclass.ValidationFailure).
func (e *ValidationError) ConditionReason() string { return e.Reason }

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s dry run refused: %s: %s", e.Operation, e.Reason, e.Message)
}

// TagError is a node class whose spec.tags holds keys of Karpenter for AWS
// (awsutil.KarpenterAWSTagKey): the CRD refuses them, but an object stored
// before those rules keeps its tags. The controller leaves them off everything it creates; the
// condition says so, so the user removes them.
type TagError struct{ Keys []string }

// ConditionReason is the reason of GPUNodeClass's ValidationSucceeded=False.
func (e *TagError) ConditionReason() string { return "KarpenterAWSTag" }

func (e *TagError) Error() string {
	return fmt.Sprintf("spec.tags: %s belong to Karpenter for AWS, which takes launch templates and instances carrying them for its own (and deletes them); they are left off every resource: remove them",
		strings.Join(lo.Map(e.Keys, func(k string, _ int) string { return strconv.Quote(k) }), ", "))
}

// Validate dry-runs CreateLaunchTemplate and RunInstances for a node class
// Resolve has filled (subnets, security groups, images, instance profile).
// It returns nil when EC2 would accept both, a *ValidationError when it
// refuses one, and any other error when the answer is inconclusive
// (throttling, a server error, an unresolved node class): the caller
// retries rather than report a verdict.
func (b *Backend) Validate(ctx context.Context, nc *v1alpha1.GPUNodeClass) error {
	if keys := lo.Filter(lo.Keys(nc.Spec.Tags), func(k string, _ int) bool { return awsutil.KarpenterAWSTagKey(k) }); len(keys) > 0 {
		sort.Strings(keys)
		return &TagError{Keys: keys}
	}
	if missing := instance.Unresolved(nc); len(missing) > 0 {
		return fmt.Errorf("node class %s is not resolved (%v)", nc.Name, missing)
	}
	ami := nc.Status.AMIs[0]
	spec, err := b.templates.Spec(nc, nil, ami.ID, "", false)
	if err != nil {
		return fmt.Errorf("building the launch template, %w", err)
	}
	data := b.templates.Data(spec)
	ownTags := awsutil.OwnedTags(b.opts.ClusterName, lo.Assign(nc.Spec.Tags, map[string]string{cloudprovider.TagNodeClass: nc.Name}))

	cctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	_, err = b.opts.EC2.CreateLaunchTemplate(cctx, &ec2.CreateLaunchTemplateInput{
		DryRun:             lo.ToPtr(true),
		LaunchTemplateName: awssdk.String(spec.Name()),
		LaunchTemplateData: data,
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeLaunchTemplate,
			Tags:         awsutil.ToEC2Tags(awsutil.OwnedTags(b.opts.ClusterName, map[string]string{cloudprovider.TagNodeClass: nc.Name})),
		}},
	})
	if err := dryRunVerdict("CreateLaunchTemplate", err); err != nil {
		return err
	}

	in := &ec2.RunInstancesInput{
		DryRun:             lo.ToPtr(true),
		MinCount:           awssdk.Int32(1),
		MaxCount:           awssdk.Int32(1),
		ImageId:            data.ImageId,
		InstanceType:       ec2types.InstanceType(b.validationInstanceType(ctx, amiArch(ami))),
		UserData:           data.UserData,
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: data.IamInstanceProfile.Name},
		MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{
			HttpEndpoint:            ec2types.InstanceMetadataEndpointState(data.MetadataOptions.HttpEndpoint),
			HttpTokens:              ec2types.HttpTokensState(data.MetadataOptions.HttpTokens),
			HttpPutResponseHopLimit: data.MetadataOptions.HttpPutResponseHopLimit,
		},
		BlockDeviceMappings: lo.Map(data.BlockDeviceMappings, func(d ec2types.LaunchTemplateBlockDeviceMappingRequest, _ int) ec2types.BlockDeviceMapping {
			return ec2types.BlockDeviceMapping{DeviceName: d.DeviceName, Ebs: &ec2types.EbsBlockDevice{
				VolumeType: d.Ebs.VolumeType, VolumeSize: d.Ebs.VolumeSize, Iops: d.Ebs.Iops, Throughput: d.Ebs.Throughput,
				Encrypted: d.Ebs.Encrypted, KmsKeyId: d.Ebs.KmsKeyId, SnapshotId: d.Ebs.SnapshotId, DeleteOnTermination: d.Ebs.DeleteOnTermination,
			}}
		}),
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: awsutil.ToEC2Tags(ownTags)},
			{ResourceType: ec2types.ResourceTypeVolume, Tags: awsutil.ToEC2Tags(ownTags)},
		},
	}
	subnet := nc.Status.Subnets[0].ID
	if nc.Spec.AssociatePublicIPAddress != nil {
		in.NetworkInterfaces = []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: awssdk.Int32(0), SubnetId: awssdk.String(subnet),
			AssociatePublicIpAddress: nc.Spec.AssociatePublicIPAddress, Groups: data.NetworkInterfaces[0].Groups, DeleteOnTermination: lo.ToPtr(true)}}
	} else {
		in.SubnetId, in.SecurityGroupIds = awssdk.String(subnet), data.SecurityGroupIds
	}
	_, err = b.opts.EC2.RunInstances(cctx, in)
	return dryRunVerdict("RunInstances", err)
}

// validationInstanceType is the type the launch dry run asks for: the
// preferred small NVIDIA type of the architecture when the region offers it,
// else the offered type of that architecture with the fewest accelerators
// (then by name), so a region or account without the preferred type does
// not fail validation for a reason that has nothing to do with the node
// class.
func (b *Backend) validationInstanceType(ctx context.Context, arch string) string {
	want := validationInstanceTypes[arch]
	entries, zones := b.types.List(ctx)
	offered := func(name string) bool { return zones == nil || len(zones[name]) > 0 }
	if offered(want) {
		return want
	}
	candidates := lo.Filter(entries, func(e catalog.Entry, _ int) bool { return e.Arch == arch && e.AcceleratorCount > 0 && offered(e.Name) })
	if len(candidates) == 0 {
		return want
	}
	sort.Slice(candidates, func(i, j int) bool {
		if candidates[i].AcceleratorCount != candidates[j].AcceleratorCount {
			return candidates[i].AcceleratorCount < candidates[j].AcceleratorCount
		}
		return candidates[i].Name < candidates[j].Name
	})
	return candidates[0].Name
}

// dryRunVerdict maps a dry run's answer: DryRunOperation is success; a
// capacity-class code says nothing about the node class (the dry run's
// instance type may just be scarce there) and counts as success; a
// throttle, a server error or a transport failure is inconclusive; any
// other API error is a refusal.
func dryRunVerdict(op string, err error) error {
	code := awsutil.ErrorCode(err)
	switch {
	case err == nil:
		// EC2 never accepts a dry run; a server that did ignored DryRun.
		return fmt.Errorf("%s dry run returned no DryRunOperation answer", op)
	case code == DryRunSucceeded, awsutil.IsCapacityCode(code):
		return nil
	case code == "" || code == "RequestLimitExceeded" || code == "Throttling" || code == "InternalError" || serverError(err):
		return fmt.Errorf("%s dry run, %w", op, err)
	}
	msg := err.Error()
	var ae interface{ ErrorMessage() string }
	if errors.As(err, &ae) {
		msg = ae.ErrorMessage()
	}
	return &ValidationError{Operation: op, Reason: code, Message: msg}
}

func serverError(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() >= http.StatusInternalServerError
}

// amiArch is the image's kubernetes.io/arch requirement (amd64 when it
// names none or several).
func amiArch(ami v1alpha1.AMI) string {
	for _, r := range ami.Requirements {
		if r.Key == corev1.LabelArchStable && r.Operator == corev1.NodeSelectorOpIn && len(r.Values) == 1 {
			if _, ok := validationInstanceTypes[r.Values[0]]; ok {
				return r.Values[0]
			}
		}
	}
	return "amd64"
}
