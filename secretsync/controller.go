package secretsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/panics"
	"github.com/coffer-csi/coffer/internal/work"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// TokenMinter mints ServiceAccount tokens in the driver's tokens format
// (TokenSource).
type TokenMinter interface {
	Tokens(ctx context.Context, namespace, serviceAccount string, audiences []string) (string, error)
}

// Controller syncs declared Secrets without pods: it watches
// SecretProviderClasses with syncSecrets, reads AWS as each entry's
// serviceAccountName (a token from the TokenRequest API, then the same
// identity resolution as a mount: IRSA, Pod Identity, role chaining), and
// reconciles every refreshInterval and whenever the class changes. Entries
// without serviceAccountName are synced by no one (status NoServiceAccount).
type Controller struct {
	Dynamic dynamic.Interface
	Engine  *Engine
	Files   FetchFunc
	Tokens  TokenMinter
	// STSAudience is the audience of IRSA tokens (default sts.amazonaws.com).
	STSAudience string
	// ProviderName is the spec.provider coffer serves; other classes are
	// ignored.
	ProviderName string
	// Namespaces limits the controller to these namespaces (none: all);
	// it then lists and watches each on its own, so that Roles in those
	// namespaces are all the RBAC it needs.
	Namespaces []string
	Config     ConfigOptions
	// Workers reconcile classes in parallel (default 2).
	Workers int
	// SyncTimeout bounds one reconcile of a class (default 1m).
	SyncTimeout time.Duration
	// RetryBase and RetryMax bound the backoff after a failure (default 5s
	// and 5m).
	RetryBase, RetryMax time.Duration
	Logger              *slog.Logger
	// Clock is the time source of due times, backoff and the work queue's
	// delays (nil: the real clock).
	Clock clock.WithTicker
	// Secrets, when set, watches the metadata of Secrets (never their
	// values) in the controller's namespaces, so that an entry waiting for
	// its Secret to change (an opt-in annotation, a Secret created or
	// deleted) is retried at once rather than after its backoff. Without
	// it, or until the watch works, a failed entry is retried with backoff,
	// at most its refreshInterval. The controller runs it (see
	// SecretMetadata.Run: other controllers may share it).
	Secrets *SecretMetadata

	queue   workqueue.TypedRateLimitingInterface[string]
	limiter workqueue.TypedRateLimiter[string]
	// delaying, when set, is the queue's delaying queue (tests: one whose
	// delays pass when the test steps its clock); nil builds client-go's
	// over Clock.
	delaying workqueue.TypedDelayingInterface[string]
	informer *kube.Informer

	mu    sync.Mutex
	state map[string]*classState
	// waiting maps a Secret (namespace/name) to the classes with a failed
	// entry for it; waitingFor is the reverse.
	waiting    map[string]map[string]bool
	waitingFor map[string][]string
}

// classState is what the controller remembers of a class between
// reconciles; it is rebuilt from scratch after a restart.
type classState struct {
	uid        types.UID
	generation int64
	// due is when each Secret must be synced next; a zero time means only
	// when the class changes (refreshInterval 0).
	due    map[string]time.Time
	status map[string]SecretStatus
	// retryWithin caps the backoff of a failed reconcile: the shortest
	// refreshInterval of the entries that failed (0: no cap).
	retryWithin time.Duration
}

// Run watches and reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.state = map[string]*classState{}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	c.waiting, c.waitingFor = map[string]map[string]bool{}, map[string][]string{}
	base, maxDelay := c.RetryBase, c.RetryMax
	if base <= 0 {
		base = 5 * time.Second
	}
	if maxDelay <= 0 {
		maxDelay = 5 * time.Minute
	}
	c.limiter = workqueue.NewTypedItemExponentialFailureRateLimiter[string](base, maxDelay)
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(c.limiter,
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "coffer-sync", Clock: c.Clock, DelayingQueue: c.delaying})
	defer c.queue.ShutDown()
	if c.Secrets != nil {
		secrets, err := c.watchSecrets(ctx)
		if err != nil {
			return err
		}
		defer secrets.wait()
	}

	c.informer = kube.NewNamespacedInformer(c.Dynamic, c.Namespaces, func(ns string) kube.ListWatcher[*unstructured.UnstructuredList] {
		return c.Dynamic.Resource(SPCResource).Namespace(ns)
	}, &unstructured.Unstructured{})
	if err := c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			o, okOld := oldObj.(*unstructured.Unstructured)
			n, okNew := newObj.(*unstructured.Unstructured)
			// Only a change of the declaration (spec: the generation) or a
			// new object under the same name; coffer's own status
			// annotation changes neither.
			if !okOld || !okNew || o.GetGeneration() != n.GetGeneration() || o.GetUID() != n.GetUID() {
				c.enqueue(newObj)
			}
		},
		DeleteFunc: c.enqueue,
	}); err != nil {
		return err
	}
	var informerDone sync.WaitGroup
	informerDone.Go(func() { c.informer.RunWithContext(ctx) })
	defer informerDone.Wait()
	if !cache.WaitForCacheSync(ctx.Done(), c.informer.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("the SecretProviderClass informer never synced (RBAC: coffer-controller sync needs list and watch on secretproviderclasses)")
	}
	c.logger().Info("secret sync controller started", "namespaces", c.namespaces(), "provider", c.ProviderName, "workers", c.workers())
	var wg sync.WaitGroup
	for range c.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// namespaces names the controller's scope in logs.
func (c *Controller) namespaces() string {
	if len(c.Namespaces) == 0 {
		return "(all)"
	}
	return strings.Join(c.Namespaces, ",")
}

func (c *Controller) workers() int {
	if c.Workers <= 0 {
		return 2
	}
	return c.Workers
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	timeout := c.SyncTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	var wake time.Time
	var retry bool
	// A panic here would end coffer-controller sync, and every class's sync with it:
	// it fails this reconcile only, which is retried with backoff.
	if err := panics.Run("reconciling a SecretProviderClass", func() { wake, retry = c.reconcile(rctx, key) }); err != nil {
		c.logger().Error("secret sync failed", "secretProviderClass", key, "error", err, "stack", panics.Stack(err))
		wake, retry = time.Time{}, true
	}
	cancel()
	if retry {
		delay := c.limiter.When(key)
		if within := c.retryWithin(key); within > 0 && delay > within {
			delay = within
		}
		c.queue.AddAfter(key, delay)
	} else {
		c.queue.Forget(key)
	}
	if !wake.IsZero() {
		c.queue.AddAfter(key, wake.Sub(c.Clock.Now()))
	}
	return true
}

// reconcile syncs the Secrets of one class that are due. It returns when
// the class should be looked at again (zero: only when it changes) and
// whether something failed and should be retried with backoff.
func (c *Controller) reconcile(ctx context.Context, key string) (wake time.Time, retry bool) {
	obj, exists, err := c.informer.GetByKey(key)
	if err != nil || !exists {
		c.forget(key)
		return time.Time{}, false
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return time.Time{}, false
	}
	if u.GetDeletionTimestamp() != nil {
		// Being deleted (in the foreground: the garbage collector is
		// deleting its Secrets): never write what is being collected.
		c.forget(key)
		return time.Time{}, false
	}
	owner, err := SPCFromUnstructured(u)
	if err != nil {
		c.logger().Warn("secret sync: unreadable SecretProviderClass", "secretProviderClass", key, "error", err)
		return time.Time{}, false
	}
	if owner.Provider != c.ProviderName || !owner.Declares() {
		c.forget(key)
		if _, has := owner.Annotations[AnnotationStatus]; has && owner.Provider == c.ProviderName {
			c.writeStatus(ctx, owner, nil)
		}
		return time.Time{}, false
	}
	now := c.Clock.Now()
	st := c.classState(key, owner)

	// The class's own parameters, for a workload in its namespace; the
	// ServiceAccount and its tokens are filled in per entry below.
	cfg, decl, failure := loadDeclaration(ctx, owner, map[string]string{spc.AttrPodNamespace: owner.Namespace, spc.AttrPodName: "sync-" + owner.Name}, c.Config)
	if failure != nil {
		return c.declarationFailed(ctx, owner, st, *failure)
	}
	order := make(map[string]int, len(decl))
	for i, s := range decl {
		order[s.Name] = i
	}
	for name := range st.status {
		if _, declared := order[name]; !declared {
			delete(st.status, name)
		}
	}
	plan := planSync(decl, st.due, now)
	for _, s := range plan.unowned {
		st.status[s.Name] = noServiceAccountStatus(s.Name)
	}
	var synced []outcome
	for _, g := range plan.groups {
		for i, r := range c.syncAs(ctx, owner, cfg, g.serviceAccount, g.secrets) {
			s := g.secrets[i]
			st.status[s.Name] = secretStatus(r, g.serviceAccount, st.status[s.Name], now)
			synced = append(synced, outcome{secret: s, ready: r.Ready})
		}
	}
	next := reschedule(decl, st.due, synced, now)
	st.due, st.retryWithin = next.due, next.retryWithin
	c.setWaiting(key, owner.Namespace, st.status)
	list := make([]SecretStatus, 0, len(st.status))
	for _, s := range st.status {
		list = append(list, s)
	}
	sortStatuses(list, order)
	status := summarize(owner.Generation, list)
	c.writeStatus(ctx, owner, &status)
	c.logger().Debug("secret sync: reconciled", "secretProviderClass", key, "synced", len(synced), "ready", status.Ready, "next", next.wake)
	return next.wake, next.retry
}

// syncAs fetches what entries need as ServiceAccount sa and syncs them.
func (c *Controller) syncAs(ctx context.Context, owner *SPC, base *spc.Config, sa string, entries []*Secret) []Result {
	audience := c.STSAudience
	if audience == "" {
		audience = auth.AudienceSTS
	}
	if base.UsePodIdentity {
		audience = auth.AudiencePodIdentity
	}
	tokens, err := c.Tokens.Tokens(ctx, owner.Namespace, sa, []string{audience})
	if err != nil {
		out := make([]Result, len(entries))
		for i, s := range entries {
			out[i] = failedWith(s.Name, ReasonIdentityFailed, fmt.Sprintf("Secret %q not synced, left as it is", s.Name), err)
			c.Engine.Report(owner, out[i])
		}
		return out
	}
	cfg := *base
	cfg.Pod.ServiceAccount = sa
	// Credentials are reused per ServiceAccount (whichever class reads
	// first obtains them), so the session is named after the ServiceAccount.
	cfg.Pod.Name = syncPodName(sa)
	cfg.Tokens = tokens
	// Every path and template of this sync, written or not, draws from
	// one budget: a class cannot multiply it by repeating entries.
	ctx = work.NewContext(ctx, work.New(render.MaxWork))
	files, fetchErr := c.fetch(ctx, &cfg, entries)
	return c.Engine.Sync(ctx, owner, entries, files, fetchErr)
}

// fetch reads only the objects entries need: an identity may be denied the
// others (they may be another entry's). Objects are renumbered for the
// fetch and mapped back, so messages name them as the class does.
func (c *Controller) fetch(ctx context.Context, cfg *spc.Config, entries []*Secret) ([]render.File, error) {
	needed := map[int]*spc.Object{}
	for _, s := range entries {
		for _, o := range s.Objects() {
			needed[o.Index] = o
		}
	}
	var originals []*spc.Object
	for _, o := range cfg.Objects {
		if needed[o.Index] != nil {
			originals = append(originals, o)
		}
	}
	sub := *cfg
	sub.Objects = make([]*spc.Object, len(originals))
	copies := map[*spc.Object]*spc.Object{}
	for i, o := range originals {
		cp := *o
		cp.Index = i
		sub.Objects[i] = &cp
		copies[&cp] = o
	}
	back := func(o *spc.Object) *spc.Object {
		if orig, ok := copies[o]; ok {
			return orig
		}
		return o
	}
	files, err := c.Files(ctx, &sub)
	for i := range files {
		files[i].Object = back(files[i].Object)
	}
	var objErrs fetch.Errors
	if errors.As(err, &objErrs) {
		for _, oe := range objErrs {
			for e := oe; e != nil; e = e.Failover {
				e.Object = back(e.Object)
			}
		}
	}
	return files, err
}

// syncPodName is the pod name the controller's requests carry. The auth
// package does not name the STS session after it: the controller's token
// is bound to no pod, so the session names the ServiceAccount,
// coffer-<ns>@sync.<sa>, which no pod's session (coffer-<ns>.<pod>) equals.
func syncPodName(sa string) string { return "sync-" + sa }

func (c *Controller) declarationFailed(ctx context.Context, owner *SPC, st *classState, r Result) (time.Time, bool) {
	c.Engine.Report(owner, r)
	reason := r.Reason
	status := invalidStatus(owner.Generation, r)
	c.writeStatus(ctx, owner, &status)
	// A class that does not parse is retried only when it changes; a
	// failed default-region lookup is retried with backoff.
	st.due = map[string]time.Time{}
	return time.Time{}, reason != ReasonInvalidDeclaration
}

// writeStatus sets (or, with nil, removes) the class's status annotation,
// unless it already says the same.
func (c *Controller) writeStatus(ctx context.Context, owner *SPC, status *Status) {
	var value any
	if status != nil {
		encoded := status.encode()
		if owner.Annotations[AnnotationStatus] == encoded {
			return
		}
		value = encoded
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnotationStatus: value}}})
	if err != nil {
		return
	}
	_, err = c.Dynamic.Resource(SPCResource).Namespace(owner.Namespace).Patch(ctx, owner.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		logAPIFailure(ctx, c.logger(), "writing the status annotation", "coffer-controller sync needs patch on secretproviderclasses", err, "secretProviderClass", owner.Namespace+"/"+owner.Name)
	}
}

func (c *Controller) classState(key string, owner *SPC) *classState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state[key]
	if st == nil || st.uid != owner.UID || st.generation != owner.Generation {
		// A new or changed declaration: everything is due now.
		prev := st
		st = &classState{uid: owner.UID, generation: owner.Generation, due: map[string]time.Time{}, status: map[string]SecretStatus{}}
		if prev != nil && prev.uid == owner.UID {
			st.status = prev.status
		}
		c.state[key] = st
	}
	return st
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.state, key)
	c.unwaitLocked(key)
}

func (c *Controller) retryWithin(key string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.state[key]; st != nil {
		return st.retryWithin
	}
	return 0
}

// setWaiting records which Secrets of class key have a failed entry.
func (c *Controller) setWaiting(key, namespace string, status map[string]SecretStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unwaitLocked(key)
	for name, st := range status {
		if st.Ready != "False" {
			continue
		}
		secret := namespace + "/" + name
		if c.waiting[secret] == nil {
			c.waiting[secret] = map[string]bool{}
		}
		c.waiting[secret][key] = true
		c.waitingFor[key] = append(c.waitingFor[key], secret)
	}
}

func (c *Controller) unwaitLocked(key string) {
	for _, secret := range c.waitingFor[key] {
		delete(c.waiting[secret], key)
		if len(c.waiting[secret]) == 0 {
			delete(c.waiting, secret)
		}
	}
	delete(c.waitingFor, key)
}

// secretChanged retries at once, without backoff, every class with a
// failed entry for the Secret: what it waited for may have happened.
func (c *Controller) secretChanged(obj any) {
	secret, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.mu.Lock()
	var classes []string
	for key := range c.waiting[secret] {
		classes = append(classes, key)
	}
	c.mu.Unlock()
	for _, key := range classes {
		c.logger().Debug("secret sync: a Secret a failed entry waits for changed; retrying now", "secret", secret, "secretProviderClass", key)
		c.queue.Forget(key)
		c.queue.Add(key)
	}
}

func (c *Controller) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}
