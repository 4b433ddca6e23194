package kube

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/tools/cache"
)

// TestNamespacedInformer: an informer scoped to namespaces lists and
// watches each of them, never all namespaces (which namespaced RBAC
// refuses), and sees nothing of the others.
func TestNamespacedInformer(t *testing.T) {
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	obj := func(ns, name string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	scheme := metadatafake.NewTestScheme()
	metav1.AddMetaToScheme(scheme)
	for _, tc := range []struct {
		name       string
		namespaces []string
		// watched: the namespaces listed and watched ("" is all).
		watched []string
		seen    []string
	}{
		{"two namespaces", []string{"team-a", "team-b"}, []string{"team-a", "team-b"}, []string{"team-a/x", "team-b/y"}},
		{"a namespace twice", []string{"team-a", "team-a"}, []string{"team-a"}, []string{"team-a/x"}},
		{"all", nil, []string{""}, []string{"other/z", "team-a/x", "team-b/y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := metadatafake.NewSimpleMetadataClient(scheme, obj("team-a", "x"), obj("team-b", "y"), obj("other", "z"))
			inf := NewNamespacedInformer(md, tc.namespaces, func(ns string) ListWatcher[*metav1.PartialObjectMetadataList] {
				return md.Resource(gvr).Namespace(ns)
			}, &metav1.PartialObjectMetadata{})
			var mu sync.Mutex
			var seen []string
			if err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
				m := o.(metav1.Object)
				mu.Lock()
				seen = append(seen, m.GetNamespace()+"/"+m.GetName())
				mu.Unlock()
			}}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); inf.RunWithContext(ctx) }()
			if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
				t.Fatal("not synced")
			}
			cancel()
			<-done

			listed := map[string]bool{}
			for _, a := range md.Actions() {
				if a.GetVerb() == "list" || a.GetVerb() == "watch" {
					listed[a.GetNamespace()] = true
				}
			}
			var got []string
			for ns := range listed {
				got = append(got, ns)
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.watched) {
				t.Errorf("listed and watched namespaces %q, want %q", got, tc.watched)
			}
			mu.Lock()
			sort.Strings(seen)
			if !slices.Equal(seen, tc.seen) {
				t.Errorf("handlers saw %q, want %q", seen, tc.seen)
			}
			mu.Unlock()
			for _, key := range []string{"team-a/x", "other/z"} {
				_, exists, err := inf.GetByKey(key)
				want := len(tc.namespaces) == 0 || key == "team-a/x"
				if err != nil || exists != want {
					t.Errorf("GetByKey(%s): exists %v (%v), want %v", key, exists, err, want)
				}
			}
			if objs, err := inf.ByNamespace("other"); err != nil || (len(objs) == 1) != (len(tc.namespaces) == 0) {
				t.Errorf("ByNamespace(other): %d objects (%v)", len(objs), err)
			}
		})
	}
}
