package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/provider/quota"
)

// quotaFlags are the inputs of quota-aware call planning: the account's
// quotas (defaults: AWS's published ones), this node's share of them, and
// how coffer spreads and backs off.
type quotaFlags struct {
	higherThroughput bool
	batch, single    float64
	params, byPath   float64
	nodeShare        float64
	cooldown         time.Duration
	jitter           time.Duration
}

func (f *quotaFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.higherThroughput, "ssm-higher-throughput", false, "Parameter Store higher throughput is on in the account and region (3,000 GetParameter/GetParameters and 100 GetParametersByPath per second instead of 40 shared)")
	fs.Float64Var(&f.batch, "aws-quota-batch-get-secret-value", 100, "the account's BatchGetSecretValue quota, requests per second (AWS: 100, not adjustable)")
	fs.Float64Var(&f.single, "aws-quota-get-secret-value", 10000, "the account's GetSecretValue quota, requests per second")
	fs.Float64Var(&f.params, "aws-quota-get-parameters", 0, "the account's GetParameter/GetParameters quota, requests per second (0: 40, or 3,000 with --ssm-higher-throughput)")
	fs.Float64Var(&f.byPath, "aws-quota-get-parameters-by-path", 0, "with --ssm-higher-throughput, the account's GetParametersByPath quota, requests per second (0: 100); with standard throughput it shares --aws-quota-get-parameters")
	fs.Float64Var(&f.nodeShare, "aws-quota-node-share", quota.DefaultNodeShare, "share of each account quota this node may spend per second (its client-side budget), above 0 and at most 1")
	fs.DurationVar(&f.cooldown, "aws-throttle-cooldown", 30*time.Second, "after AWS throttles an API: how long coffer avoids it where there is an alternative and halves its budget (doubling while throttling goes on, up to 10m)")
	fs.DurationVar(&f.jitter, "remount-jitter", time.Second, "a remount that must read AWS waits a random part of this first (at most a tenth of its deadline), so that rotation sweeps of many nodes do not line up; new pods never wait (0: off)")
}

func (f *quotaFlags) quotas() quota.Quotas {
	q := quota.Published(f.higherThroughput)
	q.BatchGetSecretValue, q.GetSecretValue = f.batch, f.single
	if f.params != 0 {
		q.GetParameters = f.params
		if q.SharedParameterQuota {
			q.GetParametersByPath = f.params
		}
	}
	if f.byPath != 0 && !q.SharedParameterQuota {
		q.GetParametersByPath = f.byPath
	}
	return q
}

func (f *quotaFlags) validate() []error {
	var errs []error
	if err := f.quotas().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--aws-quota-*: %w", err))
	}
	if f.params < 0 || f.byPath < 0 {
		errs = append(errs, errors.New("--aws-quota-get-parameters and --aws-quota-get-parameters-by-path must not be negative"))
	}
	if f.byPath != 0 && !f.higherThroughput {
		errs = append(errs, errors.New("--aws-quota-get-parameters-by-path needs --ssm-higher-throughput: with standard throughput GetParametersByPath shares --aws-quota-get-parameters"))
	}
	if !(f.nodeShare > 0 && f.nodeShare <= 1) {
		errs = append(errs, fmt.Errorf("--aws-quota-node-share must be above 0 and at most 1, not %v", f.nodeShare))
	}
	if f.cooldown <= 0 {
		errs = append(errs, errors.New("--aws-throttle-cooldown must be positive"))
	}
	if f.jitter < 0 {
		errs = append(errs, errors.New("--remount-jitter must not be negative"))
	}
	return errs
}

// controller builds this node's budgets, reporting to m.
func (f *quotaFlags) controller(m *metrics.Metrics) (*quota.Controller, error) {
	c, err := quota.New(quota.Options{Quotas: f.quotas(), NodeShare: f.nodeShare, Cooldown: f.cooldown, Jitter: f.jitter}, quota.Events{
		Throttled: func(api quota.API) { m.QuotaThrottled(string(api)) },
		Waited:    func(api quota.API, d time.Duration) { m.QuotaWaited(string(api), d) },
		Shifted:   func(from, to quota.API) { m.QuotaShifted(string(from), string(to)) },
	})
	if err != nil {
		return nil, err
	}
	m.WatchQuota(func() []metrics.QuotaBudget { return quotaBudgets(c) })
	return c, nil
}

// quotaBudgets is what c reports to metrics at a scrape.
func quotaBudgets(c *quota.Controller) []metrics.QuotaBudget {
	quotas := c.Quotas()
	var out []metrics.QuotaBudget
	for api, s := range c.Budgets() {
		out = append(out, metrics.QuotaBudget{Operation: string(api), Account: quotas.Of(api), Rate: s.Rate, Tokens: s.Tokens, Avoided: s.Avoided})
	}
	return out
}
