// Package quota keeps one node's AWS calls inside the account-wide quotas
// that every node of every cluster in an account and region shares. It
// holds a client-side budget per API (so that one node cannot spend the
// account's quota), remembers which APIs AWS throttled lately (so that work
// shifts to an API with headroom instead of retrying the throttled one
// harder), and plans which calls a set of objects costs.
//
// It does no I/O: the fetch layer asks it before each call and tells it
// what AWS answered.
package quota

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// API is an AWS operation, or a group of operations that share a quota.
type API string

// The APIs coffer calls, as their quotas group them.
const (
	BatchGetSecretValue API = "BatchGetSecretValue"
	GetSecretValue      API = "GetSecretValue"
	// GetParameters also stands for GetParameter, which shares its quota.
	GetParameters API = "GetParameters"
	// GetParametersByPath shares GetParameters' quota with standard
	// throughput and has one of its own with higher throughput.
	GetParametersByPath API = "GetParametersByPath"
)

// APIs lists every API with a budget, in a stable order (metrics, reports).
var APIs = []API{BatchGetSecretValue, GetSecretValue, GetParameters, GetParametersByPath}

// Quotas are account-wide requests per second, per region, by API.
type Quotas struct {
	BatchGetSecretValue float64
	GetSecretValue      float64
	GetParameters       float64
	GetParametersByPath float64
	// SharedParameterQuota is set when GetParametersByPath spends
	// GetParameters' quota (standard throughput): one budget serves both.
	SharedParameterQuota bool
}

// Published returns AWS's published quotas: Secrets Manager's, and
// Parameter Store's standard throughput, or its paid higher throughput.
func Published(higherThroughput bool) Quotas {
	q := Quotas{BatchGetSecretValue: 100, GetSecretValue: 10000, GetParameters: 40, GetParametersByPath: 40, SharedParameterQuota: true}
	if higherThroughput {
		q.GetParameters, q.GetParametersByPath, q.SharedParameterQuota = 3000, 100, false
	}
	return q
}

// Of returns the quota of one API.
func (q Quotas) Of(api API) float64 {
	switch api {
	case BatchGetSecretValue:
		return q.BatchGetSecretValue
	case GetSecretValue:
		return q.GetSecretValue
	case GetParameters:
		return q.GetParameters
	case GetParametersByPath:
		return q.GetParametersByPath
	}
	return 0
}

// Validate reports quotas no budget can be made of.
func (q Quotas) Validate() error {
	var errs []error
	for _, api := range APIs {
		if v := q.Of(api); !(v > 0) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("the %s quota must be a positive number of requests per second, not %v", api, v))
		}
	}
	return errors.Join(errs...)
}

// DefaultNodeShare is the share of each quota one node may spend.
const DefaultNodeShare = 0.5

// Options configure a Controller.
type Options struct {
	Quotas Quotas
	// NodeShare is the share of each account quota one node may spend per
	// second (0 < NodeShare ≤ 1; default 0.5): the node's budget. Half, not
	// less: at a tenth (4 GetParameters per second with standard
	// throughput) one node starting pods of many identities waits 250 ms
	// per identity, slower than AWS's own provider.
	NodeShare float64
	// Rates, when set for an API, is the node's budget in requests per
	// second instead of NodeShare of its quota.
	Rates map[API]float64
	// Cooldown is how long an API that AWS throttled is avoided where an
	// alternative exists, and its budget kept halved (default 30 s). Each
	// further throttle within it, or within one cooldown after it ended,
	// doubles it, up to MaxCooldown (default 10 min), and halves the budget
	// again (at most once a second, down to 1/1024 of its base). When a
	// cooldown ends the budget doubles, and again every half cooldown, up to
	// its base; the cooldown is back to its base time after a quiet one.
	Cooldown, MaxCooldown time.Duration
	// Backoff is the first wait before a throttled call with no
	// alternative is sent again (default 500 ms); each further wait may be
	// twice as long, up to 16 times it, each a random part of that ("full
	// jitter").
	Backoff time.Duration
	// Jitter bounds the random delay before a remount's AWS reads
	// (0: none), so that rotation sweeps of many nodes that line up do
	// not reach AWS in the same second.
	Jitter time.Duration
	// Clock is the time source of budgets, cooldowns and waits (nil: the
	// real clock).
	Clock clock.Clock
}

// Controller is one node's budgets and throttle memory. A nil Controller
// allows every call at once and plans as if no quota existed.
type Controller struct {
	opts    Options
	clock   clock.Clock
	mu      sync.Mutex
	budgets map[API]*budget
	events  Events
}

// Events receives what a Controller does, for metrics (any may be nil).
type Events struct {
	// Throttled is called for each throttling answer of an API.
	Throttled func(api API)
	// Waited is called after a call waited for its budget.
	Waited func(api API, d time.Duration)
	// Shifted is called when a call is planned on an alternative API
	// because of from's throttling or budget.
	Shifted func(from, to API)
}

type budget struct {
	api      API
	base     float64 // requests per second when AWS is not throttling
	limiter  *rate.Limiter
	cooldown time.Duration
	until    time.Time // avoided, and halved, until then
	lastCut  time.Time
	// recovered is when the last cooldown ended: throttling again within
	// a cooldown of it counts as throttling that went on.
	recovered time.Time
	// nextRaise is when a budget cut by throttling doubles next (zero: at
	// its base).
	nextRaise time.Time
}

// New returns a Controller; the options are checked.
func New(o Options, ev Events) (*Controller, error) {
	if err := o.Quotas.Validate(); err != nil {
		return nil, err
	}
	if o.NodeShare == 0 {
		o.NodeShare = DefaultNodeShare
	}
	if !(o.NodeShare > 0 && o.NodeShare <= 1) {
		return nil, fmt.Errorf("the node's share of each quota must be above 0 and at most 1, not %v", o.NodeShare)
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 30 * time.Second
	}
	if o.MaxCooldown < o.Cooldown {
		o.MaxCooldown = max(o.Cooldown, 10*time.Minute)
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.Jitter < 0 {
		return nil, fmt.Errorf("the remount jitter must not be negative, not %v", o.Jitter)
	}
	clk := o.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	c := &Controller{opts: o, clock: clk, budgets: map[API]*budget{}, events: ev}
	for _, api := range APIs {
		if api == GetParametersByPath && o.Quotas.SharedParameterQuota {
			continue
		}
		r := o.Quotas.Of(api) * o.NodeShare
		if v, ok := o.Rates[api]; ok {
			if !(v > 0) {
				return nil, fmt.Errorf("the node's %s budget must be positive, not %v", api, v)
			}
			r = v
		}
		c.budgets[api] = &budget{api: api, base: r, limiter: rate.NewLimiter(rate.Limit(r), burst(r)), cooldown: o.Cooldown}
	}
	return c, nil
}

// burst is a budget's bucket: one second of its rate, at least one call.
func burst(r float64) int { return max(1, int(math.Ceil(r))) }

// budgetOf returns the budget that pays for api (GetParametersByPath pays
// from GetParameters' with standard throughput). Callers hold mu.
func (c *Controller) budgetOf(api API) *budget {
	if b, ok := c.budgets[api]; ok {
		return b
	}
	return c.budgets[GetParameters]
}

// refresh ends a quiet cooldown, and raises a budget that throttling cut:
// it doubles once the cooldown is over and again every half cooldown
// after, up to its base rate, so that nodes throttled together do not all
// come back at full rate at once. Callers hold mu.
func (c *Controller) refresh(b *budget, now time.Time) {
	if !b.until.IsZero() && !now.Before(b.until) {
		b.recovered = b.until
		b.until = time.Time{}
	}
	for !b.nextRaise.IsZero() && !now.Before(b.nextRaise) {
		r := min(b.base, 2*float64(b.limiter.Limit()))
		b.limiter.SetLimitAt(now, rate.Limit(r))
		b.nextRaise = b.nextRaise.Add(b.cooldown / 2)
		if r >= b.base {
			b.nextRaise = time.Time{}
		}
	}
}

// ErrBudget is returned when a call's deadline would pass before the
// node's budget for its API allows it.
var ErrBudget = errors.New("the node's budget for this AWS API would not allow the call before the deadline")

// Wait blocks until the node's budget for api allows one call, or fails
// at once (ErrBudget) if that would take longer than half of what is left
// of ctx's deadline (the call itself needs the rest), or at all when
// noWait is set (for a call with an alternative: planning shifts instead).
func (c *Controller) Wait(ctx context.Context, api API, noWait bool) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	b := c.budgetOf(api)
	now := c.clock.Now()
	c.refresh(b, now)
	r := b.limiter.ReserveN(now, 1)
	c.mu.Unlock()
	if !r.OK() {
		return fmt.Errorf("%s: %w", api, ErrBudget)
	}
	delay := r.DelayFrom(now)
	if delay == 0 {
		return nil
	}
	allowed := time.Duration(0)
	if deadline, ok := ctx.Deadline(); ok && !noWait {
		allowed = deadline.Sub(now) / 2
	} else if !ok && !noWait {
		allowed = delay
	}
	if delay > allowed {
		r.CancelAt(now)
		return fmt.Errorf("%s (%.3g calls per second on this node now; the next in %v): %w", api, float64(b.limiter.Limit()), delay.Round(time.Millisecond), ErrBudget)
	}
	t := c.clock.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C():
		if c.events.Waited != nil {
			c.events.Waited(api, delay)
		}
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}

// Throttled records that AWS throttled a call of api: the API is avoided
// where there is an alternative and its budget halved (at most once a
// second, so one burst of answers to calls already sent does not collapse
// it), for a cooldown that doubles while throttling goes on.
func (c *Controller) Throttled(api API) {
	if c == nil {
		return
	}
	if c.events.Throttled != nil {
		c.events.Throttled(api)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.budgetOf(api)
	now := c.clock.Now()
	c.refresh(b, now)
	if !b.until.IsZero() && now.Sub(b.lastCut) < time.Second {
		return
	}
	switch {
	case !b.until.IsZero(), !b.recovered.IsZero() && now.Sub(b.recovered) < b.cooldown:
		b.cooldown = min(2*b.cooldown, c.opts.MaxCooldown)
	default:
		b.cooldown = c.opts.Cooldown
	}
	b.lastCut = now
	b.until = now.Add(b.cooldown)
	b.nextRaise = b.until
	// As low as a node's share of a quota that thousands of nodes spend.
	floor := b.base / 1024
	b.limiter.SetLimitAt(now, rate.Limit(max(floor, float64(b.limiter.Limit())/2)))
}

// State is what planning needs to know of one API's budget now.
type State struct {
	// Avoided is set while AWS's throttling of the API is recent.
	Avoided bool
	// Tokens is the calls the budget allows at once now; Burst its size.
	Tokens, Burst float64
	// Rate is the budget's current calls per second.
	Rate float64
}

// State reports the budget of api now.
func (c *Controller) State(api API) State {
	if c == nil {
		return State{Tokens: math.Inf(1), Burst: math.Inf(1), Rate: math.Inf(1)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.budgetOf(api)
	now := c.clock.Now()
	c.refresh(b, now)
	return State{Avoided: !b.until.IsZero(), Tokens: b.limiter.TokensAt(now), Burst: float64(b.limiter.Burst()), Rate: float64(b.limiter.Limit())}
}

// Budgets reports every budget, by API, for metrics.
func (c *Controller) Budgets() map[API]State {
	out := map[API]State{}
	if c == nil {
		return out
	}
	for _, api := range APIs {
		if api == GetParametersByPath && c.opts.Quotas.SharedParameterQuota {
			continue
		}
		out[api] = c.State(api)
	}
	return out
}

// Quotas returns the account quotas the Controller plans with.
func (c *Controller) Quotas() Quotas {
	if c == nil {
		return Quotas{}
	}
	return c.opts.Quotas
}

// PlanSecrets chooses how to read n current-version secrets of one
// identity (see ChooseSecrets), and reports a shift away from the batch
// API to Events.Shifted.
func (c *Controller) PlanSecrets(n int, batchDenied bool) SecretPlan {
	if c == nil {
		return ChooseSecrets(Situation{Secrets: n, BatchDenied: batchDenied, Batch: State{Tokens: 1, Burst: 1, Rate: 1}, Single: State{Tokens: 1, Burst: 1, Rate: 1}})
	}
	s := Situation{Secrets: n, BatchDenied: batchDenied, Batch: c.State(BatchGetSecretValue), Single: c.State(GetSecretValue)}
	p := ChooseSecrets(s)
	if p == Singles && n > 1 && !batchDenied && c.events.Shifted != nil {
		c.events.Shifted(BatchGetSecretValue, GetSecretValue)
	}
	return p
}

// JitterDelay returns a random delay in [0, Jitter) for a remount's reads.
func (c *Controller) JitterDelay() time.Duration {
	if c == nil || c.opts.Jitter <= 0 {
		return 0
	}
	return rand.N(c.opts.Jitter)
}

// Backoff returns the wait before sending a throttled call again, after
// attempt earlier waits: a random part of Backoff doubled per attempt, at
// most 16 times Backoff, so that nodes throttled together do not come back
// together.
func (c *Controller) Backoff(attempt int) time.Duration {
	if c == nil {
		return 0
	}
	ceil := c.opts.Backoff << min(attempt, 4)
	return c.opts.Backoff/10 + rand.N(ceil)
}
