package quota

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestChooseSecrets(t *testing.T) {
	full := State{Tokens: 10, Burst: 10, Rate: 10}
	singles := State{Tokens: 1000, Burst: 1000, Rate: 1000}
	tests := map[string]struct {
		s    Situation
		want SecretPlan
	}{
		"many secrets, headroom everywhere: one batch":      {Situation{Secrets: 5, Batch: full, Single: singles}, Batch},
		"one secret: a single call":                         {Situation{Secrets: 1, Batch: full, Single: singles}, Singles},
		"role lacks the batch permission":                   {Situation{Secrets: 5, BatchDenied: true, Batch: full, Single: singles}, Singles},
		"batch throttled lately: shift to singles":          {Situation{Secrets: 20, Batch: State{Avoided: true, Tokens: 10, Burst: 10, Rate: 5}, Single: singles}, Singles},
		"singles throttled lately, batch fine: batch":       {Situation{Secrets: 5, Batch: full, Single: State{Avoided: true, Tokens: 5, Burst: 1000, Rate: 500}}, Batch},
		"batch budget empty, singles can pay now":           {Situation{Secrets: 5, Batch: State{Tokens: 0.2, Burst: 10, Rate: 10}, Single: singles}, Singles},
		"both short, singles cheaper in quota":              {Situation{Secrets: 5, Batch: State{Tokens: 0.2, Burst: 10, Rate: 10}, Single: State{Tokens: 2, Burst: 1000, Rate: 1000}}, Singles},
		"both short, singles dearer in quota":               {Situation{Secrets: 5, Batch: State{Tokens: 0.2, Burst: 10, Rate: 10}, Single: State{Tokens: 2, Burst: 20, Rate: 20}}, Batch},
		"batch budget under half, singles cheaper in quota": {Situation{Secrets: 20, Batch: State{Tokens: 4, Burst: 10, Rate: 10}, Single: singles}, Singles},
		"batch budget under half, singles dearer in quota":  {Situation{Secrets: 20, Batch: State{Tokens: 4, Burst: 10, Rate: 10}, Single: State{Tokens: 100, Burst: 100, Rate: 100}}, Batch},
		"batch budget at half: batch":                       {Situation{Secrets: 20, Batch: State{Tokens: 5, Burst: 10, Rate: 10}, Single: singles}, Batch},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ChooseSecrets(tt.s); got != tt.want {
				t.Errorf("ChooseSecrets(%+v) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}

func TestParameterCalls(t *testing.T) {
	tests := []struct {
		n    int
		want []int
	}{
		{0, nil}, {1, []int{1}}, {10, []int{10}}, {11, []int{10, 1}}, {25, []int{10, 10, 5}},
	}
	for _, tt := range tests {
		if got := ParameterCalls(tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("ParameterCalls(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestPublished(t *testing.T) {
	std, high := Published(false), Published(true)
	if std.GetParameters != 40 || !std.SharedParameterQuota || std.BatchGetSecretValue != 100 || std.GetSecretValue != 10000 {
		t.Errorf("standard quotas = %+v", std)
	}
	if high.GetParameters != 3000 || high.GetParametersByPath != 100 || high.SharedParameterQuota {
		t.Errorf("higher-throughput quotas = %+v", high)
	}
}

func TestNewRejects(t *testing.T) {
	bad := map[string]Options{
		"zero quota":      {Quotas: Quotas{BatchGetSecretValue: 100, GetSecretValue: 0, GetParameters: 40, GetParametersByPath: 40}},
		"share above 1":   {Quotas: Published(false), NodeShare: 1.5},
		"negative share":  {Quotas: Published(false), NodeShare: -0.1},
		"negative rate":   {Quotas: Published(false), Rates: map[API]float64{GetParameters: -1}},
		"negative jitter": {Quotas: Published(false), Jitter: -time.Second},
	}
	for name, o := range bad {
		if _, err := New(o, Events{}); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestBudgetSharesParameterQuotaWithStandardThroughput(t *testing.T) {
	c, err := New(Options{Quotas: Published(false), NodeShare: 0.1}, Events{})
	if err != nil {
		t.Fatal(err)
	}
	b := c.Budgets()
	if _, ok := b[GetParametersByPath]; ok {
		t.Error("standard throughput: GetParametersByPath has a budget of its own")
	}
	if got := b[GetParameters].Rate; got != 4 {
		t.Errorf("GetParameters budget = %v per second, want 4 (10%% of 40)", got)
	}
	h, _ := New(Options{Quotas: Published(true), NodeShare: 0.1}, Events{})
	if got := h.Budgets()[GetParametersByPath].Rate; got != 10 {
		t.Errorf("higher throughput: GetParametersByPath budget = %v, want 10", got)
	}
}

// TestWaitFailsFastPastDeadline: a call whose budget would only allow it
// after its deadline fails at once, naming the budget, instead of
// sleeping into a timeout.
func TestWaitFailsFastPastDeadline(t *testing.T) {
	c, err := New(Options{Quotas: Published(false), Rates: map[API]float64{GetParameters: 1}}, Events{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), GetParameters, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Wait(ctx, GetParameters, false)
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("Wait = %v, want ErrBudget", err)
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Error("Wait slept although the deadline could not be met")
	}
	// A call with an alternative never waits.
	if err := c.Wait(context.Background(), GetParameters, true); !errors.Is(err, ErrBudget) {
		t.Errorf("noWait with the budget empty: %v, want ErrBudget", err)
	}
	// GetParametersByPath pays from the same, empty, budget.
	if err := c.Wait(ctx, GetParametersByPath, false); !errors.Is(err, ErrBudget) {
		t.Errorf("GetParametersByPath with the shared budget empty: %v, want ErrBudget", err)
	}
}

// TestThrottleShiftsAndRecovers: a throttle makes the batch API avoided and
// halves its budget; throttling within the cooldown doubles the cooldown;
// a quiet cooldown restores both.
func TestThrottleShiftsAndRecovers(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	var throttles, shifts int
	c, err := New(Options{Quotas: Published(false), NodeShare: 0.1, Cooldown: 10 * time.Second, MaxCooldown: 25 * time.Second, Clock: clk},
		Events{Throttled: func(API) { throttles++ }, Shifted: func(from, to API) { shifts++ }})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.PlanSecrets(5, false); p != Batch {
		t.Fatalf("before throttling: %v, want batch", p)
	}
	c.Throttled(BatchGetSecretValue)
	if s := c.State(BatchGetSecretValue); !s.Avoided || s.Rate != 5 {
		t.Fatalf("after a throttle: %+v, want avoided at 5/s", s)
	}
	if p := c.PlanSecrets(5, false); p != Singles || shifts != 1 {
		t.Fatalf("throttled batch: %v (shifts %d), want singles", p, shifts)
	}
	c.Throttled(BatchGetSecretValue) // the same burst: no second cut
	if s := c.State(BatchGetSecretValue); s.Rate != 5 {
		t.Errorf("two throttles within a second cut the budget twice: %v", s.Rate)
	}
	clk.Step(5 * time.Second)
	c.Throttled(BatchGetSecretValue) // still throttling: 20 s now
	clk.Step(15 * time.Second)
	if s := c.State(BatchGetSecretValue); !s.Avoided || s.Rate != 2.5 {
		t.Fatalf("throttling went on: %+v, want still avoided at 2.5/s", s)
	}
	clk.Step(6 * time.Second)
	if s := c.State(BatchGetSecretValue); s.Avoided || s.Rate != 5 {
		t.Fatalf("after a quiet cooldown: %+v, want no longer avoided, budget doubled to 5/s", s)
	}
	if p := c.PlanSecrets(5, false); p != Batch {
		t.Fatalf("recovered: %v, want batch", p)
	}
	clk.Step(10 * time.Second) // half of the 20 s cooldown
	if s := c.State(BatchGetSecretValue); s.Rate != 10 {
		t.Fatalf("half a cooldown later: %+v, want back at 10/s", s)
	}
	// Throttled again soon after recovering: throttling went on, the
	// cooldown doubles (capped at 25 s).
	c.Throttled(BatchGetSecretValue)
	clk.Step(24 * time.Second)
	if s := c.State(BatchGetSecretValue); !s.Avoided {
		t.Error("throttling resumed right after a cooldown, and the cooldown did not grow")
	}
	// After a quiet cooldown, a throttle starts from the base time again.
	clk.Step(30 * time.Second)
	c.Throttled(BatchGetSecretValue)
	clk.Step(10 * time.Second)
	if s := c.State(BatchGetSecretValue); s.Avoided {
		t.Error("cooldown not back to its base after a quiet one")
	}
	if throttles != 5 {
		t.Errorf("Throttled events = %d, want 5", throttles)
	}
}

func TestNilController(t *testing.T) {
	var c *Controller
	if err := c.Wait(context.Background(), GetParameters, false); err != nil {
		t.Error(err)
	}
	c.Throttled(GetParameters)
	if c.PlanSecrets(5, false) != Batch || c.PlanSecrets(5, true) != Singles || c.JitterDelay() != 0 {
		t.Error("a nil Controller does not plan as without quotas")
	}
}

func TestJitterDelayBounded(t *testing.T) {
	c, _ := New(Options{Quotas: Published(false), Jitter: 50 * time.Millisecond}, Events{})
	for range 1000 {
		if d := c.JitterDelay(); d < 0 || d >= 50*time.Millisecond {
			t.Fatalf("jitter %v outside [0, 50ms)", d)
		}
	}
}

func TestBackoffBoundedAndGrowing(t *testing.T) {
	c, _ := New(Options{Quotas: Published(false), Backoff: 100 * time.Millisecond}, Events{})
	for attempt := range 8 {
		ceil := 100 * time.Millisecond << min(attempt, 4)
		for range 200 {
			if d := c.Backoff(attempt); d < 10*time.Millisecond || d >= ceil+10*time.Millisecond {
				t.Fatalf("Backoff(%d) = %v, want in [10ms, %v)", attempt, d, ceil+10*time.Millisecond)
			}
		}
	}
	var none *Controller
	if none.Backoff(3) != 0 {
		t.Error("a nil Controller backs off")
	}
}
