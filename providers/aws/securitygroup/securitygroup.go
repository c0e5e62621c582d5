// Package securitygroup resolves a GPUNodeClass's
// securityGroupSelectorTerms with DescribeSecurityGroups.
package securitygroup

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// Options configure a Provider.
type Options struct {
	EC2         ec2.DescribeSecurityGroupsAPIClient
	CallTimeout time.Duration
}

// Provider resolves security groups.
type Provider struct {
	ec2     ec2.DescribeSecurityGroupsAPIClient
	timeout time.Duration
}

// NewProvider returns a Provider.
func NewProvider(o Options) *Provider { return &Provider{ec2: o.EC2, timeout: o.CallTimeout} }

// List returns the security groups matching the node class's selector
// terms (an ID, a name, or tags with "*" for any value), by ID.
func (p *Provider) List(ctx context.Context, nc *v1alpha1.GPUNodeClass) ([]v1alpha1.SecurityGroup, error) {
	found := map[string]v1alpha1.SecurityGroup{}
	for _, term := range nc.Spec.SecurityGroupSelectorTerms {
		filters := awsutil.TermFilters("group-id", term.ID, "group-name", term.Name, term.Tags)
		if filters == nil {
			continue
		}
		pager := ec2.NewDescribeSecurityGroupsPaginator(p.ec2, &ec2.DescribeSecurityGroupsInput{Filters: filters, MaxResults: aws.Int32(1000)})
		if err := awsutil.EachPage(ctx, p.timeout, pager, func(out *ec2.DescribeSecurityGroupsOutput) {
			for _, g := range out.SecurityGroups {
				found[lo.FromPtr(g.GroupId)] = v1alpha1.SecurityGroup{ID: lo.FromPtr(g.GroupId), Name: lo.FromPtr(g.GroupName)}
			}
		}); err != nil {
			return nil, fmt.Errorf("describing security groups, %w", err)
		}
	}
	out := lo.Values(found)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
