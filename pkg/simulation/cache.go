package simulation

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// readCache serves reads the way a controller's informer cache does, from
// typed copies of the objects, instead of the fake client's JSON round
// trip per object (which dominated simulation time). Every write goes to
// the fake client, whose result is then copied into the cache, so reads
// always see the latest write, like a cache that is never behind. Lists are
// returned sorted by namespace and name, so that no controller decision can
// depend on map order.
type readCache struct {
	scheme  *runtime.Scheme
	mu      sync.RWMutex
	kinds   map[schema.GroupVersionKind]*kindStore
	indexes map[schema.GroupVersionKind]map[string]client.IndexerFunc
}

type kindStore struct {
	objs map[types.NamespacedName]client.Object
}

func newReadCache(scheme *runtime.Scheme) *readCache {
	return &readCache{scheme: scheme, kinds: map[schema.GroupVersionKind]*kindStore{}, indexes: map[schema.GroupVersionKind]map[string]client.IndexerFunc{}}
}

func (rc *readCache) addIndex(obj client.Object, field string, f client.IndexerFunc) {
	gvk, err := apiutil.GVKForObject(obj, rc.scheme)
	if err != nil {
		panic(err)
	}
	if rc.indexes[gvk] == nil {
		rc.indexes[gvk] = map[string]client.IndexerFunc{}
	}
	rc.indexes[gvk][field] = f
}

// store returns the objects of a kind, loading them from the fake client
// the first time the kind is read or written.
func (rc *readCache) store(ctx context.Context, c client.Client, gvk schema.GroupVersionKind) (*kindStore, error) {
	rc.mu.RLock()
	ks := rc.kinds[gvk]
	rc.mu.RUnlock()
	if ks != nil {
		return ks, nil
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if ks = rc.kinds[gvk]; ks != nil {
		return ks, nil
	}
	list, err := rc.scheme.New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err != nil {
		return nil, err
	}
	if err := c.List(ctx, list.(client.ObjectList)); err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	ks = &kindStore{objs: map[types.NamespacedName]client.Object{}}
	for _, it := range items {
		o := it.(client.Object)
		ks.objs[client.ObjectKeyFromObject(o)] = o
	}
	rc.kinds[gvk] = ks
	return ks, nil
}

// refresh copies the fake client's current version of obj into the cache
// (or drops it when it is gone) after a write.
func (rc *readCache) refresh(ctx context.Context, c client.Client, obj client.Object) error {
	gvk, err := apiutil.GVKForObject(obj, rc.scheme)
	if err != nil {
		return err
	}
	ks, err := rc.store(ctx, c, gvk)
	if err != nil {
		return err
	}
	fresh, err := rc.scheme.New(gvk)
	if err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(obj)
	err = c.Get(ctx, key, fresh.(client.Object))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch {
	case apierrors.IsNotFound(err):
		delete(ks.objs, key)
	case err != nil:
		return err
	default:
		ks.objs[key] = fresh.(client.Object)
	}
	return nil
}

// reload re-reads a whole kind (after DeleteAllOf).
func (rc *readCache) reload(obj client.Object) {
	gvk, err := apiutil.GVKForObject(obj, rc.scheme)
	if err != nil {
		return
	}
	rc.mu.Lock()
	delete(rc.kinds, gvk)
	rc.mu.Unlock()
}

func (rc *readCache) get(ctx context.Context, c client.Client, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	gvk, err := apiutil.GVKForObject(obj, rc.scheme)
	if err != nil {
		return err
	}
	if _, isUnstructured := obj.(runtime.Unstructured); isUnstructured {
		return c.Get(ctx, key, obj, opts...)
	}
	ks, err := rc.store(ctx, c, gvk)
	if err != nil {
		return err
	}
	rc.mu.RLock()
	stored, ok := ks.objs[key]
	rc.mu.RUnlock()
	if !ok {
		mapping := schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}
		return apierrors.NewNotFound(mapping, key.Name)
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(stored.DeepCopyObject()).Elem())
	return nil
}

func (rc *readCache) list(ctx context.Context, c client.Client, list client.ObjectList, opts ...client.ListOption) error {
	if _, isUnstructured := list.(runtime.Unstructured); isUnstructured {
		return c.List(ctx, list, opts...)
	}
	gvk, err := apiutil.GVKForObject(list, rc.scheme)
	if err != nil {
		return err
	}
	gvk.Kind = gvk.Kind[:len(gvk.Kind)-len("List")]
	ks, err := rc.store(ctx, c, gvk)
	if err != nil {
		return err
	}
	lo := client.ListOptions{}
	lo.ApplyOptions(opts)
	var fieldReqs []fields.Requirement
	if lo.FieldSelector != nil {
		fieldReqs = lo.FieldSelector.Requirements()
		for _, r := range fieldReqs {
			if r.Operator != selection.Equals && r.Operator != selection.DoubleEquals {
				return fmt.Errorf("field selector %s is not supported (only key=value)", lo.FieldSelector)
			}
			if rc.indexes[gvk][r.Field] == nil {
				return fmt.Errorf("no index for field %q of %s", r.Field, gvk.Kind)
			}
		}
	}
	rc.mu.RLock()
	keys := make([]types.NamespacedName, 0, len(ks.objs))
	for k := range ks.objs {
		if lo.Namespace == "" || k.Namespace == lo.Namespace {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Namespace != keys[j].Namespace {
			return keys[i].Namespace < keys[j].Namespace
		}
		return keys[i].Name < keys[j].Name
	})
	items := make([]runtime.Object, 0, len(keys))
	for _, k := range keys {
		o := ks.objs[k]
		if lo.LabelSelector != nil && !lo.LabelSelector.Matches(labels.Set(o.GetLabels())) {
			continue
		}
		if !matchFields(rc.indexes[gvk], fieldReqs, o) {
			continue
		}
		if lo.UnsafeDisableDeepCopy != nil && *lo.UnsafeDisableDeepCopy {
			items = append(items, o)
		} else {
			items = append(items, o.DeepCopyObject())
		}
	}
	rc.mu.RUnlock()
	return meta.SetList(list, items)
}

func matchFields(idx map[string]client.IndexerFunc, reqs []fields.Requirement, o client.Object) bool {
	for _, r := range reqs {
		found := false
		for _, v := range idx[r.Field](o) {
			if v == r.Value {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
