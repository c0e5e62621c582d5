package apiserver

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// patcher applies a patch as controller-runtime's fake client does
// (v0.24: fakeClient.patch, dryPatch, versionedTracker.Patch and
// updateObject over client-go's objectTrackerReact.Patch), step for step on
// the same object tracker with the same JSON package, but applying the
// patch once instead of twice (the fake client applies it once to check
// that the deletion timestamp is unchanged and again to store it), copying
// the status in one JSON round trip instead of its two or four (through
// maps; see below) and without reading the call stack (which the fake client does to tell a
// status patch from a patch, and a patch from an update). It handles only
// typed objects of the kinds NewClient registers a status subresource for,
// merge, JSON and strategic merge patches, and no options; the caller holds
// the write lock (NewClient serialises writes), as the fake client holds
// its tracker's write lock. Reference reads (readCache.reference) use the
// fake client's own patch, so the equivalence tests compare the two.
type patcher struct {
	tracker clienttesting.ObjectTracker
	kinds   map[schema.GroupVersionKind]bool
}

// patch reports handled=false when it does not apply (the fake client must
// patch), else the result of the patch (obj holds the stored object, as the
// fake client leaves it).
func (p *patcher) patch(rc *readCache, obj client.Object, patch client.Patch, isStatus bool) (handled bool, _ error) {
	switch patch.Type() {
	case types.MergePatchType, types.JSONPatchType, types.StrategicMergePatchType:
	default:
		return false, nil
	}
	if _, u := obj.(runtime.Unstructured); u {
		return false, nil
	}
	if _, partial := obj.(*metav1.PartialObjectMetadata); partial {
		return false, nil
	}
	gvk, err := rc.gvkFor(obj)
	if err != nil || !p.kinds[gvk] {
		return false, nil
	}
	gvr, _ := meta.UnsafeGuessKindToResource(gvk)
	ns, name := obj.GetNamespace(), obj.GetName()

	// fakeClient.patch: the stored object, the patch.
	oldObj, err := p.tracker.Get(gvr, ns, name)
	if err != nil {
		return true, err
	}
	oldAccessor, err := meta.Accessor(oldObj)
	if err != nil {
		return true, err
	}
	data, err := patch.Data(obj)
	if err != nil {
		return true, err
	}

	// dryPatch and objectTrackerReact.Patch: the patch applied to a copy
	// of the stored object (both compute this same object).
	patched, err := p.tracker.Get(gvr, ns, name)
	if err != nil {
		return true, err
	}
	old, err := json.Marshal(patched)
	if err != nil {
		return true, err
	}
	value := reflect.ValueOf(patched)
	value.Elem().Set(reflect.New(value.Type().Elem()).Elem())
	switch patch.Type() {
	case types.JSONPatchType:
		jp, err := jsonpatch.DecodePatch(data)
		if err != nil {
			return true, err
		}
		modified, err := jp.Apply(old)
		if err != nil {
			return true, err
		}
		if err = json.Unmarshal(modified, patched); err != nil {
			return true, err
		}
	case types.MergePatchType:
		modified, err := jsonpatch.MergePatch(old, data)
		if err != nil {
			return true, err
		}
		if err := json.Unmarshal(modified, patched); err != nil {
			return true, err
		}
	case types.StrategicMergePatchType:
		mergedByte, err := strategicpatch.StrategicMergePatch(old, data, patched)
		if err != nil {
			return true, err
		}
		if err = json.Unmarshal(mergedByte, patched); err != nil {
			return true, err
		}
	}
	newObj, err := meta.Accessor(patched)
	if err != nil {
		return true, err
	}
	if !deletionTimestampEqual(newObj, oldAccessor) {
		return true, fmt.Errorf("rejected patch, metadata.deletionTimestamp immutable")
	}

	// versionedTracker.Patch and updateObject.
	accessor := newObj
	oldObject, err := p.tracker.Get(gvr, ns, accessor.GetName())
	if err != nil {
		return true, err
	}
	// The status copies: the fake client goes through maps
	// (copyStatusFrom, copyFrom: the JSON of both objects decoded into
	// maps, the status subtree moved, the map encoded and decoded into the
	// object; for a status patch twice). The JSON document is the same
	// (but for key order) as that of a shallow copy of the object with the
	// other's status, and decoding a document twice in a row gives what
	// decoding it once gives, so one round trip of that copy is the same
	// object. (For a status patch the fake client's old object is then
	// that round trip too; what is read of it below, the resource version
	// and the deletion timestamp within a second, is unchanged by it.)
	if isStatus { // everything but status, managedFields and metadata.ResourceVersion from the stored object
		passedRV := accessor.GetResourceVersion()
		passedManagedFields := accessor.GetManagedFields()
		if err := roundTrip(withStatusOf(oldObject, patched), patched); err != nil {
			return true, fmt.Errorf("failed to restore non-status fields: %w", err)
		}
		accessor.SetResourceVersion(passedRV)
		accessor.SetManagedFields(passedManagedFields)
	} else { // the status from the stored object
		if err := roundTrip(withStatusOf(patched, oldObject), patched); err != nil {
			return true, fmt.Errorf("failed to copy the status for object with status subresource: %w", err)
		}
	}
	oldAccessor, err = meta.Accessor(oldObject)
	if err != nil {
		return true, err
	}
	if accessor.GetResourceVersion() == "" {
		// The fake client takes the stored version for a patch.
		accessor.SetResourceVersion(oldAccessor.GetResourceVersion())
	}
	if accessor.GetResourceVersion() != oldAccessor.GetResourceVersion() {
		return true, apierrors.NewConflict(gvr.GroupResource(), accessor.GetName(), errors.New("object was modified"))
	}
	if oldAccessor.GetResourceVersion() == "" {
		oldAccessor.SetResourceVersion("0")
	}
	intResourceVersion, err := strconv.ParseUint(oldAccessor.GetResourceVersion(), 10, 64)
	if err != nil {
		return true, fmt.Errorf("can not convert resourceVersion %q to int: %w", oldAccessor.GetResourceVersion(), err)
	}
	intResourceVersion++
	accessor.SetResourceVersion(strconv.FormatUint(intResourceVersion, 10))
	if !deletionTimestampEqual(accessor, oldAccessor) {
		return true, fmt.Errorf("error: Unable to edit %s: metadata.deletionTimestamp field is immutable", accessor.GetName())
	}
	if !accessor.GetDeletionTimestamp().IsZero() && len(accessor.GetFinalizers()) == 0 {
		if err := p.tracker.Delete(gvr, accessor.GetNamespace(), accessor.GetName(), metav1.DeleteOptions{}); err != nil {
			return true, err
		}
	} else if err := p.tracker.Patch(gvr, patched, ns, metav1.PatchOptions{}); err != nil {
		return true, err
	}

	// fakeClient.patch: obj becomes the stored object.
	ta, err := meta.TypeAccessor(patched)
	if err != nil {
		return true, err
	}
	ta.SetAPIVersion(gvk.GroupVersion().String())
	ta.SetKind(gvk.Kind)
	j, err := json.Marshal(patched)
	if err != nil {
		return true, err
	}
	zero(obj)
	if err := json.Unmarshal(j, obj); err != nil {
		return true, err
	}
	obj.SetManagedFields(nil)
	ota, err := meta.TypeAccessor(obj)
	if err != nil {
		return true, err
	}
	ota.SetKind("")
	ota.SetAPIVersion("")
	return true, nil
}

// deletionTimestampEqual and zero are the fake client's
// (pkg/client/fake/client.go), verbatim.

func deletionTimestampEqual(newObj metav1.Object, obj metav1.Object) bool {
	newTime := newObj.GetDeletionTimestamp()
	oldTime := obj.GetDeletionTimestamp()

	if newTime == nil || oldTime == nil {
		return newTime == oldTime
	}
	return newTime.Time.Sub(oldTime.Time).Abs() < time.Second
}

// withStatusOf is a shallow copy of obj (a pointer to a struct with a
// Status field, as every status-subresource kind is) with from's Status.
func withStatusOf(obj, from runtime.Object) runtime.Object {
	v := reflect.New(reflect.TypeOf(obj).Elem())
	v.Elem().Set(reflect.ValueOf(obj).Elem())
	v.Elem().FieldByName("Status").Set(reflect.ValueOf(from).Elem().FieldByName("Status"))
	return v.Interface().(runtime.Object)
}

// roundTrip makes target the JSON round trip of src.
func roundTrip(src, target runtime.Object) error {
	b, err := json.Marshal(src)
	if err != nil {
		return fmt.Errorf("failed to serialize: %w", err)
	}
	zero(target)
	if err := json.Unmarshal(b, target); err != nil {
		return fmt.Errorf("failed to deserialize: %w", err)
	}
	return nil
}

func zero(x any) {
	if x == nil {
		return
	}
	res := reflect.ValueOf(x).Elem()
	res.Set(reflect.Zero(res.Type()))
}
