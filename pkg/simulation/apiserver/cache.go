package apiserver

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
//
// A stored object is never modified: a write replaces it with a fresh one.
// So a list with client.UnsafeDisableDeepCopy may hand out the stored
// objects (shallow copies of them: maps and slices are shared and must not
// be written), and the cache keeps each kind's keys sorted and its field
// indexes (value → keys) up to date on every write, so that a list reads
// only what it returns. With reference set, lists scan, sort and match
// every object of the kind instead (the straightforward way; the
// equivalence test compares both).
type readCache struct {
	scheme    *runtime.Scheme
	reference bool
	mu        sync.RWMutex
	kinds     map[schema.GroupVersionKind]*kindStore
	indexes   map[schema.GroupVersionKind]map[string]client.IndexerFunc
	// gvks memoises apiutil.GVKForObject by Go type.
	gvks sync.Map // reflect.Type → schema.GroupVersionKind
}

type kindStore struct {
	objs map[types.NamespacedName]client.Object
	// sorted holds the keys of objs by namespace, then name.
	sorted []types.NamespacedName
	// byField[field][value] holds the keys of the objects the field's
	// indexer maps to value; unindexed[field] those it panicked on (a nil
	// pointer on the way), which every list by that field still considers.
	byField   map[string]map[string]map[types.NamespacedName]struct{}
	unindexed map[string]map[types.NamespacedName]struct{}
}

// indexValues runs an indexer, reporting a panic as !ok.
func indexValues(f client.IndexerFunc, o client.Object) (vals []string, ok bool) {
	defer func() {
		if recover() != nil {
			vals, ok = nil, false
		}
	}()
	return f(o), true
}

func newReadCache(scheme *runtime.Scheme) *readCache {
	return &readCache{scheme: scheme, kinds: map[schema.GroupVersionKind]*kindStore{}, indexes: map[schema.GroupVersionKind]map[string]client.IndexerFunc{}}
}

func keyLess(a, b types.NamespacedName) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

func (rc *readCache) gvkFor(obj runtime.Object) (schema.GroupVersionKind, error) {
	t := reflect.TypeOf(obj)
	if v, ok := rc.gvks.Load(t); ok {
		return v.(schema.GroupVersionKind), nil
	}
	gvk, err := apiutil.GVKForObject(obj, rc.scheme)
	if err != nil {
		return gvk, err
	}
	if _, isUnstructured := obj.(runtime.Unstructured); !isUnstructured {
		rc.gvks.Store(t, gvk)
	}
	return gvk, nil
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

// put stores o under key (replacing any previous version), keeping the
// sorted keys and field indexes current. Called with rc.mu held for
// writing.
func (rc *readCache) put(gvk schema.GroupVersionKind, ks *kindStore, key types.NamespacedName, o client.Object) {
	if old, ok := ks.objs[key]; ok {
		rc.unindex(gvk, ks, key, old)
	} else {
		i := sort.Search(len(ks.sorted), func(i int) bool { return !keyLess(ks.sorted[i], key) })
		ks.sorted = append(ks.sorted, types.NamespacedName{})
		copy(ks.sorted[i+1:], ks.sorted[i:])
		ks.sorted[i] = key
	}
	ks.objs[key] = o
	for field, f := range rc.indexes[gvk] {
		vals := ks.byField[field]
		if vals == nil {
			vals = map[string]map[types.NamespacedName]struct{}{}
			ks.byField[field] = vals
		}
		vs, ok := indexValues(f, o)
		if !ok {
			if ks.unindexed[field] == nil {
				ks.unindexed[field] = map[types.NamespacedName]struct{}{}
			}
			ks.unindexed[field][key] = struct{}{}
		}
		for _, v := range vs {
			if vals[v] == nil {
				vals[v] = map[types.NamespacedName]struct{}{}
			}
			vals[v][key] = struct{}{}
		}
	}
}

// remove drops key. Called with rc.mu held for writing.
func (rc *readCache) remove(gvk schema.GroupVersionKind, ks *kindStore, key types.NamespacedName) {
	old, ok := ks.objs[key]
	if !ok {
		return
	}
	rc.unindex(gvk, ks, key, old)
	delete(ks.objs, key)
	i := sort.Search(len(ks.sorted), func(i int) bool { return !keyLess(ks.sorted[i], key) })
	if i < len(ks.sorted) && ks.sorted[i] == key {
		ks.sorted = append(ks.sorted[:i], ks.sorted[i+1:]...)
	}
}

func (rc *readCache) unindex(gvk schema.GroupVersionKind, ks *kindStore, key types.NamespacedName, old client.Object) {
	for field, f := range rc.indexes[gvk] {
		delete(ks.unindexed[field], key)
		vals := ks.byField[field]
		vs, _ := indexValues(f, old)
		for _, v := range vs {
			if set := vals[v]; set != nil {
				delete(set, key)
				if len(set) == 0 {
					delete(vals, v)
				}
			}
		}
	}
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
	ks = &kindStore{objs: map[types.NamespacedName]client.Object{}, byField: map[string]map[string]map[types.NamespacedName]struct{}{},
		unindexed: map[string]map[types.NamespacedName]struct{}{}}
	for _, it := range items {
		o := it.(client.Object)
		rc.put(gvk, ks, client.ObjectKeyFromObject(o), o)
	}
	rc.kinds[gvk] = ks
	return ks, nil
}

// storeFor returns the kind of obj and its store.
func (rc *readCache) storeFor(ctx context.Context, c client.Client, obj client.Object) (schema.GroupVersionKind, *kindStore, error) {
	gvk, err := rc.gvkFor(obj)
	if err != nil {
		return gvk, nil, err
	}
	ks, err := rc.store(ctx, c, gvk)
	return gvk, ks, err
}

// refresh copies the fake client's current version of obj into the cache
// (or drops it when it is gone) after a write.
func (rc *readCache) refresh(ctx context.Context, c client.Client, obj client.Object) error {
	gvk, ks, err := rc.storeFor(ctx, c, obj)
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
		rc.remove(gvk, ks, key)
	case err != nil:
		return err
	default:
		rc.put(gvk, ks, key, fresh.(client.Object))
	}
	return nil
}

// keep puts a copy of obj, the stored version the fake client has just
// returned from a write, into the cache (drops it when gone). The caller
// holds the write lock, so obj is still the stored version.
func (rc *readCache) keep(ctx context.Context, c client.Client, obj client.Object, gone bool) error {
	gvk, ks, err := rc.storeFor(ctx, c, obj)
	if err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(obj)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if gone {
		rc.remove(gvk, ks, key)
	} else {
		rc.put(gvk, ks, key, obj.DeepCopyObject().(client.Object))
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
	if _, isUnstructured := obj.(runtime.Unstructured); isUnstructured {
		return c.Get(ctx, key, obj, opts...)
	}
	gvk, ks, err := rc.storeFor(ctx, c, obj)
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
	gvk, err := rc.gvkFor(list)
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
	var keys []types.NamespacedName
	switch {
	case rc.reference:
		keys = make([]types.NamespacedName, 0, len(ks.objs))
		for k := range ks.objs {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	case len(fieldReqs) > 0:
		// The first requirement's index holds every candidate; matchFields
		// below checks them all against every requirement.
		set := ks.byField[fieldReqs[0].Field][fieldReqs[0].Value]
		odd := ks.unindexed[fieldReqs[0].Field]
		keys = make([]types.NamespacedName, 0, len(set)+len(odd))
		for k := range set {
			keys = append(keys, k)
		}
		for k := range odd {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	default:
		keys = ks.sorted
	}
	items := make([]runtime.Object, 0, len(keys))
	for _, k := range keys {
		if lo.Namespace != "" && k.Namespace != lo.Namespace {
			continue
		}
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
