package fake

import (
	"math"
	"sort"
	"time"

	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// SpotInterruptionNotice is how long before reclaiming a spot instance the
// cloud warns (EC2's two-minute interruption notice).
const SpotInterruptionNotice = 2 * time.Minute

// scheduleInterruption draws when a new spot instance will be reclaimed.
// Called with f.mu held.
func (f *Fleet) scheduleInterruption(inst *cloudprovider.Instance) {
	rate := f.opts.SpotInterruptionsPerDay
	if rate <= 0 || inst.CapacityType != karpv1.CapacityTypeSpot {
		return
	}
	days := f.spotRNG.ExpFloat64() / rate
	life := time.Duration(math.Min(days*24*float64(time.Hour), float64(100*365*24*time.Hour))).Round(time.Second)
	f.interrupts[inst.ID] = inst.LaunchTime.Add(max(life, time.Second))
}

// ScheduledInterruption is a spot instance's coming interruption.
type ScheduledInterruption struct {
	InstanceID string
	// At is when the instance is reclaimed; the notice comes
	// SpotInterruptionNotice before (not before its launch).
	At time.Time
}

// SpotInterruptions lists the interruptions scheduled for spot instances
// that are not terminated yet, earliest first (then by instance ID).
func (f *Fleet) SpotInterruptions() []ScheduledInterruption {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]ScheduledInterruption, 0, len(f.interrupts))
	for id, at := range f.interrupts {
		if inst, ok := f.instances[id]; ok && inst.State != cloudprovider.InstanceStateTerminated {
			out = append(out, ScheduledInterruption{InstanceID: id, At: at})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].InstanceID < out[j].InstanceID
	})
	return out
}
