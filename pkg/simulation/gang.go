package simulation

import (
	"fmt"
	"sort"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/apiserver"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// Gangs: all-or-nothing pod groups (a scenario's `gang: true` groups).
//
// Their pods carry the pod-group label and minimum member count; under the
// karpenter-gpu policy also the pod-group scheduling gate, so the
// controller binary's pod-group controller and ProvisioningRequest
// controller (pkg/operator builds them, pkg/controllers/provisioningrequest)
// provision the gang all-or-nothing and then ungate its pods. Stock
// Karpenter has no pod-group support: a user would not gate the pods (they
// would never run), so they are plain pending pods that core provisions
// node by node.
//
// A gang makes progress only once MinMembers of its pods run (a training
// job's workers wait for each other), so its members' duration counts from
// then: they leave together, that long after the gang started (a member
// that would arrive later is never created). Members
// running while fewer than MinMembers run are paid for and wait: the report
// adds those GPU-hours and their cost (at the node's price per GPU), and
// the gangs that never started.

// Controller names of the ProvisioningRequest and pod-group controllers.
const (
	cPodGroup                   = "karpenter-gpu.podgroup"
	cProvisioningRequest        = "karpenter-gpu.provisioningrequest"
	cProvisioningRequestOrphans = "karpenter-gpu.provisioningrequest.orphans"
)

func newProvisioningRequest() *autoscalingv1.ProvisioningRequest {
	return &autoscalingv1.ProvisioningRequest{}
}

// addProvisioningRequestControllers drives the ProvisioningRequest
// controller as its Register wires it: requests, and the NodeClaims
// launched for them (its orphan reconciler).
func (e *engine) addProvisioningRequestControllers(c *provisioningrequest.Controller, add func(*objCtrl) error) error {
	if err := add(&objCtrl{name: cProvisioningRequest, kind: apiserver.KindProvisioningRequest, rec: typed(e.kube, newProvisioningRequest, c.Reconcile), requeue: honour}); err != nil {
		return err
	}
	return add(&objCtrl{name: cProvisioningRequestOrphans, kind: apiserver.KindNodeClaim, rec: typed(e.kube, newNodeClaim, c.ReconcileNodeClaim), requeue: honour})
}

// gangTracker holds the gangs and what the watches of the two controllers
// need to map a deleted object to its request or group.
type gangTracker struct {
	byName       map[string]*gangState
	claimRequest map[string]types.NamespacedName
	podGroup     map[types.NamespacedName]types.NamespacedName
	requestGroup map[types.NamespacedName]types.NamespacedName
	requestUID   map[types.NamespacedName]string
}

// gangState follows one gang through the run.
type gangState struct {
	gang    *workload.Gang
	members []*podState
	// running members with their node's $ per GPU-hour.
	running   map[*podState]float64
	started   bool
	startedAt time.Time
	last      time.Time
	// partial: fewer than MinMembers (but some) members running.
	partial                     time.Duration
	partialGPUHours, partialUSD float64
}

func newGangTracker(pods []*podState) gangTracker {
	t := gangTracker{byName: map[string]*gangState{}, claimRequest: map[string]types.NamespacedName{},
		podGroup: map[types.NamespacedName]types.NamespacedName{}, requestGroup: map[types.NamespacedName]types.NamespacedName{},
		requestUID: map[types.NamespacedName]string{}}
	for _, ps := range pods {
		g := ps.spec.Gang
		if g == nil {
			continue
		}
		key := ps.spec.NamespaceOrDefault() + "/" + g.Name
		st := t.byName[key]
		if st == nil {
			st = &gangState{gang: g, running: map[*podState]float64{}, last: Epoch}
			t.byName[key] = st
		}
		st.members = append(st.members, ps)
	}
	return t
}

func (e *engine) gangOf(ps *podState) *gangState {
	if ps.spec.Gang == nil {
		return nil
	}
	return e.gangs.byName[ps.spec.NamespaceOrDefault()+"/"+ps.spec.Gang.Name]
}

// gangPodMeta marks a gang member's pod object: the pod-group label and
// minimum member count, and under karpenter-gpu the scheduling gate.
func (e *engine) gangPodMeta(ps *podState, pod *corev1.Pod) {
	g := ps.spec.Gang
	if g == nil {
		return
	}
	pod.Labels = lo.Assign(pod.Labels, map[string]string{provisioningrequest.LabelPodGroup: g.Name})
	pod.Annotations = lo.Assign(pod.Annotations, map[string]string{provisioningrequest.KeyPodGroupMinMembers: fmt.Sprint(g.MinMembers)})
	if e.cfg.Policy != PolicyStock {
		pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: provisioningrequest.SchedulingGatePodGroup}}
	}
}

// markGated sets the condition kube-scheduler sets on a gated pod.
func (e *engine) markGated(p *corev1.Pod) error {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			return nil
		}
	}
	stored := p.DeepCopy()
	setCondition(p, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated,
		Message: "Scheduling is blocked due to non-empty scheduling gates", LastTransitionTime: metav1.NewTime(e.clk.Now())})
	if err := e.kube.Status().Patch(e.ctx, p, client.MergeFrom(stored)); err != nil {
		return fmt.Errorf("marking pod %s gated, %w", p.Name, err)
	}
	return nil
}

// accrue adds the time since the last change to the gang's partial account.
func (g *gangState) accrue(now time.Time) {
	if n := len(g.running); n > 0 && n < g.gang.MinMembers {
		dt := now.Sub(g.last)
		g.partial += dt
		for ps, usdPerGPUHour := range g.running {
			gpus := float64(ps.spec.GPUs())
			g.partialGPUHours += gpus * dt.Hours()
			g.partialUSD += gpus * usdPerGPUHour * dt.Hours()
		}
	}
	g.last = now
}

// gangMemberRunning: a member runs. When MinMembers run for the first time
// the gang starts, and every member's departure is set its duration later.
func (e *engine) gangMemberRunning(ps *podState, node string) {
	g := e.gangOf(ps)
	if g == nil {
		return
	}
	now := e.clk.Now()
	g.accrue(now)
	g.running[ps] = e.gpuPrice(node)
	if g.started || len(g.running) < g.gang.MinMembers {
		return
	}
	g.started, g.startedAt = true, now
	e.debugf("gang %s started (%d of %d running)", g.gang.Name, len(g.running), g.gang.Size)
	// The job is done its duration after it started: every member leaves
	// then (one arriving later is never created).
	for _, m := range g.members {
		if m.spec.Deletion == workload.Forever || m.departed || !m.departAt.IsZero() {
			continue
		}
		m.departAt = now.Add(m.spec.Deletion - m.spec.Arrival)
		e.push(simEvent{at: m.departAt, kind: evDepart, pod: m, gen: m.departGen})
	}
}

// gangMemberGone: a member's pod object is gone.
func (e *engine) gangMemberGone(ps *podState) {
	g := e.gangOf(ps)
	if g == nil {
		return
	}
	if _, ok := g.running[ps]; !ok {
		return
	}
	g.accrue(e.clk.Now())
	delete(g.running, ps)
}

// routeGang delivers changes to the ProvisioningRequest and pod-group
// controllers as their watches would (controller Register methods):
// requests to the request controller and their group; NodeClaims launched
// for a request to the request and to the orphan reconciler; a deleted
// request's NodeClaims to the orphan reconciler; pods of a group to it.
func (e *engine) routeGang(k apiserver.ObjectKey, addReq func(string, types.NamespacedName)) {
	if _, ok := e.d.byName[cProvisioningRequest]; !ok {
		return
	}
	t := &e.gangs
	switch k.Kind {
	case apiserver.KindNodeClaim:
		nc := &karpv1.NodeClaim{}
		if err := e.kube.Get(e.ctx, k.Key, nc); err == nil {
			if key, ok := provisioningrequest.RequestKey(nc); ok {
				t.claimRequest[k.Key.Name] = key
			}
		}
		if key, ok := t.claimRequest[k.Key.Name]; ok {
			addReq(cProvisioningRequest, key)
			addReq(cProvisioningRequestOrphans, k.Key)
		}
	case apiserver.KindPod:
		pod := &corev1.Pod{}
		if err := e.kube.Get(e.ctx, k.Key, pod); err == nil {
			if key, ok := provisioningrequest.GroupKey(pod); ok {
				t.podGroup[k.Key] = key
			}
		}
		if key, ok := t.podGroup[k.Key]; ok {
			addReq(cPodGroup, key)
		}
	case apiserver.KindProvisioningRequest:
		addReq(cProvisioningRequest, k.Key)
		pr := &autoscalingv1.ProvisioningRequest{}
		if err := e.kube.Get(e.ctx, k.Key, pr); err == nil {
			t.requestUID[k.Key] = string(pr.UID)
			if key, ok := provisioningrequest.GroupKey(pr); ok {
				t.requestGroup[k.Key] = key
			}
		} else if uid := t.requestUID[k.Key]; uid != "" {
			reqs, _ := provisioningrequest.NodeClaimsOfRequest(e.ctx, e.kube, types.UID(uid), e.readOnly()...)
			for _, r := range reqs {
				addReq(cProvisioningRequestOrphans, r.NamespacedName)
			}
		}
		if key, ok := t.requestGroup[k.Key]; ok {
			addReq(cPodGroup, key)
		}
	}
}

// gangReport closes the gangs' accounts at the horizon (nil without gangs).
func (e *engine) gangReport() *report.GangReport {
	if len(e.gangs.byName) == 0 {
		return nil
	}
	r := &report.GangReport{}
	var waits []float64
	for _, key := range lo.Keys(e.gangs.byName) {
		g := e.gangs.byName[key]
		g.accrue(e.horizon)
		run := report.GangRun{Name: key, Size: g.gang.Size, MinMembers: g.gang.MinMembers, MaxRunning: len(g.running),
			PartialHours: g.partial.Hours(), PartialGPUHours: g.partialGPUHours, PartialUSD: g.partialUSD}
		if g.started {
			h := g.startedAt.Sub(Epoch).Hours()
			run.StartedHours = &h
			last := lo.MaxBy(g.members, func(a, b *podState) bool { return a.spec.Arrival > b.spec.Arrival })
			run.StartWaitMinutes = g.startedAt.Sub(Epoch.Add(last.spec.Arrival)).Minutes()
			waits = append(waits, run.StartWaitMinutes)
		} else {
			r.NeverStarted++
		}
		r.Gangs++
		r.PartialGPUHours += run.PartialGPUHours
		r.PartialUSD += run.PartialUSD
		r.PartialHours += run.PartialHours
		r.ByGang = append(r.ByGang, run)
	}
	sort.Slice(r.ByGang, func(i, j int) bool { return r.ByGang[i].Name < r.ByGang[j].Name })
	r.GroupLaunches, r.GroupsRefused = e.fleet.GroupCounts()
	if len(waits) > 0 {
		sort.Float64s(waits)
		r.StartWaitMinutes = report.Percentiles{P50: percentile(waits, 50), P95: percentile(waits, 95), P99: percentile(waits, 99), Max: waits[len(waits)-1], Count: len(waits)}
	}
	return r
}
