package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather returns the value of every series of reg, keyed by name and label
// values ("coffer_cache_requests_total{hit}").
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetValue()
			}
			out[key+"}"] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestToldAndReadValues: what the wiring registers (cache counters, quota
// budgets) is read at scrape time, and what domain packages tell (quota
// events) is counted, with no coffer package behind either.
func TestToldAndReadValues(t *testing.T) {
	stats := CacheStats{Hits: 3, Misses: 2, Evictions: 1, Entries: 4, Bytes: 512}
	budgets := []QuotaBudget{
		{Operation: "GetSecretValue", Account: 10000, Rate: 5, Tokens: 2.5},
		{Operation: "GetParameters", Account: 40, Rate: 0.5, Tokens: -3, Avoided: true},
	}
	reg := prometheus.NewRegistry()
	m := New(reg, Options{Version: "test", CacheStats: func() CacheStats { return stats }})
	m.WatchQuota(func() []QuotaBudget { return budgets })
	m.QuotaThrottled("GetParameters")
	m.QuotaThrottled("GetParameters")
	m.QuotaWaited("GetSecretValue", 20*time.Millisecond)
	m.QuotaShifted("BatchGetSecretValue", "GetSecretValue")

	stats.Hits = 7 // read at the scrape, not at registration
	got := gather(t, reg)
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{"coffer_cache_requests_total{hit}", 7},
		{"coffer_cache_requests_total{miss}", 2},
		{"coffer_cache_evictions_total{}", 1},
		{"coffer_cache_entries{}", 4},
		{"coffer_cache_bytes{}", 512},
		{"coffer_aws_quota_account_requests_per_second{GetSecretValue}", 10000},
		{"coffer_aws_quota_budget_requests_per_second{GetParameters}", 0.5},
		{"coffer_aws_quota_budget_available{GetSecretValue}", 2.5},
		{"coffer_aws_quota_budget_available{GetParameters}", 0}, // waiting calls: none available, not a debt
		{"coffer_aws_quota_avoided{GetParameters}", 1},
		{"coffer_aws_quota_avoided{GetSecretValue}", 0},
		{"coffer_aws_throttles_total{GetParameters}", 2},
		{"coffer_aws_quota_wait_seconds{GetSecretValue}", 1},
		{"coffer_aws_quota_shifts_total{BatchGetSecretValue,GetSecretValue}", 1},
	} {
		if v, ok := got[tc.series]; !ok || v != tc.want {
			t.Errorf("%s = %v (present: %v), want %v", tc.series, v, ok, tc.want)
		}
	}
}

// TestNothingRegisteredNothingExported: without a cache or budgets there
// are no coffer_cache_* or budget series, and a nil *Metrics takes every
// call.
func TestNothingRegisteredNothingExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, Options{Version: "test"})
	for series := range gather(t, reg) {
		for _, prefix := range []string{"coffer_cache_", "coffer_aws_quota_budget", "coffer_aws_quota_account", "coffer_aws_quota_avoided"} {
			if strings.HasPrefix(series, prefix) {
				t.Errorf("exported %s with nothing registered", series)
			}
		}
	}
	var m *Metrics
	m.WatchQuota(func() []QuotaBudget { return nil })
	m.QuotaThrottled("GetParameters")
	m.QuotaWaited("GetParameters", time.Second)
	m.QuotaShifted("a", "b")
}

// TestEventsConsumerValues: what the consumer tells is exported, negative
// lags and ages count as 0, and a nil *EventsConsumer takes every call.
func TestEventsConsumerValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewEventsConsumer(reg, "test")
	m.Message(EventChange)
	m.Message(EventChange)
	m.Message(EventCanaryUnmatched)
	m.EventLag(-time.Minute)
	m.EventLag(3 * time.Second)
	m.CanaryAge(-time.Second)
	m.LedgerEntries(12)
	m.PublishFailed()
	got := gather(t, reg)
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{"coffer_events_consumer_messages_total{change}", 2},
		{"coffer_events_consumer_messages_total{canary_unmatched}", 1},
		{"coffer_events_consumer_lag_seconds{}", 2},
		{"coffer_events_consumer_canary_age_seconds{}", 0},
		{"coffer_events_consumer_ledger_entries{}", 12},
		{"coffer_events_consumer_publish_failures_total{}", 1},
	} {
		if v, ok := got[tc.series]; !ok || v != tc.want {
			t.Errorf("%s = %v (present: %v), want %v", tc.series, v, ok, tc.want)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "coffer_events_consumer_lag_seconds" {
			if sum := f.GetMetric()[0].GetHistogram().GetSampleSum(); sum != 3 {
				t.Errorf("lag sum = %v, want 3 (the negative lag as 0)", sum)
			}
		}
	}
	var none *EventsConsumer
	none.Message(EventInvalid)
	none.EventLag(time.Second)
	none.CanaryAge(time.Second)
	none.LedgerEntries(1)
	none.PublishFailed()
}
