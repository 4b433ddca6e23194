package kube

import (
	"encoding/json"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
)

// This file is client-go's EventCorrelator (tools/record/events_cache.go at
// v0.37.2, the go.mod's, unchanged since v0.34.3), which coffer cannot link
// (see Recorder): the same keys, the same three least-recently-used caches,
// the same order (aggregate, count, then filter). events_test.go runs
// client-go's own cases against it.

// The correlator's bounds, client-go's defaults.
const (
	// MaxTracked bounds each of the correlator's three caches (similar
	// events, repeats, budgets per object); past it, the least recently
	// used entry is forgotten, and only that one.
	MaxTracked = 4096
	// AggregateAfter similar events (same object, type and reason, other
	// messages) within AggregateWindow of each other become one event,
	// "(combined from similar events): <the latest message>".
	AggregateAfter  = 10
	AggregateWindow = 10 * time.Minute
	// Burst events about one object (and type) from this source, then one
	// per Refill.
	Burst  = 25
	Refill = 5 * time.Minute
)

// combinedPrefix starts an aggregated event's message.
const combinedPrefix = "(combined from similar events): "

// correlatorOptions are the correlator's bounds; zero values take the
// defaults above. Tests set some, as client-go's do.
type correlatorOptions struct {
	size         int
	burst        int
	qps          float32
	aggregate    int
	window       time.Duration
	countRepeats bool // false: every event is created new (CreateOnly)
}

// correlator filters, aggregates and counts events before they are written.
// One goroutine (the recorder's writer) uses it.
type correlator struct {
	clock        clock.PassiveClock
	burst        int
	qps          float32
	aggregate    int
	window       time.Duration
	countRepeats bool

	similar *lru.Cache // aggregate key -> similarRecord
	seen    *lru.Cache // event key -> seenRecord
	budgets *lru.Cache // spam key -> flowcontrol.PassiveRateLimiter
}

func newCorrelator(c clock.PassiveClock, o correlatorOptions) *correlator {
	if o.size == 0 {
		o.size = MaxTracked
	}
	if o.burst == 0 {
		o.burst = Burst
	}
	if o.qps == 0 {
		o.qps = float32(1 / Refill.Seconds())
	}
	if o.aggregate == 0 {
		o.aggregate = AggregateAfter
	}
	if o.window == 0 {
		o.window = AggregateWindow
	}
	return &correlator{
		clock: c, burst: o.burst, qps: o.qps, aggregate: o.aggregate, window: o.window, countRepeats: o.countRepeats,
		similar: lru.New(o.size), seen: lru.New(o.size), budgets: lru.New(o.size),
	}
}

// correlated is what to write: the event, and, for a repeat of one
// written before, the merge patch that counts it; or nothing (skip).
type correlated struct {
	event *corev1.Event
	patch []byte
	skip  bool
}

// correlate is client-go's EventCorrelate: aggregate, count, then spend
// the object's budget. A repeat is counted even when the budget skips it,
// so the next one written carries the whole count.
func (c *correlator) correlate(ev *corev1.Event) correlated {
	aggregated, key := c.aggregateSimilar(ev)
	observed, patch := c.observe(aggregated, key)
	if !c.allow(observed) {
		return correlated{skip: true}
	}
	return correlated{event: observed, patch: patch}
}

// eventKey names one exact event (client-go's getEventKey).
func eventKey(e *corev1.Event) string {
	return strings.Join([]string{
		e.Source.Component, e.Source.Host,
		e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name, e.InvolvedObject.FieldPath,
		string(e.InvolvedObject.UID), e.InvolvedObject.APIVersion,
		e.Type, e.Reason, e.Message,
	}, "")
}

// spamKey names the budget an event spends: its source, object and type
// (client-go's getSpamKey); not the field path, reason or message.
func spamKey(e *corev1.Event) string {
	return strings.Join([]string{
		e.Source.Component, e.Source.Host,
		e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name,
		string(e.InvolvedObject.UID), e.InvolvedObject.APIVersion,
		e.Type,
	}, "")
}

// aggregateKeys groups events that differ only by message (client-go's
// EventAggregatorByReasonFunc): the group's key, and the event's within it.
func aggregateKeys(e *corev1.Event) (group, local string) {
	return strings.Join([]string{
		e.Source.Component, e.Source.Host,
		e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name,
		string(e.InvolvedObject.UID), e.InvolvedObject.APIVersion,
		e.Type, e.Reason, e.ReportingController, e.ReportingInstance,
	}, ""), e.Message
}

// similarRecord is what the aggregator remembers of a group: the messages
// seen (at most AggregateAfter) and when it last saw one.
type similarRecord struct {
	messages map[string]struct{}
	last     time.Time
}

// aggregateSimilar is client-go's EventAggregate: the AggregateAfter-th
// distinct message of a group within the window (and every one after it)
// becomes the group's combined event, keyed by the group so that it is
// counted rather than created anew.
func (c *correlator) aggregateSimilar(ev *corev1.Event) (*corev1.Event, string) {
	now := c.clock.Now()
	group, local := aggregateKeys(ev)
	var rec similarRecord
	if v, ok := c.similar.Get(group); ok {
		rec = v.(similarRecord)
	}
	if now.Sub(rec.last) > c.window {
		rec = similarRecord{messages: map[string]struct{}{}}
	}
	rec.messages[local] = struct{}{}
	rec.last = now
	c.similar.Add(group, rec)
	if len(rec.messages) < c.aggregate {
		return ev, eventKey(ev)
	}
	// Keep the set below the bound (the map is shared with the cache).
	for m := range rec.messages {
		delete(rec.messages, m)
		break
	}
	t := metav1.NewTime(now)
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: eventName(ev.InvolvedObject.Name, now), Namespace: ev.Namespace},
		InvolvedObject: ev.InvolvedObject, Type: ev.Type, Reason: ev.Reason, Message: combinedPrefix + ev.Message,
		Source: ev.Source, FirstTimestamp: t, LastTimestamp: t, Count: 1,
		// client-go leaves these empty on a combined event; coffer keeps
		// saying who wrote it.
		ReportingController: ev.ReportingController, ReportingInstance: ev.ReportingInstance,
	}, group
}

// seenRecord is what the correlator remembers of an event it wrote.
type seenRecord struct {
	count           int32
	first           metav1.Time
	name            string
	resourceVersion string
}

// observe is client-go's eventObserve: a repeat of an event seen before
// takes that event's name, first time and resource version, and one more
// to its count, with the patch that writes the count, time and message.
// Without countRepeats it is the event itself, to be created.
func (c *correlator) observe(ev *corev1.Event, key string) (*corev1.Event, []byte) {
	if !c.countRepeats {
		return ev, nil
	}
	out := *ev
	var patch []byte
	if v, ok := c.seen.Get(key); ok {
		last := v.(seenRecord)
		out.Name, out.ResourceVersion, out.FirstTimestamp, out.Count = last.name, last.resourceVersion, last.first, last.count+1
		patch = countPatch(&out)
	}
	c.seen.Add(key, seenRecord{count: out.Count, first: out.FirstTimestamp, name: out.Name, resourceVersion: out.ResourceVersion})
	return &out, patch
}

// countPatch is the JSON merge patch that brings a written event up to ev:
// the fields client-go's strategic merge patch of a repeat holds.
func countPatch(ev *corev1.Event) []byte {
	// An int, a time and a string: marshalling cannot fail.
	p, _ := json.Marshal(struct {
		Count         int32       `json:"count"`
		LastTimestamp metav1.Time `json:"lastTimestamp"`
		Message       string      `json:"message"`
	}{ev.Count, ev.LastTimestamp, ev.Message})
	return p
}

// written is client-go's UpdateState: what the API server returned for an
// event, remembered under its exact key.
func (c *correlator) written(ev *corev1.Event) {
	if !c.countRepeats {
		return
	}
	c.seen.Add(eventKey(ev), seenRecord{count: ev.Count, first: ev.FirstTimestamp, name: ev.Name, resourceVersion: ev.ResourceVersion})
}

// allow spends one of the budget of the event's object (client-go's
// EventSourceObjectSpamFilter: a token bucket of Burst, refilled at one
// per Refill).
func (c *correlator) allow(ev *corev1.Event) bool {
	key := spamKey(ev)
	var l flowcontrol.PassiveRateLimiter
	if v, ok := c.budgets.Get(key); ok {
		l = v.(flowcontrol.PassiveRateLimiter)
	} else {
		l = flowcontrol.NewTokenBucketPassiveRateLimiterWithClock(c.qps, c.burst, c.clock)
	}
	ok := l.TryAccept()
	c.budgets.Add(key, l)
	return ok
}
