package kube

import (
	"context"
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// ListWatcher is one resource of the dynamic or the metadata client, in
// one namespace or all.
type ListWatcher[L runtime.Object] interface {
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// NewInformer is an informer on r, whose objects are like example
// (*unstructured.Unstructured, *metav1.PartialObjectMetadata), with no
// periodic resync. It is what client-go's dynamicinformer and
// metadatainformer build, without their shared factories, which link
// client-go's typed informers for every API group (see the package
// comment). Run it with RunWithContext.
//
// client is the client r comes from: it says whether it can stream the
// initial list of a watch (client-go's watch-list, on by default since
// v0.35). client-go's fake clients cannot, and say so; the reflector then
// lists instead of waiting for a bookmark that never comes.
func NewInformer[L runtime.Object](client any, r ListWatcher[L], example runtime.Object) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return r.Watch(ctx, opts)
		},
	}
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, client), example, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// Informer watches one resource in a set of namespaces (or in all): one
// informer per namespace, seen as one. A namespaced install (coffer-controller sync
// --namespaces) has RBAC in those namespaces only, where a list or watch
// of all namespaces would be refused, so each namespace is listed and
// watched on its own, as controller-runtime's multi-namespace cache does
// for ESO's scoped mode.
type Informer struct {
	// byNamespace holds one informer per namespace, or one under
	// metav1.NamespaceAll.
	byNamespace map[string]cache.SharedIndexInformer
	order       []string
}

// NewNamespacedInformer is an informer (see NewInformer) on resource(ns)
// for every namespace of namespaces; none, or metav1.NamespaceAll among
// them, means one informer on all namespaces. Duplicates count once.
// client is the client the resources come from (see NewInformer).
func NewNamespacedInformer[L runtime.Object](client any, namespaces []string, resource func(namespace string) ListWatcher[L], example runtime.Object) *Informer {
	inf := &Informer{byNamespace: map[string]cache.SharedIndexInformer{}}
	if len(namespaces) == 0 || slices.Contains(namespaces, metav1.NamespaceAll) {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		if _, dup := inf.byNamespace[ns]; dup {
			continue
		}
		inf.byNamespace[ns] = NewInformer(client, resource(ns), example)
		inf.order = append(inf.order, ns)
	}
	return inf
}

func (i *Informer) each(fn func(cache.SharedIndexInformer) error) error {
	for _, ns := range i.order {
		if err := fn(i.byNamespace[ns]); err != nil {
			return err
		}
	}
	return nil
}

// SetTransform sets f on every namespace's informer (before Run).
func (i *Informer) SetTransform(f cache.TransformFunc) error {
	return i.each(func(inf cache.SharedIndexInformer) error { return inf.SetTransform(f) })
}

// AddEventHandler adds h to every namespace's informer.
func (i *Informer) AddEventHandler(h cache.ResourceEventHandler) error {
	return i.each(func(inf cache.SharedIndexInformer) error {
		_, err := inf.AddEventHandler(h)
		return err
	})
}

// RunWithContext runs every namespace's informer until ctx ends, and
// returns when all have stopped.
func (i *Informer) RunWithContext(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ns := range i.order {
		wg.Go(func() { i.byNamespace[ns].RunWithContext(ctx) })
	}
	wg.Wait()
}

// HasSynced reports whether every namespace's informer has synced.
func (i *Informer) HasSynced() bool {
	for _, inf := range i.byNamespace {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

// informerFor is the informer that holds namespace's objects, or nil when
// namespace is out of scope.
func (i *Informer) informerFor(namespace string) cache.SharedIndexInformer {
	if inf, ok := i.byNamespace[metav1.NamespaceAll]; ok {
		return inf
	}
	return i.byNamespace[namespace]
}

// GetByKey is the cached object of a namespace/name key; an object of a
// namespace out of scope does not exist.
func (i *Informer) GetByKey(key string) (any, bool, error) {
	ns, _, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, false, err
	}
	inf := i.informerFor(ns)
	if inf == nil {
		return nil, false, nil
	}
	return inf.GetIndexer().GetByKey(key)
}

// ByNamespace is every cached object of namespace (none out of scope).
func (i *Informer) ByNamespace(namespace string) ([]any, error) {
	inf := i.informerFor(namespace)
	if inf == nil {
		return nil, nil
	}
	return inf.GetIndexer().ByIndex(cache.NamespaceIndex, namespace)
}
