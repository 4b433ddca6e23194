package wiring

import "testing"

func TestQuotas(t *testing.T) {
	for _, tc := range []struct {
		name                string
		q                   Quota
		params, byPath      float64
		sharedParameterOnes bool
	}{
		{"standard throughput", Quota{BatchGetSecretValue: 100, GetSecretValue: 10000, NodeShare: 0.1}, 40, 40, true},
		{"higher throughput", Quota{HigherThroughput: true, BatchGetSecretValue: 100, GetSecretValue: 10000, NodeShare: 0.1}, 3000, 100, false},
		{"raised quotas", Quota{HigherThroughput: true, BatchGetSecretValue: 100, GetSecretValue: 10000, GetParameters: 5000, GetParametersByPath: 200, NodeShare: 0.1}, 5000, 200, false},
		{"raised shared quota", Quota{BatchGetSecretValue: 100, GetSecretValue: 10000, GetParameters: 80, NodeShare: 0.1}, 80, 80, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.q.Quotas()
			if got.GetParameters != tc.params || got.GetParametersByPath != tc.byPath || got.SharedParameterQuota != tc.sharedParameterOnes {
				t.Errorf("Quotas() = %+v, want GetParameters %v, GetParametersByPath %v, shared %v", got, tc.params, tc.byPath, tc.sharedParameterOnes)
			}
			if got.BatchGetSecretValue != tc.q.BatchGetSecretValue || got.GetSecretValue != tc.q.GetSecretValue {
				t.Errorf("Quotas() = %+v: the Secrets Manager quotas are not the configured ones", got)
			}
		})
	}
}

func TestCacheWindows(t *testing.T) {
	for _, tc := range []struct {
		c           Cache
		reuse, keep int
	}{
		{Cache{MaxStaleness: 5, MaxBytes: 1}, 5, 5},
		{Cache{MaxStaleness: 5, TTL: 60}, 60, 60},
		{Cache{MaxStaleness: 5, ServeStale: 3600}, 5, 3600},
		{Cache{}, 0, 0},
	} {
		if r, k := tc.c.reuse(), tc.c.keep(); int(r) != tc.reuse || int(k) != tc.keep {
			t.Errorf("%+v: reuse %d, keep %d; want %d, %d", tc.c, r, k, tc.reuse, tc.keep)
		}
	}
}
