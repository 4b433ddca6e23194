// Package wiring builds coffer from its configuration, in one place: the
// AWS SDK configuration and clients, workload identity with its
// credential cache, the node's quota, the value cache and pods' mount
// marks, the fetcher, the evaluator pool, the provider and the driver's
// gRPC server, Secret sync after mounts, SecretsRotated events, and
// coffer-controller sync's controllers. coffer serve, coffer-controller sync and coffer mount
// turn their flags into a Config and call New; so does the whole-stack
// suite (tests/socket), with coffer serve's defaults, so that it runs what
// ships. It sits at the command layer: nothing below it imports it.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/internal/version"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/render/isolate"
	"github.com/coffer-csi/coffer/provider/rotationevent"
	"github.com/coffer-csi/coffer/provider/server"
	"github.com/coffer-csi/coffer/secretsync"
	"github.com/coffer-csi/coffer/secretsync/restart"
)

// Coffer is what New built: the pieces its callers run.
type Coffer struct {
	// Provider serves mounts, and the fetch Secret sync shares.
	Provider *provider.Mounter
	// Server is the driver's gRPC API over Provider; Serve runs it.
	Server *server.Server
	// Registry holds coffer's metrics, for the /metrics endpoint.
	Registry *prometheus.Registry
	Metrics  *metrics.Metrics
	// Sync is coffer-controller sync's controller, and Restarts the workload
	// restarts (nil unless Config.Controller, and RestartWorkloads).
	Sync     *secretsync.Controller
	Restarts *restart.Controller

	// ledger is the node's watch of the change ledger (nil: events off),
	// which Serve runs.
	ledger *ledgerWatch

	shutdownTimeout time.Duration
	logger          *slog.Logger
	clock           clock.WithTickerAndDelayedExecution
	// closers end what New started, in reverse order.
	closers []func()
}

// New builds coffer as cfg describes. It starts no goroutine that outlives
// Close and makes no request: the Kubernetes API is connected to (without a
// request) only when something needs it, and the evaluator's workers start
// on the first evaluation. Close ends what it started.
func New(ctx context.Context, cfg Config) (_ *Coffer, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	c := &Coffer{shutdownTimeout: cfg.Server.ShutdownTimeout, logger: log, clock: clk}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	k8s := cfg.Kubernetes
	kubernetes := func() (*Kubernetes, error) {
		if k8s == nil {
			var err error
			if k8s, err = Connect(cfg.Kubeconfig, cfg.SyncAtMount || cfg.Controller != nil); err != nil {
				return nil, err
			}
		}
		return k8s, nil
	}

	evaluator := c.evaluator(cfg.Evaluator, log)
	awsCfg, err := awsapi.LoadConfig(ctx, awsapi.Settings{FIPS: cfg.AWS.FIPS, DualStack: cfg.AWS.DualStack, MaxAttempts: cfg.AWS.MaxAttempts, MaxBackoff: cfg.AWS.MaxBackoff})
	if err != nil {
		return nil, err
	}
	keep := cfg.Cache.keep()
	valuesKeep := keep
	if cfg.ChangeEvents != nil {
		// Values answer mounts by the ledger's rule for up to its max age.
		valuesKeep = max(keep, cfg.ChangeEvents.MaxAge)
	}
	values := cache.New(valuesKeep, cfg.Cache.MaxBytes)
	if values != nil {
		values.SetClock(clk)
	}
	c.Registry = prometheus.NewRegistry()
	m := metrics.New(c.Registry, metrics.Options{NamespaceLabel: cfg.MetricsNamespaceLabel, Version: version.Version, CacheStats: cacheStats(values)})
	c.Metrics = m
	awsapi.Instrument(&awsCfg, m.AWSCall)
	var budgets *quota.Controller
	if q := cfg.Quota; q != nil {
		budgets, err = quota.New(quota.Options{Quotas: q.Quotas(), NodeShare: q.NodeShare, Cooldown: q.ThrottleCooldown, Jitter: q.RemountJitter, Clock: clk}, quota.Events{
			Throttled: func(api quota.API) { m.QuotaThrottled(string(api)) },
			Waited:    func(api quota.API, d time.Duration) { m.QuotaWaited(string(api), d) },
			Shifted:   func(from, to quota.API) { m.QuotaShifted(string(from), string(to)) },
		})
		if err != nil {
			return nil, err
		}
		m.WatchQuota(func() []metrics.QuotaBudget { return quotaBudgets(budgets) })
	}
	var marks *cache.Marks
	if keep > 0 {
		marks = cache.NewMarks(keep, maxMarkedPods)
		marks.SetClock(clk)
	}
	p := &provider.Mounter{
		Clients: provider.SharedClients(awsapi.NewClientCache(awsCfg, 0)),
		Clock:   clk,
		Fetcher: &fetch.Fetcher{
			Concurrency: cfg.Limits.FetchConcurrency, Cache: values, Reuse: cfg.Cache.reuse(), ServeStale: cfg.Cache.ServeStale,
			MaxCallsPerIdentity: cfg.Limits.MaxCallsPerIdentity, MaxBytes: FetchAllowance * cfg.Limits.MaxResponseBytes, Quota: budgets,
			Clock: clk,
		},
		Marks:              marks,
		MaxObjects:         cfg.Limits.MaxObjects,
		MaxResponseBytes:   cfg.Limits.MaxResponseBytes,
		MaxValueBytes:      cfg.Limits.MaxValueBytes,
		MaxAttributesBytes: cfg.Limits.MaxAttributesBytes,
		Logger:             log,
		Metrics:            m,
		Evaluator:          evaluator,
	}
	c.Provider = p
	if cfg.ChangeEvents != nil {
		if err := c.changeEvents(*cfg.ChangeEvents, p.Fetcher, kubernetes, clk, log); err != nil {
			return nil, err
		}
	}
	if cfg.NodeCredentials {
		log.Warn("development mode: every pod reads AWS with the provider's own credentials (--insecure-node-credentials)")
		p.Identities = auth.NodeCredentials{Credentials: awsCfg.Credentials}
		p.Region = provider.StaticRegion(cfg.Region)
	} else {
		k, err := kubernetes()
		if err != nil {
			return nil, err
		}
		p.Identities = resolver(cfg.Identity, awsCfg, k.Client, m.CredentialFetch, clk)
		p.Region = &auth.NodeRegion{Configured: cfg.Region, Client: k.Client, NodeName: cfg.NodeName, Clock: clk}
	}
	if cfg.SyncAtMount {
		k, err := kubernetes()
		if err != nil {
			return nil, err
		}
		if err := c.syncAtMount(k, cfg.NodeName, log); err != nil {
			return nil, err
		}
	}
	if cfg.RotationEvents {
		if cfg.NodeCredentials {
			// Without verified tokens, a mount's pod attributes are
			// whatever the caller sent: no events on their word.
			log.Warn("--rotation-events is off with --insecure-node-credentials: the pods' identities are not verified")
		} else {
			k, err := kubernetes()
			if err != nil {
				return nil, err
			}
			if err := c.rotationEvents(k, cfg.NodeName, clk, log); err != nil {
				return nil, err
			}
		}
	}
	c.Server = &server.Server{Mounter: p, MountTimeout: cfg.Server.MountTimeout, BuildVersion: version.Version, Logger: log, Slots: server.NewSlots(cfg.Server.MaxConcurrentMounts)}
	if cfg.Controller != nil {
		k, err := kubernetes()
		if err != nil {
			return nil, err
		}
		if err := c.controllers(*cfg.Controller, cfg, k, clk, log); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Serve answers the driver on lis until ctx ends, then lets Mounts in
// flight finish within the shutdown timeout. It runs the change ledger's
// watch meanwhile, when events are on.
func (c *Coffer) Serve(ctx context.Context, lis net.Listener) error {
	if c.ledger != nil {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.ledger.run(ctx)
		}()
		defer func() { cancel(); <-done }()
	}
	return server.Serve(ctx, lis, c.Server, server.ServeOptions{ShutdownTimeout: c.shutdownTimeout, Logger: c.logger, Clock: c.clock})
}

// Close ends what New started: syncs after mounts in flight get a few
// seconds, queued events are written, the evaluator's workers end. It does
// not stop Serve or the controllers: their context does.
func (c *Coffer) Close() {
	for _, stop := range slices.Backward(c.closers) {
		stop()
	}
	c.closers = nil
}

// evaluator returns the evaluator pool (nil with no workers: in process).
// It starts no process: workers start on the first evaluation.
func (c *Coffer) evaluator(e Evaluator, log *slog.Logger) render.Evaluator {
	if e.Workers == 0 {
		log.Warn("evaluating jmesPath and templates in this process (--evaluator-workers=0): a class the accounting underestimates can exhaust it")
		return nil
	}
	pool := isolate.New(isolate.Config{Workers: e.Workers, MemoryBytes: e.MemoryBytes, Timeout: e.Timeout, Command: e.Command, Env: e.Env, Logger: log, Clock: c.clock})
	c.closers = append(c.closers, pool.Close)
	return pool
}

// resolver builds workload identity: tokens verified against the
// cluster's keys, roles from ServiceAccounts or the Pod Identity agent,
// credentials cached per STS session.
func resolver(id Identity, awsCfg aws.Config, client kube.Interface, onFetch func(mode string, err error), clk clock.Clock) *auth.Resolver {
	keys := auth.APIServerKeys(client.RESTClient())
	if id.JWKSURL != "" {
		keys = auth.URLKeys(&http.Client{Timeout: 10 * time.Second}, id.JWKSURL)
	}
	return auth.NewResolver(auth.ResolverOptions{
		AWS:               awsCfg,
		Kubernetes:        client,
		Audience:          id.STSAudience,
		Verifier:          auth.NewVerifier(auth.VerifierOptions{Keys: keys, Issuers: id.Issuers, Discover: auth.APIServerIssuer(client.RESTClient()), Clock: clk}),
		PodIdentity:       &auth.PodIdentityAgent{IPv4URL: id.PodIdentityIPv4URL, IPv6URL: id.PodIdentityIPv6URL, Timeout: id.PodIdentityTimeout, Attempts: id.PodIdentityAttempts, Clock: clk},
		ServiceAccountTTL: id.ServiceAccountTTL,
		RefreshMargin:     id.RefreshMargin,
		OnCredentialFetch: onFetch,
		SessionScope:      id.SessionScope,
		Clock:             clk,
	})
}

// nodeRecorder records events for coffer serve. The DaemonSet may create
// events, not patch them: a patch of an event is an update the admission
// policy cannot tie to a mount. Close writes what is queued, for a few
// seconds at most.
func (c *Coffer) nodeRecorder(k *Kubernetes, nodeName string, outcome func(string), log *slog.Logger) (*kube.Recorder, error) {
	scheme, err := kube.Scheme()
	if err != nil {
		return nil, err
	}
	rec := kube.NewRecorder(k.Client, scheme, kube.RecorderOptions{
		Source:     corev1.EventSource{Component: "coffer", Host: nodeName},
		Logger:     log,
		Outcome:    outcome,
		CreateOnly: true,
		Clock:      c.clock,
	})
	c.closers = append(c.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		rec.Shutdown(ctx)
	})
	return rec, nil
}

// syncAtMount makes the provider sync the Secrets a class declares after
// each successful mount (coffer serve --sync-secrets). Close lets syncs in
// flight finish briefly.
func (c *Coffer) syncAtMount(k *Kubernetes, nodeName string, log *slog.Logger) error {
	if k.Dynamic == nil {
		return errors.New("syncing Secrets at mount needs the Kubernetes API's dynamic client")
	}
	p := c.Provider
	events, err := c.nodeRecorder(k, nodeName, nil, log)
	if err != nil {
		return err
	}
	trigger := &secretsync.MountTrigger{
		SPCs:  k.Dynamic.Resource(secretsync.SPCResource),
		Files: p.FetchFiles,
		Engine: &secretsync.Engine{Secrets: k.Client, Events: events, Logger: log, Evaluator: p.Evaluator, OnResult: func(_ *secretsync.SPC, r secretsync.Result) {
			p.Metrics.SecretSync("mount", r.Reason)
		}},
		Config: secretsync.ConfigOptions{MaxObjects: p.MaxObjects, DefaultRegion: p.Region.Region},
		Logger: log,
	}
	// After the recorder's closer: syncs finish before their events are
	// flushed.
	c.closers = append(c.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		trigger.Wait(ctx)
	})
	p.AfterMount = trigger.AfterMount
	log.Info("secret sync at mount enabled")
	return nil
}

// rotationEvents makes the provider record SecretsRotated events on pods
// whose remount changed a version (coffer serve --rotation-events), after
// whatever AfterMount already does.
func (c *Coffer) rotationEvents(k *Kubernetes, nodeName string, clk clock.PassiveClock, log *slog.Logger) error {
	p := c.Provider
	events, err := c.nodeRecorder(k, nodeName, p.Metrics.RotationEvent, log)
	if err != nil {
		return err
	}
	rec := rotationevent.New(events, rotationevent.Options{
		Logger:        log,
		OnRateLimited: func() { p.Metrics.RotationEvent(kube.OutcomeRateLimited) },
		Clock:         clk,
	})
	next := p.AfterMount
	p.AfterMount = func(ctx context.Context, m provider.Mounted) {
		if next != nil {
			next(ctx, m)
		}
		versions := make([]rotationevent.Version, len(m.Files))
		for i, f := range m.Files {
			versions[i] = rotationevent.Version{ID: f.Path, Version: f.Version}
		}
		pod := m.Config.Pod
		rec.Observe(rotationevent.Pod{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, Class: m.Config.Name}, m.CurrentVersions, versions)
	}
	log.Info("SecretsRotated pod events enabled")
	return nil
}

// controllers builds coffer-controller sync's controllers: Secrets from syncSecrets
// without pods, and, when enabled, workload restarts. One watch of
// Secrets' metadata serves both.
func (c *Coffer) controllers(cc Controller, cfg Config, k *Kubernetes, clk clock.WithTicker, log *slog.Logger) error {
	if cfg.Events == nil {
		return errors.New("coffer-controller sync's controllers need an event recorder")
	}
	if k.Dynamic == nil || k.Metadata == nil {
		return errors.New("coffer-controller sync's controllers need the Kubernetes API's dynamic and metadata clients")
	}
	p, m := c.Provider, c.Metrics
	secrets, err := secretsync.NewSecretMetadata(k.Metadata, cc.Namespaces)
	if err != nil {
		return fmt.Errorf("coffer-controller sync: %w", err)
	}
	c.Sync = &secretsync.Controller{
		Dynamic: k.Dynamic,
		Secrets: secrets,
		Engine: &secretsync.Engine{Secrets: k.Client, Events: cfg.Events, Logger: log, Evaluator: p.Evaluator, OnResult: func(_ *secretsync.SPC, r secretsync.Result) {
			m.SecretSync("controller", r.Reason)
		}},
		Files:        p.FetchFiles,
		Tokens:       &secretsync.TokenSource{ServiceAccounts: k.Client, TTL: cc.TokenTTL, Clock: clk},
		STSAudience:  cfg.Identity.STSAudience,
		ProviderName: cc.ProviderName,
		Namespaces:   cc.Namespaces,
		Config:       secretsync.ConfigOptions{DefaultRegion: p.Region.Region, MaxObjects: cfg.Limits.MaxObjects},
		Workers:      cc.Workers,
		SyncTimeout:  cc.SyncTimeout,
		Logger:       log,
		Clock:        clk,
	}
	if cc.RestartWorkloads {
		c.Restarts = &restart.Controller{
			Kube: k.Client, Dynamic: k.Dynamic, Metadata: k.Metadata, Secrets: secrets, Namespaces: cc.Namespaces,
			Debounce: cc.RestartDebounce, Events: cfg.Events, OnRestart: m.WorkloadRestart, Logger: log, Clock: clk,
		}
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

// quotaBudgets is what budgets report to metrics at a scrape.
func quotaBudgets(budgets *quota.Controller) []metrics.QuotaBudget {
	quotas := budgets.Quotas()
	var out []metrics.QuotaBudget
	for api, s := range budgets.Budgets() {
		out = append(out, metrics.QuotaBudget{Operation: string(api), Account: quotas.Of(api), Rate: s.Rate, Tokens: s.Tokens, Avoided: s.Avoided})
	}
	return out
}
