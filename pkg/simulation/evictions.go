package simulation

// The eviction cost model (pkg/evictioncost), the same for every policy: an
// evicted batch pod loses the work since its last checkpoint and its
// replacement re-runs it (it leaves later, and the fleet pays for that
// naturally); an evicted service replica's replacement restarts (reloading
// its model) and still leaves when the workload says.

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

// profileOf is the pod's eviction profile: its own annotations (a trace's
// QoS class, a scenario's class and checkpoint interval), else the model's
// defaults. Inputs are validated when loaded, so an error here is a bug in
// the input path; the defaults apply.
func (e *engine) profileOf(ps *podState) evictioncost.Profile {
	if ps.profile == nil {
		p, err := e.cfg.Eviction.ProfileOf(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: ps.spec.Name, Namespace: Namespace, Annotations: ps.spec.Annotations}})
		if err != nil {
			e.metrics.controllerError("workload", err)
		}
		ps.profile = &p
	}
	return *ps.profile
}

// profileAnnotations state the pod's effective profile on its pod objects,
// so the controller's eviction-cost estimate reads what the simulated
// workload really does.
func (e *engine) profileAnnotations(ps *podState) map[string]string {
	p := e.profileOf(ps)
	out := map[string]string{evictioncost.AnnotationWorkloadClass: string(p.Class)}
	switch p.Class {
	case evictioncost.Batch:
		out[evictioncost.AnnotationCheckpointInterval] = "never"
		if p.CheckpointInterval != evictioncost.Never {
			out[evictioncost.AnnotationCheckpointInterval] = p.CheckpointInterval.String()
		}
	case evictioncost.Service:
		out[evictioncost.AnnotationRestartTime] = p.RestartTime.String()
	}
	return out
}

// chargeEviction accounts for the eviction of the pod's current object: the
// work lost, what re-running it costs at the evicted node's GPU price, and,
// for batch pods, the departure moved to after the lost work is re-done.
func (e *engine) chargeEviction(ps *podState, pod *corev1.Pod) {
	prof := e.profileOf(ps)
	now := e.clk.Now()
	var ran time.Duration
	running := !ps.running.IsZero()
	if running {
		ran = now.Sub(ps.running)
	}
	remaining := time.Duration(-1) // unknown: the pod never leaves
	switch {
	case !ps.departAt.IsZero():
		remaining = max(0, ps.departAt.Sub(now))
	case ps.workLeft >= 0:
		remaining = ps.workLeft
	}
	var lost time.Duration
	if running {
		lost = prof.LostWork(ran, remaining)
	}
	if prof.Class == evictioncost.Batch && remaining >= 0 {
		ps.workLeft = remaining + lost
		ps.departAt = time.Time{}
		ps.departGen++
	}
	e.metrics.evictionLoss(prof.Class, lost, ps.spec.GPUs(), e.gpuPrice(pod.Spec.NodeName))
}

// scheduleRerunDeparture schedules the departure of a batch pod's
// replacement once it runs: after the work it has left.
func (e *engine) scheduleRerunDeparture(ps *podState) {
	if ps.workLeft < 0 || !ps.departAt.IsZero() {
		return
	}
	ps.departAt = e.clk.Now().Add(ps.workLeft)
	ps.workLeft = -1
	e.push(simEvent{at: ps.departAt, kind: evDepart, pod: ps, gen: ps.departGen})
}

// gpuPrice is the hourly price of one GPU of the node: its instance's
// price over its GPUs (0 when unknown).
func (e *engine) gpuPrice(nodeName string) float64 {
	if nodeName == "" {
		return 0
	}
	node := &corev1.Node{}
	if err := e.kube.Get(e.ctx, client.ObjectKey{Name: nodeName}, node); err != nil {
		return 0
	}
	id := node.Spec.ProviderID[strings.LastIndex(node.Spec.ProviderID, "/")+1:]
	if r := e.backend.Record(id); r != nil && r.GPUs > 0 {
		return r.Price / float64(r.GPUs)
	}
	return 0
}
