package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// EventsConsumer holds the metrics of coffer-controller events, the change
// events' consumer: told by changefeed with plain values. A nil
// *EventsConsumer records nothing.
type EventsConsumer struct {
	messages        *prometheus.CounterVec
	lag             prometheus.Histogram
	canaryAge       prometheus.Gauge
	entries         prometheus.Gauge
	publishFailures prometheus.Counter
}

// Results of a message, the label of coffer_events_consumer_messages_total.
const (
	// EventChange: the message named subjects, now in the ledger.
	EventChange = "change"
	// EventCanary: one of the canary's announcements with the nonce of a
	// round in flight.
	EventCanary = "canary"
	// EventCanaryUnmatched: a message naming the canary objects without
	// the nonce of a round in flight (forged, replayed, or late).
	EventCanaryUnmatched = "canary_unmatched"
	// EventIgnored: an event coffer does not track.
	EventIgnored = "ignored"
	// EventInvalid: not an event, over the size limit, or naming nothing
	// valid.
	EventInvalid = "invalid"
)

// NewEventsConsumer creates the consumer's metrics and registers them, with
// build info and the Go runtime and process collectors, in reg.
func NewEventsConsumer(reg prometheus.Registerer, version string) *EventsConsumer {
	m := &EventsConsumer{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_events_consumer_messages_total",
			Help: "Messages coffer-controller events received from its queue, by result (change, canary, canary_unmatched, ignored, invalid).",
		}, []string{"result"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "coffer_events_consumer_lag_seconds",
			Help:    "Time from the moment an event says it was made to its receipt (the event's own time is not verified; negative lags count as 0).",
			Buckets: []float64{.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900},
		}),
		canaryAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "coffer_events_consumer_canary_age_seconds",
			Help: "Seconds since the newest canary round that came back was written (the ledger's proof; until one has, since the consumer started); updated at each canary round.",
		}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "coffer_events_consumer_ledger_entries",
			Help: "Entries in the change ledger last published.",
		}),
		publishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_events_consumer_publish_failures_total",
			Help: "Writes of the change ledger's ConfigMap that failed (the messages they carried stay in the queue).",
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "coffer_build_info",
		Help:        "coffer's version; always 1.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	reg.MustRegister(m.messages, m.lag, m.canaryAge, m.entries, m.publishFailures, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Message records one message's result (EventChange, EventCanary, ...).
func (m *EventsConsumer) Message(result string) {
	if m != nil {
		m.messages.WithLabelValues(result).Inc()
	}
}

// EventLag records how long after an event's own time it was received;
// a negative lag (the event's clock ahead, or a forged time) counts as 0.
func (m *EventsConsumer) EventLag(d time.Duration) {
	if m != nil {
		m.lag.Observe(max(0, d.Seconds()))
	}
}

// CanaryAge sets the age of the newest proven canary round.
func (m *EventsConsumer) CanaryAge(d time.Duration) {
	if m != nil {
		m.canaryAge.Set(max(0, d.Seconds()))
	}
}

// LedgerEntries sets the entries of the ledger last published.
func (m *EventsConsumer) LedgerEntries(n int) {
	if m != nil {
		m.entries.Set(float64(n))
	}
}

// PublishFailed records a failed write of the ledger's ConfigMap.
func (m *EventsConsumer) PublishFailed() {
	if m != nil {
		m.publishFailures.Inc()
	}
}
