package instance

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
)

// The CreateFleet paths (the fleet batcher, batch.go, and the gang
// collector, gang_batch.go) gather their members with the backends' one
// batching primitive, pkg/cloudprovider/gather.

// batchMember is one launch waiting in a batch.
type batchMember struct {
	reply *gather.Reply[batchAnswer]
	token string
	tags  map[string]string // per-claim tags
	// input is the member's request without its per-claim tags and token
	// (a gang member's; the batcher keeps its batch's).
	input *ec2.CreateFleetInput
}

func newBatchMember(ctx context.Context, token string, tags map[string]string, input *ec2.CreateFleetInput) *batchMember {
	return &batchMember{reply: gather.NewReply[batchAnswer](ctx), token: token, tags: tags, input: input}
}

type batchAnswer struct {
	out *ec2.CreateFleetOutput
	err error
}

// ctx is the member's context.
func (m *batchMember) ctx() context.Context { return m.reply.Context() }

// await is the member's answer, or its context's error if that ends first.
func (m *batchMember) await() (*ec2.CreateFleetOutput, error) {
	a, err := m.reply.Await()
	if err != nil {
		return nil, err
	}
	return a.out, a.err
}

// answerAll gives every member the same answer.
func answerAll(members []*batchMember, a batchAnswer) {
	for _, m := range members {
		m.reply.Send(a)
	}
}
