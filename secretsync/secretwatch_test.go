package secretsync

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/tools/cache"
)

// TestSecretMetadataIsOneWatchForEveryController: every controller of a
// process runs the shared informer and registers its handler; the API
// server sees one list and one watch, and each handler sees the Secrets.
// Of a Secret it keeps coffer's content hash, nothing else of its
// annotations (kubectl's last-applied-configuration holds the values).
func TestSecretMetadataIsOneWatchForEveryController(t *testing.T) {
	scheme := metadatafake.NewTestScheme()
	metav1.AddMetaToScheme(scheme)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: testNS, UID: "u1", Annotations: map[string]string{
		AnnotationContentHash:                              "v1:abc",
		"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"CANARY-value"}}`,
	}, Labels: map[string]string{"team": "a"}}}
	meta := metadatafake.NewSimpleMetadataClient(scheme, secretMetadata(s))
	secrets, err := NewSecretMetadata(meta, []string{testNS})
	if err != nil {
		t.Fatal(err)
	}
	var seen [2]atomic.Int64
	added := make(chan int, 10)
	for i := range seen {
		if err := secrets.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) {
			seen[i].Add(1)
			added <- i
		}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { secrets.Run(ctx) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), secrets.Informer().HasSynced) {
		t.Fatal("not synced")
	}
	// Each handler sees the Secret once; the rest is checked after Run.
	for range seen {
		select {
		case <-added:
		case <-time.After(10 * time.Second):
			t.Fatal("a handler never saw the Secret")
		}
	}
	cancel()
	wg.Wait()
	if seen[0].Load() != 1 || seen[1].Load() != 1 {
		t.Errorf("handlers saw %d and %d Secrets, want 1 each", seen[0].Load(), seen[1].Load())
	}
	verbs := map[string]int{}
	for _, a := range meta.Actions() {
		verbs[a.GetVerb()]++
	}
	if verbs["list"] != 1 || verbs["watch"] != 1 {
		t.Errorf("API calls %v, want one list and one watch", verbs)
	}
	objs, err := secrets.Informer().ByNamespace(testNS)
	if err != nil || len(objs) != 1 {
		t.Fatalf("%d Secrets cached (%v)", len(objs), err)
	}
	kept := objs[0].(*metav1.PartialObjectMetadata)
	if len(kept.Annotations) != 1 || kept.Annotations[AnnotationContentHash] != "v1:abc" || len(kept.Labels) != 0 || kept.Name != "app" || kept.UID != "u1" {
		t.Errorf("kept %+v", kept.ObjectMeta)
	}
}
