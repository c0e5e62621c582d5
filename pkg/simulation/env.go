package simulation

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samber/lo"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/events"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// Epoch is simulated time zero: trace times are offsets from it.
var Epoch = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)

// simClock is the fake clock every controller sees. It differs from
// FakeClock in two ways, both because the in-memory API is synchronous:
//   - Sleep does nothing. Core sleeps 1s after patching a NodeClaim to let
//     its informer cache catch up; stepping the shared clock instead (what
//     FakeClock.Sleep does) would move simulated time for everyone.
//   - After, called by a controller the engine runs in the background (the
//     disruption controller's 15s command validation), tells the engine
//     when that controller will wake up, so the engine keeps simulating the
//     rest of the cluster until then.
type simClock struct {
	*clocktesting.FakeClock
	// background is set while the engine waits on a background controller;
	// After then reports the wake-up time on blocked.
	background atomic.Bool
	blocked    chan time.Time
}

func newSimClock() *simClock {
	return &simClock{FakeClock: clocktesting.NewFakeClock(Epoch), blocked: make(chan time.Time, 1)}
}

func (c *simClock) Sleep(time.Duration) {}

func (c *simClock) After(d time.Duration) <-chan time.Time {
	ch := c.FakeClock.After(d)
	if c.background.Load() {
		c.blocked <- c.Now().Add(d)
	}
	return ch
}

// recorder receives Karpenter's events. The report reads decisions from the
// API and the fleet instead, so events are dropped (core's own recorder
// would send them to the API server's event stream).
type recorder struct{}

var _ events.Recorder = recorder{}

func (recorder) Publish(...events.Event) {}

// stableCloudProvider is the karpenter-gpu cloud provider with
// GetInstanceTypes memoised on simulated state only, and narrowed to the
// types the NodePool's requirements admit.
//
// Narrowing: core's scheduler drops a pool's instance types whose
// requirements do not intersect the pool's template before placing any pod,
// and launched nodes always have an admitted type, so the decisions are the
// same; the dropped types only widen topology-domain universes, which
// matter for topology spread and pod affinity, which simulator inputs cannot
// express. It saves core's scheduler construction (run for every
// consolidation candidate) a quarter of its work on the AWS catalog.
//
// Memoising: the provider's own
// cache expires after a minute of wall-clock time, which would hand core's
// scheduler and the packer different InstanceType objects for the same
// decision depending on how fast the machine runs; here the instance types
// change exactly when the inputs of the provider's cache key do (node class
// generation, unavailable offerings).
type stableCloudProvider struct {
	*gpucp.CloudProvider
	kube  client.Client
	mu    sync.Mutex
	cache map[string]stableEntry
}

type stableEntry struct {
	version string
	its     []*karpcp.InstanceType
}

func (s *stableCloudProvider) GetInstanceTypes(ctx context.Context, np *karpv1.NodePool) ([]*karpcp.InstanceType, error) {
	key := "<default>"
	if np != nil {
		key = fmt.Sprintf("%s/%v/%v", np.Name, np.Spec.Template.Spec.Requirements, np.Spec.Template.Labels)
	}
	if np != nil && np.Spec.Template.Spec.NodeClassRef != nil {
		nc := &v1alpha1.GPUNodeClass{}
		if err := s.kube.Get(ctx, client.ObjectKey{Name: np.Spec.Template.Spec.NodeClassRef.Name}, nc); err == nil {
			key += fmt.Sprintf("/%s/%s/%d", nc.Name, nc.UID, nc.Generation)
		}
	}
	version := s.Unavailable().Version()
	s.mu.Lock()
	e, ok := s.cache[key]
	s.mu.Unlock()
	if ok && e.version == version {
		return e.its, nil
	}
	its, err := s.CloudProvider.GetInstanceTypes(ctx, np)
	if err != nil {
		return nil, err
	}
	if np != nil {
		reqs := scheduling.NewNodeClaimTemplate(np).Requirements
		its = lo.Filter(its, func(it *karpcp.InstanceType, _ int) bool { return it.Requirements.Intersects(reqs) == nil })
	}
	s.mu.Lock()
	s.cache[key] = stableEntry{version: version, its: its}
	s.mu.Unlock()
	return its, nil
}
