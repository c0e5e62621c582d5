// Package apiserver is the simulator's in-memory API server:
// controller-runtime's fake client with the field indexes of Karpenter's
// operator and status subresources, read through a cache of typed copies
// (like a controller's informer cache) sorted by name, merge patches
// written as typed objects with the fake client's update semantics
// (typedWriter), deterministic names,
// UIDs and creation timestamps in simulated time, and a change log of every
// write: what the engine turns into watch events (pkg/simulation's
// dispatch), the pods evicted (with why their node was going) and the
// NodeClaims deleted (by whom).
package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
)

// Kind is an API kind the engine dispatches changes for.
type Kind int

const (
	KindNodePool Kind = iota
	KindNodeClass
	KindNodeClaim
	KindNode
	KindPod
	KindOther
	// After KindOther: UIDs are derived from the kind's number.
	KindProvisioningRequest
)

func kindOf(obj client.Object) Kind {
	switch obj.(type) {
	case *karpv1.NodePool:
		return KindNodePool
	case *v1alpha1.GPUNodeClass:
		return KindNodeClass
	case *karpv1.NodeClaim:
		return KindNodeClaim
	case *corev1.Node:
		return KindNode
	case *corev1.Pod:
		return KindPod
	case *autoscalingv1.ProvisioningRequest:
		return KindProvisioningRequest
	}
	return KindOther
}

// ObjectKey identifies a changed object.
type ObjectKey struct {
	Kind Kind
	Key  types.NamespacedName
}

// ChangeLog records the objects written since the engine last looked, the
// way watches would report them. Writes may come from several goroutines
// (core parallelises some writes); the engine sorts what it reads, so the
// order of concurrent writes does not matter.
type ChangeLog struct {
	mu      sync.Mutex
	changed map[ObjectKey]bool
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

func (l *ChangeLog) record(obj client.Object) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changed[ObjectKey{kindOf(obj), client.ObjectKeyFromObject(obj)}] = true
	l.any++
}

// Take returns the objects written since the last Take.
func (l *ChangeLog) Take() map[ObjectKey]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.changed
	l.changed = map[ObjectKey]bool{}
	return out
}

// NewChangeLog returns an empty change log.
func NewChangeLog() *ChangeLog {
	return &ChangeLog{changed: map[ObjectKey]bool{}, createdClaims: map[string]string{}, claimDeletions: map[string]int{}}
}

// Writes counts the writes so far (for disruption's "anything changed"
// test).
func (l *ChangeLog) Writes() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.any
}

// SetActor names who writes next, for the deletion counts.
func (l *ChangeLog) SetActor(actor string) {
	l.mu.Lock()
	l.actor = actor
	l.mu.Unlock()
}

// TakeCreatedClaims returns the NodeClaims created since the last call,
// with their content hash.
func (l *ChangeLog) TakeCreatedClaims() map[string]string {
	l.mu.Lock()
	created := l.createdClaims
	l.createdClaims = map[string]string{}
	l.mu.Unlock()
	return created
}

// TakeEvicted returns the pods deleted by someone other than the engine
// since the last call, and why each one's node was going (evictionCause).
func (l *ChangeLog) TakeEvicted() (pods []*corev1.Pod, causes []string) {
	l.mu.Lock()
	pods, causes = l.evicted, l.evictedCause
	l.evicted, l.evictedCause = nil, nil
	l.mu.Unlock()
	return pods, causes
}

// ClaimDeletions counts NodeClaim deletions by who deleted them.
func (l *ChangeLog) ClaimDeletions() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.claimDeletions {
		out[k] = v
	}
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

// NewClient builds the in-memory API: controller-runtime's fake client
// with the field indexes Karpenter's operator registers and status
// subresources, read through a cache (see readCache), and interceptors that
// (1) give generated names, UIDs and creation timestamps deterministically
// and in simulated time, and (2) report every write to the change log.
func NewClient(clk clock.PassiveClock, log *ChangeLog, engineDeleting *atomic.Bool, reference bool) client.Client {
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
	// Writes are serialised (writeMu), as the fake client serialises its
	// own, so that the typed writer's read, check and write of an object,
	// and the cache's copy of what a patch stored, cannot interleave with
	// another write. track takes the lock; the returned func releases it.
	var writeMu sync.Mutex
	track := func() (done func()) {
		writeMu.Lock()
		return writeMu.Unlock
	}
	// patched is written for a patch. The fake client fills obj from the
	// stored result of a patch (a JSON round trip of the object it stores,
	// as Get makes), so the cache takes a copy of obj instead of reading it
	// back, when obj is the patched object (filled: not a dry run, not a
	// subresource body), the patch is not server-side apply and obj is
	// typed. No other write can begin before patched returns: the caller
	// holds writeMu. The fake client deletes an object a patch leaves with
	// a deletion timestamp and no finalizers. With reference reads, the
	// cache reads it back.
	patched := func(ctx context.Context, c client.Client, obj client.Object, patch client.Patch, filled bool, err error) error {
		if err != nil || !filled || rc.reference || !typed(obj) || patch.Type() == types.ApplyPatchType {
			return written(ctx, c, obj, err)
		}
		if err := rc.keep(ctx, c, obj, !obj.GetDeletionTimestamp().IsZero() && len(obj.GetFinalizers()) == 0); err != nil {
			return fmt.Errorf("refreshing the read cache, %w", err)
		}
		log.record(obj)
		return nil
	}
	// fast says whether a patch of obj with n options goes through
	// mergePatch: typed objects, no options (dry runs, field managers,
	// subresource bodies), and not with reference reads (whose client is
	// the fake client as it is, which the tests compare against).
	fast := func(obj client.Object, n int) bool {
		return n == 0 && !rc.reference && typed(obj)
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
	// A plain object tracker: the default one manages fields for
	// server-side apply, which nothing here uses and which builds a REST
	// mapper on every patch.
	tracker := clienttesting.NewObjectTracker(scheme.Scheme, scheme.Codecs.UniversalDecoder())
	withStatus := []client.Object{&karpv1.NodeClaim{}, &karpv1.NodePool{}, &v1alpha1.GPUNodeClass{}, &corev1.Pod{}, &corev1.Node{}, &autoscalingv1.ProvisioningRequest{}}
	w := newTypedWriter(scheme.Scheme, tracker, withStatus)
	b := fake.NewClientBuilder().
		WithScheme(scheme.Scheme).
		WithObjectTracker(tracker).
		WithStatusSubresource(withStatus...)
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
			done := track()
			defer done()
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
			done := track()
			defer done()
			return written(ctx, c, obj, c.Update(ctx, obj, opts...))
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			done := track()
			defer done()
			po := client.PatchOptions{}
			po.ApplyOptions(opts)
			if fast(obj, len(opts)) {
				if handled, err := mergePatch(ctx, c, rc, w, obj, patch, false); handled {
					return patched(ctx, c, obj, patch, true, err)
				}
			}
			return patched(ctx, c, obj, patch, len(po.DryRun) == 0, c.Patch(ctx, obj, patch, opts...))
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			done := track()
			defer done()
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
			done := track()
			defer done()
			err := c.DeleteAllOf(ctx, obj, opts...)
			rc.reload(obj)
			return err
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj client.Object, subResource client.Object, opts ...client.SubResourceCreateOption) error {
			done := track()
			defer done()
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
			done := track()
			defer done()
			return written(ctx, c, obj, c.SubResource(sub).Update(ctx, obj, opts...))
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			done := track()
			defer done()
			po := client.SubResourcePatchOptions{}
			po.ApplyOptions(opts)
			if sub == "status" && fast(obj, len(opts)) {
				if handled, err := mergePatch(ctx, c, rc, w, obj, patch, true); handled {
					return patched(ctx, c, obj, patch, true, err)
				}
			}
			return patched(ctx, c, obj, patch, sub == "status" && po.SubResourceBody == nil && len(po.DryRun) == 0,
				c.SubResource(sub).Patch(ctx, obj, patch, opts...))
		},
	}).Build()
}

// typed reports whether obj is a Go type of its kind (not unstructured or
// partial metadata): what the cache keeps and mergePatch decodes.
func typed(obj client.Object) bool {
	_, unstructured := obj.(runtime.Unstructured)
	_, partial := obj.(*metav1.PartialObjectMetadata)
	return !unstructured && !partial
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

// evictionCause says why the evicted pod's node was going: "repack" (a
// repacking move's old node), core's disruption reason ("underutilized",
// "empty", "drifted", ...), or "other" (idle-GPU removal, a spot
// interruption, expiry, a node gone).
func evictionCause(ctx context.Context, c client.Client, pod *corev1.Pod) string {
	node := &corev1.Node{}
	if pod.Spec.NodeName == "" || c.Get(ctx, client.ObjectKey{Name: pod.Spec.NodeName}, node) != nil {
		return "other"
	}
	ref, ok := lo.Find(node.OwnerReferences, func(o metav1.OwnerReference) bool { return o.Kind == "NodeClaim" })
	nc := &karpv1.NodeClaim{}
	if !ok || c.Get(ctx, client.ObjectKey{Name: ref.Name}, nc) != nil {
		return "other"
	}
	if repack.InFlight(nc) {
		return "repack"
	}
	if cond := nc.StatusConditions().Get(karpv1.ConditionTypeDisruptionReason); cond.IsTrue() && cond.Reason != "" {
		return strings.ToLower(cond.Reason)
	}
	return "other"
}

// deleter names who deleted the NodeClaim for the report's deletion counts:
// the running actor, except that a repacking move's old node is the
// repacker's (it runs on the idle-GPU controller's poll).
func deleter(actor string, nc *karpv1.NodeClaim) string {
	if repack.InFlight(nc) {
		return "karpenter-gpu.repack"
	}
	return actor
}
