package simulation

// The launch step of gang attempts.
//
// The ProvisioningRequest controller creates every NodeClaim of a gang
// attempt at once (labelled and annotated with the gang,
// cloudprovider.GangOf); core's NodeClaim lifecycle launches each through
// the provider's Create. In a cluster those reconciles run concurrently,
// and the fake fleet, as the AWS backend, gathers a gang attempt's launches
// into one all-or-nothing group launch (fake.Options.GangWait, the one
// gang rule gather.Gangs): the gang launches whole, in one zone, or is
// refused whole. The engine reconciles one request at a time, so a gang
// member's launch would wait for the rest of its gang until GangWait (wall
// clock) ran out and launch alone.
//
// So the lifecycle requests of a round that launch members of a gang
// attempt form one step: the members are handed to the fleet together.
// They run one at a time, in name order, each until it waits in the
// fleet's gather for the rest of its gang or is done (gather.WithObserver
// tells); then the fleet flushes what waits (fake.Fleet.FlushGangs: a
// gang all of whose members came launched as they came, when the last
// one arrived). Members answered go on, again one at a time, in name
// order (the next capacity type of a refused gang gathers the same way),
// until every one is done. The gather completes when all members are
// handed over, in no simulated time and without waiting out GangWait; the
// order is fixed, so runs are repeatable.

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
)

// simGangWait is the fleet's GangWait in simulations. Every gang member's
// launch is handed over by a launch step, which flushes as soon as all of
// them wait; the wait is only a safety net for a launch that was not (it
// would make a run slow, and the fleet logs a partial gang).
const simGangWait = time.Minute

// launchStep is one lifecycle request, or the requests of one gang
// attempt's members that may launch, reconciled together.
type launchStep struct {
	keys []types.NamespacedName
	gang bool
}

// launchSteps splits a round's sorted lifecycle requests into steps: each
// gang attempt's members that have not launched yet form one step, at the
// place of the first of them; every other request is a step of its own,
// in order. A workload without gangs has no gang attempts: every request
// is its own step, as before gangs.
func (e *engine) launchSteps(keys []types.NamespacedName) []launchStep {
	steps := make([]launchStep, 0, len(keys))
	if len(e.gangs.byName) == 0 {
		for _, key := range keys {
			steps = append(steps, launchStep{keys: []types.NamespacedName{key}})
		}
		return steps
	}
	at := map[string]int{} // gang attempt -> its step
	for _, key := range keys {
		g, ok := e.launchingGang(key)
		if !ok {
			steps = append(steps, launchStep{keys: []types.NamespacedName{key}})
			continue
		}
		if i, seen := at[g.Key]; seen {
			steps[i].keys = append(steps[i].keys, key)
			continue
		}
		at[g.Key] = len(steps)
		steps = append(steps, launchStep{keys: []types.NamespacedName{key}, gang: true})
	}
	return steps
}

// launchingGang is the gang attempt of a NodeClaim whose lifecycle may
// launch it (it is not launched and not being deleted).
func (e *engine) launchingGang(key types.NamespacedName) (gpucp.Gang, bool) {
	nc := &karpv1.NodeClaim{}
	if err := e.kube.Get(e.ctx, key, nc); err != nil || !nc.DeletionTimestamp.IsZero() {
		return gpucp.Gang{}, false
	}
	if l := nc.StatusConditions().Get(karpv1.ConditionTypeLaunched); l != nil && l.IsTrue() {
		return gpucp.Gang{}, false
	}
	return gpucp.GangOf(nc)
}

// reconcileGang runs controller i (core's lifecycle) on a gang attempt's
// members together (handOver) and handles their results in name order.
// The instances they launched are recorded in NodeClaim name order.
func (e *engine) reconcileGang(i int, c *objCtrl, keys []types.NamespacedName) {
	type outcome struct {
		res reconcile.Result
		obj client.Object
		err error
	}
	out := make([]outcome, len(keys))
	launched := e.backend.Launches()
	start := time.Now()
	e.as(c.name)
	e.handOver(len(keys), func(ctx context.Context, j int) {
		res, obj, err := c.rec(ctx, keys[j])
		out[j] = outcome{res, obj, err}
	})
	e.phases[c.name] += time.Since(start)
	e.counts[c.name] += len(keys)
	e.d.reconciles += len(keys)
	e.backend.SortLaunchesSince(launched)
	e.debugf("gang launch step %v", keys)
	for j, key := range keys {
		e.reconciled(i, c, key, out[j].res, out[j].obj, out[j].err)
	}
}

// memberState is where a handed-over member is.
type memberState int

const (
	memberNew     memberState = iota
	memberRunning             // let go, neither waiting nor done yet
	memberWaiting             // in a gather, for the rest of its gang
	memberReady               // answered, held until let go
	memberDone
)

type memberEvent struct {
	member int
	state  memberState
}

// memberObserver reports one member's gather waits to handOver and holds
// it, once answered, until handOver lets it go on.
type memberObserver struct {
	member int
	events chan<- memberEvent
	resume chan struct{}
}

func (o *memberObserver) Waiting() { o.events <- memberEvent{o.member, memberWaiting} }

func (o *memberObserver) Resumed() {
	o.events <- memberEvent{o.member, memberReady}
	<-o.resume
}

// handOver runs n members (run(ctx, j) for each j) one at a time, in
// order, each until it waits in the fleet's gather or is done; then the
// fleet flushes what waits, and the members it answered go on the same
// way, until all are done. Only one member runs at a time, and a flush
// only happens when every member waits or is done, so no member's gang
// launches without a member still on its way to it.
func (e *engine) handOver(n int, run func(ctx context.Context, j int)) {
	events := make(chan memberEvent, 2*n)
	observers := make([]*memberObserver, n)
	state := make([]memberState, n)
	for j := range observers {
		observers[j] = &memberObserver{member: j, events: events, resume: make(chan struct{}, 1)}
	}
	apply := func() {
		ev := <-events
		state[ev.member] = ev.state
	}
	next := make([]int, n)
	for j := range next {
		next[j] = j
	}
	for len(next) > 0 {
		for _, j := range next {
			if state[j] == memberNew {
				ctx := gather.WithObserver(e.ctx, observers[j])
				go func() {
					run(ctx, j)
					events <- memberEvent{j, memberDone}
				}()
			} else {
				observers[j].resume <- struct{}{}
			}
			state[j] = memberRunning
			for state[j] == memberRunning {
				apply()
			}
		}
		// Every member waits or is done: launch what waits (and let the
		// gangs that filled finish launching); each member that waited
		// is then answered.
		e.fleet.FlushGangs()
		next = next[:0]
		for j := range state {
			for state[j] == memberWaiting {
				apply()
			}
			if state[j] == memberReady {
				next = append(next, j)
			}
		}
	}
}
