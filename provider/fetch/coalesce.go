package fetch

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/coffer-csi/coffer/internal/flight"
)

// coalesce makes concurrent identical calls of one identity share one AWS
// call, within the identity's concurrency bound. Each caller waits no
// longer than its own context; the shared call runs to the first caller's
// deadline even if that caller goes away. It returns when the call that
// answered started. A caller whose pod mounted after the shared call
// started (Freshness.NotBefore) does not join it: AWS may have answered
// from before that mount. It makes a call of its own instead.
func coalesce[T any](ctx context.Context, f *Fetcher, scope, key string, call func(context.Context) (T, error)) (T, time.Time, error) {
	type timed struct {
		v  T
		at time.Time
	}
	run := func(key string) (timed, error) {
		return flight.Do(ctx, &f.calls, key, "", time.Minute, func(ctx context.Context) (timed, error) {
			at := f.clock().Now()
			f.inFlight.start(key, at)
			defer f.inFlight.end(key)
			release, err := f.limits.acquire(ctx, scope, f.MaxCallsPerIdentity)
			if err != nil {
				return timed{}, fmt.Errorf("waiting for one of this identity's %d concurrent AWS calls (--max-aws-calls-per-identity): %w", f.MaxCallsPerIdentity, err)
			}
			defer release()
			v, err := call(ctx)
			return timed{v, at}, err
		})
	}
	nb := freshnessOf(ctx).NotBefore
	own := key + "\x00after\x00" + strconv.FormatInt(nb.UnixNano(), 10)
	if started, ok := f.inFlight.started(key); ok && started.Before(nb) {
		key = own
	}
	r, err := run(key)
	if err == nil && r.at.Before(nb) {
		// Joined a call that was not yet recorded as started when checked.
		r, err = run(own)
	}
	return r.v, r.at, err
}

// callStarts records when each shared call in flight started.
type callStarts struct {
	mu     sync.Mutex
	starts map[string]time.Time
}

func (c *callStarts) start(key string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.starts == nil {
		c.starts = map[string]time.Time{}
	}
	c.starts[key] = at
}

func (c *callStarts) end(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.starts, key)
}

func (c *callStarts) started(key string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.starts[key]
	return at, ok
}

// identityLimits are per-identity semaphores, created on demand and
// dropped when idle, so the map stays as small as the identities in flight.
type identityLimits struct {
	mu   sync.Mutex
	sems map[string]*identitySem
}

type identitySem struct {
	slots chan struct{}
	users int
}

func (l *identityLimits) acquire(ctx context.Context, scope string, limit int) (func(), error) {
	if limit <= 0 {
		return func() {}, nil
	}
	l.mu.Lock()
	if l.sems == nil {
		l.sems = map[string]*identitySem{}
	}
	s, ok := l.sems[scope]
	if !ok {
		s = &identitySem{slots: make(chan struct{}, limit)}
		l.sems[scope] = s
	}
	s.users++
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		if s.users--; s.users == 0 {
			delete(l.sems, scope)
		}
		l.mu.Unlock()
	}
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}
