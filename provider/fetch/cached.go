package fetch

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/spc"
)

// attempt fetches objects in one region, serving what it can from the cache.
func (f *Fetcher) attempt(ctx context.Context, clients Clients, scope string, kind unitKind, objects []*spc.Object, region string, failover bool) []outcome {
	if kind == bulkUnit {
		return []outcome{f.bulk(ctx, clients, scope, region, objects[0])}
	}
	res := make([]outcome, len(objects))
	targets := make([]spc.Target, len(objects))
	var missing []int
	after := f.freshAfter(ctx)
	for i, o := range objects {
		targets[i] = o.Primary()
		if failover {
			targets[i] = *o.Failover
		}
		key := cacheKey(scope, region, o.Type, targets[i])
		if e, ok := f.Cache.Get(key, after); ok {
			res[i] = outcome{value: Value{Object: o, Data: e.Data, Version: e.Version, Region: region}, at: e.At}
			continue
		}
		if e, ok := f.unchanged(ctx, key, region, o, targets[i]); ok {
			res[i] = outcome{value: Value{Object: o, Data: e.Data, Version: e.Version, Region: region}, at: e.At}
			continue
		}
		missing = append(missing, i)
	}
	if len(missing) > 0 && !failover {
		missing = f.jitter(ctx, scope, region, objects, targets, res, missing)
	}
	if len(missing) == 0 {
		return res
	}
	objs := make([]*spc.Object, len(missing))
	tgts := make([]spc.Target, len(missing))
	for j, i := range missing {
		objs[j], tgts[j] = objects[i], targets[i]
	}
	var fetched []outcome
	switch kind {
	case parameterUnit:
		fetched = f.parameters(ctx, clients, scope, region, objs, tgts)
	case secretBatchUnit:
		fetched = f.secretBatch(ctx, clients, scope, region, objs, tgts)
	default:
		fetched = f.secrets(ctx, clients, scope, region, objs, tgts)
	}
	for j, i := range missing {
		res[i] = fetched[j]
		if r := fetched[j]; r.err == nil {
			f.Cache.Put(cacheKey(scope, region, objects[i].Type, targets[i]), cache.Entry{Data: r.value.Data, Version: r.value.Version, At: r.at, Position: f.Changes.PositionAt(r.at)})
		}
	}
	return res
}

// objectKey is the cache key of an object's value in a region.
func objectKey(scope, region string, o *spc.Object, t spc.Target) string {
	if o.Bulk() {
		return bulkKey(scope, region, o)
	}
	return cacheKey(scope, region, o.Type, t)
}

// entryValue is the value of o held in a cache entry.
func entryValue(o *spc.Object, region string, e cache.Entry) (Value, bool) {
	if !o.Bulk() {
		return Value{Object: o, Data: e.Data, Version: e.Version, Region: region}, true
	}
	var members []Member
	if json.Unmarshal(e.Data, &members) != nil {
		return Value{}, false
	}
	return Value{Object: o, Members: members, Region: region}, true
}

// cacheKey names a value by everything that decides access to it: the
// identity first, then region, service, name and selector.
func cacheKey(scope, region string, t spc.ObjectType, tg spc.Target) string {
	return strings.Join([]string{scope, region, string(t), tg.Name, tg.Version, tg.VersionLabel}, "\x00")
}
