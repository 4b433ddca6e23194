package secretsync

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/coffer-csi/coffer/internal/kube/kubetest"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// canary is in every secret value of the tests: no message may hold it.
const canary = "CANARY-sync-7f3"

const (
	testNS  = "team"
	testSPC = "app"
)

// testObjects are the objects of the tests' SecretProviderClass.
const testObjects = `
- objectName: dev/slackurl
  objectType: secretsmanager
- objectName: prod/db
  objectType: secretsmanager
  objectAlias: db.json
  jmesPath:
    - {path: username, objectAlias: db-user}
    - {path: password, objectAlias: db-pass}
- objectName: /app/cert
  objectType: ssmparameter
  objectAlias: cert
- objectName: /app/key
  objectType: ssmparameter
  objectAlias: key
- objectName: encoded
  objectType: secretsmanager
- objectName: docker
  objectType: secretsmanager
- objectName: other
  objectType: secretsmanager
  objectAlias: extra.json
- objectType: ssmparameter
  path: /app/flags/
  objectAlias: flags
`

// testConfig parses the tests' class with extra parameters.
func testConfig(t *testing.T) *spc.Config {
	t.Helper()
	cfg, err := spc.Parse(map[string]string{
		spc.KeyObjects:       testObjects,
		spc.KeyRegion:        "us-east-1",
		spc.AttrSPCName:      testSPC,
		spc.AttrPodNamespace: testNS,
	}, spc.Options{RequireRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func parseDecl(t *testing.T, decl string) []*Secret {
	t.Helper()
	secrets, err := Parse(decl, testConfig(t))
	if err != nil {
		t.Fatalf("Parse:\n%s\n%v", decl, err)
	}
	return secrets
}

// content is what AWS holds in the tests, by file path.
type content map[string]string

// defaultContent are the values of testObjects' files.
func defaultContent() content {
	return content{
		"dev_slackurl": "https://hooks.example/" + canary,
		"db.json":      `{"username":"app","password":"` + canary + `-pw","port":5432,"big":12345678901234567890,"tls":{"on":true},"none":null}`,
		"db-user":      "app",
		"db-pass":      canary + "-pw",
		"cert":         "-----BEGIN CERTIFICATE-----" + canary,
		"key":          "-----BEGIN KEY-----" + canary,
		"encoded":      base64.StdEncoding.EncodeToString([]byte(canary + "-b64")),
		"docker":       `{"auths":{"r.example":{"auth":"` + canary + `"}}}`,
		"extra.json":   `{"password":"other-` + canary + `","extra":"x"}`,
		"flags/alpha":  canary + "-alpha",
		"flags/beta":   canary + "-beta",
	}
}

// files renders content into files of cfg's objects, all at version v.
func files(t *testing.T, cfg *spc.Config, c content, version string) []render.File {
	t.Helper()
	out, missing := filesOf(cfg, c, version)
	if missing != "" {
		t.Fatalf("no object writes %s", missing)
	}
	return out
}

// filesOf renders the content cfg's objects write, and names a path of c
// that no object writes.
func filesOf(cfg *spc.Config, c content, version string) (out []render.File, missing string) {
	for path, data := range c {
		var obj *spc.Object
		for _, o := range cfg.Objects {
			if o.Path == path || strings.HasPrefix(path, o.Path+"/") {
				obj = o
			}
			for _, e := range o.JMESPath {
				if e.Path == path {
					obj = o
				}
			}
		}
		if obj == nil {
			missing = path
			continue
		}
		out = append(out, render.File{Path: path, Data: []byte(data), Version: version, Object: obj, Mode: 0o644})
	}
	return out, missing
}

func byPath(fs []render.File) map[string]render.File {
	m := map[string]render.File{}
	for _, f := range fs {
		m[f.Path] = f
	}
	return m
}

// recorder collects events.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	ref, ok := obj.(*corev1.ObjectReference)
	if !ok || ref.Kind != SPCKind || ref.APIVersion != SPCGroupVersion {
		panic("event not on a SecretProviderClass")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, eventtype+" "+reason+" "+strings.ReplaceAll(messageFmt, "%s", args[0].(string)))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// env is an engine over a fake API, with everything it says captured.
type env struct {
	t      *testing.T
	kube   *fake.Clientset
	events *recorder
	logs   *bytes.Buffer
	engine *Engine
	owner  *SPC
	cfg    *spc.Config
}

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	e := &env{t: t, kube: fake.NewClientset(objs...), events: &recorder{}, logs: &bytes.Buffer{}}
	e.engine = &Engine{Secrets: kubetest.Wrap(e.kube), Events: e.events, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	e.owner = &SPC{Namespace: testNS, Name: testSPC, UID: "spc-uid-1", Generation: 1}
	e.cfg = testConfig(t)
	t.Cleanup(func() {
		if strings.Contains(e.logs.String(), canary) {
			t.Errorf("logs hold a secret value:\n%s", e.logs.String())
		}
	})
	return e
}

// sync runs one sync of decl with c at version v and returns its results;
// no result or event may hold a value.
func (e *env) sync(decl string, c content, version string, fetchErr error) []Result {
	e.t.Helper()
	secrets, err := Parse(decl, e.cfg)
	if err != nil {
		e.t.Fatalf("Parse: %v", err)
	}
	res := e.engine.Sync(context.Background(), e.owner, secrets, files(e.t, e.cfg, c, version), fetchErr)
	for _, r := range res {
		if strings.Contains(r.Message, canary) {
			e.t.Errorf("result message holds a secret value: %s", r.Message)
		}
	}
	e.events.mu.Lock()
	for _, ev := range e.events.events {
		if strings.Contains(ev, canary) {
			e.t.Errorf("event holds a secret value: %s", ev)
		}
	}
	e.events.mu.Unlock()
	return res
}

func (e *env) one(decl string, c content, version string, fetchErr error) Result {
	e.t.Helper()
	res := e.sync(decl, c, version, fetchErr)
	if len(res) != 1 {
		e.t.Fatalf("%d results, want 1: %+v", len(res), res)
	}
	return res[0]
}

func (e *env) secret(name string) *corev1.Secret {
	e.t.Helper()
	s, err := e.kube.CoreV1().Secrets(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("Secret %s: %v", name, err)
	}
	return s
}

func (e *env) absent(name string) {
	e.t.Helper()
	if _, err := e.kube.CoreV1().Secrets(testNS).Get(context.Background(), name, metav1.GetOptions{}); err == nil {
		e.t.Fatalf("Secret %s exists", name)
	}
}

// writes counts the Secret writes made since the last call.
func (e *env) writes() int {
	n := 0
	for _, a := range e.kube.Actions() {
		if a.GetResource().Resource == "secrets" && a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			n++
		}
	}
	e.kube.ClearActions()
	return n
}

func data(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

func wantResult(t *testing.T, r Result, ready bool, reason string, msgParts ...string) {
	t.Helper()
	if r.Ready != ready || r.Reason != reason {
		t.Fatalf("result = %+v, want ready=%v reason=%s", r, ready, reason)
	}
	for _, p := range msgParts {
		if !strings.Contains(r.Message, p) {
			t.Errorf("message %q does not mention %q", r.Message, p)
		}
	}
}

// notFound is AWS saying an object is gone.
func notFound(cfg *spc.Config, paths ...string) error {
	var errs fetch.Errors
	for _, o := range cfg.Objects {
		for _, p := range paths {
			if o.Path == p {
				errs = append(errs, &fetch.ObjectError{Object: o, Entry: -1, Kind: fetch.KindNotFound, Operation: "secretsmanager:GetSecretValue", Detail: "secret not found"})
			}
		}
	}
	return errs
}

func denied(cfg *spc.Config, paths ...string) error {
	var errs fetch.Errors
	for _, o := range cfg.Objects {
		for _, p := range paths {
			if o.Path == p {
				errs = append(errs, &fetch.ObjectError{Object: o, Entry: -1, Kind: fetch.KindAccessDenied, Operation: "secretsmanager:GetSecretValue", Detail: "access denied"})
			}
		}
	}
	return errs
}

// without drops paths from c.
func without(c content, paths ...string) content {
	out := content{}
	for k, v := range c {
		out[k] = v
	}
	for _, p := range paths {
		delete(out, p)
	}
	return out
}

type (
	schemaGVR = schema.GroupVersionResource
	k8sAction = k8stesting.Action
)

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
