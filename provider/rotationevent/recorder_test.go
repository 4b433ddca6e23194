package rotationevent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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

// sink collects written events.
type sink struct {
	mu     sync.Mutex
	events []*corev1.Event
	err    error
	block  chan struct{}
}

func (s *sink) create(ctx context.Context, ev *corev1.Event) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	return s.err
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pod(n string) Pod { return Pod{Namespace: "ns", Name: "pod-" + n, UID: "uid-" + n, Class: "db"} }

func TestRecorderRemembersVersionsWhenTheDriverSendsNone(t *testing.T) {
	s := &sink{}
	var out outcomes
	r := New(s.create, Options{PerPodInterval: time.Nanosecond, QPS: 1000, Burst: 1000, Host: "node1", OnOutcome: out.add})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	p := pod("a")
	r.Observe(p, nil, []Version{{"password", "v1"}, {"user", "u1"}}) // first mount
	r.Observe(p, nil, []Version{{"password", "v1"}, {"user", "u1"}}) // unchanged remount (v1.6: no versions sent)
	r.Observe(p, nil, []Version{{"password", "v2"}, {"user", "u1"}}) // rotation
	waitFor(t, "one event", func() bool { return out.get(OutcomeRecorded) == 1 })
	ev := s.events[0]
	if ev.Reason != Reason || ev.Type != corev1.EventTypeNormal || ev.InvolvedObject.Kind != "Pod" || ev.InvolvedObject.UID != "uid-a" || ev.Namespace != "ns" {
		t.Errorf("event %+v", ev)
	}
	if !strings.Contains(ev.Message, "password (version v2)") || strings.Contains(ev.Message, "user") {
		t.Errorf("message %q", ev.Message)
	}
	// The driver's versions, when it sends them (v1.5), are the reference.
	r.Observe(p, map[string]string{"password": "v2", "user": "u1"}, []Version{{"password", "v2"}, {"user", "u1"}})
	r.Observe(p, map[string]string{"password": "v2", "user": "u1"}, []Version{{"password", "v2"}, {"user", "u2"}})
	waitFor(t, "two events", func() bool { return out.get(OutcomeRecorded) == 2 })
	if s.count() != 2 {
		t.Errorf("%d events written, want 2", s.count())
	}
}

func TestRecorderRateLimits(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	s := &sink{}
	var out outcomes
	r := New(s.create, Options{PerPodInterval: time.Minute, QPS: 1, Burst: 2, Now: clock, OnOutcome: out.add})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	rotate := func(p Pod, v string) {
		r.Observe(p, map[string]string{"k": "old-" + v}, []Version{{"k", v}})
	}
	rotate(pod("a"), "1")
	rotate(pod("a"), "2") // same pod within PerPodInterval
	rotate(pod("b"), "1")
	rotate(pod("c"), "1") // over the global burst
	waitFor(t, "two events", func() bool { return out.get(OutcomeRecorded) == 2 })
	if got := out.get(OutcomeRateLimited); got != 2 {
		t.Errorf("%d rate limited, want 2", got)
	}
	now = now.Add(2 * time.Minute)
	rotate(pod("a"), "3")
	waitFor(t, "a third event", func() bool { return out.get(OutcomeRecorded) == 3 })
}

func TestRecorderNeverBlocksTheMount(t *testing.T) {
	s := &sink{block: make(chan struct{})}
	var out outcomes
	r := New(s.create, Options{QueueSize: 2, QPS: 1000, Burst: 1000, OnOutcome: out.add})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			p := pod(string(rune('A' + i)))
			r.Observe(p, map[string]string{"k": "1"}, []Version{{"k", "2"}})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Observe blocked while the API hung")
	}
	// One in the writer, two queued; the rest dropped.
	if got := out.get(OutcomeDropped); got < 97 {
		t.Errorf("%d dropped, want at least 97", got)
	}
	close(s.block)
}

func TestRecorderContainsPanicsAndFailures(t *testing.T) {
	var out outcomes
	calls := 0
	r := New(func(context.Context, *corev1.Event) error {
		calls++
		if calls == 1 {
			panic("CANARY-recorder-panic")
		}
		return errors.New("forbidden")
	}, Options{PerPodInterval: time.Nanosecond, QPS: 1000, Burst: 1000, OnOutcome: out.add})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	r.Observe(pod("a"), map[string]string{"k": "1"}, []Version{{"k", "2"}})
	r.Observe(pod("b"), map[string]string{"k": "1"}, []Version{{"k", "2"}})
	waitFor(t, "two failures", func() bool { return out.get(OutcomeFailed) == 2 })
	// A panic while observing is contained too.
	r.versions = nil
	r.Observe(pod("c"), map[string]string{"k": "1"}, []Version{{"k", "2"}})
}

func TestRecorderForgetsBeyondMaxPods(t *testing.T) {
	s := &sink{}
	var out outcomes
	r := New(s.create, Options{MaxPods: 2, PerPodInterval: time.Nanosecond, QPS: 1000, Burst: 1000, OnOutcome: out.add})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	for _, n := range []string{"a", "b", "c"} {
		r.Observe(pod(n), nil, []Version{{"k", "1"}})
	}
	if r.versions.Len() != 2 {
		t.Errorf("remembers %d pods, want 2", r.versions.Len())
	}
	r.Observe(pod("a"), nil, []Version{{"k", "2"}}) // forgotten: no event
	r.Observe(pod("c"), nil, []Version{{"k", "2"}}) // remembered
	waitFor(t, "one event", func() bool { return out.get(OutcomeRecorded) == 1 })
	if s.events[0].InvolvedObject.Name != "pod-c" {
		t.Errorf("event for %s", s.events[0].InvolvedObject.Name)
	}
}

func TestEventNameFitsForTheLongestPodName(t *testing.T) {
	r := New((&sink{}).create, Options{})
	p := pod("a")
	p.Name = strings.Repeat("p", 253)
	ev := r.event(p, []Version{{"k", "2"}}, time.Unix(1<<40, 0))
	if len(ev.Name) > 253 || ev.InvolvedObject.Name != p.Name {
		t.Errorf("event name of %d characters for pod %d", len(ev.Name), len(ev.InvolvedObject.Name))
	}
}

func TestRecorderIgnoresPodlessMounts(t *testing.T) {
	var out outcomes
	r := New((&sink{}).create, Options{OnOutcome: out.add})
	r.Observe(Pod{Namespace: "ns", Name: "sync-x", Class: "db"}, map[string]string{"k": "1"}, []Version{{"k", "2"}})
	if len(r.queue) != 0 {
		t.Error("queued an event for a mount without a pod UID")
	}
}
