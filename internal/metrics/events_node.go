package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// EventsState is a node's view of the change ledger, read at scrape time.
type EventsState struct {
	// Ledger is false while the node holds no ledger.
	Ledger bool
	// Live is false while the node falls back to reading as without
	// events (the newest canary round trip is too old).
	Live bool
	// LedgerAge and ProofAge are seconds since the consumer published the
	// ledger the node holds, and since it wrote the newest canary that
	// came back.
	LedgerAge, ProofAge float64
	Entries             int
}

// eventsMetrics are a node's change events: the rule's verdicts (told)
// and the ledger's state (read at scrape time).
type eventsMetrics struct {
	verdicts *prometheus.CounterVec
	state    atomic.Pointer[func() EventsState]
}

var (
	eventsLiveDesc = prometheus.NewDesc("coffer_events_live",
		"1 while the change events pipeline is proven live (the newest canary round trip is younger than --event-proof-max-age) and mounts may be answered from the cache by the change ledger's rule; 0 while the node falls back to reading as without events.", nil, nil)
	eventsLedgerDesc = prometheus.NewDesc("coffer_events_ledger_age_seconds",
		"Seconds since the consumer published the change ledger this node holds (absent while it holds none).", nil, nil)
	eventsCanaryDesc = prometheus.NewDesc("coffer_events_canary_age_seconds",
		"Seconds since the consumer wrote the newest canary change that came back through the pipeline, as this node's ledger says (absent before the first).", nil, nil)
	eventsEntriesDesc = prometheus.NewDesc("coffer_events_ledger_entries",
		"Entries in the change ledger this node holds.", nil, nil)
)

func newEventsMetrics() *eventsMetrics {
	return &eventsMetrics{
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_events_reads_total",
			Help: "Cached values the change ledger's rule was asked about, by verdict: unchanged (answered from the cache: an AWS read skipped), or why AWS was read (changed, not_proven, too_old, not_covered, unknown).",
		}, []string{"verdict"}),
	}
}

func (e *eventsMetrics) Describe(ch chan<- *prometheus.Desc) {
	e.verdicts.Describe(ch)
	ch <- eventsLiveDesc
	ch <- eventsLedgerDesc
	ch <- eventsCanaryDesc
	ch <- eventsEntriesDesc
}

func (e *eventsMetrics) Collect(ch chan<- prometheus.Metric) {
	e.verdicts.Collect(ch)
	state := e.state.Load()
	if state == nil {
		return
	}
	s := (*state)()
	live := 0.0
	if s.Live {
		live = 1
	}
	ch <- prometheus.MustNewConstMetric(eventsLiveDesc, prometheus.GaugeValue, live)
	if !s.Ledger {
		return
	}
	ch <- prometheus.MustNewConstMetric(eventsLedgerDesc, prometheus.GaugeValue, s.LedgerAge)
	ch <- prometheus.MustNewConstMetric(eventsEntriesDesc, prometheus.GaugeValue, float64(s.Entries))
	if s.ProofAge > 0 {
		ch <- prometheus.MustNewConstMetric(eventsCanaryDesc, prometheus.GaugeValue, s.ProofAge)
	}
}

// EventVerdict records one verdict of the change ledger's rule (a bounded
// label: changes.Verdict's names).
func (m *Metrics) EventVerdict(verdict string) {
	if m != nil {
		m.events.verdicts.WithLabelValues(verdict).Inc()
	}
}

// WatchEvents exports the node's change ledger state that state reports,
// read at each scrape from now on.
func (m *Metrics) WatchEvents(state func() EventsState) {
	if m != nil && state != nil {
		m.events.state.Store(&state)
	}
}
