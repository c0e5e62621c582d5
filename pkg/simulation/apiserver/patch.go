package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"unsafe"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// mergePatch applies a JSON merge patch (RFC 7386, what client.MergeFrom
// sends) the way the API server defines PATCH: read the stored object,
// merge the patch into it, and write the result back with the
// resourceVersion that results (the stored one, unless the patch sets one:
// optimistic locking) through an update of the resource or, for a status
// patch, of its status subresource. The update is the typed writer's
// (typedWriter.update: the fake client's update semantics without its
// JSON round trips through maps) or, where that leaves the answer to the
// fake client (a conflict, an immutable field, a kind without a status
// subresource), the fake client's own update, so resourceVersions, status
// subresources, the deletionTimestamp's immutability and the deletion of an
// object that is left deleting without finalizers behave as for an update.
// obj receives the written object. A failed step writes nothing, and the
// fake client's Patch of the same patch then runs: its conflicts (an
// optimistic patch, a write that overlapped the read) and errors are the
// answer.
//
// When the patch is client.MergeFrom's and its base serializes exactly as
// the stored object does (the caller read the current version and changed
// only obj since), the merge of the patch into the stored object is obj's
// own serialization (a merge patch from A to B applied to A gives B, up to
// null fields, which decode as absent ones do), so that is decoded
// directly, without computing the patch and merging it.
//
// The fake client's Patch does the same with the patch applied twice (a
// dry run to validate, then through client-go's object reaction) and two
// call-stack dumps per call; this is that work once. handled is false for
// other patch types, which the caller leaves to the fake client.
func mergePatch(ctx context.Context, c client.Client, rc *readCache, w *typedWriter, obj client.Object, patch client.Patch, status bool) (handled bool, err error) {
	if patch.Type() != types.MergePatchType {
		return false, nil
	}
	// Whatever goes wrong has written nothing: the fake client's Patch of
	// the same patch then decides (and words the error).
	asFake := func() (bool, error) {
		return true, patchAsFake(ctx, c, obj, patch, status)
	}
	cur := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
	if rc.get(ctx, c, client.ObjectKeyFromObject(obj), cur) != nil {
		return asFake()
	}
	stored, err := json.Marshal(cur)
	if err != nil {
		return asFake()
	}
	var merged []byte
	if from, optimistic, ok := mergeFromBase(patch); ok && (!optimistic || from.GetResourceVersion() != "") && serializesAs(from, stored) {
		modified := obj
		if optimistic {
			// What client.MergeFrom's Data sends: the base's version.
			modified = obj.DeepCopyObject().(client.Object)
			modified.SetResourceVersion(from.GetResourceVersion())
		}
		if merged, err = json.Marshal(modified); err != nil {
			return asFake()
		}
	} else {
		data, err := patch.Data(obj)
		if err != nil {
			return true, err
		}
		if merged, err = jsonpatch.MergePatch(stored, data); err != nil {
			return asFake()
		}
	}
	result := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
	if utiljson.Unmarshal(merged, result) != nil {
		return asFake()
	}
	written, ok, err := w.update(cur, result, status)
	switch {
	case ok && err != nil:
		return true, err
	case ok:
		result = written
	case status:
		err = c.Status().Update(ctx, result)
	default:
		err = c.Update(ctx, result)
	}
	if err != nil {
		return asFake()
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(result).Elem())
	return true, nil
}

// serializesAs reports whether obj's JSON is want.
func serializesAs(obj client.Object, want []byte) bool {
	got, err := json.Marshal(obj)
	return err == nil && bytes.Equal(got, want)
}

// mergeFromBase returns the base object of a client.MergeFrom patch and
// whether it locks optimistically. controller-runtime keeps both in
// unexported fields of its patch type (v0.24: mergeFromPatch.from and
// .opts.OptimisticLock); ok is false for any other patch, or if a later
// controller-runtime names them otherwise (TestMergeFromBase fails then),
// and the patch is then computed and merged as sent.
func mergeFromBase(patch client.Patch) (from client.Object, optimistic bool, ok bool) {
	v := reflect.ValueOf(patch)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct || v.Elem().Type().Name() != "mergeFromPatch" ||
		v.Elem().Type().PkgPath() != "sigs.k8s.io/controller-runtime/pkg/client" {
		return nil, false, false
	}
	s := v.Elem()
	f, o := s.FieldByName("from"), s.FieldByName("opts")
	if !f.IsValid() || !o.IsValid() || o.Kind() != reflect.Struct {
		return nil, false, false
	}
	lock := o.FieldByName("OptimisticLock")
	if !lock.IsValid() || lock.Kind() != reflect.Bool {
		return nil, false, false
	}
	base, isObject := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(client.Object)
	if !isObject || base == nil || reflect.ValueOf(base).IsNil() {
		return nil, false, false
	}
	return base, lock.Bool(), true
}

// patchAsFake is the fake client's own Patch.
func patchAsFake(ctx context.Context, c client.Client, obj client.Object, patch client.Patch, status bool) error {
	if status {
		return c.Status().Patch(ctx, obj, patch)
	}
	return c.Patch(ctx, obj, patch)
}
