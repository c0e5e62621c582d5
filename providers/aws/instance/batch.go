package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// Defaults of the CreateFleet batcher.
const (
	DefaultBatchIdle = 35 * time.Millisecond
	DefaultBatchMax  = time.Second
	// MaxBatchSize bounds the instances one batched CreateFleet asks for.
	MaxBatchSize = 100
)

// perClaimTagKeys are the tags that differ between otherwise identical
// launches. A batched fleet launches without them and tags each instance
// with its own afterwards.
var perClaimTagKeys = []string{cloudprovider.TagNodeClaim, "Name"}

// fleetBatcher merges identical concurrent CreateFleet requests (a
// scale-up of N identical NodeClaims) into one call with
// TotalTargetCapacity N. Each caller receives the answer restricted to its
// own instance, plus the fleet's errors, so refusals map back exactly as
// for a single launch.
type fleetBatcher struct {
	p         *Provider
	idle, max time.Duration
	batches   *gather.Gatherer[fleetBatch]
}

// fleetBatch is the members of one identical request.
type fleetBatch struct {
	input   *ec2.CreateFleetInput
	members []*batchMember
}

func newFleetBatcher(p *Provider, idle, max time.Duration) *fleetBatcher {
	fb := &fleetBatcher{p: p, idle: idle, max: max}
	fb.batches = gather.New(func(_ string, bt *fleetBatch) { fb.execute(bt.input, bt.members) })
	return fb
}

// splitTags separates per-claim tags from the tag specifications of in.
func splitTags(in *ec2.CreateFleetInput) (common *ec2.CreateFleetInput, perClaim map[string]string) {
	c := *in
	perClaim = map[string]string{}
	c.TagSpecifications = lo.Map(in.TagSpecifications, func(ts ec2types.TagSpecification, _ int) ec2types.TagSpecification {
		ts.Tags = lo.Filter(ts.Tags, func(t ec2types.Tag, _ int) bool {
			if lo.Contains(perClaimTagKeys, lo.FromPtr(t.Key)) {
				perClaim[lo.FromPtr(t.Key)] = lo.FromPtr(t.Value)
				return false
			}
			return true
		})
		return ts
	})
	c.ClientToken = nil
	return &c, perClaim
}

func batchKey(in *ec2.CreateFleetInput) string {
	raw, _ := json.Marshal(in)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// createFleet runs in, batched with identical concurrent requests.
func (fb *fleetBatcher) createFleet(ctx context.Context, in *ec2.CreateFleetInput) (*ec2.CreateFleetOutput, error) {
	if fb.idle <= 0 {
		return fb.p.opts.EC2.CreateFleet(ctx, in)
	}
	common, perClaim := splitTags(in)
	m := newBatchMember(ctx, lo.FromPtr(in.ClientToken), perClaim, nil)
	fb.batches.Join(batchKey(common), func(bt *fleetBatch, fresh bool, age time.Duration) (bool, time.Duration) {
		bt.members = append(bt.members, m)
		if fresh {
			bt.input = common
			return len(bt.members) >= MaxBatchSize, fb.idle
		}
		// Another request arrived: wait for the batch to go idle again, but
		// never past the maximum delay.
		return len(bt.members) >= MaxBatchSize, max(min(fb.idle, fb.max-age), 0)
	})
	return m.await()
}

// execute makes one CreateFleet for the members and hands each its share.
func (fb *fleetBatcher) execute(common *ec2.CreateFleetInput, members []*batchMember) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(members[0].ctx()), fb.p.opts.LaunchTimeout)
	defer cancel()
	in := *common
	in.TargetCapacitySpecification = lo.ToPtr(*common.TargetCapacitySpecification)
	in.TargetCapacitySpecification.TotalTargetCapacity = aws.Int32(int32(len(members)))
	tokens := lo.Map(members, func(m *batchMember, _ int) string { return m.token })
	if len(members) == 1 {
		// A lone request launches exactly as it was asked for: its own
		// tags and its own idempotency token.
		in.TagSpecifications = lo.Map(in.TagSpecifications, func(ts ec2types.TagSpecification, _ int) ec2types.TagSpecification {
			ts.Tags = append(append([]ec2types.Tag{}, ts.Tags...), awsutil.ToEC2Tags(members[0].tags)...)
			return ts
		})
		in.ClientToken = lo.EmptyableToPtr(tokens[0])
	} else if !lo.Contains(tokens, "") {
		sort.Strings(tokens)
		in.ClientToken = aws.String("batch-" + awsutil.ShortHash(strings.Join(tokens, ",")))
	}
	out, err := fb.p.opts.EC2.CreateFleet(ctx, &in)
	if err != nil {
		answerAll(members, batchAnswer{err: err})
		return
	}
	// Members past the fulfilled capacity get no instance and the fleet's
	// errors.
	fb.answerShares(ctx, members, out.FleetId, launchedOf(out), out.Errors, len(members) > 1)
}

// launched is one instance of a fleet, with the fleet's entry it came in.
type launched struct {
	fi ec2types.CreateFleetInstance
	id string
}

// launchedOf lists a fleet's instances one ID apiece, in the fleet's order.
func launchedOf(out *ec2.CreateFleetOutput) []launched {
	var ids []launched
	for _, fi := range out.Instances {
		for _, id := range fi.InstanceIds {
			ids = append(ids, launched{fi, id})
		}
	}
	return ids
}

// answerShares hands member i its share of one fleet: the i-th instance of
// ids (tagged with the member's own tags when tagMembers) and errs; a
// member past ids gets errs alone.
func (fb *fleetBatcher) answerShares(ctx context.Context, members []*batchMember, fleetID *string, ids []launched, errs []ec2types.CreateFleetError, tagMembers bool) {
	for i, m := range members {
		share := &ec2.CreateFleetOutput{FleetId: fleetID, Errors: errs}
		if i < len(ids) {
			fi := ids[i].fi
			fi.InstanceIds = []string{ids[i].id}
			share.Instances = []ec2types.CreateFleetInstance{fi}
			if tagMembers && len(m.tags) > 0 {
				if err := fb.tag(ctx, ids[i].id, m.tags); err != nil {
					// The instance is launched; it still carries the cluster
					// tags, so a lost NodeClaim tag only delays its
					// collection as an orphan.
					log.FromContext(ctx).Error(err, "tagging instance launched for several NodeClaims", "instance", ids[i].id)
				}
			}
		}
		m.reply.Send(batchAnswer{out: share})
	}
}

func (fb *fleetBatcher) tag(ctx context.Context, id string, tags map[string]string) error {
	cctx, cancel := context.WithTimeout(ctx, fb.p.opts.CallTimeout)
	defer cancel()
	_, err := fb.p.opts.EC2.CreateTags(cctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: awsutil.ToEC2Tags(tags)})
	if err != nil {
		return fmt.Errorf("tagging instance %s, %w", id, err)
	}
	return nil
}
