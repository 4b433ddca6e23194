package controller

import (
	"context"
	"testing"
	"testing/synctest"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/coffer-csi/coffer/internal/kube"
)

// TestEventsCorrelated: the controller's recorder is client-go's: a
// repeated event is one Event whose count grows (the correlator patches
// it), on the object named, from the controller's source.
func TestEventsCorrelated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		scheme, err := kube.Scheme()
		if err != nil {
			t.Fatal(err)
		}
		cs := fake.NewClientset()
		rec, stop := newRecorder(cs.CoreV1(), scheme, corev1.EventSource{Component: "coffer-sync"})
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "team-a", UID: "u1"}}
		for range 3 {
			rec.Eventf(secret, corev1.EventTypeWarning, "SyncFailed", "entry %q: %s", "db", "access denied")
			synctest.Wait()
		}
		stop()
		synctest.Wait()
		events, err := cs.CoreV1().Events("team-a").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(events.Items) != 1 {
			t.Fatalf("%d events, want one counting the repeats: %+v", len(events.Items), events.Items)
		}
		e := events.Items[0]
		if e.Count != 3 || e.InvolvedObject.Kind != "Secret" || e.InvolvedObject.Name != "db" || e.Source.Component != "coffer-sync" || e.Message != `entry "db": access denied` {
			t.Errorf("event: count %d, object %s/%s, source %q, message %q", e.Count, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Source.Component, e.Message)
		}
	})
}
