// Package provider serves the Secrets Store CSI Driver's Mount: it validates
// the SecretProviderClass, resolves the pod's AWS identity, fetches every
// object and renders the files. A mount returns every file or fails.
package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/internal/panics"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// IdentitySource resolves the AWS identity of a mount's workload.
type IdentitySource interface {
	Identity(ctx context.Context, req auth.Request) (auth.Identity, error)
}

// ClientFactory returns the AWS clients of one identity.
type ClientFactory func(ctx context.Context, id auth.Identity) fetch.Clients

// SharedClients is the ClientFactory that reuses each identity's clients
// from c until its credentials change.
func SharedClients(c *awsapi.ClientCache) ClientFactory {
	return func(ctx context.Context, id auth.Identity) fetch.Clients {
		return c.For(ctx, id.CredentialKey, id.Credentials)
	}
}

// Mounter serves the driver's Mounts of SecretProviderClasses, and the same
// fetch and rendering to Secret sync (FetchFiles).
type Mounter struct {
	Identities IdentitySource
	Clients    ClientFactory
	// Fetcher is shared by all mounts (it holds the value cache and
	// coalesces calls); required.
	Fetcher *fetch.Fetcher
	// Marks remember when each pod last mounted, so that its remounts
	// never take a value read before that (nil: none; then nothing may be
	// reused across mounts).
	Marks *cache.Marks
	// Region gives the region for SecretProviderClasses that name none.
	Region RegionSource
	// MaxObjects bounds objects per SecretProviderClass (0: no bound).
	MaxObjects int
	// MaxResponseBytes bounds the total size of the files a Mount returns
	// (0: render.DriverMaxResponseBytes).
	MaxResponseBytes int
	// MaxObjectBytes bounds what one object renders to in FetchFiles, and
	// with it jmesPath evaluation (0: render.DriverMaxResponseBytes). Its
	// callers are bound not by the driver's message size but by a
	// Kubernetes Secret's 1 MiB: the default already admits objects that
	// could fill no Secret.
	MaxObjectBytes int
	// MaxValueBytes bounds one fetched value (0: no bound besides the
	// response's).
	MaxValueBytes int
	// MaxAttributesBytes bounds the attributes JSON of a request (0: none).
	MaxAttributesBytes int
	Logger             *slog.Logger
	// Metrics records mount outcomes (nil: none).
	Metrics *metrics.Metrics
	// AfterMount, when set, is called after every successful mount (first
	// mount and rotation alike), before the response is returned. It must
	// not fail the mount: the files are good whatever it does.
	AfterMount func(ctx context.Context, m Mounted)
	// Evaluator runs the classes' jmesPath and templates (nil: in this
	// process), each mount as its pod's namespace.
	Evaluator render.Evaluator
	// Clock is the time source of the marks' mount times, which are
	// compared with the Fetcher's read times: give both the same clock
	// (nil: the real clock).
	Clock clock.PassiveClock
}

// Mounted describes a successful mount to AfterMount.
type Mounted struct {
	// Config is the validated configuration the mount used (from the
	// attributes, which a pod's volumeAttributes can override).
	Config *spc.Config
	// Attributes are the raw attributes of the request.
	Attributes map[string]string
	Identity   auth.Identity
	Files      []render.File
	// CurrentVersions are the versions the driver said were mounted
	// before (Request.CurrentVersions; empty on a first mount, and on
	// every mount from the driver v1.6).
	CurrentVersions map[string]string
}

// RegionSource gives the default region.
type RegionSource interface {
	Region(ctx context.Context) (string, error)
}

// StaticRegion is a fixed default region ("" for none).
type StaticRegion string

// Region returns the fixed region.
func (s StaticRegion) Region(context.Context) (string, error) { return string(s), nil }

// CredentialInvalidator is implemented by identity sources that cache
// credentials, so that credentials AWS refused can be dropped.
type CredentialInvalidator interface {
	Invalidate(key string)
}

// fetch resolves the identity of cfg's workload and fetches every object as
// it: the one way Mount and FetchFiles read AWS. Credentials AWS no longer
// accepts (expired early, a revoked session) are dropped, new ones obtained,
// and the objects fetched once more. Once: a second refusal is reported,
// never looped on.
//
// A failure to resolve the identity fails everything, with no values;
// otherwise the values and the fetch error are Fetcher.Fetch's.
func (m *Mounter) fetch(ctx context.Context, cfg *spc.Config) (auth.Identity, []fetch.Value, error) {
	req := identityRequest(cfg)
	id, err := m.Identities.Identity(ctx, req)
	if err != nil {
		return id, nil, fmt.Errorf("resolving the AWS identity: %w", err)
	}
	ctx = fetch.WithRoles(ctx, id.Roles)
	values, err := m.Fetcher.Fetch(ctx, cfg, m.Clients(ctx, id), id.Key)
	inv, ok := m.Identities.(CredentialInvalidator)
	if !ok || !credentialsRejected(err) {
		return id, values, err
	}
	m.logger().Info("AWS refused cached credentials; refreshing them once", "identity", id.Description)
	inv.Invalidate(id.CredentialKey)
	if id, err = m.Identities.Identity(ctx, req); err != nil {
		return id, nil, fmt.Errorf("resolving the AWS identity: %w", err)
	}
	values, err = m.Fetcher.Fetch(fetch.WithRoles(ctx, id.Roles), cfg, m.Clients(ctx, id), id.Key)
	return id, values, err
}

func credentialsRejected(err error) bool {
	var errs fetch.Errors
	if !errors.As(err, &errs) {
		return false
	}
	for _, e := range errs {
		if e.Kind == fetch.KindCredentials {
			return true
		}
	}
	return false
}

// Request is a Mount request as the driver sends it.
type Request struct {
	// Attributes is the JSON attributes map: SecretProviderClass parameters,
	// the pod's volumeAttributes and the driver's pod attributes.
	Attributes string
	// Permission is the default file mode in decimal ("420").
	Permission string
	// CurrentVersions are the versions of the files mounted now (empty on
	// the first mount), by file path.
	CurrentVersions map[string]string
}

// Result is a successful mount.
type Result struct {
	Files []render.File
	// Changed counts files whose version differs from CurrentVersions
	// (all of them when the driver sends none, as v1.6 does on republish).
	Changed int
}

// Mount fetches and renders every object of the request's
// SecretProviderClass.
func (m *Mounter) Mount(ctx context.Context, req Request) (*Result, error) {
	start := time.Now() // the real time a mount took, for its log line
	done := m.Metrics.MountStarted()
	ctx, calls := awsapi.WithCallCounter(ctx)
	log := m.logger()
	if m.MaxAttributesBytes > 0 && len(req.Attributes) > m.MaxAttributesBytes {
		err := &InputError{Err: fmt.Errorf("the request's attributes are %d bytes, over the limit of %d (--max-attributes-bytes); the SecretProviderClass parameters or the pod's volumeAttributes are too large", len(req.Attributes), m.MaxAttributesBytes)}
		done("", ErrorClass(err), 0, 0)
		log.Warn("mount failed", "error", err)
		return nil, err
	}
	attrs, err := spc.ParseAttributes(req.Attributes)
	if err != nil {
		err = &InputError{Err: err}
		done("", ErrorClass(err), 0, 0)
		log.Warn("mount failed", "error", err)
		return nil, err
	}
	namespace := attrs[spc.AttrPodNamespace]
	log = log.With("pod", namespace+"/"+attrs[spc.AttrPodName], "secretProviderClass", attrs[spc.AttrSPCName])

	res, objects, err := m.mount(ctx, req, attrs, log)
	duration := time.Since(start).Round(time.Millisecond)
	if err != nil {
		class := ErrorClass(err)
		done(namespace, class, 0, 0)
		log.Warn("mount failed", "objects", objects, "duration", duration, "awsCalls", calls.Load(), "errorClass", class, "error", err)
		logPanics(log, err)
		return nil, err
	}
	bytes := 0
	for _, f := range res.Files {
		bytes += len(f.Data)
	}
	done(namespace, "", len(res.Files), bytes)
	log.Info("mounted", "objects", objects, "files", len(res.Files), "bytes", bytes, "changed", res.Changed, "duration", duration, "awsCalls", calls.Load())
	return res, nil
}

func (m *Mounter) mount(ctx context.Context, req Request, attrs map[string]string, log *slog.Logger) (*Result, int, error) {
	mode, err := spc.ParsePermission(req.Permission)
	if err != nil {
		return nil, 0, &InputError{Err: err}
	}
	var defaultRegion string
	if attrs[spc.KeyRegion] == "" && m.Region != nil {
		// Only classes without a region need the default: a node lookup
		// must not fail mounts that name their region.
		if defaultRegion, err = m.Region.Region(ctx); err != nil {
			return nil, 0, err
		}
	}
	cfg, err := spc.Parse(attrs, spc.Options{
		DefaultRegion: defaultRegion,
		RequireRegion: true,
		DefaultMode:   mode,
		MaxObjects:    m.MaxObjects,
	})
	if err != nil {
		return nil, 0, &InputError{Err: err}
	}
	// A remount takes nothing read before this pod's previous mount; only
	// a pod's own mounts (not Secret sync) may be answered stale.
	ctx = fetch.WithFreshness(ctx, fetch.Freshness{NotBefore: m.Marks.NotBefore(cfg.Pod.UID), AllowStale: true})
	id, values, fetchErr := m.fetch(ctx, cfg)
	templates, fetchErr := m.skipOptional(log, cfg, fetchErr)
	files, renderErr := render.Files(ctx, values, render.Options{MaxResponseBytes: m.MaxResponseBytes, MaxValueBytes: m.MaxValueBytes, Translation: cfg.PathTranslation, Templates: templates, Evaluator: m.Evaluator, Tenant: cfg.Pod.Namespace})
	if fetchErr != nil {
		// Report rendering problems of the fetched objects too, so one
		// round of fixes covers everything.
		return nil, len(cfg.Objects), mergeErrors(fetchErr, renderErr)
	}
	if renderErr != nil {
		return nil, len(cfg.Objects), renderErr
	}
	m.Marks.Mounted(cfg.Pod.UID, m.clock().Now())
	m.reportStale(cfg, values)
	// Files with writeFile: false serve templates and Secret sync
	// (AfterMount), not the mount.
	res := &Result{Files: render.Written(files)}
	for _, f := range res.Files {
		if req.CurrentVersions[f.Path] != f.Version {
			res.Changed++
		}
	}
	if m.AfterMount != nil {
		m.AfterMount(ctx, Mounted{Config: cfg, Attributes: attrs, Identity: id, Files: files, CurrentVersions: req.CurrentVersions})
	}
	return res, len(cfg.Objects), nil
}

// reportStale logs and counts every value answered from the last good read
// during an outage: each is a weaker answer than the user asked for.
func (m *Mounter) reportStale(cfg *spc.Config, values []fetch.Value) {
	for _, v := range values {
		if v.Stale == nil {
			continue
		}
		m.Metrics.StaleAnswer(string(v.Stale.Reason), v.Stale.Age)
		m.logger().Warn("AWS unavailable: served the last good value (--serve-stale-on-outage)",
			"pod", cfg.Pod.Namespace+"/"+cfg.Pod.Name, "secretProviderClass", cfg.Name,
			"object", v.Object.Describe(), "region", v.Region, "version", v.Version,
			"age", v.Stale.Age.Round(time.Second), "reason", string(v.Stale.Reason))
	}
}

// mergeErrors combines fetch and render failures into one list in object
// order. A render error that is not per-object (the size limit) is moot when
// fetches failed.
func mergeErrors(fetchErr, renderErr error) error {
	var all fetch.Errors
	if !errors.As(fetchErr, &all) {
		return fetchErr
	}
	var more fetch.Errors
	if errors.As(renderErr, &more) {
		all = append(append(fetch.Errors{}, all...), more...)
		sort.SliceStable(all, func(i, j int) bool { return all[i].Object.Index < all[j].Object.Index })
	}
	return all
}

// logPanics logs the stack of every panic recovered into err (a bug in
// coffer), which the error itself does not carry to the user.
func logPanics(log *slog.Logger, err error) {
	errs := []error{err}
	var objErrs fetch.Errors
	if errors.As(err, &objErrs) {
		errs = errs[:0]
		for _, e := range objErrs {
			errs = append(errs, e)
		}
	}
	for _, e := range errs {
		if stack := panics.Stack(e); stack != "" {
			log.Error("a panic failed this mount", "error", e, "stack", stack)
		}
	}
}

func (m *Mounter) clock() clock.PassiveClock {
	if m.Clock == nil {
		return clock.RealClock{}
	}
	return m.Clock
}

func (m *Mounter) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

// InputError is a request that cannot be served as sent: invalid
// attributes or SecretProviderClass parameters. Retrying will not help.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// IsInputError reports whether err is a problem with the request itself.
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

// ErrorClass classifies a mount error for metrics and logs: a small fixed
// set, never free text.
func ErrorClass(err error) string {
	switch {
	case err == nil:
		return ""
	case IsInputError(err):
		return "invalid_config"
	}
	var authErr *auth.Error
	if errors.As(err, &authErr) {
		return "identity_" + authErr.Reason
	}
	var size *render.SizeError
	var budget *fetch.BudgetError
	if errors.As(err, &size) || errors.As(err, &budget) {
		return "too_large"
	}
	var tmplErr *render.TemplateError
	if errors.As(err, &tmplErr) {
		return string(fetch.KindInvalid)
	}
	var objErrs fetch.Errors
	if errors.As(err, &objErrs) {
		return string(objErrs.MostActionable())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return string(fetch.KindTimeout)
	case errors.Is(err, context.Canceled):
		return string(fetch.KindCanceled)
	}
	return "internal"
}
