package kubetest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
	testingclock "k8s.io/utils/clock/testing"
)

// Queue is a controller's delaying work queue under a test's control:
// delays pass only when the test steps the clock through Step, and
// WaitIdle returns once nothing is queued or being processed. client-go's
// delaying queue hands delayed items to a goroutine of its own, so a test
// could not tell an item that will never be due from one not yet handed
// over; here both happen in the caller's goroutine. Items keep client-go's
// queue semantics (one worker per item, an item added while processed is
// processed again after Done): the queue is client-go's, with its delays
// held here.
type Queue[T comparable] struct {
	workqueue.TypedInterface[T]
	clock *testingclock.FakeClock

	mu sync.Mutex
	// waiting holds each delayed item's earliest due time, as client-go's
	// delaying queue keeps one.
	waiting map[T]time.Time
	// queued and processing mirror the inner queue's sets: an item is
	// marked before the inner queue sees it, and unmarked only after, so
	// that the queue never looks idle while an item is in hand.
	queued, processing map[T]bool
	// processed counts each item's Done calls.
	processed map[T]int
	// changed is closed and replaced whenever the state changes.
	changed chan struct{}
}

// NewQueue is a queue whose delays follow clk.
func NewQueue[T comparable](clk *testingclock.FakeClock) *Queue[T] {
	return &Queue[T]{
		TypedInterface: workqueue.NewTyped[T](),
		clock:          clk,
		waiting:        map[T]time.Time{},
		queued:         map[T]bool{},
		processing:     map[T]bool{},
		processed:      map[T]int{},
		changed:        make(chan struct{}),
	}
}

// Add queues item now.
func (q *Queue[T]) Add(item T) {
	if q.ShuttingDown() {
		return // the inner queue drops it: never mark what it will not hand out
	}
	q.mu.Lock()
	q.queued[item] = true
	q.notifyLocked()
	q.mu.Unlock()
	q.TypedInterface.Add(item)
}

// AddAfter queues item once the clock has been stepped past d.
func (q *Queue[T]) AddAfter(item T, d time.Duration) {
	if d <= 0 {
		q.Add(item)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	at := q.clock.Now().Add(d)
	if prev, ok := q.waiting[item]; !ok || at.Before(prev) {
		q.waiting[item] = at
	}
	q.notifyLocked()
}

// Get hands out the next item, as client-go's queue does.
func (q *Queue[T]) Get() (T, bool) {
	item, quit := q.TypedInterface.Get()
	if !quit {
		q.mu.Lock()
		q.processing[item] = true
		delete(q.queued, item)
		q.notifyLocked()
		q.mu.Unlock()
	}
	return item, quit
}

// Done ends the processing of item.
func (q *Queue[T]) Done(item T) {
	q.mu.Lock()
	delete(q.processing, item)
	q.processed[item]++
	q.notifyLocked()
	q.mu.Unlock()
	q.TypedInterface.Done(item)
}

// Step advances the clock by d and queues the items then due.
func (q *Queue[T]) Step(d time.Duration) {
	q.mu.Lock()
	q.clock.Step(d)
	now := q.clock.Now()
	var due []T
	for item, at := range q.waiting {
		if !at.After(now) {
			due = append(due, item)
			delete(q.waiting, item)
		}
	}
	q.mu.Unlock()
	for _, item := range due {
		q.Add(item)
	}
}

// Waiting is how long until item is due (false: it is not waiting).
func (q *Queue[T]) Waiting(item T) (time.Duration, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	at, ok := q.waiting[item]
	return at.Sub(q.clock.Now()), ok
}

// Idle is whether nothing is queued or being processed (items waiting for
// the clock do not count).
func (q *Queue[T]) Idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queued) == 0 && len(q.processing) == 0
}

// Processed is how many times item has been processed (Done).
func (q *Queue[T]) Processed(item T) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.processed[item]
}

// WaitIdle returns once the queue is idle: every item queued has been
// processed, and what its processing queued too. It fails when ctx ends
// first.
func (q *Queue[T]) WaitIdle(ctx context.Context) error {
	return q.wait(ctx, "work queue still busy", func() bool { return len(q.queued) == 0 && len(q.processing) == 0 })
}

// WaitProcessed returns once item has been processed n times in all, then
// once the queue is idle. It fails when ctx ends first.
func (q *Queue[T]) WaitProcessed(ctx context.Context, item T, n int) error {
	if err := q.wait(ctx, fmt.Sprintf("%v not processed %d times", item, n), func() bool { return q.processed[item] >= n }); err != nil {
		return err
	}
	return q.WaitIdle(ctx)
}

// Until returns once cond holds, checked now and after every change of
// the queue (an item added, handed out or done): for what a worker's
// processing makes true, which it has done by the time it calls Done. It
// fails when ctx ends first.
func (q *Queue[T]) Until(ctx context.Context, what string, cond func() bool) error {
	for {
		q.mu.Lock()
		changed := q.changed // before cond: a change in between is not missed
		q.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}
}

// wait returns once cond, called with q.mu held, holds.
func (q *Queue[T]) wait(ctx context.Context, what string, cond func() bool) error {
	for {
		q.mu.Lock()
		ok := cond()
		changed := q.changed
		q.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}
}

func (q *Queue[T]) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}
