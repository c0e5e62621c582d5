package apiserver

import (
	"context"
	"encoding/json"
	"reflect"

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
// patch, of its status subresource. It is the fake client's own update
// that writes, so resourceVersions, status subresources, the
// deletionTimestamp's immutability and the deletion of an object that is
// left deleting without finalizers behave as for an update. obj receives
// the written object. A failed step writes nothing, and the fake client's
// Patch of the same data then runs: its conflicts (an optimistic patch, a
// write that overlapped the read) and errors are the answer.
//
// The fake client's Patch does the same with the patch applied twice (a
// dry run to validate, then through client-go's object reaction) and two
// call-stack dumps per call; this is that work once. handled is false for
// other patch types, which the caller leaves to the fake client.
func mergePatch(ctx context.Context, c client.Client, rc *readCache, obj client.Object, patch client.Patch, status bool) (handled bool, err error) {
	if patch.Type() != types.MergePatchType {
		return false, nil
	}
	data, err := patch.Data(obj)
	if err != nil {
		return true, err
	}
	// Whatever goes wrong has written nothing: the fake client's Patch of
	// the same data then decides (and words the error).
	asFake := func() (bool, error) {
		return true, patchAsFake(ctx, c, obj, client.RawPatch(patch.Type(), data), status)
	}
	cur := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
	if rc.get(ctx, c, client.ObjectKeyFromObject(obj), cur) != nil {
		return asFake()
	}
	stored, err := json.Marshal(cur)
	if err != nil {
		return asFake()
	}
	merged, err := jsonpatch.MergePatch(stored, data)
	if err != nil {
		return asFake()
	}
	result := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
	if utiljson.Unmarshal(merged, result) != nil {
		return asFake()
	}
	if status {
		err = c.Status().Update(ctx, result)
	} else {
		err = c.Update(ctx, result)
	}
	if err != nil {
		return asFake()
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(result).Elem())
	return true, nil
}

// patchAsFake is the fake client's own Patch.
func patchAsFake(ctx context.Context, c client.Client, obj client.Object, patch client.Patch, status bool) error {
	if status {
		return c.Status().Patch(ctx, obj, patch)
	}
	return c.Patch(ctx, obj, patch)
}
