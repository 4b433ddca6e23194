package rotationevent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/internal/kube"
)

func TestChanged(t *testing.T) {
	tests := map[string]struct {
		previous map[string]string
		mounted  []Version
		want     []string
	}{
		"first mount: nothing to compare": {nil, []Version{{"a", "1"}}, nil},
		"same versions":                   {map[string]string{"a": "1", "b": "2"}, []Version{{"b", "2"}, {"a", "1"}}, nil},
		"one changed":                     {map[string]string{"a": "1", "b": "2"}, []Version{{"b", "3"}, {"a", "1"}}, []string{"b=3"}},
		"a new object counts":             {map[string]string{"a": "1"}, []Version{{"c", "1"}, {"a", "1"}}, []string{"c=1"}},
		"a removed object does not":       {map[string]string{"a": "1", "gone": "1"}, []Version{{"a", "1"}}, nil},
		"sorted by id":                    {map[string]string{"a": "1", "b": "1"}, []Version{{"b", "2"}, {"a", "2"}}, []string{"a=2", "b=2"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, v := range Changed(tc.previous, tc.mounted) {
				got = append(got, v.ID+"="+v.Version)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("Changed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMessageBounded(t *testing.T) {
	var many []Version
	for i := range 50 {
		many = append(many, Version{ID: strings.Repeat("x", 60) + string(rune('a'+i%26)), Version: strings.Repeat("9", 40)})
	}
	msg := Message("db", many)
	if len(msg) > maxMessage {
		t.Errorf("message is %d bytes, over %d", len(msg), maxMessage)
	}
	if strings.Count(msg, "(version") > maxNamed {
		t.Errorf("message names more than %d objects: %s", maxNamed, msg)
	}
	if got := Message("db", []Version{{"password", "v2"}}); got != `SecretProviderClass "db": 1 object(s) rotated: password (version v2)` {
		t.Errorf("message %q", got)
	}
}

// sink collects the events handed to the writer.
type sink struct {
	mu     sync.Mutex
	events []written
}

type written struct {
	ref                        *corev1.ObjectReference
	eventType, reason, message string
}

func (s *sink) Eventf(object runtime.Object, eventType, reason, messageFmt string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, written{object.(*corev1.ObjectReference), eventType, reason, fmt.Sprintf(messageFmt, args...)})
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func pod(n string) Pod { return Pod{Namespace: "ns", Name: "pod-" + n, UID: "uid-" + n, Class: "db"} }

func TestRecorderRemembersVersionsWhenTheDriverSendsNone(t *testing.T) {
	s := &sink{}
	r := New(s, Options{PerPodInterval: time.Nanosecond, QPS: 1000, Burst: 1000})
	p := pod("a")
	r.Observe(p, nil, []Version{{"password", "v1"}, {"user", "u1"}}) // first mount
	r.Observe(p, nil, []Version{{"password", "v1"}, {"user", "u1"}}) // unchanged remount (v1.6: no versions sent)
	r.Observe(p, nil, []Version{{"password", "v2"}, {"user", "u1"}}) // rotation
	if s.count() != 1 {
		t.Fatalf("%d events, want 1", s.count())
	}
	ev := s.events[0]
	if ev.reason != Reason || ev.eventType != corev1.EventTypeNormal || ev.ref.Kind != "Pod" || ev.ref.APIVersion != "v1" || ev.ref.UID != "uid-a" || ev.ref.Namespace != "ns" || ev.ref.Name != "pod-a" {
		t.Errorf("event %+v about %+v", ev, ev.ref)
	}
	if !strings.Contains(ev.message, "password (version v2)") || strings.Contains(ev.message, "user") {
		t.Errorf("message %q", ev.message)
	}
	// The driver's versions, when it sends them (v1.5), are the reference.
	r.Observe(p, map[string]string{"password": "v2", "user": "u1"}, []Version{{"password", "v2"}, {"user", "u1"}})
	r.Observe(p, map[string]string{"password": "v2", "user": "u1"}, []Version{{"password", "v2"}, {"user", "u2"}})
	if s.count() != 2 {
		t.Errorf("%d events, want 2", s.count())
	}
}

func TestRecorderRateLimits(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	s := &sink{}
	limited := 0
	r := New(s, Options{PerPodInterval: time.Minute, QPS: 1, Burst: 2, Clock: clk, OnRateLimited: func() { limited++ }})
	rotate := func(p Pod, v string) {
		r.Observe(p, map[string]string{"k": "old-" + v}, []Version{{"k", v}})
	}
	rotate(pod("a"), "1")
	rotate(pod("a"), "2") // same pod within PerPodInterval
	rotate(pod("b"), "1")
	rotate(pod("c"), "1") // over the burst of all pods
	if s.count() != 2 || limited != 2 {
		t.Errorf("%d events, %d rate limited; want 2 and 2", s.count(), limited)
	}
	clk.SetTime(clk.Now().Add(2 * time.Minute))
	rotate(pod("a"), "3")
	if s.count() != 3 {
		t.Errorf("%d events after the interval, want 3", s.count())
	}
}

// blockedEvents is an API server that does not answer.
type blockedEvents struct{ release chan struct{} }

func (b blockedEvents) Events(string) kube.EventInterface { return b }

func (b blockedEvents) Create(ctx context.Context, e *corev1.Event, _ metav1.CreateOptions) (*corev1.Event, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return e, nil
}

func (b blockedEvents) Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*corev1.Event, error) {
	return nil, errors.New("not found")
}

// TestRecorderNeverBlocksTheMount: through the real writer, with the API
// server hung, a node's worth of rotations returns at once; what the queue
// cannot hold is counted as dropped.
func TestRecorderNeverBlocksTheMount(t *testing.T) {
	api := blockedEvents{release: make(chan struct{})}
	var mu sync.Mutex
	outcomes := map[string]int{}
	w := kube.NewRecorder(api, nil, kube.RecorderOptions{Outcome: func(o string) { mu.Lock(); outcomes[o]++; mu.Unlock() }})
	r := New(w, Options{PerPodInterval: time.Nanosecond, QPS: 1e6, Burst: 1e6})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range kube.QueueLength + 100 {
			r.Observe(pod(fmt.Sprint(i)), map[string]string{"k": "1"}, []Version{{"k", "2"}})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Observe blocked while the API server hung")
	}
	mu.Lock()
	dropped := outcomes[kube.OutcomeDropped]
	mu.Unlock()
	if dropped < 99 {
		t.Errorf("%d dropped, want at least 99 (the queue holds %d)", dropped, kube.QueueLength)
	}
	close(api.release)
	w.Shutdown(context.Background())
}

func TestRecorderContainsPanics(t *testing.T) {
	s := &sink{}
	r := New(s, Options{PerPodInterval: time.Nanosecond, QPS: 1000, Burst: 1000})
	r.versions = nil // a bug while observing
	r.Observe(pod("c"), map[string]string{"k": "1"}, []Version{{"k", "2"}})
	if s.count() != 0 {
		t.Errorf("%d events", s.count())
	}
}

func TestRecorderForgetsBeyondMaxPods(t *testing.T) {
	s := &sink{}
	r := New(s, Options{MaxPods: 2, PerPodInterval: time.Nanosecond, QPS: 1000, Burst: 1000})
	for _, n := range []string{"a", "b", "c"} {
		r.Observe(pod(n), nil, []Version{{"k", "1"}})
	}
	if r.versions.Len() != 2 {
		t.Errorf("remembers %d pods, want 2", r.versions.Len())
	}
	r.Observe(pod("a"), nil, []Version{{"k", "2"}}) // forgotten: no event
	r.Observe(pod("c"), nil, []Version{{"k", "2"}}) // remembered
	if s.count() != 1 || s.events[0].ref.Name != "pod-c" {
		t.Errorf("events %+v, want one for pod-c", s.events)
	}
}

func TestRecorderIgnoresPodlessMounts(t *testing.T) {
	s := &sink{}
	r := New(s, Options{})
	r.Observe(Pod{Namespace: "ns", Name: "sync-x", Class: "db"}, map[string]string{"k": "1"}, []Version{{"k", "2"}})
	if s.count() != 0 {
		t.Error("an event for a mount without a pod UID")
	}
}
