package fake

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// Fault kinds counted by FaultCounts.
const (
	FaultCapacityRefused  = "capacity-refused"   // RefuseCapacity consumed
	FaultCapacityLimit    = "capacity-limit"     // SetCapacity/Options.Capacity reached
	FaultAPIError         = "api-error/"         // + op: InjectAPIError consumed
	FaultSpotInterruption = "spot-interruption"  // Interrupt, InterruptRandom
	FaultSlowLaunch       = "slow-launch"        // SlowLaunchNext
	FaultLostResponse     = "launch-lost-reply"  // LoseLaunchResponseNext: launched, caller told it failed
	FaultDelayedResponse  = "launch-slow-reply"  // DelayLaunchResponseNext
	FaultNeverRegister    = "never-registers"    // NeverRegisterNext
	FaultNoGPUs           = "device-plugin-dead" // HideGPUsNext
)

// ErrLaunchResponseLost is what a launch with a lost response returns (as a
// client-side timeout after the request reached the cloud would).
var ErrLaunchResponseLost = errors.New("request timed out after it was sent (injected)")

// launchFaults is the per-launch fault plan: each counter applies to the
// next successful launches in order, so a seeded run assigns them
// deterministically to launch order.
type launchFaults struct {
	slowNext     int
	slowBy       time.Duration
	loseNext     int
	delayNext    int
	delayBy      time.Duration
	neverRegNext int
	noGPUsNext   int

	extraLatency  map[string]time.Duration // instance ID -> added pending time
	neverRegister map[string]bool
	noGPUs        map[string]bool
	tokenOf       map[string]string // instance ID -> client token
	launchedAt    []string          // instance IDs in launch order
	perInstance   map[string][]string
	tokenReuses   int // launches answered from the client-token record
	inFlight      int // responses being delayed now
	injected      map[string]int
}

func newLaunchFaults() launchFaults {
	return launchFaults{
		extraLatency: map[string]time.Duration{}, neverRegister: map[string]bool{}, noGPUs: map[string]bool{},
		tokenOf: map[string]string{}, injected: map[string]int{}, perInstance: map[string][]string{},
	}
}

// responseFault is what happens to a launch's response after the instance
// exists.
type responseFault struct {
	lose  bool
	delay time.Duration
}

// assign applies the plan to a new instance, at most one fault per launch
// so that each armed fault hits a different instance, in this order: delayed
// reply, lost reply, never registers, no GPUs, slow. The caller holds f.mu.
func (l *launchFaults) assign(id, token string) *responseFault {
	l.tokenOf[id] = token
	l.launchedAt = append(l.launchedAt, id)
	mark := func(kind string) {
		l.injected[kind]++
		l.perInstance[id] = append(l.perInstance[id], kind)
	}
	switch {
	case l.delayNext > 0:
		l.delayNext--
		mark(FaultDelayedResponse)
		return &responseFault{delay: l.delayBy}
	case l.loseNext > 0:
		l.loseNext--
		mark(FaultLostResponse)
		return &responseFault{lose: true}
	case l.neverRegNext > 0:
		l.neverRegNext--
		l.neverRegister[id] = true
		mark(FaultNeverRegister)
	case l.noGPUsNext > 0:
		l.noGPUsNext--
		l.noGPUs[id] = true
		mark(FaultNoGPUs)
	case l.slowNext > 0:
		l.slowNext--
		l.extraLatency[id] = l.slowBy
		mark(FaultSlowLaunch)
	}
	return nil
}

// respond applies a response fault outside the fleet's lock.
func (f *Fleet) respond(ctx context.Context, res *cloudprovider.LaunchResult, post *responseFault) (*cloudprovider.LaunchResult, error) {
	if post.lose {
		return nil, fmt.Errorf("fake Launch: %w", ErrLaunchResponseLost)
	}
	f.mu.Lock()
	f.faults.inFlight++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.faults.inFlight--
		f.mu.Unlock()
	}()
	// Real time: the caller is blocked on a network response, whatever the
	// fleet's clock says.
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("fake Launch: %w", ctx.Err())
	case <-time.After(post.delay):
		return res, nil
	}
}

// SlowLaunchNext makes the next n launched instances stay pending d longer
// than the fleet's launch latency.
func (f *Fleet) SlowLaunchNext(n int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults.slowNext, f.faults.slowBy = n, d
}

// LoseLaunchResponseNext makes the next n launches start their instance but
// return ErrLaunchResponseLost, as a timeout after the request reached the
// cloud would. A retry with the same client token gets the instance.
func (f *Fleet) LoseLaunchResponseNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults.loseNext = n
}

// DelayLaunchResponseNext makes the next n launches start their instance and
// then block for d (real time) before answering, or until the caller's
// context ends: a controller killed during that window never sees the
// instance it launched.
func (f *Fleet) DelayLaunchResponseNext(n int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults.delayNext, f.faults.delayBy = n, d
}

// LaunchesInFlight is how many delayed launch responses are pending now.
func (f *Fleet) LaunchesInFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults.inFlight
}

// NeverRegisterNext makes the nodes of the next n launched instances never
// register (the registrar skips them: a broken bootstrap).
func (f *Fleet) NeverRegisterNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults.neverRegNext = n
}

// HideGPUsNext makes the nodes of the next n launched instances register
// without advertising accelerators (a device plugin that never starts).
func (f *Fleet) HideGPUsNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults.noGPUsNext = n
}

// NeverRegisters reports whether an instance's node must not register.
func (f *Fleet) NeverRegisters(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults.neverRegister[id]
}

// HidesGPUs reports whether an instance's device plugin never reports.
func (f *Fleet) HidesGPUs(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults.noGPUs[id]
}

// runningAt is when a pending instance turns running; the caller holds f.mu.
func (f *Fleet) runningAt(inst *cloudprovider.Instance) time.Time {
	return inst.LaunchTime.Add(f.opts.LaunchLatency).Add(f.faults.extraLatency[inst.ID])
}

// FaultCounts returns how many faults of each kind were injected (consumed),
// keyed by the Fault* constants.
func (f *Fleet) FaultCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return lo.Assign(f.faults.injected)
}

// LaunchRecord is one instance the fleet started.
type LaunchRecord struct {
	InstanceID  string
	ClientToken string
	NodeClaim   string // the nodeclaim tag
	State       cloudprovider.InstanceState
	LaunchTime  time.Time
	Faults      []string // Fault* kinds assigned to this launch
}

// LaunchRecords lists every instance launched, in launch order.
func (f *Fleet) LaunchRecords() []LaunchRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]LaunchRecord, 0, len(f.faults.launchedAt))
	for _, id := range f.faults.launchedAt {
		inst := f.instances[id]
		f.advance(inst)
		out = append(out, LaunchRecord{InstanceID: id, ClientToken: f.faults.tokenOf[id], NodeClaim: inst.Tags[cloudprovider.TagNodeClaim], State: inst.State,
			LaunchTime: inst.LaunchTime, Faults: f.faults.perInstance[id]})
	}
	return out
}

// TokenReuses counts launches answered with an existing instance because
// their client token had launched before (retries after a lost response or a
// controller restart).
func (f *Fleet) TokenReuses() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults.tokenReuses
}

// Duplicates returns, per client token or NodeClaim tag, the instances
// launched more than once for it (target: none).
func (f *Fleet) Duplicates() map[string][]string {
	recs := f.LaunchRecords()
	by := map[string][]string{}
	for _, r := range recs {
		if r.ClientToken != "" {
			by["token:"+r.ClientToken] = append(by["token:"+r.ClientToken], r.InstanceID)
		}
		if r.NodeClaim != "" {
			by["nodeclaim:"+r.NodeClaim] = append(by["nodeclaim:"+r.NodeClaim], r.InstanceID)
		}
	}
	out := map[string][]string{}
	for k, ids := range by {
		if len(ids) > 1 {
			sort.Strings(ids)
			out[k] = ids
		}
	}
	return out
}
