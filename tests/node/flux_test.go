package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"

	"github.com/coffer-csi/coffer/tests/harness"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
)

// Flux's API resources the scenario reads, and the controller that
// reconciles each.
var (
	gvrGitRepository  = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
	gvrHelmRepository = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "helmrepositories"}
	gvrHelmChart      = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "helmcharts"}
	gvrKustomization  = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	gvrHelmRelease    = schema.GroupVersionResource{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"}
)

const fluxNS = "flux-system"

// fluxStorage is where source-controller serves its artifacts, on the
// node's address, and where the other two controllers fetch them. Every
// port here is in the suite's own network namespace.
var fluxStorage = nodeIP + ":9790"

var fluxController = map[schema.GroupVersionResource]string{
	gvrGitRepository:  "source-controller",
	gvrHelmRepository: "source-controller",
	gvrHelmChart:      "source-controller",
	gvrKustomization:  "kustomize-controller",
	gvrHelmRelease:    "helm-controller",
}

// flux is Flux running against the node: its three controllers as
// processes, a Git server and a Helm repository on the node's address.
type flux struct {
	procs   map[string]*harness.Process
	dyn     dynamic.Interface
	gitURL  string // the fleet repository, as GitRepository's url
	helmURL string // the Helm repository, as HelmRepository's url
	work    string // the fleet repository's working copy
}

// startFlux applies the controllers' CRDs, starts source-controller,
// kustomize-controller and helm-controller with the admin kubeconfig (as
// their in-cluster ServiceAccount would be, cluster-admin), and waits for
// each to report ready on its health endpoint.
func (c *cluster) startFlux(ctx context.Context) (*flux, error) {
	f := &flux{procs: map[string]*harness.Process{}}
	var err error
	if f.dyn, err = dynamic.NewForConfig(c.restConfig(c.api.AdminToken)); err != nil {
		return nil, err
	}
	bins := []struct{ name, bin, metrics, health string }{
		{"source-controller", c.bins.fluxSource, "127.0.0.1:9791", "127.0.0.1:9792"},
		{"kustomize-controller", c.bins.fluxKustomize, "127.0.0.1:9793", "127.0.0.1:9794"},
		{"helm-controller", c.bins.fluxHelm, "127.0.0.1:9795", "127.0.0.1:9796"},
	}
	for _, b := range bins {
		if err := c.kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(filepath.Dir(b.bin), "crds")); err != nil {
			return nil, fmt.Errorf("%s's CRDs: %w", b.name, err)
		}
	}
	if err := c.kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"); err != nil {
		return nil, err
	}
	if err := c.kubectl(ctx, "create", "namespace", fluxNS); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		return nil, err
	}
	storage := c.path("flux", "storage")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return nil, err
	}
	env := []string{"KUBECONFIG=" + c.adminKubeconfig, "RUNTIME_NAMESPACE=" + fluxNS}
	for _, b := range bins {
		args := []string{
			"--metrics-addr=" + b.metrics,
			"--health-addr=" + b.health,
			"--enable-leader-election=false",
			"--log-encoding=console",
		}
		switch b.name {
		case "source-controller":
			args = append(args, "--storage-path="+storage, "--storage-addr="+fluxStorage, "--storage-adv-addr="+fluxStorage)
		default:
			// dependsOn is checked again this often (30 s by default).
			args = append(args, "--requeue-dependency=5s")
		}
		p, err := c.g.Spawn(b.name, b.bin, env, args...)
		if err != nil {
			return nil, err
		}
		f.procs[b.name] = p
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, b := range bins {
		url := "http://" + b.health + "/readyz"
		if err := harness.WaitReady(ctx, f.procs[b.name], time.Minute, func(ctx context.Context) error {
			return harness.HTTPOK(ctx, hc, url, "")
		}); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// kubectl runs kubectl as the administrator.
func (c *cluster) kubectl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, c.bins.kubectl, append([]string{"--kubeconfig=" + c.adminKubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// serve answers h on the node's address until the test ends, and returns
// its base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", nodeIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// serveGit serves the bare repositories under root with git's own smart
// HTTP server (git http-backend, as CGI), which source-controller clones
// from like any Git host.
func serveGit(t *testing.T, root string) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is needed for the Flux scenario's Git server: %v", err)
	}
	return serve(t, &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	})
}

// git runs git in dir as the fleet repository's committer.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-c", "user.name=coffer node tier", "-c", "user.email=node@coffer.invalid", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return strings.TrimSpace(string(out)), nil
}

// newFleetRepo makes the bare repository fleet.git under root, served at
// f.gitURL, and its working copy holding what a user commits: this
// repository's deployment/flux and deployment/examples as they are, and
// files, written by the caller into the working copy.
func (f *flux) newFleetRepo(t *testing.T, root, repo string) {
	t.Helper()
	bare := filepath.Join(root, "fleet.git")
	f.work = filepath.Join(root, "work")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, step := range [][]string{{"init", "--bare", bare}, {"init", f.work}} {
		if _, err := git(root, step...); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(f.work, "deployment"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"deployment/flux", "deployment/examples"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(repo, d), filepath.Join(f.work, "deployment")).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v: %s", d, err, out)
		}
	}
	if _, err := git(f.work, "remote", "add", "origin", bare); err != nil {
		t.Fatal(err)
	}
	f.gitURL = serveGit(t, root) + "/fleet.git"
}

// commit writes files (path: content; an empty content removes the file)
// into the working copy, commits them with message and pushes; it returns
// the commit's hash.
func (f *flux) commit(t *testing.T, message string, files map[string]string) string {
	t.Helper()
	for path, content := range files {
		p := filepath.Join(f.work, path)
		if content == "" {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", message}, {"push", "-q", "origin", "HEAD:main"}} {
		if _, err := git(f.work, step...); err != nil {
			t.Fatal(err)
		}
	}
	sha, err := git(f.work, "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	return sha
}

// newHelmRepo packages the driver's chart and coffer's chart at each of
// cofferVersions (as `helm package` does, with the Helm SDK) into a
// directory served over HTTP on the node's address, with its index.yaml
// (as `helm repo index` writes it).
func (f *flux) newHelmRepo(t *testing.T, dir, driverChart, cofferChart string, cofferVersions ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.helmURL = serve(t, http.FileServer(http.Dir(dir)))
	ch, err := loader.Load(driverChart)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chartutil.Save(ch, dir); err != nil {
		t.Fatal(err)
	}
	for _, v := range cofferVersions {
		ch, err := loader.Load(cofferChart)
		if err != nil {
			t.Fatal(err)
		}
		ch.Metadata.Version = v
		if _, err := chartutil.Save(ch, dir); err != nil {
			t.Fatal(err)
		}
	}
	index, err := repo.IndexDirectory(dir, f.helmURL)
	if err != nil {
		t.Fatal(err)
	}
	index.SortEntries()
	if err := index.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// decodeObjects reads a multi-document YAML file into objects.
func decodeObjects(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

// fluxKinds maps each kind to its resource.
var fluxKinds = map[string]schema.GroupVersionResource{
	"GitRepository":  gvrGitRepository,
	"HelmRepository": gvrHelmRepository,
	"HelmChart":      gvrHelmChart,
	"Kustomization":  gvrKustomization,
	"HelmRelease":    gvrHelmRelease,
}

func (f *flux) create(ctx context.Context, u *unstructured.Unstructured) error {
	r, ok := fluxKinds[u.GetKind()]
	if !ok || r.GroupVersion().String() != u.GetAPIVersion() {
		return fmt.Errorf("%s %s is not a Flux kind this scenario knows", u.GetAPIVersion(), u.GetKind())
	}
	_, err := f.dyn.Resource(r).Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
	return err
}

func (f *flux) get(ctx context.Context, r schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	return f.dyn.Resource(r).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
}

// requestReconcile asks for a reconciliation now, as `flux reconcile` does.
func (f *flux) requestReconcile(ctx context.Context, r schema.GroupVersionResource, ns, name string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, time.Now().Format(time.RFC3339Nano))
	_, err := f.dyn.Resource(r).Namespace(ns).Patch(ctx, name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{})
	return err
}

// ready tells whether a Flux object reports Ready=True for its current
// generation.
func ready(u *unstructured.Unstructured) error {
	gen := u.GetGeneration()
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] != "Ready" {
			continue
		}
		if m["status"] == "True" && observed == gen {
			return nil
		}
		return fmt.Errorf("Ready=%v (%v: %v), generation %d observed %d", m["status"], m["reason"], m["message"], gen, observed)
	}
	return fmt.Errorf("no Ready condition yet, generation %d observed %d", gen, observed)
}

// conditions prints an object's status conditions, one a line.
func conditions(u *unstructured.Unstructured) string {
	if u == nil {
		return "  (not found)\n"
	}
	var b strings.Builder
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		fmt.Fprintf(&b, "  %v=%v %v: %v\n", m["type"], m["status"], m["reason"], m["message"])
	}
	if len(conds) == 0 {
		b.WriteString("  (no conditions)\n")
	}
	return b.String()
}
