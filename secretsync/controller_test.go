package secretsync

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/kube/kubetest"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// fakeTokens mints fake tokens, recording who asked for what.
type fakeTokens struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeTokens) Tokens(_ context.Context, ns, sa string, audiences []string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, ns+"/"+sa+":"+strings.Join(audiences, ","))
	if f.err != nil {
		return "", f.err
	}
	b, _ := json.Marshal(map[string]any{audiences[0]: map[string]string{"token": "token-of-" + sa}})
	return string(b), nil
}

type ctrlEnv struct {
	*env
	dyn    *dynamicfake.FakeDynamicClient
	ff     *fakeFiles
	tokens *fakeTokens
	ctrl   *Controller
	// queue is the controller's delaying queue: its delays pass when the
	// test steps the clock (step), and it tells when the controller has
	// processed what was queued.
	queue *kubetest.Queue[string]
}

// testKey is the queue key of the tests' class.
const testKey = testNS + "/" + testSPC

func startController(t *testing.T, objs ...runtime.Object) *ctrlEnv {
	t.Helper()
	return startControllerWith(t, newEnv(t), nil, objs...)
}

// startControllerWith starts a controller over e's Secrets, on a fake
// clock, changed by setup before it runs.
func startControllerWith(t *testing.T, kube *env, setup func(*Controller), objs ...runtime.Object) *ctrlEnv {
	t.Helper()
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	e := &ctrlEnv{env: kube, dyn: dynamicClient(objs...), tokens: &fakeTokens{}, queue: kubetest.NewQueue[string](clk)}
	e.ff = &fakeFiles{t: t, content: defaultContent(), version: "v1"}
	e.ctrl = &Controller{
		Dynamic: e.dyn, Engine: e.engine, Files: e.ff.Files, Tokens: e.tokens, ProviderName: "aws",
		RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: e.engine.Logger,
		Clock: clk, delaying: e.queue,
	}
	if setup != nil {
		setup(e.ctrl)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.ctrl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

// reconciled waits until class key has been reconciled n times since the
// start, and the controller has nothing left to do until the clock moves
// or an object changes.
func (e *ctrlEnv) reconciled(t *testing.T, key string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.queue.WaitProcessed(ctx, key, n); err != nil {
		t.Fatal(err)
	}
}

// reconciledUntil waits until cond holds, checked whenever the controller
// has processed a class. It serves changes that come through a watch,
// where the reconcile they cause may come after one that the watch's first
// list caused.
func (e *ctrlEnv) reconciledUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.queue.Until(ctx, what, cond); err != nil {
		t.Fatal(err)
	}
}

// step moves the clock by d and waits until the controller has done what
// became due.
func (e *ctrlEnv) step(t *testing.T, d time.Duration) {
	t.Helper()
	e.queue.Step(d)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.queue.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

func (e *ctrlEnv) status(t *testing.T) Status {
	t.Helper()
	u, err := e.dyn.Resource(SPCResource).Namespace(testNS).Get(context.Background(), testSPC, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStatus(u.GetAnnotations()[AnnotationStatus])
	if err != nil {
		return Status{}
	}
	return st
}

func (e *ctrlEnv) hasSecret(name string) func() error {
	return func() error {
		_, err := e.kube.CoreV1().Secrets(testNS).Get(context.Background(), name, metav1.GetOptions{})
		return err
	}
}

func TestControllerSyncsWithoutPods(t *testing.T) {
	decl := `
- secretName: slack-url
  refreshInterval: 1h
  serviceAccountName: reader
  data: [{key: address, objectName: dev/slackurl}]
- secretName: nobodys
  data: [{key: a, objectName: cert}]
`
	e := startController(t, spcObject(testSPC, classParams(decl)))
	e.reconciled(t, testKey, 1)
	if got := data(e.secret("slack-url"))["address"]; got != defaultContent()["dev_slackurl"] {
		t.Errorf("address %q", got)
	}
	e.absent("nobodys")
	if e.tokens.calls[0] != "team/reader:"+auth.AudienceSTS {
		t.Errorf("token requests %v", e.tokens.calls)
	}
	cfg := e.ff.calls[0]
	if cfg.Pod.Namespace != testNS || cfg.Pod.ServiceAccount != "reader" || !strings.Contains(cfg.Tokens, "token-of-reader") || cfg.Region != "us-east-1" {
		t.Errorf("fetched as %+v (region %s)", cfg.Pod, cfg.Region)
	}
	// Only the object the due entry needs was fetched, under its own name.
	if len(cfg.Objects) != 1 || cfg.Objects[0].Name != "dev/slackurl" {
		t.Errorf("fetched objects %v", cfg.Objects)
	}
	st := e.status(t)
	if st.Ready != "False" || st.Reason != ReasonSyncFailed || len(st.Secrets) != 2 || st.ObservedGeneration != 1 || !strings.Contains(st.Message, "nobodys (NoServiceAccount)") {
		t.Fatalf("status %+v", st)
	}
	if s := st.Secrets[0]; s.Name != "slack-url" || s.Ready != "True" || s.Reason != ReasonCreated || s.ServiceAccount != "reader" || s.LastSyncTime == "" {
		t.Errorf("slack-url status %+v", s)
	}
	if s := st.Secrets[1]; s.Name != "nobodys" || s.Ready != "False" || s.Reason != ReasonNoServiceAccount || !strings.Contains(s.Message, "names no serviceAccountName; set it to the ServiceAccount") {
		t.Errorf("nobodys status %+v", s)
	}
}

func TestControllerRefreshesAndFollowsChanges(t *testing.T) {
	decl := `[{secretName: s, refreshInterval: 1h, serviceAccountName: reader, data: [{key: a, objectName: cert}]}]`
	obj := spcObject(testSPC, classParams(decl))
	e := startController(t, obj)
	e.reconciled(t, testKey, 1)
	if st := e.status(t); st.Ready != "True" {
		t.Fatalf("status %+v", st)
	}
	e.writes()

	// Nothing is read again before the refreshInterval has passed.
	calls := e.ff.callCount()
	e.step(t, time.Hour-time.Second)
	if n := e.ff.callCount(); n != calls {
		t.Fatalf("%d fetches before the refreshInterval passed", n-calls)
	}
	// Refreshes read AWS again, but write nothing while nothing changed.
	e.step(t, time.Second)
	e.step(t, time.Hour)
	if n := e.ff.callCount(); n != calls+2 {
		t.Errorf("%d fetches in two refreshIntervals, want 2", n-calls)
	}
	if n := e.writes(); n != 0 {
		t.Errorf("%d Secret writes while nothing changed", n)
	}

	// A new value in AWS reaches the Secret on the next refresh.
	e.ff.mu.Lock()
	e.ff.content["cert"] = "rotated " + canary
	e.ff.version = "v2"
	e.ff.mu.Unlock()
	e.step(t, time.Hour)
	if got := data(e.secret("s"))["a"]; got != "rotated "+canary {
		t.Errorf("a is still the old value")
	}

	// A changed declaration (new generation) syncs at once.
	reconciles := e.queue.Processed(testKey)
	changed := spcObject(testSPC, classParams(`[{secretName: s, refreshInterval: "0", serviceAccountName: reader, data: [{key: b, objectName: cert}]}]`))
	changed.SetGeneration(2)
	if _, err := e.dyn.Resource(SPCResource).Namespace(testNS).Update(context.Background(), changed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.reconciled(t, testKey, reconciles+1)
	if _, ok := e.secret("s").Data["b"]; !ok {
		t.Errorf("key b missing")
	}
	if st := e.status(t); st.ObservedGeneration != 2 {
		t.Errorf("observed generation %d", st.ObservedGeneration)
	}
	// refreshInterval 0: no more fetches until the class changes again.
	// (The wake of the old generation's refresh still comes, and finds
	// nothing due.)
	calls = e.ff.callCount()
	e.step(t, 30*24*time.Hour)
	if n := e.ff.callCount(); n != calls {
		t.Errorf("%d fetches with refreshInterval 0", n-calls)
	}
}

func TestControllerFailures(t *testing.T) {
	t.Run("invalid declaration", func(t *testing.T) {
		e := startController(t, spcObject(testSPC, classParams(`[{secretName: s, serviceAccountName: reader, data: [{key: a, objectName: nope}]}]`)))
		e.reconciled(t, testKey, 1)
		if st := e.status(t); st.Ready != "False" || st.Reason != ReasonInvalidDeclaration || !strings.Contains(st.Message, `"nope" is not a file`) {
			t.Fatalf("status %+v", st)
		}
		if n := len(e.tokens.calls); n != 0 {
			t.Errorf("tokens requested for an invalid declaration")
		}
		// Retried only when it changes: not after any backoff.
		e.step(t, time.Hour)
		if n := e.queue.Processed(testKey); n != 1 {
			t.Errorf("an invalid declaration reconciled %d times, want once", n)
		}
		if ev := e.events.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning InvalidDeclaration") {
			t.Errorf("an invalid declaration is reported once per generation: %v", ev)
		}
	})
	t.Run("no token, then a retry", func(t *testing.T) {
		e := startControllerWith(t, newEnv(t), func(c *Controller) {
			c.Tokens.(*fakeTokens).err = fmt.Errorf("ServiceAccount team/reader does not exist; create it, or fix serviceAccountName")
		}, spcObject(testSPC, classParams(`[{secretName: s, serviceAccountName: reader, data: [{key: a, objectName: cert}]}]`)))
		e.reconciled(t, testKey, 1)
		st := e.status(t)
		if st.Ready != "False" || len(st.Secrets) != 1 || st.Secrets[0].Reason != ReasonIdentityFailed || !strings.Contains(st.Secrets[0].Message, "does not exist") {
			t.Fatalf("status %+v", st)
		}
		e.tokens.mu.Lock()
		e.tokens.err = nil
		e.tokens.mu.Unlock()
		// Retried after the backoff (RetryBase), not sooner.
		e.step(t, 40*time.Millisecond)
		e.absent("s")
		e.step(t, 10*time.Millisecond)
		if err := e.hasSecret("s")(); err != nil {
			t.Errorf("Secret after the retry: %v", err)
		}
	})
	t.Run("other providers' classes are ignored", func(t *testing.T) {
		obj := spcObject(testSPC, classParams(seedDecl))
		_ = unstructured.SetNestedField(obj.Object, "vault", "spec", "provider")
		e := startController(t, obj)
		e.reconciled(t, testKey, 1)
		if len(e.ff.calls) != 0 || len(e.tokens.calls) != 0 {
			t.Errorf("synced a class of another provider")
		}
	})
}

func TestControllerFetchMapsObjectsBack(t *testing.T) {
	cfg := testConfig(t)
	var seen *spc.Config
	c := &Controller{Files: func(_ context.Context, sub *spc.Config) ([]render.File, error) {
		seen = sub
		f := files(t, sub, content{"cert": "x"}, "v1")
		return f, notFound(sub, "key")
	}}
	secrets := parseDecl(t, `[{secretName: s, data: [{key: a, objectName: cert}, {key: b, objectName: key}]}]`)
	fs, err := c.fetch(context.Background(), cfg, secrets)
	if len(seen.Objects) != 2 || seen.Objects[0].Index != 0 || seen.Objects[1].Index != 1 {
		t.Fatalf("fetched objects %v", seen.Objects)
	}
	if len(fs) != 1 || fs[0].Object != cfg.Objects[2] {
		t.Errorf("file object not mapped back: %+v", fs)
	}
	if err == nil || !strings.Contains(err.Error(), "objects[3] (/app/key)") {
		t.Errorf("error names the fetch's copy, not the class's object: %v", err)
	}
}

// Credentials are reused per ServiceAccount, so the STS session (the pod
// name the auth package names it after) must name the ServiceAccount, not
// whichever class happened to read first.
func TestControllerSessionNamesTheServiceAccount(t *testing.T) {
	decl := func(secret string) map[string]string {
		return classParams(`[{secretName: ` + secret + `, serviceAccountName: reader, data: [{key: a, objectName: cert}]}]`)
	}
	e := startController(t, spcObject("first", decl("one")), spcObject("second", decl("two")))
	e.reconciled(t, testNS+"/first", 1)
	e.reconciled(t, testNS+"/second", 1)
	for _, name := range []string{"one", "two"} {
		if err := e.hasSecret(name)(); err != nil {
			t.Fatal(err)
		}
	}
	e.ff.mu.Lock()
	defer e.ff.mu.Unlock()
	for _, cfg := range e.ff.calls {
		if cfg.Pod.Name != "sync-reader" || cfg.Pod.ServiceAccount != "reader" {
			t.Errorf("a sync read as pod %q (ServiceAccount %q), want sync-reader", cfg.Pod.Name, cfg.Pod.ServiceAccount)
		}
	}
}

func TestSyncPodName(t *testing.T) {
	// Fitting it into STS's 64 characters is the auth package's, as for
	// any pod name (auth: TestSessionName).
	if got := syncPodName("reader"); got != "sync-reader" {
		t.Errorf("syncPodName = %q, want sync-reader", got)
	}
}

// An entry refused because its Secret has not opted in to Merge is retried
// as soon as the Secret changes, not when its backoff ends (an hour here).
func TestControllerRetriesWhenTheSecretChanges(t *testing.T) {
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: testNS, UID: "theirs-1"}, Data: map[string][]byte{"own": []byte("mine")}}
	scheme := metadatafake.NewTestScheme()
	metav1.AddMetaToScheme(scheme)
	meta := metadatafake.NewSimpleMetadataClient(scheme, secretMetadata(theirs))
	decl := `[{secretName: shared, creationPolicy: Merge, refreshInterval: 1h, serviceAccountName: reader, data: [{key: merged, objectName: cert}]}]`
	e := startControllerWith(t, newEnv(t, theirs), func(c *Controller) {
		secrets, err := NewSecretMetadata(meta, c.Namespaces)
		if err != nil {
			t.Fatal(err)
		}
		c.Secrets = secrets
		c.RetryBase, c.RetryMax = time.Hour, time.Hour
	}, spcObject(testSPC, classParams(decl)))
	e.reconciled(t, testKey, 1)
	wantSecretReason(t, e, ReasonMergeNotAllowed)
	// The owner opts in; the apiserver's watch tells coffer. The clock
	// never moves: the backoff (an hour) cannot be what retries it.
	optIn(t, e.env, meta)
	e.reconciledUntil(t, "merged after the opt-in", func() bool {
		_, ok := e.secret("shared").Data["merged"]
		return ok
	})
}

// Without the Secret watch, a failed entry is retried at least every
// refreshInterval, however long its backoff has grown.
func TestControllerBackoffIsCappedByRefreshInterval(t *testing.T) {
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: testNS}, Data: map[string][]byte{"own": []byte("mine")}}
	decl := `[{secretName: shared, creationPolicy: Merge, refreshInterval: 1m, serviceAccountName: reader, data: [{key: merged, objectName: cert}]}]`
	e := startControllerWith(t, newEnv(t, theirs), func(c *Controller) {
		c.RetryBase, c.RetryMax = time.Hour, time.Hour
	}, spcObject(testSPC, classParams(decl)))
	e.reconciled(t, testKey, 1)
	wantSecretReason(t, e, ReasonMergeNotAllowed)
	optIn(t, e.env, nil)
	e.step(t, time.Minute-time.Second)
	if _, ok := e.secret("shared").Data["merged"]; ok {
		t.Fatalf("merged before the refreshInterval passed")
	}
	e.step(t, time.Second)
	if _, ok := e.secret("shared").Data["merged"]; !ok {
		t.Errorf("not merged within the refreshInterval")
	}
}

func secretMetadata(s *corev1.Secret) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: s.ObjectMeta}
}

func wantSecretReason(t *testing.T, e *ctrlEnv, reason string) {
	t.Helper()
	if st := e.status(t); len(st.Secrets) != 1 || st.Secrets[0].Reason != reason {
		t.Fatalf("status %+v, want reason %s", st, reason)
	}
}

// optIn annotates Secret shared to allow the merge, and tells the metadata
// watch (meta, when set) as the apiserver would.
func optIn(t *testing.T, e *env, meta *metadatafake.FakeMetadataClient) {
	t.Helper()
	s := e.secret("shared")
	s.Annotations = map[string]string{AnnotationAllowMerge: testSPC}
	s, err := e.kube.CoreV1().Secrets(testNS).Update(context.Background(), s, metav1.UpdateOptions{FieldManager: "kubectl-annotate"})
	if err != nil {
		t.Fatal(err)
	}
	if meta != nil {
		s.ResourceVersion = "2"
		if err := meta.Tracker().Update(secretsResource, secretMetadata(s), testNS); err != nil {
			t.Fatal(err)
		}
	}
}

// panicOnce panics on its first call, then mints as next does.
type panicOnce struct {
	mu   sync.Mutex
	done bool
	next TokenMinter
}

func (p *panicOnce) Tokens(ctx context.Context, ns, sa string, audiences []string) (string, error) {
	p.mu.Lock()
	first := !p.done
	p.done = true
	p.mu.Unlock()
	if first {
		panic("CANARY-panic-in-reconcile")
	}
	return p.next.Tokens(ctx, ns, sa, audiences)
}

// TestControllerSurvivesAPanic: a panic while reconciling one class (a
// bug reached by one class's declaration) fails that reconcile, which is
// retried; it never ends coffer-controller sync, which every class depends on.
func TestControllerSurvivesAPanic(t *testing.T) {
	e := startControllerWith(t, newEnv(t), func(c *Controller) { c.Tokens = &panicOnce{next: c.Tokens} },
		spcObject(testSPC, classParams(`[{secretName: s, serviceAccountName: reader, data: [{key: a, objectName: cert}]}]`)))
	e.reconciled(t, testKey, 1)
	e.absent("s")
	e.step(t, e.ctrl.RetryBase)
	if err := e.hasSecret("s")(); err != nil {
		t.Errorf("Secret after the retry: %v", err)
	}
}

// TestControllerNamespaces: scoped to namespaces (coffer-controller sync
// --namespaces), the controller lists and watches classes in those
// namespaces only, never across the cluster (which its Roles refuse), and
// never syncs a class of another namespace.
func TestControllerNamespaces(t *testing.T) {
	decl := `[{secretName: app, serviceAccountName: reader, data: [{key: a, objectName: cert}]}]`
	outside := spcObject("elsewhere", classParams(`[{secretName: planted, serviceAccountName: reader, data: [{key: a, objectName: cert}]}]`))
	outside.SetNamespace("other")
	outside.SetUID("spc-uid-2")
	e := startControllerWith(t, newEnv(t), func(c *Controller) {
		c.Namespaces = []string{testNS}
	}, spcObject(testSPC, classParams(decl)), outside)
	e.reconciled(t, testKey, 1)
	if err := e.hasSecret("app")(); err != nil {
		t.Fatal(err)
	}
	for _, a := range e.dyn.Actions() {
		if (a.GetVerb() == "list" || a.GetVerb() == "watch") && a.GetNamespace() != testNS {
			t.Errorf("%s of %s in namespace %q: want only %q", a.GetVerb(), a.GetResource().Resource, a.GetNamespace(), testNS)
		}
	}
	if l, _ := e.kube.CoreV1().Secrets("other").List(context.Background(), metav1.ListOptions{}); len(l.Items) != 0 {
		t.Errorf("synced %d Secrets in a namespace out of scope", len(l.Items))
	}
	e.ff.mu.Lock()
	defer e.ff.mu.Unlock()
	for _, c := range e.ff.calls {
		if c.Pod.Namespace != testNS {
			t.Errorf("fetched for a class of namespace %s", c.Pod.Namespace)
		}
	}
}
