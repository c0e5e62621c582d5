// Package fake is an in-memory cloud: instances with IDs, per-offering
// capacity limits, injectable capacity and API errors, launch latency and
// spot interruptions, deterministic under a seed. It is a product component:
// the simulator and the end-to-end tests run on it. It must not import
// Karpenter's pkg/test or pkg/cloudprovider/fake (they pull in test
// frameworks and init() side effects).
package fake

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/samber/lo"
	"k8s.io/utils/clock"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
)

// ProviderIDPrefix starts every provider ID of a fake instance.
const ProviderIDPrefix = "fake://"

// Offering identifies one instance type in one zone with one capacity type.
type Offering struct{ InstanceType, Zone, CapacityType string }

// Options configures a Fleet.
type Options struct {
	Region        string   // default "us-east-1" (the catalog's price column)
	Zones         []string // default us-east-1a..c
	CapacityTypes []string // default on-demand only; spot needs Prices
	// Prices overrides catalog prices (e.g. spot). nil = on-demand from catalog.
	Prices       catalog.PriceSource
	Reservations []catalog.Reservation
	// Capacity limits how many instances of an offering may run at once;
	// offerings absent from the map are unlimited.
	Capacity map[Offering]int
	// LaunchLatency is how long an instance stays pending after launch.
	LaunchLatency time.Duration
	Clock         clock.Clock
	Seed          int64
	// SpotInterruptionsPerDay is the rate at which each spot instance is
	// reclaimed (a Poisson process: its lifetime until interruption is
	// exponential with mean 1/rate days, drawn at launch from a random
	// source seeded by Seed, separate from the one behind instance IDs).
	// The fleet only schedules them (SpotInterruptions); whoever plays the
	// cloud's interruption notices acts on them. 0: never.
	SpotInterruptionsPerDay float64
	// GangWait, when positive, launches the NodeClaims of a gang attempt
	// (cloudprovider.GangOf) all or nothing, as the AWS backend does
	// (gang.go): the launches wait for the rest of their gang that long
	// from the first one on, then make one group launch (LaunchGroup). It
	// needs concurrent launches, as core's NodeClaim lifecycle makes them;
	// 0 launches a gang's members one by one (a caller that launches one
	// NodeClaim at a time, such as a discrete-event simulation, would wait
	// out every gang).
	GangWait time.Duration
}

// Fleet is the in-memory backend. It is safe for concurrent use.
type Fleet struct {
	mu        sync.Mutex
	opts      Options
	clock     clock.Clock
	rng       *rand.Rand
	nextID    int
	instances map[string]*cloudprovider.Instance
	tokens    map[string]string // client token -> instance ID (idempotent launches)
	refuse    map[Offering]int  // injected capacity errors: remaining refusals (-1 = always)
	apiErrors map[string][]error
	launches  int
	faults    launchFaults // per-launch fault plan and per-instance faults (faults.go)
	// spot interruption schedule (spot.go)
	spotRNG    *rand.Rand
	interrupts map[string]time.Time
	// gangs gathers gang members' launches (gang.go); nil without GangWait.
	gangs *gather.Gangs[*gangMember]
	group groupState // group launches (group.go)
}

var _ cloudprovider.Backend = (*Fleet)(nil)

// NewFleet returns an empty fleet.
func NewFleet(opts Options) *Fleet {
	opts.Region = lo.Ternary(opts.Region == "", "us-east-1", opts.Region)
	if len(opts.Zones) == 0 {
		opts.Zones = []string{opts.Region + "a", opts.Region + "b", opts.Region + "c"}
	}
	if len(opts.CapacityTypes) == 0 {
		opts.CapacityTypes = []string{karpv1.CapacityTypeOnDemand}
	}
	f := &Fleet{
		opts:      opts,
		clock:     lo.Ternary[clock.Clock](opts.Clock == nil, clock.RealClock{}, opts.Clock),
		rng:       rand.New(rand.NewSource(opts.Seed)),
		instances: map[string]*cloudprovider.Instance{},
		tokens:    map[string]string{},
		refuse:    map[Offering]int{},
		apiErrors: map[string][]error{},
		faults:    newLaunchFaults(),
		// A stream of its own, so a rate changes no instance ID.
		spotRNG:    rand.New(rand.NewSource(opts.Seed ^ 0x5b07)),
		interrupts: map[string]time.Time{},
		group:      newGroupState(),
	}
	if opts.GangWait > 0 {
		f.gangs = gather.NewGangs(opts.GangWait, f.flushGang)
	}
	return f
}

// Name implements Backend.
func (f *Fleet) Name() string { return "fake" }

// Offerings implements Backend.
func (f *Fleet) Offerings(ctx context.Context, _ *v1alpha1.GPUNodeClass) (*cloudprovider.OfferingInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.popAPIError("Offerings"); err != nil {
		return nil, err
	}
	return &cloudprovider.OfferingInfo{
		Region:        f.opts.Region,
		Zones:         f.opts.Zones,
		CapacityTypes: f.opts.CapacityTypes,
		Prices:        f.opts.Prices,
		Reservations:  f.opts.Reservations,
	}, nil
}

// Launch implements Backend: it walks the options in order and launches the
// first one with capacity, reporting every refused option before it.
// Injected response faults (faults.go) apply after the instance exists, as
// when a request reaches the cloud but its response is slow or lost.
//
// With Options.GangWait, a gang member's launch is all or nothing with the
// rest of its gang (gang.go).
func (f *Fleet) Launch(ctx context.Context, req *cloudprovider.LaunchRequest) (*cloudprovider.LaunchResult, error) {
	if req == nil {
		return nil, fmt.Errorf("launch request is nil")
	}
	if g, ok := cloudprovider.GangOf(req.NodeClaim); ok && f.gangs != nil && len(req.Options) > 0 {
		return f.launchGangMember(ctx, req, g)
	}
	res, post, err := f.launch(req)
	if err != nil || post == nil {
		return res, err
	}
	return f.respond(ctx, res, post)
}

func (f *Fleet) launch(req *cloudprovider.LaunchRequest) (*cloudprovider.LaunchResult, *responseFault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.popAPIError("Launch"); err != nil {
		return nil, nil, err
	}
	if id, ok := f.tokens[req.ClientToken]; ok && req.ClientToken != "" {
		f.faults.tokenReuses++
		return &cloudprovider.LaunchResult{Instance: f.copyOf(f.instances[id])}, nil, nil
	}
	res := &cloudprovider.LaunchResult{}
	for _, o := range req.Options {
		off := Offering{o.InstanceType, o.Zone, o.CapacityType}
		if !f.hasCapacity(off, o.ReservationID) {
			res.Refused = append(res.Refused, o)
			continue
		}
		inst := f.newInstance(o, req.Tags, f.faults.slowNext > 0)
		if req.ClientToken != "" {
			f.tokens[req.ClientToken] = inst.ID
		}
		post := f.faults.assign(inst.ID, req.ClientToken)
		res.Instance = f.copyOf(inst)
		return res, post, nil
	}
	return res, nil, nil
}

// hasCapacity reports whether an offering takes one more instance now
// (room); a limit reached outside a reservation counts as a capacity-limit
// fault.
func (f *Fleet) hasCapacity(off Offering, reservationID string) bool {
	if f.refused(off) {
		return false
	}
	free := f.free(off, reservationID)
	if free == 0 && reservationID == "" {
		f.faults.injected[FaultCapacityLimit]++
	}
	return free != 0
}

// room is how many more instances an offering takes now: -1 unlimited, 0
// when full or when an injected refusal is pending (which it consumes).
func (f *Fleet) room(off Offering, reservationID string) int {
	if f.refused(off) {
		return 0
	}
	return f.free(off, reservationID)
}

// refused consumes an injected refusal of the offering (RefuseCapacity),
// reporting whether one was pending.
func (f *Fleet) refused(off Offering) bool {
	n, ok := f.refuse[off]
	if !ok || n == 0 {
		return false
	}
	if n > 0 {
		f.refuse[off] = n - 1
	}
	f.faults.injected[FaultCapacityRefused]++
	return true
}

// free is how many more instances an offering's limit (SetCapacity,
// Options.Capacity; a reservation's count for a reserved launch) admits
// now: -1 unlimited.
func (f *Fleet) free(off Offering, reservationID string) int {
	limit, limited := f.opts.Capacity[off]
	if reservationID != "" {
		r, ok := lo.Find(f.opts.Reservations, func(r catalog.Reservation) bool { return r.ID == reservationID })
		limit, limited = lo.Ternary(ok, r.Count, 0), true
	}
	if !limited {
		return -1
	}
	running := lo.CountBy(lo.Values(f.instances), func(i *cloudprovider.Instance) bool {
		return i.State != cloudprovider.InstanceStateTerminated && i.InstanceType == off.InstanceType && i.Zone == off.Zone &&
			i.CapacityType == off.CapacityType && i.ReservationID == reservationID
	})
	return max(0, limit-running)
}

// Get implements Backend.
func (f *Fleet) Get(ctx context.Context, id string) (*cloudprovider.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.popAPIError("Get"); err != nil {
		return nil, err
	}
	inst, ok := f.instances[id]
	if !ok {
		return nil, &cloudprovider.NotFoundError{ID: id}
	}
	f.advance(inst)
	return f.copyOf(inst), nil
}

// List implements Backend, sorted by ID for determinism.
func (f *Fleet) List(ctx context.Context) ([]*cloudprovider.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.popAPIError("List"); err != nil {
		return nil, err
	}
	out := make([]*cloudprovider.Instance, 0, len(f.instances))
	for _, inst := range f.instances {
		f.advance(inst)
		out = append(out, f.copyOf(inst))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Terminate implements Backend. Terminated instances stay visible (as in
// EC2) so a second Delete sees them gone rather than unknown.
func (f *Fleet) Terminate(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.popAPIError("Terminate"); err != nil {
		return err
	}
	inst, ok := f.instances[id]
	if !ok || inst.State == cloudprovider.InstanceStateTerminated {
		return &cloudprovider.NotFoundError{ID: id}
	}
	inst.State = cloudprovider.InstanceStateTerminated
	delete(f.interrupts, id) // spot.go: nothing left to reclaim
	return nil
}

// ProviderID implements Backend.
func (f *Fleet) ProviderID(inst *cloudprovider.Instance) string {
	return fmt.Sprintf("%s%s/%s", ProviderIDPrefix, inst.Zone, inst.ID)
}

// InstanceID implements Backend.
func (f *Fleet) InstanceID(providerID string) (string, error) {
	rest, ok := strings.CutPrefix(providerID, ProviderIDPrefix)
	if !ok {
		return "", fmt.Errorf("provider ID %q does not start with %q", providerID, ProviderIDPrefix)
	}
	_, id, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return "", fmt.Errorf("provider ID %q has no instance ID", providerID)
	}
	return id, nil
}

func (f *Fleet) advance(inst *cloudprovider.Instance) {
	if inst.State == cloudprovider.InstanceStatePending && !f.clock.Now().Before(f.runningAt(inst)) {
		inst.State = cloudprovider.InstanceStateRunning
	}
}

func (f *Fleet) copyOf(inst *cloudprovider.Instance) *cloudprovider.Instance {
	c := *inst
	c.Tags = lo.Assign(inst.Tags)
	return &c
}
