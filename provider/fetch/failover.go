package fetch

import (
	"context"
	"time"

	"github.com/coffer-csi/coffer/provider/spc"
)

// staleReserve is the share of a mount's remaining time kept from AWS
// calls when stale answers are allowed, so that an AWS that never answers
// still leaves time to answer with the last good value.
const staleReserve = 0.1

// fetchUnit fetches a unit in the primary region and retries, in the
// failover region, the objects that failed for a regional reason. The
// primary gets only part of the deadline when failover exists. Objects
// that failed for a regional reason everywhere are answered with their
// last good value when the mount allows it.
func (f *Fetcher) fetchUnit(ctx context.Context, cfg *spc.Config, clients Clients, scope string, u unit) []outcome {
	stale := f.ServeStale > 0 && f.Cache != nil && freshnessOf(ctx).AllowStale
	if deadline, ok := ctx.Deadline(); ok && stale {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(float64(time.Until(deadline))*(1-staleReserve)))
		defer cancel()
	}
	res := f.fetchRegions(ctx, cfg, clients, scope, u)
	if stale {
		f.serveStale(ctx, cfg, scope, u, res)
	}
	return res
}

// fetchRegions is fetchUnit without stale answers.
func (f *Fetcher) fetchRegions(ctx context.Context, cfg *spc.Config, clients Clients, scope string, u unit) []outcome {
	primaryCtx := ctx
	if cfg.FailoverRegion != "" {
		if deadline, ok := ctx.Deadline(); ok {
			share := f.PrimaryShare
			if share <= 0 || share >= 1 {
				share = 0.5
			}
			var cancel context.CancelFunc
			primaryCtx, cancel = context.WithTimeout(ctx, time.Duration(float64(time.Until(deadline))*share))
			defer cancel()
		}
	}
	res := f.attempt(primaryCtx, clients, scope, u.kind, u.objects, cfg.Region, false)
	if cfg.FailoverRegion == "" || ctx.Err() != nil {
		return res
	}
	var retry []int
	for i, r := range res {
		if r.err != nil && r.err.Kind.Regional() {
			retry = append(retry, i)
		}
	}
	if len(retry) == 0 {
		return res
	}
	sub := make([]*spc.Object, len(retry))
	for j, i := range retry {
		sub[j] = u.objects[i]
	}
	again := f.attempt(ctx, clients, scope, u.kind, sub, cfg.FailoverRegion, true)
	for j, i := range retry {
		if again[j].err == nil {
			res[i] = again[j]
		} else {
			res[i].err.Failover = again[j].err
		}
	}
	return res
}
