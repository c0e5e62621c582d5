package idlegpu

// Repeat evictions (evictioncost.Repeat): a node released by the
// break-even rule (or being repacked) that leaves while it still ran GPU
// pods displaced them, so their workloads (by controller) are remembered
// for the rule's window, and while remembered their pods' eviction cost is
// multiplied. The fleet keeps reshaping around long-lived replicas; without
// a memory the same workload is moved again at the next reshaping.

import (
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

// nodeWork is a tracked node's GPU workloads at the last poll, and whether
// the node was then open to voluntary disruption by this project's rule
// (released to consolidation, or being repacked).
type nodeWork struct {
	workloads []string
	releasing bool
}

// noteWork records gn's GPU workloads and whether it is releasing (l: its
// break-even ledger, nil when the rule does not judge it).
func (c *Controller) noteWork(gn gpuNode, l *ledger) {
	if !c.eviction.Repeat.On() {
		return
	}
	releasing := repack.InFlight(gn.nodeClaim) || c.fleetReleased(gn.nodeClaim.Name)
	c.mu.Lock()
	defer c.mu.Unlock()
	releasing = releasing || (l != nil && l.released)
	w := nodeWork{releasing: releasing}
	for _, p := range gn.pods {
		if v1alpha1.UsesAccelerator(p) {
			w.workloads = append(w.workloads, evictioncost.Workload(p))
		}
	}
	c.work[gn.nodeClaim.Name] = w
}

// noteDisplaced remembers the workloads of releasing nodes that are no
// longer tracked (live: the tracked NodeClaims of this poll), and forgets
// workloads whose window has ended.
func (c *Controller) noteDisplaced(live map[string]string) {
	if !c.eviction.Repeat.On() {
		return
	}
	now := c.clk.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, w := range c.work {
		if _, ok := live[name]; ok {
			continue
		}
		if w.releasing {
			for _, wl := range w.workloads {
				c.displaced[wl] = now
			}
		}
		delete(c.work, name)
	}
	for wl, at := range c.displaced {
		if !now.Before(at.Add(c.eviction.Repeat.Window)) {
			delete(c.displaced, wl)
		}
	}
}

// displacedUntil reports whether the workload is remembered as displaced,
// and until when.
func (c *Controller) displacedUntil(workload string) (time.Time, bool) {
	if !c.eviction.Repeat.On() {
		return time.Time{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.displaced[workload]
	if !ok {
		return time.Time{}, false
	}
	until := at.Add(c.eviction.Repeat.Window)
	return until, c.clk.Now().Before(until)
}
