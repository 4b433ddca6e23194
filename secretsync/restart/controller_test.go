package restart

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/internal/kube/kubetest"
	"github.com/coffer-csi/coffer/secretsync"
)

// syncBuffer is a log sink safe for the controller's goroutines, which
// tells every write to whoever waits for a line.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed and replaced on every write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{})} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.written)
	s.written = make(chan struct{})
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor returns once the log holds text.
func (s *syncBuffer) waitFor(ctx context.Context, text string) error {
	for {
		s.mu.Lock()
		found, written := strings.Contains(s.b.String(), text), s.written
		s.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-written:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// rig is a controller on fake API clients and a fake clock.
type rig struct {
	kube   *fake.Clientset
	dyn    *dynamicfake.FakeDynamicClient
	meta   *metadatafake.FakeMetadataClient
	events *record.FakeRecorder
	log    *syncBuffer
	// queue is the controller's delaying queue: its delays (debounce,
	// backoff) pass when the test steps the clock.
	queue   *kubetest.Queue[string]
	mu      sync.Mutex
	metrics []string
}

func newRig(t *testing.T, workloads ...runtime.Object) *rig {
	t.Helper()
	return newRigWith(t, nil, workloads...)
}

// newRigIn is a rig whose controller is scoped to namespaces (none: all).
func newRigIn(t *testing.T, namespaces []string, workloads ...runtime.Object) *rig {
	t.Helper()
	return newRigWith(t, func(c *Controller) { c.Namespaces = namespaces }, workloads...)
}

// newRigWith is a rig whose controller setup changes before it runs.
func newRigWith(t *testing.T, setup func(*Controller), workloads ...runtime.Object) *rig {
	t.Helper()
	scheme := metadatafake.NewTestScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r := &rig{
		kube:   fake.NewClientset(workloads...),
		dyn:    dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{SPCPSResource: "SecretProviderClassPodStatusList"}),
		meta:   metadatafake.NewSimpleMetadataClient(scheme),
		events: record.NewFakeRecorder(100),
		log:    newSyncBuffer(),
		queue:  kubetest.NewQueue[string](clk),
	}
	c := &Controller{
		Kube: kubetest.Wrap(r.kube), Dynamic: r.dyn, Metadata: r.meta, Events: r.events,
		OnRestart: func(kind, trigger, outcome string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.metrics = append(r.metrics, kind+"/"+trigger+"/"+outcome)
		},
		Logger:    slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryBase: 10 * time.Millisecond,
		Clock:     clk, delaying: r.queue,
	}
	if setup != nil {
		setup(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	r.waitLog(t, "workload restarts started")
	return r
}

func (r *rig) waitLog(t *testing.T, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.log.waitFor(ctx, text); err != nil {
		t.Fatalf("log %q: %v", text, err)
	}
}

// waitUntil returns once cond holds, checked whenever the controller has
// processed a workload (a restart, its metric and its event happen
// before).
func (r *rig) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.queue.Until(ctx, what, cond); err != nil {
		t.Fatal(err)
	}
}

// settle waits until the controller has processed every workload queued.
func (r *rig) settle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.queue.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

// step moves the clock by d and waits until the controller has done what
// became due.
func (r *rig) step(t *testing.T, d time.Duration) {
	t.Helper()
	r.queue.Step(d)
	r.settle(t)
}

func (r *rig) event(t *testing.T, want string) string {
	t.Helper()
	select {
	case e := <-r.events.Events:
		if !strings.Contains(e, want) {
			t.Errorf("event %q, want %q", e, want)
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("no event %q", want)
	}
	return ""
}

// noEvent fails if an event has been recorded and not taken.
func (r *rig) noEvent(t *testing.T) {
	t.Helper()
	select {
	case e := <-r.events.Events:
		t.Errorf("another event: %s", e)
	default:
	}
}

func deployment(name, restartOn string) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Annotations: map[string]string{AnnotationRestartOn: restartOn}}}
	d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: csiDriver, VolumeAttributes: map[string]string{"secretProviderClass": "db"}}}}}
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-db"}}}}}}
	return d
}

func (r *rig) addPod(t *testing.T, name, rs, hash, restartedAt string) {
	t.Helper()
	r.addOwnedPod(t, name, "ReplicaSet", rs, map[string]string{podTemplateHash: hash}, restartedAt)
}

func (r *rig) addOwnedPod(t *testing.T, name, kind, owner string, labels map[string]string, restartedAt string) {
	t.Helper()
	controller := true
	p := &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: owner, Controller: &controller}}},
	}
	if restartedAt != "" {
		p.Annotations = map[string]string{AnnotationRestartedAt: restartedAt}
	}
	if err := r.meta.Tracker().Add(p); err != nil {
		t.Fatal(err)
	}
}

func spcps(pod, version string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClassPodStatus",
		"metadata": map[string]any{"name": pod + "-ns-db", "namespace": "ns"},
		"status": map[string]any{"podName": pod, "secretProviderClassName": "db", "mounted": true,
			"objects": []any{map[string]any{"id": "password", "version": version}}},
	}}
}

func (r *rig) mount(t *testing.T, pod, version string, update bool) {
	t.Helper()
	res := r.dyn.Resource(SPCPSResource).Namespace("ns")
	var err error
	if update {
		_, err = res.Update(context.Background(), spcps(pod, version), metav1.UpdateOptions{})
	} else {
		_, err = res.Create(context.Background(), spcps(pod, version), metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (r *rig) template(t *testing.T, name string) map[string]string {
	t.Helper()
	d, err := r.kube.AppsV1().Deployments("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Annotations
}

func TestControllerRestartsADeploymentOnce(t *testing.T) {
	r := newRig(t, deployment("web", "true"), deployment("other", ""))
	r.addPod(t, "web-h1-a", "web-h1", "h1", "")
	r.addPod(t, "web-h1-b", "web-h1", "h1", "")
	r.addPod(t, "other-h9-a", "other-h9", "h9", "")
	r.mount(t, "web-h1-a", "v1", false)
	r.mount(t, "web-h1-b", "v1", false)
	r.mount(t, "other-h9-a", "v1", false)
	r.waitLog(t, "workload=Deployment/ns/web follows=secret/app-db,secretproviderclass/db mounts=2 secrets=0")

	r.mount(t, "web-h1-a", "v2", true)
	r.mount(t, "other-h9-a", "v2", true)
	r.event(t, "Normal RestartedOnRotation rolling restart (pod template annotation coffer-csi.github.io/restarted-at) because these changed: secretproviderclass/db password@v2")
	ann := r.template(t, "web")
	at := ann[AnnotationRestartedAt]
	if at == "" || ann[AnnotationRestartedFor] != "secretproviderclass/db password@v2" {
		t.Fatalf("template annotations %v", ann)
	}
	// The rest of the sweep, and the restart's own pods: nothing more.
	r.mount(t, "web-h1-b", "v2", true)
	r.addPod(t, "web-h2-a", "web-h2", "h2", at)
	r.mount(t, "web-h2-a", "v2", false)
	r.waitLog(t, "workload=Deployment/ns/web follows=secret/app-db,secretproviderclass/db mounts=3 secrets=0 restart=false")
	r.step(t, time.Hour) // nothing is waiting either
	if got := r.template(t, "web")[AnnotationRestartedAt]; got != at {
		t.Errorf("restarted again: %s -> %s", at, got)
	}
	if n := strings.Count(r.log.String(), `msg="workload restarted"`); n != 1 {
		t.Errorf("%d restarts logged", n)
	}
	if len(r.template(t, "other")) != 0 {
		t.Errorf("the Deployment that did not opt in was patched: %v", r.template(t, "other"))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.Join(r.metrics, ",") != "Deployment/mount/restarted" {
		t.Errorf("metrics %v", r.metrics)
	}
}

// TestControllerSecretChangeAndRefusedPatch: a refused restart patch is a
// RestartFailed event that says who refused it (RBAC, naming the
// permission, or an admission policy such as the chart's, which no RBAC
// fixes) without the API's message, and is retried with backoff.
func TestControllerSecretChangeAndRefusedPatch(t *testing.T) {
	deployments := schema.GroupResource{Group: "apps", Resource: "deployments"}
	for name, tc := range map[string]struct {
		refusal error
		why     string
	}{
		"by RBAC": {
			apierrors.NewForbidden(deployments, "web", errors.New(`User "system:serviceaccount:coffer:coffer-sync" cannot patch resource "deployments" in API group "apps" in the namespace "CANARY"`)),
			"refused (RBAC: coffer-controller sync needs patch on deployments)",
		},
		"by an admission policy": {
			apierrors.NewForbidden(deployments, "web", errors.New("ValidatingAdmissionPolicy 'coffer-sync-workload-restarts' with binding 'coffer-sync-workload-restarts' denied request: CANARY-policy-text")),
			"refused by an admission policy or webhook, not by RBAC (the log has its message)",
		},
	} {
		t.Run(name, func(t *testing.T) { refusedPatch(t, tc.refusal, tc.why) })
	}
}

func refusedPatch(t *testing.T, refusal error, why string) {
	r := newRig(t, deployment("web", "secret/app-db"))
	refuse := true
	var mu sync.Mutex
	r.kube.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			refuse = false
			return true, nil, refusal
		}
		return false, nil, nil
	})
	secret := func(hash string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: "app-db", Namespace: "ns", Annotations: map[string]string{secretsync.AnnotationContentHash: hash}}}
	}
	if err := r.meta.Tracker().Add(secret("v1:aaa")); err != nil {
		t.Fatal(err)
	}
	r.waitLog(t, "workload=Deployment/ns/web follows=secret/app-db mounts=0 secrets=1")
	if err := r.meta.Tracker().Update(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, secret("v1:bbb"), "ns"); err != nil {
		t.Fatal(err)
	}
	// The API's text is for the log: an event names the status only.
	if e := r.event(t, "Warning RestartFailed rolling restart for changed secret/app-db failed: "+why+"; retrying with backoff"); strings.Contains(e, "CANARY") {
		t.Errorf("event %q holds the API's message", e)
	}
	// Retried with backoff (RetryBase, the first time), then done.
	r.settle(t)
	r.step(t, 9*time.Millisecond)
	r.noEvent(t)
	r.step(t, time.Millisecond)
	r.event(t, "Normal RestartedOnRotation")
	if got := r.template(t, "web")[AnnotationRestartedFor]; got != "secret/app-db" {
		t.Errorf("restarted-for %q", got)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.Join(r.metrics, ",") != "Deployment/secret/failed,Deployment/secret/restarted" {
		t.Errorf("metrics %v", r.metrics)
	}
}

func TestControllerReportsAnInvalidAnnotationOnce(t *testing.T) {
	r := newRig(t, deployment("web", "configmap/x"))
	r.event(t, "Warning InvalidRestartAnnotation annotation coffer-csi.github.io/restart-on-rotation: \"configmap/x\" not understood")
	// Looked at again (as after a mount or a pod's change), it says
	// nothing more: the annotation has not changed.
	r.settle(t)
	key := Key(KindDeployment, "ns", "web")
	n := r.queue.Processed(key)
	r.queue.Add(key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.queue.WaitProcessed(ctx, key, n+1); err != nil {
		t.Fatal(err)
	}
	r.noEvent(t)
}

// TestControllerDebounces: a restart waits for the debounce window that
// the first change opened, so that one rotation makes one restart.
func TestControllerDebounces(t *testing.T) {
	r := newRigWith(t, func(c *Controller) { c.Debounce = time.Minute }, deployment("web", "true"))
	r.addPod(t, "web-h1-a", "web-h1", "h1", "")
	r.mount(t, "web-h1-a", "v1", false)
	r.waitLog(t, "workload=Deployment/ns/web follows=secret/app-db,secretproviderclass/db mounts=1 secrets=0")
	r.settle(t)
	key := Key(KindDeployment, "ns", "web")
	if d, waiting := r.queue.Waiting(key); waiting {
		t.Fatalf("waiting %s before any change", d)
	}
	r.mount(t, "web-h1-a", "v2", true)
	r.waitUntil(t, "the debounce window", func() bool {
		_, waiting := r.queue.Waiting(key)
		return waiting
	})
	r.settle(t)
	if d, _ := r.queue.Waiting(key); d != time.Minute {
		t.Errorf("restart in %s, want the debounce, 1m", d)
	}
	r.step(t, time.Minute-time.Second)
	if at := r.template(t, "web")[AnnotationRestartedAt]; at != "" {
		t.Fatalf("restarted within the debounce window, at %s", at)
	}
	r.noEvent(t)
	r.step(t, time.Second)
	r.event(t, "Normal RestartedOnRotation")
	if got := r.template(t, "web")[AnnotationRestartedFor]; got != "secretproviderclass/db password@v2" {
		t.Errorf("restarted-for %q", got)
	}
}

func TestControllerRestartsStatefulSetsAndDaemonSets(t *testing.T) {
	podSpec := deployment("x", "").Spec.Template
	meta := metav1.ObjectMeta{Namespace: "ns", Annotations: map[string]string{AnnotationRestartOn: "secretproviderclass/db"}}
	sts := &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Template: podSpec}}
	sts.Name = "db"
	ds := &appsv1.DaemonSet{ObjectMeta: *meta.DeepCopy(), Spec: appsv1.DaemonSetSpec{Template: podSpec}}
	ds.Name = "agent"
	r := newRig(t, sts, ds)
	r.addOwnedPod(t, "db-0", KindStatefulSet, "db", nil, "")
	r.addOwnedPod(t, "agent-x1", KindDaemonSet, "agent", nil, "")
	r.mount(t, "db-0", "v1", false)
	r.mount(t, "agent-x1", "v1", false)
	r.waitLog(t, "workload=StatefulSet/ns/db follows=secretproviderclass/db mounts=1")
	r.waitLog(t, "workload=DaemonSet/ns/agent follows=secretproviderclass/db mounts=1")
	r.mount(t, "db-0", "v2", true)
	r.mount(t, "agent-x1", "v2", true)
	r.waitUntil(t, "both restarted", func() bool {
		s, err1 := r.kube.AppsV1().StatefulSets("ns").Get(context.Background(), "db", metav1.GetOptions{})
		d, err2 := r.kube.AppsV1().DaemonSets("ns").Get(context.Background(), "agent", metav1.GetOptions{})
		return err1 == nil && err2 == nil &&
			s.Spec.Template.Annotations[AnnotationRestartedFor] == "secretproviderclass/db password@v2" &&
			d.Spec.Template.Annotations[AnnotationRestartedFor] == "secretproviderclass/db password@v2"
	})
	r.waitUntil(t, "two restarts counted", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.metrics) >= 2
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	got := strings.Join(r.metrics, ",")
	if !strings.Contains(got, "StatefulSet/mount/restarted") || !strings.Contains(got, "DaemonSet/mount/restarted") || len(r.metrics) != 2 {
		t.Errorf("metrics %v", r.metrics)
	}
}

// TestControllerNamespaces: scoped to namespaces (coffer-controller sync --namespaces
// --restart-workloads), every informer (workloads, pods, Secrets, mount
// statuses) lists and watches those namespaces only, never the cluster,
// which the Roles of a namespaced install refuse.
func TestControllerNamespaces(t *testing.T) {
	other := deployment("web", "secret/app-db")
	other.Namespace = "other"
	r := newRigIn(t, []string{"ns", "ns2"}, deployment("web", "secret/app-db"), other)
	seen := map[string]bool{}
	for _, actions := range [][]k8stesting.Action{r.kube.Actions(), r.dyn.Actions(), r.meta.Actions()} {
		for _, a := range actions {
			if a.GetVerb() != "list" && a.GetVerb() != "watch" {
				continue
			}
			seen[a.GetResource().Resource] = true
			if ns := a.GetNamespace(); ns != "ns" && ns != "ns2" {
				t.Errorf("%s of %s in namespace %q, want only ns and ns2", a.GetVerb(), a.GetResource().Resource, ns)
			}
		}
	}
	for _, res := range []string{"deployments", "statefulsets", "daemonsets", "pods", "secrets", "secretproviderclasspodstatuses"} {
		if !seen[res] {
			t.Errorf("%s never listed", res)
		}
	}
}
