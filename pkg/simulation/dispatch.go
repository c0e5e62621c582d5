package simulation

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/awslabs/operatorpkg/controller"
	"github.com/awslabs/operatorpkg/reconciler"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/disruption"
	metricsnode "sigs.k8s.io/karpenter/pkg/controllers/metrics/node"
	metricsnodepool "sigs.k8s.io/karpenter/pkg/controllers/metrics/nodepool"
	metricspod "sigs.k8s.io/karpenter/pkg/controllers/metrics/pod"
	nodehydration "sigs.k8s.io/karpenter/pkg/controllers/node/hydration"
	"sigs.k8s.io/karpenter/pkg/controllers/node/termination"
	"sigs.k8s.io/karpenter/pkg/controllers/node/termination/terminator"
	nodeclaimconsistency "sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/consistency"
	nodeclaimdisruption "sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/disruption"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/expiration"
	nodeclaimgc "sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/garbagecollection"
	nodeclaimhydration "sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/hydration"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/lifecycle"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/podevents"
	nodeclaimreboot "sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/reboot"
	nodepoolcounter "sigs.k8s.io/karpenter/pkg/controllers/nodepool/counter"
	nodepoolhash "sigs.k8s.io/karpenter/pkg/controllers/nodepool/hash"
	nodepoolreadiness "sigs.k8s.io/karpenter/pkg/controllers/nodepool/readiness"
	nodepoolregistrationhealth "sigs.k8s.io/karpenter/pkg/controllers/nodepool/registrationhealth"
	nodepoolvalidation "sigs.k8s.io/karpenter/pkg/controllers/nodepool/validation"
	coreprov "sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/state/informer"
	statenodeclaimgc "sigs.k8s.io/karpenter/pkg/controllers/state/nodeclaimgc"
	disruptionutils "sigs.k8s.io/karpenter/pkg/utils/disruption"
	nodeclaimutils "sigs.k8s.io/karpenter/pkg/utils/nodeclaim"
	nodepoolutils "sigs.k8s.io/karpenter/pkg/utils/nodepool"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/gpustartup"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/gputaint"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nodeclass"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nomination"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/apiserver"
)

// objCtrl is an object controller the engine reconciles when objects it
// watches change, as controller-runtime would.
type objCtrl struct {
	name string
	kind apiserver.Kind // the kind of its requests
	rec  func(ctx context.Context, key types.NamespacedName) (reconcile.Result, client.Object, error)
	// requeue filters RequeueAfter results: it returns the delay to honour
	// and false to drop a pure periodic resync (see buildControllers).
	requeue func(key types.NamespacedName, d time.Duration) (time.Duration, bool)
	// after runs after a successful reconcile (the provisioning triggers).
	after func(obj client.Object, res reconcile.Result)
}

type ctrlKey struct {
	ctrl int
	key  types.NamespacedName
}

// dispatcher holds controller-runtime's work queue state: the controllers,
// the requests due in the next round, and delayed requeues.
type dispatcher struct {
	ctrls     []*objCtrl
	byName    map[string]int
	immediate map[ctrlKey]bool
	pending   map[ctrlKey]time.Time
	backoff   map[ctrlKey]time.Duration
	// lastNodeProviderID and lastPodNode map deleted objects in watches.
	lastNodeProviderID map[string]string
	lastPodNode        map[types.NamespacedName]string
	// The controllers' own watch mappings (core's event handlers): to the
	// NodeClaims of a NodePool, of a node class, of a Node (provider ID),
	// of a Pod's node; to the NodePools of a node class.
	poolClaims, classClaims, nodeClaims, podClaims, classPools handler.EventHandler

	dqueueSource chan event.TypedGenericEvent[*karpv1.NodeClaim]
	evqSource    chan event.TypedGenericEvent[*corev1.Pod]

	singletons []singletonCtrl
	reconciles int
}

// singletonCtrl is a polling controller besides disruption (e.g. the
// idle-GPU reclaimer): it is polled at the interval it asks for.
type singletonCtrl struct {
	name string
	rec  interface {
		Reconcile(context.Context) (reconciler.Result, error)
	}
}

func typed[T client.Object](kube client.Client, newObj func() T, r func(context.Context, T) (reconcile.Result, error)) func(context.Context, types.NamespacedName) (reconcile.Result, client.Object, error) {
	return func(ctx context.Context, key types.NamespacedName) (reconcile.Result, client.Object, error) {
		obj := newObj()
		if err := kube.Get(ctx, key, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return reconcile.Result{}, nil, nil
			}
			return reconcile.Result{}, nil, err
		}
		res, err := r(ctx, obj)
		return res, obj, err
	}
}

func byRequest(r reconcile.Reconciler) func(context.Context, types.NamespacedName) (reconcile.Result, client.Object, error) {
	return func(ctx context.Context, key types.NamespacedName) (reconcile.Result, client.Object, error) {
		res, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: key})
		return res, nil, err
	}
}

func honour(_ types.NamespacedName, d time.Duration) (time.Duration, bool) { return d, true }

// resync drops the periodic requeue of cluster-state informers: it re-reads
// an object whose every change the engine already delivers.
func resync(types.NamespacedName, time.Duration) (time.Duration, bool) { return 0, false }

// Controller names in the order a round runs them: cluster state first, so
// the others read fresh state.
const (
	cStateNodePool       = "state.nodepool"
	cStateNodeClaim      = "state.nodeclaim"
	cStateNode           = "state.node"
	cStatePod            = "state.pod"
	cNodeClass           = "gpunodeclass.status"
	cPoolReadiness       = "nodepool.readiness"
	cPoolValidation      = "nodepool.validation"
	cPoolHash            = "nodepool.hash"
	cPoolRegistration    = "nodepool.registrationhealth"
	cLifecycle           = "nodeclaim.lifecycle"
	cRegistrar           = "fake.registrar"
	cKubelet             = "fake.registrar.pods"
	cPodEvents           = "nodeclaim.podevents"
	cNodeClaimDisruption = "nodeclaim.disruption"
	cExpiration          = "nodeclaim.expiration"
	cTermination         = "node.termination"
	cEviction            = "eviction-queue"
	cDisruptionQueue     = "disruption.queue"
	cGPUTaint            = "karpenter-gpu.gputaint"
	cNomination          = "karpenter-gpu.nomination"
	cGPUStartup          = "karpenter-gpu.gpustartup"
	cPodTrigger          = "provisioner.trigger.pod"
	cNodeTrigger         = "provisioner.trigger.node"
)

// buildControllers assembles the controller set exactly as the controller
// binary does (pkg/operator.NewControllers) and decides how to drive each.
// A controller of a type the simulator does not know is an error: running a
// controller set that silently lacks one would make the simulation lie.
//
//nolint:gocyclo
func (e *engine) buildControllers() error {
	e.refiner = refinerFor(e.cfg.Policy, e.kube, e.cp, e.cluster)
	opts := operator.Options{
		Clock: e.clk, KubeClient: e.kube, Recorder: e.rec, CloudProvider: e.cp, Undecorated: e.provider.Undecorated,
		InstanceTypeStore: e.provider.InstanceTypeStore, Backend: e.backend, Cluster: e.cluster, Policy: lo.Ternary(e.cfg.Policy == PolicyStock, operator.PolicyStock, operator.PolicyKarpenterGPU),
		Eviction: e.cfg.Eviction, NominatePods: !e.cfg.NoNomination,
	}
	if e.cfg.Policy != PolicyStock {
		// As the controller binary with the chart's defaults (the CRD
		// installed): ProvisioningRequests and pod groups are served.
		opts.ProvisioningRequests, opts.ProvisioningRequestsServed = "true", true
	}
	if e.refiner != nil {
		opts.Refiner = e.refiner
	}
	set, err := operator.NewControllers(e.ctx, opts)
	if err != nil {
		return fmt.Errorf("assembling controllers, %w", err)
	}
	e.coreProv = set.Provisioner
	e.prov = set.Provisioning
	if e.prov == nil {
		// Stock: the same singleton with no refiner is core's provisioner
		// loop (Schedule, then CreateNodeClaims).
		e.prov = provisioning.NewController(provisioning.Options{Clock: e.clk, KubeClient: e.kube, Recorder: e.rec, Provisioner: set.Provisioner, Cluster: e.cluster})
	}
	d := &e.d
	*d = dispatcher{byName: map[string]int{}, immediate: map[ctrlKey]bool{}, pending: map[ctrlKey]time.Time{}, backoff: map[ctrlKey]time.Duration{},
		lastNodeProviderID: map[string]string{}, lastPodNode: map[types.NamespacedName]string{},
		poolClaims:  nodeclaimutils.NodePoolEventHandler(e.kube, e.cp),
		classClaims: nodeclaimutils.NodeClassEventHandler(e.kube),
		nodeClaims:  nodeclaimutils.NodeEventHandler(e.kube, e.cp),
		podClaims:   nodeclaimutils.PodEventHandler(e.kube, e.cp),
		classPools:  nodepoolutils.NodeClassEventHandler(e.kube),
	}
	found := map[string]*objCtrl{}
	add := func(c *objCtrl) error {
		if _, dup := found[c.name]; dup {
			return fmt.Errorf("two controllers for %s in the controller set", c.name)
		}
		found[c.name] = c
		return nil
	}
	kube := e.kube
	for _, c := range set.All {
		var err error
		switch c := c.(type) {
		case *informer.NodePoolController:
			err = add(&objCtrl{name: cStateNodePool, kind: apiserver.KindNodePool, rec: byRequest(c), requeue: resync})
		case *informer.NodeClaimController:
			err = add(&objCtrl{name: cStateNodeClaim, kind: apiserver.KindNodeClaim, rec: byRequest(c), requeue: resync})
		case *informer.NodeController:
			err = add(&objCtrl{name: cStateNode, kind: apiserver.KindNode, rec: byRequest(c), requeue: resync})
		case *informer.PodController:
			err = add(&objCtrl{name: cStatePod, kind: apiserver.KindPod, rec: byRequest(c), requeue: resync})
		case *nodeclass.Controller:
			// Its 5-minute re-resolution has nothing to find on the fake fleet.
			err = add(&objCtrl{name: cNodeClass, kind: apiserver.KindNodeClass, rec: typed(kube, func() *v1alpha1.GPUNodeClass { return &v1alpha1.GPUNodeClass{} }, c.Reconcile), requeue: resync})
		case *nodepoolreadiness.Controller:
			err = add(&objCtrl{name: cPoolReadiness, kind: apiserver.KindNodePool, rec: typed(kube, newNodePool, c.Reconcile), requeue: honour})
		case *nodepoolvalidation.Controller:
			err = add(&objCtrl{name: cPoolValidation, kind: apiserver.KindNodePool, rec: typed(kube, newNodePool, c.Reconcile), requeue: honour})
		case *nodepoolhash.Controller:
			err = add(&objCtrl{name: cPoolHash, kind: apiserver.KindNodePool, rec: typed(kube, newNodePool, c.Reconcile), requeue: honour})
		case *nodepoolregistrationhealth.Controller:
			err = add(&objCtrl{name: cPoolRegistration, kind: apiserver.KindNodePool, rec: typed(kube, newNodePool, c.Reconcile), requeue: honour})
		case *lifecycle.Controller:
			err = add(&objCtrl{name: cLifecycle, kind: apiserver.KindNodeClaim, rec: typed(kube, newNodeClaim, c.Reconcile), requeue: honour})
		case *podevents.Controller:
			err = add(&objCtrl{name: cPodEvents, kind: apiserver.KindPod, rec: typed(kube, newPod, c.Reconcile), requeue: honour})
		case *nodeclaimdisruption.Controller:
			err = add(&objCtrl{name: cNodeClaimDisruption, kind: apiserver.KindNodeClaim, rec: typed(kube, newNodeClaim, c.Reconcile), requeue: e.consolidatableRequeue})
		case *expiration.Controller:
			err = add(&objCtrl{name: cExpiration, kind: apiserver.KindNodeClaim, rec: typed(kube, newNodeClaim, c.Reconcile), requeue: honour})
		case *termination.Controller:
			err = add(&objCtrl{name: cTermination, kind: apiserver.KindNode, rec: typed(kube, newNode, c.Reconcile), requeue: honour})
		case *terminator.Queue:
			d.evqSource, err = channelField[event.TypedGenericEvent[*corev1.Pod]](c, "source")
			if err == nil {
				err = add(&objCtrl{name: cEviction, kind: apiserver.KindPod, rec: typed(kube, newPod, c.Reconcile), requeue: honour})
			}
		case *disruption.Queue:
			d.dqueueSource, err = channelField[event.TypedGenericEvent[*karpv1.NodeClaim]](c, "source")
			if err == nil {
				e.disrupt.queue = c
				err = add(&objCtrl{name: cDisruptionQueue, kind: apiserver.KindNodeClaim, rec: typed(kube, newNodeClaim, c.Reconcile), requeue: honour})
			}
		case *disruption.Controller:
			e.disrupt.ctrl = c
			err = sortDisruptionMethods(c)
		case *provisioning.PodTrigger:
			err = add(&objCtrl{name: cPodTrigger, kind: apiserver.KindPod, rec: typed(kube, newPod, c.Reconcile), requeue: honour, after: e.afterTrigger})
		case *provisioning.NodeTrigger:
			err = add(&objCtrl{name: cNodeTrigger, kind: apiserver.KindNode, rec: typed(kube, newNode, c.Reconcile), requeue: honour, after: e.afterTrigger})
		case *coreprov.PodController:
			err = add(&objCtrl{name: cPodTrigger, kind: apiserver.KindPod, rec: typed(kube, newPod, c.Reconcile), requeue: honour, after: e.afterTrigger})
		case *coreprov.NodeController:
			err = add(&objCtrl{name: cNodeTrigger, kind: apiserver.KindNode, rec: typed(kube, newNode, c.Reconcile), requeue: honour, after: e.afterTrigger})
		case *gputaint.Controller:
			err = add(&objCtrl{name: cGPUTaint, kind: apiserver.KindNodePool, rec: typed(kube, newNodePool, c.Reconcile), requeue: honour})
		case *nomination.Controller:
			e.nominator = c
			err = add(&objCtrl{name: cNomination, kind: apiserver.KindPod, rec: byRequest(c), requeue: honour})
		case *gpustartup.Controller:
			err = add(&objCtrl{name: cGPUStartup, kind: apiserver.KindNodeClaim, rec: typed(kube, newNodeClaim, c.Reconcile), requeue: honour})
		case *provisioningrequest.Controller:
			err = e.addProvisioningRequestControllers(c, add)
		case *provisioningrequest.PodGroupController:
			err = add(&objCtrl{name: cPodGroup, kind: apiserver.KindPod, rec: byRequest(c), requeue: honour})
		case *idlegpu.Controller:
			e.idle = &idleDriver{ctrl: c, period: idlegpu.PollInterval, lastRun: Epoch.Add(-idlegpu.PollInterval)}
		case *coreprov.Provisioner, *provisioning.Controller:
			// Driven through e.prov at the end of each batching window.
		case *informer.DaemonSetController, *informer.PricingController, *statenodeclaimgc.Controller,
			*nodeclaimgc.Controller, *nodeclaimconsistency.Controller, *nodeclaimhydration.Controller,
			*nodehydration.Controller, *nodepoolcounter.Controller, *nodeclaimreboot.Controller,
			*metricspod.Controller, *metricsnode.Controller, *metricsnodepool.Controller, *gpumetrics.Controller:
			// Not driven: no daemonsets in simulations; prices are static;
			// the fleet never leaks instances or loses NodeClaims to garbage
			// collect; consistency only emits events; hydration migrates
			// objects from older Karpenter versions; the counter writes
			// NodePool status that no decision reads; reboot acts only on
			// committed reboots (the provider never reboots); metrics are off
			// (karpenter-gpu's metrics controller only exports gauges; the
			// report computes the same figures from the simulation itself).
		default:
			if s, ok := c.(interface {
				Reconcile(context.Context) (reconciler.Result, error)
			}); ok {
				d.singletons = append(d.singletons, singletonCtrl{name: fmt.Sprintf("%T", c), rec: s})
				continue
			}
			err = fmt.Errorf("the simulator does not know how to drive controller %T; add it to pkg/simulation/dispatch.go", c)
		}
		if err != nil {
			return err
		}
	}
	if e.disrupt.ctrl == nil || e.disrupt.queue == nil {
		return fmt.Errorf("the controller set has no disruption controller or queue")
	}
	for _, required := range []string{cStateNodePool, cStateNodeClaim, cStateNode, cStatePod, cNodeClass, cPoolReadiness, cPoolValidation,
		cLifecycle, cNodeClaimDisruption, cPodEvents, cTermination, cEviction, cDisruptionQueue, cPodTrigger, cNodeTrigger} {
		if found[required] == nil {
			return fmt.Errorf("the controller set has no %s controller", required)
		}
	}
	// The fleet's kubelet.
	_ = add(&objCtrl{name: cRegistrar, kind: apiserver.KindNodeClaim, rec: typed(kube, newNodeClaim, e.registrar.Reconcile), requeue: honour})
	_ = add(&objCtrl{name: cKubelet, kind: apiserver.KindPod, rec: typed(kube, newPod, e.registrar.ReconcilePod), requeue: honour})
	for _, name := range []string{cStateNodePool, cStateNodeClaim, cStateNode, cStatePod, cNodeClass, cGPUTaint, cPoolReadiness, cPoolValidation, cPoolHash,
		cPoolRegistration, cLifecycle, cGPUStartup, cRegistrar, cKubelet, cNomination, cPodEvents, cNodeClaimDisruption, cExpiration, cTermination, cEviction, cDisruptionQueue,
		cPodGroup, cProvisioningRequest, cProvisioningRequestOrphans, cPodTrigger, cNodeTrigger} {
		if c, ok := found[name]; ok {
			d.byName[name] = len(d.ctrls)
			d.ctrls = append(d.ctrls, c)
		}
	}
	e.disrupt.done = make(chan disruptionResult, 1)
	e.disrupt.seen = map[string]bool{}
	e.disrupt.nextPoll = Epoch
	for i, s := range d.singletons {
		_ = s
		e.push(simEvent{at: Epoch, kind: evSingleton, idx: i})
	}
	return nil
}

func newNodePool() *karpv1.NodePool   { return &karpv1.NodePool{} }
func newNodeClaim() *karpv1.NodeClaim { return &karpv1.NodeClaim{} }
func newNode() *corev1.Node           { return &corev1.Node{} }
func newPod() *corev1.Pod             { return &corev1.Pod{} }

// channelField reads the unexported event channel through which a core
// queue (disruption, eviction) tells controller-runtime what to reconcile;
// the engine drains it as controller-runtime's channel source would. A core
// upgrade that renames or retypes it fails here, loudly.
func channelField[T any](obj any, name string) (chan T, error) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("%T is not a pointer to a struct", obj)
	}
	f := v.Elem().FieldByName(name)
	if !f.IsValid() {
		return nil, fmt.Errorf("%T has no field %q (Karpenter core changed?)", obj, name)
	}
	ch, ok := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(chan T)
	if !ok {
		return nil, fmt.Errorf("%T.%s is a %s, not a chan %T (Karpenter core changed?)", obj, name, f.Type(), *new(T))
	}
	return ch, nil
}

// consolidatableRequeue handles nodeclaim.disruption's requeues. Its drift
// check asks to run again every 5 minutes; with a static catalog and
// NodePools and GPUNodeClasses whose changes are delivered as events, that
// poll finds nothing new and is dropped. Its consolidation check asks to run
// again when consolidateAfter elapses; that is kept, including when it
// coincides with 5 minutes.
func (e *engine) consolidatableRequeue(key types.NamespacedName, d time.Duration) (time.Duration, bool) {
	if d != 5*time.Minute {
		return d, true
	}
	nc := &karpv1.NodeClaim{}
	if err := e.kube.Get(e.ctx, key, nc); err != nil {
		return 0, false
	}
	np := &karpv1.NodePool{}
	if err := e.kube.Get(e.ctx, types.NamespacedName{Name: nc.Labels[karpv1.NodePoolLabelKey]}, np); err != nil {
		return 0, false
	}
	if disruptionutils.IsUnderConsolidateAfter(np, nc, e.clk) {
		return d, true
	}
	return 0, false
}

// afterTrigger feeds core's pod and node provisioning triggers into the
// batching window: they requeue (10s) exactly when they triggered.
func (e *engine) afterTrigger(obj client.Object, res reconcile.Result) {
	if obj != nil && res.RequeueAfter > 0 {
		e.trigger(obj.GetUID())
	}
}

// ---- rounds ----

const maxRoundsPerInstant = 100000

// settle runs controllers until nothing is left to do at the current
// instant: changed objects are delivered to the controllers that watch
// them, in rounds (a round runs each controller over its sorted requests,
// cluster state first), then evicted pods are recreated and pending pods
// bound, which may start further rounds.
func (e *engine) settle() error {
	for round := 0; ; round++ {
		if round > maxRoundsPerInstant {
			return fmt.Errorf("controllers did not settle at %s after %d rounds", e.clk.Now().Sub(Epoch), round)
		}
		reqs := e.collect()
		if len(reqs) > 0 {
			e.runRound(reqs)
			continue
		}
		if e.recreateEvicted() {
			continue
		}
		if e.schedDirty && !e.deferBinding {
			e.schedDirty = false
			start := time.Now()
			err := e.kubeSchedule()
			e.timed("kube-scheduler", start)
			if err != nil {
				return err
			}
			continue
		}
		break
	}
	if e.changes.Writes() != e.disrupt.writes {
		e.markDisruptionDirty()
	}
	return nil
}

// collect turns the writes since the last round into requests, as watches
// and their event handlers would, plus queue-channel events and requeues
// that are due.
func (e *engine) collect() map[int]map[types.NamespacedName]bool {
	d := &e.d
	reqs := map[int]map[types.NamespacedName]bool{}
	addReq := func(name string, key types.NamespacedName) {
		i, ok := d.byName[name]
		if !ok {
			return
		}
		if reqs[i] == nil {
			reqs[i] = map[types.NamespacedName]bool{}
		}
		reqs[i][key] = true
	}
	for ck := range d.immediate {
		if reqs[ck.ctrl] == nil {
			reqs[ck.ctrl] = map[types.NamespacedName]bool{}
		}
		reqs[ck.ctrl][ck.key] = true
	}
	d.immediate = map[ctrlKey]bool{}
	for drained := false; !drained; {
		select {
		case ev := <-d.dqueueSource:
			addReq(cDisruptionQueue, client.ObjectKeyFromObject(ev.Object))
		case ev := <-d.evqSource:
			addReq(cEviction, client.ObjectKeyFromObject(ev.Object))
		default:
			drained = true
		}
	}
	changed := e.changes.Take()
	keys := lo.Keys(changed)
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Kind != keys[j].Kind {
			return keys[i].Kind < keys[j].Kind
		}
		return keys[i].Key.String() < keys[j].Key.String()
	})
	for _, k := range keys {
		switch k.Kind {
		case apiserver.KindNodePool:
			for _, n := range []string{cStateNodePool, cGPUTaint, cPoolReadiness, cPoolValidation, cPoolHash, cPoolRegistration} {
				addReq(n, k.Key)
			}
			for _, nc := range e.mapped(d.poolClaims, &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: k.Key.Name}}) {
				addReq(cNodeClaimDisruption, nc)
			}
		case apiserver.KindNodeClass:
			addReq(cNodeClass, k.Key)
			class := &v1alpha1.GPUNodeClass{ObjectMeta: metav1.ObjectMeta{Name: k.Key.Name}}
			for _, np := range e.mapped(d.classPools, class) {
				addReq(cPoolReadiness, np)
			}
			// gputaint's own mapping (its Register's): the NodePools naming
			// the class.
			for _, r := range gputaint.NodePoolsForNodeClass(e.ctx, e.kube, k.Key.Name, e.readOnly()...) {
				addReq(cGPUTaint, r.NamespacedName)
			}
			for _, nc := range e.mapped(d.classClaims, class) {
				addReq(cNodeClaimDisruption, nc)
			}
		case apiserver.KindNodeClaim:
			for _, n := range []string{cStateNodeClaim, cLifecycle, cGPUStartup, cRegistrar, cNodeClaimDisruption, cExpiration} {
				addReq(n, k.Key)
			}
			e.routeGang(k, addReq)
			if e.nominator != nil {
				// The pods planned on it (it gets its node name when the
				// node registers).
				for _, pk := range e.nominator.PodsFor(k.Key.Name) {
					addReq(cNomination, pk)
				}
			}
		case apiserver.KindProvisioningRequest:
			e.routeGang(k, addReq)
		case apiserver.KindNode:
			for _, n := range []string{cStateNode, cTermination, cNodeTrigger} {
				addReq(n, k.Key)
			}
			providerID := d.lastNodeProviderID[k.Key.Name]
			node := &corev1.Node{}
			if err := e.kube.Get(e.ctx, k.Key, node); err == nil {
				providerID = node.Spec.ProviderID
				d.lastNodeProviderID[k.Key.Name] = providerID
			}
			if providerID != "" {
				for _, nc := range e.mapped(d.nodeClaims, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.Key.Name}, Spec: corev1.NodeSpec{ProviderID: providerID}}) {
					addReq(cLifecycle, nc)
				}
			}
			e.schedDirty = true
		case apiserver.KindPod:
			for _, n := range []string{cStatePod, cKubelet, cPodTrigger} {
				addReq(n, k.Key)
			}
			nodeName, seen := d.lastPodNode[k.Key]
			if !seen || nodeName == "" {
				// Pending, or bound or gone since (forgotten).
				addReq(cNomination, k.Key)
			}
			pod := &corev1.Pod{}
			if err := e.kube.Get(e.ctx, k.Key, pod); err == nil {
				nodeName = pod.Spec.NodeName
				d.lastPodNode[k.Key] = nodeName
				e.observePod(pod)
			} else {
				delete(d.lastPodNode, k.Key)
				e.observePodGone(k.Key)
			}
			e.routeGang(k, addReq)
			for _, nc := range e.mapped(d.podClaims, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: k.Key.Namespace, Name: k.Key.Name}, Spec: corev1.PodSpec{NodeName: nodeName}}) {
				addReq(cNodeClaimDisruption, nc)
			}
			e.schedDirty = true
		}
	}
	return reqs
}

// enqueue asks a controller to reconcile a key in the next round.
func (e *engine) enqueue(name string, key types.NamespacedName) {
	if i, ok := e.d.byName[name]; ok {
		e.d.immediate[ctrlKey{i, key}] = true
	}
}

func (e *engine) runRound(reqs map[int]map[types.NamespacedName]bool) {
	d := &e.d
	for i, c := range d.ctrls {
		keys := lo.Keys(reqs[i])
		sort.Slice(keys, func(a, b int) bool { return keys[a].String() < keys[b].String() })
		if c.name == cLifecycle {
			// Gang attempts' launches are handed to the fleet together
			// (ganglaunch.go).
			for _, step := range e.launchSteps(keys) {
				if step.gang {
					e.reconcileGang(i, c, step.keys)
					continue
				}
				e.reconcileOne(i, c, step.keys[0])
			}
			continue
		}
		for _, key := range keys {
			e.reconcileOne(i, c, key)
		}
	}
}

// reconcileOne runs controller i on key, as controller-runtime's worker
// would.
func (e *engine) reconcileOne(i int, c *objCtrl, key types.NamespacedName) {
	e.d.reconciles++
	start := time.Now()
	e.as(c.name)
	res, obj, err := c.rec(e.ctx, key)
	e.timed(c.name, start)
	e.reconciled(i, c, key, res, obj, err)
}

// reconciled handles a reconcile's result: back off on an error, run the
// controller's after hook, requeue as it asked.
func (e *engine) reconciled(i int, c *objCtrl, key types.NamespacedName, res reconcile.Result, obj client.Object, err error) {
	d := &e.d
	ck := ctrlKey{i, key}
	if err != nil {
		e.metrics.controllerError(c.name, err)
		b := d.backoff[ck]
		b = lo.Clamp(b*2, time.Second, time.Minute)
		d.backoff[ck] = b
		e.requeueAfter(ck, b)
		return
	}
	delete(d.backoff, ck)
	if c.after != nil {
		c.after(obj, res)
	}
	//nolint:staticcheck // Requeue is what core's reconcilers return
	if res.RequeueAfter > 0 {
		if delay, ok := c.requeue(key, res.RequeueAfter); ok {
			e.requeueAfter(ck, delay)
		}
	} else if res.Requeue {
		d.immediate[ck] = true
	}
}

// requeueAfter schedules a delayed reconcile; like a work queue, only the
// earliest pending time per key is kept.
func (e *engine) requeueAfter(ck ctrlKey, delay time.Duration) {
	at := e.clk.Now().Add(delay)
	if cur, ok := e.d.pending[ck]; ok && !at.Before(cur) {
		return
	}
	e.d.pending[ck] = at
	e.push(simEvent{at: at, kind: evRequeue, ck: ck})
}

// pollSingleton runs one poll of an extra singleton controller and
// schedules the next at the interval it asks for.
func (e *engine) pollSingleton(i int) error {
	s := e.d.singletons[i]
	start := time.Now()
	e.as(s.name)
	res, err := s.rec.Reconcile(e.ctx)
	e.timed(s.name, start)
	next := res.RequeueAfter
	if err != nil {
		e.metrics.controllerError(s.name, err)
		next = 10 * time.Second
	}
	if next <= 0 {
		next = time.Second
	}
	e.push(simEvent{at: e.clk.Now().Add(next), kind: evSingleton, idx: i})
	return nil
}

// controllerNames lists the driven controllers, for the report.
func (e *engine) controllerNames() []string {
	out := lo.Map(e.d.ctrls, func(c *objCtrl, _ int) string { return c.name })
	out = append(out, "provisioner (batch window)", "disruption (singleton)")
	if e.idle != nil {
		out = append(out, "karpenter-gpu.idlegpu (singleton)")
	}
	for _, s := range e.d.singletons {
		out = append(out, strings.TrimPrefix(s.name, "*")+" (singleton)")
	}
	return out
}

var _ = controller.Controller(nil)

// sortedMethod wraps one of core's disruption methods so that it receives
// its candidates in node-name order. Core builds candidates from a map
// (Cluster.DeepCopyNodes) and sorts them by savings ratio; candidates with
// equal ratios (identical nodes running identical pods, which GPU fleets are
// full of) would otherwise reach the method in a different order on every
// run, and so would the node it picks. Any fixed order is one a real cluster
// could see; name order makes runs repeatable.
type sortedMethod struct{ disruption.Method }

func (m sortedMethod) ComputeCommands(ctx context.Context, budgets map[string]int, candidates ...*disruption.Candidate) ([]disruption.Command, error) {
	sorted := append([]*disruption.Candidate(nil), candidates...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name() < sorted[j].Name() })
	return m.Method.ComputeCommands(ctx, budgets, sorted...)
}

// SetNodePoolTotals forwards balanced-consolidation totals to methods that
// use them.
func (m sortedMethod) SetNodePoolTotals(totals map[string]disruption.NodePoolTotals) {
	if s, ok := m.Method.(disruption.NodePoolTotalsSetter); ok {
		s.SetNodePoolTotals(totals)
	}
}

// sortDisruptionMethods wraps the methods of core's disruption controller
// (an unexported field; a core upgrade that changes it fails here).
func sortDisruptionMethods(c *disruption.Controller) error {
	f := reflect.ValueOf(c).Elem().FieldByName("methods")
	if !f.IsValid() {
		return fmt.Errorf("disruption.Controller has no methods field (Karpenter core changed?)")
	}
	methods, ok := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Addr().Interface().(*[]disruption.Method)
	if !ok {
		return fmt.Errorf("disruption.Controller.methods is a %s (Karpenter core changed?)", f.Type())
	}
	for i, m := range *methods {
		if _, done := m.(sortedMethod); !done {
			(*methods)[i] = sortedMethod{m}
		}
	}
	return nil
}

// readOnly are the list options of the simulator's own lists whose items it
// only reads: they share the cache's objects instead of copying them (none
// under Config.ReferenceReads).
func (e *engine) readOnly() []client.ListOption {
	if e.cfg.ReferenceReads {
		return nil
	}
	return []client.ListOption{client.UnsafeDisableDeepCopy}
}

// requestQueue collects the requests an event handler enqueues (only Add
// is called for plain events; any other method panics, loudly).
type requestQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	keys []types.NamespacedName
}

func (q *requestQueue) Add(r reconcile.Request) { q.keys = append(q.keys, r.NamespacedName) }

// mapped runs one of the controllers' own watch mappings (an event
// handler) on obj, as controller-runtime's watch would, and returns the
// requests it enqueues. A deleted object is given as the watch's last view
// of it (the fields the mapping reads).
func (e *engine) mapped(h handler.EventHandler, obj client.Object) []types.NamespacedName {
	q := &requestQueue{}
	h.Generic(e.ctx, event.GenericEvent{Object: obj}, q)
	return q.keys
}
