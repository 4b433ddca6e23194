package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	testclock "k8s.io/utils/clock/testing"
)

// Most of these tests port client-go's own (k8s.io/client-go/tools/record
// at v0.34.3, event_test.go and events_cache_test.go; the cases ported are
// unchanged at v0.37.2, the go.mod's); each names the one
// it ports. client-go's tests run its broadcaster with a sleep of 0 between
// tries; here the retries wait on a fake clock, which the test moves when
// the recorder's log says it is waiting.

// guard bounds every wait of these tests for the recorder's goroutine: a
// recorder that never does what a test waits for fails the test rather
// than hanging it.
const guard = 10 * time.Second

// fakeEvents is an API server's events: it keeps what is created, applies
// merge patches to it, and answers NotFound for a patch of an event it does
// not have. A hook may fail or hold a try.
type fakeEvents struct {
	mu      sync.Mutex
	stored  map[string]*corev1.Event // by namespace/name
	created []*corev1.Event          // what each successful create was asked
	patched []*corev1.Event          // each successful patch's result
	tries   int
	// onWrite, when set, runs before each create or patch (try counts
	// both from 1); an error it returns is the API's answer.
	onWrite func(ctx context.Context, try int, verb string, e *corev1.Event) error
	// resourceVersions: created and patched events get one, as from a
	// real API server.
	resourceVersions bool
}

func (f *fakeEvents) Events(namespace string) EventInterface {
	return fakeNamespaceEvents{f: f, namespace: namespace}
}

type fakeNamespaceEvents struct {
	f         *fakeEvents
	namespace string
}

func (n fakeNamespaceEvents) Create(ctx context.Context, e *corev1.Event, _ metav1.CreateOptions) (*corev1.Event, error) {
	f := n.f
	if err := f.hook(ctx, "create", e); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, e.DeepCopy())
	out := e.DeepCopy()
	if f.resourceVersions {
		out.ResourceVersion = strconv.Itoa(len(f.created) + len(f.patched))
	}
	if f.stored == nil {
		f.stored = map[string]*corev1.Event{}
	}
	f.stored[n.namespace+"/"+e.Name] = out
	return out.DeepCopy(), nil
}

func (n fakeNamespaceEvents) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, _ metav1.PatchOptions, _ ...string) (*corev1.Event, error) {
	f := n.f
	if pt != types.MergePatchType {
		return nil, fmt.Errorf("patch type %s", pt)
	}
	f.mu.Lock()
	old, ok := f.stored[n.namespace+"/"+name]
	f.mu.Unlock()
	if err := f.hook(ctx, "patch", old); err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "events"}, name)
	}
	out := old.DeepCopy()
	// A merge patch of scalar fields is their JSON laid over the object.
	if err := json.Unmarshal(data, out); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resourceVersions {
		out.ResourceVersion = strconv.Itoa(len(f.created) + len(f.patched) + 1)
	}
	f.patched = append(f.patched, out.DeepCopy())
	f.stored[n.namespace+"/"+name] = out
	return out.DeepCopy(), nil
}

func (f *fakeEvents) hook(ctx context.Context, verb string, e *corev1.Event) error {
	f.mu.Lock()
	f.tries++
	try, onWrite := f.tries, f.onWrite
	f.mu.Unlock()
	if onWrite == nil {
		return nil
	}
	return onWrite(ctx, try, verb, e)
}

func (f *fakeEvents) writes() (created, patched []*corev1.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*corev1.Event(nil), f.created...), append([]*corev1.Event(nil), f.patched...)
}

func (f *fakeEvents) triesSoFar() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries
}

// logLine is one record the recorder logged.
type logLine struct {
	level   slog.Level
	message string
	attrs   map[string]string
}

// logCapture is a slog.Handler that keeps every record and hands each to
// the test in order.
type logCapture struct {
	mu    sync.Mutex
	all   []logLine
	lines chan logLine
	attrs []slog.Attr
	root  *logCapture
}

func newLogCapture() *logCapture {
	c := &logCapture{lines: make(chan logLine, 100_000)}
	c.root = c
	return c
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	l := logLine{level: r.Level, message: r.Message, attrs: map[string]string{}}
	for _, a := range c.attrs {
		l.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { l.attrs[a.Key] = a.Value.String(); return true })
	root := c.root
	root.mu.Lock()
	root.all = append(root.all, l)
	root.mu.Unlock()
	root.lines <- l
	return nil
}

func (c *logCapture) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logCapture{root: c.root, attrs: append(append([]slog.Attr(nil), c.attrs...), attrs...)}
}

func (c *logCapture) WithGroup(string) slog.Handler { return c }

// text is everything logged, for checks that something never was.
func (c *logCapture) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, l := range c.all {
		fmt.Fprintf(&b, "%s %q %v\n", l.level, l.message, l.attrs)
	}
	return b.String()
}

// harness runs a Recorder on a fake clock and API.
type harness struct {
	t        *testing.T
	api      *fakeEvents
	clock    *testclock.FakeClock
	logs     *logCapture
	outcomes chan string
	rec      *Recorder
}

func newHarness(t *testing.T, api *fakeEvents, o RecorderOptions) *harness {
	t.Helper()
	h := &harness{t: t, api: api, clock: testclock.NewFakeClock(time.Unix(1_800_000_000, 0)), logs: newLogCapture(), outcomes: make(chan string, 100_000)}
	o.Clock, o.Logger, o.Outcome = h.clock, slog.New(h.logs), func(s string) { h.outcomes <- s }
	if o.Source.Component == "" {
		o.Source.Component = "coffer"
	}
	s, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	h.rec = NewRecorder(api, s, o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		h.rec.Shutdown(ctx)
	})
	return h
}

// outcome waits for what became of the next event.
func (h *harness) outcome() string {
	h.t.Helper()
	select {
	case o := <-h.outcomes:
		return o
	case <-time.After(guard):
		h.t.Fatal("no event's outcome")
		return ""
	}
}

// send records one event and waits for what became of it.
func (h *harness) send(object *corev1.ObjectReference, eventType, reason, message string) string {
	h.t.Helper()
	h.rec.Eventf(object, eventType, reason, "%s", message)
	return h.outcome()
}

// waitLog waits for the next record whose message contains s, skipping
// others.
func (h *harness) waitLog(s string) logLine {
	h.t.Helper()
	deadline := time.After(guard)
	for {
		select {
		case l := <-h.logs.lines:
			if strings.Contains(l.message, s) {
				return l
			}
		case <-deadline:
			h.t.Fatalf("nothing logged %q; the log:\n%s", s, h.logs.text())
			return logLine{}
		}
	}
}

func podRef(name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: "team", Name: name, UID: types.UID("uid-" + name)}
}

// TestRecorderWritesEvents ports TestEventf and TestEventfNoNamespace: the
// event's fields, a repeat counted on the event written before (a patch,
// its count one more, its first time kept), other objects (another UID,
// another field path) and reasons written apart, an object without a
// namespace's event in "default".
func TestRecorderWritesEvents(t *testing.T) {
	testPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foo", Namespace: "baz", UID: "bar"}}
	testRef := &corev1.ObjectReference{Kind: "Pod", Name: "foo", Namespace: "baz", UID: "bar", APIVersion: "v1", FieldPath: "spec.containers[2]"}
	testRef2 := &corev1.ObjectReference{Kind: "Pod", Name: "foo", Namespace: "baz", UID: "differentUid", APIVersion: "v1", FieldPath: "spec.containers[3]"}
	noNamespace := &corev1.ObjectReference{Kind: "Pod", Name: "foo", UID: "bar", APIVersion: "v1", FieldPath: "spec.containers[2]"}
	event := func(ref corev1.ObjectReference, reason, message string, count int32) *corev1.Event {
		ns := ref.Namespace
		if ns == "" {
			ns = "default"
		}
		ref.ResourceVersion = ""
		return &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: "foo", Namespace: ns}, InvolvedObject: ref, Reason: reason, Message: message,
			Source: corev1.EventSource{Component: "eventTest"}, ReportingController: "eventTest", Count: count, Type: corev1.EventTypeNormal,
		}
	}
	table := []struct {
		obj     runtime.Object
		reason  string
		message string
		want    *corev1.Event
		patch   bool
	}{
		{obj: testRef, reason: "Started", message: "some verbose message: 1", want: event(*testRef, "Started", "some verbose message: 1", 1)},
		{obj: testPod, reason: "Killed", message: "some other verbose message: 1", want: event(corev1.ObjectReference{Kind: "Pod", Name: "foo", Namespace: "baz", UID: "bar", APIVersion: "v1"}, "Killed", "some other verbose message: 1", 1)},
		{obj: testRef, reason: "Started", message: "some verbose message: 1", want: event(*testRef, "Started", "some verbose message: 1", 2), patch: true},
		{obj: testRef2, reason: "Started", message: "some verbose message: 1", want: event(*testRef2, "Started", "some verbose message: 1", 1)},
		{obj: testRef, reason: "Started", message: "some verbose message: 1", want: event(*testRef, "Started", "some verbose message: 1", 3), patch: true},
		{obj: testRef2, reason: "Stopped", message: "some verbose message: 1", want: event(*testRef2, "Stopped", "some verbose message: 1", 1)},
		{obj: testRef2, reason: "Stopped", message: "some verbose message: 1", want: event(*testRef2, "Stopped", "some verbose message: 1", 2), patch: true},
		// TestEventfNoNamespace.
		{obj: noNamespace, reason: "Started", message: "some verbose message: 1", want: event(*noNamespace, "Started", "some verbose message: 1", 1)},
	}
	api := &fakeEvents{}
	h := newHarness(t, api, RecorderOptions{Source: corev1.EventSource{Component: "eventTest"}})
	for i, item := range table {
		h.clock.Step(time.Second)
		h.rec.Eventf(item.obj, corev1.EventTypeNormal, item.reason, "%s", item.message)
		if o := h.outcome(); o != OutcomeRecorded {
			t.Fatalf("%d: %s", i, o)
		}
		created, patched := api.writes()
		got := created[len(created)-1]
		if item.patch {
			got = patched[len(patched)-1]
		}
		if len(created)+len(patched) != i+1 || (item.patch && len(patched) == 0) {
			t.Fatalf("%d: %d created and %d patched after %d events (a patch wanted: %v)", i, len(created), len(patched), i+1, item.patch)
		}
		validateEvent(t, strconv.Itoa(i), got, item.want)
	}
}

// validateEvent is client-go's: the timestamps are set, equal for a first
// occurrence and apart for a counted repeat; the name starts with the
// wanted one; the rest is as wanted.
func validateEvent(t *testing.T, prefix string, actual, want *corev1.Event) {
	t.Helper()
	got := *actual
	if got.FirstTimestamp.IsZero() || got.LastTimestamp.IsZero() {
		t.Errorf("%s: timestamp wasn't set: %#v", prefix, got)
	}
	if got.FirstTimestamp.Equal(&got.LastTimestamp) {
		if want.Count > 1 {
			t.Errorf("%s: FirstTimestamp and LastTimestamp are the same (%v) on a repeat", prefix, got.FirstTimestamp)
		}
	} else if want.Count == 1 {
		t.Errorf("%s: FirstTimestamp (%v) and LastTimestamp (%v) differ on a first occurrence", prefix, got.FirstTimestamp, got.LastTimestamp)
	}
	got.FirstTimestamp, got.LastTimestamp = want.FirstTimestamp, want.LastTimestamp
	got.ReportingController = want.ReportingController
	if !strings.HasPrefix(got.Name, want.Name) {
		t.Errorf("%s: name %q does not start with %q", prefix, got.Name, want.Name)
	}
	got.Name = want.Name
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", prefix, &got, want)
	}
}

// The events of client-go's events_cache_test.go.
func makeObjectReference(kind, name, namespace string) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: kind, Name: name, Namespace: namespace, UID: "C934D34AFB20242", APIVersion: "version", FieldPath: "spec.containers{mycontainer}"}
}

func makeEvent(reason, message string, involvedObject corev1.ObjectReference) corev1.Event {
	now := metav1.Now()
	return corev1.Event{
		Reason: reason, Message: message, InvolvedObject: involvedObject,
		Source: corev1.EventSource{Component: "kubelet", Host: "kublet.node1"},
		Count:  1, FirstTimestamp: now, LastTimestamp: now, Type: corev1.EventTypeNormal,
	}
}

func makeEvents(num int, template corev1.Event) []corev1.Event {
	events := make([]corev1.Event, num)
	for i := range events {
		events[i] = template
	}
	return events
}

func makeUniqueEvents(num int) []corev1.Event {
	events := make([]corev1.Event, num)
	for i := range events {
		events[i] = makeEvent("reason-"+strconv.Itoa(i), "message-"+strconv.Itoa(i), makeObjectReference("Pod", "pod-"+strconv.Itoa(i), "ns-"+strconv.Itoa(i)))
	}
	return events
}

func makeSimilarEvents(num int, template corev1.Event, messagePrefix string) []corev1.Event {
	events := makeEvents(num, template)
	for i := range events {
		events[i].Message = strings.Join([]string{messagePrefix, strconv.Itoa(i), events[i].Message}, "-")
	}
	return events
}

func setCount(event corev1.Event, count int32) corev1.Event {
	event.Count = count
	return event
}

// TestAggregateKeys ports TestEventAggregatorByReasonFunc (two events are
// one group if only their messages differ) and
// TestEventAggregatorByReasonMessageFunc (the combined message's prefix).
func TestAggregateKeys(t *testing.T) {
	event1 := makeEvent("end-of-world", "it was fun", makeObjectReference("Pod", "pod1", "other"))
	event2 := makeEvent("end-of-world", "it was awful", makeObjectReference("Pod", "pod1", "other"))
	event3 := makeEvent("nevermind", "it was a bug", makeObjectReference("Pod", "pod1", "other"))
	group1, local1 := aggregateKeys(&event1)
	group2, local2 := aggregateKeys(&event2)
	group3, _ := aggregateKeys(&event3)
	if group1 != group2 {
		t.Errorf("events that differ by message only are in groups %q and %q", group1, group2)
	}
	if local1 == local2 {
		t.Errorf("two messages have one local key %q", local1)
	}
	if group1 == group3 {
		t.Errorf("events of two reasons share group %q", group1)
	}
	c := newCorrelator(testclock.NewFakePassiveClock(time.Now()), correlatorOptions{aggregate: 1})
	if got, _ := c.aggregateSimilar(&event1); !strings.HasPrefix(got.Message, "(combined from similar events): ") {
		t.Errorf("combined message %q", got.Message)
	}
}

// TestCorrelator ports TestEventCorrelator: counting, aggregation, and the
// budget per object, on a clock that moves by the interval at each look.
func TestCorrelator(t *testing.T) {
	firstEvent := makeEvent("first", "i am first", makeObjectReference("Pod", "my-pod", "my-ns"))
	duplicateEvent := makeEvent("duplicate", "me again", makeObjectReference("Pod", "my-pod", "my-ns"))
	uniqueEvent := makeEvent("unique", "snowflake", makeObjectReference("Pod", "my-pod", "my-ns"))
	similarEvent := makeEvent("similar", "similar message", makeObjectReference("Pod", "my-pod", "my-ns"))
	similarEvent.InvolvedObject.FieldPath = "spec.containers{container1}"
	aggregateEvent := makeEvent(similarEvent.Reason, combinedPrefix+similarEvent.Message, similarEvent.InvolvedObject)
	similarButDifferentContainerEvent := similarEvent
	similarButDifferentContainerEvent.InvolvedObject.FieldPath = "spec.containers{container2}"
	scenario := map[string]struct {
		previousEvents  []corev1.Event
		newEvent        corev1.Event
		expectedEvent   corev1.Event
		intervalSeconds int
		expectedSkip    bool
	}{
		"create-a-single-event": {
			newEvent:        firstEvent,
			expectedEvent:   setCount(firstEvent, 1),
			intervalSeconds: 5,
		},
		"the-same-event-should-just-count": {
			previousEvents:  makeEvents(1, duplicateEvent),
			newEvent:        duplicateEvent,
			expectedEvent:   setCount(duplicateEvent, 2),
			intervalSeconds: 5,
		},
		"the-same-event-should-just-count-even-if-more-than-aggregate": {
			previousEvents:  makeEvents(AggregateAfter, duplicateEvent),
			newEvent:        duplicateEvent,
			expectedEvent:   setCount(duplicateEvent, AggregateAfter+1),
			intervalSeconds: 30, // larger interval induces aggregation but not spam.
		},
		"the-same-event-is-spam-if-happens-too-frequently": {
			previousEvents:  makeEvents(Burst+1, duplicateEvent),
			newEvent:        duplicateEvent,
			expectedSkip:    true,
			intervalSeconds: 1,
		},
		"create-many-unique-events": {
			previousEvents:  makeUniqueEvents(30),
			newEvent:        uniqueEvent,
			expectedEvent:   setCount(uniqueEvent, 1),
			intervalSeconds: 5,
		},
		"similar-events-should-aggregate-event": {
			previousEvents:  makeSimilarEvents(AggregateAfter-1, similarEvent, similarEvent.Message),
			newEvent:        similarEvent,
			expectedEvent:   setCount(aggregateEvent, 1),
			intervalSeconds: 5,
		},
		"similar-events-many-times-should-count-the-aggregate": {
			previousEvents:  makeSimilarEvents(AggregateAfter, similarEvent, similarEvent.Message),
			newEvent:        similarEvent,
			expectedEvent:   setCount(aggregateEvent, 2),
			intervalSeconds: 5,
		},
		"events-from-different-containers-do-not-aggregate": {
			previousEvents:  makeEvents(1, similarButDifferentContainerEvent),
			newEvent:        similarEvent,
			expectedEvent:   setCount(similarEvent, 1),
			intervalSeconds: 5,
		},
		"similar-events-whose-interval-is-greater-than-aggregate-interval-do-not-aggregate": {
			previousEvents:  makeSimilarEvents(AggregateAfter-1, similarEvent, similarEvent.Message),
			newEvent:        similarEvent,
			expectedEvent:   setCount(similarEvent, 1),
			intervalSeconds: int(AggregateWindow / time.Second),
		},
	}
	for name, tc := range scenario {
		t.Run(name, func(t *testing.T) {
			clock := &testclock.SimpleIntervalClock{Time: time.Now(), Duration: time.Duration(tc.intervalSeconds) * time.Second}
			c := newCorrelator(clock, correlatorOptions{countRepeats: true})
			for i := range tc.previousEvents {
				event := tc.previousEvents[i]
				now := metav1.NewTime(clock.Now())
				event.FirstTimestamp, event.LastTimestamp = now, now
				if r := c.correlate(&event); !r.skip {
					c.written(r.event)
				}
			}
			now := metav1.NewTime(clock.Now())
			tc.newEvent.FirstTimestamp, tc.newEvent.LastTimestamp = now, now
			r := c.correlate(&tc.newEvent)
			if r.skip != tc.expectedSkip {
				t.Fatalf("skip %v, want %v", r.skip, tc.expectedSkip)
			}
			if !tc.expectedSkip {
				validateEvent(t, name, r.event, &tc.expectedEvent)
			}
		})
	}
}

// TestSpamFilter ports TestEventSpamFilter's case for the default key
// (client-go's other cases set a key function of their own, which coffer
// has not): with a budget of one, another event about the object is
// skipped, whatever its reason and message. A Warning spends another
// budget than a Normal event (the type is in client-go's key too).
func TestSpamFilter(t *testing.T) {
	originalEvent := makeEvent("original", "i am first", makeObjectReference("Pod", "my-pod", "my-ns"))
	differentReasonEvent := makeEvent("duplicate", "me again", makeObjectReference("Pod", "my-pod", "my-ns"))
	warning := differentReasonEvent
	warning.Type = corev1.EventTypeWarning
	for name, tc := range map[string]struct {
		newEvent     corev1.Event
		expectedSkip bool
	}{
		"event should be reported as spam if object reference is the same for default spam filter": {newEvent: differentReasonEvent, expectedSkip: true},
		"a warning about the object spends another budget":                                         {newEvent: warning},
	} {
		t.Run(name, func(t *testing.T) {
			clock := &testclock.SimpleIntervalClock{Time: time.Now(), Duration: time.Second}
			c := newCorrelator(clock, correlatorOptions{burst: 1, countRepeats: true})
			if r := c.correlate(&originalEvent); r.skip {
				t.Fatal("the first event was skipped")
			} else {
				c.written(r.event)
			}
			if r := c.correlate(&tc.newEvent); r.skip != tc.expectedSkip {
				t.Errorf("skip %v, want %v", r.skip, tc.expectedSkip)
			}
		})
	}
}

// TestRecorderBudgetRefills: an object's budget is Burst events, then one
// per Refill (client-go's token bucket, as TestEventCorrelator's spam case
// reads it), through the recorder.
func TestRecorderBudgetRefills(t *testing.T) {
	h := newHarness(t, &fakeEvents{}, RecorderOptions{CreateOnly: true})
	spc := podRef("flapping")
	for i := range Burst {
		if o := h.send(spc, corev1.EventTypeWarning, "SyncFailed", fmt.Sprint("attempt ", i)); o != OutcomeRecorded {
			t.Fatalf("event %d: %s", i, o)
		}
	}
	if o := h.send(spc, corev1.EventTypeWarning, "SyncFailed", "one too many"); o != OutcomeRateLimited {
		t.Fatalf("event %d: %s, want %s", Burst, o, OutcomeRateLimited)
	}
	h.clock.Step(Refill)
	if o := h.send(spc, corev1.EventTypeWarning, "SyncFailed", "after a refill"); o != OutcomeRecorded {
		t.Errorf("after %v: %s", Refill, o)
	}
	if o := h.send(spc, corev1.EventTypeWarning, "SyncFailed", "and one more"); o != OutcomeRateLimited {
		t.Errorf("two after %v: %s", Refill, o)
	}
}

// TestRecorderForgetsLeastRecentlyUsed: client-go's caches are LRUs of
// maxLruCacheEntries (k8s.io/utils/lru); at the bound, one more object
// forgets the least recently used one, and only that one: an object whose
// budget is spent stays limited, a repeat recently seen is still counted.
func TestRecorderForgetsLeastRecentlyUsed(t *testing.T) {
	// fill sends one event about each of n new objects.
	fill := func(h *harness, prefix string, n int) {
		for i := range n {
			if o := h.send(podRef(fmt.Sprint(prefix, i)), corev1.EventTypeNormal, "Filled", "fill"); o != OutcomeRecorded {
				t.Fatalf("filling: %s", o)
			}
		}
	}
	t.Run("budgets", func(t *testing.T) {
		h := newHarness(t, &fakeEvents{}, RecorderOptions{CreateOnly: true})
		a, b := podRef("a"), podRef("b")
		for _, obj := range []*corev1.ObjectReference{a, b} {
			for range Burst {
				h.send(obj, corev1.EventTypeNormal, "Spent", "spent")
			}
			if o := h.send(obj, corev1.EventTypeNormal, "Spent", "spent"); o != OutcomeRateLimited {
				t.Fatalf("%s after its budget: %s", obj.Name, o)
			}
		}
		fill(h, "other-", MaxTracked-2) // the budgets are full: a, b and these
		if o := h.send(a, corev1.EventTypeNormal, "Spent", "spent"); o != OutcomeRateLimited {
			t.Fatalf("a, used again: %s", o)
		}
		fill(h, "new-", 1) // forgets b, the least recently used
		if o := h.send(a, corev1.EventTypeNormal, "Spent", "spent"); o != OutcomeRateLimited {
			t.Errorf("a, whose budget is spent, got a new one when another object came: %s", o)
		}
		if o := h.send(b, corev1.EventTypeNormal, "Spent", "spent"); o != OutcomeRecorded {
			t.Errorf("b, the least recently used, is still remembered: %s", o)
		}
	})
	t.Run("similar events", func(t *testing.T) {
		api := &fakeEvents{}
		h := newHarness(t, api, RecorderOptions{CreateOnly: true})
		a, b := podRef("a"), podRef("b")
		for _, obj := range []*corev1.ObjectReference{a, b} {
			for i := range AggregateAfter - 1 {
				h.send(obj, corev1.EventTypeNormal, "Varied", fmt.Sprint("message ", i))
			}
		}
		fill(h, "other-", MaxTracked-2)
		h.send(a, corev1.EventTypeNormal, "Varied", "message 0") // seen: a is the most recent
		fill(h, "new-", 1)                                       // forgets b
		h.send(a, corev1.EventTypeNormal, "Varied", "one more")
		h.send(b, corev1.EventTypeNormal, "Varied", "one more")
		created, _ := api.writes()
		if got := created[len(created)-2]; got.InvolvedObject.Name != "a" || got.Message != combinedPrefix+"one more" {
			t.Errorf("a's %dth message: %q, want it combined", AggregateAfter, got.Message)
		}
		if got := created[len(created)-1]; got.InvolvedObject.Name != "b" || got.Message != "one more" {
			t.Errorf("b, forgotten: %q, want it alone", got.Message)
		}
	})
	t.Run("repeats", func(t *testing.T) {
		api := &fakeEvents{}
		h := newHarness(t, api, RecorderOptions{})
		a, b := podRef("a"), podRef("b")
		h.send(a, corev1.EventTypeNormal, "Repeated", "again")
		h.send(b, corev1.EventTypeNormal, "Repeated", "again")
		fill(h, "other-", MaxTracked-2)
		h.send(a, corev1.EventTypeNormal, "Repeated", "again") // counted: a is the most recent
		fill(h, "new-", 1)                                     // forgets b
		h.send(a, corev1.EventTypeNormal, "Repeated", "again")
		h.send(b, corev1.EventTypeNormal, "Repeated", "again")
		created, patched := api.writes()
		if len(patched) != 2 || patched[1].InvolvedObject.Name != "a" || patched[1].Count != 3 {
			t.Errorf("a's repeats: %d patches, the last %+v; want 2, count 3", len(patched), patched)
		}
		if last := created[len(created)-1]; last.InvolvedObject.Name != "b" || last.Count != 1 {
			t.Errorf("b, forgotten, was not created anew: %+v", last)
		}
	})
}

// TestRecorderRetries ports TestWriteEventError: a write that fails for a
// reason a retry can fix is tried MaxTries times in all, RetryInterval
// apart (the first wait a random part of it); one the API server refused
// or that cannot be built is tried once; one that succeeds on a retry is
// written. coffer's cases: what the log says of each failure, and never
// the event's message; a hung request (no answer within RequestTimeout) is
// abandoned and retried.
func TestRecorderRetries(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New(`User "system:serviceaccount:coffer:coffer" cannot create resource "events" in API group "" in the namespace "team"`))
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "Event"}, "x", nil)
	invalid.ErrStatus.Message = `Event "x" is invalid: message: Invalid value: "CANARY-value"`
	invalid.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeFieldValueInvalid, Field: "message", Message: `Invalid value: "CANARY-value"`}}
	terminating := apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("namespace team is being terminated"))
	terminating.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause}}
	table := map[string]struct {
		timesToSendError int // tries that fail before one succeeds
		attemptsWanted   int
		err              error
		hang             bool // a failing try waits for its context to end
		outcome          string
		why              string // in the log of a failed try
		level            slog.Level
	}{
		"giveUp1": {timesToSendError: 1000, attemptsWanted: 1, err: &rest.RequestConstructionError{Err: errors.New("no body")}, outcome: OutcomeFailed, why: "could not be built", level: slog.LevelWarn},
		"giveUp2": {timesToSendError: 1000, attemptsWanted: 1, err: &apierrors.StatusError{}, outcome: OutcomeFailed, why: "the API server refused the event", level: slog.LevelWarn},
		"retry1":  {timesToSendError: 1000, attemptsWanted: MaxTries, err: &apierrors.UnexpectedObjectError{Object: &corev1.Event{}}, outcome: OutcomeFailed, why: "could not be reached", level: slog.LevelWarn},
		"retry2":  {timesToSendError: 1000, attemptsWanted: MaxTries, err: errors.New("A weird error"), outcome: OutcomeFailed, why: "could not be reached", level: slog.LevelWarn},
		// client-go's case fails while attempts < 2, its first try only.
		"succeedEventually": {timesToSendError: 1, attemptsWanted: 2, err: errors.New("A weird error"), outcome: OutcomeRecorded, why: "could not be reached", level: slog.LevelWarn},
		"forbidden names the verb and resource the Role lacks": {timesToSendError: 1000, attemptsWanted: 1, err: forbidden, outcome: OutcomeFailed, why: `RBAC: coffer may not create events in namespace "team" (its Role lacks create on events)`, level: slog.LevelWarn},
		"an admission policy's refusal is no RBAC":             {timesToSendError: 1000, attemptsWanted: 1, err: apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "x", errors.New(`ValidatingAdmissionPolicy 'coffer-pod-events' with binding 'coffer-pod-events' denied request`)), outcome: OutcomeFailed, why: "an admission policy or webhook refused the event", level: slog.LevelWarn},
		"already exists":                          {timesToSendError: 1000, attemptsWanted: 1, err: apierrors.NewAlreadyExists(schema.GroupResource{Resource: "events"}, "x"), outcome: OutcomeFailed, why: "exists already", level: slog.LevelDebug},
		"namespace terminating":                   {timesToSendError: 1000, attemptsWanted: 1, err: terminating, outcome: OutcomeFailed, why: `namespace "team" is being deleted`, level: slog.LevelDebug},
		"namespace missing":                       {timesToSendError: 1000, attemptsWanted: 1, err: apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "team"), outcome: OutcomeFailed, why: `namespace "team" does not exist`, level: slog.LevelWarn},
		"invalid, its values unsaid":              {timesToSendError: 1000, attemptsWanted: 1, err: invalid, outcome: OutcomeFailed, why: "found the event invalid", level: slog.LevelWarn},
		"throttled, not retried as in client-go":  {timesToSendError: 1000, attemptsWanted: 1, err: apierrors.NewTooManyRequests("slow down", 1), outcome: OutcomeFailed, why: "refused the event (TooManyRequests, 429)", level: slog.LevelWarn},
		"a hung request is abandoned and retried": {timesToSendError: 1, attemptsWanted: 2, hang: true, outcome: OutcomeRecorded, why: "did not answer within 10s", level: slog.LevelWarn},
	}
	for name, tc := range table {
		t.Run(name, func(t *testing.T) {
			entered := make(chan struct{}, MaxTries)
			api := &fakeEvents{onWrite: func(ctx context.Context, try int, _ string, _ *corev1.Event) error {
				entered <- struct{}{}
				if try > tc.timesToSendError {
					return nil
				}
				if tc.hang {
					<-ctx.Done()
					return fmt.Errorf("Post \"https://api/api/v1/namespaces/team/events\": %w", ctx.Err())
				}
				return tc.err
			}}
			h := newHarness(t, api, RecorderOptions{})
			h.rec.Eventf(podRef("web-0"), corev1.EventTypeWarning, "Failed", "CANARY-message %d", 1)
			var waits []time.Duration
			for try := 1; try < tc.attemptsWanted; try++ {
				select {
				case <-entered:
				case <-time.After(guard):
					t.Fatalf("try %d never came", try)
				}
				if tc.hang {
					h.clock.Step(RequestTimeout)
				}
				l := h.waitLog("will retry")
				if !strings.Contains(l.attrs["why"], tc.why) {
					t.Errorf("try %d: why %q, want %q", try, l.attrs["why"], tc.why)
				}
				d, err := time.ParseDuration(l.attrs["retry_in"])
				if err != nil {
					t.Fatal(err)
				}
				waits = append(waits, d)
				h.clock.Step(RetryInterval)
			}
			if o := h.outcome(); o != tc.outcome {
				t.Errorf("outcome %s, want %s", o, tc.outcome)
			}
			if got := api.triesSoFar(); got != tc.attemptsWanted {
				t.Errorf("%d tries, want %d", got, tc.attemptsWanted)
			}
			for i, d := range waits {
				if i == 0 && (d < 0 || d >= RetryInterval) || i > 0 && d != RetryInterval {
					t.Errorf("wait %d: %v (want the first in [0, %v), then %v)", i+1, d, RetryInterval, RetryInterval)
				}
			}
			if tc.outcome == OutcomeFailed {
				l := h.waitLog("not recorded")
				if !strings.Contains(l.attrs["why"], tc.why) || l.level != tc.level {
					t.Errorf("the last log: %s %q %v; want %s and why %q", l.level, l.message, l.attrs, tc.level, tc.why)
				}
			}
			if text := h.logs.text(); strings.Contains(text, "CANARY") {
				t.Errorf("the log holds the event's message or a value the API server quoted:\n%s", text)
			}
		})
	}
}

// TestUpdateExpiredEvent ports client-go's: a repeat whose event is gone
// (the patch finds it NotFound) is created again, without the resource
// version it had, with its name and count.
func TestUpdateExpiredEvent(t *testing.T) {
	api := &fakeEvents{resourceVersions: true}
	h := newHarness(t, api, RecorderOptions{})
	h.send(podRef("web-0"), corev1.EventTypeNormal, "Mounted", "mounted")
	api.mu.Lock()
	clear(api.stored) // the event expired
	api.mu.Unlock()
	h.clock.Step(time.Second)
	if o := h.send(podRef("web-0"), corev1.EventTypeNormal, "Mounted", "mounted"); o != OutcomeRecorded {
		t.Fatalf("outcome %s", o)
	}
	created, patched := api.writes()
	if len(created) != 2 || len(patched) != 0 {
		t.Fatalf("%d created, %d patched; want 2 and 0", len(created), len(patched))
	}
	if again := created[1]; again.ResourceVersion != "" || again.Name != created[0].Name || again.Count != 2 {
		t.Errorf("created again: name %q (first %q), resource version %q, count %d; want the first's name, none, 2", again.Name, created[0].Name, again.ResourceVersion, again.Count)
	}
	// The next repeat patches the event created again.
	h.clock.Step(time.Second)
	h.send(podRef("web-0"), corev1.EventTypeNormal, "Mounted", "mounted")
	if _, patched := api.writes(); len(patched) != 1 || patched[0].Count != 3 {
		t.Errorf("the next repeat: %+v, want one patch to count 3", patched)
	}
}

// TestRecorderStopsRetryingAtShutdown ports TestCancelEvent: once the
// recorder is shut down, an event is tried once and given up; a retry it
// was waiting for is not made.
func TestRecorderStopsRetryingAtShutdown(t *testing.T) {
	api := &fakeEvents{onWrite: func(context.Context, int, string, *corev1.Event) error {
		return &apierrors.UnexpectedObjectError{Object: &corev1.Event{}}
	}}
	h := newHarness(t, api, RecorderOptions{})
	h.rec.Eventf(podRef("a"), corev1.EventTypeNormal, "A", "a")
	h.waitLog("will retry")
	h.rec.Eventf(podRef("b"), corev1.EventTypeNormal, "B", "b")
	h.rec.Eventf(podRef("c"), corev1.EventTypeNormal, "C", "c")
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	h.rec.Shutdown(ctx)
	if got := api.triesSoFar(); got != 3 {
		t.Errorf("%d tries, want 3 (one each)", got)
	}
	for range 3 {
		if o := h.outcome(); o != OutcomeFailed {
			t.Errorf("outcome %s", o)
		}
	}
}

// TestRecorderShutdownAbandonsAHungWrite: when Shutdown's context ends, the
// write in flight is abandoned and what is queued dropped; the writer ends.
func TestRecorderShutdownAbandonsAHungWrite(t *testing.T) {
	entered := make(chan struct{}, 10)
	api := &fakeEvents{onWrite: func(ctx context.Context, _ int, _ string, _ *corev1.Event) error {
		entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}}
	h := newHarness(t, api, RecorderOptions{})
	for _, n := range []string{"a", "b", "c"} {
		h.rec.Eventf(podRef(n), corev1.EventTypeNormal, "X", "x")
	}
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.rec.Shutdown(ctx)
	select {
	case <-h.rec.done:
	case <-time.After(guard):
		t.Fatal("the writer did not end")
	}
	for range 3 {
		if o := h.outcome(); o != OutcomeDropped {
			t.Errorf("outcome %s, want %s", o, OutcomeDropped)
		}
	}
	if got := api.triesSoFar(); got != 1 {
		t.Errorf("%d tries, want 1", got)
	}
}

// TestLotsOfEvents ports client-go's: QueueLength events about as many
// objects, each failing four times, are all written, each on its fifth
// try; none is dropped.
func TestLotsOfEvents(t *testing.T) {
	var mu sync.Mutex
	counts := map[string]int{}
	api := &fakeEvents{onWrite: func(_ context.Context, _ int, _ string, e *corev1.Event) error {
		mu.Lock()
		defer mu.Unlock()
		counts[e.Message]++
		if counts[e.Message] < 5 {
			return errors.New("fake error")
		}
		return nil
	}}
	h := newHarness(t, api, RecorderOptions{})
	for i := range QueueLength {
		// A unique object escapes the budget, a unique reason aggregation.
		h.rec.Eventf(podRef(fmt.Sprint("foo-", i)), corev1.EventTypeNormal, fmt.Sprint("Reason-", i), "%d", i)
	}
	for range 4 * QueueLength {
		h.waitLog("will retry")
		h.clock.Step(RetryInterval)
	}
	for range QueueLength {
		if o := h.outcome(); o != OutcomeRecorded {
			t.Fatalf("outcome %s", o)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range QueueLength {
		if n := counts[strconv.Itoa(i)]; n != 5 {
			t.Errorf("event %d tried %d times, want 5", i, n)
		}
	}
}

// TestRecorderNeverBlocks: with the API server stuck, Eventf still returns
// at once; the queue is bounded and the excess is dropped and logged.
// (client-go's broadcaster drops likewise, DropIfChannelFull.)
func TestRecorderNeverBlocks(t *testing.T) {
	gate := make(chan struct{})
	api := &fakeEvents{onWrite: func(context.Context, int, string, *corev1.Event) error { <-gate; return nil }}
	h := newHarness(t, api, RecorderOptions{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range QueueLength + 50 {
			h.rec.Eventf(podRef(fmt.Sprint("spc-", i)), corev1.EventTypeNormal, "Created", "n %d", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatal("Eventf blocked while the API server did not answer")
	}
	// The writer holds one event and the queue QueueLength: the rest, at
	// least 49, were dropped.
	for range 49 {
		if o := h.outcome(); o != OutcomeDropped {
			t.Fatalf("outcome %s, want %s", o, OutcomeDropped)
		}
	}
	if !strings.Contains(h.logs.text(), "event dropped") {
		t.Error("events beyond the queue were not reported as dropped")
	}
	close(gate)
	h.rec.Shutdown(context.Background())
	if created, _ := api.writes(); len(created) > QueueLength+1 {
		t.Errorf("%d events written, more than the queue holds", len(created))
	}
	h.rec.Eventf(podRef("late"), corev1.EventTypeNormal, "Late", "after Shutdown")
	dropped := 0
	for len(h.outcomes) > 0 {
		if <-h.outcomes == OutcomeDropped {
			dropped++
		}
	}
	if dropped < 1 {
		t.Error("an event after Shutdown was not counted as dropped")
	}
}

// TestNonRacyShutdown ports client-go's (with TestBroadcasterShutdown):
// events from many goroutines, then Shutdown, race with nothing, and the
// writer ends.
func TestNonRacyShutdown(t *testing.T) {
	h := newHarness(t, &fakeEvents{}, RecorderOptions{})
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			h.rec.Eventf(&corev1.ObjectReference{Kind: "Pod", Name: "p"}, corev1.EventTypeNormal, "Started", "blah")
		})
	}
	wg.Wait()
	h.rec.Shutdown(context.Background())
	select {
	case <-h.rec.done:
	default:
		t.Error("the writer still runs after Shutdown")
	}
}

// TestRecorderNamesObjects: the object of an event is a reference, an
// object that says its kind, or a typed object of the recorder's scheme;
// one that does not say its kind, or an event of another type than Normal
// or Warning, is refused (as client-go's generateEvent refuses them), not
// written half-named. An object with the longest name still gets a valid
// event name.
func TestRecorderNamesObjects(t *testing.T) {
	pod := &unstructured.Unstructured{}
	pod.SetAPIVersion("v1")
	pod.SetKind("Pod")
	pod.SetNamespace("team")
	pod.SetName("web-0")
	// Cut to fit, its name would end in "-", which no name may.
	long := podRef(strings.Repeat("p", maxNamePrefix-1) + "-" + strings.Repeat("q", 253-maxNamePrefix))
	for name, tc := range map[string]struct {
		object    runtime.Object
		eventType string
		outcome   string
		kind      string
		apiVer    string
	}{
		"a reference":                {object: podRef("web-0"), eventType: corev1.EventTypeNormal, outcome: OutcomeRecorded, kind: "Pod", apiVer: "v1"},
		"an unstructured pod":        {object: pod, eventType: corev1.EventTypeNormal, outcome: OutcomeRecorded, kind: "Pod", apiVer: "v1"},
		"a typed Deployment":         {object: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "web", UID: "d1"}}, eventType: corev1.EventTypeNormal, outcome: OutcomeRecorded, kind: "Deployment", apiVer: "apps/v1"},
		"the longest name":           {object: long, eventType: corev1.EventTypeWarning, outcome: OutcomeRecorded, kind: "Pod", apiVer: "v1"},
		"a kind of no scheme":        {object: &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "kindless"}}, eventType: corev1.EventTypeNormal, outcome: OutcomeFailed},
		"not an object":              {object: &metav1.Status{}, eventType: corev1.EventTypeNormal, outcome: OutcomeFailed},
		"neither Normal nor Warning": {object: podRef("web-0"), eventType: "Fatal", outcome: OutcomeFailed},
	} {
		t.Run(name, func(t *testing.T) {
			api := &fakeEvents{}
			h := newHarness(t, api, RecorderOptions{CreateOnly: true})
			h.rec.Eventf(tc.object, tc.eventType, "Tested", "tested")
			if o := h.outcome(); o != tc.outcome {
				t.Fatalf("outcome %s, want %s", o, tc.outcome)
			}
			created, _ := api.writes()
			if tc.outcome != OutcomeRecorded {
				if len(created) != 0 {
					t.Errorf("written: %+v", created)
				}
				return
			}
			e := created[0]
			if e.InvolvedObject.Kind != tc.kind || e.InvolvedObject.APIVersion != tc.apiVer || e.Namespace != "team" || e.Source.Component != "coffer" || e.ReportingController != "coffer" {
				t.Errorf("event %+v", e)
			}
			if len(e.Name) > 253 || strings.Contains(e.Name, "-.") {
				t.Errorf("event name %q (%d characters)", e.Name, len(e.Name))
			}
		})
	}
}

// TestRecorderOutcomes: every event's fate reaches Outcome; a panic in the
// API client fails that event and the recorder goes on.
func TestRecorderOutcomes(t *testing.T) {
	api := &fakeEvents{onWrite: func(_ context.Context, try int, _ string, _ *corev1.Event) error {
		switch try {
		case 1:
			panic("CANARY-event-client-panic")
		case 2:
			return apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("no"))
		}
		return nil
	}}
	h := newHarness(t, api, RecorderOptions{})
	if o := h.send(podRef("a"), corev1.EventTypeNormal, "Panics", "panics"); o != OutcomeFailed {
		t.Errorf("a panic: %s", o)
	}
	if o := h.send(podRef("b"), corev1.EventTypeNormal, "Refused", "refused"); o != OutcomeFailed {
		t.Errorf("refused: %s", o)
	}
	if o := h.send(podRef("c"), corev1.EventTypeNormal, "Written", "written"); o != OutcomeRecorded {
		t.Errorf("after a panic and a refusal: %s", o)
	}
	if text := h.logs.text(); !strings.Contains(text, "writing an event failed") || strings.Contains(text, "CANARY") {
		t.Errorf("the panic was not logged, or its value was:\n%s", text)
	}
}

// TestRecorderCreateOnly: a writer allowed only to create events never
// patches one, a repeat included; each is created under its own name.
func TestRecorderCreateOnly(t *testing.T) {
	api := &fakeEvents{}
	h := newHarness(t, api, RecorderOptions{CreateOnly: true})
	h.send(podRef("web-0"), corev1.EventTypeNormal, "SecretsRotated", "same")
	h.clock.Step(time.Second)
	h.send(podRef("web-0"), corev1.EventTypeNormal, "SecretsRotated", "same")
	created, patched := api.writes()
	if len(created) != 2 || len(patched) != 0 {
		t.Fatalf("%d created, %d patched; want 2 and 0", len(created), len(patched))
	}
	if created[0].Name == created[1].Name || created[1].Count != 1 {
		t.Errorf("the repeat: name %q (first %q), count %d", created[1].Name, created[0].Name, created[1].Count)
	}
}
