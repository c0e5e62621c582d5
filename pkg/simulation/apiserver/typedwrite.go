package apiserver

import (
	"reflect"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// typedWriter writes an update of a typed object with a status subresource
// into the fake client's object tracker the way the fake client's update
// does (controller-runtime v0.24 pkg/client/fake, versionedTracker.update),
// without its copies of the old and new objects through JSON maps:
//
//   - an update keeps the stored status; a status update keeps everything
//     but the status (and takes the resourceVersion it was sent with);
//   - the resourceVersion sent must be the stored one, and the written one
//     is the stored one plus one;
//   - the deletionTimestamp cannot change;
//   - an object left with a deletionTimestamp and no finalizers is deleted.
//
// The objects it writes are already in the form the fake client's copies
// give (decoded from JSON: mergePatch's result, the read cache's stored
// copy), so taking the status field over is what the fake client's copy
// through JSON gives. Whatever the fake client would answer with an error
// (no resourceVersion, a conflict, a changed deletionTimestamp, a kind
// without a status subresource) update leaves to it (ok false), so errors
// keep its wording. Writes are serialised by the client (NewClient's
// write lock), as the fake client serialises its own.
type typedWriter struct {
	scheme  *runtime.Scheme
	tracker clienttesting.ObjectTracker
	// status holds the kinds with a status subresource.
	status map[schema.GroupVersionKind]bool
}

func newTypedWriter(scheme *runtime.Scheme, tracker clienttesting.ObjectTracker, withStatus []client.Object) *typedWriter {
	w := &typedWriter{scheme: scheme, tracker: tracker, status: map[schema.GroupVersionKind]bool{}}
	for _, o := range withStatus {
		gvk, err := apiutil.GVKForObject(o, scheme)
		if err != nil {
			panic(err)
		}
		w.status[gvk] = true
	}
	return w
}

// update writes sent over cur, the stored object (a copy the caller owns,
// as are sent's fields), as an update (status false) or a status update,
// and returns what was written: the object the fake client's update leaves
// in its argument. ok is false when the fake client must answer instead;
// then nothing was written.
func (w *typedWriter) update(cur, sent client.Object, status bool) (written client.Object, ok bool, err error) {
	gvk, err := apiutil.GVKForObject(sent, w.scheme)
	if err != nil || !w.status[gvk] || sent.GetName() == "" {
		return nil, false, nil
	}
	sentStatus, curStatus := statusField(sent), statusField(cur)
	if !sentStatus.IsValid() || !curStatus.IsValid() {
		return nil, false, nil
	}
	// What the fake client refuses, it answers: checked before anything
	// is taken over.
	rv := sent.GetResourceVersion()
	if rv == "" || rv != cur.GetResourceVersion() {
		return nil, false, nil
	}
	n, perr := strconv.ParseUint(rv, 10, 64)
	if perr != nil || (!status && !deletionTimestampEqual(sent, cur)) {
		return nil, false, nil
	}
	out := sent
	if status {
		out = cur
		curStatus.Set(sentStatus)
		out.SetManagedFields(sent.GetManagedFields())
	} else {
		sentStatus.Set(curStatus)
	}
	out.SetResourceVersion(strconv.FormatUint(n+1, 10))
	gvr, _ := meta.UnsafeGuessKindToResource(gvk)
	if !out.GetDeletionTimestamp().IsZero() && len(out.GetFinalizers()) == 0 {
		err = w.tracker.Delete(gvr, out.GetNamespace(), out.GetName())
	} else {
		err = w.tracker.Update(gvr, out, out.GetNamespace())
	}
	if err != nil {
		return nil, true, err
	}
	out.SetManagedFields(nil)
	out.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	return out, true, nil
}

// statusField is obj's Status field, settable.
func statusField(obj client.Object) reflect.Value {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return v.Elem().FieldByName("Status")
}

// deletionTimestampEqual is the fake client's test of the
// deletionTimestamp's immutability: both unset, or set less than a second
// apart.
func deletionTimestampEqual(a, b client.Object) bool {
	ta, tb := a.GetDeletionTimestamp(), b.GetDeletionTimestamp()
	if ta == nil || tb == nil {
		return ta == tb
	}
	return ta.Sub(tb.Time).Abs() < time.Second
}
