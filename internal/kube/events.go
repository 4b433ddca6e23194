package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/panics"
)

// Recorder writes core/v1 Events in the background as client-go's event
// recorder (tools/record) does, which the node binary does not link: its
// strategic merge patches bring the OpenAPI libraries, and its sink is
// the clientset's typed core client, with a scheme of every API group
// (cmd/coffer: TestBinaryLinksNoClientset). client-go's own test cases, ported in
// events_test.go with a fake clock, hold it to client-go's behaviour:
//   - Eventf never blocks: events wait in a queue of QueueLength, one
//     goroutine writes them, and an event that finds the queue full is
//     dropped (logged, and counted as OutcomeDropped);
//   - before it is written, an event is correlated as client-go does
//     (events_correlate.go): AggregateAfter events of one object, type and
//     reason with other messages, within AggregateWindow, become one
//     combined event; a repeat of an event written before is counted on
//     it (a patch of its count) rather than created again, unless
//     CreateOnly; and each object (with the event's type) has a budget of
//     Burst events, then one per Refill;
//   - the three caches this needs hold MaxTracked entries each, and past
//     that forget the least recently used one;
//   - a write that fails for a reason a retry can fix (no answer within
//     RequestTimeout, a connection refused) is tried again, up to MaxTries
//     in all, RetryInterval apart (the first wait a random part of it, so
//     that nodes do not retry in step); one the API server refused (any
//     status: forbidden, invalid, exists...) or that cannot be built is
//     not, as in client-go; the log says which it was;
//   - an event whose patch finds it gone (events expire) is created anew.
//
// While one event waits for its retry, the ones behind it wait in the
// queue, as in client-go; the queue's bound keeps that from growing.
type Recorder struct {
	events     EventsGetter
	scheme     *runtime.Scheme
	source     corev1.EventSource
	logger     *slog.Logger
	outcome    func(string)
	clock      clock.WithDelayedExecution
	correlator *correlator

	queue chan *corev1.Event
	done  chan struct{}
	// stopping is closed by Shutdown: from then on each event is tried
	// once, as client-go does once its broadcaster is shut down.
	stopping chan struct{}
	// ctx is cancelled when Shutdown gives up waiting: the write in flight
	// is abandoned and what is still queued dropped.
	ctx    context.Context
	cancel context.CancelFunc
	// closing guards queue: Eventf sends under its read lock, Shutdown
	// closes it under its write lock.
	closing sync.RWMutex
	closed  bool
}

// The recorder's bounds; those of the correlator are in events_correlate.go.
const (
	// QueueLength is client-go's maxQueuedEvents.
	QueueLength = 1000
	// MaxTries and RetryInterval are client-go's maxTriesPerEvent and
	// defaultSleepDuration.
	MaxTries      = 12
	RetryInterval = 10 * time.Second
	// RequestTimeout bounds one try (client-go leaves it to the REST
	// client's configuration), so that a hung API server holds the writer
	// for at most MaxTries of these and the waits between them.
	RequestTimeout = 10 * time.Second
)

// What became of one event, for metrics.
const (
	OutcomeRecorded    = "recorded"     // created, or a repeat counted
	OutcomeRateLimited = "rate_limited" // its object's budget was spent
	OutcomeDropped     = "dropped"      // the queue was full, or the recorder stopped
	OutcomeFailed      = "failed"       // not written: refused, out of tries, or it named no object
)

// maxNamePrefix leaves room in an event's name for "." and 16 hex digits
// of the time, within the 253 characters of a name.
const maxNamePrefix = 253 - 17

// errRequestTimeout is why a try's context ends after RequestTimeout.
var errRequestTimeout = errors.New("no answer within the request timeout")

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	// Source names the component (and node) writing the events.
	Source corev1.EventSource
	Logger *slog.Logger
	// Outcome, when set, sees what became of each event (an Outcome
	// constant). It must not block.
	Outcome func(outcome string)
	// CreateOnly creates every event, a repeat too (counted 1, under a new
	// name), for a writer whose RBAC grants create on events and not patch
	// (the DaemonSet's). Aggregation and budgets apply as without it.
	CreateOnly bool
	// Clock times events, budgets, aggregation, retries and the request
	// timeout; the real clock by default.
	Clock clock.WithDelayedExecution
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
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{
		events: events, scheme: scheme, source: o.Source, logger: o.Logger, outcome: o.Outcome, clock: o.Clock,
		correlator: newCorrelator(o.Clock, correlatorOptions{countRepeats: !o.CreateOnly}),
		queue:      make(chan *corev1.Event, QueueLength), done: make(chan struct{}), stopping: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
	go r.run()
	return r
}

// Eventf records an event about object: an *corev1.ObjectReference, an
// object that carries its kind (unstructured ones), or a typed object of
// the recorder's scheme. eventType is Normal or Warning.
func (r *Recorder) Eventf(object runtime.Object, eventType, reason, messageFmt string, args ...any) {
	ref, err := reference(r.scheme, object)
	if err != nil {
		r.logger.Warn("event not recorded", "reason", reason, "error", err)
		r.outcome(OutcomeFailed)
		return
	}
	if eventType != corev1.EventTypeNormal && eventType != corev1.EventTypeWarning {
		r.logger.Warn("event not recorded: its type is neither Normal nor Warning", "reason", reason, "type", eventType)
		r.outcome(OutcomeFailed)
		return
	}
	now := r.clock.Now()
	t := metav1.NewTime(now)
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: eventName(ref.Name, now), Namespace: ref.Namespace},
		InvolvedObject: *ref, Reason: reason, Message: fmt.Sprintf(messageFmt, args...), Type: eventType,
		Source: r.source, FirstTimestamp: t, LastTimestamp: t, Count: 1,
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
		r.logger.Warn("event dropped: too many events waiting to be written", "reason", reason, "object", objectName(ev))
		r.outcome(OutcomeDropped)
	}
}

// eventName is unique per object and instant, as client-go names events,
// and a valid name for any object's: cut to fit, and ending in a letter or
// digit before the time.
func eventName(object string, at time.Time) string {
	prefix := strings.TrimRight(object[:min(len(object), maxNamePrefix)], ".-")
	if prefix == "" {
		prefix = "event"
	}
	return fmt.Sprintf("%s.%x", prefix, uint64(at.UnixNano()))
}

// Shutdown stops taking events and writes what is queued, each with one
// try and no retry, until ctx ends; then it abandons the write in flight
// and drops the rest.
func (r *Recorder) Shutdown(ctx context.Context) {
	r.closing.Lock()
	if !r.closed {
		r.closed = true
		close(r.stopping)
		close(r.queue)
	}
	r.closing.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		r.cancel()
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	defer r.cancel()
	for ev := range r.queue {
		if r.ctx.Err() != nil {
			r.outcome(OutcomeDropped)
			continue
		}
		// A panic in the API client fails the event, not the process.
		if err := panics.Run("writing an event", func() { r.outcome(r.record(ev)) }); err != nil {
			r.logger.Error("writing an event failed", "reason", ev.Reason, "error", err, "stack", panics.Stack(err))
			r.outcome(OutcomeFailed)
		}
	}
}

// record correlates an event and writes it, as client-go's recordToSink.
func (r *Recorder) record(ev *corev1.Event) string {
	c := r.correlator.correlate(ev)
	if c.skip {
		return OutcomeRateLimited
	}
	for try := 1; ; try++ {
		err := r.writeOnce(c.event, c.patch)
		if err == nil {
			return OutcomeRecorded
		}
		log := r.logger.With("reason", ev.Reason, "object", objectName(ev), "try", try, "why", err.why, "error", err.detail)
		switch {
		case r.ctx.Err() != nil:
			log.Warn("event not recorded: the recorder stopped")
			return OutcomeDropped
		case !err.retry:
			level := slog.LevelWarn
			if err.expected {
				level = slog.LevelDebug
			}
			log.Log(r.ctx, level, "event not recorded (will not retry)")
			return OutcomeFailed
		case try >= MaxTries:
			log.Warn("event not recorded: out of tries")
			return OutcomeFailed
		case r.isStopping():
			log.Warn("event not recorded: the recorder is stopping")
			return OutcomeFailed
		}
		delay := RetryInterval
		if try == 1 {
			// As client-go: so that writers do not all retry in step
			// when the API server comes back.
			delay = time.Duration(float64(delay) * rand.Float64())
		}
		// The timer is set before the log says so: whoever reads the log
		// (a test with a fake clock) may move the time at once.
		wait := r.clock.NewTimer(delay)
		log.Warn("event not written yet (will retry)", "retry_in", delay)
		select {
		case <-wait.C():
		case <-r.stopping:
			wait.Stop()
			log.Warn("event not recorded: the recorder is stopping")
			return OutcomeFailed
		}
	}
}

func (r *Recorder) isStopping() bool {
	select {
	case <-r.stopping:
		return true
	default:
		return false
	}
}

// writeOnce is client-go's recordEvent: a repeat patches the event written
// before, or creates it anew if it is gone; any other event is created.
func (r *Recorder) writeOnce(ev *corev1.Event, patch []byte) *writeError {
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)
	timeout := r.clock.AfterFunc(RequestTimeout, func() { cancel(errRequestTimeout) })
	defer timeout.Stop()
	events := r.events.Events(ev.Namespace)
	if ev.Count > 1 && patch != nil {
		patched, err := events.Patch(ctx, ev.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			r.correlator.written(patched)
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return classify("patch", ev.Namespace, err, context.Cause(ctx))
		}
		// The event expired: create it again, with its count.
	}
	create := *ev
	create.ResourceVersion = ""
	created, err := events.Create(ctx, &create, metav1.CreateOptions{})
	if err != nil {
		return classify("create", ev.Namespace, err, context.Cause(ctx))
	}
	r.correlator.written(created)
	return nil
}

// writeError says why one try failed, in words for the log, and whether
// another try could succeed.
type writeError struct {
	why    string
	detail string
	retry  bool
	// expected: client-go logs these only at high verbosity.
	expected bool
}

// classify is client-go's judgement of a failed write (retry unless the
// server answered with a status or the request could not be built), with
// what each failure means said. detail never holds field values: an
// Invalid status's message quotes them, so only its causes' fields are
// kept.
func classify(verb, namespace string, err, cause error) *writeError {
	var construction *rest.RequestConstructionError
	var status apierrors.APIStatus
	switch {
	case errors.Is(cause, errRequestTimeout):
		return &writeError{why: fmt.Sprintf("the API server did not answer within %s", RequestTimeout), detail: err.Error(), retry: true}
	case errors.As(err, &construction):
		return &writeError{why: "the request could not be built", detail: err.Error()}
	case !errors.As(err, &status):
		// Transport errors, and answers that did not decode.
		return &writeError{why: "the API server could not be reached", detail: err.Error(), retry: true}
	}
	switch {
	case apierrors.IsUnauthorized(err):
		return &writeError{why: "the API server did not accept coffer's credentials", detail: err.Error()}
	case apierrors.IsAlreadyExists(err):
		return &writeError{why: "an event of that name exists already", detail: err.Error(), expected: true}
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		// A Forbidden status with this cause.
		return &writeError{why: fmt.Sprintf("namespace %q is being deleted", namespace), detail: err.Error(), expected: true}
	case ForbiddenByRBAC(err):
		// An admission policy's refusal is Forbidden too, in other words.
		return &writeError{why: fmt.Sprintf("RBAC: coffer may not %s events in namespace %q (its Role lacks %s on events)", verb, namespace, verb), detail: err.Error()}
	case apierrors.IsForbidden(err):
		return &writeError{why: "an admission policy or webhook refused the event", detail: err.Error()}
	case apierrors.IsNotFound(err):
		return &writeError{why: fmt.Sprintf("namespace %q does not exist", namespace), detail: err.Error()}
	case apierrors.IsInvalid(err):
		return &writeError{why: "the API server found the event invalid", detail: invalidFields(status.Status())}
	default:
		s := status.Status()
		return &writeError{why: fmt.Sprintf("the API server refused the event (%s, %d)", s.Reason, s.Code), detail: err.Error()}
	}
}

// invalidFields names the fields an Invalid status found wrong, and how,
// without the values its message quotes.
func invalidFields(s metav1.Status) string {
	if s.Details == nil || len(s.Details.Causes) == 0 {
		return string(s.Reason)
	}
	fields := make([]string, len(s.Details.Causes))
	for i, c := range s.Details.Causes {
		fields[i] = c.Field + ": " + string(c.Type)
	}
	return strings.Join(fields, "; ")
}

func objectName(ev *corev1.Event) string {
	return ev.InvolvedObject.Kind + " " + ev.InvolvedObject.Namespace + "/" + ev.InvolvedObject.Name
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
