package fake

// Gang launches on the controller path, as on AWS
// (providers/aws/instance/gang_batch.go). The ProvisioningRequest
// controller creates every NodeClaim of a gang attempt at once, labelled
// and annotated with the gang (cloudprovider.GangOf); Karpenter core then
// launches each through CloudProvider.Create, concurrently. With
// Options.GangWait set, the fleet gathers those launches with the
// backends' one gang rule (gather.Gangs) and makes one LaunchGroup per
// capacity type and identical option list: TargetCapacity =
// MinTargetCapacity = the members that came, SingleAvailabilityZone,
// SingleInstanceType when the options have one type, in the gang's
// placement group (cloudprovider.GangPlacementGroup). The fleet launches
// the gang whole or refuses every member, each with all its options
// refused, so core deletes every NodeClaim and the controller retries.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
)

// gangMember is one gang member's launch of one capacity type, waiting
// for the rest of its gang.
type gangMember struct {
	reply   *gather.Reply[gangAnswer]
	req     *cloudprovider.LaunchRequest
	options []cloudprovider.LaunchOption
}

type gangAnswer struct {
	res  *cloudprovider.LaunchResult
	post *responseFault
	err  error
}

// GangPlacementGroupName is the placement group the fleet names for a gang
// attempt of EFA-capable types (cloudprovider.GangPlacementGroup).
func GangPlacementGroupName(g cloudprovider.Gang) string { return "karpenter-gpu-" + shortHash(g.Key) }

// launchGangMember launches a gang member: by capacity type in the order
// of the options (reserved, spot, on-demand as the provider ranked them),
// each with the rest of the gang, until one launches it.
func (f *Fleet) launchGangMember(ctx context.Context, req *cloudprovider.LaunchRequest, g cloudprovider.Gang) (*cloudprovider.LaunchResult, error) {
	f.mu.Lock()
	if id, ok := f.tokens[req.ClientToken]; ok && req.ClientToken != "" {
		f.faults.tokenReuses++
		inst := f.copyOf(f.instances[id])
		f.mu.Unlock()
		return &cloudprovider.LaunchResult{Instance: inst}, nil
	}
	f.mu.Unlock()
	res := &cloudprovider.LaunchResult{}
	var errs []error
	for _, kind := range byCapacityType(req.Options) {
		m := &gangMember{reply: gather.NewReply[gangAnswer](ctx), req: req, options: kind}
		f.gangs.Join(g.Key+"|"+kind[0].CapacityType, g.Size, optionsKey(kind), m)
		a, err := m.reply.Await()
		if err != nil {
			return res, err
		}
		if a.res != nil {
			res.Refused = append(res.Refused, a.res.Refused...)
			if a.res.Instance != nil {
				res.Instance = a.res.Instance
				if a.post != nil {
					return f.respond(ctx, res, a.post)
				}
				return res, nil
			}
		}
		if a.err != nil {
			errs = append(errs, a.err)
		}
	}
	return res, errors.Join(errs...)
}

// flushGang launches a gang's members: one group per identical option list.
// The groups and their members go in a fixed order (option lists in order,
// members by client token), so a seeded fleet launches the same instances
// for the same members whatever order their concurrent launches came in.
func (f *Fleet) flushGang(key string, g *gather.Gang[*gangMember]) {
	if g.Arrived < g.Size {
		log.FromContext(g.Members[g.Order[0]][0].reply.Context()).Info("launching part of a gang: the rest did not arrive",
			"gang", key, "arrived", g.Arrived, "size", g.Size, "wait", f.gangs.Wait())
	}
	subs := append([]string(nil), g.Order...)
	sort.Strings(subs)
	for _, sub := range subs {
		members := g.Members[sub]
		sort.SliceStable(members, func(i, j int) bool { return members[i].req.ClientToken < members[j].req.ClientToken })
		f.launchGang(key, members)
	}
}

// FlushGangs launches every gang attempt whose members are waiting for the
// rest of their gang now, with the members that arrived, as when GangWait
// ends, and returns once they are answered. A caller that knows no more
// members are coming calls it rather than wait: the simulator, which hands
// a gang attempt's launches over at once (gather.WithObserver tells it when
// each is waiting). Without GangWait there is nothing to flush.
func (f *Fleet) FlushGangs() {
	if f.gangs != nil {
		f.gangs.Flush()
	}
}

// launchGang makes one all-or-nothing LaunchGroup for members, which share
// their options, and answers each.
func (f *Fleet) launchGang(key string, members []*gangMember) {
	first := members[0]
	opts := first.options
	n := len(members)
	gang, _, _ := strings.Cut(key, "|")
	req := GroupRequest{Options: opts, TargetCapacity: n, MinTargetCapacity: n, SingleAvailabilityZone: true,
		SingleInstanceType: len(lo.Uniq(lo.Map(opts, func(o cloudprovider.LaunchOption, _ int) string { return o.InstanceType }))) == 1,
		Tags:               lo.OmitByKeys(first.req.Tags, []string{cloudprovider.TagNodeClaim, "Name"})}
	// Reserved capacity is used where it was reserved: no group of our own.
	if opts[0].ReservationID == "" {
		types := lo.Map(opts, func(o cloudprovider.LaunchOption, _ int) string { return o.InstanceType })
		name, create := cloudprovider.GangPlacementGroup(first.req.NodeClass, types, efaCapable)
		req.PlacementGroup = lo.Ternary(create, GangPlacementGroupName(cloudprovider.Gang{Key: gang}), name)
	}
	if tokens := lo.Map(members, func(m *gangMember, _ int) string { return m.req.ClientToken }); !lo.Contains(tokens, "") {
		sort.Strings(tokens)
		req.ClientToken = "gang-" + shortHash(strings.Join(tokens, ","))
	}
	res, err := f.LaunchGroup(context.WithoutCancel(first.reply.Context()), req)
	switch {
	case IsGroupCapacityError(err):
		// Refused whole: every member is refused with all its options (as
		// EC2's fleet errors are attributed to no one override).
		log.FromContext(first.reply.Context()).Info("gang refused whole", "gang", gang, "size", n, "reason", err.Error())
		for _, m := range members {
			m.reply.Send(gangAnswer{res: &cloudprovider.LaunchResult{Refused: m.options}})
		}
		return
	case err != nil:
		for _, m := range members {
			m.reply.Send(gangAnswer{err: fmt.Errorf("launching a gang of %d, %w", n, err)})
		}
		return
	case len(res.Instances) != n:
		// Cannot happen with MinTargetCapacity n; if it does, nothing of
		// it stays.
		for _, inst := range res.Instances {
			_ = f.Terminate(context.Background(), inst.ID)
		}
		for _, m := range members {
			m.reply.Send(gangAnswer{err: fmt.Errorf("group of %d launched %d instances; terminated them", n, len(res.Instances))})
		}
		return
	}
	// Whole: every member has its instance, with its own tags and token.
	f.mu.Lock()
	answers := make([]gangAnswer, n)
	for i, m := range members {
		inst := f.instances[res.Instances[i].ID]
		inst.Tags = lo.Assign(m.req.Tags)
		if m.req.ClientToken != "" {
			f.tokens[m.req.ClientToken] = inst.ID
		}
		post := f.faults.assign(inst.ID, m.req.ClientToken)
		answers[i] = gangAnswer{res: &cloudprovider.LaunchResult{Instance: f.copyOf(inst), Refused: res.Refused}, post: post}
	}
	f.mu.Unlock()
	for i, m := range members {
		m.reply.Send(answers[i])
	}
}

// byCapacityType splits options by capacity type, keeping their order
// within each and ordering the types by their first option.
func byCapacityType(options []cloudprovider.LaunchOption) [][]cloudprovider.LaunchOption {
	var out [][]cloudprovider.LaunchOption
	index := map[string]int{}
	for _, o := range options {
		i, ok := index[o.CapacityType]
		if !ok {
			i = len(out)
			index[o.CapacityType] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], o)
	}
	return out
}

// optionsKey identifies an option list: members with the same one launch
// in one group.
func optionsKey(options []cloudprovider.LaunchOption) string {
	return strings.Join(lo.Map(options, func(o cloudprovider.LaunchOption, _ int) string {
		return o.String() + "/" + o.ReservationID
	}), ",")
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}

// efaTypes are the embedded catalog's EFA-capable instance types.
var efaTypes = sync.OnceValue(func() map[string]bool {
	entries, _, err := catalog.Embedded()
	if err != nil {
		return map[string]bool{}
	}
	out := map[string]bool{}
	for _, e := range entries {
		if e.EFACount > 0 {
			out[e.Name] = true
		}
	}
	return out
})

func efaCapable(instanceType string) bool { return efaTypes()[instanceType] }
