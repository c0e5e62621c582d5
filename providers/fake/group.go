package fake

// All-or-nothing group launches: the fake fleet's counterpart of EC2
// CreateFleet (type instant) with MinTargetCapacity, SingleAvailabilityZone
// and SingleInstanceType, and of a cluster placement group's capacity. A
// gang of GPU nodes either launches whole, in one zone, or not at all: the
// cloud, not the controller, refuses partial fleets.

import (
	"context"
	"errors"
	"fmt"

	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// GroupRequest asks for TargetCapacity instances at once.
type GroupRequest struct {
	// Options are the offerings the group may use, in preference order
	// (as LaunchRequest.Options).
	Options []cloudprovider.LaunchOption
	// TargetCapacity is how many instances to launch.
	TargetCapacity int
	// MinTargetCapacity: fewer than this many launchable means none are
	// launched. 0 means TargetCapacity (all or nothing).
	MinTargetCapacity int
	// SingleAvailabilityZone keeps every instance in one zone.
	SingleAvailabilityZone bool
	// SingleInstanceType keeps every instance of one type.
	SingleInstanceType bool
	// PlacementGroup, when set, places the group in a cluster placement
	// group whose room SetPlacementGroupCapacity may limit.
	PlacementGroup string
	// Tags for every instance of the group.
	Tags map[string]string
	// ClientToken makes the group launch idempotent.
	ClientToken string
}

// GroupResult is what a group launch did.
type GroupResult struct {
	Instances []*cloudprovider.Instance
	// Refused lists offerings that had no room (or an injected refusal)
	// while the group was placed.
	Refused []cloudprovider.LaunchOption
}

// GroupCapacityError is a group the fleet refused whole.
type GroupCapacityError struct {
	Target, Min, Best int
	// Reason names what bound it: offerings, zone or placement group.
	Reason string
}

func (e *GroupCapacityError) Error() string {
	return fmt.Sprintf("insufficient capacity for the group: %d of %d instances available (minimum %d): %s", e.Best, e.Target, e.Min, e.Reason)
}

// IsGroupCapacityError reports whether err is a whole-group refusal.
func IsGroupCapacityError(err error) bool {
	var ge *GroupCapacityError
	return errors.As(err, &ge)
}

// groupState is the fleet's group bookkeeping, guarded by the fleet's
// mutex.
type groupState struct {
	tokens         map[string][]string // client token -> instance IDs
	placementRoom  map[string]int      // placement group -> instances it can hold
	placementOf    map[string]string   // instance ID -> placement group
	groupsLaunched int
	groupsRefused  int
}

func newGroupState() groupState {
	return groupState{tokens: map[string][]string{}, placementRoom: map[string]int{}, placementOf: map[string]string{}}
}

func (f *Fleet) groups() *groupState { return &f.group }

// SetPlacementGroupCapacity limits how many running instances a placement
// group holds (n < 0 removes the limit).
func (f *Fleet) SetPlacementGroupCapacity(name string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n < 0 {
		delete(f.groups().placementRoom, name)
		return
	}
	f.groups().placementRoom[name] = n
}

// PlacementGroupOf is the placement group an instance was launched into
// ("" for none).
func (f *Fleet) PlacementGroupOf(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.groups().placementOf[id]
}

// GroupCounts returns how many group launches succeeded and were refused.
func (f *Fleet) GroupCounts() (launched, refused int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups()
	return g.groupsLaunched, g.groupsRefused
}

// LaunchGroup launches a group all at once or refuses it whole: the
// instances are placed option by option (in order) on offerings with room;
// under SingleAvailabilityZone each zone is tried alone (in the order the
// zones first appear in Options), under SingleInstanceType each type alone.
// The first placement that reaches MinTargetCapacity is launched (up to
// TargetCapacity instances); if none does, nothing is launched and the error
// is a *GroupCapacityError. A repeated ClientToken returns the first call's
// instances.
func (f *Fleet) LaunchGroup(ctx context.Context, req GroupRequest) (*GroupResult, error) {
	if req.TargetCapacity < 1 {
		return nil, fmt.Errorf("group target capacity must be at least 1, got %d", req.TargetCapacity)
	}
	if req.MinTargetCapacity < 0 || req.MinTargetCapacity > req.TargetCapacity {
		return nil, fmt.Errorf("group minimum target capacity %d is outside [0, %d]", req.MinTargetCapacity, req.TargetCapacity)
	}
	if len(req.Options) == 0 {
		return nil, errors.New("group launch has no options")
	}
	minCount := lo.Ternary(req.MinTargetCapacity == 0, req.TargetCapacity, req.MinTargetCapacity)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.popAPIError("LaunchGroup"); err != nil {
		return nil, err
	}
	g := f.groups()
	if ids, ok := g.tokens[req.ClientToken]; ok && req.ClientToken != "" {
		f.faults.tokenReuses++
		return &GroupResult{Instances: lo.Map(ids, func(id string, _ int) *cloudprovider.Instance { return f.copyOf(f.instances[id]) })}, nil
	}
	res := &GroupResult{}
	// Each offering's room is read once per call: an injected refusal is
	// consumed once and then counts as no room for the whole call.
	room := map[cloudprovider.LaunchOption]int{}
	for _, o := range req.Options {
		key := o
		key.Price = 0
		if _, seen := room[key]; seen {
			continue
		}
		room[key] = f.room(Offering{o.InstanceType, o.Zone, o.CapacityType}, o.ReservationID)
		if room[key] == 0 {
			res.Refused = append(res.Refused, o)
		}
	}
	pgRoom := req.TargetCapacity
	if n, limited := g.placementRoom[req.PlacementGroup]; limited && req.PlacementGroup != "" {
		used := lo.CountBy(lo.Entries(g.placementOf), func(e lo.Entry[string, string]) bool {
			return e.Value == req.PlacementGroup && f.instances[e.Key] != nil && f.instances[e.Key].State != cloudprovider.InstanceStateTerminated
		})
		pgRoom = max(0, n-used)
	}
	// Candidate option sets: all options, or one zone / one type at a time.
	sets := [][]cloudprovider.LaunchOption{req.Options}
	if req.SingleAvailabilityZone {
		sets = splitBy(sets, func(o cloudprovider.LaunchOption) string { return o.Zone })
	}
	if req.SingleInstanceType {
		sets = splitBy(sets, func(o cloudprovider.LaunchOption) string { return o.InstanceType })
	}
	best, bestReason := 0, "no offering has room"
	for _, set := range sets {
		var picks []cloudprovider.LaunchOption
		left := map[cloudprovider.LaunchOption]int{}
		for _, o := range set {
			key := o
			key.Price = 0
			r, ok := left[key]
			if !ok {
				r = room[key]
			}
			for (r < 0 || r > 0) && len(picks) < min(req.TargetCapacity, pgRoom) {
				picks = append(picks, o)
				if r > 0 {
					r--
				}
			}
			left[key] = r
		}
		if len(picks) >= minCount {
			for _, o := range picks {
				inst := f.newInstance(o, req.Tags, false)
				if req.PlacementGroup != "" {
					g.placementOf[inst.ID] = req.PlacementGroup
				}
				res.Instances = append(res.Instances, f.copyOf(inst))
			}
			if req.ClientToken != "" {
				g.tokens[req.ClientToken] = lo.Map(res.Instances, func(i *cloudprovider.Instance, _ int) string { return i.ID })
			}
			g.groupsLaunched++
			return res, nil
		}
		if len(picks) >= best {
			best = len(picks)
			switch {
			case pgRoom < minCount:
				bestReason = fmt.Sprintf("placement group %s has room for %d", req.PlacementGroup, pgRoom)
			case req.SingleAvailabilityZone:
				bestReason = fmt.Sprintf("single zone: at most %d in %s", best, set[0].Zone)
			default:
				bestReason = fmt.Sprintf("at most %d across the offerings", best)
			}
		}
	}
	g.groupsRefused++
	f.faults.injected[FaultCapacityLimit]++
	return res, &GroupCapacityError{Target: req.TargetCapacity, Min: minCount, Best: best, Reason: bestReason}
}

// newInstance records one launched instance (of a single launch or a
// group) and schedules its spot interruption; it starts pending when the
// fleet has a launch latency or slow says so (an injected slow launch).
func (f *Fleet) newInstance(o cloudprovider.LaunchOption, tags map[string]string, slow bool) *cloudprovider.Instance {
	f.nextID++
	f.launches++
	inst := &cloudprovider.Instance{
		ID:            fmt.Sprintf("i-%08x%08x", f.nextID, f.rng.Uint32()),
		InstanceType:  o.InstanceType,
		Zone:          o.Zone,
		CapacityType:  o.CapacityType,
		ReservationID: o.ReservationID,
		ImageID:       "ami-fake-gpu",
		State:         lo.Ternary(f.opts.LaunchLatency > 0 || slow, cloudprovider.InstanceStatePending, cloudprovider.InstanceStateRunning),
		LaunchTime:    f.clock.Now(),
		Tags:          lo.Assign(tags),
	}
	f.instances[inst.ID] = inst
	f.scheduleInterruption(inst)
	return inst
}

// splitBy splits every set into subsets by key, keeping first-seen order.
func splitBy(sets [][]cloudprovider.LaunchOption, key func(cloudprovider.LaunchOption) string) [][]cloudprovider.LaunchOption {
	return lo.FlatMap(sets, func(set []cloudprovider.LaunchOption, _ int) [][]cloudprovider.LaunchOption {
		return lo.PartitionBy(set, key)
	})
}
