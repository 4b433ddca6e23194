package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/internal/ops"
	"github.com/coffer-csi/coffer/internal/version"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/server"
)

type serveConfig struct {
	providerDir      string
	providerName     string
	mountTimeout     time.Duration
	shutdownTimeout  time.Duration
	region           string
	fips             bool
	dualStack        bool
	maxObjects       int
	maxResponseBytes int
	fetchConcurrency int
	maxAttrBytes     int
	maxValueBytes    int
	maxMounts        int
	maxCallsPerID    int
	nodeCredentials  bool
	kubeconfig       string
	nodeName         string
	identity         identityFlags
	maxStaleness     time.Duration
	cacheTTL         time.Duration
	cacheMaxBytes    int64
	serveStale       time.Duration
	metricsAddr      string
	healthAddr       string
	pprofAddr        string
	metricsNamespace bool
	syncSecrets      bool
	rotationEvents   bool
	quota            quotaFlags
	evaluator        evaluatorFlags
	log              logFlags
}

// fetchAllowance is how many times the response limit (--max-response-bytes;
// the driver's 4 MiB for sync) a mount or sync may fetch before it stops:
// values are larger than their files only when base64-decoded (by a third)
// or reduced by jmesPath, so twice the limit loses no mount that could
// succeed, and bounds what a class can make coffer hold.
const fetchAllowance = 2

// maxMarkedPods bounds the pods whose last mount time is remembered at once
// (those that mounted within the longest window values are kept): far more
// than a node runs. Beyond it, coffer reads AWS more often, never staler.
const maxMarkedPods = 8192

// providerNamePattern is the driver's rule for spec.provider.
var providerNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,30}$`)

func (c *serveConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.providerDir, "provider-dir", "/var/run/secrets-store-csi-providers", "directory the driver looks for provider sockets in")
	fs.StringVar(&c.providerName, "provider-name", "aws", "provider name: the socket is <provider-dir>/<provider-name>.sock and SecretProviderClasses select it with spec.provider")
	fs.DurationVar(&c.mountTimeout, "mount-timeout", 30*time.Second, "deadline of each Mount, AWS calls and retries included")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long in-flight Mounts may finish after SIGTERM")
	fs.StringVar(&c.region, "region", os.Getenv("AWS_REGION"), "region for SecretProviderClasses that name none (default $AWS_REGION)")
	fs.BoolVar(&c.fips, "fips", false, "use FIPS endpoints for every AWS call")
	fs.BoolVar(&c.dualStack, "dual-stack", false, "use dual-stack (IPv6) AWS endpoints")
	fs.IntVar(&c.maxObjects, "max-objects", 256, "most objects one SecretProviderClass may list")
	fs.IntVar(&c.maxResponseBytes, "max-response-bytes", render.DriverMaxResponseBytes, "most bytes of file content one Mount may return (the driver's default receive limit is 4 MiB)")
	fs.IntVar(&c.fetchConcurrency, "fetch-concurrency", 8, "AWS calls one Mount may have in flight")
	fs.IntVar(&c.maxAttrBytes, "max-attributes-bytes", 256<<10, "largest attributes JSON a Mount request may carry (SecretProviderClass parameters plus the pod's volumeAttributes)")
	fs.IntVar(&c.maxValueBytes, "max-value-bytes", 1<<20, "largest single value (secret, parameter, selected entry) a Mount may fetch")
	fs.IntVar(&c.maxMounts, "max-concurrent-mounts", 64, "Mounts served at once; more wait for a slot within their deadline")
	fs.IntVar(&c.maxCallsPerID, "max-aws-calls-per-identity", 16, "AWS calls one workload identity may have in flight across all its mounts")
	fs.BoolVar(&c.nodeCredentials, "insecure-node-credentials", false, "DEVELOPMENT ONLY: read AWS with the provider's own credentials for every pod instead of each pod's IRSA or Pod Identity role")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig for the Kubernetes API (default: in-cluster configuration)")
	fs.StringVar(&c.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name, to read its topology.kubernetes.io/region label when no region is set (default $NODE_NAME)")
	c.identity.register(fs)
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "address for Prometheus metrics at /metrics, e.g. :8080 (empty: off)")
	fs.StringVar(&c.healthAddr, "health-addr", "", "address for /healthz (alive) and /readyz (the gRPC server answers on the socket), e.g. :8081 (empty: off)")
	fs.StringVar(&c.pprofAddr, "pprof-addr", "", "address for Go pprof profiles at /debug/pprof/, e.g. 127.0.0.1:6060 (empty: off; do not expose it)")
	fs.BoolVar(&c.metricsNamespace, "metrics-namespace-label", false, "add the pod namespace as a label to mount metrics (more series)")
	fs.BoolVar(&c.syncSecrets, "sync-secrets", false, "after each successful mount, sync the Kubernetes Secrets the SecretProviderClass declares in syncSecrets (needs RBAC to write Secrets)")
	fs.BoolVar(&c.rotationEvents, "rotation-events", false, "record a Normal event SecretsRotated on the pod when a remount changes any object's version, naming the objects and new versions, never values (needs RBAC: create on events)")
	fs.DurationVar(&c.maxStaleness, "max-staleness", 5*time.Second, "freshness bound: a mount never gets a value, or an access decision, read from AWS longer ago than this (0: every mount reads AWS); a pod's remount never gets one read before its previous mount")
	fs.DurationVar(&c.cacheTTL, "cache-ttl", 0, "opt-in longer reuse: values are reused across mounts of the same identity for this long instead of --max-staleness (for Parameter Store throughput; changes and revoked access then show up to this late for new pods; remounts still read after their previous mount)")
	fs.Int64Var(&c.cacheMaxBytes, "cache-max-bytes", 64<<20, "memory bound of the value cache (and of the last good values kept for --serve-stale-on-outage); least recently used values are evicted")
	fs.DurationVar(&c.serveStale, "serve-stale-on-outage", 0, "opt-in: when AWS is unavailable (throttled after retries, 5xx, timeouts, connection errors, in every region tried), answer a mount with the last good value the same identity read at most this long ago (0: off; never on access denied, not found, KMS or input errors)")
	c.quota.register(fs)
	c.evaluator.register(fs)
	c.log.register(fs)
}

func (c *serveConfig) validate() error {
	var errs []error
	if !providerNamePattern.MatchString(c.providerName) {
		errs = append(errs, fmt.Errorf("--provider-name %q: use 1-30 letters, digits, _ or - (the driver's rule for spec.provider)", c.providerName))
	}
	if c.mountTimeout <= 0 {
		errs = append(errs, errors.New("--mount-timeout must be positive"))
	}
	if c.maxResponseBytes <= 0 || c.maxResponseBytes > render.DriverMaxResponseBytes {
		errs = append(errs, fmt.Errorf("--max-response-bytes must be between 1 and %d", render.DriverMaxResponseBytes))
	}
	if c.fetchConcurrency <= 0 {
		errs = append(errs, errors.New("--fetch-concurrency must be positive"))
	}
	if c.maxAttrBytes <= 0 || c.maxValueBytes <= 0 || c.maxMounts <= 0 || c.maxCallsPerID <= 0 {
		errs = append(errs, errors.New("--max-attributes-bytes, --max-value-bytes, --max-concurrent-mounts and --max-aws-calls-per-identity must be positive"))
	}
	if c.maxObjects <= 0 {
		errs = append(errs, errors.New("--max-objects must be positive"))
	}
	errs = append(errs, c.identity.validate()...)
	errs = append(errs, c.quota.validate()...)
	errs = append(errs, c.evaluator.validate()...)
	if c.maxStaleness < 0 || c.cacheTTL < 0 || c.cacheMaxBytes < 0 || c.serveStale < 0 {
		errs = append(errs, errors.New("--max-staleness, --cache-ttl, --cache-max-bytes and --serve-stale-on-outage must not be negative"))
	}
	return errors.Join(errs...)
}

func runServe(ctx context.Context, c *serveConfig, stderr io.Writer) error {
	if err := c.validate(); err != nil {
		return err
	}
	log, err := c.log.logger(stderr)
	if err != nil {
		return err
	}
	c.evaluator.limitMemory(log)
	evaluator, stopEvaluator := c.evaluator.pool(log)
	defer stopEvaluator()
	awsCfg, err := awsapi.LoadConfig(ctx, awsapi.Settings{FIPS: c.fips, DualStack: c.dualStack})
	if err != nil {
		return err
	}
	reuse := max(c.maxStaleness, c.cacheTTL)
	keep := max(reuse, c.serveStale)
	values := cache.New(keep, c.cacheMaxBytes)
	registry := prometheus.NewRegistry()
	m := metrics.New(registry, metrics.Options{NamespaceLabel: c.metricsNamespace, Version: version.Version, CacheStats: cacheStats(values)})
	awsapi.Instrument(&awsCfg, m.AWSCall)
	budgets, err := c.quota.controller(m)
	if err != nil {
		return err
	}
	p := &provider.Mounter{
		Clients:            provider.SharedClients(awsapi.NewClientCache(awsCfg, 0)),
		Fetcher:            &fetch.Fetcher{Concurrency: c.fetchConcurrency, Cache: values, Reuse: reuse, ServeStale: c.serveStale, MaxCallsPerIdentity: c.maxCallsPerID, MaxBytes: fetchAllowance * c.maxResponseBytes, Quota: budgets},
		Marks:              cache.NewMarks(keep, maxMarkedPods),
		MaxObjects:         c.maxObjects,
		MaxResponseBytes:   c.maxResponseBytes,
		MaxValueBytes:      c.maxValueBytes,
		MaxAttributesBytes: c.maxAttrBytes,
		Logger:             log,
		Metrics:            m,
		Evaluator:          evaluator,
	}
	if c.nodeCredentials {
		log.Warn("development mode: every pod reads AWS with the provider's own credentials (--insecure-node-credentials)")
		p.Identities = auth.NodeCredentials{Credentials: awsCfg.Credentials}
		p.Region = provider.StaticRegion(c.region)
	} else {
		kube, err := kubeClient(c.kubeconfig)
		if err != nil {
			return err
		}
		p.Identities = c.identity.resolver(awsCfg, kube, m.CredentialFetch)
		p.Region = &auth.NodeRegion{Configured: c.region, Client: kube, NodeName: c.nodeName}
	}
	if c.syncSecrets {
		stopSync, err := enableMountSync(p, c.kubeconfig, c.nodeName, log)
		if err != nil {
			return err
		}
		defer stopSync()
	}
	if c.rotationEvents {
		if c.nodeCredentials {
			// Without verified tokens, a mount's pod attributes are
			// whatever the caller sent: no events on their word.
			log.Warn("--rotation-events is off with --insecure-node-credentials: the pods' identities are not verified")
		} else if err := enableRotationEvents(ctx, p, c.kubeconfig, c.nodeName, log); err != nil {
			return err
		}
	}
	socket := filepath.Join(c.providerDir, c.providerName+".sock")
	lis, err := server.Listen(socket)
	if err != nil {
		return err
	}
	probe := &ops.SocketProbe{Socket: socket}
	defer probe.Close()
	if err := c.startOps(ctx, probe.Check, registry, log); err != nil {
		lis.Close()
		return err
	}
	log.Info("serving", "socket", socket, "version", version.Version, "mountTimeout", c.mountTimeout,
		"metricsAddr", c.metricsAddr, "healthAddr", c.healthAddr)
	srv := &server.Server{Mounter: p, MountTimeout: c.mountTimeout, BuildVersion: version.Version, Logger: log, Slots: server.NewSlots(c.maxMounts)}
	return server.Serve(ctx, lis, srv, server.ServeOptions{ShutdownTimeout: c.shutdownTimeout, Logger: log})
}

// startOps opens the operational HTTP listeners (health, metrics, pprof);
// health and metrics share one listener when given the same address.
func (c *serveConfig) startOps(ctx context.Context, ready func(context.Context) error, reg *prometheus.Registry, log *slog.Logger) error {
	type endpoint struct {
		addr    string
		handler http.Handler
	}
	var eps []endpoint
	switch {
	case c.healthAddr != "" && c.healthAddr == c.metricsAddr:
		eps = append(eps, endpoint{c.healthAddr, ops.Handler(ready, reg)})
	default:
		if c.healthAddr != "" {
			eps = append(eps, endpoint{c.healthAddr, ops.Handler(ready, nil)})
		}
		if c.metricsAddr != "" {
			eps = append(eps, endpoint{c.metricsAddr, ops.Handler(ready, reg)})
		}
	}
	if c.pprofAddr != "" {
		eps = append(eps, endpoint{c.pprofAddr, ops.PprofHandler()})
	}
	listeners := make([]net.Listener, 0, len(eps))
	for _, ep := range eps {
		lis, err := ops.Listen(ep.addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		listeners = append(listeners, lis)
	}
	for i, ep := range eps {
		go ops.Serve(ctx, listeners[i], ep.handler, log)
	}
	return nil
}

// cacheStats reports values' counters to metrics at each scrape; nil (no
// coffer_cache_* series) when there is no cache.
func cacheStats(values *cache.Cache) func() metrics.CacheStats {
	if values == nil {
		return nil
	}
	return func() metrics.CacheStats {
		s := values.Stats()
		return metrics.CacheStats{Hits: s.Hits, Misses: s.Misses, Evictions: s.Evictions, Entries: s.Entries, Bytes: s.Bytes}
	}
}
