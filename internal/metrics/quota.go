package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QuotaBudget is one AWS API's budget on this node now, as the quota
// controller reports it at scrape time.
type QuotaBudget struct {
	// Operation is the API (a bounded label: the operations coffer calls).
	Operation string
	// Account is the account-wide quota planned with, in requests per
	// second; Rate this node's budget now; Tokens the calls it allows at
	// once (below 0 while calls wait).
	Account, Rate, Tokens float64
	// Avoided is set while AWS's recent throttling makes coffer avoid the
	// API where an alternative exists.
	Avoided bool
}

// quotaMetrics are the node's AWS budgets (read at scrape time) and what
// the quota controller did.
type quotaMetrics struct {
	throttles *prometheus.CounterVec
	waits     *prometheus.HistogramVec
	shifts    *prometheus.CounterVec
	budgets   atomic.Pointer[func() []QuotaBudget]
}

var (
	quotaAccountDesc = prometheus.NewDesc("coffer_aws_quota_account_requests_per_second",
		"The account-wide AWS quota coffer plans with, per region (--aws-quota-*, --ssm-higher-throughput).", []string{"operation"}, nil)
	quotaBudgetDesc = prometheus.NewDesc("coffer_aws_quota_budget_requests_per_second",
		"This node's client-side budget for the API now (a share of the account quota; halved while AWS throttles it).", []string{"operation"}, nil)
	quotaTokensDesc = prometheus.NewDesc("coffer_aws_quota_budget_available",
		"Calls this node's budget allows at once now (0 when calls wait).", []string{"operation"}, nil)
	quotaAvoidedDesc = prometheus.NewDesc("coffer_aws_quota_avoided",
		"1 while AWS's recent throttling of the API makes coffer avoid it where an alternative exists.", []string{"operation"}, nil)
)

func newQuotaMetrics() *quotaMetrics {
	return &quotaMetrics{
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_aws_throttles_total",
			Help: "AWS calls that AWS answered with throttling after the SDK's retries, by API (as the node's budget counts them).",
		}, []string{"operation"}),
		waits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coffer_aws_quota_wait_seconds",
			Help:    "Time AWS calls waited for this node's budget, by API (calls that did not wait are not observed).",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation"}),
		shifts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_aws_quota_shifts_total",
			Help: "Reads planned on an alternative API because the first choice had no headroom (from, to).",
		}, []string{"from", "to"}),
	}
}

func (q *quotaMetrics) Describe(ch chan<- *prometheus.Desc) {
	q.throttles.Describe(ch)
	q.waits.Describe(ch)
	q.shifts.Describe(ch)
	ch <- quotaAccountDesc
	ch <- quotaBudgetDesc
	ch <- quotaTokensDesc
	ch <- quotaAvoidedDesc
}

func (q *quotaMetrics) Collect(ch chan<- prometheus.Metric) {
	q.throttles.Collect(ch)
	q.waits.Collect(ch)
	q.shifts.Collect(ch)
	budgets := q.budgets.Load()
	if budgets == nil {
		return
	}
	for _, b := range (*budgets)() {
		ch <- prometheus.MustNewConstMetric(quotaAccountDesc, prometheus.GaugeValue, b.Account, b.Operation)
		ch <- prometheus.MustNewConstMetric(quotaBudgetDesc, prometheus.GaugeValue, b.Rate, b.Operation)
		ch <- prometheus.MustNewConstMetric(quotaTokensDesc, prometheus.GaugeValue, max(0, b.Tokens), b.Operation)
		avoided := 0.0
		if b.Avoided {
			avoided = 1
		}
		ch <- prometheus.MustNewConstMetric(quotaAvoidedDesc, prometheus.GaugeValue, avoided, b.Operation)
	}
}

// QuotaThrottled records AWS answering a call to operation with
// throttling, after the SDK's retries.
func (m *Metrics) QuotaThrottled(operation string) {
	if m != nil {
		m.quota.throttles.WithLabelValues(operation).Inc()
	}
}

// QuotaWaited records a call to operation waiting d for this node's budget.
func (m *Metrics) QuotaWaited(operation string, d time.Duration) {
	if m != nil {
		m.quota.waits.WithLabelValues(operation).Observe(d.Seconds())
	}
}

// QuotaShifted records a read planned on operation to instead of from,
// because from had no headroom.
func (m *Metrics) QuotaShifted(from, to string) {
	if m != nil {
		m.quota.shifts.WithLabelValues(from, to).Inc()
	}
}

// WatchQuota exports the budgets that budgets reports, read at each scrape
// from now on.
func (m *Metrics) WatchQuota(budgets func() []QuotaBudget) {
	if m != nil && budgets != nil {
		m.quota.budgets.Store(&budgets)
	}
}
