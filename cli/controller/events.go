package controller

import (
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/coffer-csi/coffer/secretsync"
)

// Events returns client-go's event recorder for the controller's events:
// an EventBroadcaster whose correlator aggregates similar events, counts
// repeats into one Event (a patch) and holds each object to a token
// bucket (the spam filter), writing through the API with client-go's
// retries. scheme must know the objects events are recorded on. stop
// shuts the broadcaster down; events still queued then are dropped, as
// client-go drops them.
func Events(rc *rest.Config, scheme *runtime.Scheme, source corev1.EventSource, _ *slog.Logger) (secretsync.EventRecorder, func(), error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	rec, stop := newRecorder(cs.CoreV1(), scheme, source)
	return rec, stop, nil
}

// newRecorder records events through events, client-go's typed client.
func newRecorder(events typedcorev1.EventsGetter, scheme *runtime.Scheme, source corev1.EventSource) (record.EventRecorder, func()) {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: events.Events("")})
	return b.NewRecorder(scheme, source), b.Shutdown
}
