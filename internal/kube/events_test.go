package kube

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// eventStore records the Events written, and can hold writes back.
type eventStore struct {
	mu      sync.Mutex
	created []*corev1.Event
	patches []string
	gate    chan struct{}
}

func (s *eventStore) Events(string) EventInterface { return s }

func (s *eventStore) Create(_ context.Context, e *corev1.Event, _ metav1.CreateOptions) (*corev1.Event, error) {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created = append(s.created, e.DeepCopy())
	return e, nil
}

func (s *eventStore) Patch(_ context.Context, name string, _ types.PatchType, data []byte, _ metav1.PatchOptions, _ ...string) (*corev1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.patches = append(s.patches, name+" "+string(data))
	return &corev1.Event{}, nil
}

func (s *eventStore) counts() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.created), len(s.patches)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var spc = &corev1.ObjectReference{APIVersion: "secrets-store.csi.x-k8s.io/v1", Kind: "SecretProviderClass", Namespace: "team", Name: "db", UID: "u1"}

func TestRecorderWritesRepeatsAndLimits(t *testing.T) {
	store := &eventStore{}
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	r := NewRecorder(store, nil, RecorderOptions{Source: corev1.EventSource{Component: "coffer-sync"}, now: c.now})
	r.Eventf(spc, corev1.EventTypeNormal, "Created", "Secret %q created", "db")
	r.Eventf(spc, corev1.EventTypeNormal, "Created", "Secret %q created", "db")
	// An object that carries its kind.
	pod := &unstructured.Unstructured{}
	pod.SetAPIVersion("v1")
	pod.SetKind("Pod")
	pod.SetNamespace("team")
	pod.SetName("web-0")
	r.Eventf(pod, corev1.EventTypeNormal, "SecretsRotated", "rotated")
	// A typed object read from the API names no kind: the scheme does.
	s, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	typedStore := &eventStore{}
	r2 := NewRecorder(typedStore, s, RecorderOptions{Source: corev1.EventSource{Component: "coffer-sync"}, now: c.now})
	r2.Eventf(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "web", UID: "d1"}}, corev1.EventTypeNormal, "RestartedOnRotation", "restarted")
	r2.Shutdown(context.Background())
	if len(typedStore.created) != 1 || typedStore.created[0].InvolvedObject.Kind != "Deployment" || typedStore.created[0].InvolvedObject.APIVersion != "apps/v1" {
		t.Errorf("a typed Deployment's event: %+v", typedStore.created)
	}
	// One that does not is refused, not written half-named.
	r.Eventf(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kindless"}}, corev1.EventTypeNormal, "X", "y")
	r.Shutdown(context.Background())
	created, patched := store.counts()
	if created != 2 || patched != 1 {
		t.Fatalf("%d created, %d patched; want 2 and 1 (the repeat counted)", created, patched)
	}
	first := store.created[0]
	if first.InvolvedObject != *spc || first.Reason != "Created" || first.Message != `Secret "db" created` || first.Source.Component != "coffer-sync" || first.Namespace != "team" || !strings.HasPrefix(first.Name, "db.") {
		t.Errorf("event %+v", first)
	}
	if !strings.Contains(store.patches[0], `"count":2`) {
		t.Errorf("repeat patch %q", store.patches[0])
	}
	if io := store.created[1].InvolvedObject; io.Kind != "Pod" || io.APIVersion != "v1" || io.Name != "web-0" {
		t.Errorf("pod event names %+v", io)
	}
	// After Shutdown, events are dropped without a panic.
	r.Eventf(spc, corev1.EventTypeNormal, "Late", "late")

	// A flapping object: at most Burst events, then one per Refill.
	store = &eventStore{}
	r = NewRecorder(store, nil, RecorderOptions{Source: corev1.EventSource{Component: "coffer"}, now: c.now})
	for i := range 3 * Burst {
		r.Eventf(spc, corev1.EventTypeWarning, "SyncFailed", "attempt %d", i)
	}
	// Wait until the worker has taken every queued event, then a little
	// more for the last one it took.
	for deadline := time.Now().Add(10 * time.Second); len(r.queue) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if created, _ := store.counts(); created >= Burst {
			break
		}
	}
	if created, _ := store.counts(); created != Burst {
		t.Errorf("a flapping object got %d events, want %d", created, Burst)
	}
	c.add(Refill)
	r.Eventf(spc, corev1.EventTypeWarning, "SyncFailed", "attempt %d", 3*Burst)
	r.Eventf(spc, corev1.EventTypeWarning, "SyncFailed", "attempt %d", 3*Burst+1)
	r.Shutdown(context.Background())
	if created, _ := store.counts(); created != Burst+1 {
		t.Errorf("after %v the object got %d events in all, want %d (one more)", Refill, created, Burst+1)
	}
}

// TestRecorderNeverBlocks: with the API server stuck, Eventf still
// returns at once; the queue is bounded and the excess is dropped and
// logged.
func TestRecorderNeverBlocks(t *testing.T) {
	store := &eventStore{gate: make(chan struct{})}
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	var out outcomes
	r := NewRecorder(store, nil, RecorderOptions{Source: corev1.EventSource{Component: "coffer"}, Logger: logger, Outcome: out.add})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range QueueLength + 50 {
			ref := *spc
			ref.Name = "spc-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
			ref.UID = types.UID(ref.Name + string(rune(i)))
			r.Eventf(&ref, corev1.EventTypeNormal, "Created", "n %d", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Eventf blocked while the API server did not answer")
	}
	close(store.gate)
	r.Shutdown(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "event dropped") {
		t.Error("events beyond the queue were not reported as dropped")
	}
	if created, _ := store.counts(); created > QueueLength+1 {
		t.Errorf("%d events written, more than the queue holds", created)
	}
	if got := out.get(OutcomeDropped); got < 49 {
		t.Errorf("%d events counted as dropped, want at least 49", got)
	}
	r.Eventf(spc, corev1.EventTypeNormal, "Late", "after Shutdown")
	if got := out.get(OutcomeDropped); got < 50 {
		t.Error("an event after Shutdown was not counted as dropped")
	}
}

type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[s]++
}

func (o *outcomes) get(s string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[s]
}

// failingEvents panics on its first create and refuses the second.
type failingEvents struct {
	mu    sync.Mutex
	calls int
	names []string
}

func (f *failingEvents) Events(string) EventInterface { return f }

func (f *failingEvents) Create(_ context.Context, e *corev1.Event, _ metav1.CreateOptions) (*corev1.Event, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.names = append(f.names, e.Name)
	f.mu.Unlock()
	switch n {
	case 1:
		panic("CANARY-event-client-panic")
	case 2:
		return nil, errors.New("events is forbidden")
	}
	return e, nil
}

func (f *failingEvents) Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*corev1.Event, error) {
	return nil, errors.New("not found")
}

// TestRecorderOutcomes: every event's fate reaches Outcome; a panic in the
// API client fails that event and the recorder goes on; an object with
// the longest name still gets a valid event name.
func TestRecorderOutcomes(t *testing.T) {
	f := &failingEvents{}
	var out outcomes
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	r := NewRecorder(f, nil, RecorderOptions{Source: corev1.EventSource{Component: "coffer"}, Outcome: out.add, now: c.now})
	long := *spc
	long.Name = strings.Repeat("p", 253)
	r.Eventf(spc, corev1.EventTypeNormal, "A", "panics")
	r.Eventf(spc, corev1.EventTypeNormal, "B", "refused")
	r.Eventf(&long, corev1.EventTypeNormal, "C", "written")
	r.Eventf(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kindless"}}, corev1.EventTypeNormal, "D", "names no kind")
	for range Burst {
		r.Eventf(&long, corev1.EventTypeNormal, "E", "flapping")
	}
	r.Shutdown(context.Background())
	want := map[string]int{OutcomeFailed: 3, OutcomeRecorded: Burst, OutcomeRateLimited: 1}
	for o, n := range want {
		if got := out.get(o); got != n {
			t.Errorf("%s: %d, want %d", o, got, n)
		}
	}
	for _, name := range f.names {
		if len(name) > 253 {
			t.Errorf("event name of %d characters", len(name))
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestRecorderCreateOnly: a writer allowed only to create events never
// patches one, a repeat included.
func TestRecorderCreateOnly(t *testing.T) {
	store := &eventStore{}
	r := NewRecorder(store, nil, RecorderOptions{Source: corev1.EventSource{Component: "coffer"}, CreateOnly: true})
	r.Eventf(spc, corev1.EventTypeNormal, "SecretsRotated", "same")
	r.Eventf(spc, corev1.EventTypeNormal, "SecretsRotated", "same")
	r.Shutdown(context.Background())
	if created, patched := store.counts(); created != 2 || patched != 0 {
		t.Errorf("%d created, %d patched; want 2 and 0", created, patched)
	}
}
