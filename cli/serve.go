package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/coffer-csi/coffer/internal/ops"
	"github.com/coffer-csi/coffer/internal/version"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/server"
	"github.com/coffer-csi/coffer/wiring"
)

// serveConfig is coffer serve's command line: the Config its flags feed,
// and what only the command uses (the socket, the HTTP endpoints, logs).
type serveConfig struct {
	cfg          wiring.Config
	providerDir  string
	providerName string
	metricsAddr  string
	healthAddr   string
	pprofAddr    string
	log          logFlags
	// events are the --event* flags; eventsLedger empty: events off.
	events       wiring.ChangeEvents
	eventsLedger string
}

// providerNamePattern is the driver's rule for spec.provider.
var providerNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,30}$`)

func (c *serveConfig) register(fs *pflag.FlagSet) {
	d := wiring.Defaults()
	c.cfg.Quota = &wiring.Quota{}
	fs.StringVar(&c.providerDir, "provider-dir", "/var/run/secrets-store-csi-providers", "directory the driver looks for provider sockets in")
	fs.StringVar(&c.providerName, "provider-name", wiring.DefaultController().ProviderName, "provider name: the socket is <provider-dir>/<provider-name>.sock and SecretProviderClasses select it with spec.provider")
	fs.DurationVar(&c.cfg.Server.MountTimeout, "mount-timeout", d.Server.MountTimeout, "deadline of each Mount, AWS calls and retries included")
	fs.DurationVar(&c.cfg.Server.ShutdownTimeout, "shutdown-timeout", d.Server.ShutdownTimeout, "how long in-flight Mounts may finish after SIGTERM")
	registerCluster(fs, &c.cfg)
	fs.IntVar(&c.cfg.Limits.MaxObjects, "max-objects", d.Limits.MaxObjects, "most objects one SecretProviderClass may list")
	fs.IntVar(&c.cfg.Limits.MaxResponseBytes, "max-response-bytes", d.Limits.MaxResponseBytes, "most bytes of file content one Mount may return (the driver's default receive limit is 4 MiB)")
	fs.IntVar(&c.cfg.Limits.FetchConcurrency, "fetch-concurrency", d.Limits.FetchConcurrency, "AWS calls one Mount may have in flight")
	fs.IntVar(&c.cfg.Limits.MaxAttributesBytes, "max-attributes-bytes", d.Limits.MaxAttributesBytes, "largest attributes JSON a Mount request may carry (SecretProviderClass parameters plus the pod's volumeAttributes)")
	fs.IntVar(&c.cfg.Limits.MaxValueBytes, "max-value-bytes", d.Limits.MaxValueBytes, "largest single value (secret, parameter, selected entry) a Mount may fetch")
	fs.IntVar(&c.cfg.Server.MaxConcurrentMounts, "max-concurrent-mounts", d.Server.MaxConcurrentMounts, "Mounts served at once; more wait for a slot within their deadline")
	fs.IntVar(&c.cfg.Limits.MaxCallsPerIdentity, "max-aws-calls-per-identity", d.Limits.MaxCallsPerIdentity, "AWS calls one workload identity may have in flight across all its mounts")
	fs.BoolVar(&c.cfg.NodeCredentials, "insecure-node-credentials", d.NodeCredentials, "DEVELOPMENT ONLY: read AWS with the provider's own credentials for every pod instead of each pod's IRSA or Pod Identity role")
	registerIdentity(fs, &c.cfg.Identity, d.Identity)
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "address for Prometheus metrics at /metrics, e.g. :8080 (empty: off)")
	fs.StringVar(&c.healthAddr, "health-addr", "", "address for /healthz (alive) and /readyz (the gRPC server answers on the socket), e.g. :8081 (empty: off)")
	fs.StringVar(&c.pprofAddr, "pprof-addr", "", "address for Go pprof profiles at /debug/pprof/, e.g. 127.0.0.1:6060 (empty: off; do not expose it)")
	fs.BoolVar(&c.cfg.MetricsNamespaceLabel, "metrics-namespace-label", d.MetricsNamespaceLabel, "add the pod namespace as a label to mount metrics (more series)")
	fs.BoolVar(&c.cfg.SyncAtMount, "sync-secrets", d.SyncAtMount, "after each successful mount, sync the Kubernetes Secrets the SecretProviderClass declares in syncSecrets (needs RBAC to write Secrets)")
	fs.BoolVar(&c.cfg.RotationEvents, "rotation-events", d.RotationEvents, "record a Normal event SecretsRotated on the pod when a remount changes any object's version, naming the objects and new versions, never values (needs RBAC: create on events)")
	fs.DurationVar(&c.cfg.Cache.MaxStaleness, "max-staleness", d.Cache.MaxStaleness, "freshness bound: a mount never gets a value, or an access decision, read from AWS longer ago than this (0: every mount reads AWS); a pod's remount never gets one read before its previous mount")
	fs.DurationVar(&c.cfg.Cache.TTL, "cache-ttl", d.Cache.TTL, "opt-in longer reuse: values are reused across mounts of the same identity for this long instead of --max-staleness (for Parameter Store throughput; changes and revoked access then show up to this late for new pods; remounts still read after their previous mount)")
	fs.Int64Var(&c.cfg.Cache.MaxBytes, "cache-max-bytes", d.Cache.MaxBytes, "memory bound of the value cache (and of the last good values kept for --serve-stale-on-outage); least recently used values are evicted")
	fs.DurationVar(&c.cfg.Cache.ServeStale, "serve-stale-on-outage", d.Cache.ServeStale, "opt-in: when AWS is unavailable (throttled after retries, 5xx, timeouts, connection errors, in every region tried), answer a mount with the last good value the same identity read at most this long ago (0: off; never on access denied, not found, KMS or input errors)")
	registerQuota(fs, c.cfg.Quota, *d.Quota)
	registerEvaluator(fs, &c.cfg.Evaluator, d.Evaluator)
	de := wiring.DefaultChangeEvents()
	fs.StringVar(&c.eventsLedger, "events-ledger", "", "change events: NAMESPACE/NAME of the change ledger's ConfigMap that coffer-controller events publishes (empty: off). A mount may then be answered from the cache while no change event named its objects or role since the read, the pipeline was proven live after it, and the value is younger than --event-max-age (needs RBAC: get, list and watch on that ConfigMap)")
	fs.DurationVar(&c.events.MaxAge, "event-max-age", de.MaxAge, "with --events-ledger: a value read longer ago is never answered by the change ledger's rule; the bound on revocations and lost events, which the canary cannot see")
	fs.DurationVar(&c.events.ProofMaxAge, "event-proof-max-age", de.ProofMaxAge, "with --events-ledger: while the newest canary change that came back through the pipeline was written longer ago than this, every mount reads AWS as without events")
	fs.DurationVar(&c.events.ClockSkew, "event-clock-skew", de.ClockSkew, "with --events-ledger: the most the clocks of this node and of coffer-controller events may differ; comparisons of their times allow for it")
	c.log.register(fs)
}

func (c *serveConfig) validate() error {
	var errs []error
	if !providerNamePattern.MatchString(c.providerName) {
		errs = append(errs, fmt.Errorf("--provider-name %q: use 1-30 letters, digits, _ or - (the driver's rule for spec.provider)", c.providerName))
	}
	if c.cfg.Server.MountTimeout <= 0 {
		errs = append(errs, errors.New("--mount-timeout must be positive"))
	}
	l := c.cfg.Limits
	if l.MaxResponseBytes <= 0 || l.MaxResponseBytes > render.DriverMaxResponseBytes {
		errs = append(errs, fmt.Errorf("--max-response-bytes must be between 1 and %d", render.DriverMaxResponseBytes))
	}
	if l.FetchConcurrency <= 0 {
		errs = append(errs, errors.New("--fetch-concurrency must be positive"))
	}
	if l.MaxAttributesBytes <= 0 || l.MaxValueBytes <= 0 || c.cfg.Server.MaxConcurrentMounts <= 0 || l.MaxCallsPerIdentity <= 0 {
		errs = append(errs, errors.New("--max-attributes-bytes, --max-value-bytes, --max-concurrent-mounts and --max-aws-calls-per-identity must be positive"))
	}
	if l.MaxObjects <= 0 {
		errs = append(errs, errors.New("--max-objects must be positive"))
	}
	errs = append(errs, validateIdentity(c.cfg.Identity)...)
	errs = append(errs, validateQuota(*c.cfg.Quota)...)
	errs = append(errs, validateEvaluator(c.cfg.Evaluator)...)
	errs = append(errs, c.validateEvents()...)
	if ca := c.cfg.Cache; ca.MaxStaleness < 0 || ca.TTL < 0 || ca.MaxBytes < 0 || ca.ServeStale < 0 {
		errs = append(errs, errors.New("--max-staleness, --cache-ttl, --cache-max-bytes and --serve-stale-on-outage must not be negative"))
	}
	return errors.Join(errs...)
}

// validateEvents checks the --event* flags and turns events on when
// --events-ledger names a ConfigMap.
func (c *serveConfig) validateEvents() []error {
	c.cfg.ChangeEvents = nil
	if c.eventsLedger == "" {
		return nil
	}
	var errs []error
	ns, name, ok := strings.Cut(c.eventsLedger, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		errs = append(errs, fmt.Errorf("--events-ledger %q: use NAMESPACE/NAME of the ConfigMap coffer-controller events publishes, e.g. kube-system/coffer-changes", c.eventsLedger))
	}
	e := c.events
	if e.MaxAge <= 0 || e.ProofMaxAge <= 0 || e.ClockSkew < 0 {
		errs = append(errs, errors.New("--event-max-age and --event-proof-max-age must be positive, --event-clock-skew not negative"))
	}
	if e.ProofMaxAge+e.ClockSkew >= e.MaxAge {
		errs = append(errs, fmt.Errorf("--event-proof-max-age (%v) plus --event-clock-skew (%v) must be shorter than --event-max-age (%v): otherwise no value is ever proven unchanged", e.ProofMaxAge, e.ClockSkew, e.MaxAge))
	}
	if len(errs) > 0 {
		return errs
	}
	e.Namespace, e.Name = ns, name
	c.cfg.ChangeEvents = &e
	return nil
}

// ServeConfig is the Config coffer serve builds from args, its flags
// (none: its defaults, with $AWS_REGION and $NODE_NAME), through the same
// registration and validation as the command; the whole-stack suite takes
// its configuration from it.
func ServeConfig(args ...string) (wiring.Config, error) {
	var c serveConfig
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return wiring.Config{}, err
	}
	return c.config()
}

// config is the Config the flags describe, once they are valid.
func (c *serveConfig) config() (wiring.Config, error) {
	if err := c.validate(); err != nil {
		return wiring.Config{}, err
	}
	return c.cfg, nil
}

func runServe(ctx context.Context, c *serveConfig, stderr io.Writer) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	log, err := c.log.logger(stderr)
	if err != nil {
		return err
	}
	limitMemory(cfg.Evaluator, log)
	cfg.Logger = log
	coffer, err := wiring.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer coffer.Close()
	socket := filepath.Join(c.providerDir, c.providerName+".sock")
	lis, err := server.Listen(socket)
	if err != nil {
		return err
	}
	probe := &ops.SocketProbe{Socket: socket}
	defer probe.Close()
	if err := startOps(ctx, opsAddrs{health: c.healthAddr, metrics: c.metricsAddr, pprof: c.pprofAddr}, probe.Check, coffer.Registry, log); err != nil {
		lis.Close()
		return err
	}
	log.Info("serving", "socket", socket, "version", version.Version, "mountTimeout", cfg.Server.MountTimeout,
		"metricsAddr", c.metricsAddr, "healthAddr", c.healthAddr)
	return coffer.Serve(ctx, lis)
}
