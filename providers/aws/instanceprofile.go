package aws

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// resolveInstanceProfile returns the profile instances launch with: the
// user's spec.instanceProfile (verified when IAM is available) or the one
// managed for spec.role (created and pointed at the role when missing).
func (b *Backend) resolveInstanceProfile(ctx context.Context, nc *v1alpha1.GPUNodeClass) (name, reason string, err error) {
	if p := lo.FromPtr(nc.Spec.InstanceProfile); p != "" {
		if b.iam == nil {
			return p, "", nil
		}
		cctx, cancel := b.call(ctx)
		defer cancel()
		_, err := b.iam.GetInstanceProfile(cctx, &iam.GetInstanceProfileInput{InstanceProfileName: str(p)})
		if isNotFound(err) {
			return "", fmt.Sprintf("instance profile %q does not exist", p), nil
		}
		if err != nil {
			return "", "", fmt.Errorf("getting instance profile %s, %w", p, err)
		}
		return p, "", nil
	}
	if nc.Spec.Role == "" {
		return "", "neither role nor instanceProfile is set", nil
	}
	if b.iam == nil {
		return "", "spec.role needs IAM access to manage an instance profile; set spec.instanceProfile instead", nil
	}
	// A role may be given as a name or an ARN/path; IAM wants the name.
	role := nc.Spec.Role[strings.LastIndex(nc.Spec.Role, "/")+1:]
	name = b.instanceProfileName(role)
	cctx, cancel := b.call(ctx)
	defer cancel()
	out, err := b.iam.GetInstanceProfile(cctx, &iam.GetInstanceProfileInput{InstanceProfileName: str(name)})
	var roles []iamtypes.Role
	switch {
	case isNotFound(err):
		if _, err := b.iam.CreateInstanceProfile(cctx, &iam.CreateInstanceProfileInput{
			InstanceProfileName: str(name),
			Path:                str("/karpenter-gpu/"),
			Tags: []iamtypes.Tag{
				{Key: str(cloudprovider.TagCluster), Value: str(b.opts.ClusterName)},
				{Key: str(b.clusterTagKey()), Value: str("owned")},
				{Key: str("topology.kubernetes.io/region"), Value: str(b.region())},
			},
		}); err != nil && errorCode(err) != "EntityAlreadyExists" {
			return "", "", fmt.Errorf("creating instance profile %s, %w", name, err)
		}
	case err != nil:
		return "", "", fmt.Errorf("getting instance profile %s, %w", name, err)
	default:
		roles = out.InstanceProfile.Roles
	}
	if lo.ContainsBy(roles, func(r iamtypes.Role) bool { return lo.FromPtr(r.RoleName) == role }) {
		return name, "", nil
	}
	// A profile holds at most one role: replace a stale one.
	for _, r := range roles {
		if _, err := b.iam.RemoveRoleFromInstanceProfile(cctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: str(name), RoleName: r.RoleName}); err != nil {
			return "", "", fmt.Errorf("removing role %s from instance profile %s, %w", lo.FromPtr(r.RoleName), name, err)
		}
	}
	if _, err := b.iam.AddRoleToInstanceProfile(cctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: str(name), RoleName: str(role)}); err != nil {
		if isNotFound(err) {
			return "", fmt.Sprintf("role %q does not exist", role), nil
		}
		return "", "", fmt.Errorf("adding role %s to instance profile %s, %w", role, name, err)
	}
	return name, "", nil
}

// instanceProfileName is the name of the profile managed for spec.role: one
// per cluster and role, so node classes sharing a role share a profile.
func (b *Backend) instanceProfileName(role string) string {
	name := fmt.Sprintf("%s_%s", b.opts.ClusterName, shortHash(b.opts.Region+"/"+role))
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+=,.@_-", r) {
			return r
		}
		return '-'
	}, lo.Substring(name, 0, 128))
}
