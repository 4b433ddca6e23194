package secretsync

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/coffer-csi/coffer/internal/kube"
)

var secretsResource = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// secretWatchTimeout is how long the Secret watch may take to start before
// the controller says it is running without it.
const secretWatchTimeout = 30 * time.Second

// secretWatch is the running watch of Secrets' metadata.
type secretWatch struct{ done chan struct{} }

func (w secretWatch) wait() { <-w.done }

// watchSecrets starts an informer on the metadata of Secrets in the
// controller's namespaces (PartialObjectMetadata: no value is ever sent or
// cached) that keeps only each Secret's name, and retries the classes that
// wait for a Secret when it changes. It does not hold up the controller: if
// it cannot list Secrets (RBAC), it says so and entries are retried with
// backoff instead.
func (c *Controller) watchSecrets(ctx context.Context) (secretWatch, error) {
	inf := kube.NewInformer(c.Metadata.Resource(secretsResource).Namespace(c.namespace()), &metav1.PartialObjectMetadata{})
	// A Secret's name and namespace are all coffer needs to know of it:
	// labels, annotations and managed fields are not kept.
	if err := inf.SetTransform(func(obj any) (any, error) {
		if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
			return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
				Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			}}, nil
		}
		return obj, nil
	}); err != nil {
		return secretWatch{}, fmt.Errorf("watching Secrets: %w", err)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.secretChanged,
		UpdateFunc: func(_, obj any) { c.secretChanged(obj) },
		DeleteFunc: c.secretChanged,
	}); err != nil {
		return secretWatch{}, fmt.Errorf("watching Secrets: %w", err)
	}
	w := secretWatch{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		inf.RunWithContext(ctx)
	}()
	go func() {
		wctx, cancel := context.WithTimeout(ctx, secretWatchTimeout)
		defer cancel()
		if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) && ctx.Err() == nil {
			c.logger().Warn("secret sync: watching Secrets' metadata has not started (RBAC: coffer sync needs list and watch on secrets); an entry waiting for its Secret is retried with backoff, at most every refreshInterval", "namespace", c.namespace())
		}
	}()
	return w, nil
}
