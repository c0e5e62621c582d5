package aws

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

func (b *Backend) resolveSecurityGroups(ctx context.Context, nc *v1alpha1.GPUNodeClass) ([]v1alpha1.SecurityGroup, error) {
	found := map[string]v1alpha1.SecurityGroup{}
	for _, term := range nc.Spec.SecurityGroupSelectorTerms {
		var filters []ec2types.Filter
		switch {
		case term.ID != "":
			filters = []ec2types.Filter{{Name: str("group-id"), Values: []string{term.ID}}}
		case term.Name != "":
			filters = []ec2types.Filter{{Name: str("group-name"), Values: []string{term.Name}}}
		case len(term.Tags) > 0:
			filters = tagFilters(term.Tags)
		default:
			continue
		}
		pager := ec2.NewDescribeSecurityGroupsPaginator(b.ec2, &ec2.DescribeSecurityGroupsInput{Filters: filters, MaxResults: i32(1000)})
		for pager.HasMorePages() {
			cctx, cancel := b.call(ctx)
			out, err := pager.NextPage(cctx)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("describing security groups, %w", err)
			}
			for _, g := range out.SecurityGroups {
				found[lo.FromPtr(g.GroupId)] = v1alpha1.SecurityGroup{ID: lo.FromPtr(g.GroupId), Name: lo.FromPtr(g.GroupName)}
			}
		}
	}
	out := lo.Values(found)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
