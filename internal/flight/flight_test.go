package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coffer-csi/coffer/internal/panics"
)

func TestDoSharesOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group
		var calls atomic.Int64
		release := make(chan struct{})
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				v, err := Do(context.Background(), &g, "k", "", time.Minute, func(context.Context) (int, error) {
					calls.Add(1)
					<-release
					return 7, nil
				})
				if v != 7 || err != nil {
					t.Errorf("Do = %d, %v", v, err)
				}
			})
		}
		synctest.Wait() // every caller is in the flight or waiting on it
		close(release)
		wg.Wait()
		if n := calls.Load(); n != 1 {
			t.Errorf("calls = %d, want 1", n)
		}
	})
}

func TestDoCallerWaitsOnlyItsOwnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group
		first := make(chan struct{})
		go func() {
			defer close(first)
			Do(context.Background(), &g, "k", "", time.Minute, func(ctx context.Context) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			})
		}()
		synctest.Wait() // the flight is running
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := Do(ctx, &g, "k", "waiting for it", time.Minute, func(context.Context) (int, error) { return 1, nil })
		if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "waiting for it: context deadline exceeded" {
			t.Errorf("err = %v", err)
		}
		if waited := time.Since(start); waited != 20*time.Millisecond {
			t.Errorf("waited %s for a flight of a minute, want its own 20ms", waited)
		}
		<-first // the flight ends at its fallback, a minute in
	})
}

func TestDoRetriesAFlightThatRanOutOfAnotherCallersTime(t *testing.T) {
	var g Group
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	go Do(short, &g, "k", "", time.Minute, func(ctx context.Context) (int, error) {
		// The short caller may itself retry once if its flight's timer
		// fires before its own context's.
		once.Do(func() { close(started) })
		<-ctx.Done() // ends at the short caller's deadline
		return 0, ctx.Err()
	})
	<-started
	v, err := Do(context.Background(), &g, "k", "", time.Minute, func(context.Context) (int, error) { return 2, nil })
	if v != 2 || err != nil {
		t.Errorf("Do = %d, %v; want the retried result", v, err)
	}
}

// TestPanicIsAnErrorForEveryWaiter: a panic in the shared function reaches
// every caller as an error; the process goes on.
func TestPanicIsAnErrorForEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group
		release := make(chan struct{})
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 5 {
			wg.Go(func() {
				_, err := Do(context.Background(), &g, "k", "", time.Minute, func(context.Context) (int, error) {
					<-release
					panic("boom")
				})
				var pe *panics.Error
				if errors.As(err, &pe) {
					failed.Add(1)
				} else {
					t.Errorf("Do = %v, want a panics.Error", err)
				}
			})
		}
		synctest.Wait() // every caller is in the flight or waiting on it
		close(release)
		wg.Wait()
		if failed.Load() != 5 {
			t.Errorf("%d callers got the error, want 5", failed.Load())
		}
	})
}
