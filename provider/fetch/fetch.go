// Package fetch reads the objects of a SecretProviderClass from AWS Secrets
// Manager and Parameter Store: batched where the API allows, concurrent
// within a bound, cached and coalesced per identity, with failover to a
// second region only when the first is in trouble. Every object either
// yields a value or an error that says which object failed, why, and how to
// fix it.
package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-csi/coffer/internal/flight"
	"github.com/coffer-csi/coffer/internal/panics"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/spc"
)

// The AWS operations coffer calls, named by the layer below (awsapi), so
// that awsapi's clients satisfy Clients without importing fetch.
type (
	SecretsManagerAPI = awsapi.SecretsManagerAPI
	ParameterStoreAPI = awsapi.ParameterStoreAPI
)

// Clients hands out AWS clients of one workload identity, per region.
type Clients interface {
	SecretsManager(region string) SecretsManagerAPI
	ParameterStore(region string) ParameterStoreAPI
}

// Value is the fetched content of one object.
type Value struct {
	Object *spc.Object
	Data   []byte
	// Version identifies the content: the Secrets Manager VersionId or the
	// Parameter Store version number. It is never derived from the data.
	Version string
	// Region is the region that answered.
	Region string
	// Members are the entries a path or filter object selected (coffer
	// extension); Data and Version are empty for such objects.
	Members []Member
	// Stale is set when AWS was unavailable and this is the last good
	// value the identity read (Fetcher.ServeStale); nil for a fresh value.
	Stale *Stale
}

// Stale describes a value served during an outage.
type Stale struct {
	// Age is how long ago the value was read from AWS.
	Age time.Duration
	// Reason is why AWS could not answer now (throttled, unavailable,
	// timeout).
	Reason Kind
}

// Limits of the AWS batch APIs.
const (
	parameterBatch = quota.ParametersPerCall
	secretBatch    = quota.SecretsPerBatch
)

// Fetcher fetches objects. The zero value is usable: no cache, no batching
// memory.
type Fetcher struct {
	// Concurrency bounds the AWS calls one Fetch has in flight (default 8).
	Concurrency int
	// PrimaryShare is the share of the remaining deadline the primary region
	// may use when a failover region is configured, so a hanging primary
	// leaves time for the failover (default 0.5).
	PrimaryShare float64
	// Cache holds fetched values (nil: off). Keys start with the
	// identity's key, so values never cross identities. It must keep
	// values at least max(Reuse, ServeStale).
	Cache *cache.Cache
	// Reuse is how long after it was read a value may serve other mounts
	// of the identity: the freshness bound (0: every mount reads AWS).
	Reuse time.Duration
	// ServeStale, when positive, lets a mount that asks for it
	// (WithFreshness) be answered with the identity's last good value, read
	// at most this long ago, when AWS is unavailable: throttled after
	// retries, 5xx, timeouts, connection errors, in every region tried.
	// Never on any other failure.
	ServeStale time.Duration

	// MaxBytes bounds the bytes of values one Fetch reads (0: no bound).
	// A path or filter object stops paging once its members pass it, and
	// a Fetch starts no further AWS call once the values it holds do; it
	// then fails with a *BudgetError naming the largest objects.
	MaxBytes int

	// MaxCallsPerIdentity bounds the AWS calls one identity has in flight
	// across all its mounts (0: no bound), so a burst of one workload
	// cannot starve the others or trip its own rate limits.
	MaxCallsPerIdentity int

	// Quota is the node's budget per AWS API and its memory of AWS's
	// throttling: it paces calls, and shifts current secrets from the batch
	// API to single calls when the batch API has no headroom (nil: no
	// budgets, always batch).
	Quota *quota.Controller

	// calls coalesces identical in-flight AWS calls of one identity;
	// inFlight says when each started.
	calls    flight.Group
	inFlight callStarts
	// limits holds the per-identity call semaphores.
	limits identityLimits
	// batchDenied remembers identities whose role lacks
	// secretsmanager:BatchGetSecretValue, so they are not asked again.
	batchDenied denyList
}

// Fetch reads every object of cfg as the identity named by scope (the
// identity's key: it scopes cached values and coalesced calls). It returns
// the values that were fetched, in object order, and Errors listing every
// object that failed. Callers must treat any error as a failed mount: the
// values are returned only so that problems in them can be reported
// together with the fetch failures.
func (f *Fetcher) Fetch(ctx context.Context, cfg *spc.Config, clients Clients, scope string) ([]Value, error) {
	outcomes := make([]outcome, len(cfg.Objects))
	units := plan(cfg.Objects)
	var used atomic.Int64 // bytes of the values fetched so far
	var jobs []func(context.Context)
	for _, u := range units {
		jobs = append(jobs, func(ctx context.Context) {
			if f.overBudget(used.Load()) {
				for _, o := range u.objects {
					outcomes[o.Index] = outcome{err: &ObjectError{Object: o, Entry: -1, Kind: KindInvalid,
						Detail: fmt.Sprintf("not fetched: the mount already holds more than %d bytes of values", f.MaxBytes)}}
				}
				return
			}
			res := f.fetchUnit(ctx, cfg, clients, scope, u)
			for j, o := range u.objects {
				outcomes[o.Index] = res[j]
				used.Add(int64(res[j].value.size()))
			}
		})
	}
	for i, err := range runBounded(ctx, f.concurrency(), jobs) {
		if err != nil {
			for _, o := range units[i].objects {
				outcomes[o.Index] = outcome{err: internalError(o, err)}
			}
		}
	}

	if f.overBudget(used.Load()) || anyTooLarge(outcomes) {
		return nil, budgetError(outcomes, f.MaxBytes)
	}

	var failed Errors
	var fetched []Value
	for _, r := range outcomes {
		if r.err != nil {
			failed = append(failed, r.err)
		} else {
			fetched = append(fetched, r.value)
		}
	}
	if len(failed) > 0 {
		return fetched, failed
	}
	return fetched, nil
}

func (f *Fetcher) overBudget(n int64) bool { return f.MaxBytes > 0 && n > int64(f.MaxBytes) }

// size is the bytes of a value's data.
func (v Value) size() int {
	n := len(v.Data)
	for _, m := range v.Members {
		n += len(m.Data)
	}
	return n
}

// BudgetError is a Fetch that read more than its MaxBytes.
type BudgetError struct {
	Limit int
	// Largest names the largest objects and their sizes (at least, for
	// one that stopped paging).
	Largest string
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("the mount's objects hold more than %d bytes of values (twice --max-response-bytes), more than its response can return; largest: %s; split the objects across several SecretProviderClasses or drop large ones", e.Limit, e.Largest)
}

func anyTooLarge(outcomes []outcome) bool {
	for _, r := range outcomes {
		if r.err != nil && errors.Is(r.err.Err, errTooLarge) {
			return true
		}
	}
	return false
}

func budgetError(outcomes []outcome, limit int) *BudgetError {
	type sized struct {
		o       *spc.Object
		n       int
		atLeast bool
	}
	var list []sized
	for _, r := range outcomes {
		switch {
		case r.err != nil && errors.Is(r.err.Err, errTooLarge):
			list = append(list, sized{r.err.Object, limit + 1, true})
		case r.err == nil && r.value.Object != nil:
			list = append(list, sized{r.value.Object, r.value.size(), false})
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].n > list[j].n })
	var largest []string
	for _, s := range list[:min(3, len(list))] {
		if s.atLeast {
			largest = append(largest, fmt.Sprintf("%s more than %d bytes", s.o.Describe(), limit))
		} else {
			largest = append(largest, fmt.Sprintf("%s %d bytes", s.o.Describe(), s.n))
		}
	}
	return &BudgetError{Limit: limit, Largest: strings.Join(largest, ", ")}
}

func (f *Fetcher) concurrency() int {
	if f.Concurrency <= 0 {
		return 8
	}
	return f.Concurrency
}

// outcome is the result for one object.
type outcome struct {
	value Value
	err   *ObjectError
	// at is when the value was read (the start of its AWS call).
	at time.Time
}

// unitKind is how a group of objects is fetched.
type unitKind int

const (
	secretBatchUnit  unitKind = iota // BatchGetSecretValue, current versions
	secretSingleUnit                 // GetSecretValue, a pinned version or label
	parameterUnit                    // GetParameters
	bulkUnit                         // GetParametersByPath or BatchGetSecretValue with filters
)

type unit struct {
	kind    unitKind
	objects []*spc.Object
}

// plan groups objects into AWS calls: current Secrets Manager versions by
// 20, Parameter Store by 10, pinned secrets one by one.
func plan(objects []*spc.Object) []unit {
	var units []unit
	var current, params []*spc.Object
	for _, o := range objects {
		switch {
		case o.Bulk():
			units = append(units, unit{kind: bulkUnit, objects: []*spc.Object{o}})
		case o.Type == spc.ParameterStore:
			params = append(params, o)
		case wantsCurrent(o.Primary()) && (o.Failover == nil || wantsCurrent(*o.Failover)):
			current = append(current, o)
		default:
			units = append(units, unit{kind: secretSingleUnit, objects: []*spc.Object{o}})
		}
	}
	for start := 0; start < len(current); start += secretBatch {
		units = append(units, unit{kind: secretBatchUnit, objects: current[start:min(start+secretBatch, len(current))]})
	}
	for start := 0; start < len(params); start += parameterBatch {
		units = append(units, unit{kind: parameterUnit, objects: params[start:min(start+parameterBatch, len(params))]})
	}
	return units
}

// wantsCurrent reports whether a Secrets Manager target asks for the
// current version, which BatchGetSecretValue returns.
func wantsCurrent(t spc.Target) bool {
	return t.Version == "" && (t.VersionLabel == "" || t.VersionLabel == "AWSCURRENT")
}

// runBounded runs jobs with at most limit in flight. A job that panics
// does not end the process: its panic is returned, by job index, as an
// error (nil for jobs that returned).
func runBounded(ctx context.Context, limit int, jobs []func(context.Context)) []error {
	sem := make(chan struct{}, limit)
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = panics.Run("fetching", func() { job(ctx) })
		}()
	}
	wg.Wait()
	return errs
}

// internalError fails an object whose fetch hit a bug in coffer.
func internalError(o *spc.Object, err error) *ObjectError {
	return &ObjectError{Object: o, Entry: -1, Kind: KindOther, Detail: err.Error(), Err: err, Hint: "retry; report the bug with the provider's log"}
}

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
	after := time.Now().Add(-f.Reuse)
	if nb := freshnessOf(ctx).NotBefore; nb.After(after) {
		return nb
	}
	return after
}

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

// serveStale replaces each failure that says AWS is unavailable in every
// region tried by the newest good value of the identity still allowed (read
// within ServeStale, and not before the pod's previous mount). Answers
// such as not found, access denied or a KMS failure are never replaced.
func (f *Fetcher) serveStale(ctx context.Context, cfg *spc.Config, scope string, u unit, res []outcome) {
	notBefore := time.Now().Add(-f.ServeStale)
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
		v.Stale = &Stale{Age: time.Since(best.At), Reason: r.err.Kind}
		res[i] = outcome{value: v, at: best.At}
	}
}

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
		if e, ok := f.Cache.Get(cacheKey(scope, region, o.Type, targets[i]), after); ok {
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
			f.Cache.Put(cacheKey(scope, region, objects[i].Type, targets[i]), cache.Entry{Data: r.value.Data, Version: r.value.Version, At: r.at})
		}
	}
	return res
}

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
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
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
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return v, err
		}
	}
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
			at := time.Now()
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

// denyList remembers, for a while, identities refused an optional API.
type denyList struct {
	mu      sync.Mutex
	entries map[string]time.Time
}

// denyFor is how long a refusal is remembered: a role's policy may be fixed,
// and retrying once an hour costs nothing.
const denyFor = time.Hour

func (d *denyList) denied(scope string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.entries[scope]
	if ok && time.Now().After(until) {
		delete(d.entries, scope)
		return false
	}
	return ok
}

func (d *denyList) deny(scope string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.entries == nil || len(d.entries) >= 10000 {
		d.entries = map[string]time.Time{}
	}
	d.entries[scope] = time.Now().Add(denyFor)
}
