package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/klog/v2"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/internal/ops"
	"github.com/coffer-csi/coffer/internal/version"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/secretsync"
	"github.com/coffer-csi/coffer/secretsync/restart"
)

type syncConfig struct {
	metricsAddr      string
	kubeconfig       string
	providerName     string
	namespace        string
	namespaces       []string
	region           string
	nodeName         string
	fips             bool
	dualStack        bool
	identity         identityFlags
	maxObjects       int
	maxValueBytes    int
	fetchConcurrency int
	workers          int
	syncTimeout      time.Duration
	tokenTTL         time.Duration
	leaderElect      bool
	leaseNamespace   string
	leaseName        string
	leaseDuration    time.Duration
	renewDeadline    time.Duration
	retryPeriod      time.Duration
	restarts         bool
	restartDebounce  time.Duration
	evaluator        evaluatorFlags
	log              logFlags
}

func (c *syncConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig for the Kubernetes API (default: in-cluster configuration)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "address for Prometheus metrics at /metrics and /healthz, e.g. :8080 (empty: off)")
	fs.StringVar(&c.providerName, "provider-name", "aws", "sync SecretProviderClasses whose spec.provider is this (coffer serve's --provider-name)")
	fs.StringSliceVar(&c.namespaces, "namespaces", nil, "sync only these namespaces (comma-separated; default: all): every list and watch is then per namespace, so Roles in them are all the RBAC coffer sync needs on Secrets")
	fs.StringVar(&c.namespace, "namespace", "", "one namespace to sync, as --namespaces (kept for old installs)")
	fs.StringVar(&c.region, "region", os.Getenv("AWS_REGION"), "region for SecretProviderClasses that name none (default $AWS_REGION)")
	fs.StringVar(&c.nodeName, "node-name", os.Getenv("NODE_NAME"), "the node coffer runs on, to read its topology.kubernetes.io/region label when no region is set (default $NODE_NAME)")
	fs.BoolVar(&c.fips, "fips", false, "use FIPS endpoints for every AWS call")
	fs.BoolVar(&c.dualStack, "dual-stack", false, "use dual-stack (IPv6) AWS endpoints")
	c.identity.register(fs)
	fs.IntVar(&c.maxObjects, "max-objects", 256, "most objects one SecretProviderClass may list")
	fs.IntVar(&c.maxValueBytes, "max-value-bytes", 1<<20, "largest single value (secret, parameter, selected entry) a sync may fetch")
	fs.IntVar(&c.fetchConcurrency, "fetch-concurrency", 8, "AWS calls one sync may have in flight")
	fs.IntVar(&c.workers, "workers", 2, "SecretProviderClasses synced in parallel")
	c.evaluator.register(fs)
	fs.DurationVar(&c.syncTimeout, "sync-timeout", time.Minute, "deadline of one SecretProviderClass's sync, AWS calls included")
	fs.DurationVar(&c.tokenTTL, "token-ttl", 10*time.Minute, "lifetime of the ServiceAccount tokens coffer requests (at least 10m); reused for half of it")
	fs.BoolVar(&c.leaderElect, "leader-elect", true, "run only while holding a Lease, so that one of several replicas syncs")
	fs.StringVar(&c.leaseNamespace, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease (default $POD_NAMESPACE, else the in-cluster namespace)")
	fs.StringVar(&c.leaseName, "leader-election-id", "coffer-sync", "name of the Lease")
	fs.DurationVar(&c.leaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's Lease lasts without renewal")
	fs.DurationVar(&c.renewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it gives up")
	fs.DurationVar(&c.retryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to acquire or renew the Lease")
	fs.BoolVar(&c.restarts, "restart-workloads", false, "roll Deployments, StatefulSets and DaemonSets annotated "+restart.AnnotationRestartOn+" when an object they mount (SecretProviderClassPodStatus versions) or a Secret coffer syncs for them changes (needs RBAC: list and watch on those kinds, pods and secretproviderclasspodstatuses; patch on the workloads)")
	fs.DurationVar(&c.restartDebounce, "restart-debounce", 30*time.Second, "with --restart-workloads: how long after the first change a restart waits, so that one rotation (all pods, all objects) makes one restart")
	c.log.register(fs)
}

func (c *syncConfig) validate() error {
	var errs []error
	if !providerNamePattern.MatchString(c.providerName) {
		errs = append(errs, fmt.Errorf("--provider-name %q: use 1-30 letters, digits, _ or - (the driver's rule for spec.provider)", c.providerName))
	}
	if c.workers <= 0 || c.fetchConcurrency <= 0 || c.maxObjects <= 0 || c.maxValueBytes <= 0 {
		errs = append(errs, errors.New("--workers, --fetch-concurrency, --max-objects and --max-value-bytes must be positive"))
	}
	if c.syncTimeout <= 0 {
		errs = append(errs, errors.New("--sync-timeout must be positive"))
	}
	errs = append(errs, c.evaluator.validate()...)
	if c.tokenTTL < 10*time.Minute {
		errs = append(errs, errors.New("--token-ttl must be at least 10m (the shortest token the apiserver grants)"))
	}
	errs = append(errs, c.validateNamespaces()...)
	errs = append(errs, c.identity.validate()...)
	if c.restartDebounce < 0 {
		errs = append(errs, errors.New("--restart-debounce must not be negative"))
	}
	if c.leaderElect {
		errs = append(errs, c.validateElection()...)
	}
	return errors.Join(errs...)
}

// jitterFactor is client-go's leaderelection.JitterFactor: a candidate
// waits up to 2.2 retry periods between tries, so the renew deadline must
// leave room for more than one (client-go refuses a shorter one).
const jitterFactor = 1.2

// validateElection checks the election's timings as client-go's
// leaderelection.NewLeaderElector does, and that the Lease duration is
// whole seconds: the Lease records seconds, and others judge it by them.
func (c *syncConfig) validateElection() []error {
	var errs []error
	if !(c.retryPeriod > 0 && c.renewDeadline > time.Duration(jitterFactor*float64(c.retryPeriod)) && c.renewDeadline < c.leaseDuration) {
		errs = append(errs, errors.New("leader election needs 0 < 1.2 x --leader-election-retry-period < --leader-election-renew-deadline < --leader-election-lease-duration"))
	}
	if c.leaseDuration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("--leader-election-lease-duration %v: use whole seconds (the Lease records seconds)", c.leaseDuration))
	}
	return errs
}

// maxSyncNamespaces bounds --namespaces: each namespace is its own list
// and watch of every resource coffer sync reads (up to seven), so a
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
	c.evaluator.limitMemory(log)
	evaluator, stopEvaluator := c.evaluator.pool(log)
	defer stopEvaluator()
	rc, err := restConfig(c.kubeconfig)
	if err != nil {
		return err
	}
	kc, err := kube.New(rc)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	meta, err := metadata.NewForConfig(rc)
	if err != nil {
		return err
	}
	awsCfg, err := awsapi.LoadConfig(ctx, awsapi.Settings{FIPS: c.fips, DualStack: c.dualStack})
	if err != nil {
		return err
	}
	registry := prometheus.NewRegistry()
	m := metrics.New(registry, metrics.Options{Version: version.Version})
	awsapi.Instrument(&awsCfg, m.AWSCall)
	if c.metricsAddr != "" {
		lis, err := ops.Listen(c.metricsAddr)
		if err != nil {
			return err
		}
		// Alive is all a controller can say: leadership is the Lease's.
		go ops.Serve(ctx, lis, ops.Handler(func(context.Context) error { return nil }, registry), log)
	}
	p := &provider.Mounter{
		Identities: c.identity.resolver(awsCfg, kc, m.CredentialFetch),
		Clients:    awsapi.NewClientCache(awsCfg, 0).Factory(),
		// No value cache: every refresh reads AWS.
		Fetcher:       &fetch.Fetcher{Concurrency: c.fetchConcurrency, MaxBytes: fetchAllowance * render.DriverMaxResponseBytes},
		MaxObjects:    c.maxObjects,
		MaxValueBytes: c.maxValueBytes,
		Logger:        log,
		Evaluator:     evaluator,
	}
	events, stopEvents, err := parts.Events(rc, kc.Scheme(), corev1.EventSource{Component: "coffer-sync"}, log)
	if err != nil {
		return err
	}
	defer stopEvents()
	region := &auth.NodeRegion{Configured: c.region, Client: kc, NodeName: c.nodeName}
	// One watch of Secrets' metadata serves both controllers.
	secrets, err := secretsync.NewSecretMetadata(meta, c.scope())
	if err != nil {
		return err
	}
	ctrl := &secretsync.Controller{
		Dynamic: dyn,
		Secrets: secrets,
		Engine: &secretsync.Engine{Secrets: kc, Events: events, Logger: log, Evaluator: evaluator, OnResult: func(_ *secretsync.SPC, r secretsync.Result) {
			m.SecretSync("controller", r.Reason)
		}},
		Files:        p.FetchFiles,
		Tokens:       &secretsync.TokenSource{ServiceAccounts: kc, TTL: c.tokenTTL},
		STSAudience:  c.identity.stsAudience,
		ProviderName: c.providerName,
		Namespaces:   c.scope(),
		Config:       secretsync.ConfigOptions{DefaultRegion: region.Region, MaxObjects: c.maxObjects},
		Workers:      c.workers,
		SyncTimeout:  c.syncTimeout,
		Logger:       log,
	}
	log.Info("coffer-controller sync starting", "version", version.Version, "provider", c.providerName, "namespaces", c.scope(), "leaderElect", c.leaderElect, "restartWorkloads", c.restarts)
	run := ctrl.Run
	if c.restarts {
		restarts := &restart.Controller{
			Kube: kc, Dynamic: dyn, Metadata: meta, Secrets: secrets, Namespaces: c.scope(),
			Debounce: c.restartDebounce, Events: events, OnRestart: m.WorkloadRestart, Logger: log,
		}
		run = runBoth(ctrl.Run, restarts.Run)
	}
	if !c.leaderElect {
		return run(ctx)
	}
	election, err := c.election()
	if err != nil {
		return err
	}
	lease := election.Namespace + "/" + election.Name
	log.Info("waiting for the Lease", "lease", lease, "identity", election.Identity)
	return parts.Elect(ctx, rc, election, func(ctx context.Context) error {
		log.Info("leading: syncing Secrets", "lease", lease, "identity", election.Identity)
		err := run(ctx)
		log.Info("stopped leading", "lease", lease, "identity", election.Identity)
		return err
	}, log.With("lease", lease))
}

// Election is the Lease election --leader-election-* configure, and the
// identity this process competes as.
type Election struct {
	Namespace, Name, Identity                 string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// election is the Lease election the flags configure. The identity is the
// host name (the pod's) and a random suffix, so that a restarted process
// never renews the Lease its predecessor held.
func (c *syncConfig) election() (Election, error) {
	ns := c.leaseNamespace
	if ns == "" {
		b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		if err != nil {
			return Election{}, errors.New("leader election needs a namespace for its Lease: set --leader-election-namespace or POD_NAMESPACE (or --leader-elect=false)")
		}
		ns = strings.TrimSpace(string(b))
	}
	host, _ := os.Hostname()
	return Election{
		Namespace: ns, Name: c.leaseName, Identity: host + "_" + rand.Text()[:8],
		LeaseDuration: c.leaseDuration, RenewDeadline: c.renewDeadline, RetryPeriod: c.retryPeriod,
	}, nil
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

// enableMountSync makes p sync the Secrets a class declares after each
// successful mount (coffer serve --sync-secrets). The returned stop lets
// syncs in flight finish briefly.
func enableMountSync(p *provider.Mounter, kubeconfig, nodeName string, log *slog.Logger) (stop func(), err error) {
	rc, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	kc, err := kube.New(rc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	// The DaemonSet may create events, not patch them: a patch of an
	// event is an update the admission policy cannot tie to a mount.
	events, stopEvents := eventRecorder(kc, corev1.EventSource{Component: "coffer", Host: nodeName}, true, log)
	trigger := &secretsync.MountTrigger{
		SPCs:  dyn.Resource(secretsync.SPCResource),
		Files: p.FetchFiles,
		Engine: &secretsync.Engine{Secrets: kc, Events: events, Logger: log, Evaluator: p.Evaluator, OnResult: func(_ *secretsync.SPC, r secretsync.Result) {
			p.Metrics.SecretSync("mount", r.Reason)
		}},
		Config: secretsync.ConfigOptions{MaxObjects: p.MaxObjects},
		Logger: log,
	}
	if p.Region != nil {
		trigger.Config.DefaultRegion = p.Region.Region
	}
	p.AfterMount = trigger.AfterMount
	log.Info("secret sync at mount enabled")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		trigger.Wait(ctx)
		stopEvents()
	}, nil
}

// eventRecorder records Events through the API; stop writes what is
// queued, for a few seconds at most. createOnly: every event is created,
// a repeat too (see kube.RecorderOptions).
func eventRecorder(kc *kube.Client, source corev1.EventSource, createOnly bool, log *slog.Logger) (secretsync.EventRecorder, func()) {
	rec := kube.NewRecorder(kc, kc.Scheme(), kube.RecorderOptions{Source: source, Logger: log, CreateOnly: createOnly})
	return rec, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		rec.Shutdown(ctx)
	}
}
