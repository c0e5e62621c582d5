package apiserver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
)

func init() {
	// As the simulator's engine has it (pkg/controllers/provisioningrequest).
	utilruntime.Must(autoscalingv1.AddToScheme(scheme.Scheme))
}

// TestPatchesReadBackAsStored: after every kind of patch the simulator's
// controllers make (merge patches of metadata and spec, with and without
// optimistic locking, status patches, a JSON patch, a dry run, the patch
// that removes the last finalizer of a deleting object, a conflicting
// patch, a patch of a missing object), the simulator's client (merge
// patches applied once, mergePatch; a cache that keeps a patch's result
// without reading it back) returns the same errors and serves exactly what
// the fake client's own Patch with every write read back serves
// (reference reads).
func TestPatchesReadBackAsStored(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC))
	fast := NewClient(clk, NewChangeLog(), &atomic.Bool{}, false)
	ref := NewClient(clk, NewChangeLog(), &atomic.Bool{}, true)

	// patched holds the objects a step's writes filled in (if the step
	// says which), the simulator's client's first: both must hand back the
	// same object.
	var patched []client.Object
	both := func(step string, write func(c client.Client) error) {
		t.Helper()
		patched = nil
		errF, errR := write(fast), write(ref)
		if (errF == nil) != (errR == nil) || (errF != nil && errF.Error() != errR.Error()) {
			t.Fatalf("%s: errors differ: %v / %v", step, errF, errR)
		}
		if len(patched) == 2 && !equality.Semantic.DeepEqual(patched[0], patched[1]) {
			t.Fatalf("%s: the written objects differ:\nfast %+v\nreference %+v", step, patched[0], patched[1])
		}
		for _, l := range []client.ObjectList{&corev1.NodeList{}, &corev1.PodList{}, &karpv1.NodeClaimList{}} {
			lf, lr := l.DeepCopyObject().(client.ObjectList), l.DeepCopyObject().(client.ObjectList)
			if err := fast.List(ctx, lf); err != nil {
				t.Fatal(err)
			}
			if err := ref.List(ctx, lr); err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(lf, lr) {
				t.Fatalf("%s: %T differs:\nfast %+v\nreference %+v", step, l, lf, lr)
			}
		}
	}
	node := func() *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"a": "b"}, Finalizers: []string{"f"}},
			Spec:   corev1.NodeSpec{ProviderID: "p://n"},
			Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}}}
	}
	pod := func() *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	}
	get := func(c client.Client, obj client.Object) client.Object {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		return obj
	}

	both("create", func(c client.Client) error {
		if err := c.Create(ctx, node()); err != nil {
			return err
		}
		return c.Create(ctx, pod())
	})
	both("merge patch of metadata and spec", func(c client.Client) error {
		n := get(c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}).(*corev1.Node)
		stored := n.DeepCopy()
		n.Annotations = map[string]string{"x": "y"}
		n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}
		return c.Patch(ctx, n, client.MergeFrom(stored))
	})
	both("merge patch with optimistic lock", func(c client.Client) error {
		n := get(c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}).(*corev1.Node)
		stored := n.DeepCopy()
		delete(n.Labels, "a")
		return c.Patch(ctx, n, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{}))
	})
	both("conflicting patch", func(c client.Client) error {
		n := get(c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}).(*corev1.Node)
		stored := n.DeepCopy()
		stored.ResourceVersion = "1"
		n.Labels = map[string]string{"c": "d"}
		err := c.Patch(ctx, n, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{}))
		if !apierrors.IsConflict(err) {
			t.Fatalf("a stale optimistic patch: %v", err)
		}
		return err
	})
	both("status patch", func(c client.Client) error {
		p := get(c, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}}).(*corev1.Pod)
		stored := p.DeepCopy()
		p.Status.Phase = corev1.PodRunning
		p.Status.StartTime = &metav1.Time{Time: clk.Now()}
		p.Labels = map[string]string{"ignored": "by a status patch"}
		return c.Status().Patch(ctx, p, client.MergeFrom(stored))
	})
	both("node status patch", func(c client.Client) error {
		n := get(c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}).(*corev1.Node)
		stored := n.DeepCopy()
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: clk.Now()}}}
		return c.Status().Patch(ctx, n, client.MergeFrom(stored))
	})
	both("merge patch of the resource that also changes status (ignored: a subresource)", func(c client.Client) error {
		p := get(c, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}}).(*corev1.Pod)
		stored := p.DeepCopy()
		p.Labels = map[string]string{"kept": "by a resource patch"}
		p.Status.Phase = corev1.PodFailed
		return c.Patch(ctx, p, client.MergeFrom(stored))
	})
	both("NodeClaim create and status patch of conditions", func(c client.Client) error {
		nc := &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: "nc"}}
		if err := c.Create(ctx, nc); err != nil {
			return err
		}
		nc = get(c, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: "nc"}}).(*karpv1.NodeClaim)
		stored := nc.DeepCopy()
		nc.StatusConditions().SetTrue(karpv1.ConditionTypeLaunched)
		nc.Status.ProviderID = "p://nc"
		return c.Status().Patch(ctx, nc, client.MergeFrom(stored))
	})
	both("patch of an object that is not there", func(c client.Client) error {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "missing"}}
		stored := n.DeepCopy()
		n.Labels = map[string]string{"x": "y"}
		err := c.Patch(ctx, n, client.MergeFrom(stored))
		if !apierrors.IsNotFound(err) {
			t.Fatalf("a patch of a missing object: %v", err)
		}
		return err
	})
	both("JSON patch", func(c client.Client) error {
		return c.Patch(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}},
			client.RawPatch(types.JSONPatchType, []byte(`[{"op":"add","path":"/metadata/labels","value":{"j":"k"}}]`)))
	})
	both("dry run", func(c client.Client) error {
		n := get(c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}).(*corev1.Node)
		stored := n.DeepCopy()
		n.Labels = map[string]string{"dry": "run"}
		return c.Patch(ctx, n, client.MergeFrom(stored), client.DryRunAll)
	})
	both("merge patch from a base the caller changed before copying it (not the stored object)", func(c client.Client) error {
		n := get(c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}).(*corev1.Node)
		n.Labels = map[string]string{"unsent": "the base has it too"}
		stored := n.DeepCopy()
		n.Annotations = map[string]string{"sent": "yes"}
		n.Spec.Unschedulable = true
		patched = append(patched, n)
		return c.Patch(ctx, n, client.MergeFrom(stored))
	})
	both("status patch from a stale base", func(c client.Client) error {
		p := get(c, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}}).(*corev1.Pod)
		stale := p.DeepCopy()
		p.Labels = map[string]string{"written": "in between"}
		if err := c.Update(ctx, p); err != nil {
			return err
		}
		p = stale.DeepCopy()
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: clk.Now()}}}
		patched = append(patched, p)
		return c.Status().Patch(ctx, p, client.MergeFrom(stale))
	})
	both("merge patch with optimistic lock from the current version, returned object", func(c client.Client) error {
		nc := get(c, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: "nc"}}).(*karpv1.NodeClaim)
		stored := nc.DeepCopy()
		nc.Annotations = map[string]string{"karpenter.sh/nodeclaim-min-values-relaxed": "false"}
		nc.Finalizers = []string{"karpenter.sh/termination"}
		patched = append(patched, nc)
		return c.Patch(ctx, nc, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{}))
	})
	both("merge patch that sets a deletionTimestamp (immutable)", func(c client.Client) error {
		nc := get(c, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: "nc"}}).(*karpv1.NodeClaim)
		stored := nc.DeepCopy()
		nc.DeletionTimestamp = &metav1.Time{Time: clk.Now()}
		err := c.Patch(ctx, nc, client.MergeFrom(stored))
		if err == nil {
			t.Fatalf("a patch set a deletionTimestamp")
		}
		return err
	})
	both("delete of a NodeClaim with a finalizer, then its status patch", func(c client.Client) error {
		if err := c.Delete(ctx, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: "nc"}}); err != nil {
			return err
		}
		nc := get(c, &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: "nc"}}).(*karpv1.NodeClaim)
		stored := nc.DeepCopy()
		nc.StatusConditions().SetTrue(karpv1.ConditionTypeInstanceTerminating)
		patched = append(patched, nc)
		return c.Status().Patch(ctx, nc, client.MergeFrom(stored))
	})
	both("delete (held by its finalizer)", func(c client.Client) error {
		return c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}})
	})
	both("patch removing the last finalizer", func(c client.Client) error {
		n := get(c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}).(*corev1.Node)
		if n.DeletionTimestamp.IsZero() {
			t.Fatalf("the node is not deleting")
		}
		stored := n.DeepCopy()
		n.Finalizers = nil
		return c.Patch(ctx, n, client.MergeFrom(stored))
	})
	if err := fast.Get(ctx, client.ObjectKey{Name: "n"}, &corev1.Node{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the node outlived its last finalizer: %v", err)
	}
	both("create again under the name of the object deleted by its last finalizer's removal", func(c client.Client) error {
		return c.Create(ctx, node())
	})
}

// TestMergeFromBase: the base and the optimistic lock of client.MergeFrom's
// patches are found (a controller-runtime that renamed its fields would
// silently lose mergePatch's shortcut), and other patches have none.
func TestMergeFromBase(t *testing.T) {
	base := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", ResourceVersion: "7"}}
	for _, tc := range []struct {
		name       string
		patch      client.Patch
		ok, locked bool
	}{
		{"MergeFrom", client.MergeFrom(base), true, false},
		{"MergeFrom with an optimistic lock", client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), true, true},
		{"StrategicMergeFrom", client.StrategicMergeFrom(base), true, false},
		{"raw merge patch", client.RawPatch(types.MergePatchType, []byte(`{}`)), false, false},
		{"JSON patch", client.RawPatch(types.JSONPatchType, []byte(`[]`)), false, false},
	} {
		from, locked, ok := mergeFromBase(tc.patch)
		if ok != tc.ok || locked != tc.locked || (ok && from != client.Object(base)) {
			t.Errorf("%s: base %v, locked %v, found %v; want base %v, locked %v, found %v", tc.name, from, locked, ok, tc.ok, tc.locked, tc.ok)
		}
	}
}
