package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coffer-csi/coffer/provider/quota"
)

// quotaMetrics are the node's AWS budgets (read from the quota Controller
// at scrape time) and what the Controller did.
type quotaMetrics struct {
	throttles *prometheus.CounterVec
	waits     *prometheus.HistogramVec
	shifts    *prometheus.CounterVec
	ctrl      atomic.Pointer[quota.Controller]
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
	c := q.ctrl.Load()
	if c == nil {
		return
	}
	quotas := c.Quotas()
	for api, s := range c.Budgets() {
		op := string(api)
		ch <- prometheus.MustNewConstMetric(quotaAccountDesc, prometheus.GaugeValue, quotas.Of(api), op)
		ch <- prometheus.MustNewConstMetric(quotaBudgetDesc, prometheus.GaugeValue, s.Rate, op)
		ch <- prometheus.MustNewConstMetric(quotaTokensDesc, prometheus.GaugeValue, max(0, s.Tokens), op)
		avoided := 0.0
		if s.Avoided {
			avoided = 1
		}
		ch <- prometheus.MustNewConstMetric(quotaAvoidedDesc, prometheus.GaugeValue, avoided, op)
	}
}

// QuotaEvents returns the events a quota Controller reports to these
// metrics (all no-ops for a nil *Metrics).
func (m *Metrics) QuotaEvents() quota.Events {
	if m == nil {
		return quota.Events{}
	}
	return quota.Events{
		Throttled: func(api quota.API) { m.quota.throttles.WithLabelValues(string(api)).Inc() },
		Waited:    func(api quota.API, d time.Duration) { m.quota.waits.WithLabelValues(string(api)).Observe(d.Seconds()) },
		Shifted:   func(from, to quota.API) { m.quota.shifts.WithLabelValues(string(from), string(to)).Inc() },
	}
}

// WatchQuota exports c's budgets from now on.
func (m *Metrics) WatchQuota(c *quota.Controller) {
	if m != nil {
		m.quota.ctrl.Store(c)
	}
}
