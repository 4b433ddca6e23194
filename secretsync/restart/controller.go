package restart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/panics"
	"github.com/coffer-csi/coffer/secretsync"
)

// Event reasons on the workload.
const (
	ReasonRestarted         = "RestartedOnRotation"
	ReasonRestartFailed     = "RestartFailed"
	ReasonInvalidAnnotation = "InvalidRestartAnnotation"
)

// Outcomes of a restart (the metric's outcome label).
const (
	OutcomeRestarted = "restarted"
	OutcomeFailed    = "failed"
)

// syncWarning is how long the informers may take to sync before the
// controller says it has not started.
const syncWarning = 30 * time.Second

// FieldManager names coffer-controller sync's restart patches.
const FieldManager = "coffer-sync"

var (
	// SPCPSResource is the driver's SecretProviderClassPodStatus.
	SPCPSResource = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasspodstatuses"}
	podsResource  = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

// Controller restarts opted-in workloads when what they mount or consume
// changes. One controller runs per cluster (in coffer-controller sync, under its
// leader election).
type Controller struct {
	// Kube reads, watches and patches the workloads.
	Kube     kube.Workloads
	Dynamic  dynamic.Interface
	Metadata metadata.Interface
	// Secrets is the metadata informer on Secrets to share with the sync
	// controller of the same process (nil: one of the controller's own, on
	// Metadata).
	Secrets *secretsync.SecretMetadata
	// Namespaces limits the controller to these namespaces (none: all),
	// each listed and watched on its own (see kube.Informer).
	Namespaces []string
	// Debounce is how long after the first change a restart waits, so
	// that the changes of one rotation make one restart.
	Debounce time.Duration
	Events   secretsync.EventRecorder
	// OnRestart sees every restart's kind, trigger and outcome (metrics).
	OnRestart func(kind, trigger, outcome string)
	// RetryBase and RetryMax bound the backoff after a refused restart
	// (default 5s and 5m).
	RetryBase, RetryMax time.Duration
	Logger              *slog.Logger
	// Clock is the time source of due times, backoff and the work queue's
	// delays (nil: the real clock).
	Clock clock.WithTicker

	queue workqueue.TypedRateLimitingInterface[string]
	// delaying, when set, is the queue's delaying queue (tests: one whose
	// delays pass when the test steps its clock); nil builds client-go's
	// over Clock.
	delaying                        workqueue.TypedDelayingInterface[string]
	deployments, statefulSets, dSet *kube.Informer
	pods, spcps, secrets            *kube.Informer

	mu     sync.Mutex
	states map[string]*workloadState
}

type workloadState struct {
	*State
	// invalid is the annotation value last reported as invalid.
	invalid string
}

// Run watches and restarts until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.states = map[string]*workloadState{}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	base, maxDelay := c.RetryBase, c.RetryMax
	if base <= 0 {
		base = 5 * time.Second
	}
	if maxDelay <= 0 {
		maxDelay = 5 * time.Minute
	}
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](base, maxDelay),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "coffer-restart", Clock: c.Clock, DelayingQueue: c.delaying})
	defer c.queue.ShutDown()

	ns := c.Namespaces
	c.deployments = kube.NewNamespacedInformer(c.Kube, ns, func(n string) kube.ListWatcher[*appsv1.DeploymentList] { return c.Kube.Deployments(n) }, &appsv1.Deployment{})
	c.statefulSets = kube.NewNamespacedInformer(c.Kube, ns, func(n string) kube.ListWatcher[*appsv1.StatefulSetList] { return c.Kube.StatefulSets(n) }, &appsv1.StatefulSet{})
	c.dSet = kube.NewNamespacedInformer(c.Kube, ns, func(n string) kube.ListWatcher[*appsv1.DaemonSetList] { return c.Kube.DaemonSets(n) }, &appsv1.DaemonSet{})
	c.pods = kube.NewNamespacedInformer(c.Metadata, ns, func(n string) kube.ListWatcher[*metav1.PartialObjectMetadataList] {
		return c.Metadata.Resource(podsResource).Namespace(n)
	}, &metav1.PartialObjectMetadata{})
	secrets := c.Secrets
	if secrets == nil {
		var err error
		if secrets, err = secretsync.NewSecretMetadata(c.Metadata, ns); err != nil {
			return fmt.Errorf("restarts: %w", err)
		}
	}
	c.secrets = secrets.Informer()
	c.spcps = kube.NewNamespacedInformer(c.Dynamic, ns, func(n string) kube.ListWatcher[*unstructured.UnstructuredList] {
		return c.Dynamic.Resource(SPCPSResource).Namespace(n)
	}, &unstructured.Unstructured{})

	for _, step := range []func() error{
		func() error { return c.deployments.SetTransform(stripWorkload) },
		func() error { return c.statefulSets.SetTransform(stripWorkload) },
		func() error { return c.dSet.SetTransform(stripWorkload) },
		func() error { return c.pods.SetTransform(stripPod) },
		func() error { return c.spcps.SetTransform(stripSPCPS) },
		func() error { return c.watch(c.deployments, c.workloadKey(KindDeployment)) },
		func() error { return c.watch(c.statefulSets, c.workloadKey(KindStatefulSet)) },
		func() error { return c.watch(c.dSet, c.workloadKey(KindDaemonSet)) },
		func() error { return c.watch(c.pods, c.podOwner) },
		func() error { return c.watch(c.spcps, c.spcpsOwner) },
		func() error { return c.watchSecrets() },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("restarts: %w", err)
		}
	}
	var wg sync.WaitGroup
	for _, inf := range []*kube.Informer{c.deployments, c.statefulSets, c.dSet, c.pods, c.spcps} {
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	wg.Go(func() { secrets.Run(ctx) })
	defer wg.Wait()
	// Without RBAC the informers retry for ever: say so, and keep waiting.
	go func() {
		wctx, cancel := context.WithTimeout(ctx, syncWarning)
		defer cancel()
		if !cache.WaitForCacheSync(wctx.Done(), c.deployments.HasSynced, c.statefulSets.HasSynced, c.dSet.HasSynced,
			c.pods.HasSynced, c.secrets.HasSynced, c.spcps.HasSynced) && ctx.Err() == nil {
			c.logger().Warn("workload restarts have not started: the informers have not synced (RBAC: coffer-controller sync --restart-workloads needs list and watch on deployments, statefulsets, daemonsets, pods, secrets and secretproviderclasspodstatuses)", "after", syncWarning)
		}
	}()
	if !cache.WaitForCacheSync(ctx.Done(), c.deployments.HasSynced, c.statefulSets.HasSynced, c.dSet.HasSynced,
		c.pods.HasSynced, c.secrets.HasSynced, c.spcps.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("restarts: the informers never synced (RBAC: coffer-controller sync --restart-workloads needs list and watch on deployments, statefulsets, daemonsets, pods, secrets and secretproviderclasspodstatuses)")
	}
	c.logger().Info("workload restarts started", "namespaces", namespaces(ns), "debounce", c.Debounce)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c.next(ctx) {
		}
	}()
	<-ctx.Done()
	c.queue.ShutDown()
	<-done
	return nil
}

// watch sends the workload keys that keyOf finds for every change of inf's
// objects to the queue.
func (c *Controller) watch(inf *kube.Informer, keyOf func(obj any) string) error {
	add := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if key := keyOf(obj); key != "" {
			c.queue.Add(key)
		}
	}
	return inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }, DeleteFunc: add,
	})
}

func (c *Controller) workloadKey(kind string) func(obj any) string {
	return func(obj any) string {
		m, ok := obj.(metav1.Object)
		if !ok {
			return ""
		}
		return Key(kind, m.GetNamespace(), m.GetName())
	}
}

func (c *Controller) podOwner(obj any) string {
	m, ok := obj.(metav1.Object)
	if !ok {
		return ""
	}
	return OwnerKey(m.GetNamespace(), controllerOf(m), m.GetLabels())
}

func (c *Controller) spcpsOwner(obj any) string {
	m, ok := obj.(*mountStatus)
	if !ok {
		return ""
	}
	pod, exists, err := c.pods.GetByKey(m.Namespace + "/" + m.Pod)
	if err != nil || !exists {
		return "" // the pod's own event brings its workload
	}
	return c.podOwner(pod)
}

// watchSecrets looks again at every opted-in workload of a Secret's
// namespace when the Secret changes: few Secrets change, and each look
// is a few map reads.
func (c *Controller) watchSecrets() error {
	changed := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		m, ok := obj.(metav1.Object)
		if !ok || m.GetAnnotations()[secretsync.AnnotationContentHash] == "" {
			return
		}
		for kind, inf := range c.workloadInformers() {
			objs, _ := inf.ByNamespace(m.GetNamespace())
			for _, o := range objs {
				if w, ok := o.(metav1.Object); ok && w.GetAnnotations()[AnnotationRestartOn] != "" {
					c.queue.Add(Key(kind, w.GetNamespace(), w.GetName()))
				}
			}
		}
	}
	return c.secrets.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: changed, UpdateFunc: func(_, obj any) { changed(obj) }, DeleteFunc: changed,
	})
}

func (c *Controller) workloadInformers() map[string]*kube.Informer {
	return map[string]*kube.Informer{KindDeployment: c.deployments, KindStatefulSet: c.statefulSets, KindDaemonSet: c.dSet}
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wake time.Time
	var retry bool
	if err := panics.Run("deciding a workload restart", func() { wake, retry = c.reconcile(rctx, key) }); err != nil {
		c.logger().Error("workload restart failed", "workload", key, "error", err, "stack", panics.Stack(err))
		retry = true
	}
	if retry {
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	if !wake.IsZero() {
		c.queue.AddAfter(key, wake.Sub(c.Clock.Now()))
	}
	return true
}

// reconcile looks at one workload: what it follows, what that is now, and
// whether to restart it.
func (c *Controller) reconcile(ctx context.Context, key string) (wake time.Time, retry bool) {
	kind, ns, name, ok := SplitKey(key)
	inf := c.workloadInformers()[kind]
	if !ok || inf == nil {
		return time.Time{}, false
	}
	obj, exists, err := inf.GetByKey(ns + "/" + name)
	if err != nil || !exists {
		c.forget(key)
		return time.Time{}, false
	}
	w, ok := obj.(runtime.Object)
	meta, okMeta := obj.(metav1.Object)
	tmpl := templateOf(obj)
	if !ok || !okMeta || tmpl == nil {
		return time.Time{}, false
	}
	value := meta.GetAnnotations()[AnnotationRestartOn]
	follow, optedIn, err := ParseFollow(value)
	if err != nil {
		st := c.state(key)
		if st.invalid != value {
			st.invalid = value
			c.Events.Eventf(w, corev1.EventTypeWarning, ReasonInvalidAnnotation, "%v", err)
			c.logger().Warn("workload restarts: invalid annotation", "workload", key, "error", err)
		}
		return time.Time{}, false
	}
	if !optedIn {
		c.forget(key)
		return time.Time{}, false
	}
	st := c.state(key)
	st.invalid = ""
	follow = follow.Resolve(&tmpl.Spec)
	before := tmpl.Annotations[AnnotationRestartedAt]
	in := c.inputs(key, ns, follow, st.Generation(before))
	d := st.Plan(in, c.Clock.Now(), c.Debounce)
	c.logger().Debug("workload restarts: observed", "workload", key, "follows", follow.Describe(), "mounts", len(in.Mounts), "secrets", len(in.Secrets), "restart", d.Restart, "wake", d.Wake)
	if !d.Restart {
		return d.Wake, false
	}
	at := c.Clock.Now().UTC().Format(time.RFC3339Nano)
	summary := Summary(d.Changes)
	if err := c.patch(ctx, kind, ns, name, at, summary); err != nil {
		c.OnRestart(kind, d.Trigger, OutcomeFailed)
		_, why := kube.DescribeFailure(ctx, err, "coffer-controller sync needs patch on "+strings.ToLower(kind)+"s")
		c.Events.Eventf(w, corev1.EventTypeWarning, ReasonRestartFailed, "rolling restart for changed %s failed: %s; retrying with backoff", summary, why)
		c.logger().Warn("workload restart failed", "workload", key, "changes", summary, "error", err)
		return time.Time{}, true
	}
	st.Restarted(in, before, at)
	c.OnRestart(kind, d.Trigger, OutcomeRestarted)
	c.Events.Eventf(w, corev1.EventTypeNormal, ReasonRestarted, "rolling restart (pod template annotation %s) because these changed: %s", AnnotationRestartedAt, summary)
	c.logger().Info("workload restarted", "workload", key, "trigger", d.Trigger, "changes", summary)
	return time.Time{}, false
}

// inputs gathers what the workload key mounts of the followed classes (from
// the driver's SecretProviderClassPodStatus of each of its pods) and the
// followed Secrets coffer syncs.
func (c *Controller) inputs(key, ns string, f Follow, generation string) Inputs {
	var in Inputs
	if len(f.Classes) > 0 {
		objs, _ := c.spcps.ByNamespace(ns)
		for _, o := range objs {
			m, ok := o.(*mountStatus)
			if !ok || !m.Mounted || !f.Classes[m.Class] {
				continue
			}
			p, exists, err := c.pods.GetByKey(ns + "/" + m.Pod)
			pod, ok := p.(metav1.Object)
			if err != nil || !exists || !ok || c.podOwner(p) != key {
				continue
			}
			in.Mounts = append(in.Mounts, PodMount{
				PodUID:   string(pod.GetUID()),
				Class:    m.Class,
				Current:  pod.GetAnnotations()[AnnotationRestartedAt] == generation,
				Versions: m.Versions,
			})
		}
	}
	for name := range f.Secrets {
		o, exists, err := c.secrets.GetByKey(ns + "/" + name)
		if m, ok := o.(metav1.Object); err == nil && exists && ok {
			if hash := m.GetAnnotations()[secretsync.AnnotationContentHash]; hash != "" {
				in.Secrets = append(in.Secrets, SecretInput{Name: name, Hash: hash})
			}
		}
	}
	return in
}

// patch sets the restart annotations of the pod template, as kubectl
// rollout restart does: a change of the template, which the workload's
// controller rolls out with its own strategy.
func (c *Controller) patch(ctx context.Context, kind, ns, name, at, summary string) error {
	body, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{AnnotationRestartedAt: at, AnnotationRestartedFor: summary},
	}}}})
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager}
	switch kind {
	case KindDeployment:
		_, err = c.Kube.Deployments(ns).Patch(ctx, name, types.MergePatchType, body, opts)
	case KindStatefulSet:
		_, err = c.Kube.StatefulSets(ns).Patch(ctx, name, types.MergePatchType, body, opts)
	case KindDaemonSet:
		_, err = c.Kube.DaemonSets(ns).Patch(ctx, name, types.MergePatchType, body, opts)
	default:
		err = fmt.Errorf("unknown kind %s", kind)
	}
	return err
}

func (c *Controller) state(key string) *workloadState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.states[key]
	if st == nil {
		st = &workloadState{State: NewState()}
		c.states[key] = st
	}
	return st
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.states, key)
}

func (c *Controller) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func templateOf(obj any) *corev1.PodTemplateSpec {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template
	case *appsv1.StatefulSet:
		return &w.Spec.Template
	case *appsv1.DaemonSet:
		return &w.Spec.Template
	}
	return nil
}

func controllerOf(m metav1.Object) *OwnerRef {
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil && strings.HasPrefix(ref.APIVersion, "apps/") {
		return &OwnerRef{Kind: ref.Kind, Name: ref.Name}
	}
	return nil
}

// namespaces names a scope in logs.
func namespaces(ns []string) string {
	if len(ns) == 0 {
		return "(all)"
	}
	return strings.Join(ns, ",")
}
