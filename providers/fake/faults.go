package fake

import (
	"fmt"
	"sort"

	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// RefuseCapacity makes the next n launches of an offering fail for
// capacity (n < 0: until cleared with n = 0).
func (f *Fleet) RefuseCapacity(off Offering, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n == 0 {
		delete(f.refuse, off)
		return
	}
	f.refuse[off] = n
}

// SetCapacity limits how many instances of an offering may run (n < 0 removes
// the limit).
func (f *Fleet) SetCapacity(off Offering, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opts.Capacity == nil {
		f.opts.Capacity = map[Offering]int{}
	}
	if n < 0 {
		delete(f.opts.Capacity, off)
		return
	}
	f.opts.Capacity[off] = n
}

// InjectAPIError makes the next call of op ("Launch", "Get", "List",
// "Terminate", "Offerings") fail with err; calls queue in order.
func (f *Fleet) InjectAPIError(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apiErrors[op] = append(f.apiErrors[op], err)
}

func (f *Fleet) popAPIError(op string) error {
	errs := f.apiErrors[op]
	if len(errs) == 0 {
		return nil
	}
	f.apiErrors[op] = errs[1:]
	f.faults.injected[FaultAPIError+op]++
	return fmt.Errorf("fake %s: %w", op, errs[0])
}

// Interrupt reclaims a spot instance, as a spot interruption would; it
// returns false for unknown or non-spot instances.
func (f *Fleet) Interrupt(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.instances[id]
	if !ok || inst.CapacityType != "spot" || inst.State == cloudprovider.InstanceStateTerminated {
		return false
	}
	inst.State = cloudprovider.InstanceStateTerminated
	f.faults.injected[FaultSpotInterruption]++
	return true
}

// InterruptRandom reclaims up to n running spot instances chosen by the
// fleet's seeded random source (a spot interruption burst), returning their IDs.
func (f *Fleet) InterruptRandom(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, i := range f.instances {
		if i.CapacityType == "spot" && i.State != cloudprovider.InstanceStateTerminated {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids) // map order is random; the seed alone must decide
	f.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	ids = lo.Slice(ids, 0, n)
	for _, id := range ids {
		f.instances[id].State = cloudprovider.InstanceStateTerminated
	}
	f.faults.injected[FaultSpotInterruption] += len(ids)
	return ids
}

// Launches counts successful launches (duplicate-launch checks).
func (f *Fleet) Launches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.launches
}
