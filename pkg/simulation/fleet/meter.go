// Package fleet meters the fake fleet for the simulator's report: every
// instance launched and terminated, in simulated time, with the price of
// the offering launched and its GPUs.
package fleet

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// NewMeter meters b; gpus gives an instance type's GPUs, debugf (optional)
// logs launches.
func NewMeter(b gpucp.Backend, clk clock.PassiveClock, gpus func(instanceType string) int64, debugf func(format string, args ...any)) *Meter {
	return &Meter{Backend: b, clk: clk, gpus: gpus, instances: map[string]*Instance{}, debugf: debugf}
}

// Version counts launches and terminations: a cache of what the fleet
// holds is current while it is unchanged.
func (m *Meter) Version() uint64 { return m.version.Load() }

// Instance is one instance of the fleet, for cost accounting.
type Instance struct {
	ID, Type, Zone, CapacityType string
	// NodeClaim launched it (its Node has the same name); NodePool owns it.
	NodeClaim, NodePool string
	Price               float64 // $/h of the offering launched
	GPUs                int64
	Start, End          time.Time // End zero while running
}

// Meter wraps the fake fleet to meter launches and terminations in
// simulated time. It changes nothing it passes through.
type Meter struct {
	gpucp.Backend
	clk       clock.PassiveClock
	gpus      func(instanceType string) int64
	mu        sync.Mutex
	instances map[string]*Instance
	order     []string
	debugf    func(format string, args ...any)
	// version counts launches and terminations (Version).
	version atomic.Uint64
}

func (m *Meter) Launch(ctx context.Context, req *gpucp.LaunchRequest) (*gpucp.LaunchResult, error) {
	res, err := m.Backend.Launch(ctx, req)
	if err != nil || res == nil || res.Instance == nil {
		return res, err
	}
	m.mu.Lock()
	if _, seen := m.instances[res.Instance.ID]; !seen {
		price := 0.0
		for _, o := range req.Options {
			if o.InstanceType == res.Instance.InstanceType && o.Zone == res.Instance.Zone && o.CapacityType == res.Instance.CapacityType {
				price = o.Price
				break
			}
		}
		m.instances[res.Instance.ID] = &Instance{ID: res.Instance.ID, Type: res.Instance.InstanceType, Zone: res.Instance.Zone,
			CapacityType: res.Instance.CapacityType, Price: price, GPUs: m.gpus(res.Instance.InstanceType), Start: m.clk.Now()}
		if nc := req.NodeClaim; nc != nil {
			m.instances[res.Instance.ID].NodeClaim, m.instances[res.Instance.ID].NodePool = nc.Name, nc.Labels[karpv1.NodePoolLabelKey]
		}
		m.order = append(m.order, res.Instance.ID)
		m.version.Add(1)
		if m.debugf != nil {
			m.debugf("launch %s %s %s for %s", res.Instance.ID, res.Instance.InstanceType, res.Instance.Zone, req.NodeClaim.Name)
		}
	}
	m.mu.Unlock()
	return res, nil
}

func (m *Meter) Terminate(ctx context.Context, id string) error {
	err := m.Backend.Terminate(ctx, id)
	if err == nil {
		m.mu.Lock()
		if r, ok := m.instances[id]; ok && r.End.IsZero() {
			r.End = m.clk.Now()
		}
		m.version.Add(1)
		m.mu.Unlock()
	}
	return err
}

// Record returns the instance's record (nil when unknown).
func (m *Meter) Record(id string) *Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.instances[id]; ok {
		c := *r
		return &c
	}
	return nil
}

// Launches is how many instances have been recorded.
func (m *Meter) Launches() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.order)
}

// SortLaunchesSince puts the instances recorded after the first n in
// NodeClaim name order: a gang's members launch together, and record
// their instances in whatever order their goroutines return.
func (m *Meter) SortLaunchesSince(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tail := m.order[n:]
	sort.SliceStable(tail, func(i, j int) bool { return m.instances[tail[i]].NodeClaim < m.instances[tail[j]].NodeClaim })
}

// Records returns the instances in launch order.
func (m *Meter) Records() []*Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Instance, 0, len(m.order))
	for _, id := range m.order {
		r := *m.instances[id]
		out = append(out, &r)
	}
	return out
}
