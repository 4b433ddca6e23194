package fetch

import (
	"context"
	"time"

	"github.com/coffer-csi/coffer/provider/spc"
)

// Freshness is what one Fetch may accept besides values read within the
// Fetcher's Reuse window.
type Freshness struct {
	// NotBefore refuses values read before it, cached or from a shared
	// call: the end of the pod's previous successful mount.
	NotBefore time.Time
	// AllowStale lets an outage be answered with the last good value
	// (Fetcher.ServeStale; not before NotBefore either).
	AllowStale bool
}

type freshnessKey struct{}

// WithFreshness returns a context whose Fetch calls observe fr.
func WithFreshness(ctx context.Context, fr Freshness) context.Context {
	return context.WithValue(ctx, freshnessKey{}, fr)
}

func freshnessOf(ctx context.Context) Freshness {
	fr, _ := ctx.Value(freshnessKey{}).(Freshness)
	return fr
}

// freshAfter is the earliest read time a value served from the cache may
// have.
func (f *Fetcher) freshAfter(ctx context.Context) time.Time {
	after := f.clock().Now().Add(-f.Reuse)
	if nb := freshnessOf(ctx).NotBefore; nb.After(after) {
		return nb
	}
	return after
}

// serveStale replaces each failure that says AWS is unavailable in every
// region tried by the newest good value of the identity still allowed (read
// within ServeStale, and not before the pod's previous mount). Answers
// such as not found, access denied or a KMS failure are never replaced.
func (f *Fetcher) serveStale(ctx context.Context, cfg *spc.Config, scope string, u unit, res []outcome) {
	notBefore := f.clock().Now().Add(-f.ServeStale)
	if nb := freshnessOf(ctx).NotBefore; nb.After(notBefore) {
		notBefore = nb
	}
	for i, r := range res {
		if r.err == nil || !r.err.Kind.Regional() || (r.err.Failover != nil && !r.err.Failover.Kind.Regional()) {
			continue
		}
		o := u.objects[i]
		region := cfg.Region
		best, found := f.Cache.Last(objectKey(scope, region, o, o.Primary()), notBefore)
		if r.err.Failover != nil {
			target := o.Primary()
			if o.Failover != nil {
				target = *o.Failover
			}
			if e, ok := f.Cache.Last(objectKey(scope, cfg.FailoverRegion, o, target), notBefore); ok && (!found || e.At.After(best.At)) {
				best, region, found = e, cfg.FailoverRegion, true
			}
		}
		if !found {
			continue
		}
		v, ok := entryValue(o, region, best)
		if !ok {
			continue
		}
		v.Stale = &Stale{Age: f.clock().Since(best.At), Reason: r.err.Kind}
		res[i] = outcome{value: v, at: best.At}
	}
}
