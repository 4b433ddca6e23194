// Package metrics defines coffer's Prometheus metrics. Labels are bounded
// sets (outcomes, error classes, AWS operations): never an object name, a
// value, or (unless enabled) a namespace. docs/metrics.md documents each.
//
// Metrics are told, they do not ask: domain packages call its methods with
// plain values, and what is read at scrape time (the value cache's counters,
// the AWS budgets) comes from functions the wiring registers. So this
// package imports none of coffer's own.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds coffer's collectors. A nil *Metrics records nothing.
type Metrics struct {
	mountRequests   *prometheus.CounterVec
	mountDuration   *prometheus.HistogramVec
	mountsInFlight  prometheus.Gauge
	mountBytes      prometheus.Counter
	mountFiles      prometheus.Counter
	awsCalls        *prometheus.CounterVec
	awsCallDuration *prometheus.HistogramVec
	credFetches     *prometheus.CounterVec
	secretSyncs     *prometheus.CounterVec
	staleAnswers    *prometheus.HistogramVec
	optionalSkips   *prometheus.CounterVec
	rotationEvents  *prometheus.CounterVec
	restarts        *prometheus.CounterVec
	quota           *quotaMetrics
	events          *eventsMetrics
	// withNamespace adds the pod namespace to mount metrics.
	withNamespace bool
}

// Options configure the metrics.
type Options struct {
	// NamespaceLabel adds a namespace label to the mount metrics. Off by
	// default: namespaces are many, and cardinality is memory.
	NamespaceLabel bool
	Version        string
	// CacheStats, when set, is read at each scrape and exported as
	// coffer_cache_*.
	CacheStats func() CacheStats
}

// CacheStats are the value cache's counters (the cache's Stats).
type CacheStats struct {
	Hits, Misses, Evictions uint64
	Entries                 int
	Bytes                   int64
}

// New creates coffer's metrics and registers them, with build info and the
// Go runtime and process collectors, in reg.
func New(reg prometheus.Registerer, o Options) *Metrics {
	mountLabels := []string{"outcome", "error_class"}
	if o.NamespaceLabel {
		mountLabels = append(mountLabels, "namespace")
	}
	durationLabels := []string{"outcome"}
	if o.NamespaceLabel {
		durationLabels = append(durationLabels, "namespace")
	}
	m := &Metrics{
		withNamespace: o.NamespaceLabel,
		mountRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_mount_requests_total",
			Help: "Mount requests from the driver, by outcome (success, error) and error class.",
		}, mountLabels),
		mountDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coffer_mount_duration_seconds",
			Help:    "Time to serve a Mount request, AWS calls included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, durationLabels),
		mountsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "coffer_mounts_in_flight",
			Help: "Mount requests being served now.",
		}),
		mountBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_mount_response_bytes_total",
			Help: "Bytes of file content returned to the driver.",
		}),
		mountFiles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_mount_response_files_total",
			Help: "Files returned to the driver.",
		}),
		awsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_aws_api_calls_total",
			Help: "AWS API requests (each retry attempt counts), by service, operation and outcome (success, throttled, error).",
		}, []string{"service", "operation", "outcome"}),
		awsCallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coffer_aws_api_call_duration_seconds",
			Help:    "Duration of AWS API requests.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"service", "operation"}),
		credFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_credential_fetches_total",
			Help: "Workload credentials obtained from STS or the EKS Pod Identity agent (cache misses), by mode (irsa, pod_identity, assume_role) and outcome.",
		}, []string{"mode", "outcome"}),
		secretSyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_secret_syncs_total",
			Help: "Kubernetes Secret syncs (syncSecrets), by trigger (mount, controller) and reason (SecretCreated, SecretUpdated, SecretUnchanged, FetchFailed, ...).",
		}, []string{"trigger", "reason"}),
		staleAnswers: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coffer_stale_answers_age_seconds",
			Help:    "Values served from the last good read because AWS was unavailable (--serve-stale-on-outage), by reason (throttled, unavailable, timeout): how old each was.",
			Buckets: []float64{1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400},
		}, []string{"reason"}),
		optionalSkips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_optional_skips_total",
			Help: "Files left out of a mount because an optional object does not exist, by reason (object_not_found: the secret, parameter or version; empty_selection: a path or filters object that selects nothing; input_skipped: a templated file that reads such an object).",
		}, []string{"reason"}),
		rotationEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_rotation_events_total",
			Help: "Remounts that changed an object's version, by what became of their SecretsRotated pod event (recorded, rate_limited, dropped, failed).",
		}, []string{"outcome"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_workload_restarts_total",
			Help: "Rolling restarts of opted-in workloads by coffer-controller sync, by kind (Deployment, StatefulSet, DaemonSet), trigger (mount, secret, both) and outcome (restarted, failed).",
		}, []string{"kind", "trigger", "outcome"}),
	}
	m.quota = newQuotaMetrics()
	m.events = newEventsMetrics()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "coffer_build_info",
		Help:        "coffer's version; always 1.",
		ConstLabels: prometheus.Labels{"version": o.Version},
	})
	buildInfo.Set(1)
	reg.MustRegister(m.mountRequests, m.mountDuration, m.mountsInFlight, m.mountBytes, m.mountFiles,
		m.awsCalls, m.awsCallDuration, m.credFetches, m.secretSyncs, m.staleAnswers, m.rotationEvents, m.restarts, m.quota, m.events, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(m.optionalSkips)
	if o.CacheStats != nil {
		reg.MustRegister(&cacheCollector{stats: o.CacheStats})
	}
	return m
}

// MountStarted records a Mount starting; the returned function records its
// end. errorClass is "" on success.
func (m *Metrics) MountStarted() func(namespace, errorClass string, files, bytes int) {
	if m == nil {
		return func(string, string, int, int) {}
	}
	start := time.Now()
	m.mountsInFlight.Inc()
	return func(namespace, errorClass string, files, bytes int) {
		m.mountsInFlight.Dec()
		outcome := "success"
		if errorClass != "" {
			outcome = "error"
		} else {
			errorClass = "none"
		}
		labels := []string{outcome, errorClass}
		durLabels := []string{outcome}
		if m.withNamespace {
			labels = append(labels, namespace)
			durLabels = append(durLabels, namespace)
		}
		m.mountRequests.WithLabelValues(labels...).Inc()
		m.mountDuration.WithLabelValues(durLabels...).Observe(time.Since(start).Seconds())
		m.mountFiles.Add(float64(files))
		m.mountBytes.Add(float64(bytes))
	}
}

// AWSCall records one AWS request (an awsapi.CallObserver).
func (m *Metrics) AWSCall(service, operation, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.awsCalls.WithLabelValues(service, operation, outcome).Inc()
	m.awsCallDuration.WithLabelValues(service, operation).Observe(d.Seconds())
}

// CredentialFetch records credentials obtained (or not) for a workload.
func (m *Metrics) CredentialFetch(mode string, err error) {
	if m == nil {
		return
	}
	outcome := "success"
	if err != nil {
		outcome = "error"
	}
	m.credFetches.WithLabelValues(mode, outcome).Inc()
}

// cacheCollector exports the value cache's counters at scrape time.
type cacheCollector struct{ stats func() CacheStats }

var (
	cacheRequestsDesc  = prometheus.NewDesc("coffer_cache_requests_total", "Value cache lookups, by result (hit, miss).", []string{"result"}, nil)
	cacheEvictionsDesc = prometheus.NewDesc("coffer_cache_evictions_total", "Values evicted to stay within --cache-max-bytes.", nil, nil)
	cacheBytesDesc     = prometheus.NewDesc("coffer_cache_bytes", "Bytes held by the value cache.", nil, nil)
	cacheEntriesDesc   = prometheus.NewDesc("coffer_cache_entries", "Values held by the value cache.", nil, nil)
)

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheRequestsDesc
	ch <- cacheEvictionsDesc
	ch <- cacheBytesDesc
	ch <- cacheEntriesDesc
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(cacheRequestsDesc, prometheus.CounterValue, float64(s.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(cacheRequestsDesc, prometheus.CounterValue, float64(s.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(cacheEvictionsDesc, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(s.Entries))
}

// StaleAnswer records one value served from the last good read, age old,
// because AWS was unavailable for reason (a fetch error kind).
func (m *Metrics) StaleAnswer(reason string, age time.Duration) {
	if m == nil {
		return
	}
	m.staleAnswers.WithLabelValues(reason).Observe(age.Seconds())
}

// SecretSync records the outcome of syncing one declared Secret. reason is
// one of secretsync's fixed Reason constants.
func (m *Metrics) SecretSync(trigger, reason string) {
	if m == nil {
		return
	}
	m.secretSyncs.WithLabelValues(trigger, reason).Inc()
}

// Reasons an optional object's files are left out of a mount.
const (
	SkipObjectNotFound = "object_not_found"
	SkipEmptySelection = "empty_selection"
	SkipInputSkipped   = "input_skipped"
)

// OptionalSkip records files left out of a mount for reason, one of the
// Skip constants.
func (m *Metrics) OptionalSkip(reason string) {
	if m == nil {
		return
	}
	m.optionalSkips.WithLabelValues(reason).Inc()
}

// RotationEvent records what became of one rotation's pod event (one of
// kube's Outcome constants).
func (m *Metrics) RotationEvent(outcome string) {
	if m == nil {
		return
	}
	m.rotationEvents.WithLabelValues(outcome).Inc()
}

// WorkloadRestart records one rolling restart of a workload (kind from a
// fixed set of three, trigger and outcome from restart's constants).
func (m *Metrics) WorkloadRestart(kind, trigger, outcome string) {
	if m == nil {
		return
	}
	m.restarts.WithLabelValues(kind, trigger, outcome).Inc()
}
