package instance

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// ListPageSize is the DescribeInstances page size List asks for.
const ListPageSize = 1000

// Get is cloudprovider.Backend.Get.
func (p *Provider) Get(ctx context.Context, id string) (*cloudprovider.Instance, error) {
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	out, err := p.opts.EC2.DescribeInstances(cctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if awsutil.IsNotFound(err) {
		return nil, &cloudprovider.NotFoundError{ID: id}
	}
	if err != nil {
		return nil, fmt.Errorf("describing instance %s, %w", id, err)
	}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if lo.FromPtr(inst.InstanceId) == id {
				return instanceFrom(inst), nil
			}
		}
	}
	return nil, &cloudprovider.NotFoundError{ID: id}
}

// List is cloudprovider.Backend.List: every instance of this cluster not
// yet terminated, found by the cluster tag, across all pages.
func (p *Provider) List(ctx context.Context) ([]*cloudprovider.Instance, error) {
	return p.list(ctx, true)
}

// ListAll is List including the cluster's instances not yet tagged with a
// NodeClaim (a batched launch tags them just after CreateFleet, and that
// may fail), for the orphan collector.
func (p *Provider) ListAll(ctx context.Context) ([]*cloudprovider.Instance, error) {
	return p.list(ctx, false)
}

// list lists the cluster's live instances; claimed restricts it to those
// tagged with a NodeClaim (a batched launch tags them just after launch).
func (p *Provider) list(ctx context.Context, claimed bool) ([]*cloudprovider.Instance, error) {
	filters := []ec2types.Filter{
		{Name: aws.String("tag:" + cloudprovider.TagCluster), Values: []string{p.opts.ClusterName}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
	}
	if claimed {
		filters = append(filters, ec2types.Filter{Name: aws.String("tag-key"), Values: []string{cloudprovider.TagNodeClaim}})
	}
	out, err := p.describe(ctx, &ec2.DescribeInstancesInput{Filters: filters, MaxResults: aws.Int32(ListPageSize)})
	if err != nil {
		return nil, fmt.Errorf("listing instances, %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// describe pages through DescribeInstances and returns every instance of
// every page.
func (p *Provider) describe(ctx context.Context, in *ec2.DescribeInstancesInput) ([]*cloudprovider.Instance, error) {
	var out []*cloudprovider.Instance
	err := awsutil.EachPage(ctx, p.opts.CallTimeout, ec2.NewDescribeInstancesPaginator(p.opts.EC2, in), func(page *ec2.DescribeInstancesOutput) {
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				out = append(out, instanceFrom(inst))
			}
		}
	})
	return out, err
}

// Terminate is cloudprovider.Backend.Terminate.
func (p *Provider) Terminate(ctx context.Context, id string) error {
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	out, err := p.opts.EC2.TerminateInstances(cctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if awsutil.IsNotFound(err) {
		return &cloudprovider.NotFoundError{ID: id}
	}
	if err != nil {
		return fmt.Errorf("terminating instance %s, %w", id, err)
	}
	for _, c := range out.TerminatingInstances {
		if lo.FromPtr(c.InstanceId) == id && c.PreviousState != nil && c.PreviousState.Name == ec2types.InstanceStateNameTerminated {
			return &cloudprovider.NotFoundError{ID: id}
		}
	}
	return nil
}

// instanceFrom converts an EC2 instance.
func instanceFrom(inst ec2types.Instance) *cloudprovider.Instance {
	out := &cloudprovider.Instance{
		ID:            lo.FromPtr(inst.InstanceId),
		InstanceType:  string(inst.InstanceType),
		ImageID:       lo.FromPtr(inst.ImageId),
		LaunchTime:    lo.FromPtr(inst.LaunchTime),
		ReservationID: lo.FromPtr(inst.CapacityReservationId),
		State:         cloudprovider.InstanceStateRunning,
		CapacityType:  karpv1.CapacityTypeOnDemand,
		Tags: lo.SliceToMap(inst.Tags, func(t ec2types.Tag) (string, string) {
			return lo.FromPtr(t.Key), lo.FromPtr(t.Value)
		}),
	}
	if inst.Placement != nil {
		out.Zone = lo.FromPtr(inst.Placement.AvailabilityZone)
	}
	switch {
	case inst.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot:
		out.CapacityType = karpv1.CapacityTypeSpot
	case out.ReservationID != "":
		out.CapacityType = karpv1.CapacityTypeReserved
	}
	if inst.State != nil {
		switch inst.State.Name {
		case ec2types.InstanceStateNamePending:
			out.State = cloudprovider.InstanceStatePending
		case ec2types.InstanceStateNameShuttingDown, ec2types.InstanceStateNameTerminated:
			out.State = cloudprovider.InstanceStateTerminated
		}
	}
	return out
}
