// Package simulation replays a workload (an Alibaba GPU trace or a native
// YAML scenario) through the real provisioning and disruption code of
// karpenter-gpu and Karpenter core, over a fake clock, the fake fleet and an
// in-memory API server, and reports what the fleet cost.
//
// Every decision about where pods go and which instances launch is made by
// the code the controller runs: core's scheduler behind this project's
// provisioning controller (with the GPU packer, or without it for the stock
// policy), core's NodeClaim lifecycle, disruption (emptiness and
// consolidation) and termination, the karpenter-gpu cloud provider and
// controllers, all assembled by pkg/operator. The simulator only plays the
// parts a real cluster adds around them:
//   - the workload: pods arrive and leave at trace times; evicted pods are
//     recreated (as a ReplicaSet or Job controller would) until they leave;
//   - the API server's watches: every write is seen, and the controllers
//     that watch the object are reconciled in deterministic rounds;
//     timed requeues are honoured (see dispatch.go for the pure periodic
//     resyncs that are skipped);
//   - kube-scheduler: binding pending pods to nodes they fit (kubescheduler.go);
//   - the kubelet: providers/fake.Registrar registers nodes after the
//     instance's launch latency plus a registration delay, and starts pods;
//   - the batching window of core's provisioner (idle 1s, max 10s);
//   - polling of the disruption singleton every 10s (skipped while nothing
//     has changed, see engine.markDisruptionDirty).
package simulation

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/disruption"
	coreprov "sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/operator/options"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nomination"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/apiserver"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/fleet"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/kubescheduler"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

// Config configures one simulation run.
type Config struct {
	Policy Policy
	// Seed seeds the fake fleet (instance IDs); everything else is
	// deterministic by construction.
	Seed int64
	// LaunchLatency is how long an instance stays pending; RegistrationDelay
	// how long after running its node registers; PodStartDelay how long a
	// bound pod takes to run.
	LaunchLatency, RegistrationDelay, PodStartDelay time.Duration
	// BatchIdle and BatchMax are core's --batch-idle-duration and
	// --batch-max-duration.
	BatchIdle, BatchMax time.Duration
	// Catalog overrides the embedded catalog (nil keeps it).
	Catalog []catalog.Entry
	// Region, Zones and CapacityTypes describe the fake fleet's offerings.
	Region        string
	Zones         []string
	CapacityTypes []string
	// Horizon is the simulated duration; 0 means the workload's last event
	// plus one hour (so the fleet can drain, or reach its steady state when
	// pods never leave).
	Horizon time.Duration
	// Progress, when set, is called as simulated time advances.
	Progress func(simulated, total time.Duration)
	// Logger receives controller logs (default: discarded).
	Logger *logr.Logger
	// LowerBound is shared between runs on the same workload (--compare).
	LowerBound *bound.Cache
	// LowerBoundExactShare is the share of simulated time whose fluid LP
	// bound is solved exactly, longest-lived alive sets first; the rest
	// gets solve-free bounds that stay valid but may be looser
	// (bound/fill.go). 0 means DefaultLowerBoundExactShare, 1 every moment.
	LowerBoundExactShare float64
	// DebugLog, when set, receives one line per decision (provisioning,
	// launches, bindings, disruption commands) with its simulated time, to
	// diff runs.
	DebugLog io.Writer
	// DisruptionInterval, when above core's 10s, polls core's disruption
	// controller at most that often after it found nothing to do. It is an
	// approximation for fast sweeps (consolidation happens later than core
	// would do it); 0 keeps core's cadence.
	DisruptionInterval time.Duration
	// SchedulerProfile is the kube-scheduler profile the binder scores
	// nodes with: kubescheduler.ProfileDefault ("" too) or
	// kubescheduler.ProfileBinPacking (designs/scheduler-profile.md).
	SchedulerProfile kubescheduler.Profile
	// FaithfulPolling polls the idle-GPU controller on every tick instead
	// of skipping ticks that provably change nothing (for tests).
	FaithfulPolling bool
	// PollAfterEveryProvisioning polls core's disruption controller after
	// every provisioning pass and at the end of its nomination window, as
	// if every pass changed the nominations, instead of only when the
	// nominations core's candidate filter looks at changed (for tests).
	PollAfterEveryProvisioning bool
	// DecideEveryWindow has the provisioning controller decide in every
	// batching window instead of recording again a decision that provably
	// still holds (provisionMemo) (for tests).
	DecideEveryWindow bool
	// ReferenceReads serves the in-memory API's reads the straightforward
	// way: every list scans, sorts and deep-copies its whole kind, the
	// simulator's own read-only lists included, with no index (cache.go),
	// for the test that checks the fast paths change nothing.
	ReferenceReads bool
	// Eviction is the eviction cost model's defaults for pods that do not
	// state their own (checkpoint interval of batch pods, restart time of
	// service replicas): what an evicted pod loses (evictions.go).
	Eviction evictioncost.Model
	// GroupBy is the pod label the report's cost allocation sums by
	// (besides namespace and pod group); "" for none.
	GroupBy string
	// Prices, when set, price the fleet's offerings (--prices: AWS CLI
	// price files, pkg/simulation/prices) instead of the catalog's
	// on-demand column for Region.
	Prices catalog.PriceSource
	// PricesDescription says where Prices come from, for the report.
	PricesDescription string
	// SpotInterruptionsPerDay is each spot instance's interruption rate
	// (fake.Options); the engine plays the interruption notice (spot.go).
	SpotInterruptionsPerDay float64
	// InitialNodes are nodes the cluster already runs: NodeClaims of the
	// first NodePool launched before any pod arrives (initialnodes.go).
	InitialNodes []InitialNode
	// Capacity limits how many instances of an offering the fleet runs at
	// once (fake.Options.Capacity): a launch beyond it is refused for
	// insufficient capacity. Offerings absent from it are unlimited.
	Capacity map[fake.Offering]int
	// NoNomination turns off the nomination controller
	// (--nominate-pods=false): karpenter-gpu then leaves
	// status.nominatedNodeName unset, as stock Karpenter does.
	NoNomination bool
}

// DefaultConfig returns the defaults the command line documents.
func DefaultConfig() Config {
	return Config{
		Policy:            PolicyKarpenterGPU,
		Seed:              1,
		LaunchLatency:     60 * time.Second,
		RegistrationDelay: 90 * time.Second,
		BatchIdle:         time.Second,
		BatchMax:          10 * time.Second,
		Region:            "us-east-1",
		Eviction:          evictioncost.Model{CheckpointInterval: evictioncost.DefaultCheckpointInterval, RestartTime: evictioncost.DefaultRestartTime},
	}
}

// engine is one simulation run.
type engine struct {
	ctx     context.Context
	cfg     Config
	w       *workload.Workload
	horizon time.Time

	clk      *simClock
	changes  *apiserver.ChangeLog
	kube     client.Client
	deleting atomic.Bool

	fleet     *fake.Fleet
	backend   *fleet.Meter
	cp        karpcp.CloudProvider    // provider.Decorated
	provider  *operator.CloudProvider // as the controller binary builds it
	cluster   *state.Cluster
	rec       recorder
	registrar *fake.Registrar
	prov      *provisioning.Controller
	provMemo  provisionMemo
	coreProv  *coreprov.Provisioner
	refiner   *provisioning.Packer

	d dispatcher

	events eventHeap
	seq    uint64

	batch   batchWindow
	disrupt disruptionDriver
	idle    *idleDriver

	// kube-scheduler emulation
	schedDirty   bool
	deferBinding bool
	// nominator is the nomination controller (nil under the stock
	// policy or with NoNomination).
	nominator *nomination.Controller

	// gangs tracks all-or-nothing pod groups (gang.go).
	gangs gangTracker

	// workload bookkeeping
	pods     []*podState
	byName   map[string]*podState // current pod object name -> workload pod
	podIndex map[string]*podState // workload pod name -> workload pod
	metrics  *collector

	soloErrors map[string]string
	spot       spotState
	// notes say what the report should warn about (NodePools without
	// prices).
	notes []string

	wallStart time.Time
	phases    map[string]time.Duration
	counts    map[string]int
}

func (e *engine) debugf(format string, args ...any) {
	if e.cfg.DebugLog != nil {
		fmt.Fprintf(e.cfg.DebugLog, "%s %s\n", e.clk.Now().Sub(Epoch), fmt.Sprintf(format, args...))
	}
}

// as names who writes next, for the report's deletion counts.
func (e *engine) as(actor string) {
	e.changes.SetActor(actor)
}

// timed accumulates wall-clock time per phase for the report's profile.
func (e *engine) timed(phase string, start time.Time) {
	e.phases[phase] += time.Since(start)
	e.counts[phase]++
}

// Run simulates the workload under cfg and returns the result.
func Run(ctx context.Context, w *workload.Workload, cfg Config) (*report.Result, error) {
	e, err := newEngine(ctx, w, cfg)
	if err != nil {
		return nil, err
	}
	if err := e.run(); err != nil {
		return nil, err
	}
	return e.result()
}

// LowerBound computes only the lower bound of w (the cluster is set up as
// for Run, nothing is replayed): the cost floor of the workload, with the
// number of LP solves and the share of time solved exactly.
func LowerBound(ctx context.Context, w *workload.Workload, cfg Config) (usd float64, solves int, exactTimeShare float64, err error) {
	e, err := newEngine(ctx, w, cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := e.setup(); err != nil {
		return 0, 0, 0, err
	}
	if err := e.startLowerBound(); err != nil {
		return 0, 0, 0, err
	}
	usd, _, err = e.lowerBound()
	return usd, e.cfg.LowerBound.Solves(), e.cfg.LowerBound.ExactTime(), err
}

func newEngine(ctx context.Context, w *workload.Workload, cfg Config) (*engine, error) {
	if cfg.BatchIdle <= 0 || cfg.BatchMax <= 0 {
		return nil, fmt.Errorf("batch idle and max durations must be positive")
	}
	profile, err := kubescheduler.ParseProfile(string(cfg.SchedulerProfile))
	if err != nil {
		return nil, err
	}
	cfg.SchedulerProfile = profile
	for _, d := range []time.Duration{cfg.LaunchLatency, cfg.RegistrationDelay, cfg.PodStartDelay, cfg.Horizon} {
		if d < 0 {
			return nil, fmt.Errorf("negative duration %s", d)
		}
	}
	for off, n := range cfg.Capacity {
		if n < 0 {
			return nil, fmt.Errorf("capacity of %s %s in %s is %d; it must be 0 or more (leave an offering out for no limit)", off.CapacityType, off.InstanceType, off.Zone, n)
		}
	}
	logger := logr.Discard()
	if cfg.Logger != nil {
		logger = *cfg.Logger
	}
	ctx = log.IntoContext(ctx, logger)
	ctx = options.ToContext(ctx, coreOptions(cfg))
	e := &engine{
		ctx:       ctx,
		cfg:       cfg,
		w:         w,
		clk:       newSimClock(),
		changes:   apiserver.NewChangeLog(),
		rec:       recorder{},
		byName:    map[string]*podState{},
		wallStart: time.Now(),
		phases:    map[string]time.Duration{},
		counts:    map[string]int{},
	}
	horizon := cfg.Horizon
	if horizon == 0 {
		horizon = w.End() + time.Hour
		if w.Span > 0 {
			horizon = w.Span // the input's observed range (Prometheus)
		}
	}
	e.horizon = Epoch.Add(horizon)
	e.kube = apiserver.NewClient(e.clk, e.changes, &e.deleting, cfg.ReferenceReads)
	entries := cfg.Catalog
	if entries == nil {
		var err error
		if entries, _, err = catalog.Embedded(); err != nil {
			return nil, fmt.Errorf("loading embedded catalog, %w", err)
		}
	}
	// Gang attempts launch all or nothing, as on AWS: the engine hands each
	// attempt's launches to the fleet together (ganglaunch.go).
	e.fleet = fake.NewFleet(fake.Options{Clock: e.clk, Seed: cfg.Seed, LaunchLatency: cfg.LaunchLatency, Region: cfg.Region, Zones: cfg.Zones, CapacityTypes: cfg.CapacityTypes,
		Prices: cfg.Prices, SpotInterruptionsPerDay: cfg.SpotInterruptionsPerDay, Capacity: maps.Clone(cfg.Capacity), GangWait: simGangWait})
	gpus := map[string]int64{}
	for _, en := range entries {
		if v1alpha1.IsAcceleratorResource(corev1.ResourceName(en.AcceleratorResource)) {
			gpus[en.Name] = en.AcceleratorCount
		}
	}
	e.metrics = newCollector(e)
	e.backend = fleet.NewMeter(e.fleet, e.clk, func(t string) int64 { return gpus[t] }, e.debugf)
	// The provider as the controller binary builds it (core's decorators,
	// repair-policy matcher), memoised on simulated state underneath.
	e.provider, err = operator.NewCloudProvider(ctx, operator.CloudProviderOptions{
		Provider: gpucp.Options{KubeClient: e.kube, Backend: e.backend, Clock: e.clk, Entries: entries, ClusterName: "simulator"},
		Wrap: func(cp *gpucp.CloudProvider) karpcp.CloudProvider {
			return &stableCloudProvider{CloudProvider: cp, kube: e.kube, cache: map[string]stableEntry{}}
		},
	})
	if err != nil {
		return nil, err
	}
	e.cp = e.provider.Decorated
	e.cluster = e.provider.NewCluster(e.clk, e.kube)
	e.registrar = fake.NewRegistrar(fake.RegistrarOptions{KubeClient: e.kube, Fleet: e.fleet, Clock: e.clk, RegistrationDelay: cfg.RegistrationDelay, PodStartDelay: cfg.PodStartDelay})
	if err := e.buildControllers(); err != nil {
		return nil, err
	}
	return e, nil
}

// coreOptions are Karpenter core's options with their defaults, built
// directly rather than from flags so that the KARPENTER environment
// variables of the machine cannot change a simulation. CPURequests 1000
// gives core's scheduler one worker, which keeps its decisions
// deterministic; cluster-state observability (metrics and status
// controllers) is off.
func coreOptions(cfg Config) *options.Options {
	return &options.Options{
		ServiceName:                      "",
		KubeClientQPS:                    200,
		KubeClientBurst:                  300,
		DisableControllerWarmup:          true,
		DisableLeaderElection:            true,
		DisableClusterStateObservability: true,
		MemoryLimit:                      -1,
		CPURequests:                      1000,
		LogLevel:                         "info",
		BatchMaxDuration:                 cfg.BatchMax,
		BatchIdleDuration:                cfg.BatchIdle,
		PreferencePolicy:                 options.PreferencePolicyRespect,
		MinValuesPolicy:                  options.MinValuesPolicyStrict,
		IgnoreDRARequests:                true,
		FeatureGates: options.FeatureGates{
			NodeRepair:                options.NodeRepairFeatureGate.Default,
			ReservedCapacity:          options.ReservedCapacityFeatureGate.Default,
			SpotToSpotConsolidation:   options.SpotToSpotConsolidationFeatureGate.Default,
			NodeOverlay:               options.NodeOverlayFeatureGate.Default,
			StaticCapacity:            options.StaticCapacityFeatureGate.Default,
			CapacityBuffer:            options.CapacityBufferFeatureGate.Default,
			TerminateFirstDrift:       options.TerminateFirstDriftFeatureGate.Default,
			TerminateFirstRepair:      options.TerminateFirstRepairFeatureGate.Default,
			PodDeletionCostManagement: options.PodDeletionCostManagementFeatureGate.Default,
		},
	}
}

// ---- events ----

type evKind int

// Event kinds, in the order they run when due at the same instant. A
// background controller's wake-up comes first: the clock must not reach its
// wake-up time while it is not being waited for.
const (
	evWake evKind = iota
	evDepart
	evArrive
	evRequeue
	evBatch
	evDirty
	evPoll
	evSingleton
)

type simEvent struct {
	at   time.Time
	kind evKind
	seq  uint64
	pod  *podState
	ck   ctrlKey
	gen  uint64
	idx  int
}

type eventHeap []simEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	if h[i].kind != h[j].kind {
		return h[i].kind < h[j].kind
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (e *engine) push(ev simEvent) {
	e.seq++
	ev.seq = e.seq
	heap.Push(&e.events, ev)
}

// ---- main loop ----

func (e *engine) run() error {
	if err := e.setup(); err != nil {
		return err
	}
	if err := e.startInitialNodes(); err != nil {
		return err
	}
	if err := e.startLowerBound(); err != nil {
		return fmt.Errorf("computing the lower bound, %w", err)
	}
	for _, ps := range e.pods {
		e.push(simEvent{at: Epoch.Add(ps.spec.Arrival), kind: evArrive, pod: ps})
		if ps.spec.Deletion != workload.Forever && ps.spec.Gang == nil { // a gang's members leave when it is done (gang.go)
			ps.departAt = Epoch.Add(ps.spec.Deletion)
			e.push(simEvent{at: ps.departAt, kind: evDepart, pod: ps})
		}
	}
	total := e.horizon.Sub(Epoch)
	lastProgress := time.Time{}
	for {
		// The next thing to happen: an event, or an idle-GPU tick before it.
		limit := e.horizon.Add(time.Nanosecond)
		if e.events.Len() > 0 && e.events[0].at.Before(limit) {
			limit = e.events[0].at
		}
		if at, ok := e.nextSpotEvent(limit); ok {
			limit = at // a spot notice or reclaim comes first, unless an idle tick does
			if _, tick := e.nextIdleTick(limit); !tick {
				if err := e.spotEvent(at); err != nil {
					return err
				}
				continue
			}
		}
		if tick, ok := e.nextIdleTick(limit); ok {
			if err := e.idleTick(tick); err != nil {
				return err
			}
			continue
		}
		if e.events.Len() == 0 {
			break
		}
		ev := heap.Pop(&e.events).(simEvent)
		if ev.at.After(e.horizon) {
			break
		}
		if ev.kind == evWake {
			e.clk.background.Store(true) // before the clock reaches the wake-up time
		}
		if ev.at.After(e.clk.Now()) {
			e.clk.SetTime(ev.at)
		}
		if err := e.handle(ev); err != nil {
			return err
		}
		// kube-scheduler binds once everything due at this instant has
		// happened: nodes launched together register together, and pods go
		// to the nodes Karpenter planned them on rather than to whichever
		// node's event the engine happened to process first.
		e.deferBinding = e.events.Len() > 0 && e.events[0].at.Equal(ev.at)
		err := e.settle()
		e.deferBinding = false
		if err != nil {
			return err
		}
		if e.cfg.Progress != nil && time.Since(lastProgress) > 100*time.Millisecond {
			lastProgress = time.Now()
			e.cfg.Progress(e.clk.Now().Sub(Epoch), total)
		}
	}
	if e.disrupt.active {
		// A background disruption run is waiting past the horizon; it
		// stays parked (the process ends with the run).
		e.clk.background.Store(false)
	}
	if e.clk.Now().Before(e.horizon) {
		e.clk.SetTime(e.horizon)
	}
	if e.cfg.Progress != nil {
		e.cfg.Progress(total, total)
	}
	return nil
}

func (e *engine) handle(ev simEvent) error {
	switch ev.kind {
	case evArrive:
		return e.arrive(ev.pod)
	case evDepart:
		if ev.gen != ev.pod.departGen {
			return nil // the pod was evicted since: its departure moved
		}
		return e.depart(ev.pod)
	case evRequeue:
		if at, ok := e.d.pending[ev.ck]; ok && at.Equal(ev.at) {
			delete(e.d.pending, ev.ck)
			e.d.immediate[ev.ck] = true
		}
	case evBatch:
		if e.batch.open && ev.gen == e.batch.gen {
			e.batch.open = false
			return e.provision()
		}
	case evDirty:
		if e.nominationsChanged() {
			e.markDisruptionDirty()
		}
	case evPoll:
		return e.poll()
	case evWake:
		e.awaitBackground()
	case evSingleton:
		return e.pollSingleton(ev.idx)
	}
	return nil
}

// setup creates the node class and NodePools and waits for them to be ready,
// as a platform team's manifests would be before any pod arrives.
func (e *engine) setup() error {
	nc := e.w.NodeClass.DeepCopy()
	nc.ResourceVersion = ""
	if err := e.kube.Create(e.ctx, nc); err != nil {
		return fmt.Errorf("creating GPUNodeClass %s, %w", nc.Name, err)
	}
	for _, np := range e.w.NodePools {
		np = np.DeepCopy()
		np.ResourceVersion = ""
		if err := e.kube.Create(e.ctx, np); err != nil {
			return fmt.Errorf("creating NodePool %s, %w", np.Name, err)
		}
	}
	if err := e.settle(); err != nil {
		return err
	}
	for _, np := range e.w.NodePools {
		got := &karpv1.NodePool{}
		if err := e.kube.Get(e.ctx, client.ObjectKeyFromObject(np), got); err != nil {
			return err
		}
		if ready := got.StatusConditions().Root(); !ready.IsTrue() {
			var why []string
			for _, c := range got.Status.Conditions {
				if c.Status != "True" {
					why = append(why, fmt.Sprintf("%s=%s (%s)", c.Type, c.Status, c.Message))
				}
			}
			sort.Strings(why)
			return fmt.Errorf("NodePool %q is not ready: %v", np.Name, why)
		}
	}
	if err := e.checkPrices(); err != nil {
		return err
	}
	e.pods = make([]*podState, len(e.w.Pods))
	for i := range e.w.Pods {
		e.pods[i] = &podState{spec: &e.w.Pods[i], idx: i, workLeft: -1}
	}
	e.gangs = newGangTracker(e.pods)
	return nil
}

// checkPrices refuses a run whose NodePools can launch nothing priced: a
// region or catalog without prices would report a $0 fleet as if it were
// free.
func (e *engine) checkPrices() error {
	priced := 0
	for _, np := range e.w.NodePools {
		got := &karpv1.NodePool{}
		if err := e.kube.Get(e.ctx, client.ObjectKeyFromObject(np), got); err != nil {
			return err
		}
		its, err := e.cp.GetInstanceTypes(e.ctx, got)
		if err != nil {
			return fmt.Errorf("instance types of NodePool %q, %w", np.Name, err)
		}
		reqs := scheduling.NewNodeClaimTemplate(got).Requirements
		ok := false
		for _, it := range its {
			if it.Requirements.Intersects(reqs) != nil {
				continue
			}
			for _, o := range it.Offerings.Compatible(reqs) {
				ok = ok || o.Price > 0
			}
		}
		if ok {
			priced++
			continue
		}
		// A NodePool that can launch nothing priced leaves its pods
		// unschedulable with core's generic message: say why.
		e.notes = append(e.notes, fmt.Sprintf("NodePool %q can launch nothing priced in %s: no offering its requirements allow (capacity types offered: %s) has a price; spot needs --prices with spot prices",
			np.Name, e.cfg.Region, strings.Join(lo.Ternary(len(e.cfg.CapacityTypes) > 0, e.cfg.CapacityTypes, []string{karpv1.CapacityTypeOnDemand}), ", ")))
	}
	if priced > 0 {
		return nil
	}
	return fmt.Errorf("region %q: no offering any NodePool allows has a price (the embedded catalog holds us-east-1 on-demand prices; give --prices with `aws pricing get-products` or `aws ec2 describe-spot-price-history` output for this region, or --catalog)", e.cfg.Region)
}

// ---- provisioning batches ----

// batchWindow mirrors core's Batcher.Wait: the first trigger opens a window
// that closes BatchIdle after the last trigger of a new pod, or BatchMax
// after it opened, whichever comes first; a pod triggers once per window.
type batchWindow struct {
	open         bool
	gen          uint64
	start, idle  time.Time
	elems        map[types.UID]bool
	provisions   int
	provisionErr int
}

func (e *engine) trigger(uid types.UID) {
	now := e.clk.Now()
	b := &e.batch
	if !b.open {
		b.open, b.start, b.elems = true, now, map[types.UID]bool{uid: true}
	} else if b.elems[uid] {
		return
	} else {
		b.elems[uid] = true
	}
	b.idle = now.Add(e.cfg.BatchIdle)
	b.gen++
	at := b.idle
	if deadline := b.start.Add(e.cfg.BatchMax); deadline.Before(at) {
		at = deadline
	}
	e.push(simEvent{at: at, kind: evBatch, gen: b.gen})
}

func (e *engine) provision() error {
	// Core's provisioner waits for cluster state to be synced before it
	// schedules; the pods' 10s requeue opens the next window.
	if !e.cluster.Synced(e.ctx) {
		return nil
	}
	e.changes.TakeCreatedClaims()
	e.batch.provisions++
	e.as("provisioning")
	names, err := e.decide()
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	e.debugf("provision created %v", sorted)
	if err != nil {
		e.batch.provisionErr++
		e.metrics.controllerError("provisioning", err)
	}
	e.updateNominations()
	// Nodes nominated for pending pods are excluded from disruption for a
	// window (StateNode.Nominated): disruption may decide differently when
	// it ends.
	e.push(simEvent{at: e.clk.Now().Add(max(2*e.cfg.BatchMax, 10*time.Second) + time.Nanosecond), kind: evDirty})
	if e.nominationsChanged() {
		e.markDisruptionDirty()
	}
	return nil
}

// decide makes the provisioning decision of a batching window: the
// provisioning controller decides, or, when its last decision still holds
// (provisionMemo), that decision is recorded again.
func (e *engine) decide() ([]string, error) {
	m := &e.provMemo
	unavailable := e.provider.Provider.Unavailable().Version()
	deleting := e.anyNodeDeleting()
	if m.valid && !e.cfg.DecideEveryWindow && !deleting && m.writes == e.changes.Writes() && m.unavailable == unavailable {
		defer e.timed("provisioning.recorded", time.Now())
		e.prov.Record(e.ctx, m.results)
		return nil, nil
	}
	defer e.timed("provisioning", time.Now())
	d, err := e.prov.Decide(e.ctx)
	*m = provisionMemo{
		valid:       err == nil && len(d.Results.NewNodeClaims) == 0 && !deleting,
		writes:      e.changes.Writes(),
		unavailable: unavailable,
		results:     d.Results,
	}
	return d.Created, err
}

// provisionMemo is the last provisioning decision, valid when it created
// no NodeClaim. Core's pod controller requeues a pending pod every 10s, so
// while pods wait for a launching node every batching window decides
// again, mostly on the same cluster. The decision reads the API's objects,
// offering availability, the cluster state's nodes (built from the
// objects, but for nodes marked for deletion, whose pods' reschedulability
// also depends on the clock) and nothing else that changes with time; so
// while nothing has been written to the API, availability is the same and
// no node is being deleted, it is the same decision, and recording it
// again (Controller.Record: the pods' decisions, the nominations of the
// nodes they wait for) is all deciding again would do.
type provisionMemo struct {
	valid       bool
	writes      uint64
	unavailable string
	results     scheduling.Results
}

// anyNodeDeleting reports whether cluster state has a node marked for
// deletion or deleting.
func (e *engine) anyNodeDeleting() bool {
	for n := range e.cluster.Nodes() {
		if n.MarkedForDeletion() {
			return true
		}
	}
	return false
}

// updateNominations settles which of several identical NodeClaims created
// in the same batch each pod was planned on. Core creates such NodeClaims
// concurrently, so which one got which pods in its cluster state
// (PodNodeClaimMapping) depends on goroutine scheduling; the nomination
// controller reads that mapping (and kube-scheduler then honours it), so the
// pod sets are reassigned in name order to keep runs deterministic. The
// debug log records the plan of the NodeClaims created.
func (e *engine) updateNominations() {
	created := e.changes.TakeCreatedClaims()
	byHash := map[string][]string{}
	for name, h := range created {
		byHash[h] = append(byHash[h], name)
	}
	for _, names := range byHash {
		if len(names) < 2 {
			continue
		}
		sort.Strings(names)
		sets := make([][]types.NamespacedName, 0, len(names))
		for _, n := range names {
			ks := e.cluster.PodsMappedToNodeClaim(n)
			sort.Slice(ks, func(i, j int) bool { return ks[i].String() < ks[j].String() })
			sets = append(sets, ks)
		}
		sort.SliceStable(sets, func(i, j int) bool {
			if len(sets[i]) == 0 || len(sets[j]) == 0 {
				return len(sets[i]) > len(sets[j])
			}
			return sets[i][0].String() < sets[j][0].String()
		})
		for i, ks := range sets {
			pods := make([]*corev1.Pod, len(ks))
			for j, k := range ks {
				pods[j] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
			}
			e.cluster.UpdatePodToNodeClaimMapping(map[string][]*corev1.Pod{names[i]: pods})
		}
	}
	if e.cfg.DebugLog == nil {
		return
	}
	names := lo.Keys(created)
	sort.Strings(names)
	for _, nc := range names {
		ks := e.cluster.PodsMappedToNodeClaim(nc)
		sort.Slice(ks, func(i, j int) bool { return ks[i].String() < ks[j].String() })
		for _, k := range ks {
			e.debugf("nominated %s %s", k.Name, nc)
		}
	}
}

// ---- disruption singleton ----

// disruptionDriver polls core's disruption controller. It runs in the
// background because command validation waits 15s of simulated time
// (clock.After), during which the rest of the cluster keeps running.
type disruptionDriver struct {
	ctrl     *disruption.Controller
	queue    *disruption.Queue
	dirty    bool
	writes   uint64 // change-log write count when last looked
	polled   bool   // a poll is scheduled
	nextPoll time.Time
	// nominated are the nodes that were nominated for pending pods when
	// the last poll began (its candidates exclude them).
	nominated []string
	active    bool
	done      chan disruptionResult
	seen      map[string]bool
	commands  []commandRecord
	started   time.Time
}

type disruptionResult struct {
	requeue time.Duration
	err     error
}

type commandRecord struct {
	At         time.Time
	Reason     string
	Decision   string
	Candidates []string
	Replaced   int
}

const disruptionPollingPeriod = 10 * time.Second

// markDisruptionDirty notes that something changed since the last poll and
// schedules one on the controller's 10s cadence. Polls while nothing has
// changed are skipped: with an unchanged cluster, a static catalog and no
// time-based inputs left (nomination windows and consolidateAfter are turned
// into events), core would compute the same "nothing to do" again. Its
// 5-minute forced re-evaluation (ConsolidationState) exists for changes a
// cluster cannot observe, such as instance availability, which the
// simulator does observe.
func (e *engine) markDisruptionDirty() {
	e.disrupt.dirty = true
	e.schedulePoll()
}

func (e *engine) schedulePoll() {
	d := &e.disrupt
	if d.active || d.polled || !d.dirty {
		return
	}
	now := e.clk.Now()
	at := d.nextPoll
	if at.Before(now) {
		// Next tick of the 10s cadence at or after now.
		period := max(disruptionPollingPeriod, e.cfg.DisruptionInterval)
		n := (now.Sub(at) + period - 1) / period
		at = at.Add(n * period)
	}
	d.polled = true
	e.push(simEvent{at: at, kind: evPoll})
}

// nominationsChanged says whether the nodes nominated for pending pods
// differ from those nominated when the last poll began. Nomination is the
// one time-based input of core's candidate filter
// (StateNode.ValidateNodeDisruptable) that provisioning changes without a
// write; a provisioning pass or a window's end that leaves the set as the
// last poll saw it cannot change its candidates, so it is no reason to poll.
func (e *engine) nominationsChanged() bool {
	if e.cfg.PollAfterEveryProvisioning {
		return true
	}
	return !slices.Equal(e.nominatedNodes(nil), e.disrupt.nominated)
}

// nominatedNodes appends the provider IDs of the initialized nodes
// nominated now to ids, sorted. Core's filter rejects an uninitialized node
// before it looks at nomination, and a node's initialization is a write.
func (e *engine) nominatedNodes(ids []string) []string {
	for n := range e.cluster.Nodes() {
		if n.Initialized() && n.Nominated(e.clk) {
			ids = append(ids, n.ProviderID())
		}
	}
	sort.Strings(ids)
	return ids
}

func (e *engine) poll() error {
	d := &e.disrupt
	d.polled = false
	if !d.dirty || d.active {
		return nil
	}
	d.dirty = false
	d.writes = e.changes.Writes()
	d.nominated = e.nominatedNodes(d.nominated[:0])
	d.active = true
	d.started = time.Now()
	e.as("disruption")
	// Before the goroutine starts: its first clock.After must see it.
	e.clk.background.Store(true)
	go func() {
		res, err := d.ctrl.Reconcile(e.ctx)
		d.done <- disruptionResult{requeue: res.RequeueAfter, err: err}
	}()
	e.awaitBackground()
	return nil
}

// awaitBackground waits until the background disruption run either
// finishes or blocks on the clock (then its wake-up becomes an event).
func (e *engine) awaitBackground() {
	d := &e.disrupt
	e.clk.background.Store(true)
	select {
	case r := <-d.done:
		e.clk.background.Store(false)
		d.active = false
		e.timed("disruption", d.started)
		e.disruptionDone(r)
	case wake := <-e.clk.blocked:
		e.clk.background.Store(false)
		e.push(simEvent{at: wake, kind: evWake})
	}
}

func (e *engine) disruptionDone(r disruptionResult) {
	d := &e.disrupt
	now := e.clk.Now()
	if r.err != nil {
		e.metrics.controllerError("disruption", r.err)
		r.requeue = time.Second
	}
	for _, cmd := range d.queue.GetCommands() {
		id := cmd.ID.String()
		if d.seen[id] {
			continue
		}
		d.seen[id] = true
		rec := commandRecord{At: now, Reason: string(cmd.Reason()), Decision: string(cmd.Decision()), Replaced: len(cmd.Replacements)}
		for _, c := range cmd.Candidates {
			rec.Candidates = append(rec.Candidates, c.NodeClaim.Name)
		}
		sort.Strings(rec.Candidates)
		var repl []string
		for _, r := range cmd.Replacements {
			repl = append(repl, r.Name)
		}
		e.debugf("disruption %s %s candidates %v replacements %v", rec.Reason, rec.Decision, rec.Candidates, repl)
		d.commands = append(d.commands, rec)
	}
	switch {
	case r.requeue < disruptionPollingPeriod:
		// A command started (requeue immediately) or state was not synced
		// (1s): core polls again soon whatever changed.
		d.nextPoll = now.Add(r.requeue)
		d.dirty = true
	default:
		d.nextPoll = now.Add(max(r.requeue, e.cfg.DisruptionInterval))
		if e.changes.Writes() != d.writes {
			d.dirty = true
		}
	}
	e.schedulePoll()
}
