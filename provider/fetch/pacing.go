package fetch

import (
	"context"
	"time"

	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/spc"
)

// jitter delays a remount's AWS reads by a random part of Quota's jitter:
// the driver's rotation sweeps of many nodes line up, and this is the part
// of their timing coffer controls. New pods are never delayed. Values that
// another mount of the identity read meanwhile (after this pod's previous
// mount) are taken from the cache, and the rest returned.
func (f *Fetcher) jitter(ctx context.Context, scope, region string, objects []*spc.Object, targets []spc.Target, res []outcome, missing []int) []int {
	if freshnessOf(ctx).NotBefore.IsZero() {
		return missing
	}
	d := f.Quota.JitterDelay()
	if deadline, ok := ctx.Deadline(); ok {
		// Never spend more than a tenth of what is left on waiting.
		d = min(d, time.Until(deadline)/10)
	}
	if d <= 0 {
		return missing
	}
	t := f.clock().NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
	case <-ctx.Done():
		return missing
	}
	after := f.freshAfter(ctx)
	var still []int
	for _, i := range missing {
		if e, ok := f.Cache.Get(cacheKey(scope, region, objects[i].Type, targets[i]), after); ok {
			res[i] = outcome{value: Value{Object: objects[i], Data: e.Data, Version: e.Version, Region: region}, at: e.At}
			continue
		}
		still = append(still, i)
	}
	return still
}

// paced runs one AWS call of api within the node's budget, and tells the
// budget when AWS throttled it. A call that AWS still throttles after the
// SDK's retries is sent again after a jittered backoff, paced by the
// budget (which the throttle halved), as long as the deadline leaves room
// for the wait: the reads of rotation sweeps that line up across nodes then
// spread over the mount's deadline instead of failing in its first
// seconds. Not when shift is set: the caller moves the work to another API
// instead.
func paced[T any](ctx context.Context, f *Fetcher, api quota.API, shift bool, call func(context.Context) (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		var zero T
		if err := f.Quota.Wait(ctx, api, shift); err != nil {
			return zero, err
		}
		v, err := call(ctx)
		if err == nil || Classify(err) != KindThrottled || f.Quota == nil {
			return v, err
		}
		f.Quota.Throttled(api)
		if shift {
			return v, err
		}
		d := f.Quota.Backoff(attempt)
		deadline, ok := ctx.Deadline()
		if !ok || time.Until(deadline) < 2*d {
			return v, err
		}
		t := f.clock().NewTimer(d)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return v, err
		}
	}
}
