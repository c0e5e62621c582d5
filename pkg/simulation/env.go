package simulation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
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

// kind is an API kind the engine dispatches changes for.
type kind int

const (
	kindNodePool kind = iota
	kindNodeClass
	kindNodeClaim
	kindNode
	kindPod
	kindOther
	// After kindOther: UIDs are derived from the kind's number.
	kindProvisioningRequest
)

func kindOf(obj client.Object) kind {
	switch obj.(type) {
	case *karpv1.NodePool:
		return kindNodePool
	case *v1alpha1.GPUNodeClass:
		return kindNodeClass
	case *karpv1.NodeClaim:
		return kindNodeClaim
	case *corev1.Node:
		return kindNode
	case *corev1.Pod:
		return kindPod
	case *autoscalingv1.ProvisioningRequest:
		return kindProvisioningRequest
	}
	return kindOther
}

// objKey identifies a changed object.
type objKey struct {
	kind kind
	key  types.NamespacedName
}

// changeLog records the objects written since the engine last looked, the
// way watches would report them. Writes may come from several goroutines
// (core parallelises some writes); the engine sorts what it reads, so the
// order of concurrent writes does not matter.
type changeLog struct {
	mu      sync.Mutex
	changed map[objKey]bool
	// evicted are pods deleted by someone other than the engine, and
	// evictedCause why each one's node was going (evictionCause).
	evicted      []*corev1.Pod
	evictedCause []string
	// actor names who is running (set by the engine's goroutine), and
	// claimDeletions counts NodeClaim deletions by actor.
	actor          string
	claimDeletions map[string]int
	// created NodeClaims since the engine last looked, with their spec hash.
	createdClaims map[string]string
	// any counts writes (for disruption's "anything changed" test).
	any uint64
}

func (l *changeLog) record(obj client.Object) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changed[objKey{kindOf(obj), client.ObjectKeyFromObject(obj)}] = true
	l.any++
}

func (l *changeLog) take() map[objKey]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.changed
	l.changed = map[objKey]bool{}
	return out
}

// fieldIndexes are the field indexes Karpenter's operator registers
// (pkg/operator/operator.go), plus VolumeAttachment spec.nodeName which node
// termination lists by.
var fieldIndexes = []struct {
	obj   client.Object
	field string
	f     client.IndexerFunc
}{
	{&corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }},
	{&corev1.Node{}, "spec.providerID", func(o client.Object) []string { return []string{o.(*corev1.Node).Spec.ProviderID} }},
	{&storagev1.VolumeAttachment{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*storagev1.VolumeAttachment).Spec.NodeName} }},
	{&karpv1.NodeClaim{}, "status.providerID", func(o client.Object) []string { return []string{o.(*karpv1.NodeClaim).Status.ProviderID} }},
	{&karpv1.NodeClaim{}, "spec.nodeClassRef.group", func(o client.Object) []string { return []string{o.(*karpv1.NodeClaim).Spec.NodeClassRef.Group} }},
	{&karpv1.NodeClaim{}, "spec.nodeClassRef.kind", func(o client.Object) []string { return []string{o.(*karpv1.NodeClaim).Spec.NodeClassRef.Kind} }},
	{&karpv1.NodeClaim{}, "spec.nodeClassRef.name", func(o client.Object) []string { return []string{o.(*karpv1.NodeClaim).Spec.NodeClassRef.Name} }},
	{&karpv1.NodePool{}, "spec.template.spec.nodeClassRef.group", func(o client.Object) []string {
		return []string{o.(*karpv1.NodePool).Spec.Template.Spec.NodeClassRef.Group}
	}},
	{&karpv1.NodePool{}, "spec.template.spec.nodeClassRef.kind", func(o client.Object) []string {
		return []string{o.(*karpv1.NodePool).Spec.Template.Spec.NodeClassRef.Kind}
	}},
	{&karpv1.NodePool{}, "spec.template.spec.nodeClassRef.name", func(o client.Object) []string {
		return []string{o.(*karpv1.NodePool).Spec.Template.Spec.NodeClassRef.Name}
	}},
}

// newKubeClient builds the in-memory API: controller-runtime's fake client
// with the field indexes Karpenter's operator registers and status
// subresources, read through a cache (see readCache), and interceptors that
// (1) give generated names, UIDs and creation timestamps deterministically
// and in simulated time, and (2) report every write to the change log.
func newKubeClient(clk *simClock, log *changeLog, engineDeleting *atomic.Bool, reference bool) client.Client {
	var seq atomic.Uint64
	nameCounts := map[string]int{}
	var namesMu sync.Mutex
	rc := newReadCache(scheme.Scheme)
	rc.reference = reference
	written := func(ctx context.Context, c client.Client, obj client.Object, err error) error {
		if err != nil {
			return err
		}
		if err := rc.refresh(ctx, c, obj); err != nil {
			return fmt.Errorf("refreshing the read cache, %w", err)
		}
		log.record(obj)
		return nil
	}
	// evictee returns the pod about to be deleted by someone other than the
	// engine, for the workload controller to recreate.
	evictee := func(ctx context.Context, c client.Client, obj client.Object) *corev1.Pod {
		p, ok := obj.(*corev1.Pod)
		if !ok || engineDeleting.Load() {
			return nil
		}
		pod := &corev1.Pod{}
		if err := rc.get(ctx, c, client.ObjectKeyFromObject(p), pod); err != nil {
			return nil
		}
		return pod
	}
	b := fake.NewClientBuilder().
		WithScheme(scheme.Scheme).
		// A plain object tracker: the default one manages fields for
		// server-side apply, which nothing here uses and which builds a REST
		// mapper on every patch.
		WithObjectTracker(clienttesting.NewObjectTracker(scheme.Scheme, scheme.Codecs.UniversalDecoder())).
		WithStatusSubresource(&karpv1.NodeClaim{}, &karpv1.NodePool{}, &v1alpha1.GPUNodeClass{}, &corev1.Pod{}, &corev1.Node{}, &autoscalingv1.ProvisioningRequest{})
	for _, ix := range fieldIndexes {
		b = b.WithIndex(ix.obj, ix.field, ix.f)
		rc.addIndex(ix.obj, ix.field, ix.f)
	}
	return b.WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			return rc.get(ctx, c, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			return rc.list(ctx, c, list, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			var hash string
			if obj.GetName() == "" && obj.GetGenerateName() != "" {
				// Name generated objects (NodeClaims) from their content: core
				// creates a batch's NodeClaims in parallel, so a counter would
				// make names depend on goroutine scheduling.
				hash = contentHash(obj)
				namesMu.Lock()
				base := obj.GetGenerateName() + hash[:10]
				n := nameCounts[base]
				nameCounts[base] = n + 1
				namesMu.Unlock()
				obj.SetName(base + map[bool]string{true: "", false: fmt.Sprintf("-%d", n)}[n == 0])
			}
			if obj.GetUID() == "" {
				obj.SetUID(types.UID(uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%d/%s/%s/%d", kindOf(obj), obj.GetNamespace(), obj.GetName(), seq.Add(1))).String()))
			}
			if ts := obj.GetCreationTimestamp(); ts.IsZero() {
				obj.SetCreationTimestamp(metav1.NewTime(clk.Now()))
			}
			err := c.Create(ctx, obj, opts...)
			if err == nil && hash != "" {
				if _, ok := obj.(*karpv1.NodeClaim); ok {
					log.mu.Lock()
					log.createdClaims[obj.GetName()] = hash
					log.mu.Unlock()
				}
			}
			return written(ctx, c, obj, err)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return written(ctx, c, obj, c.Update(ctx, obj, opts...))
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			return written(ctx, c, obj, c.Patch(ctx, obj, patch, opts...))
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			pod := evictee(ctx, c, obj)
			_, isClaim := obj.(*karpv1.NodeClaim)
			deleting := false
			cur := &karpv1.NodeClaim{}
			if isClaim {
				deleting = rc.get(ctx, c, client.ObjectKeyFromObject(obj), cur) == nil && !cur.DeletionTimestamp.IsZero()
			}
			cause := ""
			if pod != nil {
				cause = evictionCause(ctx, c, pod)
			}
			err := c.Delete(ctx, obj, opts...)
			if err == nil && pod != nil {
				log.mu.Lock()
				log.evicted = append(log.evicted, pod)
				log.evictedCause = append(log.evictedCause, cause)
				log.mu.Unlock()
			}
			if err == nil && isClaim && !deleting {
				log.mu.Lock()
				log.claimDeletions[deleter(log.actor, cur)]++
				log.mu.Unlock()
			}
			return written(ctx, c, obj, err)
		},
		DeleteAllOf: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteAllOfOption) error {
			err := c.DeleteAllOf(ctx, obj, opts...)
			rc.reload(obj)
			return err
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj client.Object, subResource client.Object, opts ...client.SubResourceCreateOption) error {
			var pod *corev1.Pod
			cause := ""
			if sub == "eviction" {
				if pod = evictee(ctx, c, obj); pod != nil {
					cause = evictionCause(ctx, c, pod)
				}
			}
			err := c.SubResource(sub).Create(ctx, obj, subResource, opts...)
			if err == nil && pod != nil {
				log.mu.Lock()
				log.evicted = append(log.evicted, pod)
				log.evictedCause = append(log.evictedCause, cause)
				log.mu.Unlock()
			}
			return written(ctx, c, obj, err)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			return written(ctx, c, obj, c.SubResource(sub).Update(ctx, obj, opts...))
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			return written(ctx, c, obj, c.SubResource(sub).Patch(ctx, obj, patch, opts...))
		},
	}).Build()
}

// contentHash is a stable hash of an object's labels, annotations and spec.
func contentHash(obj client.Object) string {
	h := sha256.New()
	b, _ := json.Marshal(struct {
		L, A map[string]string
		O    any
	}{obj.GetLabels(), obj.GetAnnotations(), specOf(obj)})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// specOf returns the spec in a canonical form: core renders NodeClaim
// requirements from a map, in no fixed order.
func specOf(obj client.Object) any {
	if nc, ok := obj.(*karpv1.NodeClaim); ok {
		spec := nc.Spec.DeepCopy()
		for i := range spec.Requirements {
			sort.Strings(spec.Requirements[i].Values)
		}
		sort.SliceStable(spec.Requirements, func(i, j int) bool {
			a, b := spec.Requirements[i], spec.Requirements[j]
			if a.Key != b.Key {
				return a.Key < b.Key
			}
			return a.Operator < b.Operator
		})
		return spec
	}
	return obj
}

// recorder receives Karpenter's events. The report reads decisions from the
// API and the fleet instead, so events are dropped (core's own recorder
// would send them to the API server's event stream).
type recorder struct{}

var _ events.Recorder = recorder{}

func (recorder) Publish(...events.Event) {}

// instanceRecord is one instance of the fleet, for cost accounting.
type instanceRecord struct {
	ID, Type, Zone, CapacityType string
	// NodeClaim launched it (its Node has the same name); NodePool owns it.
	NodeClaim, NodePool string
	Price               float64 // $/h of the offering launched
	GPUs                int64
	Start, End          time.Time // End zero while running
}

// meteredBackend wraps the fake fleet to meter launches and terminations in
// simulated time. It changes nothing it passes through.
type meteredBackend struct {
	gpucp.Backend
	clk       *simClock
	gpus      func(instanceType string) int64
	mu        sync.Mutex
	instances map[string]*instanceRecord
	order     []string
	onChange  func(t time.Time)
	debugf    func(format string, args ...any)
	// version counts launches and terminations (spot.go caches on it).
	version atomic.Uint64
}

func (m *meteredBackend) Launch(ctx context.Context, req *gpucp.LaunchRequest) (*gpucp.LaunchResult, error) {
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
		m.instances[res.Instance.ID] = &instanceRecord{ID: res.Instance.ID, Type: res.Instance.InstanceType, Zone: res.Instance.Zone,
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
	m.onChange(m.clk.Now())
	return res, nil
}

func (m *meteredBackend) Terminate(ctx context.Context, id string) error {
	err := m.Backend.Terminate(ctx, id)
	if err == nil {
		m.mu.Lock()
		if r, ok := m.instances[id]; ok && r.End.IsZero() {
			r.End = m.clk.Now()
		}
		m.version.Add(1)
		m.mu.Unlock()
		m.onChange(m.clk.Now())
	}
	return err
}

// record returns the instance's record (nil when unknown).
func (m *meteredBackend) record(id string) *instanceRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.instances[id]; ok {
		c := *r
		return &c
	}
	return nil
}

// launches is how many instances have been recorded.
func (m *meteredBackend) launches() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.order)
}

// sortLaunchesSince puts the instances recorded after the first n in
// NodeClaim name order: a gang's members launch together, and record
// their instances in whatever order their goroutines return.
func (m *meteredBackend) sortLaunchesSince(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tail := m.order[n:]
	sort.SliceStable(tail, func(i, j int) bool { return m.instances[tail[i]].NodeClaim < m.instances[tail[j]].NodeClaim })
}

// records returns the instances in launch order.
func (m *meteredBackend) records() []*instanceRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*instanceRecord, 0, len(m.order))
	for _, id := range m.order {
		r := *m.instances[id]
		out = append(out, &r)
	}
	return out
}

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
