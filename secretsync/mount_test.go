package secretsync

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// spcObject is a SecretProviderClass as the apiserver returns it.
func spcObject(name string, params map[string]string) *unstructured.Unstructured {
	p := map[string]any{}
	for k, v := range params {
		p[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": SPCGroupVersion,
		"kind":       SPCKind,
		"metadata":   map[string]any{"name": name, "namespace": testNS, "uid": "spc-uid-1", "generation": int64(1)},
		"spec":       map[string]any{"provider": "aws", "parameters": p},
	}}
	return u
}

func dynamicClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schemaGVR]string{SPCResource: "SecretProviderClassList"}, objs...)
}

// fakeFiles serves Files calls from content, recording the configurations.
type fakeFiles struct {
	t       *testing.T
	mu      sync.Mutex
	content content
	version string
	err     error
	calls   []*spc.Config
}

func (f *fakeFiles) Files(_ context.Context, cfg *spc.Config) ([]render.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, cfg)
	out, _ := filesOf(cfg, f.content, f.version)
	return out, f.err
}

func (f *fakeFiles) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// mountOf is what the provider hands AfterMount for a pod of ServiceAccount
// sa that mounted class testSPC with attrs (the class's parameters, then
// the pod's volumeAttributes).
func mountOf(t *testing.T, attrs map[string]string, sa string, c content) provider.Mounted {
	t.Helper()
	all := map[string]string{
		spc.AttrSPCName:        testSPC,
		spc.AttrPodNamespace:   testNS,
		spc.AttrPodName:        "web-0",
		spc.AttrServiceAccount: sa,
		spc.AttrTokens:         `{"sts.amazonaws.com":{"token":"x"}}`,
	}
	for k, v := range attrs {
		all[k] = v
	}
	cfg, err := spc.Parse(all, spc.Options{RequireRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	return provider.Mounted{Config: cfg, Attributes: all, Files: files(t, cfg, c, "v1")}
}

func classParams(decl string) map[string]string {
	return map[string]string{spc.KeyObjects: testObjects, spc.KeyRegion: "us-east-1", spc.KeySyncSecrets: decl}
}

func newTrigger(e *env, ff *fakeFiles, objs ...runtime.Object) *MountTrigger {
	return &MountTrigger{
		SPCs:   dynamicClient(objs...).Resource(SPCResource),
		Files:  ff.Files,
		Engine: e.engine,
		Logger: e.engine.Logger,
	}
}

func (m *MountTrigger) waitIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatal("sync did not finish")
	}
}

// mountDecl is seedDecl for the pods of ServiceAccount app.
const mountDecl = seedDecl + "  serviceAccountName: app\n"

func TestMountTriggerSyncsTheClassDeclaration(t *testing.T) {
	e := newEnv(t)
	ff := &fakeFiles{t: t, content: defaultContent(), version: "v1"}
	params := classParams(mountDecl)
	m := newTrigger(e, ff, spcObject(testSPC, params))
	m.AfterMount(context.Background(), mountOf(t, params, "app", defaultContent()))
	m.waitIdle(t)
	if got := data(e.secret("slack-url"))["address"]; got != defaultContent()["dev_slackurl"] {
		t.Errorf("address %q", got)
	}
	if n := ff.callCount(); n != 0 {
		t.Errorf("the mount's own files were fetched again (%d calls)", n)
	}
}

func TestMountTriggerIgnoresThePodsAttributes(t *testing.T) {
	t.Run("a pod cannot add a declaration", func(t *testing.T) {
		e := newEnv(t)
		ff := &fakeFiles{t: t, content: defaultContent(), version: "v1"}
		class := map[string]string{spc.KeyObjects: testObjects, spc.KeyRegion: "us-east-1"}
		m := newTrigger(e, ff, spcObject(testSPC, class))
		attrs := classParams(`[{secretName: injected, data: [{key: a, objectName: cert}]}]`)
		m.AfterMount(context.Background(), mountOf(t, attrs, "app", defaultContent()))
		m.waitIdle(t)
		e.absent("injected")
	})
	t.Run("a pod cannot replace the declaration or redirect its objects", func(t *testing.T) {
		e := newEnv(t)
		ff := &fakeFiles{t: t, content: defaultContent(), version: "v1"}
		class := classParams(mountDecl)
		m := newTrigger(e, ff, spcObject(testSPC, class))
		// The pod points the declaration's file at another secret and
		// declares a Secret of its own.
		attrs := map[string]string{
			spc.KeyObjects:     "- {objectName: attacker/secret, objectType: secretsmanager, objectAlias: dev_slackurl}",
			spc.KeyRegion:      "us-east-1",
			spc.KeySyncSecrets: `[{secretName: injected, data: [{key: a, objectName: dev_slackurl}]}]`,
		}
		podFiles := content{"dev_slackurl": "attacker value"}
		m.AfterMount(context.Background(), mountOf(t, attrs, "app", podFiles))
		m.waitIdle(t)
		e.absent("injected")
		if got := data(e.secret("slack-url"))["address"]; got != defaultContent()["dev_slackurl"] {
			t.Errorf("Secret filled from the pod's objects: %q", got)
		}
		if n := ff.callCount(); n != 1 {
			t.Fatalf("%d fetches of the class's own objects, want 1", n)
		}
		cfg := ff.calls[0]
		if len(cfg.Objects) != 8 || cfg.Objects[0].Name != "dev/slackurl" || cfg.Pod.ServiceAccount != "app" || cfg.Tokens == "" {
			t.Errorf("refetched as %+v with %d objects", cfg.Pod, len(cfg.Objects))
		}
	})
}

// TestMountTriggerServiceAccountEntries: a mount writes only the entries
// of its own ServiceAccount. An entry that names none is written by no
// one: otherwise any ServiceAccount of the namespace that may mount the
// class (with a role of its own) could overwrite the Secret, or with
// deletionPolicy Delete have it deleted (issue 14, finding 7).
func TestMountTriggerServiceAccountEntries(t *testing.T) {
	e := newEnv(t)
	ff := &fakeFiles{t: t, content: defaultContent(), version: "v1"}
	decl := `
- {secretName: nobodys, deletionPolicy: Delete, data: [{key: a, objectName: cert}]}
- {secretName: mine, serviceAccountName: app, data: [{key: a, objectName: cert}]}
- {secretName: theirs, serviceAccountName: reader, data: [{key: a, objectName: cert}]}
`
	params := classParams(decl)
	m := newTrigger(e, ff, spcObject(testSPC, params))
	for _, sa := range []string{"app", "intruder"} {
		m.AfterMount(context.Background(), mountOf(t, params, sa, defaultContent()))
		m.waitIdle(t)
	}
	e.absent("nobodys")
	e.secret("mine")
	e.absent("theirs")
	var warned int
	for _, ev := range e.events.take() {
		if containsAll(ev, "Warning NoServiceAccount", `Secret "nobodys" not synced: the entry names no serviceAccountName`) {
			warned++
		}
	}
	if warned != 2 {
		t.Errorf("%d NoServiceAccount events for two mounts, want 2", warned)
	}
}

func TestMountTriggerReportsAnInvalidDeclaration(t *testing.T) {
	e := newEnv(t)
	ff := &fakeFiles{t: t, content: defaultContent(), version: "v1"}
	params := classParams(`[{secretName: s, data: [{key: a, objectName: nope}]}]`)
	m := newTrigger(e, ff, spcObject(testSPC, params))
	m.AfterMount(context.Background(), mountOf(t, params, "app", defaultContent()))
	m.waitIdle(t)
	ev := e.events.take()
	if len(ev) != 1 || !containsAll(ev[0], "Warning InvalidDeclaration", `syncSecrets not synced: invalid SecretProviderClass "app"`, `"nope" is not a file`) {
		t.Errorf("events %v", ev)
	}
}

func TestMountTriggerCoalesces(t *testing.T) {
	e := newEnv(t)
	ff := &fakeFiles{t: t, content: defaultContent(), version: "v1"}
	params := classParams(mountDecl)
	dyn := dynamicClient(spcObject(testSPC, params))
	release := make(chan struct{})
	var gets int
	var mu sync.Mutex
	dyn.PrependReactor("get", "secretproviderclasses", func(k8sAction) (bool, runtime.Object, error) {
		mu.Lock()
		gets++
		first := gets == 1
		mu.Unlock()
		if first {
			<-release
		}
		return false, nil, nil
	})
	m := &MountTrigger{SPCs: dyn.Resource(SPCResource), Files: ff.Files, Engine: e.engine}
	for range 10 {
		m.AfterMount(context.Background(), mountOf(t, params, "app", defaultContent()))
	}
	close(release)
	m.waitIdle(t)
	mu.Lock()
	defer mu.Unlock()
	if gets != 2 {
		t.Errorf("10 mounts during a sync made %d syncs, want 2 (the running one and the latest)", gets)
	}
}

func TestMountTriggerSkipsClassesWithoutSync(t *testing.T) {
	e := newEnv(t)
	ff := &fakeFiles{t: t}
	dyn := dynamicClient()
	m := &MountTrigger{SPCs: dyn.Resource(SPCResource), Files: ff.Files, Engine: e.engine}
	m.AfterMount(context.Background(), mountOf(t, map[string]string{spc.KeyObjects: testObjects, spc.KeyRegion: "us-east-1"}, "app", defaultContent()))
	m.waitIdle(t)
	if n := len(dyn.Actions()); n != 0 {
		t.Errorf("%d API calls for a class without syncSecrets", n)
	}
}

// TestMountTriggerPanicFailsTheSyncNotTheProcess: a panic in a background
// sync is logged as that sync's error; the trigger goes on syncing.
func TestMountTriggerPanicFailsTheSyncNotTheProcess(t *testing.T) {
	e := newEnv(t)
	ff := &fakeFiles{t: t, content: defaultContent(), version: "v1"}
	class := classParams(mountDecl)
	m := newTrigger(e, ff, spcObject(testSPC, class))
	panicking := true
	m.Files = func(ctx context.Context, cfg *spc.Config) ([]render.File, error) {
		if panicking {
			panic("bug")
		}
		return ff.Files(ctx, cfg)
	}
	// The pod's attributes differ from the class's: the class's objects
	// are fetched again, and that panics.
	attrs := map[string]string{spc.KeyObjects: "- {objectName: other, objectType: secretsmanager}", spc.KeyRegion: "us-east-1", spc.KeySyncSecrets: mountDecl}
	m.AfterMount(context.Background(), mountOf(t, attrs, "app", content{"other": "x"}))
	m.waitIdle(t)
	if !strings.Contains(e.logs.String(), "internal error in coffer while syncing Secrets after a mount") {
		t.Fatalf("log does not report the failed sync:\n%s", e.logs.String())
	}
	e.absent("slack-url")
	panicking = false
	m.AfterMount(context.Background(), mountOf(t, attrs, "app", content{"other": "x"}))
	m.waitIdle(t)
	e.secret("slack-url")
}
