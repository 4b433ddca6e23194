// Package flight shares one piece of work among concurrent callers that
// ask for the same key (a burst of pods of one workload: one STS call, one
// AWS call), while each caller waits no longer than its own context.
package flight

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/coffer-csi/coffer/internal/panics"
)

// maxRetries bounds how often one caller retries flights that ran out of
// other callers' time.
const maxRetries = 3

// Group is a set of keyed flights. The zero value is ready to use.
type Group struct {
	g singleflight.Group
}

// Do runs fn once for all concurrent callers of key and returns its result.
//
// fn gets a context detached from the caller that started it (the work
// serves every caller waiting) but ending at that caller's deadline, or
// after fallback when it has none: a hanging upstream holds no one longer
// than the first caller's own budget. A caller whose context ends first
// gets its context's error, prefixed with waiting when not empty. A flight
// that ran out of its first caller's time while this caller still has
// some is tried again, in this caller's time (a few times at most: the
// flight it joins may itself belong to a caller whose time is running out).
func Do[T any](ctx context.Context, g *Group, key, waiting string, fallback time.Duration, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		ch := g.g.DoChan(key, func() (v any, err error) {
			// singleflight re-panics a panic of fn in a new goroutine,
			// which ends the process: every waiter gets an error instead.
			defer panics.Catch(&err, "sharing a call among concurrent mounts")
			shared, cancel := SharedContext(ctx, fallback)
			defer cancel()
			return fn(shared)
		})
		select {
		case r := <-ch:
			if r.Err != nil && attempt < maxRetries && errors.Is(r.Err, context.DeadlineExceeded) && ctx.Err() == nil {
				continue
			}
			if r.Err != nil {
				return zero, r.Err
			}
			return r.Val.(T), nil
		case <-ctx.Done():
			if waiting == "" {
				return zero, ctx.Err()
			}
			return zero, fmt.Errorf("%s: %w", waiting, ctx.Err())
		}
	}
}

// SharedContext is the context of work shared by concurrent callers: it
// survives the caller that started it but ends at that caller's deadline,
// or after fallback without one.
func SharedContext(ctx context.Context, fallback time.Duration) (context.Context, context.CancelFunc) {
	shared := context.WithoutCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		return context.WithDeadline(shared, deadline)
	}
	return context.WithTimeout(shared, fallback)
}
