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

	"github.com/coffer-csi/coffer/auth"
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
	cancel context.CancelFunc
	done   chan error
}

func startController(t *testing.T, objs ...runtime.Object) *ctrlEnv {
	t.Helper()
	return startControllerWith(t, newEnv(t), nil, objs...)
}

// startControllerWith starts a controller over e's Secrets, changed by
// setup before it runs.
func startControllerWith(t *testing.T, kube *env, setup func(*Controller), objs ...runtime.Object) *ctrlEnv {
	t.Helper()
	e := &ctrlEnv{env: kube, dyn: dynamicClient(objs...), tokens: &fakeTokens{}}
	e.ff = &fakeFiles{t: t, content: defaultContent(), version: "v1"}
	e.ctrl = &Controller{
		Dynamic: e.dyn, Engine: e.engine, Files: e.ff.Files, Tokens: e.tokens, ProviderName: "aws",
		RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: e.engine.Logger,
	}
	if setup != nil {
		setup(e.ctrl)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- e.ctrl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-e.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return e
}

func eventuallyT(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
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
	eventuallyT(t, "Secret slack-url", e.hasSecret("slack-url"))
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
	eventuallyT(t, "status", func() error {
		st := e.status(t)
		if st.Ready != "False" || st.Reason != ReasonSyncFailed || len(st.Secrets) != 2 || st.ObservedGeneration != 1 || !strings.Contains(st.Message, "nobodys (NoServiceAccount)") {
			return fmt.Errorf("status %+v", st)
		}
		if s := st.Secrets[0]; s.Name != "slack-url" || s.Ready != "True" || s.Reason != ReasonCreated || s.ServiceAccount != "reader" || s.LastSyncTime == "" {
			return fmt.Errorf("slack-url status %+v", s)
		}
		if s := st.Secrets[1]; s.Name != "nobodys" || s.Ready != "False" || s.Reason != ReasonNoServiceAccount || !strings.Contains(s.Message, "names no serviceAccountName; set it to the ServiceAccount") {
			return fmt.Errorf("nobodys status %+v", s)
		}
		return nil
	})
}

func TestControllerRefreshesAndFollowsChanges(t *testing.T) {
	decl := `[{secretName: s, refreshInterval: 1s, serviceAccountName: reader, data: [{key: a, objectName: cert}]}]`
	obj := spcObject(testSPC, classParams(decl))
	e := startController(t, obj)
	eventuallyT(t, "first sync", func() error {
		if st := e.status(t); st.Ready != "True" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	e.writes()

	// Refreshes read AWS again, but write nothing while nothing changed.
	calls := e.ff.callCount()
	eventuallyT(t, "two refreshes", func() error {
		if n := e.ff.callCount(); n < calls+2 {
			return fmt.Errorf("%d fetches", n)
		}
		return nil
	})
	if n := e.writes(); n != 0 {
		t.Errorf("%d Secret writes while nothing changed", n)
	}

	// A new value in AWS reaches the Secret on the next refresh.
	e.ff.mu.Lock()
	e.ff.content["cert"] = "rotated " + canary
	e.ff.version = "v2"
	e.ff.mu.Unlock()
	eventuallyT(t, "updated Secret", func() error {
		if got := data(e.secret("s"))["a"]; got != "rotated "+canary {
			return fmt.Errorf("a is still the old value")
		}
		return nil
	})

	// A changed declaration (new generation) syncs at once.
	changed := spcObject(testSPC, classParams(`[{secretName: s, refreshInterval: "0", serviceAccountName: reader, data: [{key: b, objectName: cert}]}]`))
	changed.SetGeneration(2)
	if _, err := e.dyn.Resource(SPCResource).Namespace(testNS).Update(context.Background(), changed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyT(t, "declaration change", func() error {
		if _, ok := e.secret("s").Data["b"]; !ok {
			return fmt.Errorf("key b missing")
		}
		if st := e.status(t); st.ObservedGeneration != 2 {
			return fmt.Errorf("observed generation %d", st.ObservedGeneration)
		}
		return nil
	})
	// refreshInterval 0: no more fetches until the class changes again.
	time.Sleep(300 * time.Millisecond)
	calls = e.ff.callCount()
	time.Sleep(1500 * time.Millisecond)
	if n := e.ff.callCount(); n != calls {
		t.Errorf("%d fetches with refreshInterval 0", n-calls)
	}
}

func TestControllerFailures(t *testing.T) {
	t.Run("invalid declaration", func(t *testing.T) {
		e := startController(t, spcObject(testSPC, classParams(`[{secretName: s, serviceAccountName: reader, data: [{key: a, objectName: nope}]}]`)))
		eventuallyT(t, "status", func() error {
			if st := e.status(t); st.Ready != "False" || st.Reason != ReasonInvalidDeclaration || !strings.Contains(st.Message, `"nope" is not a file`) {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
		if n := len(e.tokens.calls); n != 0 {
			t.Errorf("tokens requested for an invalid declaration")
		}
		time.Sleep(300 * time.Millisecond)
		if ev := e.events.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning InvalidDeclaration") {
			t.Errorf("an invalid declaration is reported once per generation: %v", ev)
		}
	})
	t.Run("no token, then a retry", func(t *testing.T) {
		e := newEnvOnly(t)
		e.tokens.err = fmt.Errorf("ServiceAccount team/reader does not exist; create it, or fix serviceAccountName")
		e.start(spcObject(testSPC, classParams(`[{secretName: s, serviceAccountName: reader, data: [{key: a, objectName: cert}]}]`)))
		eventuallyT(t, "failure status", func() error {
			st := e.status(t)
			if st.Ready != "False" || len(st.Secrets) != 1 || st.Secrets[0].Reason != ReasonIdentityFailed || !strings.Contains(st.Secrets[0].Message, "does not exist") {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
		e.tokens.mu.Lock()
		e.tokens.err = nil
		e.tokens.mu.Unlock()
		eventuallyT(t, "Secret after the retry", e.hasSecret("s"))
	})
	t.Run("other providers' classes are ignored", func(t *testing.T) {
		obj := spcObject(testSPC, classParams(seedDecl))
		_ = unstructured.SetNestedField(obj.Object, "vault", "spec", "provider")
		e := startController(t, obj)
		time.Sleep(300 * time.Millisecond)
		if len(e.ff.calls) != 0 || len(e.tokens.calls) != 0 {
			t.Errorf("synced a class of another provider")
		}
	})
}

// newEnvOnly builds a controller environment without starting it, so a
// test can set up its fakes first.
func newEnvOnly(t *testing.T) *ctrlEnvLazy {
	return &ctrlEnvLazy{t: t, tokens: &fakeTokens{}}
}

type ctrlEnvLazy struct {
	*ctrlEnv
	t      *testing.T
	tokens *fakeTokens
}

func (l *ctrlEnvLazy) start(objs ...runtime.Object) {
	e := &ctrlEnv{env: newEnv(l.t), dyn: dynamicClient(objs...), tokens: l.tokens}
	e.ff = &fakeFiles{t: l.t, content: defaultContent(), version: "v1"}
	e.ctrl = &Controller{Dynamic: e.dyn, Engine: e.engine, Files: e.ff.Files, Tokens: e.tokens, ProviderName: "aws",
		RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.ctrl.Run(ctx) }()
	l.t.Cleanup(func() { cancel(); <-done })
	l.ctrlEnv = e
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
	eventuallyT(t, "both Secrets", func() error {
		if err := e.hasSecret("one")(); err != nil {
			return err
		}
		return e.hasSecret("two")()
	})
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
	waitSecretReason(t, e, ReasonMergeNotAllowed)
	// The owner opts in; the apiserver's watch tells coffer.
	optIn(t, e.env, meta)
	eventuallyT(t, "merged after the opt-in", func() error {
		if _, ok := e.secret("shared").Data["merged"]; !ok {
			return fmt.Errorf("not merged yet")
		}
		return nil
	})
}

// Without the Secret watch, a failed entry is retried at least every
// refreshInterval, however long its backoff has grown.
func TestControllerBackoffIsCappedByRefreshInterval(t *testing.T) {
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: testNS}, Data: map[string][]byte{"own": []byte("mine")}}
	decl := `[{secretName: shared, creationPolicy: Merge, refreshInterval: 1s, serviceAccountName: reader, data: [{key: merged, objectName: cert}]}]`
	e := startControllerWith(t, newEnv(t, theirs), func(c *Controller) {
		c.RetryBase, c.RetryMax = time.Hour, time.Hour
	}, spcObject(testSPC, classParams(decl)))
	waitSecretReason(t, e, ReasonMergeNotAllowed)
	optIn(t, e.env, nil)
	eventuallyT(t, "merged within the refreshInterval", func() error {
		if _, ok := e.secret("shared").Data["merged"]; !ok {
			return fmt.Errorf("not merged yet")
		}
		return nil
	})
}

func secretMetadata(s *corev1.Secret) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: s.ObjectMeta}
}

func waitSecretReason(t *testing.T, e *ctrlEnv, reason string) {
	t.Helper()
	eventuallyT(t, "status "+reason, func() error {
		if st := e.status(t); len(st.Secrets) != 1 || st.Secrets[0].Reason != reason {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
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
	eventuallyT(t, "Secret after the retry", e.hasSecret("s"))
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
	eventuallyT(t, "Secret app", e.hasSecret("app"))
	e.ctrl.queue.ShutDown() // no more reconciles: what was done is all
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
