package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/coffer-csi/coffer/internal/panics"
)

// Recorder writes core/v1 Events in the background, with the safeguards of
// client-go's event recorder (tools/record, which coffer does not link: for
// its strategic merge patches it brings the OpenAPI libraries, 3 MB of
// binary that every DaemonSet pod would page in):
//   - Eventf never blocks: events wait in a bounded queue, and when it is
//     full they are dropped (and logged), never the caller slowed;
//   - an event that repeats one already written (same object, type,
//     reason and message, within RepeatWindow) increments that event's
//     count instead of creating another;
//   - each object gets at most Burst events, then one per Refill, so a
//     flapping object cannot flood the API server;
//   - what it remembers for the last two is bounded (MaxTracked objects).
type Recorder struct {
	events     EventsGetter
	scheme     *runtime.Scheme
	source     corev1.EventSource
	logger     *slog.Logger
	outcome    func(string)
	createOnly bool
	now        func() time.Time

	queue chan *corev1.Event
	done  chan struct{}
	// closing guards queue: Eventf sends under its read lock, Shutdown
	// closes it under its write lock.
	closing sync.RWMutex
	closed  bool

	mu      sync.Mutex
	limits  map[string]*rate.Limiter
	written map[string]writtenEvent
}

type writtenEvent struct {
	namespace, name string
	count           int32
	at              time.Time
}

// The recorder's bounds, those of client-go's recorder.
const (
	QueueLength  = 1000
	Burst        = 25
	Refill       = 5 * time.Minute
	RepeatWindow = 10 * time.Minute
	MaxTracked   = 4096
)

// What became of one event, for metrics.
const (
	OutcomeRecorded    = "recorded"     // created, or a repeat counted
	OutcomeRateLimited = "rate_limited" // its object's budget was spent
	OutcomeDropped     = "dropped"      // the queue was full, or the recorder stopped
	OutcomeFailed      = "failed"       // not written: the API refused it, or it named no object
)

// maxNamePrefix leaves room in an event's name for "." and 16 hex digits
// of the time, within the 253 characters of a name.
const maxNamePrefix = 253 - 17

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	// Source names the component (and node) writing the events.
	Source corev1.EventSource
	Logger *slog.Logger
	// Outcome, when set, sees what became of each event (an Outcome
	// constant). It must not block.
	Outcome func(outcome string)
	// CreateOnly creates every event, a repeat too, for a writer whose RBAC
	// grants create on events and not patch (the DaemonSet's).
	CreateOnly bool

	now func() time.Time
}

// NewRecorder starts a recorder writing through events; scheme names the
// kinds of typed objects that do not say theirs (as read from the API).
func NewRecorder(events EventsGetter, scheme *runtime.Scheme, o RecorderOptions) *Recorder {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Outcome == nil {
		o.Outcome = func(string) {}
	}
	if o.now == nil {
		o.now = time.Now
	}
	r := &Recorder{
		events: events, scheme: scheme, source: o.Source, logger: o.Logger, outcome: o.Outcome, createOnly: o.CreateOnly, now: o.now,
		queue: make(chan *corev1.Event, QueueLength), done: make(chan struct{}),
		limits: map[string]*rate.Limiter{}, written: map[string]writtenEvent{},
	}
	go r.run()
	return r
}

// Eventf records an event about object: an *corev1.ObjectReference, an
// object that carries its kind (unstructured ones), or a typed object of
// the recorder's scheme.
func (r *Recorder) Eventf(object runtime.Object, eventType, reason, messageFmt string, args ...any) {
	ref, err := reference(r.scheme, object)
	if err != nil {
		r.logger.Warn("event not recorded", "reason", reason, "error", err)
		r.outcome(OutcomeFailed)
		return
	}
	now := metav1.NewTime(r.now())
	ev := &corev1.Event{
		// Unique per object and instant, as client-go names events.
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ref.Name[:min(len(ref.Name), maxNamePrefix)], uint64(now.UnixNano())), Namespace: ref.Namespace},
		InvolvedObject: *ref, Reason: reason, Message: fmt.Sprintf(messageFmt, args...), Type: eventType,
		Source: r.source, FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: r.source.Component, ReportingInstance: r.source.Host,
	}
	if ev.Namespace == "" {
		ev.Namespace = metav1.NamespaceDefault
	}
	r.closing.RLock()
	defer r.closing.RUnlock()
	if r.closed {
		r.outcome(OutcomeDropped)
		return
	}
	select {
	case r.queue <- ev:
	default:
		r.logger.Warn("event dropped: too many events waiting to be written", "reason", reason, "object", ref.Namespace+"/"+ref.Name)
		r.outcome(OutcomeDropped)
	}
}

// Shutdown writes what is queued, until ctx ends, and stops the recorder.
// Later events are dropped.
func (r *Recorder) Shutdown(ctx context.Context) {
	r.closing.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.closing.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	for ev := range r.queue {
		// A panic in the API client fails the event, not the process.
		if err := panics.Run("writing an event", func() { r.outcome(r.write(ev)) }); err != nil {
			r.logger.Error("writing an event failed", "reason", ev.Reason, "error", err, "stack", panics.Stack(err))
			r.outcome(OutcomeFailed)
		}
	}
}

func (r *Recorder) write(ev *corev1.Event) string {
	objectKey := string(ev.InvolvedObject.UID) + "/" + ev.InvolvedObject.Namespace + "/" + ev.InvolvedObject.Name
	if !r.allow(objectKey) {
		return OutcomeRateLimited
	}
	key := objectKey + "\x00" + ev.Type + "\x00" + ev.Reason + "\x00" + ev.Message
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.mu.Lock()
	prev, repeat := r.written[key]
	r.mu.Unlock()
	if repeat && r.now().Sub(prev.at) < RepeatWindow {
		patch, err := json.Marshal(map[string]any{"count": prev.count + 1, "lastTimestamp": ev.LastTimestamp})
		if err == nil {
			if _, err = r.events.Events(prev.namespace).Patch(ctx, prev.name, types.MergePatchType, patch, metav1.PatchOptions{}); err == nil {
				r.remember(key, writtenEvent{namespace: prev.namespace, name: prev.name, count: prev.count + 1, at: r.now()})
				return OutcomeRecorded
			}
		}
		// The event is gone (events expire) or cannot be patched: write
		// a new one.
	}
	created, err := r.events.Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{})
	if err != nil {
		r.logger.Warn("event not recorded (RBAC: coffer needs create on events)", "reason", ev.Reason, "object", ev.InvolvedObject.Namespace+"/"+ev.InvolvedObject.Name, "error", err)
		return OutcomeFailed
	}
	r.remember(key, writtenEvent{namespace: created.Namespace, name: created.Name, count: 1, at: r.now()})
	return OutcomeRecorded
}

// allow spends one of the object's events.
func (r *Recorder) allow(objectKey string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.limits[objectKey]
	if !ok {
		if len(r.limits) >= MaxTracked {
			clear(r.limits) // forget every budget rather than grow
		}
		l = rate.NewLimiter(rate.Every(Refill), Burst)
		r.limits[objectKey] = l
	}
	return l.AllowN(r.now(), 1)
}

func (r *Recorder) remember(key string, w writtenEvent) {
	if r.createOnly {
		return // nothing is ever patched: no repeat is looked up
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.written[key]; !ok && len(r.written) >= MaxTracked {
		clear(r.written)
	}
	r.written[key] = w
}

// reference is the ObjectReference of an event's object.
func reference(scheme *runtime.Scheme, object runtime.Object) (*corev1.ObjectReference, error) {
	if ref, ok := object.(*corev1.ObjectReference); ok {
		return ref, nil
	}
	m, err := meta.Accessor(object)
	if err != nil {
		return nil, fmt.Errorf("an event names no object: %w", err)
	}
	gvk := object.GetObjectKind().GroupVersionKind()
	if gvk.Kind == "" && scheme != nil {
		if kinds, _, err := scheme.ObjectKinds(object); err == nil && len(kinds) > 0 {
			gvk = kinds[0]
		}
	}
	if gvk.Kind == "" {
		return nil, fmt.Errorf("an event's object %s/%s does not say its kind", m.GetNamespace(), m.GetName())
	}
	apiVersion, kind := gvk.ToAPIVersionAndKind()
	return &corev1.ObjectReference{APIVersion: apiVersion, Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUID(), ResourceVersion: m.GetResourceVersion()}, nil
}
