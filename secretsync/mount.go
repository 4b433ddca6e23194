package secretsync

import (
	"context"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/coffer-csi/coffer/internal/panics"
	"github.com/coffer-csi/coffer/internal/work"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// FetchFunc fetches and renders a configuration's files as the workload it
// describes, returning partial results with per-object errors
// (provider.Mounter.FetchFiles).
type FetchFunc func(context.Context, *spc.Config) ([]render.File, error)

// MountTrigger syncs the Secrets a SecretProviderClass declares after each
// successful mount of it, as the mounting pod: the entries whose
// serviceAccountName is the pod's. Its AfterMount is the provider's
// AfterMount hook.
//
// The declaration comes from the SecretProviderClass object itself, never
// from the mount's attributes, which a pod's volumeAttributes can override:
// a pod can neither add a declaration nor redirect which AWS entries fill a
// Secret. When the pod overrode a parameter that decides what is fetched
// (objects, region, role...), the class's own objects are fetched again,
// as the pod; otherwise the mount's files are used as they are.
//
// Syncs run in the background, bounded by Timeout and Concurrency, so they
// never delay or fail a mount; outcomes are Events on the class.
type MountTrigger struct {
	// SPCs reads SecretProviderClasses (the dynamic client on SPCResource).
	SPCs   dynamic.NamespaceableResourceInterface
	Files  FetchFunc
	Engine *Engine
	Config ConfigOptions
	// Timeout bounds one sync (default 30s).
	Timeout time.Duration
	// Concurrency bounds syncs in flight (default 4).
	Concurrency int
	Logger      *slog.Logger

	once    sync.Once
	sem     chan struct{}
	mu      sync.Mutex
	running map[string]*provider.Mounted // by class and ServiceAccount: the next mount to sync, or nil
	wg      sync.WaitGroup
}

// AfterMount schedules a sync for a successful mount. A mount of a class
// that is already syncing for the same ServiceAccount is coalesced: the
// latest one runs when the current sync ends.
func (m *MountTrigger) AfterMount(_ context.Context, mounted provider.Mounted) {
	if mounted.Config == nil {
		return
	}
	name := mounted.Attributes[spc.AttrSPCName]
	ns := mounted.Config.Pod.Namespace
	// The driver copies every parameter of the class into the attributes
	// before the pod's own: a class with syncSecrets always shows the key
	// (a pod can blank it, not remove it). Classes without it cost nothing.
	if _, ok := mounted.Attributes[spc.KeySyncSecrets]; !ok || name == "" || ns == "" {
		return
	}
	m.once.Do(m.init)
	key := ns + "/" + name + "/" + mounted.Config.Pod.ServiceAccount
	m.mu.Lock()
	if _, busy := m.running[key]; busy {
		m.running[key] = &mounted
		m.mu.Unlock()
		return
	}
	m.running[key] = nil
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		next := &mounted
		for next != nil {
			// A panic here would end the process, and with it every
			// mount on the node: it fails this sync only.
			if err := panics.Run("syncing Secrets after a mount", func() { m.sync(next) }); err != nil {
				m.logger().Error("secret sync after mount failed", "secretProviderClass", ns+"/"+name, "error", err, "stack", panics.Stack(err))
			}
			m.mu.Lock()
			next = m.running[key]
			if next == nil {
				delete(m.running, key)
			} else {
				m.running[key] = nil
			}
			m.mu.Unlock()
		}
	}()
}

// Wait blocks until no sync is running or ctx ends.
func (m *MountTrigger) Wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (m *MountTrigger) init() {
	n := m.Concurrency
	if n <= 0 {
		n = 4
	}
	m.sem = make(chan struct{}, n)
	m.running = map[string]*provider.Mounted{}
}

func (m *MountTrigger) sync(mounted *provider.Mounted) {
	m.sem <- struct{}{}
	defer func() { <-m.sem }()
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	pod := mounted.Config.Pod
	name := mounted.Attributes[spc.AttrSPCName]
	log := m.logger().With("secretProviderClass", pod.Namespace+"/"+name, "pod", pod.Namespace+"/"+pod.Name)

	obj, err := m.SPCs.Namespace(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		logAPIFailure(ctx, log, "reading the SecretProviderClass", "coffer needs get on secretproviderclasses", err)
		return
	}
	owner, err := SPCFromUnstructured(obj)
	if err != nil {
		log.Warn("secret sync: unreadable SecretProviderClass", "error", err)
		return
	}
	if !owner.Declares() {
		// The attributes had syncSecrets, the class has none: the pod's
		// volumeAttributes tried to add a declaration. Ignored.
		log.Debug("secret sync: the SecretProviderClass declares no syncSecrets; the mount's attributes are not a declaration")
		return
	}
	cfg, decl, failure := loadDeclaration(ctx, owner, mounted.Attributes, m.Config)
	if failure != nil {
		m.Engine.Report(owner, *failure)
		return
	}
	// An entry is written only with the identity it names: a pod of
	// another ServiceAccount (perhaps a role in another account) must not
	// fill, overwrite or delete it. An entry that names none belongs to no
	// one, so no mount syncs it.
	plan := planSync(decl, nil, time.Time{})
	for _, s := range plan.unowned {
		m.Engine.Report(owner, failed(s.Name, ReasonNoServiceAccount, "%s", noServiceAccountMessage(s.Name)))
	}
	mine := plan.secretsOf(pod.ServiceAccount)
	if len(mine) == 0 {
		log.Debug("secret sync: no syncSecrets entry for this pod's ServiceAccount", "serviceAccount", pod.ServiceAccount)
		return
	}
	// One budget for this sync's paths and templates, as in the
	// controller (syncAs).
	ctx = work.NewContext(ctx, work.New(render.MaxWork))
	files, fetchErr := mounted.Files, error(nil)
	refetched := !sameFetch(owner.Parameters, mounted.Attributes)
	if refetched {
		files, fetchErr = m.Files(ctx, cfg)
	}
	results := m.Engine.Sync(ctx, owner, mine, files, fetchErr)
	failures := 0
	for _, r := range results {
		if !r.Ready {
			failures++
		}
	}
	log.Info("secret sync after mount", "secrets", len(results), "failed", failures, "refetched", refetched, "duration", time.Since(start).Round(time.Millisecond))
}

// sameFetch reports whether the mount's attributes agree with the class on
// every parameter that decides what is fetched and as whom.
func sameFetch(params, attrs map[string]string) bool {
	for _, k := range fetchKeys {
		p, inParams := params[k]
		a, inAttrs := attrs[k]
		if inParams != inAttrs || p != a {
			return false
		}
	}
	return true
}

func (m *MountTrigger) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}
