// Package fetch reads the objects of a SecretProviderClass from AWS Secrets
// Manager and Parameter Store: batched where the API allows, concurrent
// within a bound, cached and coalesced per identity, with failover to a
// second region only when the first is in trouble. Every object either
// yields a value or an error that says which object failed, why, and how to
// fix it.
package fetch

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/flight"
	"github.com/coffer-csi/coffer/internal/panics"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/changes"
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

	// Changes, when set, lets a mount be answered from the cache with a
	// value read before the Reuse window and before the pod's previous
	// mount, when the change ledger shows that nothing it depends on
	// changed since the read (changes.Tracker.Check: no announcement named
	// the object or the identity's roles, the pipeline was proven live
	// after the read, the value is younger than the tracker's MaxAge). Nil:
	// off. The Cache must keep values for the tracker's MaxAge. Only the
	// mounts that name the identity's roles (WithRoles) use it.
	Changes *changes.Tracker
	// OnEventVerdict is told the rule's verdict for every cached value it
	// was asked about (nil: not told): metrics of reads skipped and done
	// because of change events. It is called from concurrent fetches.
	OnEventVerdict func(changes.Verdict)

	// Clock is the time source: when values were read, the freshness and
	// stale bounds, the waits of pacing and jitter, how long a refusal is
	// remembered (nil: the real clock). Deadlines come from the caller's
	// context, which runs on the real clock.
	Clock clock.Clock

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

func (f *Fetcher) clock() clock.Clock {
	if f.Clock == nil {
		return clock.RealClock{}
	}
	return f.Clock
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
