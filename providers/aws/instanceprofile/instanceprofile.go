// Package instanceprofile resolves the instance profile a GPUNodeClass's
// instances launch with: spec.instanceProfile, verified with
// iam:GetInstanceProfile, or a profile managed for spec.role.
package instanceprofile

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// Options configure a Provider.
type Options struct {
	// IAM verifies spec.instanceProfile and manages the profiles of
	// spec.role; nil accepts spec.instanceProfile as given and reports
	// spec.role as unresolvable.
	IAM         IAMAPI
	ClusterName string
	Region      string
	CallTimeout time.Duration
}

// IAMAPI is the IAM calls the provider makes.
type IAMAPI interface {
	GetInstanceProfile(ctx context.Context, in *iam.GetInstanceProfileInput, optFns ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
	CreateInstanceProfile(ctx context.Context, in *iam.CreateInstanceProfileInput, optFns ...func(*iam.Options)) (*iam.CreateInstanceProfileOutput, error)
	AddRoleToInstanceProfile(ctx context.Context, in *iam.AddRoleToInstanceProfileInput, optFns ...func(*iam.Options)) (*iam.AddRoleToInstanceProfileOutput, error)
	RemoveRoleFromInstanceProfile(ctx context.Context, in *iam.RemoveRoleFromInstanceProfileInput, optFns ...func(*iam.Options)) (*iam.RemoveRoleFromInstanceProfileOutput, error)
}

// Provider resolves instance profiles.
type Provider struct{ opts Options }

// NewProvider returns a Provider.
func NewProvider(o Options) *Provider { return &Provider{opts: o} }

// Resolve returns the profile instances launch with: the user's
// spec.instanceProfile (verified when IAM is available) or the one managed
// for spec.role (created and pointed at the role when missing). An empty
// name comes with the reason; an error means IAM could not be asked.
func (p *Provider) Resolve(ctx context.Context, nc *v1alpha1.GPUNodeClass) (name, reason string, err error) {
	if given := lo.FromPtr(nc.Spec.InstanceProfile); given != "" {
		if p.opts.IAM == nil {
			return given, "", nil
		}
		cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
		defer cancel()
		_, err := p.opts.IAM.GetInstanceProfile(cctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(given)})
		if awsutil.IsNotFound(err) {
			return "", fmt.Sprintf("instance profile %q does not exist", given), nil
		}
		if err != nil {
			return "", "", fmt.Errorf("getting instance profile %s, %w", given, err)
		}
		return given, "", nil
	}
	if nc.Spec.Role == "" {
		return "", "neither role nor instanceProfile is set", nil
	}
	if p.opts.IAM == nil {
		return "", "spec.role needs IAM access to manage an instance profile; set spec.instanceProfile instead", nil
	}
	// A role may be given as a name or an ARN/path; IAM wants the name.
	role := nc.Spec.Role[strings.LastIndex(nc.Spec.Role, "/")+1:]
	name = p.Name(role)
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	out, err := p.opts.IAM.GetInstanceProfile(cctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
	var roles []iamtypes.Role
	switch {
	case awsutil.IsNotFound(err):
		if _, err := p.opts.IAM.CreateInstanceProfile(cctx, &iam.CreateInstanceProfileInput{
			InstanceProfileName: aws.String(name),
			Path:                aws.String("/karpenter-gpu/"),
			Tags: []iamtypes.Tag{
				{Key: aws.String(cloudprovider.TagCluster), Value: aws.String(p.opts.ClusterName)},
				{Key: aws.String(awsutil.ClusterTagKey(p.opts.ClusterName)), Value: aws.String("owned")},
				{Key: aws.String("topology.kubernetes.io/region"), Value: aws.String(p.opts.Region)},
			},
		}); err != nil && awsutil.ErrorCode(err) != "EntityAlreadyExists" {
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
		if _, err := p.opts.IAM.RemoveRoleFromInstanceProfile(cctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: r.RoleName}); err != nil {
			return "", "", fmt.Errorf("removing role %s from instance profile %s, %w", lo.FromPtr(r.RoleName), name, err)
		}
	}
	if _, err := p.opts.IAM.AddRoleToInstanceProfile(cctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: aws.String(role)}); err != nil {
		if awsutil.IsNotFound(err) {
			return "", fmt.Sprintf("role %q does not exist", role), nil
		}
		return "", "", fmt.Errorf("adding role %s to instance profile %s, %w", role, name, err)
	}
	return name, "", nil
}

// Name is the name of the profile managed for a role: one per cluster and
// role, so node classes sharing a role share a profile.
func (p *Provider) Name(role string) string {
	name := fmt.Sprintf("%s_%s", p.opts.ClusterName, awsutil.ShortHash(p.opts.Region+"/"+role))
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+=,.@_-", r) {
			return r
		}
		return '-'
	}, lo.Substring(name, 0, 128))
}
