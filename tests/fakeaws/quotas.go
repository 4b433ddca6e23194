package fakeaws

import (
	"math"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/time/rate"
)

// Quota is an account-wide request rate, per region, that a group of
// operations shares, as AWS enforces its API quotas: a token bucket per
// region holding Burst requests (default: one second of Rate), refilled
// at Rate per second. A request finding it empty is answered
// ThrottlingException ("Rate exceeded", HTTP 400), as AWS answers.
type Quota struct {
	Service    string   // ServiceSecretsManager, ServiceSSM, ServiceSTS or ServiceSQS
	Operations []string // operations spending this quota
	Rate       float64  // requests per second
	Burst      int
}

// PublishedQuotas are AWS's published quotas for the operations coffer
// calls: Secrets Manager's, and Parameter Store's standard throughput (40
// per second shared by GetParameter, GetParameters and
// GetParametersByPath) or its higher throughput (3,000 for GetParameter and
// GetParameters, 100 for GetParametersByPath). Scale multiplies every rate
// (a simulation of a fleet with fewer nodes scales them down in
// proportion). SQS has none here: its ReceiveMessage and DeleteMessageBatch
// quotas are effectively unlimited, so a consumer never meets them.
func PublishedQuotas(higherThroughput bool, scale float64) []Quota {
	q := []Quota{
		{Service: ServiceSecretsManager, Operations: []string{"BatchGetSecretValue"}, Rate: 100},
		{Service: ServiceSecretsManager, Operations: []string{"GetSecretValue"}, Rate: 10000},
		{Service: ServiceSecretsManager, Operations: []string{"DescribeSecret"}, Rate: 40000},
	}
	if higherThroughput {
		q = append(q,
			Quota{Service: ServiceSSM, Operations: []string{"GetParameter", "GetParameters"}, Rate: 3000},
			Quota{Service: ServiceSSM, Operations: []string{"GetParametersByPath"}, Rate: 100})
	} else {
		q = append(q, Quota{Service: ServiceSSM, Operations: []string{"GetParameter", "GetParameters", "GetParametersByPath"}, Rate: 40})
	}
	for i := range q {
		q[i].Rate *= scale
	}
	return q
}

// quotas are the enforced quotas and their buckets (off when empty).
type quotas struct {
	mu      sync.Mutex
	list    []Quota
	buckets map[string]*rate.Limiter // region, quota index
}

// SetQuotas enforces qs from now on, with full buckets; no arguments turn
// quotas off (the default: tests that do not ask are never throttled).
func (s *Server) SetQuotas(qs ...Quota) {
	s.quotas.mu.Lock()
	defer s.quotas.mu.Unlock()
	s.quotas.list = append([]Quota(nil), qs...)
	s.quotas.buckets = map[string]*rate.Limiter{}
}

// overQuota takes a token for the request from its quota's bucket and
// reports whether there was none.
func (s *Server) overQuota(rc *reqCtx) bool {
	s.quotas.mu.Lock()
	defer s.quotas.mu.Unlock()
	for i, q := range s.quotas.list {
		if q.Service != rc.call.Service || !slices.Contains(q.Operations, rc.call.Operation) {
			continue
		}
		key := rc.call.Region + "\x00" + strconv.Itoa(i)
		b, ok := s.quotas.buckets[key]
		if !ok {
			burst := q.Burst
			if burst <= 0 {
				burst = max(1, int(math.Ceil(q.Rate)))
			}
			b = rate.NewLimiter(rate.Limit(q.Rate), burst)
			s.quotas.buckets[key] = b
		}
		return !b.Allow()
	}
	return false
}
