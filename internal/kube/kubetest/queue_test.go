package kubetest

import (
	"context"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

func TestQueueDelaysPassWhenTheClockSteps(t *testing.T) {
	q := NewQueue[string](testingclock.NewFakeClock(time.Unix(0, 0)))
	defer q.ShutDown()
	q.AddAfter("late", time.Minute)
	q.AddAfter("late", 2*time.Minute) // the earlier due time is kept
	q.AddAfter("now", 0)
	if d, ok := q.Waiting("late"); !ok || d != time.Minute {
		t.Errorf("late waits %s (%v), want 1m", d, ok)
	}
	if q.Idle() {
		t.Error("idle with an item queued")
	}
	if item, _ := q.Get(); item != "now" {
		t.Fatalf("got %q first", item)
	}
	if q.Idle() {
		t.Error("idle with an item being processed")
	}
	q.Add("now") // added while processed: processed again after Done
	q.Done("now")
	if item, _ := q.Get(); item != "now" {
		t.Fatalf("got %q, want now again", item)
	}
	q.Done("now")
	if !q.Idle() || q.Len() != 0 || q.Processed("now") != 2 {
		t.Fatalf("idle %v, %d queued, now processed %d times", q.Idle(), q.Len(), q.Processed("now"))
	}

	q.Step(time.Minute - time.Nanosecond)
	if q.Len() != 0 {
		t.Fatal("queued before its delay passed")
	}
	q.Step(time.Nanosecond)
	if _, waiting := q.Waiting("late"); waiting || q.Len() != 1 {
		t.Fatalf("not queued once its delay passed (waiting %v, %d queued)", waiting, q.Len())
	}

	// WaitIdle and WaitProcessed return once a worker is done.
	go func() {
		item, _ := q.Get()
		q.Done(item)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.WaitProcessed(ctx, "late", 1); err != nil {
		t.Fatal(err)
	}
	if err := q.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	// And fail when the context ends first.
	q.Add("stuck")
	short, cancelShort := context.WithCancel(context.Background())
	cancelShort()
	if err := q.WaitIdle(short); err == nil {
		t.Error("WaitIdle returned with an item queued")
	}
}
