package simulation

// Spot interruptions: the fake fleet schedules when each spot instance is
// reclaimed (--spot-interruptions-per-day); the engine plays what a cluster
// adds around it, as the AWS provider's interruption handling does: at the
// two-minute notice the instance's NodeClaim is deleted (core then drains
// the node, its pods are evicted and recreated, Karpenter launches
// replacements), and at the reclaim time the instance terminates if it is
// still running.

import (
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

type spotState struct {
	noticed map[string]bool
	// interruptions counts instances reclaimed (noticed).
	interruptions int
	// The earliest notice or reclaim, valid while no instance launched or
	// terminated (backend version) and no notice was played.
	cached       bool
	cacheVersion uint64
	cacheNoticed int
	next         time.Time
	hasNext      bool
}

// nextSpotEvent is the earliest notice or reclaim before limit.
func (e *engine) nextSpotEvent(limit time.Time) (time.Time, bool) {
	if e.cfg.SpotInterruptionsPerDay <= 0 {
		return time.Time{}, false
	}
	st := &e.spot
	if v := e.backend.Version(); !st.cached || st.cacheVersion != v || st.cacheNoticed != len(st.noticed) {
		st.cached, st.cacheVersion, st.cacheNoticed, st.hasNext = true, v, len(st.noticed), false
		for _, s := range e.fleet.SpotInterruptions() {
			at := s.At
			if !st.noticed[s.InstanceID] {
				at = e.noticeTime(s)
			}
			if !st.hasNext || at.Before(st.next) {
				st.next, st.hasNext = at, true
			}
		}
	}
	return st.next, st.hasNext && st.next.Before(limit)
}

func (e *engine) noticeTime(s fake.ScheduledInterruption) time.Time {
	at := s.At.Add(-fake.SpotInterruptionNotice)
	if rec := e.backend.Record(s.InstanceID); rec != nil && at.Before(rec.Start) {
		at = rec.Start
	}
	return at
}

// spotEvent plays every notice and reclaim due at `at`.
func (e *engine) spotEvent(at time.Time) error {
	if at.After(e.clk.Now()) {
		e.clk.SetTime(at)
	}
	if e.spot.noticed == nil {
		e.spot.noticed = map[string]bool{}
	}
	e.spot.cached = false // whatever happens below, look again
	for _, s := range e.fleet.SpotInterruptions() {
		switch {
		case !e.spot.noticed[s.InstanceID] && !e.noticeTime(s).After(at):
			e.spot.noticed[s.InstanceID] = true
			e.spot.interruptions++
			rec := e.backend.Record(s.InstanceID)
			if rec == nil || rec.NodeClaim == "" {
				continue
			}
			e.debugf("spot interruption notice %s %s", s.InstanceID, rec.NodeClaim)
			e.as("spot-interruption")
			nc := &karpv1.NodeClaim{}
			nc.Name = rec.NodeClaim
			if err := e.kube.Delete(e.ctx, nc); err != nil && !apierrors.IsNotFound(err) {
				e.metrics.controllerError("spot-interruption", err)
			}
		case e.spot.noticed[s.InstanceID] && !s.At.After(at):
			e.debugf("spot reclaim %s", s.InstanceID)
			if err := e.backend.Terminate(e.ctx, s.InstanceID); err != nil {
				e.metrics.controllerError("spot-interruption", err)
			}
		}
	}
	return e.settle()
}
