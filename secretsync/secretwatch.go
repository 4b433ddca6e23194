package secretsync

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"

	"github.com/coffer-csi/coffer/internal/kube"
)

var secretsResource = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// secretWatchTimeout is how long the Secret watch may take to start before
// the controller says it is running without it.
const secretWatchTimeout = 30 * time.Second

// SecretMetadata is one informer on the metadata of Secrets in some
// namespaces (or all), shared by the controllers of one process: the sync controller
// retries an entry that waits for its Secret, the restart controller rolls
// the workloads that consume a Secret coffer syncs. It lists
// PartialObjectMetadata, so no value is ever sent or cached, and keeps of
// each Secret only its name, namespace, UID, resourceVersion and coffer's
// content hash (AnnotationContentHash).
type SecretMetadata struct {
	informer *kube.Informer
	started  atomic.Bool
}

// NewSecretMetadata returns the informer, not yet running.
// namespaces are those of Controller.Namespaces (none: all).
func NewSecretMetadata(md metadata.Interface, namespaces []string) (*SecretMetadata, error) {
	inf := kube.NewNamespacedInformer(md, namespaces, func(ns string) kube.ListWatcher[*metav1.PartialObjectMetadataList] {
		return md.Resource(secretsResource).Namespace(ns)
	}, &metav1.PartialObjectMetadata{})
	if err := inf.SetTransform(stripSecret); err != nil {
		return nil, fmt.Errorf("watching Secrets: %w", err)
	}
	return &SecretMetadata{informer: inf}, nil
}

// stripSecret keeps what either controller reads of a Secret.
func stripSecret(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
	}}
	if h, ok := m.Annotations[AnnotationContentHash]; ok {
		out.Annotations = map[string]string{AnnotationContentHash: h}
	}
	return out, nil
}

// Informer is the shared informer, for handlers and its cache.
func (s *SecretMetadata) Informer() *kube.Informer { return s.informer }

// Run runs the informer until ctx ends. Only the first call runs it; the
// others return at once (every controller of the process calls Run: one
// list and one watch serve them all).
func (s *SecretMetadata) Run(ctx context.Context) {
	if s.started.CompareAndSwap(false, true) {
		s.informer.RunWithContext(ctx)
	}
}

// secretWatch is the running watch of Secrets' metadata.
type secretWatch struct{ done chan struct{} }

func (w secretWatch) wait() { <-w.done }

// watchSecrets runs the informer on the metadata of Secrets (c.Secrets)
// and retries the classes that wait for a Secret when it changes. It does not hold up the controller: if
// it cannot list Secrets (RBAC), it says so and entries are retried with
// backoff instead.
func (c *Controller) watchSecrets(ctx context.Context) (secretWatch, error) {
	inf := c.Secrets.Informer()
	if err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.secretChanged,
		UpdateFunc: func(_, obj any) { c.secretChanged(obj) },
		DeleteFunc: c.secretChanged,
	}); err != nil {
		return secretWatch{}, fmt.Errorf("watching Secrets: %w", err)
	}
	w := secretWatch{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		c.Secrets.Run(ctx)
	}()
	go func() {
		wctx, cancel := context.WithTimeout(ctx, secretWatchTimeout)
		defer cancel()
		if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) && ctx.Err() == nil {
			c.logger().Warn("secret sync: watching Secrets' metadata has not started (RBAC: coffer-controller sync needs list and watch on secrets); an entry waiting for its Secret is retried with backoff, at most every refreshInterval", "namespaces", c.namespaces())
		}
	}()
	return w, nil
}
