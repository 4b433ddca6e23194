package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"

	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/version"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/secretsync/restart"
	"github.com/coffer-csi/coffer/wiring"
)

// syncConfig is coffer-controller sync's command line: the Config its
// flags feed, as serve's do, and what only the command uses (the
// namespaces as given, the election, the metrics endpoint, logs).
type syncConfig struct {
	cfg         wiring.Config
	metricsAddr string
	namespace   string
	namespaces  []string
	election    electionFlags
	log         logFlags
}

func (c *syncConfig) register(fs *pflag.FlagSet) {
	d, dc := wiring.Defaults(), wiring.DefaultController()
	c.cfg.Controller = &wiring.Controller{}
	cc := c.cfg.Controller
	registerCluster(fs, &c.cfg)
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "address for Prometheus metrics at /metrics and /healthz, e.g. :8080 (empty: off)")
	fs.StringVar(&cc.ProviderName, "provider-name", dc.ProviderName, "sync SecretProviderClasses whose spec.provider is this (coffer serve's --provider-name)")
	fs.StringSliceVar(&c.namespaces, "namespaces", nil, "sync only these namespaces (comma-separated; default: all): every list and watch is then per namespace, so Roles in them are all the RBAC coffer-controller sync needs on Secrets")
	fs.StringVar(&c.namespace, "namespace", "", "one namespace to sync, as --namespaces (kept for old installs)")
	registerIdentity(fs, &c.cfg.Identity, d.Identity)
	fs.IntVar(&c.cfg.Limits.MaxObjects, "max-objects", d.Limits.MaxObjects, "most objects one SecretProviderClass may list")
	fs.IntVar(&c.cfg.Limits.MaxValueBytes, "max-value-bytes", d.Limits.MaxValueBytes, "largest single value (secret, parameter, selected entry) a sync may fetch")
	fs.IntVar(&c.cfg.Limits.FetchConcurrency, "fetch-concurrency", d.Limits.FetchConcurrency, "AWS calls one sync may have in flight")
	fs.IntVar(&cc.Workers, "workers", dc.Workers, "SecretProviderClasses synced in parallel")
	registerEvaluator(fs, &c.cfg.Evaluator, d.Evaluator)
	fs.DurationVar(&cc.SyncTimeout, "sync-timeout", dc.SyncTimeout, "deadline of one SecretProviderClass's sync, AWS calls included")
	fs.DurationVar(&cc.TokenTTL, "token-ttl", dc.TokenTTL, "lifetime of the ServiceAccount tokens coffer requests (at least 10m); reused for half of it")
	c.election.register(fs, "coffer-sync", "syncs")
	fs.BoolVar(&cc.RestartWorkloads, "restart-workloads", dc.RestartWorkloads, "roll Deployments, StatefulSets and DaemonSets annotated "+restart.AnnotationRestartOn+" when an object they mount (SecretProviderClassPodStatus versions) or a Secret coffer syncs for them changes (needs RBAC: list and watch on those kinds, pods and secretproviderclasspodstatuses; patch on the workloads)")
	fs.DurationVar(&cc.RestartDebounce, "restart-debounce", dc.RestartDebounce, "with --restart-workloads: how long after the first change a restart waits, so that one rotation (all pods, all objects) makes one restart")
	c.log.register(fs)
}

func (c *syncConfig) validate() error {
	var errs []error
	cc, l := c.cfg.Controller, c.cfg.Limits
	if !providerNamePattern.MatchString(cc.ProviderName) {
		errs = append(errs, fmt.Errorf("--provider-name %q: use 1-30 letters, digits, _ or - (the driver's rule for spec.provider)", cc.ProviderName))
	}
	if cc.Workers <= 0 || l.FetchConcurrency <= 0 || l.MaxObjects <= 0 || l.MaxValueBytes <= 0 {
		errs = append(errs, errors.New("--workers, --fetch-concurrency, --max-objects and --max-value-bytes must be positive"))
	}
	if cc.SyncTimeout <= 0 {
		errs = append(errs, errors.New("--sync-timeout must be positive"))
	}
	errs = append(errs, validateEvaluator(c.cfg.Evaluator)...)
	if cc.TokenTTL < 10*time.Minute {
		errs = append(errs, errors.New("--token-ttl must be at least 10m (the shortest token the apiserver grants)"))
	}
	errs = append(errs, c.validateNamespaces()...)
	errs = append(errs, validateIdentity(c.cfg.Identity)...)
	if cc.RestartDebounce < 0 {
		errs = append(errs, errors.New("--restart-debounce must not be negative"))
	}
	errs = append(errs, c.election.validate()...)
	return errors.Join(errs...)
}

// maxSyncNamespaces bounds --namespaces: each namespace is its own list
// and watch of every resource coffer-controller sync reads (up to seven), so a
// hundred is already seven hundred watches; beyond that, cluster mode is
// the better fit.
const maxSyncNamespaces = 100

// validateNamespaces checks --namespace and --namespaces: namespace names
// (RFC 1123 labels), at most maxSyncNamespaces.
func (c *syncConfig) validateNamespaces() []error {
	var errs []error
	all := c.scope()
	if len(all) > maxSyncNamespaces {
		errs = append(errs, fmt.Errorf("--namespaces names %d namespaces, more than the limit of %d (one list and watch each, per resource): sync every namespace instead (no --namespaces)", len(all), maxSyncNamespaces))
		return errs
	}
	for _, ns := range all {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--namespaces: %q is not a namespace name (%s)", ns, strings.Join(msgs, "; ")))
		}
	}
	return errs
}

// scope is the namespaces to sync, --namespace and --namespaces together,
// each once (none: all).
func (c *syncConfig) scope() []string {
	var out []string
	for _, ns := range append([]string{c.namespace}, c.namespaces...) {
		if ns = strings.TrimSpace(ns); ns != "" && !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out
}

// config is the Config coffer-controller sync builds from its flags: no
// value cache (every refresh reads AWS), no node quota, no bound on one
// identity's calls in flight, and its controllers.
func (c *syncConfig) config() wiring.Config {
	cfg := c.cfg
	// What a fetch may read: as for a mount, twice what the driver takes
	// (a Secret holds less still).
	cfg.Limits.MaxResponseBytes = render.DriverMaxResponseBytes
	cc := *c.cfg.Controller
	cc.Namespaces = c.scope()
	cfg.Controller = &cc
	return cfg
}

// runSync runs the Secret sync controller: SecretProviderClasses with
// syncSecrets become Kubernetes Secrets without any pod. parts brings the
// election and the event recorder, which only the controller binary links.
func runSync(ctx context.Context, c *syncConfig, parts ControllerParts, stderr io.Writer) error {
	if err := c.validate(); err != nil {
		return err
	}
	log, err := c.log.logger(stderr)
	if err != nil {
		return err
	}
	klog.SetSlogLogger(log) // client-go's own messages, in coffer's format
	limitMemory(c.cfg.Evaluator, log)
	k8s, err := wiring.Connect(c.cfg.Kubeconfig, true)
	if err != nil {
		return err
	}
	scheme, err := kube.Scheme()
	if err != nil {
		return err
	}
	events, stopEvents, err := parts.Events(k8s.Config, scheme, corev1.EventSource{Component: "coffer-sync"}, log)
	if err != nil {
		return err
	}
	defer stopEvents()
	cfg := c.config()
	cfg.Kubernetes = k8s
	cfg.Events = events
	cfg.Logger = log
	coffer, err := wiring.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer coffer.Close()
	// Alive is all a controller can say: leadership is the Lease's.
	alive := func(context.Context) error { return nil }
	if err := startOps(ctx, opsAddrs{metrics: c.metricsAddr}, alive, coffer.Registry, log); err != nil {
		return err
	}
	log.Info("coffer-controller sync starting", "version", version.Version, "provider", cfg.Controller.ProviderName, "namespaces", cfg.Controller.Namespaces, "leaderElect", c.election.leaderElect, "restartWorkloads", cfg.Controller.RestartWorkloads)
	run := coffer.Sync.Run
	if coffer.Restarts != nil {
		run = runBoth(coffer.Sync.Run, coffer.Restarts.Run)
	}
	return c.election.run(ctx, parts, k8s.Config, "syncing Secrets", run, log)
}

// runBoth runs a and b until ctx ends or one of them fails, which ends
// the other too; it returns the first error.
func runBoth(a, b func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errs := make(chan error, 2)
		for _, fn := range []func(context.Context) error{a, b} {
			go func() {
				err := fn(ctx)
				cancel()
				errs <- err
			}()
		}
		return errors.Join(<-errs, <-errs)
	}
}
