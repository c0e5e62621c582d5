package simulation

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
)

// idleDriver polls karpenter-gpu's idle-GPU singleton on its 30s cadence,
// skipping the ticks that provably change nothing. A poll at tick t does
// three things: it protects or unprotects nodes whose GPU work started or
// ended, records t as the last GPU work of every busy node, and removes
// nodes idle for longer than idleAfter. When, since the previous poll,
// nothing was written and that poll wrote nothing (and no budget schedule
// or do-not-disrupt duration makes time itself an input), the next ticks
// can only repeat the second effect until the controller's NextCheck: the
// first tick at or after it runs (a GPU node without GPU work reaching
// idleAfter, a break-even release, a repack step). The other ticks are
// skipped, except the last one before the cluster changes again, which is
// run (on the clock of that tick) so that a node losing its GPU work
// afterwards has exactly the last-work time it would have had. After any
// change, or while an idle GPU node is due but kept (a PDB, a budget), every
// tick runs.
// Config.FaithfulPolling disables the skipping (used by a test that checks
// the equivalence).
type idleDriver struct {
	ctrl    *idlegpu.Controller
	period  time.Duration
	lastRun time.Time
	// quiet: the last poll wrote nothing and saw no idle GPU node, and
	// writesAt is the write count after it.
	quiet    bool
	writesAt uint64
	polls    int
}

// nextIdleTick returns the idle-GPU tick to run before time t (exclusive),
// if any: the next tick while the cluster is not quiet, else only the last
// tick before t.
func (e *engine) nextIdleTick(t time.Time) (time.Time, bool) {
	d := e.idle
	if d == nil {
		return time.Time{}, false
	}
	next := d.lastRun.Add(d.period)
	if !next.Before(t) {
		return time.Time{}, false
	}
	if d.quiet && e.changes.Writes() == d.writesAt && !e.cfg.FaithfulPolling {
		// A node protected by the break-even rule may be released at a
		// time the controller can tell (waste grows linearly, a batch
		// pod's lost work falls at its checkpoints): the first tick at or
		// after it runs.
		if at, ok := d.ctrl.NextCheck(); ok && at.Before(t) {
			n := (at.Sub(d.lastRun) + d.period - 1) / d.period
			if tick := d.lastRun.Add(max(n, 1) * d.period); tick.Before(t) {
				return tick, true
			}
		}
		n := (t.Sub(d.lastRun) - 1) / d.period
		next = d.lastRun.Add(n * d.period)
	}
	return next, true
}

func (e *engine) idleTick(at time.Time) error {
	d := e.idle
	if at.After(e.clk.Now()) {
		e.clk.SetTime(at)
	}
	before := e.changes.Writes()
	start := time.Now()
	e.as("karpenter-gpu.idlegpu")
	_, err := d.ctrl.Reconcile(e.ctx)
	e.timed("karpenter-gpu.idlegpu", start)
	d.polls++
	d.lastRun = at
	if err != nil {
		e.metrics.controllerError("karpenter-gpu.idlegpu", err)
	}
	if err := e.settle(); err != nil {
		return err
	}
	d.writesAt = e.changes.Writes()
	d.quiet = err == nil && d.writesAt == before && !e.timeSensitiveIdle()
	return nil
}

// timeSensitiveIdle reports whether the idle-GPU controller's next poll
// could act without any change at a time its NextCheck does not give: a
// NodePool budget with a schedule, or a pod whose do-not-disrupt is a
// duration. (A GPU node without GPU work reaches idleAfter at a time
// NextCheck gives.)
func (e *engine) timeSensitiveIdle() bool {
	var pods corev1.PodList
	var pools karpv1.NodePoolList
	ro := e.readOnly() // read only
	if e.kube.List(e.ctx, &pods, ro...) != nil || e.kube.List(e.ctx, &pools, ro...) != nil {
		return true
	}
	for i := range pools.Items {
		for _, b := range pools.Items[i].Spec.Disruption.Budgets {
			if b.Schedule != nil {
				return true
			}
		}
	}
	for i := range pods.Items {
		if v, ok := pods.Items[i].Annotations[karpv1.DoNotDisruptAnnotationKey]; ok && v != "true" {
			return true
		}
	}
	return false
}
